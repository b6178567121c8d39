"""Simulation from a model, parameter recovery and simulation-based calibration.

Before a model is trusted on real data it must recover known parameters from data
simulated from itself. :func:`simulate` draws parameter sets from the prior and data
sets from the likelihood on a given design (the covariates of a real table).
:func:`parameter_recovery` refits each simulated data set and records whether each true
parameter lies inside its central posterior interval; :func:`sbc` records the rank of the
truth among posterior draws (Talts et al. 2018) and tests the ranks for uniformity.

The model is compiled once (nutpie) and refit to every simulated data set by swapping its
observation data, so a simulation costs only its sampling time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats
from tqdm.auto import tqdm

from bayescale.kinds import get_kind
from bayescale.sample import (
    Diagnostics,
    compute_diagnostics,
    exact_numba,
    sample_nutpie,
    small_jitter,
)
from bayescale.spec import ModelSpec, load_spec


@dataclass
class Simulation:
    """One simulated data set.

    Attributes
    ----------
    table : DataFrame
        The design with its observation column replaced by simulated values.
    observed : ndarray
        The simulated observations on the model's observation scale.
    truth : dict of str to ndarray
        The true value of every summary parameter.
    """

    table: pd.DataFrame
    observed: np.ndarray
    truth: dict[str, np.ndarray]


def _spec(spec: ModelSpec | str) -> ModelSpec:
    return spec if isinstance(spec, ModelSpec) else load_spec(spec)


def simulate(spec: ModelSpec | str, design: pd.DataFrame, *, n: int = 1,
             seed: int = 0) -> list[Simulation]:
    """Draw ``n`` parameter sets from the prior and a data set for each on ``design``.

    Parameters
    ----------
    spec : ModelSpec or str
        The model.
    design : DataFrame
        A canonical table whose covariates are kept (its observations are replaced).
    n : int
        Number of simulations.
    seed : int
        Random seed.
    """
    import pymc as pm

    spec = _spec(spec)
    kind = get_kind(spec.kind)
    model = kind.build(spec, design)
    names = [v for v in kind.summary_var_names(spec) if v in model.named_vars]
    with model:
        prior = pm.sample_prior_predictive(draws=n, random_seed=seed,
                                           var_names=names + [kind.observed_name])
    prior_ds = prior["prior"].dataset
    simulated = prior["prior_predictive"].dataset[kind.observed_name].values[0]
    out = []
    for i in range(n):
        truth = {name: np.asarray(prior_ds[name].values[0, i]) for name in names}
        out.append(Simulation(table=kind.simulated_table(design, simulated[i]),
                              observed=simulated[i], truth=truth))
    return out


class Refitter:
    """A model compiled once and refit to new observation vectors.

    Parameters
    ----------
    spec : ModelSpec
        The model.
    design : DataFrame
        The design its observations belong to.
    draws, tune, chains : int
        Sampler settings of every refit.
    target_accept : float, optional
        Default: the spec's.
    """

    def __init__(self, spec: ModelSpec, design: pd.DataFrame, *, draws: int = 500,
                 tune: int = 500, chains: int = 2, target_accept: float | None = None) -> None:
        import nutpie

        self.spec = spec
        self.kind = get_kind(spec.kind)
        self.model = self.kind.build(spec, design)
        with exact_numba():
            self.compiled = nutpie.compile_pymc_model(self.model)
            # kinds that need a MAP start (skills) get one per refit, from its data
            self.starter = (self.kind.starter(self.model) if hasattr(self.kind, "starter")
                            else None)
        self.settings = {"draws": draws, "tune": tune, "chains": chains,
                         "target_accept": target_accept or spec.sampler["target_accept"],
                         "adaptation": spec.sampler["adaptation"]}

    def fit(self, observed: np.ndarray, *, seed: int) -> tuple[xr.Dataset, Diagnostics]:
        """Sample the posterior given ``observed``; return draws and diagnostics."""
        import time

        start = time.perf_counter()
        compiled = self.compiled.with_data(**{self.kind.observed_data_name: observed})
        if self.starter is not None:
            self.model[self.kind.observed_data_name].set_value(observed)
            flat = self.starter.pilot(compiled, chains=self.settings["chains"], seed=seed,
                                      target_accept=self.settings["target_accept"],
                                      adaptation=self.settings["adaptation"])
            compiled = dataclasses.replace(compiled, initial_point_func=small_jitter(flat, seed))
        tree = sample_nutpie(compiled, draws=self.settings["draws"], tune=self.settings["tune"],
                             chains=self.settings["chains"], seed=seed, progress_bar=False,
                             target_accept=self.settings["target_accept"],
                             adaptation=self.settings["adaptation"])
        diagnostics = compute_diagnostics(tree, sampler="nutpie",
                                          wall_seconds=time.perf_counter() - start,
                                          tune=self.settings["tune"])
        return tree["posterior"].dataset, diagnostics


def simulate_and_fit(spec: ModelSpec | str, design: pd.DataFrame, *, n_simulations: int,
                     seed: int = 0, progressbar: bool = True, draws: int = 500,
                     tune: int = 500, chains: int = 2
                     ) -> Iterator[tuple[int, Simulation, xr.Dataset, Diagnostics]]:
    """Yield ``(index, simulation, posterior draws, diagnostics)`` for each simulation."""
    spec = _spec(spec)
    sims = simulate(spec, design, n=n_simulations, seed=seed)
    refitter = Refitter(spec, design, draws=draws, tune=tune, chains=chains)
    for i, sim in enumerate(tqdm(sims, desc=f"simulate and fit {spec.name}",
                                 disable=not progressbar)):
        # the kind's own preparation of observations (e.g. scores of exactly 0 or 1 clipped)
        observed = refitter.kind.observed_values(spec, sim.table)
        post, diag = refitter.fit(observed, seed=seed + 1 + i)
        yield i, sim, post, diag


def _elements(name: str, truth: np.ndarray, draws: xr.DataArray):
    """Yield ``(label, truth, draws as (chain, draw) array)`` per scalar element.

    Elements fixed by the model (every draw identical, e.g. the anchor loadings of the
    skills kind, 0 or 1 by construction) are skipped: they are not inferred, and would
    count as recovered in every simulation and pile their SBC ranks at 0.
    """
    if truth.ndim == 0:
        yield name, float(truth), draws.values
        return
    dims = [d for d in draws.dims if d not in ("chain", "draw")]
    for index in np.ndindex(*truth.shape):
        selection = dict(zip(dims, index, strict=True))
        values = draws.isel(selection).values
        if np.ptp(values) == 0:
            continue
        label = ",".join(str(draws[d].values[i]) for d, i in selection.items())
        yield f"{name}[{label}]", float(truth[index]), values


def parameter_recovery(spec: ModelSpec | str, design: pd.DataFrame, *, n_simulations: int,
                       seed: int = 0, ci_prob: float = 0.9, progressbar: bool = True,
                       **fit_kwargs) -> pd.DataFrame:
    """Simulate from ``spec`` on ``design`` and refit, ``n_simulations`` times.

    Parameters
    ----------
    spec : ModelSpec or str
        The model.
    design : DataFrame
        Canonical table giving the covariates (and families) of every simulated run.
    n_simulations : int
        Number of simulate-and-fit repetitions.
    seed : int
        Seed of the simulations and of the fits.
    ci_prob : float
        Probability of the central interval checked for each parameter.
    progressbar : bool
        Show a progress bar over simulations.
    **fit_kwargs
        ``draws``, ``tune``, ``chains`` of each fit.

    Returns
    -------
    DataFrame
        One row per (simulation, scalar parameter): ``simulation, parameter, truth, lower,
        median, upper, inside, max_r_hat, divergences``.
    """
    lo, hi = (1 - ci_prob) / 2, 1 - (1 - ci_prob) / 2
    rows = []
    for i, sim, post, diag in simulate_and_fit(spec, design, n_simulations=n_simulations,
                                               seed=seed, progressbar=progressbar,
                                               **fit_kwargs):
        for name, truth in sim.truth.items():
            for label, t, values in _elements(name, truth, post[name]):
                l_, m_, u_ = np.quantile(values, [lo, 0.5, hi])
                rows.append({"simulation": i, "parameter": label, "truth": t,
                             "lower": l_, "median": m_, "upper": u_,
                             "inside": bool(l_ <= t <= u_), "max_r_hat": diag.max_r_hat,
                             "divergences": diag.divergences})
    return pd.DataFrame(rows)


@dataclass
class SBCResult:
    """Ranks of simulation-based calibration and their uniformity tests.

    Attributes
    ----------
    ranks : DataFrame
        One row per (simulation, parameter): the rank of the truth among ``n_ranks - 1``
        thinned posterior draws (0 ... n_ranks - 1).
    tests : DataFrame
        Per parameter: chi-square statistic and p-value of rank uniformity over ``bins``
        equal bins, and the number of simulations.
    n_ranks : int
        Number of possible rank values.
    """

    ranks: pd.DataFrame
    tests: pd.DataFrame
    n_ranks: int

    @property
    def min_p_value(self) -> float:
        """Smallest uniformity p-value over parameters."""
        return float(self.tests["p_value"].min())

    def passed(self, alpha: float = 0.01) -> bool:
        """Whether every parameter passes at Bonferroni-corrected level ``alpha``."""
        return self.min_p_value >= alpha / len(self.tests)


def sbc(spec: ModelSpec | str, design: pd.DataFrame, *, n_simulations: int, seed: int = 0,
        n_ranks: int = 100, bins: int = 10, progressbar: bool = True,
        **fit_kwargs) -> SBCResult:
    """Simulation-based calibration (Talts et al. 2018).

    For each simulation the posterior draws are thinned to ``n_ranks - 1`` roughly
    independent draws and the truth's rank among them is recorded. If inference is
    calibrated, ranks are uniform on ``0 ... n_ranks - 1``; uniformity is tested per
    parameter with a chi-square test over ``bins`` equal bins.

    Parameters
    ----------
    spec, design, n_simulations, seed, progressbar, **fit_kwargs
        As in :func:`parameter_recovery`.
    n_ranks : int
        Number of rank values (thinned draws + 1).
    bins : int
        Bins of the chi-square test (must divide ``n_ranks``).
    """
    if n_ranks % bins:
        raise ValueError("bins must divide n_ranks")
    rows = []
    for i, sim, post, _ in simulate_and_fit(spec, design, n_simulations=n_simulations,
                                            seed=seed, progressbar=progressbar, **fit_kwargs):
        for name, truth in sim.truth.items():
            for label, t, values in _elements(name, truth, post[name]):
                flat = values.reshape(-1)
                step = max(1, len(flat) // (n_ranks - 1))
                thinned = flat[::step][: n_ranks - 1]
                rows.append({"simulation": i, "parameter": label,
                             "rank": int(np.sum(thinned < t))})
    ranks = pd.DataFrame(rows)
    tests = []
    for label, group in ranks.groupby("parameter", sort=False):
        counts = np.bincount(group["rank"].to_numpy() * bins // n_ranks, minlength=bins)
        chi2, p = stats.chisquare(counts)
        tests.append({"parameter": label, "chi2": float(chi2), "p_value": float(p),
                      "simulations": len(group)})
    return SBCResult(ranks=ranks, tests=pd.DataFrame(tests), n_ranks=n_ranks)
