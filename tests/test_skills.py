"""The latent-skills model kind: spec validation, design, maths, a small real NUTS fit."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from bayescale.errors import ConvergenceWarning, DataError, SpecError
from bayescale.kinds import get_kind, skills
from bayescale.spec import load_spec

BENCH = ["MMLU", "GSM8K", "ARC", "HellaSwag"]
CHANCE = {"MMLU": 0.25, "GSM8K": 0.0, "ARC": 0.25, "HellaSwag": 0.25}


def small_spec(**skill_opts):
    # simulated_table's law is anchored on MMLU (skill 1) and GSM8K (skill 2)
    opts = {"d": 2, "model_effect": False, "anchors": list(BENCH)}
    opts.update(skill_opts)
    return load_spec("skills").with_overrides(skills=opts)


def simulated_table(seed=0, n_fam=6, per_fam=4, missing=0.1, ceiling=None, intercepts=None):
    """A benchmark table from a known 2-skill law (sizes 0.1B-70B, tokens 0.3T-15T).

    ``ceiling`` maps benchmarks to their upper asymptote (1 for the others);
    ``intercepts`` overrides benchmark intercepts.
    """
    rng = np.random.default_rng(seed)
    rows = []
    lam = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.3], [0.6, -0.2]])
    b = np.array([0.0, -1.0, 0.3, 0.5])
    for bench, value in (intercepts or {}).items():
        b[BENCH.index(bench)] = value
    for f in range(n_fam):
        a = rng.normal(0, 0.7, 2)
        tokens = 10 ** rng.uniform(11.5, 13)
        for k, params in enumerate(np.geomspace(1e8, 7e10, per_fam) * rng.uniform(0.8, 1.2)):
            x = np.log(params / 1e9)
            theta = np.array([0.6 * x, 0.8 * x]) + a
            for j, bench in enumerate(BENCH):
                if rng.uniform() < missing and bench not in ("MMLU", "GSM8K"):
                    continue
                c, top = CHANCE[bench], (ceiling or {}).get(bench, 1.0)
                mu = c + (top - c) / (1 + np.exp(-(lam[j] @ theta + b[j])))
                score = np.round(rng.beta(mu * 200, (1 - mu) * 200), 2)
                rows.append({"model": f"fam{f}-{k}", "family": f"fam{f}",
                             "subfamily": f"fam{f}" + ("-chat" if k == per_fam - 1 else ""),
                             "instruct": k == per_fam - 1, "params": params,
                             "tokens": tokens, "benchmark": bench, "score": score,
                             "n_items": pd.NA, "chance": c})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ spec
def test_shipped_spec_loads():
    spec = load_spec("skills")
    assert spec.kind == "skills"
    assert get_kind("skills") is skills.KIND
    assert 1 <= spec.skills["d"] <= skills.MAX_SKILLS
    # a spec without its own anchors gets the shipped spec's order
    assert list(skills.DEFAULT_ANCHORS) == spec.skills["anchors"]


@pytest.mark.parametrize("override, message", [
    ({"skills": {"d": 7}}, "d must be an integer from 1 to 6"),
    ({"skills": {"d": 2, "anchors": ["MMLU"]}}, "at least d = 2 anchors"),
    ({"skills": {"anchors": ["MMLU", "MMLU", "GSM8K", "ARC"]}}, "duplicates"),
    ({"skills": {"colour": 1}}, "unknown \\[skills\\]"),
    ({"likelihood": {"distribution": "normal"}}, "distribution must be one of"),
    ({"hierarchy": {"group": "none"}}, "group must be 'family'"),
])
def test_bad_specs_are_rejected(override, message):
    with pytest.raises(SpecError, match=message):
        load_spec("skills").with_overrides(**override)


def test_family_correlation_prior_must_be_lkj_and_lkj_only_there():
    from bayescale.spec import parse_spec

    raw = dict(load_spec("skills").raw)
    raw["priors"] = dict(raw["priors"], family_correlation={"dist": "HalfNormal", "sigma": 1})
    with pytest.raises(SpecError, match="'family_correlation' must be an LKJCorr"):
        parse_spec(raw)
    raw["priors"] = dict(load_spec("skills").raw["priors"], B={"dist": "LKJCorr", "eta": 2})
    with pytest.raises(SpecError, match="prior 'B': LKJCorr is a distribution of correlation"):
        parse_spec(raw)
    # d = 1 has no correlation to model: the switch is ignored, the prior not required
    one = load_spec("skills").with_overrides(skills={"d": 1})
    assert "family_correlation" not in skills.required_priors(one)


def test_unseen_family_draws_correlated_intercepts():
    """A new family's intercepts are drawn with covariance diag(sigma) R diag(sigma)."""
    import pymc as pm
    import xarray as xr

    table = simulated_table()
    spec = small_spec(family_slope=False)
    des = skills.make_design(spec, table)
    model = skills.KIND.build(spec, table)
    n = 4000
    with model:
        prior = pm.sample_prior_predictive(draws=n, random_seed=0).prior
    sigma, r = np.array([0.5, 1.5]), 0.8
    post = xr.Dataset({
        name: prior[name] for name in ("B", "a_family", "loadings", "intercept", "phi",
                                       "sub_offset", "tau_sub", "delta")})
    post["B"] = post["B"] * 0.0
    post["sigma_family"] = (("chain", "draw", "skill"), np.broadcast_to(sigma, (1, n, 2)))
    post["family_corr"] = (("chain", "draw", "skill", "skill_other"),
                           np.broadcast_to([[1.0, r], [r, 1.0]], (1, n, 2, 2)))
    rows = pd.DataFrame({"model": ["new-7b", "new-7b"], "family": ["new", "new"],
                         "params": [7e9, 7e9], "tokens": [2e12, 2e12],
                         "benchmark": ["MMLU", "GSM8K"]})
    mu = skills.predict_mean(spec, des, post, rows, seed=3).reshape(n, 2)
    chance = np.array([CHANCE["MMLU"], CHANCE["GSM8K"]])
    above = (mu - chance) / (1 - chance)
    intercepts = post["intercept"].sel(benchmark=["MMLU", "GSM8K"]).values.reshape(n, 2)
    skill = np.log(above / (1 - above)) - intercepts  # the anchors load 1 on their skill
    assert np.allclose(skill.std(axis=0), sigma, rtol=0.06)
    assert abs(np.corrcoef(skill.T)[0, 1] - r) < 0.03


def test_missing_prior_is_rejected():
    raw = dict(load_spec("skills").raw)
    raw["priors"] = {k: v for k, v in raw["priors"].items() if k != "B"}
    from bayescale.spec import parse_spec

    with pytest.raises(SpecError, match="lacks B"):
        parse_spec(raw)


# ------------------------------------------------------------------ design and maths
def test_marker_identification_of_loadings():
    rows, cols, anchor_rows, labels = skills.loading_structure(
        ["ARC", "GSM8K", "HellaSwag", "MMLU"], ["MMLU", "GSM8K"], 2)
    assert list(anchor_rows) == [3, 1]
    # anchors have no free loading: their row of the loading matrix is a unit vector
    assert not set(rows) & {1, 3}
    assert labels == ["ARC:0", "ARC:1", "HellaSwag:0", "HellaSwag:1"]


def test_design_counts_observed_cells_and_standardises():
    table = simulated_table(missing=0.3)
    table.loc[0, "score"] = np.nan
    spec = small_spec()
    des = skills.make_design(spec, table)
    assert des.n_cells == int(table["score"].notna().sum())
    assert np.allclose(des.x.mean(axis=0), 0, atol=1e-9)
    assert des.anchors == ["MMLU", "GSM8K"]
    assert des.y.min() >= 0.005 and des.y.max() <= 0.995
    assert len(des.subfamilies) == 12


@pytest.mark.parametrize(("ceiling", "instruct_benchmark", "no_ceiling"),
                         [(False, False, []), (True, False, []), (True, True, []),
                          (True, True, [BENCH[2]])])
def test_numpy_and_pytensor_means_agree(ceiling, instruct_benchmark, no_ceiling):
    table = simulated_table()
    spec = small_spec(family_slope=True, ceiling=ceiling,
                      instruct_benchmark=instruct_benchmark, no_ceiling=no_ceiling)
    model = skills.KIND.build(spec, table)
    des = skills.make_design(spec, table)
    rng = np.random.default_rng(3)
    point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in model.initial_point().items()}
    names = ["loadings", "B", "a_family", "sub_offset", "slope_offset", "delta", "intercept"]
    if ceiling:
        names.append("ceiling")
    if instruct_benchmark:
        names.append("instruct_excess")
    outs = model.replace_rvs_by_values([model[name] for name in names])
    cell_loglik = model.logp(vars=[model["score"]], sum=False)[0]
    f = model.compile_fn([cell_loglik, *outs], inputs=model.value_vars,
                         on_unused_input="ignore")
    loglik, lam, B, a, sub, slope, delta, b, *rest = f(point)
    phi = np.exp(point["phi_log__"])[des.cell_bench]
    p = {"B": B[None], "a_family": a[None], "sub_offset": sub[None],
         "slope_offset": slope[None], "delta": delta[None]}
    instruct = des.models["instruct"].to_numpy(float)
    theta = skills.linear_predictor(p, des.x, des.family_idx, des.sub_idx, instruct, np)
    top = rest[0][None] if ceiling else None
    excess = rest[-1][None] if instruct_benchmark else None
    mu = skills.cell_mean(theta, lam[None], b[None], des.chance, des.cell_model,
                          des.cell_bench, np, ceiling=top, instruct=instruct,
                          instruct_excess=excess)[0]
    if instruct_benchmark:
        # the anchors' instruct shift is delta's: their own excess is fixed at 0, the
        # free benchmarks' is free
        anchor_rows = [des.benchmarks.index(a) for a in des.anchors]
        free_rows = [j for j in range(len(des.benchmarks)) if j not in anchor_rows]
        assert np.all(rest[-1][anchor_rows] == 0)
        assert np.all(rest[-1][free_rows] != 0)
        assert 0 < instruct.sum() < len(instruct)
    # the fit model's per-cell log likelihood is the censored Beta at these means
    expected = skills.censored_beta_logp(des.y, mu, phi, 0.005)
    assert np.allclose(loglik, expected, rtol=1e-6)
    assert np.all(mu >= des.chance[des.cell_bench])
    if ceiling:
        # the ceiling is u = c + (1 - c) f with f in (0, 1), and no mean goes above it
        learned = [des.benchmarks.index(b) for b in des.benchmarks if b not in no_ceiling]
        fixed = [des.benchmarks.index(b) for b in no_ceiling]
        frac = 1 / (1 + np.exp(-point["ceiling_frac_logodds__"]))
        assert frac.shape == (len(learned),)
        assert np.allclose(rest[0][learned],
                           des.chance[learned] + (1 - des.chance[learned]) * frac)
        # a benchmark in no_ceiling keeps the upper asymptote 1
        assert np.all(rest[0][fixed] == 1)
        assert np.all(mu <= rest[0][des.cell_bench]) and np.all(rest[0][learned] < 1)


def test_instruct_off_switches_off_both_instruct_shifts():
    table = simulated_table()
    on = skills.KIND.build(small_spec(instruct_benchmark=True), table)
    assert {"delta", "instruct_excess"} <= set(on.named_vars)
    # the shipped spec has instruct_benchmark on; instruct = false means no shift at all
    off = skills.KIND.build(small_spec(instruct=False), table)
    assert not {"delta", "instruct_excess", "instruct_excess_free"} & set(off.named_vars)
    # every benchmark an anchor: no free shift, but the (zero) shift the summary lists
    spec = small_spec(d=len(BENCH), instruct_benchmark=True)
    all_anchors = skills.KIND.build(spec, table)
    assert "instruct_excess_free" not in all_anchors.named_vars
    assert "instruct_excess" in skills.KIND.summary_var_names(spec)
    assert np.all(all_anchors["instruct_excess"].eval() == 0)


def test_ceiling_prior_must_be_a_beta_and_the_switch_a_bool():
    from bayescale.spec import parse_spec

    raw = dict(load_spec("skills").raw)
    raw["skills"] = dict(raw["skills"], ceiling=True)
    raw["priors"] = dict(raw["priors"], ceiling={"dist": "HalfNormal", "sigma": 1})
    with pytest.raises(SpecError, match="prior 'ceiling' must be a Beta"):
        parse_spec(raw)
    raw["priors"] = {k: v for k, v in raw["priors"].items() if k != "ceiling"}
    with pytest.raises(SpecError, match="lacks ceiling"):
        parse_spec(raw)
    with pytest.raises(SpecError, match="ceiling must be true or false"):
        load_spec("skills").with_overrides(skills={"ceiling": 1})
    on = load_spec("skills").with_overrides(skills={"ceiling": True})
    assert "ceiling" in skills.required_priors(on)
    assert "ceiling" in skills.KIND.summary_var_names(on)


def test_base_lineage_of_each_family():
    models = pd.DataFrame({
        "family": ["a", "a", "a", "b", "b", "b", "c"],
        "subfamily": ["a", "a-chat", "a-chat", "b-chat", "b-v2", "b-v2", "c-it"],
        "instruct": [0, 1, 1, 1, 0, 0, 1],
    })
    # named like the family; else the most base models; a lone lineage is the base
    assert skills.base_subfamilies(models) == {"a", "b-v2", "c-it"}


def test_base_lineages_have_no_offset_and_families_sum_to_zero():
    table = simulated_table()
    spec = small_spec()
    des = skills.make_design(spec, table)
    assert des.derived == sorted(s for s in des.subfamilies if s.endswith("-chat"))
    model = skills.KIND.build(spec, table)
    rng = np.random.default_rng(0)
    point = {k: v + rng.normal(0, 0.5, np.shape(v)) for k, v in model.initial_point().items()}
    outs = model.replace_rvs_by_values([model["sub_offset"], model["a_family"],
                                        model["delta"]])
    f = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")
    sub, a, delta = f(point)
    base = [des.subfamilies.index(s) for s in des.subfamilies if s not in des.derived]
    assert np.all(sub[base] == 0) and np.any(sub != 0)
    assert np.allclose(a.sum(axis=0), 0, atol=1e-9)
    # an instruct lineage's total shift delta + offset is the sampled (centred) variable
    shift = point["sub_shift"]
    derived = [des.subfamilies.index(s) for s in des.derived]
    assert np.allclose(sub[derived] + delta[None, :], shift)


def test_beta_logp_matches_scipy():
    from scipy import stats

    y, mu, phi = np.array([0.3, 0.7]), np.array([0.4, 0.6]), np.array([50.0, 9.0])
    expected = stats.beta(mu * phi, (1 - mu) * phi).logpdf(y)
    assert np.allclose(skills.beta_logp(y, mu, phi), expected)


def test_censored_beta_likelihood_at_the_clip_matches_scipy_in_numpy_and_pytensor():
    import pytensor
    import pytensor.tensor as pt
    from scipy import stats

    clip = 0.005
    y = np.array([clip, 0.3, 1 - clip, clip])
    # cells 0 and 3 share benchmark 0's precision
    bench, phi_bench = np.array([0, 1, 2, 0]), np.array([60.0, 50.0, 9.0])
    mu, phi = np.array([0.02, 0.4, 0.97, 0.3]), phi_bench[bench]
    a, b = mu * phi, (1 - mu) * phi
    expected = np.array([stats.beta(a[0], b[0]).logcdf(clip),
                         stats.beta(a[1], b[1]).logpdf(0.3),
                         stats.beta(a[2], b[2]).logsf(1 - clip),
                         stats.beta(a[3], b[3]).logcdf(clip)])
    assert np.allclose(skills.censored_beta_logp(y, mu, phi, clip), expected)
    v, m, p, j = pt.dvector(), pt.dvector(), pt.dvector(), pt.lvector()
    fn = pytensor.function([v, m, p, j], skills.censored_beta_logp_pt(v, m, p, j, clip))
    assert np.allclose(fn(y, mu, phi_bench, bench), expected)
    # no censored cell: the plain density
    inner = np.array([0.3, 0.5])
    assert np.allclose(fn(inner, mu[:2], phi_bench, bench[:2]),
                       skills.beta_logp(inner, mu[:2], phi[:2]))


def test_simulated_scores_are_censored_like_the_stored_ones():
    """Prior predictive scores below the clip are set to it: the likelihood's censoring."""
    import pymc as pm

    spec = small_spec()
    model = skills.KIND.build(spec, simulated_table())
    with model:
        prior = pm.sample_prior_predictive(draws=20, random_seed=1, var_names=["score"])
    scores = prior["prior_predictive"].dataset["score"].values
    assert scores.min() >= 0.005 and scores.max() <= 0.995
    assert np.any(scores == 0.005)


def test_check_data_errors():
    spec = small_spec()
    table = simulated_table()
    strict = small_spec(anchors=["MMLU", "GSM8K"])
    with pytest.raises(DataError, match="anchor benchmarks"):
        skills.KIND.check_data(strict, table[table["benchmark"] != "GSM8K"], "t")
    # with the default preference list another benchmark becomes the second anchor
    skills.KIND.check_data(spec, table[table["benchmark"] != "GSM8K"], "t")
    bad = table.copy()
    bad.loc[0, "tokens"] = np.nan
    with pytest.raises(DataError, match="lack positive params/tokens"):
        skills.KIND.check_data(spec, bad, "t")
    bad = table.copy()
    bad.loc[0, "score"] = 1.5
    with pytest.raises(DataError, match="accuracies"):
        skills.KIND.check_data(spec, bad, "t")
    skills.KIND.check_data(spec, table, "t")


def test_build_has_named_coords_and_masked_variant():
    table = simulated_table(missing=0.2)
    spec = small_spec()
    model = skills.KIND.build(spec, table)
    assert model.coords["skill"] == ("skill1", "skill2")
    assert len(model.coords["cell"]) == len(table)
    masked, des = skills.KIND.build_masked(spec, table)
    assert masked["train_mask"].get_value().shape == (des.n_cells,)
    assert set(skills.KIND.summary_var_names(spec)) <= set(model.named_vars)


def test_map_start_is_finite_and_floors_scales():
    table = simulated_table()
    spec = small_spec()
    model = skills.KIND.build(spec, table)
    start = skills.map_start(model, n_starts=1, maxiter=200)
    assert set(start) == {rv.name for rv in model.free_RVs}
    assert np.all(start["tau_sub"] >= 0.05)
    assert all(np.all(np.isfinite(v)) for v in start.values())


def test_map_optimisation_that_leaves_the_finite_region_is_replaced():
    table = simulated_table()
    model = skills.KIND.build(small_spec(), table)
    starter = skills.MapStarter(model)
    negative = starter._negative
    first_start = starter._base + np.random.default_rng(3).uniform(-1, 1, starter._base.shape)
    evaluated = []

    def first_start_fails(x):
        evaluated.append(np.array(x))
        if len(evaluated) == 1:  # aborts the first optimisation
            raise ValueError("non-finite log density")
        return negative(x)

    starter._negative = first_start_fails
    flat = starter.flat(seed=3, n_starts=1, maxiter=200)
    assert np.allclose(evaluated[0], first_start) and len(evaluated) > 1
    assert np.all(np.isfinite(flat)) and len(starter.optima) == 1
    starter._negative = lambda x: (np.inf, np.zeros_like(x))
    with pytest.raises(DataError, match="no MAP optimisation of 4"):
        starter.flat(seed=3, n_starts=1, maxiter=20)


# ------------------------------------------------------------------ a real fit
@pytest.fixture(scope="module")
def skills_posterior():
    from bayescale.fitting import fit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit(small_spec(), simulated_table(), draws=400, tune=400, chains=2, seed=4)


@pytest.mark.slow
def test_small_fit_recovers_and_predicts(skills_posterior):
    post = skills_posterior
    # a tiny data set (6 families): sigma_family mixes slowly; this checks the pipeline
    assert post.diagnostics.max_r_hat < 1.2
    # the pilot that chose the start is recorded: one mean log density per chain
    assert len(post.diagnostics.pilot_logp) == 2 and post.diagnostics.pilot_logp_sd > 0
    # and its time, apart from compilation and sampling, within the fit's wall time
    diag = post.diagnostics
    assert diag.start_seconds > 0 and diag.compile_seconds > 0
    assert diag.compile_seconds + diag.start_seconds + diag.sampling_seconds < diag.wall_seconds
    lam = post.posterior["loadings"].sel(benchmark="ARC", skill="skill1").values
    assert 0.3 < np.median(lam) < 1.5  # truth 0.8
    rows = pd.DataFrame({
        "model": ["fam0-new", "fam0-new", "stranger-7b"],
        "family": ["fam0", "fam0", "stranger"],
        "params": [1.2e11, 1.2e11, 7e9], "tokens": [2e12, 2e12, 2e12],
        "benchmark": ["MMLU", "ARC", "MMLU"],
    })
    draws = skills.KIND.predict(post, rows, seed=1)
    assert draws["mu"].dims == ("chain", "draw", "row")
    assert draws["y"].shape == draws["mu"].shape
    assert float(draws["mu"].min()) >= 0.25 - 1e-9 and float(draws["y"].max()) <= 1
    width = draws["y"].quantile(0.95, ("chain", "draw")) - draws["y"].quantile(
        0.05, ("chain", "draw"))
    # an unseen family is less certain than a known one at a similar size
    assert float(width[2]) > 0.5 * float(width[0])
    with pytest.raises(DataError, match="not in the fit"):
        skills.KIND.predict(post, rows.assign(benchmark="BBH"), seed=1)


@pytest.mark.slow
def test_learned_ceiling_is_recovered_from_a_saturating_benchmark():
    from bayescale.fitting import fit

    # HellaSwag saturates at 0.7 (its best simulated models score ~0.68); the other
    # benchmarks reach up to 1. Prior: P(ceiling > 0.9) = 0.43 for a 0.25-chance benchmark.
    table = simulated_table(seed=5, ceiling={"HellaSwag": 0.7}, intercepts={"HellaSwag": 2.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        post = fit(small_spec(ceiling=True), table, draws=300, tune=400, chains=2, seed=3)
    top = post.posterior["ceiling"].sel(benchmark="HellaSwag")
    low, median, high = np.quantile(top.values.ravel(), [0.05, 0.5, 0.95])
    # 20 noisy cells pin a ceiling loosely: inside the 90% interval, and most of the
    # prior's mass above 0.9 (0.43) is ruled out. The posterior keeps a real tail there
    # (5-14% per chain over fit seeds 3-5, with a bulk ESS of 20-65 at these short
    # chains), so the bound is half the prior's mass, not the tail's size.
    assert low < 0.7 < high and median < 0.8 and np.mean(top.values > 0.9) < 0.2
    assert post.summary()["name"].str.startswith("ceiling[").sum() == len(BENCH)
    # a prediction for a much larger model stays under its ceiling draw by draw
    rows = pd.DataFrame({"model": ["fam0-huge"], "family": ["fam0"], "params": [4e11],
                         "tokens": [1e13], "benchmark": ["HellaSwag"]})
    mu = skills.KIND.predict(post, rows, seed=0)["mu"].values.ravel()
    assert np.all(mu <= top.values.ravel() + 1e-12)


@pytest.mark.slow
def test_conditioning_on_a_new_familys_smallest_model():
    from bayescale.fitting import condition_on, fit
    from bayescale.prediction import predict

    table = simulated_table(seed=2)
    new_family = table["family"] == "fam5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        base = fit(small_spec(), table[~new_family], draws=200, tune=300, chains=2, seed=1)
        smallest = table[table["model"] == "fam5-0"]
        updated = condition_on(base, smallest)
    assert "fam5" in updated.families and "fam5" not in base.families
    assert updated.fit_table["model"].nunique() == base.fit_table["model"].nunique() + 1
    target = table[(table["model"] == "fam5-3")][["model", "family", "params", "tokens",
                                                   "benchmark"]]
    after = predict(updated, target, seed=0)
    assert after[["q0.05", "q0.5", "q0.95"]].notna().all().all()
    # seeing the family's smallest model pins its efficiency: the posterior sd of its
    # intercept is below the population sd a new family's intercept is drawn with. (The
    # width of an accuracy interval is no test of this: it also depends on where on the
    # sigmoid the updated prediction sits.)
    sd_after = updated.posterior["a_family"].sel(family="fam5").std(("chain", "draw"))
    sd_before = np.sqrt((base.posterior["sigma_family"] ** 2).mean(("chain", "draw")))
    assert bool((sd_after < sd_before).all())
    with pytest.raises(DataError, match="already in the fit"):
        condition_on(updated, smallest)


def test_pilot_starts_the_chains_in_the_heavier_of_two_separated_modes():
    import nutpie
    import pymc as pm

    # two well-separated modes (NUTS chains never cross between them), the one at +4
    # holding 99% of the mass: each pilot chain settles in the mode its MAP optimum is in
    with pm.Model() as model:
        pm.NormalMixture("x", w=np.array([0.01, 0.99]), mu=np.array([-4.0, 4.0]),
                         sigma=0.3, initval=0.0)
    starter = skills.MapStarter(model)
    compiled = nutpie.compile_pymc_model(model)
    reached_both = False
    for seed in range(6):
        start = starter.pilot(compiled, chains=4, seed=seed, tune=100, draws=50)
        logp = np.asarray(starter.pilot_logp)
        assert start.shape == (compiled.n_dim,) and len(logp) == 4
        both = bool(np.any(logp < logp.max() - 3))    # some chains in each mode
        assert skills.separated_modes(starter.pilot_logp, starter.pilot_logp_sd) == both
        if both:
            reached_both = True
            assert start[0] > 2.0
    assert reached_both


def test_chain_starts_do_not_depend_on_the_order_nutpie_asks_for_them():
    """nutpie's sampling threads ask for the chains' starts in a varying order.

    A start that was handed out by call count (the first caller got start 0) swapped
    the starts of two chains in about one run in forty, and with them the run's draws.
    """
    import nutpie
    import pymc as pm

    from bayescale.sample import small_jitter

    with pm.Model() as model:
        pm.Normal("x", mu=np.array([1.0, -2.0]), sigma=0.5)
        pm.HalfNormal("tau_x", 1.0)
    starter = skills.MapStarter(model)
    starter.use_compiled(nutpie.compile_pymc_model(model))
    chain_seeds = [17786728610369054131, 17742360043774970404, 5]
    for make in (starter.chain_optima, lambda seed: small_jitter(np.zeros(3), seed)):
        forward, backward = make(3), make(3)
        first = {s: forward(s) for s in chain_seeds}
        second = {s: backward(s) for s in reversed(chain_seeds)}
        for s in chain_seeds:
            np.testing.assert_array_equal(first[s], second[s])
        # different chains start at different points, and another seed moves them
        assert not np.allclose(first[chain_seeds[0]], first[chain_seeds[1]])
        assert not np.allclose(first[5], make(4)(5))
    # without the jitter a chain starts at the optimum: x = (1, -2)
    start = starter.chain_optima(3, jitter=0.0)(5)
    np.testing.assert_allclose(start[:2], [1.0, -2.0], atol=1e-3)


def test_pilot_reports_a_failed_map_optimisation_not_nutpies_init_error():
    import nutpie
    import pymc as pm

    from bayescale.errors import DataError

    # the observation lies outside the support for every start the optimiser can reach
    with pm.Model() as model:
        x = pm.Normal("x", 0.0, 1.0)
        pm.Uniform("y", lower=x, upper=x + 1.0, observed=np.array([100.0]))
    starter = skills.MapStarter(model)
    with pytest.raises(DataError, match="no MAP optimisation of 4 reached a finite"):
        starter.pilot(nutpie.compile_pymc_model(model), chains=2, seed=0, tune=10, draws=10)


def test_chain_optima_stop_ends_the_optimisations_in_progress():
    """After a failed start, the pilot stops the other chains' optimisations (running in
    nutpie's threads) before raising: a process exiting while they ran crashed."""
    import threading
    import time

    import nutpie
    import pymc as pm

    with pm.Model() as model:
        pm.Normal("x", mu=np.array([1.0, -2.0]), sigma=0.5)
    starter = skills.MapStarter(model)
    starter.use_compiled(nutpie.compile_pymc_model(model))
    fast = starter._objective
    running = threading.Event()

    def slow(x):  # each evaluation takes 50 ms: the optimisation outlasts the stop call
        running.set()
        time.sleep(0.05)
        return fast(x)

    starter._objective = slow
    init = starter.chain_optima(0)
    outcome = []

    def call():
        try:
            init(5)
            outcome.append("returned")
        except Exception as err:  # noqa: BLE001 - the test records what ended the call
            outcome.append(type(err).__name__)

    thread = threading.Thread(target=call)
    thread.start()
    assert running.wait(10)
    clock = time.perf_counter()
    init.stop(timeout=10)
    assert time.perf_counter() - clock < 5
    thread.join(5)
    assert not thread.is_alive() and outcome == ["_Aborted"]
    # a stopped start function makes no further progress: nutpie's next call fails at once
    with pytest.raises(skills._Aborted):
        init(6)
    assert init.failures == []


def test_six_skills_on_the_leaderboard_take_the_first_six_spec_anchors():
    from bayescale import datasets

    table = datasets.load("open-llm-leaderboard").table
    spec = load_spec("skills").with_overrides(skills={"d": 6})
    des = skills.make_design(spec, table)
    assert des.anchors == spec.skills["anchors"][:6]
    model = skills.KIND.build(spec, table)
    assert np.isfinite(model.compile_logp()(model.initial_point()))
    rows, _, anchor_rows, labels = skills.loading_structure(des.benchmarks, des.anchors, 6)
    # the 6 other benchmarks load freely on all 6 skills
    assert len(labels) == len(model.coords["loading_free"]) == len(rows) == 36
    assert not set(rows) & set(anchor_rows)
    assert des.benchmarks[anchor_rows[5]] == "GSM8K"


def test_fits_compile_numba_without_fastmath(monkeypatch):
    """fastmath rounds fresh and cached kernels differently: a fit must not use it."""
    import pytensor

    from bayescale import fitting

    seen = {}

    class Stop(Exception):
        pass

    def record(model, **kwargs):
        seen["fastmath"] = pytensor.config.numba__fastmath
        seen["start"] = kwargs["start"]
        raise Stop

    monkeypatch.setattr(fitting, "run_sampler", record)
    monkeypatch.setattr(skills.KIND, "start_function", lambda spec, model: "pilot")
    assert pytensor.config.numba__fastmath  # PyTensor's default, restored after the fit
    with pytest.raises(Stop):
        fitting.fit(small_spec(), simulated_table(), draws=10, tune=10, chains=2, seed=0)
    assert seen == {"fastmath": False, "start": "pilot"}
    assert pytensor.config.numba__fastmath
