"""The CLI contract: commands, outputs, and bad input (exit 1, one clear line, nothing written)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayescale.cli import main

BIN = Path(sys.executable).parent / "bayescale"

GOOD_LOSS = "params,tokens,loss\n" + "".join(
    f"{n:.6g},{20 * n:.6g},{1.8 + 400 / n ** 0.34:.5f}\n" for n in np.geomspace(1e7, 1e9, 12))


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_user_error(code, err, *parts):
    assert code == 1, err
    assert "Traceback" not in err
    assert err.startswith("bayescale: error: ")
    assert len(err.strip().splitlines()) == 1, err
    for part in parts:
        assert part in err, f"{part!r} not in {err!r}"


@pytest.mark.parametrize("command", ["fit", "predict", "optimal", "datasets", "specs"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: bayescale " + command in capsys.readouterr().out


def test_console_script_is_installed():
    result = subprocess.run([BIN, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    for command in ("fit", "predict", "optimal", "datasets", "specs"):
        assert command in result.stdout


def test_datasets_and_specs_listings(capsys):
    code, out, _ = run_cli(capsys, "datasets")
    assert code == 0
    for name in ("chinchilla", "open-llm-leaderboard", "observational-scaling", "porian-recipes",
                 "datablations", "gadre-overtrain", "misfitting"):
        assert name in out
    code, out, _ = run_cli(capsys, "specs")
    assert code == 0 and "chinchilla-hierarchical" in out and "kaplan-n" in out


# ----------------------------------------------------------------------------- bad input: fit
BAD_LOSS_FILES = {
    "missing column": ("params,tokens\n1e7,2e8\n", ["missing", "loss"]),
    "non-numeric": (GOOD_LOSS.replace("\n1e+07,", "\nten million,", 1), ["line 2", "params"]),
    "nan": (GOOD_LOSS.replace(",2e+08,", ",nan,", 1), ["line 2", "tokens"]),
    "inf": (GOOD_LOSS.replace(",2e+08,", ",inf,", 1), ["line 2", "tokens"]),
    "non-positive": (GOOD_LOSS.replace("\n1e+07,", "\n-1e+07,", 1), ["line 2", "params"]),
    "zero loss": (GOOD_LOSS.rsplit(",", 1)[0] + ",0\n", ["line 13", "loss"]),
    "empty": ("params,tokens,loss\n", ["no data rows"]),
}


@pytest.mark.parametrize("kind", sorted(BAD_LOSS_FILES))
def test_fit_rejects_bad_loss_file(kind, tmp_path, capsys):
    text, parts = BAD_LOSS_FILES[kind]
    data = tmp_path / "runs.csv"
    data.write_text(text)
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "fit", "kaplan-n", "--data", data, "--out", out)
    assert_user_error(code, err, str(data), *parts)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [data]  # no temporary left behind


def test_fit_rejects_too_few_rows(tmp_path, capsys):
    data = tmp_path / "few.csv"
    data.write_text("".join(GOOD_LOSS.splitlines(keepends=True)[:4]))
    code, _, err = run_cli(capsys, "fit", "kaplan-n", "--data", data, "--out", tmp_path / "r")
    assert_user_error(code, err, "needs at least 5 data rows, got 3")


def test_fit_rejects_several_families_for_one_family_spec(capsys, tmp_path):
    code, _, err = run_cli(capsys, "fit", "chinchilla", "--data", "gadre-overtrain", "--out",
                           tmp_path / "r")
    assert_user_error(code, err, "fits one family but the data has 3", "column 'family'")


def test_fit_rejects_too_few_families_for_hierarchy(capsys, tmp_path):
    code, _, err = run_cli(capsys, "fit", "chinchilla-hierarchical", "--data", "chinchilla",
                           "--out", tmp_path / "r")
    assert_user_error(code, err, "needs at least 2, got 1")


def test_fit_rejects_benchmark_table_for_loss_law(capsys, tmp_path):
    code, _, err = run_cli(capsys, "fit", "chinchilla", "--data", "open-llm-leaderboard",
                           "--out", tmp_path / "r")
    assert_user_error(code, err, "fits loss runs but the data are benchmark evaluations")


def test_fit_rejects_unknown_dataset_and_spec(capsys, tmp_path):
    code, _, err = run_cli(capsys, "fit", "chinchilla", "--data", "chinchila", "--out",
                           tmp_path / "r")
    assert_user_error(code, err, "chinchila")
    code, _, err = run_cli(capsys, "fit", "chinchila", "--data", "chinchilla", "--out",
                           tmp_path / "r")
    assert_user_error(code, err, "unknown spec 'chinchila'")


def test_fit_rejects_bad_spec_file(capsys, tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text('name = "x"\nkind = "loss-law"\n[law]\nterms = []\n')
    code, _, err = run_cli(capsys, "fit", spec, "--data", "chinchilla", "--out", tmp_path / "r")
    assert_user_error(code, err, str(spec), "at least one entry in 'terms'")


def test_user_error_in_a_real_process_has_no_traceback(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run([BIN, "fit", "chinchilla", "--data", str(tmp_path / "none.csv"),
                             "--out", str(out)], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "none.csv" in result.stderr
    assert not out.exists()


# ----------------------------------------------------------------------------- a real run
@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = root / "runs.csv"
    data.write_text(GOOD_LOSS)
    out = root / "run"
    code = main(["fit", "kaplan-n", "--data", str(data), "--out", str(out), "--draws", "200",
                 "--tune", "300", "--chains", "2", "--seed", "3"])
    assert code == 0
    return out


@pytest.mark.slow
def test_fit_writes_the_run_directory_contract(small_run):
    assert {p.name for p in small_run.iterdir()} == {"posterior.nc", "summary.csv",
                                                     "diagnostics.json"}
    summary = pd.read_csv(small_run / "summary.csv")
    assert list(summary.columns) == ["name", "mean", "sd", "q2.5", "q50", "q97.5", "r_hat",
                                     "ess_bulk", "ess_tail"]
    assert list(summary["name"]) == ["E", "A", "alpha", "sigma", "nu"]
    diag = json.loads((small_run / "diagnostics.json").read_text())
    assert {"max_r_hat", "min_ess_bulk", "min_ess_tail", "divergences", "sampling_seconds",
            "wall_seconds"} <= set(diag)
    assert diag["chains"] == 2 and diag["draws"] == 200


@pytest.mark.slow
def test_predict_writes_contract_columns(small_run, tmp_path, capsys):
    new = tmp_path / "new.csv"
    new.write_text("params,tokens\n1e10,2e11\n3e10,6e11\n")
    out = tmp_path / "pred.csv"
    code, stdout, _ = run_cli(capsys, "predict", small_run, "--data", new, "--out", out)
    assert code == 0 and "2 predictions" in stdout
    pred = pd.read_csv(out)
    quantiles = ["q0.025", "q0.05", "q0.1", "q0.25", "q0.5", "q0.75", "q0.9", "q0.95", "q0.975"]
    for prefix in ("", "mu_"):
        for col in ["mean", "sd", *quantiles]:
            assert prefix + col in pred.columns
    assert (pred["q0.975"] > pred["q0.025"]).all()


BAD_PREDICT_ROWS = {
    "missing column": ("tokens\n2e11\n", ["missing", "params"]),
    "non-positive": ("params,tokens\n1e10,2e11\n0,6e11\n", ["line 3", "params"]),
    "nan": ("params,tokens\n1e10,nan\n", ["line 2", "tokens"]),
    "non-numeric": ("params,tokens\n1e10,lots\n", ["line 2", "tokens"]),
    "unknown family": ("family,params,tokens\nllama,1e10,2e11\n", ["unknown family 'llama'"]),
    "empty": ("params,tokens\n", ["no data rows"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(BAD_PREDICT_ROWS))
def test_predict_rejects_bad_rows(kind, small_run, tmp_path, capsys):
    text, parts = BAD_PREDICT_ROWS[kind]
    new = tmp_path / "new.csv"
    new.write_text(text)
    out = tmp_path / "pred.csv"
    code, _, err = run_cli(capsys, "predict", small_run, "--data", new, "--out", out)
    assert_user_error(code, err, *parts)
    assert not out.exists()


def test_predict_rejects_missing_truncated_and_foreign_posteriors(tmp_path, capsys):
    new = tmp_path / "new.csv"
    new.write_text("params,tokens\n1e10,2e11\n")
    code, _, err = run_cli(capsys, "predict", tmp_path / "nope", "--data", new, "--out",
                           tmp_path / "p.csv")
    assert_user_error(code, err, "no such file")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "posterior.nc").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    code, _, err = run_cli(capsys, "predict", broken, "--data", new, "--out", tmp_path / "p.csv")
    assert_user_error(code, err, "truncated or not netCDF")
    import xarray as xr

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    xr.Dataset({"x": ("d", [1.0, 2.0])}).to_netcdf(foreign / "posterior.nc", engine="h5netcdf")
    code, _, err = run_cli(capsys, "predict", foreign, "--data", new, "--out", tmp_path / "p.csv")
    assert_user_error(code, err, "not a bayescale posterior")
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.slow
def test_optimal_needs_params_and_tokens_terms(small_run, capsys):
    code, _, err = run_cli(capsys, "optimal", small_run, "--flops", "1e21")
    assert_user_error(code, err, "needs a law with one params term and one tokens term")


@pytest.mark.slow
def test_optimal_on_chinchilla(chinchilla_run_dir, capsys, tmp_path):
    out = tmp_path / "opt.csv"
    code, stdout, _ = run_cli(capsys, "optimal", chinchilla_run_dir, "--flops", "5.88e23", "1e25",
                              "--out", out)
    assert code == 0 and "tokens_per_param" in stdout
    table = pd.read_csv(out)
    assert len(table) == 8
    code, _, err = run_cli(capsys, "optimal", chinchilla_run_dir, "--flops", "-1")
    assert_user_error(code, err, "--flops must be positive")
    code, _, err = run_cli(capsys, "optimal", chinchilla_run_dir, "--flops", "1e21", "--family",
                           "gopher")
    assert_user_error(code, err, "unknown family 'gopher'")


@pytest.mark.slow
def test_strict_fit_that_fails_diagnostics_exits_3_and_writes_nothing(tmp_path, capsys):
    data = tmp_path / "runs.csv"
    data.write_text(GOOD_LOSS)
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "fit", "kaplan-n", "--data", data, "--out", out, "--draws",
                           "20", "--tune", "20", "--chains", "2", "--strict")
    assert code == 3
    assert "failed convergence checks" in err and "ESS" in err
    assert not out.exists()
    # without --strict the same fit is written, and the failure is recorded
    code, _, err = run_cli(capsys, "fit", "kaplan-n", "--data", data, "--out", out, "--draws",
                           "20", "--tune", "20", "--chains", "2")
    assert code == 0
    assert "warning: fit of 'kaplan-n' failed convergence checks" in err
    diag = json.loads((out / "diagnostics.json").read_text())
    assert diag["passed"] is False and diag["failures"]


@pytest.mark.slow
def test_compare_loss_law_forms_by_psis_loo(tmp_path, chinchilla_run_dir, capsys):
    import warnings

    from bayescale import fit, write_run
    from bayescale.cli import main
    from bayescale.errors import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        kaplan = fit("kaplan-n", "chinchilla", draws=300, tune=400, chains=2, seed=1)
    write_run(kaplan, tmp_path / "kaplan")
    assert main(["compare", str(chinchilla_run_dir), str(tmp_path / "kaplan"),
                 "--out", str(tmp_path / "loo.csv")]) == 0
    table = pd.read_csv(tmp_path / "loo.csv", index_col=0)
    assert set(table.index) == {"chinchilla", "kaplan"}
    # L(N, D) explains the runs far better than L(N) alone
    assert table.index[0] == "chinchilla" and table.loc["kaplan", "elpd_diff"] < -50
    from bayescale import datasets

    half = tmp_path / "half"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        write_run(fit("chinchilla", datasets.load("chinchilla").table.iloc[::2], draws=100,
                      tune=200, chains=2, seed=1), half)
    assert main(["compare", str(chinchilla_run_dir), str(half)]) == 1
    assert "other data" in capsys.readouterr().err
