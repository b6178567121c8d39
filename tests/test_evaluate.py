"""Backtests and calibration metrics."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayescale import evaluate
from bayescale.errors import ConvergenceWarning, DataError

sys.path.insert(0, str(Path(__file__).parent))
from test_skills import simulated_table, small_spec  # noqa: E402

SLOTH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sloth"


def test_crps_matches_closed_form_for_normal():
    rng = np.random.default_rng(0)
    draws = rng.normal(0, 1, (20000, 1))
    obs = np.array([0.7])
    # CRPS of N(0,1) at y: y(2Phi(y)-1) + 2phi(y) - 1/sqrt(pi)
    from scipy import stats

    exact = obs * (2 * stats.norm.cdf(obs) - 1) + 2 * stats.norm.pdf(obs) - 1 / np.sqrt(np.pi)
    assert evaluate.crps_samples(draws, obs)[0] == pytest.approx(exact[0], abs=0.01)


def _fake_predictions(n=400, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    truth_mu = rng.uniform(0.3, 0.7, n)
    draws = truth_mu + rng.normal(0, 0.05 * scale, (2000, n))
    observed = np.round(truth_mu + rng.normal(0, 0.05, n), 2)

    class D:
        pass

    des = D()
    des.models = pd.DataFrame({"model": [f"m{i % 40}" for i in range(n)],
                               "family": [f"f{i % 8}" for i in range(n)],
                               "subfamily": [f"f{i % 8}" for i in range(n)],
                               "params": 1e9, "tokens": 1e12, "instruct": 0.0})
    des.cell_model = np.arange(n)
    des.cell_bench = np.arange(n) % 3
    des.benchmarks = ["A", "B", "C"]
    des.y = observed
    des.models = pd.concat([des.models] * 1, ignore_index=True)
    fold = evaluate.Fold(name="f", test_models=[], group="g")
    return evaluate.prediction_table(des, np.arange(n), draws, draws, fold)


def test_metrics_of_calibrated_predictions():
    m = evaluate.metrics(_fake_predictions())
    assert set(m["coverage"]) == {"0.5", "0.8", "0.9", "0.95"}
    assert m["coverage"]["0.9"] == pytest.approx(0.9, abs=0.05)
    assert m["coverage"]["0.5"] == pytest.approx(0.5, abs=0.08)
    assert m["coverage_rounded"]["0.9"] >= m["coverage"]["0.9"] - 0.02
    # closed intervals on a 0.01 grid hold more than their level; calibrated draws hit it
    expected = m["coverage_rounded_expected"]
    assert expected["0.5"] > 0.52 and expected["0.9"] > 0.9
    assert m["coverage_rounded"]["0.5"] == pytest.approx(expected["0.5"], abs=0.07)
    assert m["mae_pp"] == pytest.approx(4.0, abs=0.8)  # E|N(0, 0.05)| = 4 pp
    assert m["n_cells"] == 400 and m["n_benchmarks"] == 3
    assert m["mean_interval_width_90_pp"] == pytest.approx(2 * 1.645 * 5, rel=0.1)


def test_overconfident_predictions_undercover():
    m = evaluate.metrics(_fake_predictions(scale=0.3))
    assert m["coverage"]["0.9"] < 0.5


def test_write_backtest_is_atomic(tmp_path):
    preds = _fake_predictions(n=30)
    out = evaluate.write_backtest(tmp_path / "bt", preds, {"mae_pp": 1.0})
    assert json.loads((out / "metrics.json").read_text())["mae_pp"] == 1.0
    assert len(pd.read_csv(out / "predictions.csv")) == 30
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_flops_cutoff_and_largest_per_family_split():
    table = simulated_table()
    uni, folds = evaluate.flops_cutoff(table, cutoff=6 * 5e9 * 1e12)
    assert len(folds) == 1 and folds[0].test_models
    models = uni.drop_duplicates("model").set_index("model")
    flops = 6 * models["params"] * models["tokens"]
    assert set(folds[0].test_models) == set(flops.index[flops >= 3e22])
    uni, folds = evaluate.largest_per_family(table)
    assert len(folds[0].test_models) == table["family"].nunique()
    with pytest.raises(DataError, match="no training or no test"):
        evaluate.flops_cutoff(table, cutoff=1.0)


def test_leave_family_out_keeps_smallest():
    table = simulated_table(missing=0.0)
    groups = {"benchmarks": {"v1": ["MMLU", "GSM8K", "ARC", "HellaSwag"]},
              "groups": {"1": {"v1": [["fam0", "fam0-chat"], ["fam1"]]}}}
    uni, folds = evaluate.leave_family_out(table, groups, experiment="v1", keep_smallest=1)
    # fam0-chat has a single model: its sub-family is dropped (needs n_train + 1 = 2)
    assert "fam0-chat" not in set(uni["subfamily"])
    assert folds[0].test_models == ["fam0-1", "fam0-2"]
    assert folds[1].test_models == ["fam1-1", "fam1-2"]
    with pytest.raises(DataError, match="no entry"):
        evaluate.leave_family_out(table, groups, experiment="v2", keep_smallest=1)


@pytest.mark.shared_data
def test_sloth_protocol_sizes():
    """Test sizes of the Sloth protocol at n = 1 (PROTOCOL.md): 60 / 37 / 27 models."""
    from bayescale import datasets

    groups = json.loads((SLOTH / "test_groups.json").read_text())
    table = datasets.load("open-llm-leaderboard").table
    sizes = {}
    for exp in ("v1", "v2", "v1v2"):
        _, folds = evaluate.leave_family_out(table, groups, experiment=exp, keep_smallest=1)
        sizes[exp] = (len(folds), sum(len(f.test_models) for f in folds))
    assert sizes == {"v1": (19, 60), "v2": (12, 37), "v1v2": (11, 27)}


@pytest.mark.slow
def test_small_backtest_end_to_end(tmp_path):
    table = simulated_table(missing=0.0)
    m = evaluate.backtest(small_spec(), table, protocol="largest-per-family",
                          out=tmp_path / "bt", draws=150, tune=200, chains=2, seed=1)
    assert m["n_cells"] == 6 * 4 and m["n_folds"] == 1
    assert 0 <= m["coverage"]["0.9"] <= 1 and m["mae_pp"] < 15
    (fold,) = m["folds"].values()
    assert fold["worst_r_hat"] and fold["worst_ess_bulk"]  # named, see the test below
    assert (tmp_path / "bt" / "predictions.csv").exists()
    preds = pd.read_csv(tmp_path / "bt" / "predictions.csv")
    assert {"model", "family", "benchmark", "observed", "mean", "q0.05", "q0.95"} <= set(
        preds.columns)


def _offset_chain_tree():
    """Four chains in which one chain of ``b[y]`` sits elsewhere; ``fixed`` never moves."""
    import xarray as xr

    rng = np.random.default_rng(0)
    good = rng.normal(size=(4, 300, 2))
    bad = good.copy()
    bad[0, :, 1] += 3.0  # one chain of b[y] elsewhere
    dims = ("chain", "draw", "k")
    post = xr.Dataset({"a": (dims, good), "b": (dims, bad),
                       "fixed": (("chain", "draw"), np.ones((4, 300)))},
                      coords={"k": ["x", "y"]})
    diverging = np.zeros((4, 300), dtype=bool)
    diverging[2, :3] = True
    stats = xr.Dataset({"diverging": (("chain", "draw"), diverging)})
    return xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})


def test_fold_diagnostics_name_the_worst_elements():
    diag = evaluate.fold_diagnostics(_offset_chain_tree())
    assert diag["worst_r_hat"] == "b[y]" and diag["max_r_hat"] > 1.3
    assert diag["worst_ess_bulk"] == "b[y]" and diag["min_ess_bulk"] < 100
    assert diag["divergences"] == 3


def test_a_chain_diverging_on_most_draws_is_stuck():
    import xarray as xr

    diverging = np.zeros((4, 100), dtype=bool)
    diverging[1, :51] = True   # just over half: stuck
    diverging[3, :50] = True   # exactly half: not stuck
    diverging[0, ::10] = True  # scattered divergences: not stuck
    stats = xr.Dataset({"diverging": (("chain", "draw"), diverging)})
    tree = xr.DataTree.from_dict({"sample_stats": stats})
    assert evaluate.stuck_chains(tree) == [1]


def test_fit_diagnostics_skip_never_varying_variables_like_the_folds():
    from bayescale.sample import compute_diagnostics

    diag = compute_diagnostics(_offset_chain_tree(), sampler="mock", wall_seconds=0.0, tune=0)
    # the constant variable has NaN r-hat everywhere and must not win the maximum
    assert np.isfinite(diag.max_r_hat) and diag.max_r_hat > 1.3
    assert diag.worst["r_hat"] == "b[y]" and diag.worst["ess_bulk"] == "b[y]"
    assert diag.divergences == 3 and not diag.passed


def test_cli_backtest_user_errors(tmp_path, capsys):
    from bayescale.cli import main

    status = main(["backtest", "skills", "--data", "open-llm-leaderboard",
                   "--protocol", "leave-family-out", "--out", str(tmp_path / "bt")])
    assert status == 1
    assert "needs --groups" in capsys.readouterr().err
    assert not (tmp_path / "bt").exists()
    status = main(["backtest", "chinchilla", "--data", "open-llm-leaderboard",
                   "--protocol", "largest-per-family", "--out", str(tmp_path / "bt")])
    assert status == 1
    assert "skills models" in capsys.readouterr().err


def test_point_prediction_is_the_predictive_median():
    preds = _fake_predictions()
    # move the mean away from the median: the MAE must follow the median (q0.5)
    m = evaluate.metrics(preds.assign(mean=preds["mean"] + 0.2))
    assert m["mae_pp"] == pytest.approx(evaluate.metrics(preds)["mae_pp"])
    assert m["mae_pp_mean"] > m["mae_pp"] + 10
    assert m["rmse_pp"] > evaluate.metrics(preds)["rmse_pp"] + 10


@pytest.mark.parametrize("text, expected", [
    ("d=2", {"d": 2}),
    ("d=3, family_slope=false", {"d": 3, "family_slope": False}),
    ("clip=0.01,instruct=True", {"clip": 0.01, "instruct": True}),
])
def test_parse_variant(text, expected):
    assert evaluate.parse_variant(text) == expected
    assert evaluate.parse_variant(evaluate.variant_label(expected)) == expected


@pytest.mark.parametrize("text", ["d", "=2", "d=two", ""])
def test_parse_variant_rejects_bad_text(text):
    with pytest.raises(DataError, match="--variant|variant"):
        evaluate.parse_variant(text)


@pytest.mark.parametrize("setting, message", [
    ("d=two", "--set"), ("d=9", "d must be an integer from 1 to"),
    ("colour=1", "unknown [skills] key(s) colour")])
def test_cli_backtest_rejects_a_bad_set_before_fitting(setting, message, tmp_path, capsys):
    from bayescale.cli import main

    data = tmp_path / "evals.csv"
    simulated_table(missing=0.0).to_csv(data, index=False)
    status = main(["backtest", "skills", "--data", str(data), "--protocol",
                   "largest-per-family", "--out", str(tmp_path / "bt"), "--set", setting])
    err = capsys.readouterr().err
    assert status == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "bt").exists()


def test_selection_table_drops_every_held_out_cell():
    table = simulated_table()
    folds = [evaluate.Fold(name="a", test_models=["fam0-2", "fam0-3"]),
             evaluate.Fold(name="b", test_models=["fam1-3"], test_benchmarks=["GSM8K"])]
    sel = evaluate.selection_table(table, folds)
    assert not sel["model"].isin(["fam0-2", "fam0-3"]).any()
    fam1 = sel[sel["model"] == "fam1-3"]
    assert len(fam1) and "GSM8K" not in set(fam1["benchmark"])
    assert len(sel) == len(table) - (table["model"].isin(["fam0-2", "fam0-3"]).sum()
                                     + ((table["model"] == "fam1-3")
                                        & (table["benchmark"] == "GSM8K")).sum())


def test_choose_variant_skips_fits_that_did_not_mix():
    table = pd.DataFrame({"rank": [1, 0, 2], "elpd": [-10.0, -3.0, -20.0],
                          "max_r_hat": [1.03, 1.55, 1.02]}, index=["d=4", "d=5", "d=3"])
    assert evaluate.choose_variant(table) == "d=4"
    assert evaluate.choose_variant(table, max_r_hat=2.0) == "d=5"
    table["max_r_hat"] = 1.3
    with pytest.warns(ConvergenceWarning, match="no variant's fit mixed"):
        assert evaluate.choose_variant(table) == "d=5"


@pytest.mark.slow
def test_cli_backtest_chooses_a_variant_and_says_which(tmp_path, capsys):
    from bayescale.cli import main

    data = tmp_path / "evals.csv"
    simulated_table(missing=0.0).to_csv(data, index=False)
    status = main(["backtest", "skills", "--data", str(data), "--protocol",
                   "largest-per-family", "--out", str(tmp_path / "bt"), "--variant", "d=1",
                   "--variant", "d=2", "--set", "family_slope=false", "--draws", "40",
                   "--tune", "60", "--chains", "2", "--workers", "1", "--seed", "2"])
    assert status == 0
    selection = pd.read_csv(tmp_path / "bt" / "selection.csv", index_col="variant")
    assert sorted(selection.index) == ["d=1", "d=2"] and selection["chosen"].sum() == 1
    chosen = selection.index[selection["chosen"]][0]
    out = capsys.readouterr().out
    assert f"on the training data: {chosen}" in out
    assert re.search(r"worst fold r-hat [0-9.]+ \(fold \S+, \w+(\[|\))", out), out
    metrics = json.loads((tmp_path / "bt" / "metrics.json").read_text())
    assert f"d={metrics['variant']['d']}" == chosen
    assert metrics["variant"]["family_slope"] is False  # --set: every candidate has it
    assert [row["variant"] for row in metrics["selection"] if row["chosen"]] == [chosen]
