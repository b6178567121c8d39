"""Bad input against every command: exit 1 (argparse usage errors: 2), one line on stderr
naming the problem, no traceback, nothing written."""

import pytest
import xarray as xr

from bayescale.cli import main

LOSS_BAD = "params,tokens,loss\n1e7,2e8,-3\n" + "".join(
    f"{n:.3g},{20 * n:.3g},3.0\n" for n in (2e7, 4e7, 8e7, 1.6e8, 3.2e8))
SCORES_BAD = "model,family,params,tokens,benchmark,score\nm1,f,1e9,1e12,MMLU,1.7\n"
NEW_ROWS_BAD = "params,tokens\n0,2e11\n"


@pytest.fixture
def files(tmp_path):
    (tmp_path / "loss_bad.csv").write_text(LOSS_BAD)
    (tmp_path / "scores_bad.csv").write_text(SCORES_BAD)
    (tmp_path / "rows_bad.csv").write_text(NEW_ROWS_BAD)
    (tmp_path / "groups_bad.json").write_text("{not json")
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    (truncated / "posterior.nc").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    xr.Dataset({"x": ("d", [1.0])}).to_netcdf(foreign / "posterior.nc", engine="h5netcdf")
    return tmp_path


# (command line with {d} for the temporary directory, expected fragments of the message)
CASES = {
    "fit bad loss value": ("fit kaplan-n --data {d}/loss_bad.csv --out {d}/out",
                           ["loss_bad.csv", "line 2", "column 'loss'"]),
    "fit bad score": ("fit skills --data {d}/scores_bad.csv --out {d}/out",
                      ["scores_bad.csv", "line 2", "column 'score'"]),
    "fit missing data file": ("fit chinchilla --data {d}/none.csv --out {d}/out", ["none.csv"]),
    "fit unknown spec": ("fit nospec --data chinchilla --out {d}/out", ["unknown spec"]),
    "predict missing run": ("predict {d}/none --data {d}/rows_bad.csv --out {d}/out.csv",
                            ["no such file"]),
    "predict truncated run": ("predict {d}/truncated --data {d}/rows_bad.csv --out {d}/out.csv",
                              ["truncated or not netCDF"]),
    "predict foreign run": ("predict {d}/foreign --data {d}/rows_bad.csv --out {d}/out.csv",
                            ["not a bayescale posterior"]),
    "optimal truncated run": ("optimal {d}/truncated --flops 1e21", ["truncated"]),
    "optimal foreign run": ("optimal {d}/foreign --flops 1e21", ["not a bayescale posterior"]),
    "report missing run": ("report {d}/none --out {d}/out.html", ["no such file"]),
    "report truncated run": ("report {d}/truncated --out {d}/out.html", ["truncated"]),
    "compare-families foreign run": ("compare-families {d}/foreign --out {d}/out.csv",
                                     ["not a bayescale posterior"]),
    "compare missing runs": ("compare {d}/none {d}/none2", ["no such file"]),
    "backtest bad scores": ("backtest skills --data {d}/scores_bad.csv --protocol "
                            "largest-per-family --out {d}/out", ["scores_bad.csv", "score"]),
    "backtest without groups": ("backtest skills --data open-llm-leaderboard --protocol "
                                "leave-family-out --out {d}/out", ["needs --groups"]),
    "backtest bad groups file": ("backtest skills --data open-llm-leaderboard --protocol "
                                 "leave-family-out --groups {d}/groups_bad.json --out {d}/out",
                                 ["groups_bad.json", "cannot read groups file"]),
    "backtest loss-law spec": ("backtest chinchilla --data chinchilla --protocol "
                               "largest-per-family --out {d}/out", ["implemented for skills"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_clear_line_and_nothing_written(case, files, capsys):
    template, fragments = CASES[case]
    before = sorted(p.name for p in files.iterdir())
    code = main(template.format(d=files).split())
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith("bayescale: error: ") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert sorted(p.name for p in files.iterdir()) == before


@pytest.mark.parametrize("argv", [["fit"], ["predict", "x"], ["optimal", "x"],
                                  ["backtest", "skills", "--data", "x", "--protocol", "bogus",
                                   "--out", "y"], ["nosuchcommand"],
                                  # the two listing commands take no input but arguments
                                  ["specs", "extra"], ["datasets", "--bogus"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage: bayescale" in capsys.readouterr().err
