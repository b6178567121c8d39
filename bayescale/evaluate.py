"""Backtests and calibration of benchmark (skills) models on held-out models.

Protocols
---------
``leave-family-out``
    The Sloth protocol (Polo et al. 2025, ``../shared/data/sloth/PROTOCOL.md``): the
    family of a model is its ``subfamily``; keep complete cases for the experiment's
    benchmarks and sub-families with at least ``keep_smallest + 1`` models; for each
    held-out group, each of its sub-families keeps its ``keep_smallest`` smallest models
    in training and the others are test models; every other sub-family is in training.
``flops-cutoff``
    Fit on the models below a compute cutoff (FLOPs, ``flops`` column or ``6 N D``),
    predict the others (the observational-scaling protocol; 84e21 is Llama-2-7B).
``largest-per-family``
    Hold out the largest model of every family that has at least two models.

One compiled model serves every fold: the model is built once over every model and
observed cell of the experiment with a ``pm.Data`` 0/1 training mask on the cells,
compiled once with nutpie, and re-sampled per fold with ``compiled.with_data``. Each
fold starts all chains at the best of several MAP optimisations of that fold's
posterior. Held-out cells are predicted from the draws of the same graph: a held-out
model's own deviation has no data, so its draws are draws from the population.

Metrics
-------
Point prediction: the posterior predictive median (``q0.5``), the Bayes point
estimate under absolute error, the loss the MAE scores. ``mae_pp`` follows the Sloth
aggregation (absolute error averaged over the test models of a group, then over groups,
then over benchmarks; for protocols without groups, over cells per benchmark then over
benchmarks); ``mae_pp_cells`` is the plain mean over held-out cells; ``mae_pp_mean``
scores the predictive mean instead, with the Sloth aggregation. Squared-error
metrics (``rmse_pp``, ``mse_by_benchmark``) score the predictive mean, their Bayes
point estimate. ``coverage`` is the
fraction of held-out cells inside the central posterior-predictive interval of each
nominal level computed from the continuous draws; ``coverage_rounded`` computes the
intervals from draws rounded to 0.01 like the stored scores (a cell on the interval's
edge counts as inside); because the edges are included, a calibrated model covers more
than the nominal level there, and ``coverage_rounded_expected`` is that expected fraction
(the predictive mass of each closed interval, averaged over cells). ``crps`` is the
sample CRPS of the predictive draws (accuracy scale, averaged over cells).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayescale.errors import DataError
from bayescale.kinds import skills
from bayescale.posterior import atomic_directory
from bayescale.sample import (
    exact_numba,
    extreme_element,
    quiet_constant_draws,
    sample_nutpie,
    separated_modes,
    small_jitter,
    varying,
)

log = logging.getLogger(__name__)

LEVELS = (0.5, 0.8, 0.9, 0.95)
QUANTILES = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975)
PROTOCOLS = ("leave-family-out", "flops-cutoff", "largest-per-family")


@dataclass
class Fold:
    """One backtest fold: the models whose cells are held out."""

    name: str
    test_models: list[str]
    group: str = ""
    #: If set, only these benchmarks of the test models are held out (their other
    #: scores stay in training: the observational-scaling setting, where a new model's
    #: cheap benchmark scores are known and its hard-benchmark scores are predicted).
    test_benchmarks: list[str] | None = None

    def held_out(self, models, benchmarks) -> np.ndarray:
        """Whether each (model, benchmark) cell is held out by this fold."""
        held = np.isin(np.asarray(models, dtype=str), self.test_models)
        if self.test_benchmarks is not None:
            held &= np.isin(np.asarray(benchmarks, dtype=str), self.test_benchmarks)
        return held


@dataclass
class FoldResult:
    """Predictions and diagnostics of one fold."""

    fold: Fold
    predictions: pd.DataFrame
    diagnostics: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------- protocols
def _table(data) -> pd.DataFrame:
    table = data.table if hasattr(data, "table") else data
    return table.reset_index(drop=True)


def complete_cases(table: pd.DataFrame, benchmarks: list[str]) -> pd.DataFrame:
    """Rows of models that have a score on every one of ``benchmarks``."""
    sub = table[table["benchmark"].isin(benchmarks) & table["score"].notna()]
    counts = sub.groupby("model")["benchmark"].nunique()
    keep = counts.index[counts == len(benchmarks)]
    return sub[sub["model"].isin(keep)].reset_index(drop=True)


def leave_family_out(table, groups: dict, *, experiment: str, keep_smallest: int
                     ) -> tuple[pd.DataFrame, list[Fold]]:
    """Split a table by the Sloth leave-family-out protocol.

    Parameters
    ----------
    table : DataFrame or BenchmarkEvals
        Canonical long benchmark table (``subfamily`` is Sloth's family).
    groups : dict
        The parsed ``test_groups.json`` (keys ``benchmarks`` and ``groups``).
    experiment : {"v1", "v2", "v1v2"}
        Which benchmark set (and group list) of the groups file.
    keep_smallest : int
        Models of each held-out sub-family kept in training (its smallest).

    Returns
    -------
    universe : DataFrame
        The rows every fold is fit on (complete cases, sub-families large enough).
    folds : list of Fold
    """
    table = _table(table)
    try:
        benchmarks = groups["benchmarks"][experiment]
        group_list = groups["groups"][str(keep_smallest)][experiment]
    except KeyError as exc:
        raise DataError(f"groups file has no entry {exc} for experiment '{experiment}' and "
                        f"keep-smallest {keep_smallest}", source="--groups") from None
    missing = sorted(set(benchmarks) - set(table["benchmark"]))
    if missing:
        raise DataError(f"experiment '{experiment}' needs benchmark(s) {', '.join(missing)}",
                        column="benchmark")
    uni = complete_cases(table, benchmarks)
    uni = uni.assign(subfamily=skills._subfamily(uni).to_numpy())
    models = skills.model_table(uni)
    size = models.groupby("subfamily")["model"].count()
    big = size.index[size >= keep_smallest + 1]
    uni = uni[uni["subfamily"].isin(big)].reset_index(drop=True)
    models = models[models["subfamily"].isin(big)]
    order = pd.Series(np.arange(len(table)), index=table["model"]).groupby(level=0).min()
    models = models.assign(_first=models["model"].map(order).to_numpy())
    folds = []
    for group in group_list:
        test = []
        for sub in group:
            members = models[models["subfamily"] == sub].sort_values(
                ["params", "_first"], kind="mergesort")
            test += members["model"].iloc[keep_smallest:].tolist()
        if test:
            folds.append(Fold(name="+".join(group), test_models=test, group="+".join(group)))
    return uni, folds


def _flops(models: pd.DataFrame) -> np.ndarray:
    if "flops" in models and models["flops"].notna().all():
        return models["flops"].to_numpy(float)
    return 6.0 * models["params"].to_numpy(float) * models["tokens"].to_numpy(float)


def flops_cutoff(table, *, cutoff: float, benchmarks: list[str] | None = None,
                 targets: list[str] | None = None) -> tuple[pd.DataFrame, list[Fold]]:
    """Fit on models below ``cutoff`` FLOPs, test on the rest (one fold).

    With ``targets``, only those benchmarks of the models above the cutoff are held out;
    their other scores stay in training (Ruan et al.'s observational scaling laws predict
    hard benchmarks from a model's observed standard-benchmark scores).
    """
    table = _table(table)
    if benchmarks:
        table = table[table["benchmark"].isin(benchmarks)]
    uni = table[table["score"].notna()].reset_index(drop=True)
    models = uni.drop_duplicates("model")
    flops = _flops(models)
    test = models["model"][flops >= cutoff].tolist()
    if not test or len(test) == len(models):
        raise DataError(f"cutoff {cutoff:g} FLOPs leaves no training or no test models",
                        source="--cutoff")
    if targets:
        missing = sorted(set(targets) - set(uni["benchmark"]))
        if missing:
            raise DataError(f"target benchmark(s) {', '.join(missing)} not in the data",
                            source="--targets")
    return uni, [Fold(name=f"flops>={cutoff:g}", test_models=test, group="all",
                      test_benchmarks=list(targets) if targets else None)]


def largest_per_family(table) -> tuple[pd.DataFrame, list[Fold]]:
    """Hold out each family's largest model (families with at least two models)."""
    uni = _table(table)
    uni = uni[uni["score"].notna()].reset_index(drop=True)
    models = uni.drop_duplicates("model")
    test = []
    for _, members in models.groupby("family"):
        if len(members) >= 2:
            test.append(members.sort_values("params", kind="mergesort")["model"].iloc[-1])
    return uni, [Fold(name="largest-per-family", test_models=test, group="all")]


# ---------------------------------------------------------------------- engine
class BacktestEngine:
    """One skills model compiled once and re-sampled for every fold.

    Parameters
    ----------
    spec : ModelSpec
        A skills spec (Beta likelihood).
    universe : DataFrame
        Every row any fold is fit or tested on.
    """

    def __init__(self, spec, universe: pd.DataFrame) -> None:
        import nutpie

        self.spec = spec
        self.kind = skills.KIND
        self.kind.check_data(spec, universe, "backtest data")
        self.universe = universe
        t0 = time.perf_counter()
        self.model, self.design = self.kind.build_masked(spec, universe)
        # without fastmath, a fold's results do not depend on the process (exact_numba)
        with exact_numba():
            self.compiled = nutpie.compile_pymc_model(self.model)
            self.starter = skills.MapStarter(self.model)
        self.compile_seconds = time.perf_counter() - t0
        self._cell_models = self.design.models["model"].to_numpy()[self.design.cell_model]

    def mask_for(self, fold: Fold) -> np.ndarray:
        """Training mask over cells: 0 for the held-out cells of the fold's test models."""
        benches = np.asarray(self.design.benchmarks)[self.design.cell_bench]
        return (~fold.held_out(self._cell_models, benches)).astype(float)

    def sample_fold(self, fold: Fold, *, draws: int, tune: int, chains: int, seed: int,
                    target_accept: float | None = None, cores: int | None = None):
        """Fit the fold's training cells; return the posterior DataTree and the mask.

        ``target_accept`` defaults to the spec's, as does nutpie's mass-matrix
        adaptation. ``cores`` is nutpie's number of sampling threads (default: one per
        chain, at most the machine's cores); it does not change the draws.
        """
        if target_accept is None:
            target_accept = float(self.spec.sampler["target_accept"])
        adaptation = str(self.spec.sampler["adaptation"])
        mask = self.mask_for(fold)
        self.model["train_mask"].set_value(mask)
        with_mask = self.compiled.with_data(train_mask=mask)
        threads = cores or min(chains, os.cpu_count() or 1)
        flat = self.starter.pilot(with_mask, chains=chains, seed=seed,
                                  target_accept=target_accept, adaptation=adaptation,
                                  cores=threads)
        if flat.size != self.compiled.n_dim:
            raise RuntimeError("start point does not match the compiled model")
        compiled = dataclasses.replace(with_mask,
                                       initial_point_func=small_jitter(flat, seed))
        tree = sample_nutpie(compiled, draws=draws, tune=tune, chains=chains,
                             cores=threads, seed=seed,
                             progress_bar=False, target_accept=target_accept,
                             adaptation=adaptation)
        return tree, mask

    def predict_cells(self, tree, cells: np.ndarray, *, seed: int) -> tuple[np.ndarray,
                                                                              np.ndarray]:
        """Draws ``(sample, cell)`` of the mean and of a new score for cell indices."""
        post = tree["posterior"].dataset
        des = self.design
        p = posterior_parameters(post)
        theta = skills.linear_predictor(p, des.x, des.family_idx, des.sub_idx,
                                        des.models["instruct"].to_numpy(float), np)
        mu = skills.posterior_cell_mean(post, theta, des.chance, des.cell_model[cells],
                                        des.cell_bench[cells],
                                        des.models["instruct"].to_numpy(float))
        rng = np.random.default_rng(seed)
        y = skills.draw_scores(self.spec, post, mu, des.cell_bench[cells], rng)
        return mu, y

    def run(self, folds: list[Fold], *, draws: int = 500, tune: int = 500, chains: int = 4,
            seed: int = 0, progress: bool = False) -> list[FoldResult]:
        """Run every fold; return predictions of its held-out cells and diagnostics."""
        from tqdm.auto import tqdm

        return [self.run_fold(fold, k, draws=draws, tune=tune, chains=chains, seed=seed)
                for k, fold in enumerate(tqdm(folds, desc="folds", disable=not progress))]

    def run_fold(self, fold: Fold, k: int, *, draws: int, tune: int, chains: int, seed: int,
                 cores: int | None = None) -> FoldResult:
        """Run fold number ``k``: sample it, predict its held-out cells, diagnose the fit.

        The fold samples with seed ``seed + 1000 k`` and draws its predictions with
        ``seed + 1000 k + 1``: its result depends on its index and the seed only, not on
        the process that runs it or on the folds run before (:mod:`bayescale.scaleout`).
        If a chain is stuck (:func:`stuck_chains`), the fold is sampled again with seed
        ``seed + 1000 k + 2``; ``resampled_stuck_chains`` in its diagnostics counts the
        first run's stuck chains (0 when it was not resampled).
        """
        t0 = time.perf_counter()
        tree, mask = self.sample_fold(fold, draws=draws, tune=tune, chains=chains,
                                      seed=seed + 1000 * k, cores=cores)
        stuck = stuck_chains(tree)
        if stuck:
            # a chain that diverges on most of its transitions never left the neck of a
            # hierarchical funnel: it sampled nothing. The fold is sampled once more with
            # its own next seed (training diagnostics only; the second run is kept
            # whatever its diagnostics, and both counts are reported).
            log.info("fold %s: chain(s) %s diverged on most transitions; sampling the "
                     "fold again", fold.name, stuck)
            tree, mask = self.sample_fold(fold, draws=draws, tune=tune, chains=chains,
                                          seed=seed + 1000 * k + 2, cores=cores)
        cells = np.flatnonzero(mask == 0)
        mu, y = self.predict_cells(tree, cells, seed=seed + 1000 * k + 1)
        preds = prediction_table(self.design, cells, mu, y, fold)
        diag = fold_diagnostics(tree)
        diag["seconds"] = time.perf_counter() - t0
        diag["train_cells"] = int(mask.sum())
        diag["resampled_stuck_chains"] = len(stuck)
        # the start-choosing pilot: chain means further apart than the within-chain sd
        # mean the fold's posterior has separated modes (its chains ran in the best one)
        diag["pilot_logp_spread"] = float(np.ptp(self.starter.pilot_logp))
        diag["pilot_logp_sd"] = self.starter.pilot_logp_sd
        diag["separated_modes"] = separated_modes(self.starter.pilot_logp,
                                                  self.starter.pilot_logp_sd)
        log.info("fold %s: %d test cells, %.1f s, max r-hat %.3f", fold.name, len(cells),
                 diag["seconds"], diag["max_r_hat"])
        return FoldResult(fold=fold, predictions=preds, diagnostics=diag)


def posterior_parameters(post) -> dict[str, np.ndarray]:
    """Stacked draws ``(sample, ...)`` of the linear-predictor parameters."""
    p = {"B": skills._stack(post, "B"), "a_family": skills._stack(post, "a_family")}
    for name in ("sub_offset", "slope_offset", "delta"):
        if name in post:
            p[name] = skills._stack(post, name)
    if "model_z" in post:
        p["model_offset"] = (skills._stack(post, "model_z")
                             * skills._stack(post, "tau_model")[:, None, :])
    return p


#: A chain with more than this share of divergent transitions is stuck (:func:`stuck_chains`)
STUCK_DIVERGENT_SHARE = 0.5


def stuck_chains(tree) -> list[int]:
    """Chains that diverged on more than half of their draws (indices).

    Such a chain sits in the neck of a hierarchical funnel (a population scale near 0,
    where the log density is high and the step size too large): on the Sloth v1 yi
    fold (2026-12-04), one chain diverged on 498 of 500 draws with 3.5 leapfrog steps
    per draw, its mean log density 57 units above the other chains', its tau_sub and
    tau_slope of one skill at half theirs, and the fold's r-hat 1.59.
    """
    diverging = tree["sample_stats"].dataset["diverging"]
    share = diverging.mean("draw").to_numpy()
    return [int(c) for c in np.flatnonzero(share > STUCK_DIVERGENT_SHARE)]


def fold_diagnostics(tree) -> dict[str, Any]:
    """Worst r-hat and bulk ESS of a fold's fit, the parameters they belong to, divergences.

    ``worst_r_hat`` and ``worst_ess_bulk`` name the element, e.g. ``tau_sub[skill2]``.
    Elements that never vary (fixed anchor loadings) have no r-hat and are skipped.
    """
    import arviz as az

    with quiet_constant_draws():
        rhat = varying(az.rhat(tree))
        ess = varying(az.ess(tree, method="bulk"))
    max_rhat, worst_rhat = extreme_element(rhat, max)
    min_ess, worst_ess = extreme_element(ess, min)
    div = int(tree["sample_stats"].dataset["diverging"].sum())
    return {"max_r_hat": max_rhat, "worst_r_hat": worst_rhat, "min_ess_bulk": min_ess,
            "worst_ess_bulk": worst_ess, "divergences": div}


def prediction_table(des, cells: np.ndarray, mu: np.ndarray, y: np.ndarray,
                     fold: Fold) -> pd.DataFrame:
    """One row per held-out cell: identity, observed score and predictive summary."""
    models = des.models.iloc[des.cell_model[cells]].reset_index(drop=True)
    out = pd.DataFrame({
        "fold": fold.name, "group": fold.group, "model": models["model"],
        "family": models["family"], "subfamily": models["subfamily"],
        "params": models["params"], "tokens": models["tokens"],
        "instruct": models["instruct"].astype(bool),
        "benchmark": np.asarray(des.benchmarks)[des.cell_bench[cells]],
        "observed": des.y[cells],
    })
    out["mean"] = y.mean(axis=0)
    out["sd"] = y.std(axis=0, ddof=1)
    qs = np.quantile(y, QUANTILES, axis=0)
    for q, v in zip(QUANTILES, qs, strict=True):
        out[f"q{q:g}"] = v
    out["mu_mean"] = mu.mean(axis=0)
    yr = np.round(y, 2)
    obs_r = np.round(out["observed"].to_numpy(), 2)
    for level in LEVELS:
        lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
        ql, qh = np.quantile(y, [lo, hi], axis=0)
        out[f"inside_{level:g}"] = (out["observed"] >= ql) & (out["observed"] <= qh)
        rl, rh = np.quantile(yr, [lo, hi], axis=0, method="inverted_cdf")
        out[f"inside_rounded_{level:g}"] = (obs_r >= rl - 1e-9) & (obs_r <= rh + 1e-9)
        # what a calibrated model expects of that count: its own predictive mass on the
        # closed interval, edge values included (more than the nominal level)
        out[f"expected_rounded_{level:g}"] = ((yr >= rl - 1e-9) & (yr <= rh + 1e-9)).mean(axis=0)
    out["width_90"] = np.quantile(y, 0.95, axis=0) - np.quantile(y, 0.05, axis=0)
    out["crps"] = crps_samples(y, out["observed"].to_numpy())
    return out


def crps_samples(draws: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Sample CRPS ``E|Y - y| - E|Y - Y'| / 2`` per column of ``draws`` (sample, cell)."""
    s = np.sort(draws, axis=0)
    m = s.shape[0]
    term1 = np.abs(s - observed[None, :]).mean(axis=0)
    weights = (2 * np.arange(1, m + 1) - m - 1)[:, None]
    term2 = (weights * s).sum(axis=0) / (m * m)
    return term1 - term2


# ---------------------------------------------------------------------- metrics
def metrics(predictions: pd.DataFrame) -> dict[str, Any]:
    """Accuracy and calibration of held-out predictions (see the module docstring)."""
    p = predictions

    def sloth_mae(err: pd.Series) -> pd.Series:
        # over the test models of a group, then over groups: one value per benchmark
        return (p.assign(err=err).groupby(["benchmark", "group", "model"])["err"].mean()
                .groupby(["benchmark", "group"]).mean())

    err = (p["q0.5"] - p["observed"]).abs() * 100
    by_group = sloth_mae(err)
    by_bench = by_group.groupby("benchmark").mean()
    out = {
        "point_prediction": "posterior predictive median",
        "mae_pp": float(by_bench.mean()),
        "mae_pp_cells": float(err.mean()),
        "mae_pp_mean": float(sloth_mae((p["mean"] - p["observed"]).abs() * 100)
                             .groupby("benchmark").mean().mean()),
        "rmse_pp": float(np.sqrt((((p["mean"] - p["observed"]) * 100) ** 2).mean())),
        "mse_by_benchmark": {b: float(((g["mean"] - g["observed"]) ** 2).mean())
                             for b, g in p.groupby("benchmark")},
        "mae_pp_by_benchmark": {b: float(v) for b, v in by_bench.items()},
        "mae_pp_by_group": {g: float(v) for g, v in
                            by_group.groupby("group").mean().items()},
        "coverage": {f"{lv:g}": float(p[f"inside_{lv:g}"].mean()) for lv in LEVELS},
        "coverage_rounded": {f"{lv:g}": float(p[f"inside_rounded_{lv:g}"].mean())
                             for lv in LEVELS},
        "coverage_rounded_expected": {
            f"{lv:g}": float(p[f"expected_rounded_{lv:g}"].mean()) for lv in LEVELS
            if f"expected_rounded_{lv:g}" in p},
        "mean_interval_width_90_pp": float(p["width_90"].mean() * 100),
        "crps": float(p["crps"].mean()),
        "n_cells": int(len(p)),
        "n_models": int(p["model"].nunique()),
        "n_groups": int(p["group"].nunique()),
        "n_benchmarks": int(p["benchmark"].nunique()),
    }
    return out


def write_backtest(out_dir: str | os.PathLike, predictions: pd.DataFrame,
                   summary: dict[str, Any], selection: pd.DataFrame | None = None) -> Path:
    """Write ``predictions.csv``, ``metrics.json`` (and ``selection.csv``) atomically."""
    out = Path(out_dir)
    with atomic_directory(out) as tmp:
        predictions.to_csv(tmp / "predictions.csv", index=False)
        if selection is not None:
            selection.to_csv(tmp / "selection.csv", index_label="variant")
        (tmp / "metrics.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    return out


def backtest(spec, data, *, protocol: str, out: str | os.PathLike | None = None,
             groups: dict | str | os.PathLike | None = None, experiment: str = "v1",
             keep_smallest: int = 1, cutoff: float = 84e21,
             benchmarks: list[str] | None = None, targets: list[str] | None = None,
             draws: int = 500, tune: int = 500,
             chains: int = 4, seed: int = 0, progress: bool = False,
             variants: list[dict[str, Any]] | None = None, workers: int | None = None,
             scheduler=None) -> dict[str, Any]:
    """Run a backtest protocol and (optionally) write ``out/predictions.csv``, ``metrics.json``.

    Parameters
    ----------
    spec : ModelSpec, str or path
        A skills spec.
    data : DataFrame, BenchmarkEvals, str or path
        Canonical benchmark table (or anything :func:`bayescale.fitting.resolve_data` reads).
    protocol : {"leave-family-out", "flops-cutoff", "largest-per-family"}
        Which held-out split.
    out : path, optional
        Directory to write (atomically).
    groups : dict or path
        ``test_groups.json`` for ``leave-family-out``.
    experiment, keep_smallest
        Which Sloth experiment and how many smallest models of a held-out sub-family
        stay in training.
    cutoff : float
        FLOPs cutoff for ``flops-cutoff``.
    benchmarks : list of str, optional
        Restrict ``flops-cutoff`` / ``largest-per-family`` to these benchmarks.
    targets : list of str, optional
        ``flops-cutoff``: hold out only these benchmarks of the test models.
    draws, tune, chains, seed
        Sampler settings per fold.
    progress : bool
        Show a progress bar over folds.
    workers : int, optional
        Local worker processes for the folds (1: serially in this process; default:
        one per core, at most one per fold; see :func:`bayescale.scaleout.run_folds`),
        and for the variant fits (:func:`select_variant`).
    scheduler : str or distributed.Client, optional
        Run the folds on a Dask cluster (address ``tcp://host:8786`` or a client); the
        variant fits stay on local processes. Results are identical to a serial run for
        the same seed either way.
    variants : list of dict, optional
        ``[skills]`` overrides to choose from before the folds are run, by
        leave-one-model-out PSIS-LOO on the data every fold trains on
        (:func:`selection_table`, :func:`select_variant`); the table is written to
        ``out/selection.csv`` and the chosen variant to ``metrics.json``.

    Returns
    -------
    dict
        The metrics (also written to ``metrics.json``), with ``folds`` diagnostics and
        wall times.
    """
    from bayescale.fitting import resolve_data, resolve_spec

    t0 = time.perf_counter()
    spec = resolve_spec(spec)
    if spec.kind != skills.KIND.name:
        raise DataError(f"backtests are implemented for skills models; '{spec.name}' is a "
                        f"{spec.kind} model", source="SPEC")
    table = data if isinstance(data, pd.DataFrame) else resolve_data(
        data, kind_data="benchmark").table
    if protocol == "leave-family-out":
        if groups is None:
            raise DataError("leave-family-out needs --groups FILE.json", source="--groups")
        if not isinstance(groups, dict):
            try:
                groups = json.loads(Path(groups).read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise DataError(f"cannot read groups file ({exc})", source=str(groups)) from None
        universe, folds = leave_family_out(table, groups, experiment=experiment,
                                           keep_smallest=keep_smallest)
    elif protocol == "flops-cutoff":
        universe, folds = flops_cutoff(table, cutoff=cutoff, benchmarks=benchmarks,
                                       targets=targets)
    elif protocol == "largest-per-family":
        if benchmarks:
            table = table[table["benchmark"].isin(benchmarks)]
        universe, folds = largest_per_family(table)
    else:
        raise DataError(f"unknown protocol '{protocol}' (known: {', '.join(PROTOCOLS)})",
                        source="--protocol")
    selection = None
    if variants:
        spec, selection = select_variant(spec, selection_table(universe, folds), variants,
                                         draws=draws, tune=tune, chains=chains, seed=seed,
                                         workers=workers, progress=progress)
    from bayescale.scaleout import run_folds

    results = run_folds(spec, universe, folds, draws=draws, tune=tune, chains=chains,
                        seed=seed, workers=workers, scheduler=scheduler, progress=progress)
    preds = pd.concat([r.predictions for r in results], ignore_index=True)
    summary = metrics(preds)
    summary.update({
        "protocol": protocol, "spec": spec.name, "spec_id": spec.config_id,
        "experiment": experiment if protocol == "leave-family-out" else None,
        "keep_smallest": keep_smallest if protocol == "leave-family-out" else None,
        "cutoff": cutoff if protocol == "flops-cutoff" else None,
        "n_folds": len(folds), "universe_models": int(universe["model"].nunique()),
        "variant": dict(spec.skills),
        "selection": None if selection is None else selection.reset_index(
            names="variant").to_dict(orient="records"),
        "universe_cells": int(universe["score"].notna().sum()),
        "sampler": {"draws": draws, "tune": tune, "chains": chains, "seed": seed},
        # the longest compilation a fold waited for (workers compile in parallel)
        "compile_seconds": max(r.diagnostics["compile_seconds"] for r in results),
        "wall_seconds": time.perf_counter() - t0,
        "max_r_hat": max(r.diagnostics["max_r_hat"] for r in results),
        "min_ess_bulk": min(r.diagnostics["min_ess_bulk"] for r in results),
        "divergences": sum(r.diagnostics["divergences"] for r in results),
        "folds_with_separated_modes": sum(bool(r.diagnostics.get("separated_modes"))
                                          for r in results),
        "folds_resampled": sum(r.diagnostics["resampled_stuck_chains"] > 0
                               for r in results),
        "folds": {r.fold.name: r.diagnostics for r in results},
    })
    if out is not None:
        write_backtest(out, preds, summary, selection)
    return summary


# ---------------------------------------------------------------------- model choice
def parse_variant(text: str, option: str = "--variant") -> dict[str, Any]:
    """Parse ``"d=2,family_slope=false"`` into ``[skills]`` overrides.

    ``option`` names the command-line option the text came from, in error messages.
    """
    out: dict[str, Any] = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DataError(f"variant '{text}': expected KEY=VALUE[,KEY=VALUE...]",
                            source=option)
        try:
            out[key.strip()] = json.loads(value.strip().lower())
        except json.JSONDecodeError:
            raise DataError(f"variant '{text}': value of '{key.strip()}' must be a number "
                            "or true/false", source=option) from None
    if not out:
        raise DataError("empty variant", source=option)
    return out


def variant_label(overrides: dict[str, Any]) -> str:
    """Label of a variant, ``d=2,family_slope=false``."""
    return ",".join(f"{k}={json.dumps(v)}" for k, v in overrides.items())


def selection_table(universe: pd.DataFrame, folds: list[Fold]) -> pd.DataFrame:
    """Return the rows of ``universe`` that are in the training set of EVERY fold.

    Variants chosen on this table use no held-out score of any fold: it is the
    universe without every fold's held-out cells.
    """
    held = np.zeros(len(universe), dtype=bool)
    for fold in folds:
        held |= fold.held_out(universe["model"], universe["benchmark"])
    return universe[~held].reset_index(drop=True)


def select_variant(spec, table: pd.DataFrame, variants: list[dict[str, Any]], *,
                   draws: int = 500, tune: int = 500, chains: int = 4, seed: int = 0,
                   workers: int | None = None, progress: bool = False
                   ) -> tuple[Any, pd.DataFrame]:
    """Choose among ``[skills]`` variants of ``spec`` by leave-one-model-out PSIS-LOO.

    Parameters
    ----------
    spec : ModelSpec
        The base skills spec.
    table : DataFrame
        Training data only (for a backtest: :func:`selection_table`).
    variants : list of dict
        ``[skills]`` overrides, e.g. ``[{"d": 2}, {"d": 3}, {"d": 4}]``.
    draws, tune, chains, seed
        Sampler settings of each variant's fit (every variant uses ``seed``).
    workers : int, optional
        Local processes fitting variants at once (1: one after another in this
        process). Default: one per core, at most one per variant. One process compiles
        a variant, or runs its single-threaded MAP starts and LOO, while the other
        samples. The table does not depend on ``workers`` (fits compile without
        fastmath: :func:`bayescale.sample.exact_numba`).
    progress : bool
        Show a progress bar over variants.

    Returns
    -------
    chosen : ModelSpec
        The spec of the variant with the highest expected log predictive density among
        those whose fit mixed (:func:`choose_variant`).
    table : DataFrame
        ``arviz.compare``-style table indexed by variant label, with the fit's max
        r-hat, min bulk ESS, wall seconds, the share of models with Pareto k > 0.7 and
        ``chosen``.
    """
    import arviz as az

    from bayescale.scaleout import default_workers, map_local

    specs = {variant_label(o): spec.with_overrides(skills=o) for o in variants}
    settings = {"draws": draws, "tune": tune, "chains": chains, "seed": seed}
    items = [(label, specs[label], table, settings) for label in specs]
    n_workers = default_workers(len(items), chains)[0] if workers is None else workers
    fits = map_local(_variant_loo, items, workers=min(n_workers, len(items)),
                     desc="variants", progress=progress)
    loos = {label: loo for label, loo, _ in fits}
    extra = {label: more for label, _, more in fits}
    if len(loos) > 1:
        table_out = az.compare(loos, round_to="none")
    else:
        only = next(iter(loos.values()))
        table_out = pd.DataFrame({"rank": [0], "elpd": [only.elpd], "p": [only.p],
                                  "se": [only.se]}, index=list(loos))
    table_out = table_out.join(pd.DataFrame(extra).T)
    label = choose_variant(table_out)
    table_out["chosen"] = table_out.index == label
    return specs[label], table_out


#: A variant whose selection fit has a larger max r-hat did not mix (a chain stuck in a
#: funnel's neck or in another mode): its PSIS-LOO estimates the elpd of draws that are
#: not the posterior, so it may not be chosen. 1.1 and not 1.01: these fits have 4 x 500
#: draws, where well-mixed fits of the leaderboard tables reach 1.01-1.06, and the
#: failures seen were 1.5-1.6.
SELECTION_MAX_R_HAT = 1.1


def choose_variant(table: pd.DataFrame, max_r_hat: float = SELECTION_MAX_R_HAT) -> str:
    """Label of the best-ranked variant whose fit mixed (``max_r_hat`` at most the bound).

    Parameters
    ----------
    table : DataFrame
        :func:`select_variant`'s table: indexed by variant label, with ``rank`` (0 =
        highest elpd) and the fit's ``max_r_hat``.
    max_r_hat : float
        Largest max r-hat of an eligible fit.

    Returns
    -------
    str
        The chosen label. When no fit mixed, the best-ranked one, with a
        :class:`~bayescale.errors.ConvergenceWarning`.
    """
    from bayescale.errors import ConvergenceWarning

    ranked = table.sort_values("rank")
    mixed = ranked[ranked["max_r_hat"] <= max_r_hat]
    best_rank = mixed["rank"].iloc[0] if len(mixed) else np.inf
    passed_over = ranked[(ranked["max_r_hat"] > max_r_hat) & (ranked["rank"] < best_rank)]
    for label, r_hat in passed_over["max_r_hat"].items():
        log.warning("variant %s not eligible: its fit did not mix (max r-hat %.3f > %.2f)",
                    label, r_hat, max_r_hat)
    if mixed.empty:
        warnings.warn(f"no variant's fit mixed (max r-hat > {max_r_hat}); choosing the "
                      f"highest elpd anyway: {ranked.index[0]}", ConvergenceWarning,
                      stacklevel=2)
        return str(ranked.index[0])
    return str(mixed.index[0])


def _variant_loo(label: str, spec, table: pd.DataFrame, settings: dict[str, Any]
                 ) -> tuple[str, Any, dict[str, float]]:
    """Fit one variant; return its label, leave-one-model-out LOO and fit diagnostics."""
    from bayescale.errors import ConvergenceWarning
    from bayescale.fitting import fit

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        post = fit(spec, table, **settings)
    loo = loo_by_model(post)
    k = np.asarray(loo.pareto_k)
    log.info("variant %s: elpd_loo %.1f", label, loo.elpd)
    return label, loo, {"max_r_hat": post.diagnostics.max_r_hat,
                        "min_ess_bulk": post.diagnostics.min_ess_bulk,
                        "seconds": time.perf_counter() - t0,
                        "frac_pareto_k_above_0.7": float(np.mean(k > 0.7))}


def loo_by_model(posterior) -> Any:
    """PSIS-LOO leaving out one MODEL at a time (all its cells), on the training data.

    The pointwise log likelihood of a model is the sum over its observed cells. This
    matches the prediction task of the backtests (a new model's scores) better than
    leaving out single cells, whose neighbours on other benchmarks would give them away.

    Parameters
    ----------
    posterior : bayescale.posterior.Posterior
        A fitted skills posterior (Beta likelihood).

    Returns
    -------
    ELPDData
        ``arviz.loo`` result.
    """
    import arviz as az
    import xarray as xr

    ll = pointwise_log_lik(posterior)
    tree = posterior.tree.copy()
    tree["log_likelihood"] = xr.DataTree(xr.Dataset({"score": ll}))
    with warnings.catch_warnings():
        # the share of Pareto k > 0.7 is reported with every selection table instead
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        return az.loo(tree, var_name="score")


def pointwise_log_lik(posterior):
    """Log likelihood of each training model's observed scores, dims (chain, draw, model)."""
    import xarray as xr

    spec = posterior.spec
    des = skills.make_design(spec, posterior.fit_table)
    post = posterior.posterior
    p = posterior_parameters(post)
    theta = skills.linear_predictor(p, des.x, des.family_idx, des.sub_idx,
                                    des.models["instruct"].to_numpy(float), np)
    mu = skills.posterior_cell_mean(post, theta, des.chance, des.cell_model, des.cell_bench,
                                    des.models["instruct"].to_numpy(float))
    phi = skills._stack(post, "phi")[:, des.cell_bench]
    cell_ll = skills.censored_beta_logp(des.y[None, :], mu, phi, skills._options(spec)["clip"])
    n_models = len(des.models)
    per_model = np.zeros((cell_ll.shape[0], n_models))
    np.add.at(per_model.T, des.cell_model, cell_ll.T)
    per_model = per_model.reshape(post.sizes["chain"], post.sizes["draw"], n_models)
    return xr.DataArray(per_model, dims=("chain", "draw", "model"),
                        coords={"model": des.models["model"].to_numpy()})


def compare_runs(run_dirs: list[str | os.PathLike]) -> pd.DataFrame:
    """PSIS-LOO comparison of fitted runs on the same data (``arviz.compare``).

    Skills runs leave out one MODEL (all its scores) at a time (:func:`loo_by_model`);
    loss-law runs leave out one run (:meth:`Posterior.loo`). So law forms, hierarchies
    and numbers of skills can be compared, as long as every run was fit to the same
    table.

    Raises
    ------
    DataError
        If the runs are of different kinds or were fit to different data.
    """
    import arviz as az

    from bayescale.posterior import Posterior

    posts = {Path(run).name: Posterior.load(run) for run in run_dirs}
    first_name, first = next(iter(posts.items()))
    for name, post in posts.items():
        if post.kind.data_kind != first.kind.data_kind:
            raise DataError(f"run '{name}' is a {post.spec.kind} fit and '{first_name}' a "
                            f"{first.spec.kind} fit of another kind of data: PSIS-LOO "
                            "compares models of the same observations", source=name)
        if not _same_observations(post.fit_table, first.fit_table):
            raise DataError(f"run '{name}' was fit to other data than '{first_name}' "
                            f"({len(post.fit_table)} vs {len(first.fit_table)} rows): "
                            "PSIS-LOO compares models of the same observations", source=name)
    loos = {name: loo_by_model(post) if post.spec.kind == skills.KIND.name else post.loo()
            for name, post in posts.items()}
    return az.compare(loos, round_to="none")


def _same_observations(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Whether two fit tables hold the same observations (row order aside)."""
    keys = [c for c in ("model", "benchmark", "score", "run", "family", "params", "tokens",
                        "loss") if c in a.columns and c in b.columns]
    if len(a) != len(b) or not keys:
        return False
    left = a[keys].sort_values(keys).reset_index(drop=True)
    right = b[keys].sort_values(keys).reset_index(drop=True)
    return left.equals(right)
