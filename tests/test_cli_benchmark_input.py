"""Bad benchmark tables through the CLI: exit 1, one line naming file, line, column."""

import pytest

from bayescale.cli import main

GOOD = """model,family,params,tokens,benchmark,score
m1,f,1e9,1e12,MMLU,0.30
m1,f,1e9,1e12,ARC,0.40
m2,f,2e9,1e12,MMLU,0.50
m2,f,2e9,1e12,ARC,0.55
"""

BAD = {
    "score above one": (GOOD.replace("MMLU,0.50", "MMLU,1.5"), ["line 4", "score"]),
    "negative score": (GOOD.replace("ARC,0.40", "ARC,-0.1"), ["line 3", "score"]),
    "duplicate model and benchmark": (GOOD + "m2,f,2e9,1e12,ARC,0.56\n",
                                      ["duplicate", "m2", "ARC"]),
    "missing column": (GOOD.replace(",score", ",acc"), ["missing", "score"]),
    "non-numeric params": (GOOD.replace("m1,f,1e9", "m1,f,one"), ["lines 2, 3", "params"]),
    "nan score": (GOOD.replace("MMLU,0.30", "MMLU,nan"), ["line 2", "score"]),
    "non-positive tokens": (GOOD.replace("m2,f,2e9,1e12,MMLU", "m2,f,2e9,0,MMLU"),
                            ["line 4", "tokens"]),
    "empty": ("model,family,params,tokens,benchmark,score\n", ["no data rows"]),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_fit_rejects_bad_benchmark_table(kind, tmp_path, capsys):
    text, parts = BAD[kind]
    data = tmp_path / "scores.csv"
    data.write_text(text)
    out = tmp_path / "run"
    code = main(["fit", "skills", "--data", str(data), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err and err.startswith("bayescale: error: ")
    assert len(err.strip().splitlines()) == 1
    for part in [str(data), *parts]:
        assert part in err, f"{part!r} not in {err!r}"
    assert list(tmp_path.iterdir()) == [data]


def test_fit_rejects_too_few_models_for_skills(tmp_path, capsys):
    data = tmp_path / "scores.csv"
    data.write_text(GOOD.replace("ARC", "GSM8K") + "m1,f,1e9,1e12,IFEval,0.2\n")
    code = main(["fit", "skills", "--data", str(data), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1 and "needs at least" in err, err
