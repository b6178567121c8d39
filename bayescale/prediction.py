"""Prediction: posterior predictive distributions and derived quantities.

``predict`` gives, for new rows (known or unseen families), the posterior
predictive of a new observation and of the mean curve, summarised by mean, sd and
quantiles. ``optimal_allocation`` gives the compute-optimal parameters N*(C),
tokens D*(C) and tokens per parameter for a loss law with C = 6 N D.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.data import read_prediction_rows
from bayescale.errors import DataError
from bayescale.kinds import loss_law
from bayescale.posterior import Posterior

#: Quantiles reported by :func:`predict` (the CLI contract).
QUANTILES = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975)


def predict_draws(posterior: Posterior, rows, *, seed: int | None = None) -> xr.Dataset:
    """Posterior predictive draws for new rows.

    Parameters
    ----------
    posterior : Posterior
        A fitted model.
    rows : DataFrame, str or path
        New rows with the covariates the model needs (validated).
    seed : int, optional
        Seed of the predictive draws (default: the fit's seed).

    Returns
    -------
    xarray.Dataset
        ``mu`` (the mean curve) and ``y`` (a new observation), dims
        ``(chain, draw, row)``, on the data scale (loss in nats, or accuracy).
    """
    return _draws_for(posterior, _rows_for(posterior, rows), seed)


def _rows_for(posterior: Posterior, rows) -> pd.DataFrame:
    """Validate prediction rows against the covariates the posterior's kind needs."""
    return read_prediction_rows(rows, required=posterior.kind.required_columns(posterior.spec))


def _draws_for(posterior: Posterior, frame: pd.DataFrame, seed: int | None) -> xr.Dataset:
    return posterior.kind.predict(posterior, frame,
                                  seed=posterior.seed if seed is None else seed)


def summarise_draws(draws: xr.Dataset, rows: pd.DataFrame) -> pd.DataFrame:
    """Summarise predictive draws into the ``predict`` table.

    Returns
    -------
    DataFrame
        ``rows`` plus ``mean, sd, q0.025 ... q0.975`` of ``y`` and the same with a
        ``mu_`` prefix for ``mu``.
    """
    out = rows.reset_index(drop=True).copy()
    for var, prefix in (("y", ""), ("mu", "mu_")):
        da = draws[var].stack(sample=("chain", "draw")).transpose("row", "sample").values
        out[f"{prefix}mean"] = da.mean(axis=1)
        out[f"{prefix}sd"] = da.std(axis=1, ddof=1)
        qs = np.quantile(da, QUANTILES, axis=1)
        for q, values in zip(QUANTILES, qs, strict=True):
            out[f"{prefix}q{q:g}"] = values
    return out


def predict(posterior: Posterior, rows, *, seed: int | None = None) -> pd.DataFrame:
    """Posterior predictive summary for new rows (see :func:`summarise_draws`)."""
    frame = _rows_for(posterior, rows)
    return summarise_draws(_draws_for(posterior, frame, seed), frame)


def optimal_draws(posterior: Posterior, flops, *, family: str | None = None) -> xr.Dataset:
    """Draws of the compute-optimal allocation at each compute budget.

    For ``L = E + A/N^alpha + B/D^beta`` with ``C = 6 N D``, minimising L at fixed C gives
    ``N* = G (C/6)^a`` and ``D* = (C/6) / N*`` with ``a = beta / (alpha + beta)`` and
    ``G = (alpha A / (beta B))^(1 / (alpha + beta))`` (Hoffmann et al. 2022, eq. 4).

    Parameters
    ----------
    posterior : Posterior
        A loss-law fit with one ``params`` term and one ``tokens`` term.
    flops : float or sequence of float
        Compute budgets C in FLOPs.
    family : str, optional
        A training family; without it, the population's typical family.

    Returns
    -------
    xarray.Dataset
        ``params``, ``tokens``, ``tokens_per_param`` and ``loss`` (the law at the optimum),
        dims ``(chain, draw, flops)``.
    """
    spec = posterior.spec
    if spec.kind != loss_law.KIND.name:
        raise DataError(f"compute-optimal allocation needs a loss law; '{spec.name}' is a "
                        f"{spec.kind} model")
    by_var = {t.variable: t for t in loss_law.terms(spec)}
    if set(by_var) != {"params", "tokens"}:
        raise DataError(f"compute-optimal allocation needs a law with one params term and one "
                        f"tokens term; '{spec.name}' has {', '.join(sorted(by_var)) or 'none'}")
    budget = np.atleast_1d(np.asarray(flops, dtype=float))
    if not np.all(np.isfinite(budget)) or np.any(budget <= 0):
        raise DataError("--flops must be positive finite numbers", source="--flops")
    values = loss_law.law_values(posterior, family)
    n_term, d_term = by_var["params"], by_var["tokens"]
    alpha, beta = values[n_term.exponent], values[d_term.exponent]
    coef_a, coef_b = values[n_term.coefficient], values[d_term.coefficient]
    c = xr.DataArray(budget, dims="flops", coords={"flops": budget})
    g = (alpha * coef_a / (beta * coef_b)) ** (1 / (alpha + beta))
    n_opt = g * (c / 6) ** (beta / (alpha + beta))
    d_opt = (c / 6) / n_opt
    loss = coef_a / n_opt**alpha + coef_b / d_opt**beta
    e_name = loss_law.irreducible(spec)
    if e_name:
        loss = loss + values[e_name]
    return xr.Dataset({"params": n_opt, "tokens": d_opt, "tokens_per_param": d_opt / n_opt,
                       "loss": loss})


def optimal_allocation(posterior: Posterior, flops, *, family: str | None = None,
                       ci_prob: float = 0.9) -> pd.DataFrame:
    """Median and central interval of N*, D* and D*/N* at each compute budget.

    Returns
    -------
    DataFrame
        One row per (flops, quantity) with columns ``flops, quantity, median, lower, upper,
        ci_prob, family``.
    """
    draws = optimal_draws(posterior, flops, family=family)
    if family is None and not loss_law.grouped(posterior.spec):
        family = posterior.families[0]
    lo, hi = (1 - ci_prob) / 2, 1 - (1 - ci_prob) / 2
    rows = []
    for c in draws["flops"].values:
        for quantity in ("params", "tokens", "tokens_per_param", "loss"):
            v = draws[quantity].sel(flops=c).values.ravel()
            rows.append({"flops": float(c), "quantity": quantity,
                         "median": float(np.median(v)), "lower": float(np.quantile(v, lo)),
                         "upper": float(np.quantile(v, hi)), "ci_prob": ci_prob,
                         "family": family or "population"})
    return pd.DataFrame(rows)
