"""Inference: run NUTS on a built model and compute its convergence diagnostics.

nutpie is the default sampler; PyMC's own NUTS and numpyro are selectable. Every
fit records the largest r-hat, the smallest bulk and tail ESS, the number of
divergences, the smallest BFMI and the sampling and wall times, and says which
of them failed its threshold.
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale.errors import BayescaleError, ConvergenceWarning
from bayescale.interrupts import raise_if_interrupted

if TYPE_CHECKING:
    import pymc as pm
    import xarray as xr

#: Thresholds a fit must meet (Vehtari et al. 2021 for r-hat and ESS; BFMI after Betancourt).
MAX_R_HAT = 1.01
MIN_ESS = 400
MIN_BFMI = 0.3


@dataclass
class Diagnostics:
    """Convergence diagnostics of one fit.

    Attributes
    ----------
    max_r_hat, min_ess_bulk, min_ess_tail : float
        Worst rank-normalised split r-hat and bulk/tail effective sample sizes over
        every scalar element of every posterior variable.
    divergences : int
        Post-warm-up divergent transitions.
    min_bfmi : float
        Smallest Bayesian fraction of missing information over chains.
    sampling_seconds, wall_seconds : float
        Time spent drawing samples, and the whole fit including model compilation.
    compile_seconds, start_seconds : float
        Of the wall time: compiling the model for nutpie, and choosing the chains' start
        (the skills kind's MAP optimisations and pilot run); NaN when not measured
        (other samplers, or a run saved before these were recorded).
    sampler, chains, draws, tune : str, int
        How the fit was run.
    worst : dict
        Which variable had the worst r-hat and ESS.
    pilot_logp : list of float
        Mean log density of each chain of the start-choosing pilot run (skills kind;
        empty otherwise).
    pilot_logp_sd : float
        The pilot chains' typical within-chain sd of the log density. Chain means
        further apart than this mean separated modes; the chains of the fit all start in
        the best one, so r-hat only measures mixing within it.
    """

    max_r_hat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    min_bfmi: float
    sampling_seconds: float
    wall_seconds: float
    sampler: str
    chains: int
    draws: int
    tune: int
    worst: dict[str, str] = field(default_factory=dict)
    pilot_logp: list[float] = field(default_factory=list)
    pilot_logp_sd: float = float("nan")
    compile_seconds: float = float("nan")
    start_seconds: float = float("nan")

    @property
    def separated_modes(self) -> bool:
        """Whether the pilot found separated modes (:func:`separated_modes`)."""
        return separated_modes(self.pilot_logp, self.pilot_logp_sd)

    @property
    def failures(self) -> list[str]:
        """Human-readable list of failed checks (empty when all pass)."""
        out = []
        if not np.isfinite(self.max_r_hat) or self.max_r_hat > MAX_R_HAT:
            out.append(f"max r-hat {self.max_r_hat:.3f} > {MAX_R_HAT} "
                       f"({self.worst.get('r_hat', '?')})")
        if not np.isfinite(self.min_ess_bulk) or self.min_ess_bulk < MIN_ESS:
            out.append(f"min bulk ESS {self.min_ess_bulk:.0f} < {MIN_ESS} "
                       f"({self.worst.get('ess_bulk', '?')})")
        if not np.isfinite(self.min_ess_tail) or self.min_ess_tail < MIN_ESS:
            out.append(f"min tail ESS {self.min_ess_tail:.0f} < {MIN_ESS} "
                       f"({self.worst.get('ess_tail', '?')})")
        if self.divergences > 0:
            out.append(f"{self.divergences} divergent transitions")
        if np.isfinite(self.min_bfmi) and self.min_bfmi < MIN_BFMI:
            out.append(f"min BFMI {self.min_bfmi:.2f} < {MIN_BFMI}")
        return out

    @property
    def passed(self) -> bool:
        """Whether every diagnostic meets its threshold."""
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (the ``diagnostics.json`` contract plus extras)."""
        out = asdict(self)
        out["passed"] = self.passed
        out["failures"] = self.failures
        out["thresholds"] = {"max_r_hat": MAX_R_HAT, "min_ess": MIN_ESS, "min_bfmi": MIN_BFMI,
                             "divergences": 0}
        return out

    def describe(self) -> str:
        """One-paragraph text summary."""
        status = "all checks passed" if self.passed else "FAILED: " + "; ".join(self.failures)
        modes = ""
        if self.separated_modes:
            modes = ("; separated modes: pilot chains' mean log density "
                     + ", ".join(f"{v:.0f}" for v in self.pilot_logp)
                     + f" (within-chain sd {self.pilot_logp_sd:.0f}; chains start in the "
                     "best)")
        phases = [f"{label} {value:.1f} s" for label, value in
                  (("compile", self.compile_seconds), ("start", self.start_seconds))
                  if np.isfinite(value)]
        phases_text = f" ({', '.join(phases)})" if phases else ""
        return (f"{self.sampler}, {self.chains} chains x {self.draws} draws "
                f"(+{self.tune} tune): max r-hat {self.max_r_hat:.3f}, min ESS bulk "
                f"{self.min_ess_bulk:.0f} / tail {self.min_ess_tail:.0f}, "
                f"{self.divergences} divergences, min BFMI {self.min_bfmi:.2f}; sampling "
                f"{self.sampling_seconds:.1f} s, wall {self.wall_seconds:.1f} s"
                f"{phases_text}; {status}{modes}")


def exact_numba():
    """Context in which PyTensor compiles numba kernels without fastmath.

    With fastmath, a kernel freshly compiled (and inlined) rounds differently from the
    same kernel loaded from PyTensor's on-disk cache, and NUTS amplifies the last bits
    into other draws: the same fit with the same seed then gives another posterior
    on its second run (seen: r-hat 1.02 on one, a chain stuck in a funnel, 1.82, on the
    next). Every nutpie compilation of bayescale (fits, backtest folds, variant fits,
    simulation refits) runs in this context, so a run is a function of its seed. On the
    full leaderboard fit (seeds 0-2) sampling took 69-90 s, as with fastmath (88-92 s).
    """
    import pytensor

    return pytensor.config.change_flags(numba__fastmath=False)


def separated_modes(chain_means: list[float], within_sd: float) -> bool:
    """Whether pilot chains sit in separated modes of the posterior.

    The log density of draws from one mode fluctuates with an sd of about
    ``sqrt(dim / 2)``; chains of one mode have means that agree to within a fraction of
    it (their standard error), while a mode whose typical set is lower by more than that
    sd is a different region of the posterior.
    """
    return (len(chain_means) > 1 and bool(np.isfinite(within_sd))
            and float(np.ptp(chain_means)) > within_sd)


class quiet_constant_draws(warnings.catch_warnings):
    """Silence numpy's 0/0 warning for r-hat of draws that never vary.

    Fixed elements of a Deterministic (e.g. anchor loadings of exactly 1 and 0) have no
    between- or within-chain variance; their r-hat is NaN, which the diagnostics skip.
    """

    def __enter__(self):
        out = super().__enter__()
        warnings.filterwarnings("ignore", message="invalid value encountered in scalar divide",
                                category=RuntimeWarning)
        return out


def run_sampler(
    model: pm.Model,
    *,
    sampler: str = "nutpie",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    target_accept: float = 0.9,
    seed: int = 0,
    progressbar: bool = False,
    initvals: dict | None = None,
    adaptation: str = "low_rank",
    start: Callable[..., np.ndarray] | None = None,
) -> xr.DataTree:
    """Draw from the posterior of ``model`` with NUTS.

    Parameters
    ----------
    model : pm.Model
        The model to sample.
    sampler : {"nutpie", "pymc", "numpyro"}
        NUTS implementation.
    draws, tune, chains : int
        Post-warm-up draws per chain, warm-up steps, chains.
    target_accept : float
        Target acceptance rate of step-size adaptation.
    seed : int
        Random seed; the same seed gives identical draws.
    progressbar : bool
        Show the sampler's progress bar.
    initvals : dict, optional
        Starting values (on the constrained scale) by variable name.
    adaptation : {"low_rank", "diag", "draw_diag"}
        nutpie's mass-matrix adaptation (ignored by the other samplers).
    start : callable, optional
        nutpie only, instead of ``initvals``: ``start(compiled, chains=, seed=)`` returns
        a flat unconstrained start near which every chain begins (e.g. the skills kind's
        pilot run from several MAP optima).

    Returns
    -------
    xarray.DataTree
        Groups ``posterior``, ``sample_stats``, ``observed_data`` (and ``constant_data``).
    """
    import pymc as pm

    if sampler == "numpyro":
        try:
            import numpyro  # noqa: F401
        except ImportError:
            raise BayescaleError(
                "sampler 'numpyro' needs numpyro and jax: pip install 'bayescale[numpyro]'"
            ) from None
    if sampler == "nutpie":
        return _run_nutpie(model, draws=draws, tune=tune, chains=chains,
                           target_accept=target_accept, seed=seed, progressbar=progressbar,
                           initvals=initvals, adaptation=adaptation, start=start)
    kwargs: dict[str, Any] = {"nuts": {"target_accept": target_accept}}
    if sampler == "pymc":
        kwargs["cores"] = min(chains, os.cpu_count() or 1)
    with model, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(r_hat|effective sample|divergen).*")
        tree = pm.sample(
            draws=draws, tune=tune, chains=chains, random_seed=seed, nuts_sampler=sampler,
            progressbar=progressbar, initvals=initvals, compute_convergence_checks=False,
            **kwargs,
        )
    return tree


def _run_nutpie(model: pm.Model, *, draws: int, tune: int, chains: int, target_accept: float,
                seed: int, progressbar: bool, initvals: dict | None,
                adaptation: str, start: Callable[..., np.ndarray] | None = None
                ) -> xr.DataTree:
    """Sample with nutpie (:func:`sample_nutpie`) from the start ``start`` chooses."""
    import nutpie
    from pymc.backends.arviz import patch_nutpie_idata

    # start every chain near given initvals (e.g. a MAP estimate): nutpie's default
    # U(-1, 1) jitter on every unconstrained value would throw chains out of it
    near_initvals = start is None and bool(initvals)
    options = {"initial_points": initvals, "jitter_rvs": set()} if near_initvals else {}
    clock = time.perf_counter()
    compiled = nutpie.compile_pymc_model(model, **options)
    compile_seconds = time.perf_counter() - clock
    start_seconds = float("nan")
    if start is not None:
        clock = time.perf_counter()
        point = start(compiled, chains=chains, seed=seed)
        start_seconds = time.perf_counter() - clock
        compiled = dataclasses.replace(compiled, initial_point_func=small_jitter(point, seed))
    elif near_initvals:
        compiled = dataclasses.replace(compiled, initial_point_func=small_jitter(
            compiled.initial_point_func(seed), seed))
    clock = time.perf_counter()
    tree = sample_nutpie(compiled, draws=draws, tune=tune, chains=chains, seed=seed,
                         target_accept=target_accept, adaptation=adaptation,
                         progress_bar=progressbar, save_warmup=False)
    patch_nutpie_idata(tree, model, sampling_time=time.perf_counter() - clock)
    tree["posterior"].attrs["compile_time"] = compile_seconds
    tree["posterior"].attrs["start_time"] = start_seconds
    return tree


def sample_nutpie(compiled, **settings) -> xr.DataTree:
    """``nutpie.sample(compiled, **settings)``, run in the background until every chain ends.

    nutpie's blocking call keeps sampling through a KeyboardInterrupt and returns the
    draws so far, where a fit must stop and leave nothing behind: here Ctrl-C and
    SIGTERM (:func:`bayescale.interrupts.raise_if_interrupted`) cancel the chains. And
    when one chain fails (its initial point is not finite), the blocking call raises at
    once while the other chains' threads run on; a process that then exits crashes
    (a segmentation fault in those threads, exit status 139, after the error message).
    Here the error is raised only once every chain has stopped.

    Raises
    ------
    RuntimeError
        nutpie's error when a chain failed.
    """
    import nutpie

    background = nutpie.sample(compiled, blocking=False, **settings)
    try:
        while not _finished(background):
            raise_if_interrupted()
            time.sleep(0.05)
        return background.wait()
    except BaseException:
        background.cancel()
        raise


def small_jitter(point: np.ndarray, seed: int, scale: float = 0.05):
    """Initial-point function for nutpie: each chain starts at ``point + U(-scale, scale)``.

    nutpie asks for the chains' starts from its sampling threads, in an order that varies
    from run to run, and passes each call the chain's own seed. A chain's jitter is drawn
    from that seed and ``seed``, so the start of every chain, and with it the run, does
    not depend on which thread asks first.

    Parameters
    ----------
    point : ndarray
        Flat start on the unconstrained scale.
    seed : int
        Seed of the jitters (mixed with each chain's seed from nutpie).
    scale : float
        Half-width of the uniform jitter on the unconstrained scale.
    """
    point = np.asarray(point, float)

    def init(chain_seed=None):
        rng = np.random.default_rng([seed, chain_seed or 0])
        return point + rng.uniform(-scale, scale, point.size)

    return init


def _finished(background) -> bool:
    """Whether a background nutpie sampler is done (a busy sampler may time out the query)."""
    try:
        return bool(background.is_finished)
    except TimeoutError:
        return False


def compute_diagnostics(tree: xr.DataTree, *, sampler: str, wall_seconds: float,
                        tune: int) -> Diagnostics:
    """Compute the convergence diagnostics of a sampled posterior.

    Parameters
    ----------
    tree : xarray.DataTree
        Output of :func:`run_sampler`.
    sampler : str
        Which sampler produced it.
    wall_seconds : float
        Wall time of the whole fit.
    tune : int
        Warm-up steps used.
    """
    import arviz as az

    post = tree["posterior"].dataset
    with quiet_constant_draws():
        rhat = varying(az.rhat(tree))
        ess_bulk = varying(az.ess(tree, method="bulk"))
        ess_tail = varying(az.ess(tree, method="tail"))
    worst: dict[str, str] = {}
    max_rhat, worst["r_hat"] = extreme_element(rhat, max)
    min_bulk, worst["ess_bulk"] = extreme_element(ess_bulk, min)
    min_tail, worst["ess_tail"] = extreme_element(ess_tail, min)
    stats = tree["sample_stats"].dataset
    divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
    try:
        bfmi = float(np.min(as_dataset(az.bfmi(tree))["energy"].values))
    except (KeyError, ValueError, TypeError):
        bfmi = float("nan")
    sampling = float(post.attrs.get("sampling_time", np.nan))
    compile_seconds = float(post.attrs.get("compile_time", np.nan))
    start_seconds = float(post.attrs.get("start_time", np.nan))
    return Diagnostics(
        max_r_hat=max_rhat, min_ess_bulk=min_bulk, min_ess_tail=min_tail,
        divergences=divergences, min_bfmi=bfmi, sampling_seconds=sampling,
        wall_seconds=float(wall_seconds), sampler=sampler, chains=int(post.sizes["chain"]),
        draws=int(post.sizes["draw"]), tune=int(tune), worst=worst,
        compile_seconds=compile_seconds, start_seconds=start_seconds,
    )


def warn_if_failed(diagnostics: Diagnostics, *, what: str = "fit") -> None:
    """Issue a :class:`ConvergenceWarning` naming every failed diagnostic."""
    if not diagnostics.passed:
        warnings.warn(f"{what} failed convergence checks: " + "; ".join(diagnostics.failures),
                      ConvergenceWarning, stacklevel=2)


def as_dataset(obj):
    """ArviZ returns DataTree or Dataset depending on input; always give a Dataset."""
    if hasattr(obj, "dataset"):
        return obj.dataset
    return obj


def varying(result):
    """Variables of an ArviZ diagnostic that ever vary, as a Dataset.

    A variable whose draws never change (a Deterministic fixed by construction, such as
    the skills kind's base-lineage offsets) has an r-hat and ESS of NaN in every
    element; it says nothing about mixing and is dropped. A variable with some NaN
    elements (fixed anchor loadings beside free ones) is kept, and so are infinite values
    (chains that each stand still, at different values), so that they fail the checks.
    """
    ds = as_dataset(result)
    return ds[[name for name, v in ds.data_vars.items()
               if v.size and not np.isnan(np.asarray(v.values, dtype=float)).all()]]


def extreme_element(ds, pick) -> tuple[float, str]:
    """Return the max or min over every element of every variable, and where it is.

    Parameters
    ----------
    ds : xarray.Dataset
        A per-element diagnostic, e.g. ``az.rhat(tree)``.
    pick : {max, min}
        Which extreme.

    Returns
    -------
    value : float
        The extreme (NaN when ``ds`` is empty; a non-finite element wins).
    label : str
        Where it is, ``name[coord,...]``, e.g. ``intercept[GPQA]``.
    """
    best_val, best_name = None, ""
    for name, da in ds.data_vars.items():
        values = np.asarray(da.values, dtype=float)
        if values.size == 0:
            continue
        flat_idx = int(np.nanargmax(values) if pick is max else np.nanargmin(values)) \
            if np.isfinite(values).any() else 0
        val = float(values.reshape(-1)[flat_idx])
        if best_val is None or (pick is max and val > best_val) or \
                (pick is min and val < best_val) or not np.isfinite(val):
            label = name
            if da.ndim:
                idx = np.unravel_index(flat_idx, values.shape)
                parts = [str(da[dim].values[i]) if dim in da.coords else str(i)
                         for dim, i in zip(da.dims, idx, strict=True)]
                label = f"{name}[{','.join(parts)}]"
            best_val, best_name = val, label
            if not np.isfinite(val):
                break
    return (float("nan") if best_val is None else best_val), best_name
