"""Nothing is half-written: atomic files and run directories, interrupted fits."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bayescale.posterior import atomic_directory, write_text_atomic

BIN = Path(sys.executable).parent / "bayescale"


def test_atomic_directory_replaces_only_on_success(tmp_path):
    target = tmp_path / "run"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("first")
    assert (target / "a.txt").read_text() == "first"
    with pytest.raises(KeyboardInterrupt), atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("second")
        raise KeyboardInterrupt
    assert (target / "a.txt").read_text() == "first"
    with atomic_directory(target) as tmp:
        (tmp / "b.txt").write_text("third")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_atomic_text_file(tmp_path):
    target = tmp_path / "x.csv"
    write_text_atomic(target, "a,b\n")
    with pytest.raises(RuntimeError):
        from bayescale.posterior import _atomic_path

        with _atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("disk full")
    assert target.read_text() == "a,b\n"
    assert [p.name for p in tmp_path.iterdir()] == ["x.csv"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_fit_leaves_nothing(tmp_path, sig):
    out = tmp_path / "run"
    proc = subprocess.Popen([BIN, "fit", "chinchilla", "--data", "chinchilla", "--out", str(out),
                             "--draws", "20000", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(8)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)  # the watchdog exits 15 s after the signal
    assert proc.returncode == 130, err
    assert "interrupted; nothing was written" in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


# A process whose main thread swallows every KeyboardInterrupt, like a library that runs
# the signal handler inside a C callback and drops its exception. It registers a
# temporary directory and a temporary file, then signals itself.
_SWALLOWING = """
import os, signal, sys, tempfile, time
from pathlib import Path
from bayescale.interrupts import install_handlers, pending_path
install_handlers(grace_seconds={grace})
where = Path(sys.argv[1])
tmp_dir = Path(tempfile.mkdtemp(dir=where))
(tmp_dir / "half.nc").write_text("partial")
tmp_file = where / "half.csv"
tmp_file.write_text("a,b")
with pending_path(tmp_dir), pending_path(tmp_file):
    for _ in range({signals}):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
        except KeyboardInterrupt:
            pass
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except KeyboardInterrupt:
            pass
print("survived")
"""


@pytest.mark.parametrize(("grace", "signals", "within"), [(1.0, 1, (1.0, 10.0)),
                                                          (60.0, 2, (0.0, 10.0))])
def test_watchdog_exits_a_process_that_swallows_the_interrupt(tmp_path, grace, signals,
                                                               within):
    # one signal: the watchdog fires after the grace period; a second signal: at once
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _SWALLOWING.format(grace=grace,
                                                                    signals=signals),
                           str(tmp_path)], capture_output=True, text=True, timeout=60)
    seconds = time.monotonic() - start
    assert proc.returncode == 130, proc.stderr
    assert "survived" not in proc.stdout
    assert "interrupted; nothing was written" in proc.stderr
    assert list(tmp_path.iterdir()) == []
    assert within[0] <= seconds <= within[1]
