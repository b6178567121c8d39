"""Fitting: spec + canonical data -> built PyMC model -> NUTS -> :class:`Posterior`.

This module only orchestrates the neighbouring stages (``spec``, ``kinds`` for
building, ``sample`` for inference, ``posterior`` for the result) and writes run
directories.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bayescale.errors import ConvergenceError, DataError
from bayescale.kinds import get_kind
from bayescale.posterior import Posterior, atomic_directory
from bayescale.sample import compute_diagnostics, exact_numba, run_sampler, warn_if_failed
from bayescale.spec import ModelSpec, load_spec

if TYPE_CHECKING:
    import pymc as pm


def resolve_spec(spec: ModelSpec | str | os.PathLike) -> ModelSpec:
    """Return ``spec`` itself, or load it by name/path."""
    return spec if isinstance(spec, ModelSpec) else load_spec(spec)


def resolve_data(data: Any, *, kind_data: str):
    """Return canonical data (LossRuns or BenchmarkEvals) for a name, path or DataFrame.

    Raises
    ------
    DataError
        If the data cannot be read or is the wrong kind of table for the model.
    """
    from bayescale import datasets

    table = datasets.resolve(data, kind=kind_data)
    if table.kind != kind_data:
        wanted = "loss runs" if kind_data == "loss" else "benchmark evaluations"
        raise DataError(f"this model fits {wanted} but the data are "
                        f"{'loss runs' if table.kind == 'loss' else 'benchmark evaluations'}",
                        source=table.source)
    return table


def build_model(spec: ModelSpec | str, data: Any) -> pm.Model:
    """Build the PyMC fit model of ``spec`` on ``data`` (checked first)."""
    spec = resolve_spec(spec)
    kind = get_kind(spec.kind)
    canonical = resolve_data(data, kind_data=kind.data_kind)
    kind.check_data(spec, canonical.table, canonical.source)
    return kind.build(spec, canonical.table)


def fit(
    spec: ModelSpec | str | os.PathLike,
    data: Any,
    *,
    draws: int | None = None,
    tune: int | None = None,
    chains: int | None = None,
    target_accept: float | None = None,
    seed: int | None = None,
    sampler: str | None = None,
    progressbar: bool = False,
    strict: bool = False,
) -> Posterior:
    """Fit a spec to data with NUTS.

    Parameters
    ----------
    spec : ModelSpec, str or path
        A spec object, a shipped spec name (``"chinchilla"``) or a TOML path.
    data : str, path, DataFrame, LossRuns or BenchmarkEvals
        A shipped dataset name, a CSV/parquet path, or a table.
    draws, tune, chains, target_accept, seed, sampler
        Override the spec's ``[sampler]`` settings.
    progressbar : bool
        Show the sampler's progress bar.
    strict : bool
        Raise :class:`~bayescale.errors.ConvergenceError` if the diagnostics fail
        (otherwise a :class:`~bayescale.errors.ConvergenceWarning` is issued and the
        failure recorded).

    Returns
    -------
    Posterior
    """
    start = time.perf_counter()
    spec = resolve_spec(spec).with_overrides(sampler={
        "draws": draws, "tune": tune, "chains": chains, "target_accept": target_accept,
        "seed": seed, "backend": sampler,
    })
    kind = get_kind(spec.kind)
    canonical = resolve_data(data, kind_data=kind.data_kind)
    kind.check_data(spec, canonical.table, canonical.source)
    model = kind.build(spec, canonical.table)
    settings = spec.sampler
    # kinds with a multimodal posterior choose their start: a pilot run under nutpie
    # (skills), MAP starting values for the other samplers
    with exact_numba():
        start_point = kind.start_function(spec, model) \
            if hasattr(kind, "start_function") and settings["backend"] == "nutpie" else None
        initvals = kind.initial_values(spec, canonical.table, model) \
            if hasattr(kind, "initial_values") and start_point is None else None
        tree = run_sampler(
            model, sampler=settings["backend"], draws=settings["draws"],
            tune=settings["tune"], chains=settings["chains"],
            target_accept=settings["target_accept"], seed=settings["seed"],
            progressbar=progressbar, initvals=initvals, adaptation=settings["adaptation"],
            start=start_point,
        )
    diagnostics = compute_diagnostics(tree, sampler=settings["backend"],
                                      wall_seconds=time.perf_counter() - start,
                                      tune=settings["tune"])
    diagnostics.pilot_logp = list(getattr(start_point, "pilot_logp", []))
    diagnostics.pilot_logp_sd = float(getattr(start_point, "pilot_logp_sd", float("nan")))
    posterior = Posterior.create(tree, spec=spec, table=canonical.table,
                                 excluded=canonical.excluded, source=canonical.source,
                                 diagnostics=diagnostics, seed=settings["seed"])
    if strict and not diagnostics.passed:
        raise ConvergenceError(f"fit of '{spec.name}' failed convergence checks: "
                               + "; ".join(diagnostics.failures))
    warn_if_failed(diagnostics, what=f"fit of '{spec.name}'")
    return posterior


def condition_on(posterior: Posterior, observed: Any, *, progressbar: bool = False,
                 strict: bool = False) -> Posterior:
    """Update a fit with new observations: the posterior given its data plus ``observed``.

    The Sloth use case: a new family's first ``k`` models have been evaluated; condition
    on them, then predict its larger models. The update is exact (the model is refit to
    the union of the training table and ``observed`` with the same spec, sampler
    settings and seed), not an approximation.

    Parameters
    ----------
    posterior : Posterior
        The fit to update.
    observed : str, path, DataFrame or canonical table
        New rows of the same kind as the fit's data (for skills: benchmark scores of
        models not in the fit; for loss laws: new runs).
    progressbar, strict
        As in :func:`fit`.

    Raises
    ------
    DataError
        If ``observed`` is the wrong kind of table or repeats a model of the fit.
    """
    import pandas as pd

    kind = posterior.kind
    new = resolve_data(observed, kind_data=kind.data_kind)
    old = posterior.fit_table
    if kind.data_kind == "benchmark":
        repeated = sorted(set(new.table["model"].astype(str)) & set(old["model"].astype(str)))
        if repeated:
            raise DataError(f"model(s) {', '.join(repeated[:5])} are already in the fit; "
                            "condition only on models it has not seen", source=new.source,
                            column="model")
    columns = [c for c in old.columns if c in new.table.columns]
    union = pd.concat([old, new.table[columns]], ignore_index=True)
    sampler = posterior.spec.sampler
    return fit(posterior.spec, union, draws=sampler["draws"], tune=sampler["tune"],
               chains=sampler["chains"], seed=posterior.seed, progressbar=progressbar,
               strict=strict)


def write_run(posterior: Posterior, out: str | os.PathLike, *,
              figures: dict[str, Any] | None = None) -> Path:
    """Write ``posterior.nc``, ``summary.csv`` and ``diagnostics.json`` into a run directory.

    The directory appears complete or not at all (written to a temporary directory,
    then renamed).

    Parameters
    ----------
    posterior : Posterior
        The fit.
    out : path
        The run directory (replaced if it exists).
    figures : dict of str to matplotlib Figure, optional
        Extra figures to save in the directory, by file name.
    """
    out = Path(out)
    with atomic_directory(out) as tmp:
        posterior.tree.to_netcdf(tmp / "posterior.nc", engine="h5netcdf")
        posterior.summary().to_csv(tmp / "summary.csv", index=False)
        (tmp / "diagnostics.json").write_text(
            json.dumps(posterior.diagnostics.to_dict(), indent=2) + "\n")
        if len(posterior.excluded_table):
            posterior.excluded_table.to_csv(tmp / "excluded.csv", index=False)
        for name, fig in (figures or {}).items():
            fig.savefig(tmp / name, dpi=120, bbox_inches="tight")
    return out


def load_run(run_dir: str | os.PathLike) -> Posterior:
    """Load the posterior of a run directory (or a ``posterior.nc`` path)."""
    return Posterior.load(run_dir)
