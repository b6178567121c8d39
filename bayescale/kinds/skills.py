"""Latent skills: benchmark accuracies driven by a few skills that scale with N and D.

For model ``i`` of family ``f(i)`` and sub-family ``s(i)`` the d-vector of skills is

    theta_i = B' x_i + a_f + o_s + (tau_slope * u_f) * x_i[0]
              + delta * instruct_i + tau_model * e_i

* ``x_i`` = standardised ``(log N, log D, log N * log D)`` (N in billions of
  parameters, D in trillions of tokens before the product, as in Sloth; each column
  then centred and scaled by the fit table's mean and sd);
* ``B`` (3 x d) is shared by every family (the shared exponents);
* ``a_f``: family intercepts (efficiencies), partially pooled with a learned scale per
  skill and, with ``skills.family_correlation``, a learned correlation across skills:
  rows ``a_f ~ MvNormal(0, diag(sigma) R diag(sigma))``, ``R ~ LKJ``, conditioned on
  ``sum_f a_f = 0`` (F - 1 free rows embedded in the zero-sum subspace), so a family
  seen at one size or at its chance floor on an anchor borrows across skills (without
  the switch: ``a_f ~ N(0, sigma_family)`` per skill, ZeroSumNormal). Centred, because
  every family has several scores that pin its intercept; the zero sum leaves the
  overall level of a skill to the benchmark intercepts;
* ``o_s ~ N(0, tau_sub)``: sub-family offsets nested under their family (a chat or
  instruct lineage borrows its base family's efficiency); each family's base lineage
  (:func:`base_subfamilies`) has ``o_s = 0``, so ``a_f`` is the base lineage's
  efficiency. Sampled centred, as the lineage's total shift ``delta * share_s + o_s``
  (``share_s`` its fraction of instruct models), which removes the ridge between
  ``delta`` and the offsets of instruct lineages;
* ``u_f ~ N(0, 1)`` with ``sum_f u_f = 0``: the family's deviation from the shared
  size slope (how much the family's large models beat or trail what its small ones
  suggest), scale ``tau_slope`` per skill, non-centred (most families have few
  sizes); ``B`` is the average family's slope;
* ``e_i ~ N(0, I)``: a model's own deviation from its family's law, scale
  ``tau_model`` per skill (shared by all benchmarks of the model, so the residuals of
  one model are correlated across benchmarks, as they are in the data);
* ``delta``: shift of instruction-tuned models.

With ``skills.instruct_benchmark``, each benchmark that is not an anchor also has its
own shift of instruction-tuned models, ``g_j`` (``instruct_excess``), added to its logit
(an anchor's instruct shift is ``delta`` itself, so its ``g`` is 0). It refines
``skills.instruct``: with that off, the model has no instruct shift of either kind.

An unseen family draws ``a ~ N(0, diag(sigma) R diag(sigma))`` (``R = I`` without the
correlation) and ``u ~ N(0, 1)``: the
marginal of one element of the zero-sum vectors is narrower by ``sqrt(1 - 1/F)``
(F families), a difference of 1-2% here that is ignored.

Benchmark ``j`` maps skills to accuracy above its chance floor ``c_j``:

    mu_ij = c_j + (u_j - c_j) * sigmoid(lambda_j' theta_i + b_j [+ g_j instruct_i])

with upper asymptote ``u_j = 1``, or, with ``skills.ceiling``, a learned ceiling
``u_j = c_j + (1 - c_j) f_j``, ``f_j ~ Beta`` (label noise, ambiguous items and strict
scoring keep the best models of some benchmarks well below 1); benchmarks listed in
``skills.no_ceiling`` keep ``u_j = 1``. A score is
``Beta(mu_ij * phi_j, (1 - mu_ij) * phi_j)`` (per-benchmark precision ``phi_j``), or
beta-binomial / binomial on ``round(score * n_items)`` correct answers.
Scores are stored rounded to 0.01, so a stored 0.00 says only that the score was below
half a rounding unit: the Beta likelihood is **censored** at ``skills.clip`` (0.005).
A score at or below ``clip`` contributes ``log P(score <= clip)``, one at or above
``1 - clip`` contributes ``log P(score >= 1 - clip)``; simulated scores are clipped the
same way, so data simulated from the model are exactly what the fit conditions on (a
plain clip of 0.00 to 0.005 evaluated as a density was not, and failed parameter
recovery on benchmarks near their floor).

Identifiability
---------------
Marker (reference-benchmark) identification: ``d`` named anchor benchmarks, anchor
``k`` loads ONLY on skill ``k`` and with loading exactly 1 (the anchor block of the
loading matrix is the identity). Skill ``k`` is therefore the logit, above chance, of
anchor ``k``'s expected accuracy. Any d-skill model whose anchor block is invertible
can be rewritten this way (``theta' = Lambda_A theta``, ``Lambda' = Lambda
Lambda_A^-1``), so this is a parameterisation, not a restriction; and it leaves no
transformation of the skills free: no sign flips, rotations, shears or label switches.

Two other constraints were tried and rejected on the full 12-benchmark leaderboard
fit (4 chains): lower-triangular loadings with a free positive diagonal and unit
family scale (collapsed-anchor local modes, r-hat 1.7 even from a MAP start) and
lower-triangular with a unit diagonal (a continuous shear ``theta_2 + c theta_1``
remains, held only by the priors: r-hat 1.6, ESS 7). Chains start at the best of
several MAP optimisations (:func:`map_start`), and r-hat over 4 chains checks that
they agree.

Missing cells are modelled: every observed (model, benchmark) cell enters the
likelihood, a model with some benchmarks missing still informs its skills. The
number of cells used is the size of the ``cell`` dimension.

Prediction uses the same code (:func:`linear_predictor` works on PyTensor tensors
and on NumPy draws): known families and sub-families use their posterior
intercepts; unseen ones draw new intercepts from the population; every new model
draws its own deviation ``e`` from the population.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayescale.errors import DataError, SpecError
from bayescale.sample import sample_nutpie, separated_modes

if TYPE_CHECKING:
    from collections.abc import Callable

    import pymc as pm
    import xarray as xr

    from bayescale.spec import ModelSpec

log = logging.getLogger(__name__)

COVARIATES = ("log_params", "log_tokens", "log_params_x_log_tokens")
LIKELIHOODS = ("beta", "beta_binomial", "binomial")
#: Anchor benchmarks tried in this order when a spec does not name its own: the first
#: d present in the data are used. The same order as the shipped ``models/skills.toml``,
#: whose comment gives the reasons (distinct constructs, precise anchors first).
DEFAULT_ANCHORS = ("MMLU", "BBH", "HellaSwag", "TruthfulQA", "IFEval", "GSM8K", "MMLU-PRO",
                   "MATH Lvl 5", "ARC", "Winogrande", "MUSR", "GPQA")
#: Largest number of skills a spec may ask for: half the twelve leaderboard benchmarks
#: (more skills than that leave too few free loadings to tie the skills together).
MAX_SKILLS = 6
_OPTIONAL_PRIORS = {"tau_sub", "tau_slope", "tau_model", "delta", "phi", "family_correlation",
                    "ceiling", "instruct_benchmark"}
_SKILL_KEYS = {"d", "anchors", "family_slope", "model_effect", "subfamily", "instruct",
               "instruct_benchmark", "clip", "family_correlation", "ceiling", "no_ceiling"}
_SWITCHES = ("family_slope", "model_effect", "subfamily", "instruct", "instruct_benchmark",
             "family_correlation", "ceiling")
_ALWAYS_PRIORS = {"B", "loading", "sigma_family", "intercept", "phi"}


def _options(spec: ModelSpec) -> dict[str, Any]:
    sk = spec.skills
    d = int(sk.get("d", 2))
    return {
        "d": d,
        "anchors": list(sk.get("anchors", DEFAULT_ANCHORS)),
        "family_slope": bool(sk.get("family_slope", True)),
        "model_effect": bool(sk.get("model_effect", True)),
        "subfamily": bool(sk.get("subfamily", True)),
        "instruct": bool(sk.get("instruct", True)),
        # a refinement of the instruct shift: without it (instruct = false), none at all
        "instruct_benchmark": bool(sk.get("instruct_benchmark", False))
        and bool(sk.get("instruct", True)),
        # a correlation needs two skills: with d = 1 the switch has no effect
        "family_correlation": bool(sk.get("family_correlation", False)) and d > 1,
        "ceiling": bool(sk.get("ceiling", False)),
        # benchmarks that keep the upper asymptote 1 when the others learn a ceiling
        "no_ceiling": list(sk.get("no_ceiling", [])),
        "clip": float(sk.get("clip", 0.005)),
        "likelihood": spec.likelihood.get("distribution", "beta"),
    }


def required_priors(spec: ModelSpec) -> set[str]:
    """Priors a skills spec must give (depends on which components are switched on)."""
    opt = _options(spec)
    need = set(_ALWAYS_PRIORS)
    if opt["likelihood"] == "binomial":
        need.discard("phi")
    if opt["subfamily"]:
        need.add("tau_sub")
    if opt["family_slope"]:
        need.add("tau_slope")
    if opt["model_effect"]:
        need.add("tau_model")
    if opt["instruct"]:
        need.add("delta")
    if opt["instruct_benchmark"]:
        need.add("instruct_benchmark")
    if opt["family_correlation"]:
        need.add("family_correlation")
    if opt["ceiling"]:
        need.add("ceiling")
    return need


# ---------------------------------------------------------------------- design
def _log_covariates(params: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    ln = np.log(np.asarray(params, float) / 1e9)
    ld = np.log(np.asarray(tokens, float) / 1e12)
    return np.column_stack([ln, ld, ln * ld])


@dataclass
class Design:
    """Index structure of a benchmark table for the skills model.

    Attributes
    ----------
    models : DataFrame
        One row per model (``model, family, subfamily, instruct, params, tokens``), in
        coordinate order.
    families, subfamilies, benchmarks, anchors : list of str
    x : ndarray (n_models, 3)
        Standardised covariates.
    x_mean, x_sd : ndarray (3,)
        Standardisation constants (from the models of this table).
    family_idx, sub_idx : ndarray (n_models,)
    cell_model, cell_bench : ndarray (n_cells,)
        Observed cells.
    y : ndarray (n_cells,)
        Scores, clipped into (0, 1).
    n_items : ndarray (n_cells,) or None
    chance : ndarray (n_benchmarks,)
    """

    models: pd.DataFrame
    families: list[str]
    subfamilies: list[str]
    benchmarks: list[str]
    anchors: list[str]
    x: np.ndarray
    x_mean: np.ndarray
    x_sd: np.ndarray
    family_idx: np.ndarray
    sub_idx: np.ndarray
    cell_model: np.ndarray
    cell_bench: np.ndarray
    y: np.ndarray
    n_items: np.ndarray | None
    chance: np.ndarray
    #: Sub-families that are NOT their family's base lineage (they carry an offset).
    derived: list[str] = dataclasses.field(default_factory=list)

    @property
    def n_cells(self) -> int:
        """Number of observed (model, benchmark) cells."""
        return len(self.y)


def _subfamily(table: pd.DataFrame) -> pd.Series:
    if "subfamily" in table and table["subfamily"].notna().any():
        sub = table["subfamily"].astype(object).where(table["subfamily"].notna(),
                                                       table["family"])
        return sub.astype(str).where(sub.astype(str) != "", table["family"].astype(str))
    return table["family"].astype(str)


def _instruct(table: pd.DataFrame) -> np.ndarray:
    if "instruct" not in table:
        return np.zeros(len(table))
    return table["instruct"].astype(object).fillna(False).astype(float).to_numpy()


def model_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per model with its family, sub-family, instruct flag, params and tokens."""
    frame = pd.DataFrame({
        "model": table["model"].astype(str).to_numpy(),
        "family": table["family"].astype(str).to_numpy(),
        "subfamily": _subfamily(table).to_numpy(),
        "instruct": _instruct(table),
        "params": table["params"].astype(float).to_numpy(),
        "tokens": table["tokens"].astype(float).to_numpy(),
    })
    return frame.drop_duplicates("model").sort_values("model").reset_index(drop=True)


def base_subfamilies(models: pd.DataFrame) -> set[str]:
    """Return the base lineage of each family (the sub-family whose offset is 0).

    A family's intercept is its base lineage's efficiency; chat, instruct and fine-tune
    lineages are offsets from it. The base is the sub-family named like the family if
    there is one, else the one with the most base (not instruction-tuned) models, then
    the most models, then the first name. Fixing one offset per family removes the
    ridge ``a_f + offset_s`` that a family with a single sub-family would otherwise have.

    Parameters
    ----------
    models : DataFrame
        One row per model with ``family``, ``subfamily`` and ``instruct``.
    """
    counts = (models.assign(is_base=np.asarray(models["instruct"], float) == 0)
              .groupby(["family", "subfamily"])["is_base"].agg(["sum", "size"]))
    base = set()
    for fam, subs in counts.groupby(level="family"):
        names = [str(sub) for sub in subs.index.get_level_values("subfamily")]
        if str(fam) in names:
            base.add(str(fam))
            continue
        ranked = sorted(zip(-subs["sum"].to_numpy(), -subs["size"].to_numpy(), names,
                            strict=True))
        base.add(ranked[0][2])
    return base


def chance_floors(table: pd.DataFrame, benchmarks: list[str]) -> np.ndarray:
    """Chance floor per benchmark from the ``chance`` column (0 if absent)."""
    if "chance" not in table:
        return np.zeros(len(benchmarks))
    per = table.groupby("benchmark")["chance"].first()
    return np.array([float(per.get(b, 0.0)) if pd.notna(per.get(b, np.nan)) else 0.0
                     for b in benchmarks])


def make_design(spec: ModelSpec, table: pd.DataFrame) -> Design:
    """Build the index structure of ``table`` (a canonical long benchmark table)."""
    opt = _options(spec)
    models = model_table(table)
    benchmarks = sorted(table["benchmark"].astype(str).unique())
    anchors = [a for a in opt["anchors"] if a in benchmarks][: opt["d"]]
    families = sorted(models["family"].unique())
    subfamilies = sorted(models["subfamily"].unique())
    raw = _log_covariates(models["params"], models["tokens"])
    x_mean, x_sd = raw.mean(axis=0), raw.std(axis=0)
    x_sd = np.where(x_sd > 0, x_sd, 1.0)
    obs = table[table["score"].notna()]
    cell_model = pd.Categorical(obs["model"].astype(str), categories=models["model"]).codes
    cell_bench = pd.Categorical(obs["benchmark"].astype(str), categories=benchmarks).codes
    y = np.clip(obs["score"].astype(float).to_numpy(), opt["clip"], 1 - opt["clip"])
    n_items = None
    if opt["likelihood"] != "beta":
        n_items = obs["n_items"].astype(float).to_numpy()
    return Design(
        models=models, families=families, subfamilies=subfamilies, benchmarks=benchmarks,
        anchors=anchors, x=(raw - x_mean) / x_sd, x_mean=x_mean, x_sd=x_sd,
        family_idx=pd.Categorical(models["family"], categories=families).codes.astype(int),
        sub_idx=pd.Categorical(models["subfamily"], categories=subfamilies).codes.astype(int),
        cell_model=cell_model.astype(int), cell_bench=cell_bench.astype(int), y=y,
        n_items=n_items, chance=chance_floors(table, benchmarks),
        derived=sorted(set(subfamilies) - base_subfamilies(models)),
    )


def loading_structure(benchmarks: list[str], anchors: list[str], d: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Free and diagonal positions of the lower-triangular-on-anchors loading matrix.

    Returns
    -------
    free_rows, free_cols : ndarray
        Positions of the unconstrained loadings.
    anchor_rows : ndarray (d,)
        Row of anchor k (its loading on skill k is fixed to 1).
    labels : list of str
        ``benchmark:skill`` labels of the free loadings.
    """
    anchor_rows = np.array([benchmarks.index(a) for a in anchors], dtype=int)
    rows, cols, labels = [], [], []
    for j, bench in enumerate(benchmarks):
        if bench in anchors:
            allowed = ()  # anchor k loads only on skill k, with loading 1
        else:
            allowed = range(d)
        for s in allowed:
            rows.append(j)
            cols.append(s)
            labels.append(f"{bench}:{s}")
    return np.array(rows, int), np.array(cols, int), anchor_rows, labels


def free_benchmarks(des: Design) -> list[str]:
    """Benchmarks that are not anchors (free loadings, own instruct shift), in order."""
    return [b for b in des.benchmarks if b not in des.anchors]


def learned_ceilings(spec: ModelSpec, des: Design) -> list[str]:
    """Benchmarks that learn a ceiling, in the design's order.

    All but those in ``[skills] no_ceiling``; none without ``[skills] ceiling``.
    """
    opt = _options(spec)
    if not opt["ceiling"]:
        return []
    return [b for b in des.benchmarks if b not in opt["no_ceiling"]]


# ------------------------------------------------------- maths shared by fit and predict
def sigmoid(v, xp):
    """Logistic function for NumPy (``xp=np``) or PyTensor (``xp=pt``)."""
    if xp is np:
        return 0.5 * (1.0 + np.tanh(0.5 * v))
    import pytensor.tensor as pt

    return pt.sigmoid(v)


def linear_predictor(p: dict[str, Any], x, family_idx, sub_idx, instruct, xp):
    """Skills of each model, ``(..., n_models, d)``.

    ``p`` holds ``B (..., 3, d)``, ``a_family (..., F, d)`` and optionally
    ``sub_offset (..., S, d)``, ``slope_offset (..., F, d)``, ``model_offset
    (..., n_models, d)``, ``delta (..., d)``. With NumPy the leading dims are
    (sample,); with PyTensor there are none.
    """
    if xp is np:
        theta = np.einsum("mc,...cd->...md", x, p["B"])
        theta = theta + p["a_family"][..., family_idx, :]
        if "sub_offset" in p:
            theta = theta + p["sub_offset"][..., sub_idx, :]
        if "slope_offset" in p:
            theta = theta + p["slope_offset"][..., family_idx, :] * x[:, :1]
        if "delta" in p:
            theta = theta + p["delta"][..., None, :] * instruct[:, None]
        if "model_offset" in p:
            theta = theta + p["model_offset"]
        return theta
    theta = xp.dot(x, p["B"]) + p["a_family"][family_idx]
    if "sub_offset" in p:
        theta = theta + p["sub_offset"][sub_idx]
    if "slope_offset" in p:
        theta = theta + p["slope_offset"][family_idx] * x[:, :1]
    if "delta" in p:
        theta = theta + p["delta"][None, :] * instruct[:, None]
    if "model_offset" in p:
        theta = theta + p["model_offset"]
    return theta


def cell_mean(theta, loadings, intercept, chance, cell_model, cell_bench, xp, ceiling=None,
              instruct=None, instruct_excess=None):
    """Mean accuracy of each cell: ``c + (u - c) * sigmoid(lambda' theta + b + g i)``.

    ``u`` is the benchmark's upper asymptote ``ceiling`` (absolute accuracy, ``(...,
    n_benchmarks)``), 1 when ``ceiling`` is None. ``g`` is the benchmark's own shift of
    instruction-tuned models ``instruct_excess`` (``(..., n_benchmarks)``, 0 on the
    anchors) and ``i`` the model's ``instruct`` flag (``(n_models,)``); both None when
    the model has no such shift.
    """
    if xp is np:
        th = theta[..., cell_model, :]
        lam = loadings[..., cell_bench, :]
        eta = (th * lam).sum(-1) + intercept[..., cell_bench]
        if instruct_excess is not None:
            eta = eta + np.asarray(instruct, float)[cell_model] * instruct_excess[..., cell_bench]
    else:
        # every (model, benchmark) logit by one product, then one flat gather: cheaper to
        # differentiate than gathering a row of theta and of the loadings per cell
        n_bench = len(chance)
        eta_all = xp.dot(theta, loadings.T) + intercept[None, :]
        if instruct_excess is not None:
            eta_all = eta_all + np.asarray(instruct, float)[:, None] * instruct_excess[None, :]
        flat = np.asarray(cell_model) * n_bench + np.asarray(cell_bench)
        eta = eta_all.ravel()[flat]
    c = chance[cell_bench]
    top = 1.0 if ceiling is None else ceiling[..., cell_bench]
    return c + (top - c) * sigmoid(eta, xp)


def posterior_cell_mean(post, theta, chance, cell_model, cell_bench, instruct):
    """:func:`cell_mean` with the benchmark parameters of posterior draws ``post`` (NumPy).

    ``theta`` is ``(sample, n_models, d)`` from :func:`linear_predictor` and
    ``instruct`` the models' instruct flags ``(n_models,)``; returns
    ``(sample, n_cells)``.
    """
    ceiling = _stack(post, "ceiling") if "ceiling" in post else None
    excess = _stack(post, "instruct_excess") if "instruct_excess" in post else None
    return cell_mean(theta, _stack(post, "loadings"), _stack(post, "intercept"), chance,
                     cell_model, cell_bench, np, ceiling=ceiling, instruct=instruct,
                     instruct_excess=excess)


def beta_logp(y, mu, phi):
    """Log density of ``Beta(mu * phi, (1 - mu) * phi)`` at ``y`` (NumPy)."""
    from scipy.special import gammaln

    a, b = mu * phi, (1 - mu) * phi
    return (gammaln(phi) - gammaln(a) - gammaln(b) + (a - 1) * np.log(y)
            + (b - 1) * np.log1p(-y))


def censored_beta_logp(y, mu, phi, clip: float):
    """Log likelihood of scores under the Beta likelihood censored at ``clip`` (NumPy).

    A score at ``clip`` (a stored 0.00) contributes ``log P(score <= clip)``, one at
    ``1 - clip`` contributes ``log P(score >= 1 - clip)``, any other its log density.
    ``y`` is the clipped score (as in :attr:`Design.y`); broadcasting as in
    :func:`beta_logp`.
    """
    from scipy import stats

    y, mu, phi = np.broadcast_arrays(y, mu, phi)
    out = beta_logp(np.clip(y, clip, 1 - clip), mu, phi)
    low, high = y <= clip, y >= 1 - clip
    a, b = mu * phi, (1 - mu) * phi
    out[low] = stats.beta.logcdf(clip, a[low], b[low])
    out[high] = stats.beta.logcdf(clip, b[high], a[high])
    return out


def censored_beta_logp_pt(value, mu, phi, bench, clip: float):
    """PyTensor version of :func:`censored_beta_logp`, one entry per cell.

    ``phi`` is the precision of each benchmark and ``bench`` the benchmark index of
    each cell: ``log Gamma(phi)`` is computed once per benchmark rather than per cell.
    Everything else, the censored cells' log CDF included, is one fused Op
    (:class:`bayescale.kinds.beta_kernel.BetaCellLogp`) that returns each cell's log
    density with its derivatives; it chooses the censored cells from ``value`` at run
    time, so swapping the observed data (simulation refits) re-selects them. It halved
    the full fit's log density and gradient time (163 to 81 us) against the same
    likelihood written with PyTensor's element-wise log-gamma and a fixed-length series.
    There are no parameter checks: ``mu`` lies between the chance floor and the ceiling
    and ``phi`` is positive, so ``a`` and ``b`` are positive unless the mean saturates in
    floating point, where the density is -inf as the checked one would be.
    """
    import pytensor.tensor as pt

    from bayescale.kinds.beta_kernel import beta_cell_logp_pt

    phi_cell = phi[bench]
    a = mu * phi_cell
    return pt.gammaln(phi)[bench] + beta_cell_logp_pt(value, a, phi_cell - a, clip)


# ---------------------------------------------------------------------- the kind
class SkillsKind:
    """The ``skills`` model kind (Sloth-style latent skills, fit with NUTS)."""

    name = "skills"
    data_kind = "benchmark"
    observed_name = "score"
    #: ``pm.Data`` holding the observed scores (Beta likelihood), swapped by refits.
    observed_data_name = "score_data"

    # ------------------------------------------------------------------ spec
    def validate_spec(self, spec: ModelSpec) -> None:
        """Check the ``[skills]``, ``[hierarchy]``, ``[likelihood]`` and ``[priors]`` sections."""
        where = spec.path or spec.name
        unknown = set(spec.skills) - _SKILL_KEYS
        if unknown:
            raise SpecError(f"{where}: unknown [skills] key(s) {', '.join(sorted(unknown))} "
                            f"(allowed: {', '.join(sorted(_SKILL_KEYS))})")
        d = spec.skills.get("d", 2)
        if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= MAX_SKILLS:
            raise SpecError(f"{where}: [skills] d must be an integer from 1 to {MAX_SKILLS}, "
                            f"got {d!r}")
        anchors = spec.skills.get("anchors", list(DEFAULT_ANCHORS))
        if not isinstance(anchors, list) or not all(isinstance(a, str) for a in anchors):
            raise SpecError(f"{where}: [skills] anchors must be a list of benchmark names")
        if len(anchors) < d:
            raise SpecError(f"{where}: [skills] needs at least d = {d} anchors, got "
                            f"{len(anchors)}")
        if len(set(anchors)) != len(anchors):
            raise SpecError(f"{where}: [skills] anchors contain duplicates")
        for key in _SWITCHES:
            if key in spec.skills and not isinstance(spec.skills[key], bool):
                raise SpecError(f"{where}: [skills] {key} must be true or false")
        no_ceiling = spec.skills.get("no_ceiling", [])
        if not isinstance(no_ceiling, list) or not all(isinstance(b, str) for b in no_ceiling):
            raise SpecError(f"{where}: [skills] no_ceiling must be a list of benchmark names")
        clip = spec.skills.get("clip", 0.005)
        if isinstance(clip, bool) or not isinstance(clip, int | float) or not 0 < clip < 0.1:
            raise SpecError(f"{where}: [skills] clip must be a number in (0, 0.1)")
        unknown = set(spec.hierarchy) - {"group", "subgroup"}
        if unknown:
            raise SpecError(f"{where}: unknown [hierarchy] key(s) {', '.join(sorted(unknown))}")
        if spec.hierarchy.get("group", "family") != "family":
            raise SpecError(f"{where}: [hierarchy] group must be 'family' for a skills model")
        if spec.hierarchy.get("subgroup", "subfamily") not in ("subfamily", "none"):
            raise SpecError(f"{where}: [hierarchy] subgroup must be 'subfamily' or 'none'")
        unknown = set(spec.likelihood) - {"distribution"}
        if unknown:
            raise SpecError(f"{where}: unknown [likelihood] key(s) {', '.join(sorted(unknown))}")
        if spec.likelihood.get("distribution", "beta") not in LIKELIHOODS:
            raise SpecError(f"{where}: [likelihood] distribution must be one of "
                            f"{', '.join(LIKELIHOODS)}")
        if (spec.likelihood.get("distribution", "beta") == "beta"
                and spec.sampler.get("backend") == "numpyro"):
            raise SpecError(f"{where}: the skills kind's Beta likelihood is a compiled numba "
                            f"kernel (bayescale.kinds.beta_kernel) with no JAX version: use "
                            f"the sampler 'nutpie' or 'pymc', not 'numpyro'")
        need = required_priors(spec)
        missing = need - set(spec.priors)
        if missing:
            raise SpecError(f"{where}: [priors] lacks {', '.join(sorted(missing))}")
        # priors of components switched off may stay in the file (easy toggling)
        extra = set(spec.priors) - need - _OPTIONAL_PRIORS
        if extra:
            raise SpecError(f"{where}: [priors] has prior(s) the model does not use: "
                            f"{', '.join(sorted(extra))}")
        for pname in ("sigma_family", "phi", "tau_sub", "tau_slope", "tau_model"):
            if pname in need and not spec.priors[pname].positive:
                raise SpecError(f"{where}: prior '{pname}' must have positive support "
                                f"(got {spec.priors[pname].describe()})")
        for pname in ("B", "loading", "intercept", "delta", "instruct_benchmark"):
            if pname in need and spec.priors[pname].positive:
                raise SpecError(f"{where}: prior '{pname}' must have support on the whole "
                                f"real line (got {spec.priors[pname].describe()})")
        if "ceiling" in need and spec.priors["ceiling"].dist != "Beta":
            raise SpecError(f"{where}: prior 'ceiling' must be a Beta (the share of the way "
                            f"from chance to 1 a benchmark can reach; got "
                            f"{spec.priors['ceiling'].describe()})")
        if "family_correlation" in need and spec.priors["family_correlation"].dist != "LKJCorr":
            raise SpecError(f"{where}: prior 'family_correlation' must be an LKJCorr "
                            f"(got {spec.priors['family_correlation'].describe()})")
        unknown = set(spec.requirements) - {"min_models", "min_families"}
        if unknown:
            raise SpecError(f"{where}: unknown [requirements] key(s) "
                            f"{', '.join(sorted(unknown))}")

    # ------------------------------------------------------------------ data
    def required_columns(self, spec: ModelSpec) -> list[str]:
        """Columns a prediction row needs."""
        return ["model", "family", "params", "tokens", "benchmark"]

    def check_data(self, spec: ModelSpec, table: pd.DataFrame, source: str) -> None:
        """Check that the benchmark table can be fit with this spec."""
        opt = _options(spec)
        for col in ("model", "family", "params", "tokens", "benchmark", "score"):
            if col not in table:
                raise DataError(f"a skills model needs column '{col}'", source=source,
                                column=col)
        if opt["likelihood"] != "beta":
            if "n_items" not in table or table.loc[table["score"].notna(),
                                                   "n_items"].isna().any():
                raise DataError(f"likelihood '{opt['likelihood']}' needs n_items for every "
                                "observed score", source=source, column="n_items")
        bad = table[(table["params"].astype(float) <= 0) | (table["tokens"].astype(float) <= 0)
                    | table["params"].isna() | table["tokens"].isna()]
        if len(bad):
            raise DataError(f"{bad['model'].nunique()} model(s) lack positive params/tokens "
                            f"(e.g. {', '.join(sorted(bad['model'].astype(str).unique())[:5])})",
                            source=source, column="tokens")
        scores = table["score"].dropna().astype(float)
        if ((scores < 0) | (scores > 1)).any():
            raise DataError("scores must be accuracies in [0, 1]", source=source,
                            column="score")
        benchmarks = sorted(table["benchmark"].astype(str).unique())
        anchors = [a for a in opt["anchors"] if a in benchmarks]
        if len(anchors) < opt["d"]:
            raise DataError(f"spec '{spec.name}' needs d = {opt['d']} anchor benchmarks "
                            f"among {', '.join(opt['anchors'])}; the data has "
                            f"{', '.join(anchors) or 'none'}",
                            source=source, column="benchmark")
        n_models = table["model"].nunique()
        if n_models < int(spec.requirements.get("min_models", 5)):
            raise DataError(f"spec '{spec.name}' needs at least "
                            f"{spec.requirements.get('min_models', 5)} models, got {n_models}",
                            source=source)
        n_fam = table["family"].nunique()
        if n_fam < int(spec.requirements.get("min_families", 2)):
            raise DataError(f"spec '{spec.name}' needs at least "
                            f"{spec.requirements.get('min_families', 2)} families, got {n_fam}",
                            source=source, column="family")

    def coords(self, spec: ModelSpec, table: pd.DataFrame) -> dict[str, list]:
        """Named coordinates of the fit model."""
        return self._coords(spec, make_design(spec, table))

    def _coords(self, spec: ModelSpec, des: Design) -> dict[str, list]:
        d = _options(spec)["d"]
        *_, labels = loading_structure(des.benchmarks, des.anchors, d)
        skills = [f"skill{k + 1}" for k in range(d)]
        return {"skill": skills, "skill_other": skills, "covariate": list(COVARIATES),
                "family": des.families, "family_free": list(range(len(des.families) - 1)),
                "subfamily": des.subfamilies,
                "derived_subfamily": des.derived,
                "model": list(des.models["model"]), "benchmark": des.benchmarks,
                "loading_free": labels,
                "benchmark_free": free_benchmarks(des),
                "benchmark_ceiling": learned_ceilings(spec, des),
                "cell": list(range(des.n_cells))}

    # ------------------------------------------------------------------ model
    def _parameters(self, spec: ModelSpec, des: Design) -> dict[str, Any]:
        """Create every parameter in the current model; return the tensors the law needs."""
        import pymc as pm
        import pytensor.tensor as pt

        opt = _options(spec)
        d, J = opt["d"], len(des.benchmarks)
        pri = spec.priors
        out: dict[str, Any] = {}
        out["B"] = pri["B"].create("B", dims=("covariate", "skill"))
        sigma_f = pri["sigma_family"].create("sigma_family", dims="skill")
        # zero-sum over families: the overall level of a skill is carried by the
        # benchmark intercepts alone (no level ridge between a_f and b_j). Centred: a
        # family's several models on several benchmarks pin its intercept, and the
        # non-centred form then couples z_f with sigma_family.
        if opt["family_correlation"]:
            # a_f ~ MvNormal(0, Sigma), Sigma = diag(sigma) R diag(sigma), R ~ LKJ: a
            # family efficient on one skill tends to be efficient on the others, so a
            # family seen on few benchmarks (or at its chance floor on some) borrows
            # across skills. Zero sum over families exactly as ZeroSumNormal does it:
            # F - 1 centred rows r ~ MvNormal(0, Sigma), mapped into the zero-sum
            # subspace by PyMC's ZeroSumTransform embedding U (an isometry, close to the
            # identity), so vec(a) ~ N(0, Sigma x (I - 11'/F)): the iid-rows law
            # conditioned on summing to zero, with no direction the data leave free.
            # (Sampling r for all F rows and subtracting their mean leaves that mean
            # to its prior, a direction correlated with every family that slowed NUTS
            # by half on the full fit.)
            from pymc.distributions.transforms import ZeroSumTransform

            corr_chol = pri["family_correlation"].create("family_corr_chol", n=d)
            out["family_corr"] = pm.Deterministic(
                "family_corr", corr_chol @ corr_chol.T, dims=("skill", "skill_other"))
            free = pm.MvNormal("a_family_free", mu=pt.zeros(d),
                               chol=sigma_f[:, None] * corr_chol,
                               dims=("family_free", "skill"))
            out["a_family"] = pm.Deterministic(
                "a_family", ZeroSumTransform.extend_axis(free, axis=0),
                dims=("family", "skill"))
        else:
            # (ZeroSumNormal sums over its last axis, hence the (skill, family) layout)
            a_t = pm.ZeroSumNormal("a_family_t", sigma=sigma_f[:, None],
                                   dims=("skill", "family"))
            out["a_family"] = pm.Deterministic("a_family", a_t.T, dims=("family", "skill"))
        if opt["instruct"]:
            out["delta"] = pri["delta"].create("delta", dims="skill")
        if opt["subfamily"] and spec.hierarchy.get("subgroup", "subfamily") == "subfamily":
            # base lineages have offset 0; derived ones are CENTRED draws: a lineage's
            # several models on several benchmarks pin its offset well, and the
            # non-centred form made a funnel of tau_sub (ESS 35 on the full fit).
            # The total shift of an instruct lineage, delta + offset, is sampled
            # (centred on delta) rather than the offset: most instruct models sit in
            # derived lineages, where delta and the offsets are otherwise a ridge. The
            # model is unchanged: sub_offset ~ N(0, tau_sub).
            tau = pri["tau_sub"].create("tau_sub", dims="skill")
            offset = pt.zeros((len(des.subfamilies), d))
            if des.derived:
                rows_ = np.array([des.subfamilies.index(s_) for s_ in des.derived])
                share = (des.models.groupby("subfamily")["instruct"].mean()
                         .reindex(des.derived).to_numpy(float))[:, None]
                shift = out["delta"][None, :] * share if "delta" in out else 0.0
                total = pm.Normal("sub_shift", shift, tau, dims=("derived_subfamily", "skill"))
                offset = pt.set_subtensor(offset[rows_], total - shift)
            out["sub_offset"] = pm.Deterministic("sub_offset", offset,
                                                 dims=("subfamily", "skill"))
        if opt["family_slope"]:
            tau = pri["tau_slope"].create("tau_slope", dims="skill")
            # zero-sum: B is the average family's size slope
            z = pm.ZeroSumNormal("slope_z", sigma=1.0, dims=("skill", "family"))
            out["slope_offset"] = pm.Deterministic("slope_offset", z.T * tau,
                                                   dims=("family", "skill"))
        if opt["model_effect"]:
            tau = pri["tau_model"].create("tau_model", dims="skill")
            z = pm.Normal("model_z", 0.0, 1.0, dims=("model", "skill"))
            out["model_offset"] = z * tau
        rows, cols, anchor_rows, _ = loading_structure(des.benchmarks, des.anchors, d)
        free = pri["loading"].create("loading", dims="loading_free")
        lam = pt.zeros((J, d))
        if len(rows):
            lam = pt.set_subtensor(lam[rows, cols], free)
        lam = pt.set_subtensor(lam[anchor_rows, np.arange(d)], 1.0)
        out["loadings"] = pm.Deterministic("loadings", lam, dims=("benchmark", "skill"))
        out["intercept"] = pri["intercept"].create("intercept", dims="benchmark")
        if opt["instruct_benchmark"]:
            # a benchmark's own shift of instruction-tuned models beyond the skills' delta
            # (IFEval's format instructions, TruthfulQA's answers that chat tuning
            # changes); 0 on the anchors, whose instruct shift IS delta (all 0 when
            # every benchmark is an anchor)
            excess = pt.zeros(J)
            free_rows = np.array([des.benchmarks.index(b) for b in free_benchmarks(des)], int)
            if len(free_rows):
                free_excess = pri["instruct_benchmark"].create("instruct_excess_free",
                                                               dims="benchmark_free")
                excess = pt.set_subtensor(excess[free_rows], free_excess)
            out["instruct_excess"] = pm.Deterministic("instruct_excess", excess,
                                                      dims="benchmark")
        if opt["ceiling"]:
            # upper asymptote u_j = c_j + (1 - c_j) f_j: the share f_j of the way from
            # chance to 1 that the benchmark's best models can reach (label noise,
            # ambiguous items, scoring that no model satisfies)
            learned = learned_ceilings(spec, des)
            if len(learned) == J:
                frac = pri["ceiling"].create("ceiling_frac", dims="benchmark")
            else:
                # benchmarks in [skills] no_ceiling keep u = 1 (f = 1)
                rows_ = np.array([des.benchmarks.index(b) for b in learned], int)
                frac = pt.ones(J)
                if len(rows_):
                    learned_frac = pri["ceiling"].create("ceiling_frac",
                                                         dims="benchmark_ceiling")
                    frac = pt.set_subtensor(frac[rows_], learned_frac)
            out["ceiling"] = pm.Deterministic("ceiling", des.chance + (1 - des.chance) * frac,
                                              dims="benchmark")
        if opt["likelihood"] != "binomial":
            out["phi"] = pri["phi"].create("phi", dims="benchmark")
        return out

    def _mu(self, p: dict[str, Any], des: Design):
        import pytensor.tensor as pt

        theta = linear_predictor(p, des.x, des.family_idx, des.sub_idx,
                                 des.models["instruct"].to_numpy(float), pt)
        return cell_mean(theta, p["loadings"], p["intercept"], des.chance, des.cell_model,
                         des.cell_bench, pt, ceiling=p.get("ceiling"),
                         instruct=des.models["instruct"].to_numpy(float),
                         instruct_excess=p.get("instruct_excess"))

    def build(self, spec: ModelSpec, table: pd.DataFrame) -> pm.Model:
        """Build the fit model: every observed cell of ``table`` enters the likelihood."""
        import pymc as pm
        import pytensor.tensor as pt

        des = make_design(spec, table)
        opt = _options(spec)
        with pm.Model(coords=self._coords(spec, des)) as model:
            p = self._parameters(spec, des)
            mu = self._mu(p, des)
            if opt["likelihood"] == "beta":
                y = pm.Data(self.observed_data_name, des.y, dims="cell")
                clip = opt["clip"]
                bench = des.cell_bench

                # the precisions enter per benchmark (a core dimension), indexed by cell
                def censored(mu_, phi_, size):
                    phi_cell = phi_[bench]
                    draw = pm.Beta.dist(alpha=mu_ * phi_cell, beta=(1 - mu_) * phi_cell,
                                        size=size)
                    return pt.clip(draw, clip, 1 - clip)

                def logp(value, mu_, phi_):
                    return censored_beta_logp_pt(value, mu_, phi_, bench, clip)

                pm.CustomDist(self.observed_name, mu, p["phi"], dist=censored, logp=logp,
                              signature="(),(j)->()", observed=y, dims="cell")
            else:
                n = des.n_items
                k = np.round(des.y * n)
                if opt["likelihood"] == "binomial":
                    pm.Binomial(self.observed_name, n=n, p=mu, observed=k, dims="cell")
                else:
                    phi = p["phi"][des.cell_bench]
                    pm.BetaBinomial(self.observed_name, n=n, alpha=mu * phi,
                                    beta=(1 - mu) * phi, observed=k, dims="cell")
        log.info("skills model: %d models, %d benchmarks, %d observed cells used",
                 len(des.models), len(des.benchmarks), des.n_cells)
        return model

    def build_masked(self, spec: ModelSpec, table: pd.DataFrame) -> tuple[pm.Model, Design]:
        """Fit model whose likelihood covers only cells with ``train_mask = 1``.

        ``train_mask`` is a ``pm.Data`` vector over cells, so one compiled model serves
        every fold of a backtest (``compiled.with_data(train_mask=...)``). Held-out cells
        are predicted from the draws of the same graph. Beta likelihood only.
        """
        import pymc as pm
        import pytensor.tensor as pt

        des = make_design(spec, table)
        if _options(spec)["likelihood"] != "beta":
            raise SpecError("backtests with one compiled model support the beta likelihood only")
        with pm.Model(coords=self._coords(spec, des)) as model:
            mask = pm.Data("train_mask", np.ones(des.n_cells), dims="cell")
            p = self._parameters(spec, des)
            mu = self._mu(p, des)
            logp = censored_beta_logp_pt(des.y, mu, p["phi"], des.cell_bench,
                                         _options(spec)["clip"])
            pm.Potential("score_loglik", pt.sum(mask * logp))
        return model, des

    def simulated_table(self, design: pd.DataFrame, simulated: np.ndarray) -> pd.DataFrame:
        """``design`` with its observed scores replaced by ``simulated`` (cell order)."""
        out = design.copy()
        observed = out["score"].notna().to_numpy()
        out.loc[observed, "score"] = np.asarray(simulated, float)
        return out

    def observed_values(self, spec: ModelSpec, table: pd.DataFrame) -> np.ndarray:
        """Return the observations the fit model conditions on (clipped scores, cells)."""
        return make_design(spec, table).y

    def summary_var_names(self, spec: ModelSpec) -> list[str]:
        """Shared slopes, loadings, intercepts, precisions, then population scales."""
        opt = _options(spec)
        names = ["B", "loadings", "intercept", "sigma_family"]
        if opt["ceiling"]:
            names.insert(3, "ceiling")
        if opt["family_correlation"]:
            names.append("family_corr")
        if opt["likelihood"] != "binomial":
            names.append("phi")
        if opt["instruct"]:
            names.append("delta")
        if opt["instruct_benchmark"]:
            names.append("instruct_excess")
        for key, name in (("subfamily", "tau_sub"), ("family_slope", "tau_slope"),
                          ("model_effect", "tau_model")):
            if opt[key]:
                names.append(name)
        return names

    # ------------------------------------------------------------------ starts
    def starter(self, model: pm.Model) -> MapStarter:
        """Return a MAP optimiser of ``model`` (re-usable when its data change)."""
        return MapStarter(model)

    def initial_values(self, spec: ModelSpec, table: pd.DataFrame, model: pm.Model
                       ) -> dict[str, np.ndarray]:
        """Best of several MAP optimisations, as starting values for every chain."""
        return map_start(model, n_starts=4, maxiter=1000,
                         seed=int(spec.sampler.get("seed", 0)))

    def start_function(self, spec: ModelSpec, model: pm.Model) -> PilotStart:
        """Start function of a nutpie fit of ``model``: the pilot of a ``MapStarter``."""
        return PilotStart(MapStarter(model), target_accept=float(spec.sampler["target_accept"]),
                          adaptation=str(spec.sampler["adaptation"]))

    # ------------------------------------------------------------------ predict
    def predict(self, posterior, rows: pd.DataFrame, *, seed: int) -> xr.Dataset:
        """Posterior predictive accuracy of each row (a model on a benchmark).

        Parameters
        ----------
        posterior : bayescale.posterior.Posterior
            A fitted skills posterior.
        rows : DataFrame
            ``model, family, params, tokens, benchmark`` and optionally ``subfamily``,
            ``instruct``. Benchmarks must be ones the model was fit on. Rows of the same
            ``model`` share that model's draw of its deviation ``e``; families and
            sub-families not seen in training draw new intercepts from the population.
        seed : int
            Seed of the predictive draws.

        Returns
        -------
        xarray.Dataset
            ``mu`` (mean accuracy) and ``y`` (a new score), dims ``(chain, draw, row)``.
        """
        import xarray as xr

        spec = posterior.spec
        des = make_design(spec, posterior.fit_table)
        post = posterior.posterior
        mu = predict_mean(spec, des, post, rows, seed=seed)
        n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
        rng = np.random.default_rng(seed + 1)
        bench_idx = _bench_index(des, rows)
        mu_flat = mu.reshape(n_chain * n_draw, -1)
        y = draw_scores(spec, post, mu_flat, bench_idx, rng,
                        n_items=rows["n_items"].to_numpy(float) if "n_items" in rows else None)
        dims = ("chain", "draw", "row")
        coords = {"chain": post["chain"].values, "draw": post["draw"].values,
                  "row": np.arange(len(rows))}
        return xr.Dataset({"mu": (dims, mu), "y": (dims, y.reshape(mu.shape))}, coords=coords)


def _bench_index(des: Design, rows: pd.DataFrame) -> np.ndarray:
    unknown = sorted(set(rows["benchmark"].astype(str)) - set(des.benchmarks))
    if unknown:
        raise DataError(f"benchmark(s) {', '.join(unknown)} were not in the fit (known: "
                        f"{', '.join(des.benchmarks)})", source="prediction rows",
                        column="benchmark")
    return pd.Categorical(rows["benchmark"].astype(str), categories=des.benchmarks).codes


def _stack(post, name: str) -> np.ndarray:
    da = post[name]
    return da.values.reshape((-1, *da.shape[2:]))


def draw_scores(spec: ModelSpec, post, mu_flat: np.ndarray, bench_idx: np.ndarray, rng,
                n_items: np.ndarray | None = None) -> np.ndarray:
    """Draw a new score per (sample, row) given mean accuracies ``mu_flat`` (sample, row)."""
    lik = _options(spec)["likelihood"]
    mu_c = np.clip(mu_flat, 1e-9, 1 - 1e-9)
    if lik == "binomial" or (lik == "beta_binomial" and n_items is not None):
        n = np.broadcast_to(np.nan_to_num(n_items, nan=100.0), mu_c.shape).astype(int)
        if lik == "binomial":
            return rng.binomial(n, mu_c) / n
        phi = _stack(post, "phi")[:, bench_idx]
        return rng.binomial(n, rng.beta(mu_c * phi, (1 - mu_c) * phi)) / n
    phi = _stack(post, "phi")[:, bench_idx]
    return rng.beta(mu_c * phi, (1 - mu_c) * phi)


def predict_mean(spec: ModelSpec, des: Design, post, rows: pd.DataFrame, *, seed: int
                 ) -> np.ndarray:
    """Draws of the mean accuracy ``mu`` for prediction rows, shape (chain, draw, row)."""
    opt = _options(spec)
    rng = np.random.default_rng(seed)
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    n_s = n_chain * n_draw
    d = opt["d"]
    rows = rows.reset_index(drop=True)
    bench_idx = _bench_index(des, rows)
    frame = rows.copy()
    if "subfamily" not in frame:
        frame["subfamily"] = frame["family"]
    new_models = model_table(frame.assign(score=np.nan))
    x = (_log_covariates(new_models["params"], new_models["tokens"]) - des.x_mean) / des.x_sd
    p: dict[str, np.ndarray] = {"B": _stack(post, "B")}

    def extend(known: np.ndarray, labels: list[str], wanted: pd.Series, scale,
               zero: set[str] = frozenset()):
        """Append draws for unseen labels.

        ``scale`` is (sample, d) sds or a (sample, d, d) Cholesky factor of their
        covariance.
        """
        new = sorted(set(wanted) - set(labels))
        if new:
            fresh = rng.standard_normal((n_s, len(new), d))
            if scale is not None and scale.ndim == 3:
                fresh = np.einsum("sij,snj->sni", scale, fresh)
            elif scale is not None:
                fresh = fresh * scale[:, None, :]
            fresh[:, [k for k, name in enumerate(new) if name in zero], :] = 0.0
            known = np.concatenate([known, fresh], axis=1)
        idx = pd.Categorical(wanted, categories=list(labels) + new).codes
        return known, idx

    family_scale = _stack(post, "sigma_family")
    if "family_corr" in post:
        # Cholesky factor of diag(sigma) R diag(sigma), per draw
        family_scale = (family_scale[:, :, None]
                        * np.linalg.cholesky(_stack(post, "family_corr")))
    a, fam_idx = extend(_stack(post, "a_family"), des.families, new_models["family"],
                        family_scale)
    p["a_family"] = a
    sub_idx = np.zeros(len(new_models), dtype=int)
    if "sub_offset" in post:
        # the base lineage of an unseen family has offset 0, as in the fit
        unseen = new_models[~new_models["family"].isin(des.families)]
        p["sub_offset"], sub_idx = extend(_stack(post, "sub_offset"), des.subfamilies,
                                          new_models["subfamily"], _stack(post, "tau_sub"),
                                          zero=base_subfamilies(unseen))
    if "slope_offset" in post:
        p["slope_offset"], _ = extend(_stack(post, "slope_offset"), des.families,
                                      new_models["family"], _stack(post, "tau_slope"))
    if "delta" in post:
        p["delta"] = _stack(post, "delta")
    if "tau_model" in post:
        p["model_offset"] = (rng.standard_normal((n_s, len(new_models), d))
                             * _stack(post, "tau_model")[:, None, :])
    theta = linear_predictor(p, x, fam_idx, sub_idx, new_models["instruct"].to_numpy(float),
                             np)
    model_idx = pd.Categorical(rows["model"].astype(str), categories=new_models["model"]).codes
    mu = posterior_cell_mean(post, theta, des.chance, model_idx, bench_idx,
                             new_models["instruct"].to_numpy(float))
    return mu.reshape(n_chain, n_draw, len(rows))


# ---------------------------------------------------------------------- MAP starts
class MapStarter:
    """The log posterior of a model, for best-of-several MAP starting points.

    The optimisations evaluate the log posterior and its gradient with the compiled
    code that will sample: :meth:`pilot` hands them nutpie's compiled log density (a
    native function, called with the compiled model's current data), so a nutpie fit
    compiles its model once. Only :meth:`flat` called before any pilot (the MAP
    ``initvals`` of the other samplers) compiles a PyTensor function of its own, on
    first use; that one reads the model's ``pm.Data``, which may change between calls
    (``model[name].set_value``). On the full leaderboard fit, sharing nutpie's
    function removed a 5.6 s compilation from every fit and backtest.

    Parameters
    ----------
    model : pm.Model
        The model whose free variables are optimised.

    Attributes
    ----------
    optima : list of float
        Log posterior reached by each optimisation of the last call, in the order they
        rank (the start first): when they differ by more than a few units, the
        posterior has competing local modes.
    collapsed : list of bool
        Whether each of those optima has a population scale below the floor (a
        funnel neck; ranked last).
    pilot_logp : list of float
        Mean log density of each chain of the last ``pilot`` run.
    pilot_logp_sd : float
        Mean over those chains of the sd of their log density.
    """

    #: Tree depth cap of the pilot chains. Early warm-up from a MAP optimum builds deep
    #: trees with tiny steps; the pilot only has to reach a mode's typical set. On the
    #: full fit a cap of 7 (at most 128 gradients per draw) cut the pilot from 18.6 to
    #: 13.1 s with the chains' mean log densities unchanged within their sd.
    pilot_maxdepth = 7

    def __init__(self, model: pm.Model) -> None:
        self.model = model
        self._objective: Callable[[np.ndarray], tuple[float, np.ndarray]] | None = None
        self.names = [v.name for v in model.value_vars]
        ip = model.initial_point()
        self.shapes = [np.shape(ip[n]) for n in self.names]
        self._base = np.concatenate([np.ravel(ip[n]) for n in self.names])
        self.optima: list[float] = []
        self.collapsed: list[bool] = []
        self.pilot_logp: list[float] = []
        self.pilot_logp_sd = float("nan")

    def _split(self, x: np.ndarray) -> list[np.ndarray]:
        out, c = [], 0
        for shp in self.shapes:
            n = int(np.prod(shp))
            out.append(x[c:c + n].reshape(shp))
            c += n
        return out

    def _negative(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        if self._objective is None:
            self._objective = self._compile_pytensor()
        lp, g = self._objective(x)
        return -lp, -g

    def _compile_pytensor(self) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
        """Log posterior and gradient of the flat point, compiled by PyTensor (C)."""
        import pymc as pm

        value_vars = self.model.value_vars
        logp = self.model.logp(jacobian=True)
        dlogp = pm.pytensorf.gradient(logp, value_vars)
        fn = pm.pytensorf.compile([*value_vars], [logp, dlogp], mode="FAST_RUN")

        def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
            lp, g = fn(*self._split(x))
            return float(lp), np.asarray(g, float)

        return objective

    def use_compiled(self, compiled) -> None:
        """Evaluate the log posterior with nutpie's compiled model ``compiled``.

        ``compiled.compiled_logp_func`` is the native function nutpie samples with
        (log density with the Jacobian of the transforms, and its gradient, in the flat
        order of ``model.value_vars``); it is called through ctypes with
        ``compiled.user_data``, the compiled model's current data (a ``with_data`` copy
        carries its own).
        """
        import ctypes

        if compiled.n_dim != self._base.size:
            raise RuntimeError("the compiled model does not match the starter's model")
        func = compiled.compiled_logp_func.ctypes
        user_data = compiled.user_data
        n_dim = compiled.n_dim
        as_double = ctypes.POINTER(ctypes.c_double)

        def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
            x = np.ascontiguousarray(x, dtype=float)
            grad = np.empty(n_dim)
            logp = np.empty(())
            # non-zero codes flag a non-finite value or gradient, which the values show
            func(n_dim, x.ctypes.data_as(as_double), grad.ctypes.data_as(as_double),
                 logp.ctypes.data_as(as_double), user_data.ctypes.data_as(ctypes.c_void_p))
            return float(logp), grad

        self._objective = objective

    def flat(self, *, seed: int | list[int] = 0, n_starts: int = 2, maxiter: int = 1000,
             floor_scales: float = 0.05) -> np.ndarray:
        """Best of ``n_starts`` L-BFGS optimisations, flat on the unconstrained scale.

        Each optimisation starts from the model's initial point with a U(-1, 1) jitter
        on the unconstrained scale. Population scales (``tau_*``, ``sigma_*``) are
        floored at ``floor_scales`` so that chains do not start in the neck of a funnel.
        The order is that of ``model.value_vars`` (nutpie's flat order). ``optima`` and
        ``collapsed`` report the optimisations.
        """
        best, self.optima, self.collapsed = self._best_optimum(
            seed=seed, n_starts=n_starts, maxiter=maxiter, floor_scales=floor_scales)
        if len(self.optima) > 1 and max(self.optima) - min(self.optima) > 5:
            log.info("MAP optimisations reached different optima (log posterior %s): "
                     "competing local modes; chains start at the best without a collapsed "
                     "scale", ", ".join(f"{v:.1f}{' (collapsed)' if c else ''}"
                                        for v, c in zip(self.optima, self.collapsed,
                                                        strict=True)))
        return best

    def _best_optimum(self, *, seed: int | list[int], n_starts: int, maxiter: int,
                      floor_scales: float, abort: threading.Event | None = None
                      ) -> tuple[np.ndarray, list[float], list[bool]]:
        """:meth:`flat` without touching the instance: the best point, optima, collapsed.

        Safe to call from several threads at once (nutpie's chain threads). Once
        ``abort`` is set, the next evaluation of the log posterior raises
        :class:`_Aborted`.
        """
        from scipy.optimize import minimize

        def negative(x: np.ndarray) -> tuple[float, np.ndarray]:
            if abort is not None and abort.is_set():
                raise _Aborted
            return self._negative(x)

        rng = np.random.default_rng(seed)
        results = []
        # an optimisation that leaves the finite region (a saturated mean on a benchmark
        # gives a log density of -inf) is replaced by one from another start
        max_starts = 4 * n_starts
        for _ in range(max_starts):
            if len(results) == n_starts:
                break
            x0 = self._base + rng.uniform(-1, 1, self._base.shape)
            try:
                res = minimize(negative, x0, jac=True, method="L-BFGS-B",
                               options={"maxiter": maxiter, "maxfun": 2 * maxiter})
            except (FloatingPointError, ValueError):
                continue
            if np.isfinite(res.fun):
                results.append(res)
        if not results:
            raise DataError(f"no MAP optimisation of {max_starts} reached a finite log "
                            "posterior")
        # An optimum with a collapsed population scale is the neck of a hierarchical
        # funnel: its density grows without a matching volume, so it can out-score the
        # optimum of the bulk while holding little posterior mass. Such optima rank after
        # every optimum whose scales all stay above ``floor_scales``.
        scale_slots = self._scale_slots()
        ranked = sorted(((bool(np.any(r.x[scale_slots] < np.log(floor_scales))), r.fun, r)
                         for r in results), key=lambda t: t[:2])
        best = ranked[0][2].x.copy()
        best[scale_slots] = np.maximum(best[scale_slots], np.log(floor_scales))
        return (best, [-float(r.fun) for _, _, r in ranked],
                [collapsed for collapsed, _, _ in ranked])

    def chain_optima(self, seed: int, *, jitter: float = 0.05) -> ChainOptima:
        """Initial-point function for nutpie: each chain starts at its own MAP optimum.

        nutpie asks for the chains' starts from its sampling threads, in an order that
        varies from run to run, and passes each call the chain's own seed. The
        optimisation (one L-BFGS run from a jittered initial point) and the
        ``U(-jitter, jitter)`` added to its optimum are seeded by that seed and ``seed``,
        so every chain's start, and the run, do not depend on which thread asks first.
        Call :meth:`use_compiled` first. The errors of failed optimisations
        (``DataError``) are kept in the returned function's ``failures``: nutpie reports
        only that initialisation failed. See :class:`ChainOptima`.
        """
        return ChainOptima(self, seed, jitter)

    def pilot(self, compiled, *, chains: int, seed: int, tune: int = 150, draws: int = 50,
              target_accept: float = 0.9, adaptation: str = "diag",
              cores: int | None = None) -> np.ndarray:
        """Start point chosen by a short pilot run from ``chains`` different MAP optima.

        The log posterior of the skills model has several separated modes (different
        assignments of the free benchmarks to the skills), and NUTS chains do not cross
        between them. Chain ``k`` of the pilot starts at its own MAP optimum; after
        ``tune + draws`` steps each chain's mean log density over its draws measures the
        typical set of the mode it settled in. The main run starts every chain near the
        last draw of the best pilot chain, so its r-hat measures mixing within that mode.
        ``pilot_logp`` keeps the pilot chains' mean log densities and ``pilot_logp_sd``
        their typical within-chain sd: means further apart than that sd point to
        separated modes (:func:`separated_modes`, logged); a mode whose typical set sits
        ``g`` units lower holds roughly ``exp(-g)`` of the best one's mass when the
        modes' shapes are similar.

        Parameters
        ----------
        compiled : nutpie compiled model
            The model of this starter, compiled by nutpie, with the current data.
        chains, seed : int
            Number of pilot chains (one MAP optimisation each) and the seed.
        tune, draws : int
            Warm-up steps and draws of each pilot chain.
        target_accept, adaptation : float, str
            nutpie settings of the pilot.
        cores : int, optional
            Sampling threads.

        Returns
        -------
        ndarray
            Flat start on the unconstrained scale (nutpie's order).
        """
        import os

        self.use_compiled(compiled)
        init = self.chain_optima(seed)
        try:
            tree = sample_nutpie(dataclasses.replace(compiled, initial_point_func=init),
                                 draws=draws, tune=tune, chains=chains, seed=seed,
                                 cores=cores or min(chains, os.cpu_count() or 1),
                                 progress_bar=False, target_accept=target_accept,
                                 adaptation=adaptation, store_unconstrained=True,
                                 maxdepth=self.pilot_maxdepth)
        except RuntimeError:
            if init.failures:
                raise init.failures[0] from None
            raise
        finally:
            # nutpie raises (and an interrupt arrives) while other chains' threads may
            # still be optimising their starts: stop those before anything leaves (a
            # process that exits while they run crashes, exit status 139)
            init.stop()
        stats = tree["sample_stats"].dataset
        logp = stats["logp"].mean("draw").to_numpy()
        self.pilot_logp = [float(v) for v in logp]
        self.pilot_logp_sd = float(stats["logp"].std("draw").mean())
        best = int(np.argmax(logp))
        if separated_modes(self.pilot_logp, self.pilot_logp_sd):
            log.info("pilot chains from different MAP optima settled in different modes "
                     "(mean log density %s); the chains start in the best",
                     ", ".join(f"{v:.1f}" for v in logp))
        return np.asarray(stats["unconstrained_draw"].values[best, -1], float)

    def _scale_slots(self) -> np.ndarray:
        """Flat positions of the log population scales (``tau_*``, ``sigma_*``)."""
        slots, c = [], 0
        for name, shp in zip(self.names, self.shapes, strict=True):
            n = int(np.prod(shp))
            if name.startswith(("tau_", "sigma_")) and name.endswith("_log__"):
                slots.extend(range(c, c + n))
            c += n
        return np.asarray(slots, dtype=int)

    def constrained(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Map a flat unconstrained point to constrained values by variable name."""
        import pytensor.tensor as pt

        by_value = {self.model.rvs_to_values[rv].name: rv for rv in self.model.free_RVs}
        out = {}
        for name, val in zip(self.names, self._split(flat), strict=True):
            rv = by_value[name]
            transform = self.model.rvs_to_transforms.get(rv)
            if transform is not None:
                val = transform.backward(pt.as_tensor_variable(val), *rv.owner.inputs).eval()
            out[rv.name] = np.asarray(val, float)
        return out


class _Aborted(Exception):
    """A MAP optimisation stopped by :meth:`ChainOptima.stop`."""


class ChainOptima:
    """nutpie's initial-point function of :meth:`MapStarter.chain_optima`.

    Called from nutpie's sampling threads with each chain's seed; returns that chain's
    MAP optimum plus a small jitter. It counts the calls in progress, so that
    :meth:`stop` can end them: when one chain's start fails, nutpie raises in the main
    thread at once while other threads may still be optimising, in Python, and a
    process that exits meanwhile crashes in those threads.

    Attributes
    ----------
    failures : list of DataError
        Errors of the optimisations that reached no finite log posterior.
    """

    def __init__(self, starter: MapStarter, seed: int, jitter: float):
        self.starter = starter
        self.seed = seed
        self.failures: list[DataError] = []
        self.jitter = jitter
        self._abort = threading.Event()
        self._idle = threading.Condition()
        self._running = 0

    def __call__(self, chain_seed: int | None = None) -> np.ndarray:
        """Start of the chain whose seed is ``chain_seed``."""
        seeds = [self.seed, chain_seed or 0]
        with self._idle:
            self._running += 1
        try:
            best, _, _ = self.starter._best_optimum(seed=seeds, n_starts=1, maxiter=1000,
                                                    floor_scales=0.05, abort=self._abort)
        except DataError as err:
            self.failures.append(err)
            raise
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()
        return best + np.random.default_rng([*seeds, 1]).uniform(-self.jitter, self.jitter,
                                                                  best.size)

    def stop(self, timeout: float = 60.0) -> None:
        """Abort the optimisations in progress and wait until none runs."""
        self._abort.set()
        with self._idle:
            self._idle.wait_for(lambda: self._running == 0, timeout=timeout)


def map_start(model: pm.Model, *, n_starts: int = 4, seed: int = 0, maxiter: int = 3000,
              floor_scales: float = 0.05) -> dict[str, np.ndarray]:
    """Best of ``n_starts`` MAP optimisations as constrained ``initvals`` (see MapStarter)."""
    starter = MapStarter(model)
    best = starter.flat(seed=seed, n_starts=n_starts, maxiter=maxiter,
                        floor_scales=floor_scales)
    return starter.constrained(best)


KIND = SkillsKind()


@dataclass
class PilotStart:
    """Start function ``start(compiled, chains=, seed=)`` of a nutpie run: a pilot.

    Calling it runs :meth:`MapStarter.pilot` with the fit's sampler settings and returns
    the flat start; afterwards ``pilot_logp`` and ``pilot_logp_sd`` report the pilot's
    chains (recorded in the fit's diagnostics).
    """

    starter: MapStarter
    target_accept: float
    adaptation: str

    def __call__(self, compiled, *, chains: int, seed: int) -> np.ndarray:
        """Run the pilot on ``compiled`` and return the flat start of the main run."""
        return self.starter.pilot(compiled, chains=chains, seed=seed,
                                  target_accept=self.target_accept,
                                  adaptation=self.adaptation)

    @property
    def pilot_logp(self) -> list[float]:
        """Mean log density of each pilot chain (empty before the pilot ran)."""
        return self.starter.pilot_logp

    @property
    def pilot_logp_sd(self) -> float:
        """Typical within-chain sd of the pilot chains' log densities."""
        return self.starter.pilot_logp_sd
