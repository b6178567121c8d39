"""Simulation from a model and parameter recovery.

Before a model is trusted on real data it must recover known parameters from data
simulated from itself. :func:`simulate` draws one parameter set from the prior and a
data set from the likelihood on a given design (the covariates of a real table);
:func:`parameter_recovery` repeats simulate-then-fit and records whether each true
parameter lies inside its central posterior interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from bayescale.kinds import get_kind
from bayescale.spec import ModelSpec, load_spec


@dataclass
class Simulation:
    """One simulated data set.

    Attributes
    ----------
    table : DataFrame
        The design with its observation column replaced by simulated values.
    truth : dict of str to ndarray
        The true value of every summary parameter.
    """

    table: pd.DataFrame
    truth: dict[str, np.ndarray]


def simulate(spec: ModelSpec | str, design: pd.DataFrame, *, seed: int) -> Simulation:
    """Draw parameters from the prior and data from the likelihood on ``design``.

    Parameters
    ----------
    spec : ModelSpec or str
        The model.
    design : DataFrame
        A canonical table whose covariates are kept (its observations are replaced).
    seed : int
        Random seed.
    """
    import pymc as pm

    spec = spec if isinstance(spec, ModelSpec) else load_spec(spec)
    kind = get_kind(spec.kind)
    model = kind.build(spec, design)
    names = [v for v in kind.summary_var_names(spec) if v in model.named_vars]
    with model:
        prior = pm.sample_prior_predictive(draws=1, random_seed=seed,
                                           var_names=names + [kind.observed_name])
    truth = {n: np.asarray(prior["prior"].dataset[n].values[0, 0]) for n in names}
    simulated = prior["prior_predictive"].dataset[kind.observed_name].values[0, 0]
    return Simulation(table=kind.simulated_table(design, simulated), truth=truth)


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
        Base seed; simulation ``i`` uses ``seed + i`` for data and sampling.
    ci_prob : float
        Probability of the central interval checked for each parameter.
    progressbar : bool
        Show a progress bar over simulations.
    **fit_kwargs
        Passed to :func:`bayescale.fit.fit` (``draws``, ``tune``, ``chains`` ...).

    Returns
    -------
    DataFrame
        One row per (simulation, scalar parameter): ``simulation, parameter, truth, lower,
        median, upper, inside, max_r_hat, divergences``.
    """
    from bayescale.data import read_loss_runs
    from bayescale.fitting import fit

    spec = spec if isinstance(spec, ModelSpec) else load_spec(spec)
    kind = get_kind(spec.kind)
    lo, hi = (1 - ci_prob) / 2, 1 - (1 - ci_prob) / 2
    rows = []
    for i in tqdm(range(n_simulations), desc="recovery", disable=not progressbar):
        sim = simulate(spec, design, seed=seed + i)
        data = read_loss_runs(sim.table) if kind.data_kind == "loss" else sim.table
        posterior = fit(spec, data, seed=seed + i, **fit_kwargs)
        post = posterior.posterior
        diag = posterior.diagnostics
        for name, truth in sim.truth.items():
            draws = post[name]
            q = draws.quantile([lo, 0.5, hi], dim=("chain", "draw")).values
            truth_flat = np.atleast_1d(truth).ravel()
            q_flat = q.reshape(3, -1)
            labels = [name] if truth.ndim == 0 else [
                f"{name}[{c}]" for c in draws[draws.dims[-1]].values]
            for label, t, l_, m_, u_ in zip(labels, truth_flat, *q_flat, strict=True):
                rows.append({"simulation": i, "parameter": label, "truth": float(t),
                             "lower": float(l_), "median": float(m_), "upper": float(u_),
                             "inside": bool(l_ <= t <= u_), "max_r_hat": diag.max_r_hat,
                             "divergences": diag.divergences})
    return pd.DataFrame(rows)
