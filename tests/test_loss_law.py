"""Real NUTS fits of the loss-law kind (second tier: slow but run in CI)."""

import json

import numpy as np
import pandas as pd
import pytest

from bayescale import fit, load_run, optimal_allocation, predict
from bayescale.errors import DataError
from bayescale.posterior import Posterior
from bayescale.prediction import QUANTILES

pytestmark = pytest.mark.slow

# Besiroglu et al. (2024) bootstrap 95% intervals for the 240-point refit.
EPOCH_95 = {"E": (1.769, 1.871), "A": (285, 744), "B": (1042, 5810), "alpha": (0.317, 0.373),
            "beta": (0.331, 0.415)}


def test_summary_has_exactly_the_chinchilla_parameter_names(chinchilla_posterior):
    summary = chinchilla_posterior.summary()
    assert list(summary["name"]) == ["E", "A", "B", "alpha", "beta", "sigma", "nu"]
    assert list(summary.columns) == ["name", "mean", "sd", "q2.5", "q50", "q97.5", "r_hat",
                                     "ess_bulk", "ess_tail"]


def test_chinchilla_medians_inside_epoch_intervals(chinchilla_posterior):
    summary = chinchilla_posterior.summary().set_index("name")
    for name, (lo, hi) in EPOCH_95.items():
        assert lo <= summary.loc[name, "q50"] <= hi, name
    assert len(chinchilla_posterior.fit_table) == 240
    assert len(chinchilla_posterior.excluded_table) == 5


def test_chinchilla_diagnostics_recorded(chinchilla_posterior):
    diag = chinchilla_posterior.diagnostics
    assert diag.sampler == "nutpie"
    assert diag.chains == 2 and diag.draws == 600
    assert diag.max_r_hat < 1.05
    assert diag.divergences == 0
    assert diag.wall_seconds > diag.sampling_seconds > 0
    # where the wall time went: compilation and sampling are parts of it
    assert diag.compile_seconds > 0
    assert diag.compile_seconds + diag.sampling_seconds < diag.wall_seconds
    assert "compile" in diag.describe()


def test_tokens_per_parameter_at_chinchilla_compute(chinchilla_posterior):
    table = optimal_allocation(chinchilla_posterior, [5.88e23]).set_index("quantity")
    ratio = table.loc["tokens_per_param"]
    assert 12 <= ratio["median"] <= 30
    assert ratio["lower"] < ratio["median"] < ratio["upper"]
    n_opt = table.loc["params"]
    # N* D* = C / 6 at every draw, so the medians multiply back to the budget
    assert n_opt["median"] * table.loc["tokens", "median"] == pytest.approx(5.88e23 / 6, rel=0.05)


def test_predict_contract_and_interval_order(chinchilla_posterior):
    rows = pd.DataFrame({"params": [7e10, 1e9], "tokens": [1.4e12, 2e10]})
    out = predict(chinchilla_posterior, rows)
    quantile_cols = [f"q{q:g}" for q in QUANTILES]
    assert list(out.columns) == (["params", "tokens", "flops", "mean", "sd"] + quantile_cols
                                 + ["mu_mean", "mu_sd"] + [f"mu_{c}" for c in quantile_cols])
    values = out[quantile_cols].to_numpy()
    assert np.all(np.diff(values, axis=1) >= 0)
    # the new-observation interval contains the mean-curve interval
    assert np.all(out["q0.025"] <= out["mu_q0.025"])
    assert np.all(out["q0.975"] >= out["mu_q0.975"])
    # a 70B model on 1.4T tokens: Chinchilla's own loss (~1.94) is inside the 95% interval
    assert out.loc[0, "q0.025"] < 2.0 and out.loc[0, "q0.975"] > 1.9


def test_save_load_round_trip(tmp_path, chinchilla_posterior):
    path = chinchilla_posterior.save(tmp_path / "posterior.nc")
    again = Posterior.load(path)
    assert again.spec.config_id == chinchilla_posterior.spec.config_id
    np.testing.assert_array_equal(again.posterior["alpha"].values,
                                  chinchilla_posterior.posterior["alpha"].values)
    pd.testing.assert_frame_equal(again.fit_table[["params", "tokens", "loss"]],
                                  chinchilla_posterior.fit_table[["params", "tokens", "loss"]])
    assert again.versions["pymc"] == chinchilla_posterior.versions["pymc"]
    assert again.seed == 1


def test_run_directory_contract(chinchilla_run_dir):
    assert sorted(p.name for p in chinchilla_run_dir.iterdir()) == [
        "diagnostics.json", "excluded.csv", "posterior.nc", "summary.csv"]
    diag = json.loads((chinchilla_run_dir / "diagnostics.json").read_text())
    for key in ("max_r_hat", "min_ess_bulk", "min_ess_tail", "divergences", "sampling_seconds",
                "wall_seconds"):
        assert key in diag
    assert load_run(chinchilla_run_dir).spec.name == "chinchilla"


@pytest.mark.filterwarnings("ignore::bayescale.errors.ConvergenceWarning")
def test_same_seed_same_draws_different_seed_different():
    design = pd.DataFrame({"params": np.geomspace(1e7, 1e9, 12)})
    design["tokens"] = 20 * design["params"]
    design["loss"] = 1.8 + 400 / design["params"] ** 0.34 + 0.002 * np.sin(np.arange(12))
    runs = [fit("kaplan-n", design, draws=100, tune=200, chains=2, seed=s) for s in (5, 5, 6)]
    a, b, c = (r.posterior["alpha"].values for r in runs)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_hierarchical_pools_family_exponents(hierarchical_posterior):
    post = hierarchical_posterior.posterior
    families = hierarchical_posterior.families
    assert len(families) == 3
    assert post["alpha"].dims == ("chain", "draw", "family")
    assert "alpha_pop" in post and "alpha_sd" in post
    names = list(hierarchical_posterior.summary()["name"])
    assert [f"alpha[{f}]" for f in families] == [n for n in names if n.startswith("alpha[")]


def test_unseen_family_prediction_is_wider(hierarchical_posterior):
    known = hierarchical_posterior.families[0]
    rows = pd.DataFrame({"family": [known, "brand-new"], "params": [4e8, 4e8],
                         "tokens": [8e9, 8e9]})
    out = predict(hierarchical_posterior, rows)
    width = out["mu_q0.95"] - out["mu_q0.05"]
    assert width[1] > 2 * width[0]


def test_optimal_for_unknown_family_is_a_clear_error(hierarchical_posterior):
    with pytest.raises(DataError, match="unknown family 'nope'"):
        optimal_allocation(hierarchical_posterior, [1e21], family="nope")


@pytest.mark.filterwarnings("ignore::bayescale.errors.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("sampler", ["pymc", "numpyro"])
def test_other_samplers_are_selectable(sampler):
    design = pd.DataFrame({"params": np.geomspace(1e7, 1e9, 12)})
    design["tokens"] = 20 * design["params"]
    design["loss"] = 1.8 + 400 / design["params"] ** 0.34 + 0.002 * np.sin(np.arange(12))
    post = fit("kaplan-n", design, draws=50, tune=100, chains=2, seed=1, sampler=sampler)
    assert post.diagnostics.sampler == sampler
    assert post.posterior.sizes["draw"] == 50 and post.posterior.sizes["chain"] == 2
