"""Family efficiency: multipliers, probability matrices, weak identification, CLI."""

import numpy as np
import pandas as pd
import pytest

from bayescale import compare
from bayescale.cli import main
from bayescale.errors import DataError
from bayescale.prediction import optimal_draws


# ---------------------------------------------------------------------- fast
def test_prob_greater_counts_ties_half():
    a = np.array([1.0, 2.0, 3.0, np.nan, np.inf])
    b = np.array([1.0, 1.0, 4.0, np.nan, np.inf])
    # ties at 0, 3, 4; a > b at 1; b > a at 2
    assert compare._prob_greater(a, b) == pytest.approx((1 + 0.5 * 3) / 5)
    assert compare._prob_greater(a, b) + compare._prob_greater(b, a) == pytest.approx(1.0)


def test_prob_greater_nan_loses():
    a = np.array([np.nan, 1.0])
    b = np.array([0.0, np.nan])
    assert compare._prob_greater(a, b) == pytest.approx(0.5)
    assert compare._prob_greater(a, b) + compare._prob_greater(b, a) == pytest.approx(1.0)


# ---------------------------------------------------------------------- fitted (slow)
@pytest.mark.slow
def test_family_efficiency_hierarchical(hierarchical_posterior):
    post = hierarchical_posterior
    table = compare.family_efficiency(post)
    assert list(table["family"]) == post.families
    ref = table["reference"].iloc[0]
    assert ref in post.families
    row = table.set_index("family").loc[ref]
    assert row["median"] == pytest.approx(1.0) and row["lower"] == pytest.approx(1.0)
    assert row["p_more_efficient_than_reference"] == pytest.approx(0.5)
    assert np.all(np.isfinite(table[["median", "lower", "upper"]].to_numpy()))
    assert np.all(table["lower"] <= table["median"]) and np.all(table["median"] <= table["upper"])
    assert table["ci_prob"].eq(0.9).all()
    assert not table["weakly_identified"].any()
    assert table["at"].iloc[0] == pytest.approx(post.fit_table["flops"].max())


@pytest.mark.slow
def test_multiplier_inverts_the_reference_frontier(hierarchical_posterior):
    """m = C_ref / C: the reference's frontier loss at m C equals the family's at C."""
    post = hierarchical_posterior
    ref, other = post.families[0], post.families[1]
    at = 1e21
    res = compare.efficiency_draws(post, reference=ref, at=at)
    m = res["multiplier"][:, res["families"].index(other)]
    own = optimal_draws(post, [at], family=other)["loss"].values.ravel()
    finite = np.isfinite(m)
    assert finite.mean() > 0.9
    # the reference's frontier loss at C_ref = m C, draw by draw
    e, k, g = compare._loss_curve_params(post, ref)
    ref_loss = e + k * (m * at / 6) ** (-g)
    assert np.allclose(ref_loss[finite], own[finite], rtol=1e-8)


@pytest.mark.slow
def test_probability_matrix_consistent(hierarchical_posterior):
    mat = compare.prob_more_efficient(hierarchical_posterior)
    values = mat.to_numpy()
    assert np.allclose(values + values.T, 1.0)
    assert np.allclose(np.diag(values), 0.5)
    assert ((values >= 0) & (values <= 1)).all()
    table = compare.family_efficiency(hierarchical_posterior)
    ref = table["reference"].iloc[0]
    for _, row in table.iterrows():
        assert row["p_more_efficient_than_reference"] == pytest.approx(mat.loc[row["family"],
                                                                              ref])
    long = compare.prob_table(hierarchical_posterior)
    n = len(hierarchical_posterior.families)
    assert len(long) == n * (n - 1)


@pytest.mark.slow
def test_reference_independent_ordering(hierarchical_posterior):
    """P(m_A > m_B) does not depend on the reference family."""
    post = hierarchical_posterior
    a, b = post.families[0], post.families[2]
    p = []
    for ref in post.families:
        res = compare.efficiency_draws(post, reference=ref, at=1e20)
        m = res["multiplier"]
        p.append(compare._prob_greater(m[:, res["families"].index(a)],
                                       m[:, res["families"].index(b)]))
    assert np.allclose(p, p[0])


@pytest.mark.slow
def test_weakly_identified_flag(hierarchical_posterior):
    """A family with one run is flagged (counts come from the fit table)."""
    post = hierarchical_posterior
    fam = post.families[1]
    table = post.fit_table
    keep = table[(table["family"] != fam)]
    single = pd.concat([keep, table[table["family"] == fam].head(1)], ignore_index=True)
    counts = compare.family_counts(post, table=single).set_index("family")
    assert counts.loc[fam, "weakly_identified"]
    assert counts.loc[fam, "note"] == "one run"
    assert not counts.drop(fam)["weakly_identified"].any()


@pytest.mark.slow
def test_one_family_and_bad_reference(chinchilla_posterior, hierarchical_posterior):
    table = compare.family_efficiency(chinchilla_posterior)
    assert len(table) == 1 and table["median"].iloc[0] == pytest.approx(1.0)
    with pytest.raises(DataError, match="unknown reference family"):
        compare.family_efficiency(hierarchical_posterior, reference="nope")
    with pytest.raises(DataError, match="positive"):
        compare.family_efficiency(hierarchical_posterior, at=-1.0)


@pytest.mark.slow
def test_forest_plot_labels(hierarchical_posterior):
    table = compare.family_efficiency(hierarchical_posterior)
    table.loc[0, "weakly_identified"] = True
    fig, ax = compare.plot_family_efficiency(table=table)
    assert ax.get_title() and "FLOPs" in ax.get_xlabel() and ax.get_ylabel()
    assert ax.get_legend() is not None
    assert any(t.get_text().endswith("*") for t in ax.get_yticklabels())


@pytest.mark.slow
def test_cli_compare_families(tmp_path, capsys, chinchilla_run_dir, hierarchical_posterior):
    from bayescale import write_run

    run = write_run(hierarchical_posterior, tmp_path / "hier")
    out = tmp_path / "eff.csv"
    assert main(["compare-families", str(run), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert set(table["family"]) == set(hierarchical_posterior.families)
    probs = pd.read_csv(tmp_path / "eff_probabilities.csv")
    merged = probs.merge(probs, left_on=["family_a", "family_b"],
                         right_on=["family_b", "family_a"])
    assert np.allclose(merged["p_a_more_efficient_x"] + merged["p_a_more_efficient_y"], 1.0)
    assert main(["compare-families", str(run), "--reference", "nope"]) == 1
    assert main(["compare-families", str(chinchilla_run_dir)]) == 1
    err = capsys.readouterr().err
    assert "unknown reference family" in err and "one family" in err
    assert "Traceback" not in err


# ---------------------------------------------------------------------- skills (prior draws)
def test_skills_efficiency_structure(skills_mock_posterior):
    post = skills_mock_posterior
    table = compare.family_efficiency(post)
    skills = list(post.posterior["skill"].values)
    assert len(table) == len(post.families) * len(skills)
    assert set(table["skill"]) == set(skills)
    ref = table["reference"].iloc[0]
    assert ref == "llama-2"  # the family with the most models
    refrows = table[table["family"] == ref]
    assert np.allclose(refrows["median"], 1.0)
    assert (table["lower"] <= table["median"]).all() and (table["median"] <= table["upper"]).all()
    weak = table.groupby("family")["weakly_identified"].first()
    assert weak["falcon"] and not weak.drop("falcon").any()
    for skill in skills:
        mat = compare.prob_more_efficient(post, skill=skill).to_numpy()
        assert np.allclose(mat + mat.T, 1.0)
        sub = table[table["skill"] == skill].set_index("family")
        for fam in post.families:
            assert sub.loc[fam, "p_more_efficient_than_reference"] == pytest.approx(
                compare.prob_more_efficient(post, skill=skill).loc[fam, ref])
    with pytest.raises(DataError, match="unknown skill"):
        compare.prob_more_efficient(post, skill="skill9")


def test_skills_multiplier_is_exp_gap_over_slope(skills_mock_posterior):
    """m = exp(delta theta / s_ref): log m / delta theta is one number per draw and skill."""
    post = skills_mock_posterior
    res = compare.efficiency_draws(post, at=1e23)
    fams = res["families"]
    r = fams.index(res["reference"])
    theta = res["quality"]
    m = res["multiplier"]
    log_m = np.log(m)
    gap = theta - theta[:, r:r + 1, :]
    # log m / gap is the same (1 / slope of the reference) for every family
    usable = (np.abs(gap) > 1e-9) & np.isfinite(log_m)
    ratio = np.where(usable, log_m, np.nan) / np.where(usable, gap, 1.0)
    ok = np.isfinite(ratio).any(axis=1)  # (draw, skill) with at least one usable family
    moved = np.moveaxis(ratio, 1, -1)[ok]
    spread = np.nanmax(moved, axis=-1) - np.nanmin(moved, axis=-1)
    assert ok.sum() > 10 and np.max(np.abs(spread)) < 1e-6
