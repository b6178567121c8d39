"""Execute the case-study notebooks (jupytext percent-format .py files).

Usage: .venv/bin/python scripts/run_case_studies.py [--fast] [--write] [NAME ...]

--fast sets BAYESCALE_FAST=1 (few draws, as in CI). --write saves the executed notebook as
case_studies/NAME.ipynb (the rendered notebook shipped beside each .py; render in full mode).
"""

import argparse
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
CASE_STUDIES = ROOT / "case_studies"


def execute(path: Path, *, fast: bool, write: bool, timeout: int = 3600) -> float:
    """Execute one case study; return its wall time in seconds."""
    notebook = jupytext.read(path)
    os.environ["BAYESCALE_FAST"] = "1" if fast else "0"
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(CASE_STUDIES)}})
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    if write:
        target = path.with_suffix(".ipynb")
        tmp = target.with_suffix(".ipynb.tmp")
        nbformat.write(notebook, tmp)
        os.replace(tmp, target)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*")
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    paths = [CASE_STUDIES / f"{n}.py" for n in args.names] or sorted(CASE_STUDIES.glob("*.py"))
    for path in paths:
        print(f"{path.stem}: {execute(path, fast=args.fast, write=args.write):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
