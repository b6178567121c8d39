"""Family efficiency: the compute one family needs to match another.

Definitions
-----------
Loss laws (``kind = "loss-law"``)
    For a law in N and D, family f trained compute-optimally with compute C reaches the
    frontier loss ``L*_f(C) = E_f + K_f (C/6)^(-gamma_f)`` with
    ``gamma = alpha beta / (alpha + beta)`` and ``K = A G^-alpha + B G^beta``,
    ``G = (alpha A / (beta B))^(1/(alpha+beta))`` (Hoffmann et al. 2022, eq. 4; this is
    the loss of :func:`bayescale.prediction.optimal_draws`). The **effective-compute
    multiplier** of f relative to the reference family r at compute C is

        m_f(C) = C_r / C,   where   L*_r(C_r) = L*_f(C),

    the factor by which the reference would have to scale its compute (on its own
    compute-optimal frontier) to reach the loss f reaches with C. ``m > 1``: f is more
    efficient than the reference. If ``L*_f(C) <= E_r`` the reference can never reach
    it and ``m = inf``. For a law in one covariate (``L = E + A x^-e``, e.g. the compute
    law or Kaplan's L(N)) the same definition is used on that covariate's axis
    (``x_r / x``). The multiplier generally depends on C (unless the families share
    their exponents and irreducible loss), so it is always reported at a stated C:
    by default the largest training compute (or covariate value) in the fit data.
    Skills fits are read by default at the geometric median of the models' training
    compute, where the shared slopes are best pinned (see below).

Latent skills (``kind = "skills"``)
    Skills are evaluated for a base (not instruction-tuned) model of each family along
    one common path: N and D grow together with the median tokens-per-parameter ratio
    ``rho`` of the training models, ``C = 6 N D``. The skill of family f is
    ``theta_f(C) = B' x(C) + a_f + u_f x_0(C)`` (family intercept ``a_f`` plus, when
    fitted, the family's size-slope deviation ``u_f``; sub-family offsets are left out).
    The multiplier of f relative to r for skill k at compute C is

        m_{f,k}(C) = exp((theta_{f,k}(C) - theta_{r,k}(C)) / s_{r,k}(C)),

    with ``s_{r,k}(C) = d theta_{r,k} / d log C`` the reference's slope on the log-compute
    axis at C. With shared slopes and no interaction this is exactly
    ``exp(delta intercept / slope)``: the compute factor that closes the intercept gap;
    otherwise it is the same first-order (local) statement at C. Draws where the
    reference's skill does not increase with compute (``s <= 0``) give no multiplier
    (NaN; their share is reported as ``frac_undefined``).

Probabilities
-------------
``P(A more efficient than B)`` is the posterior probability that A's frontier loss at C
is lower than B's (loss laws) or that A's skill at C is higher than B's (skills), which
is the same event as ``m_A > m_B`` for any reference; ties count one half, so
``P(A > B) + P(B > A) = 1`` exactly.

Weak identification
-------------------
A family whose efficiency rests on one model (skills: one model; loss laws: one run or
a single model size) is flagged ``weakly_identified``: its estimate is mostly the
population prior and the choice of path, not data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayescale.errors import DataError
from bayescale.kinds import loss_law

#: Default probability of the central intervals.
CI_PROB = 0.9


# ---------------------------------------------------------------------- helpers
def _check_reference(posterior, reference: str | None) -> str:
    families = list(posterior.families)
    if reference is None:
        counts = posterior.fit_table.groupby("family")[_unit_column(posterior)].nunique()
        best = counts.max()
        return sorted(f for f in families if counts[f] == best)[0]
    if reference not in families:
        raise DataError(f"unknown reference family '{reference}' (families: "
                        f"{', '.join(families[:20])}{' ...' if len(families) > 20 else ''})",
                        source="--reference")
    return reference


def _unit_column(posterior) -> str:
    table = posterior.fit_table
    if posterior.spec.kind == "skills":
        return "model"
    return "run" if "run" in table else "params"


def family_counts(posterior, *, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Count the data behind each family's efficiency and flag weak identification.

    Parameters
    ----------
    posterior : Posterior
        A loss-law or skills fit.
    table : DataFrame, optional
        Training table to count (default: the fit's).

    Returns
    -------
    DataFrame
        One row per family: ``family, n_models, n_obs, weakly_identified, note``.
        For loss laws ``n_models`` counts runs and ``n_sizes`` distinct model sizes.
    """
    table = posterior.fit_table if table is None else table
    rows = []
    for fam, g in table.groupby("family"):
        if posterior.spec.kind == "skills":
            n_models = int(g["model"].nunique())
            weak = n_models < 2
            note = "one model: estimate mostly from the population" if weak else ""
            rows.append({"family": fam, "n_models": n_models, "n_obs": int(len(g)),
                         "weakly_identified": weak, "note": note})
        else:
            n_runs = int(len(g))
            n_sizes = int(g["params"].nunique())
            weak = n_runs < 2 or n_sizes < 2
            note = ("one run" if n_runs < 2 else "one model size") if weak else ""
            rows.append({"family": fam, "n_models": n_runs, "n_sizes": n_sizes,
                         "n_obs": n_runs, "weakly_identified": weak, "note": note})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- loss laws
def _loss_axis(spec) -> str:
    variables = {t.variable for t in loss_law.terms(spec)}
    if variables == {"params", "tokens"}:
        return "flops"
    if len(loss_law.terms(spec)) == 1:
        return loss_law.terms(spec)[0].variable
    raise DataError(f"family efficiency needs a law in (N, D) or in one covariate; "
                    f"'{spec.name}' has terms in {', '.join(sorted(variables))}")


def _frontier(spec) -> bool:
    """Whether the efficiency axis is compute along the (N, D) frontier."""
    return {t.variable for t in loss_law.terms(spec)} == {"params", "tokens"}


def _loss_curve_params(posterior, family: str | None):
    """Draws ``(E, K, gamma)`` of ``L = E + K x^-gamma`` on the efficiency axis.

    For an (N, D) law the axis is ``x = C / 6`` along the compute-optimal frontier.
    """
    spec = posterior.spec
    values = loss_law.law_values(posterior, family)
    e_name = loss_law.irreducible(spec)
    e = values[e_name] if e_name else 0.0 * values[loss_law.terms(spec)[0].exponent]
    if _frontier(spec):
        by_var = {t.variable: t for t in loss_law.terms(spec)}
        n_t, d_t = by_var["params"], by_var["tokens"]
        a, al = values[n_t.coefficient], values[n_t.exponent]
        b, be = values[d_t.coefficient], values[d_t.exponent]
        g = (al * a / (be * b)) ** (1 / (al + be))
        k = a * g ** (-al) + b * g ** be
        gamma = al * be / (al + be)
    else:
        (term,) = loss_law.terms(spec)
        k, gamma = values[term.coefficient], values[term.exponent]
    return (np.asarray(e, float).ravel(), np.asarray(k, float).ravel(),
            np.asarray(gamma, float).ravel())


def _default_at(posterior) -> float:
    table = posterior.fit_table
    if posterior.spec.kind == "skills":
        # the geometric median of the models' training compute: where the shared slopes
        # are best pinned; at the largest model the slope of a saturating skill (with the
        # log N x log D term) can be near zero and exp(gap / slope) explodes
        models = table.drop_duplicates("model")
        flops = 6 * models["params"].astype(float) * models["tokens"].astype(float)
        return float(np.exp(np.median(np.log(flops))))
    axis = _loss_axis(posterior.spec)
    if axis == "flops" and "flops" not in table:
        return float((6 * table["params"] * table["tokens"]).max())
    return float(table[axis].astype(float).max())


def _loss_quality(posterior, at: float) -> tuple[list[str], np.ndarray, dict]:
    """Frontier loss ``(sample, family)`` at ``at`` and each family's curve draws."""
    families = list(posterior.families)
    grouped = loss_law.grouped(posterior.spec)
    x = at / 6 if _frontier(posterior.spec) else at
    curves, losses = {}, []
    for fam in families:
        e, k, gamma = _loss_curve_params(posterior, fam if grouped else None)
        curves[fam] = (e, k, gamma)
        losses.append(e + k * x ** (-gamma))
    return families, np.column_stack(losses), curves


def _loss_multipliers(posterior, reference: str, at: float) -> tuple[list[str], np.ndarray]:
    families, loss, curves = _loss_quality(posterior, at)
    e_r, k_r, g_r = curves[reference]
    gap = loss - e_r[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        # x_r / x = (K_r / (L_f - E_r))^(1/gamma_r) / x
        x = at / 6 if _frontier(posterior.spec) else at
        log_m = (np.log(k_r)[:, None] - np.log(np.where(gap > 0, gap, np.nan))) \
            / g_r[:, None] - np.log(x)
        mult = np.where(gap > 0, np.exp(log_m), np.inf)
    return families, mult


# ---------------------------------------------------------------------- skills
def _skills_path(posterior, at: float, *, rho: float | None = None, h: float = 0.05):
    """Skills ``(3, sample, family, skill)`` at log C - h, log C, log C + h."""
    from bayescale.kinds import skills

    spec = posterior.spec
    des = skills.make_design(spec, posterior.fit_table)
    post = posterior.posterior
    if rho is None:
        rho = float(np.median(des.models["tokens"] / des.models["params"]))
    out = []
    for log_c in (np.log(at) - h, np.log(at), np.log(at) + h):
        n = np.sqrt(np.exp(log_c) / (6 * rho))
        raw = skills._log_covariates(np.array([n]), np.array([rho * n]))
        x = ((raw - des.x_mean) / des.x_sd)[0]
        b = skills._stack(post, "B")                     # (S, 3, d)
        theta = np.einsum("c,scd->sd", x, b)[:, None, :] + skills._stack(post, "a_family")
        if "slope_offset" in post:
            theta = theta + skills._stack(post, "slope_offset") * x[0]
        out.append(theta)
    return list(des.families), [str(s) for s in post["skill"].values], np.stack(out), h, rho


def _skills_multipliers(posterior, reference: str, at: float):
    families, skill_names, th, h, rho = _skills_path(posterior, at)
    r = families.index(reference)
    slope = (th[2][:, r, :] - th[0][:, r, :]) / (2 * h)      # (S, d)
    gap = th[1] - th[1][:, r:r + 1, :]                      # (S, F, d)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mult = np.where(slope[:, None, :] > 0, np.exp(gap / slope[:, None, :]), np.nan)
    return families, skill_names, th[1], mult, rho


# ---------------------------------------------------------------------- public API
def efficiency_draws(posterior, *, reference: str | None = None, at: float | None = None
                     ) -> dict:
    """Posterior draws of every family's effective-compute multiplier.

    Parameters
    ----------
    posterior : Posterior
        A loss-law or skills fit.
    reference : str, optional
        Reference family (default: the family with the most runs or models, ties broken
        alphabetically).
    at : float, optional
        Compute C in FLOPs (or the law's covariate for a one-covariate law) at which
        the multiplier is evaluated (default: the largest value in the training data).

    Returns
    -------
    dict
        ``families``, ``reference``, ``at``, ``axis``, ``skills`` (None for loss
        laws), ``multiplier`` (``(sample, family)`` or ``(sample, family, skill)``) and
        ``quality`` (frontier loss, or skill, at ``at``; same shape; lower loss or
        higher skill is better).
    """
    reference = _check_reference(posterior, reference)
    at = _default_at(posterior) if at is None else float(at)
    if not np.isfinite(at) or at <= 0:
        raise DataError(f"the evaluation point must be a positive number, got {at}",
                        source="--at")
    if posterior.spec.kind == "skills":
        families, skill_names, theta, mult, rho = _skills_multipliers(posterior, reference,
                                                                     at)
        return {"families": families, "reference": reference, "at": at, "axis": "flops",
                "skills": skill_names, "multiplier": mult, "quality": theta,
                "higher_is_better": True, "rho": rho}
    if posterior.spec.kind != loss_law.KIND.name:
        raise DataError(f"family efficiency is defined for loss-law and skills fits, not "
                        f"'{posterior.spec.kind}'")
    families, mult = _loss_multipliers(posterior, reference, at)
    _, loss, _ = _loss_quality(posterior, at)
    return {"families": families, "reference": reference, "at": at,
            "axis": _loss_axis(posterior.spec), "skills": None, "multiplier": mult,
            "quality": loss, "higher_is_better": False}


def _prob_greater(a: np.ndarray, b: np.ndarray) -> float:
    """P(a > b) over draws with ties (including both NaN) counted one half."""
    both_nan = np.isnan(a) & np.isnan(b)
    gt = np.where(both_nan, False, (a > b) | (~np.isnan(a) & np.isnan(b)))
    eq = both_nan | (a == b)
    return float(np.mean(gt) + 0.5 * np.mean(eq))


def family_efficiency(posterior, *, reference: str | None = None, at: float | None = None,
                      ci_prob: float = CI_PROB) -> pd.DataFrame:
    """Effective-compute multiplier of every family relative to a reference family.

    See the module docstring for the exact definitions (loss laws: compute the
    reference needs on its compute-optimal frontier to reach family f's frontier loss
    at C, divided by C; skills: ``exp(delta skill / slope)`` on the log-compute axis,
    per skill).

    Parameters
    ----------
    posterior : Posterior
        A loss-law or skills fit.
    reference : str, optional
        Reference family (default: the family with the most runs or models).
    at : float, optional
        Compute C (FLOPs) at which the multiplier is evaluated (default: the largest
        training compute).
    ci_prob : float
        Probability of the central interval (default 0.9).

    Returns
    -------
    DataFrame
        One row per family (per family and skill for skills models), columns
        ``family, [skill,] reference, at, axis, median, lower, upper, log10_median, ci_prob,
        p_more_efficient_than_reference, frac_undefined, n_models, n_obs,
        weakly_identified, note``. ``median`` etc. are multipliers (``inf`` if the
        reference can never reach the family's loss).

    Raises
    ------
    DataError
        If the reference family is unknown, ``at`` is not positive, or the fit is not a
        loss law in (N, D) or one covariate, or a skills model.
    """
    if not 0 < ci_prob < 1:
        raise DataError(f"ci_prob must be in (0, 1), got {ci_prob}")
    res = efficiency_draws(posterior, reference=reference, at=at)
    lo, hi = (1 - ci_prob) / 2, 1 - (1 - ci_prob) / 2
    counts = family_counts(posterior).set_index("family")
    mult, quality = res["multiplier"], res["quality"]
    skill_names = res["skills"] or [None]
    r = res["families"].index(res["reference"])
    rows = []
    for k, skill in enumerate(skill_names):
        m_k = mult if skill is None else mult[:, :, k]
        q_k = quality if skill is None else quality[:, :, k]
        sign = 1.0 if res["higher_is_better"] else -1.0
        for i, fam in enumerate(res["families"]):
            m = m_k[:, i]
            defined = m[~np.isnan(m)]
            if len(defined):
                med, lower, upper = np.quantile(defined, [0.5, lo, hi])
            else:
                med = lower = upper = np.nan
            row = {"family": fam}
            if skill is not None:
                row["skill"] = skill
            row.update({
                "reference": res["reference"], "at": res["at"], "axis": res["axis"],
                "median": float(med), "lower": float(lower), "upper": float(upper),
                "log10_median": float(np.log10(med)) if med > 0 else np.nan,
                "ci_prob": ci_prob,
                "p_more_efficient_than_reference": _prob_greater(sign * q_k[:, i],
                                                                 sign * q_k[:, r]),
                "frac_undefined": float(np.mean(np.isnan(m))),
            })
            c = counts.loc[fam]
            row.update({"n_models": int(c["n_models"]), "n_obs": int(c["n_obs"]),
                        "weakly_identified": bool(c["weakly_identified"]),
                        "note": c["note"] or ("reference" if fam == res["reference"] else "")})
            rows.append(row)
    return pd.DataFrame(rows)


def prob_more_efficient(posterior, *, at: float | None = None, skill: str | None = None
                        ) -> pd.DataFrame:
    """Matrix of ``P(row family more efficient than column family)``.

    Parameters
    ----------
    posterior : Posterior
        A loss-law or skills fit.
    at : float, optional
        Compute C (FLOPs) of the comparison (default: the largest training compute).
    skill : str, optional
        Skill to compare on (skills models; default: the first skill).

    Returns
    -------
    DataFrame
        Square, index and columns the families. Entry (A, B) is the posterior
        probability that A's frontier loss at C is lower than B's (loss laws) or A's
        skill at C higher than B's (skills), ties counted one half: the matrix plus its
        transpose is 1 everywhere, and the diagonal is 0.5.
    """
    res = efficiency_draws(posterior, at=at)
    quality = res["quality"]
    if res["skills"] is not None:
        names = res["skills"]
        skill = names[0] if skill is None else skill
        if skill not in names:
            raise DataError(f"unknown skill '{skill}' (skills: {', '.join(names)})",
                            source="--skill")
        quality = quality[:, :, names.index(skill)]
    sign = 1.0 if res["higher_is_better"] else -1.0
    fams = res["families"]
    mat = np.full((len(fams), len(fams)), 0.5)
    for i in range(len(fams)):
        for j in range(i + 1, len(fams)):
            p = _prob_greater(sign * quality[:, i], sign * quality[:, j])
            mat[i, j], mat[j, i] = p, 1.0 - p
    return pd.DataFrame(mat, index=pd.Index(fams, name="family"), columns=fams)


def prob_table(posterior, *, at: float | None = None) -> pd.DataFrame:
    """Long table of ``P(A more efficient than B)`` for every ordered pair (and skill).

    Returns
    -------
    DataFrame
        Columns ``[skill,] family_a, family_b, p_a_more_efficient``.
    """
    skill_names = efficiency_draws(posterior, at=at)["skills"] or [None]
    frames = []
    for skill in skill_names:
        mat = prob_more_efficient(posterior, at=at, skill=skill)
        long = mat.stack().rename("p_a_more_efficient").reset_index()
        long.columns = ["family_a", "family_b", "p_a_more_efficient"]
        long = long[long["family_a"] != long["family_b"]]
        if skill is not None:
            long.insert(0, "skill", skill)
        frames.append(long)
    return pd.concat(frames, ignore_index=True)


def plot_family_efficiency(*, table: pd.DataFrame, ax=None):
    """Forest plot of a :func:`family_efficiency` table (see :mod:`bayescale.plots`)."""
    from bayescale.plots import plot_efficiency_forest

    return plot_efficiency_forest(table=table, ax=ax)
