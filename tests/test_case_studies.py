"""Every case-study notebook runs end to end in fast mode (BAYESCALE_FAST=1)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "case_studies").glob("*.py"))

spec = importlib.util.spec_from_file_location("run_case_studies",
                                              ROOT / "scripts" / "run_case_studies.py")
runner = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runner)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_case_study_runs_in_fast_mode(path, monkeypatch):
    monkeypatch.setenv("BAYESCALE_FAST", "1")
    runner.execute(path, fast=True, write=False, timeout=900)


def test_every_case_study_has_a_rendered_notebook():
    for path in NOTEBOOKS:
        assert path.with_suffix(".ipynb").exists(), f"{path.name} has no rendered notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_rendered_notebook_matches_its_source(path):
    # a render is only evidence for the text it shows if it ran the current code
    import jupytext
    import nbformat

    source = [c.source.strip() for c in jupytext.read(path).cells]
    rendered = [c.source.strip() for c in nbformat.read(path.with_suffix(".ipynb"),
                                                        as_version=4).cells]
    assert rendered == source, (f"{path.with_suffix('.ipynb').name} is not a render of the "
                                f"current {path.name}: re-run scripts/run_case_studies.py "
                                f"--write {path.stem}")
    executed = nbformat.read(path.with_suffix(".ipynb"), as_version=4)
    assert all(c.get("execution_count") for c in executed.cells if c.cell_type == "code"
               and c.source.strip()), f"{path.with_suffix('.ipynb').name} has unexecuted cells"
