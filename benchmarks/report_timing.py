"""Time report generation (target: under 30 s per fit).

Usage::

    .venv/bin/python benchmarks/report_timing.py [RUN_DIR ...] [--out DIR]

Without run directories it times the fits it finds: ``runs/chinchilla`` (one family),
``runs/gadre`` (hierarchical loss law) and a skills fit (``runs/skills*`` or
``runs/leaderboard*``), fitting small ones into a temporary directory when a loss-law
run is missing (the skills fit is only timed when a run exists). Prints, per fit, the
load time, the report build time (with the slowest sections), the write time and the
HTML size. Reports are written to ``--out`` (default: a temporary directory).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 30.0


class _SectionTimes(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.times: list[tuple[str, float]] = []

    def emit(self, record):
        msg = record.getMessage()
        if msg.startswith("report section "):
            name, secs = msg[len("report section "):].rsplit(": ", 1)
            self.times.append((name, float(secs.rstrip(" s"))))


def _default_runs(tmp: Path) -> list[Path]:
    from bayescale import fit, write_run
    from bayescale.errors import ConvergenceWarning

    runs = []
    for name, spec, data, kwargs in (
        ("chinchilla", "chinchilla", "chinchilla", {"draws": 500, "tune": 500, "chains": 2}),
        ("gadre", "chinchilla-hierarchical", "gadre-overtrain",
         {"draws": 400, "tune": 600, "chains": 2}),
    ):
        run = ROOT / "runs" / name
        if not (run / "posterior.nc").exists():
            print(f"fitting a small {spec} on {data} (no {run})")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                post = fit(spec, data, seed=1, **kwargs)
            run = write_run(post, tmp / name)
        runs.append(run)
    skills = sorted(p.parent for pattern in ("skills*/posterior.nc", "leaderboard*/posterior.nc")
                    for p in (ROOT / "runs").glob(pattern))
    if skills:
        runs.append(skills[0])
    else:
        print("no skills run under runs/ (skills*, leaderboard*): skipping the skills report")
    return runs


def main() -> None:
    """Time the report of each run directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from bayescale import load_run
    from bayescale.report import build_report

    handler = _SectionTimes()
    log = logging.getLogger("bayescale.report")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        out_dir = args.out or tmp
        out_dir.mkdir(parents=True, exist_ok=True)
        runs = args.runs or _default_runs(tmp)
        print(f"{'run':28s} {'kind':9s} {'load':>6s} {'build':>6s} {'write':>6s} "
              f"{'figures':>7s} {'HTML MB':>7s}  slowest sections")
        for run in runs:
            handler.times.clear()
            t0 = time.perf_counter()
            post = load_run(run)
            t1 = time.perf_counter()
            report = build_report(post)
            t2 = time.perf_counter()
            paths = report.write(out_dir / f"{Path(run).name}.html")
            t3 = time.perf_counter()
            slow = sorted(handler.times, key=lambda x: -x[1])[:3]
            total = t3 - t0
            flag = "ok" if total < TARGET_SECONDS else f"OVER {TARGET_SECONDS:.0f} s"
            print(f"{Path(run).name:28s} {post.spec.kind:9s} {t1 - t0:6.1f} {t2 - t1:6.1f} "
                  f"{t3 - t2:6.1f} {len(report.figures):7d} "
                  f"{paths['html'].stat().st_size / 1e6:7.2f}  "
                  + ", ".join(f"{n} {s:.1f}" for n, s in slow) + f"  [total {total:.1f} s, {flag}]")
        if args.out:
            print(f"reports in {out_dir}")


if __name__ == "__main__":
    main()
