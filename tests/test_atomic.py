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
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted; nothing was written" in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
