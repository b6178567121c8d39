"""Plots of fitted models. Every function takes keyword-only arguments and returns ``(fig, ax)``."""

from __future__ import annotations

import logging
from contextlib import contextmanager

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd
import xarray as xr

from bayescale.kinds import loss_law
from bayescale.prediction import optimal_draws

_AXIS_LABEL = {
    "flops": "training compute C (FLOPs)",
    "params": "parameters N",
    "tokens": "training tokens D",
}


def _law_curve(posterior, family: str | None, grid: np.ndarray) -> tuple[str, xr.DataArray]:
    """Loss draws along a grid: the compute-optimal frontier, or the law's one covariate."""
    spec = posterior.spec
    variables = {t.variable for t in loss_law.terms(spec)}
    if variables == {"params", "tokens"}:
        return "flops", optimal_draws(posterior, grid, family=family)["loss"]
    if len(variables) != 1:
        raise ValueError(f"no extrapolation curve for a law in {sorted(variables)}")
    (term,) = loss_law.terms(spec)
    values = loss_law.law_values(posterior, family)
    x = xr.DataArray(grid, dims="flops", coords={"flops": grid})
    loss = values[term.coefficient] * x ** (-values[term.exponent])
    if loss_law.irreducible(spec):
        loss = loss + values[loss_law.irreducible(spec)]
    return term.variable, loss


def plot_loss_extrapolation(*, posterior, families: list[str] | None = None,
                            x_max: float | None = None, ax=None):
    """Loss against compute (or the law's covariate) with data, median and 50%/90% bands.

    For a law in N and D the curve is the loss along the compute-optimal frontier
    (N*(C), D*(C) with C = 6 N D), extrapolated two orders of magnitude beyond the
    largest training run (or to ``x_max``).

    Parameters
    ----------
    posterior : Posterior
        A loss-law fit.
    families : list of str, optional
        Families to draw (default: all training families).
    x_max : float, optional
        Right end of the curve.
    ax : matplotlib Axes, optional
        Axes to draw on.

    Returns
    -------
    fig, ax
    """
    table = posterior.fit_table
    families = families or posterior.families
    variables = {t.variable for t in loss_law.terms(posterior.spec)}
    axis = "flops" if variables == {"params", "tokens"} else next(iter(variables))
    x_data = table[axis].to_numpy(float)
    lo, hi = x_data.min(), x_max or x_data.max() * 100
    grid = np.geomspace(lo, hi, 60)
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.5, 5))
    else:
        fig = ax.figure
    colours = plt.cm.tab10(np.linspace(0, 1, 10))
    single = len(posterior.families) == 1
    for i, fam in enumerate(families):
        colour = colours[i % 10]
        rows = table[table["family"] == fam]
        label = "training runs" if single else fam
        ax.scatter(rows[axis], rows["loss"], s=10, alpha=0.5, color=colour, label=label)
        _, loss = _law_curve(posterior, None if single else fam, grid)
        draws = loss.stack(sample=("chain", "draw")).transpose("flops", "sample").values
        q = np.quantile(draws, [0.05, 0.25, 0.5, 0.75, 0.95], axis=1)
        curve = "compute-optimal frontier" if axis == "flops" and variables != {"flops"} \
            else "law"
        ax.fill_between(grid, q[0], q[4], color=colour, alpha=0.15,
                        label="90% interval" if single else None)
        ax.fill_between(grid, q[1], q[3], color=colour, alpha=0.3,
                        label="50% interval" if single else None)
        ax.plot(grid, q[2], color=colour, lw=1.5,
                label=f"{curve} (median)" if single else None)
    ax.axvline(x_data.max(), color="grey", ls=":", lw=1, label="largest training run")
    long_names = max(len(f) for f in families) > 20
    if not single:
        from matplotlib.patches import Patch

        handles, labels = ax.get_legend_handles_labels()
        handles += [Patch(color="grey", alpha=0.3, label="50% interval"),
                    Patch(color="grey", alpha=0.15, label="90% interval")]
        _legend(ax, handles=handles, n_series=len(families), long_names=long_names)
    else:
        _legend(ax)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    ax.set_xlabel(_AXIS_LABEL[axis])
    ax.set_ylabel("final loss (nats per token)")
    ax.set_title(f"{posterior.spec.name}: posterior extrapolation")
    return fig, ax


# ---------------------------------------------------------------------- helpers
@contextmanager
def _quiet_pymc():
    """Silence PyMC's ``Sampling: [...]`` info lines for the forward draws of a plot."""
    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _new_axes(ax, figsize=(7.5, 5)):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def _colours(n: int):
    cmap = plt.cm.tab10 if n <= 10 else plt.cm.tab20
    return [cmap(i % cmap.N) for i in range(n)]


def _stacked(da: xr.DataArray) -> np.ndarray:
    """Draws of a (chain, draw, ...) array as (sample, ...)."""
    return da.values.reshape((-1, *da.shape[2:]))


def _scalar_elements(ds: xr.Dataset, names: list[str], limit: int
                     ) -> list[tuple[str, str, dict]]:
    """``(variable, label, selection)`` of scalar elements of ``names``, at most ``limit``.

    Scalar variables (population and noise parameters) come first, then the elements
    of vector variables in the order of ``names``.
    """
    names = [n for n in names if n in ds]
    scalars = [n for n in names if ds[n].ndim == 2]
    vectors = [n for n in names if ds[n].ndim > 2]
    out = [(n, n, {}) for n in scalars]
    for name in vectors:
        if len(out) >= limit:
            break
        da = ds[name]
        dims = [d for d in da.dims if d not in ("chain", "draw")]
        for idx in np.ndindex(*[da.sizes[d] for d in dims]):
            sel = dict(zip(dims, idx, strict=True))
            label = name + "[" + ",".join(str(da[d].values[i]) for d, i in sel.items()) + "]"
            out.append((name, label, sel))
    return out[:limit]


def _legend(ax, *, handles=None, n_series: int = 0, long_names: bool = False,
            loc: str = "upper right") -> None:
    """Legend inside the axes, or outside on the right when it would cover the data."""
    kwargs = {"fontsize": 8}
    if handles is not None:
        kwargs["handles"] = handles
    if n_series > 6 or long_names:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs)
    else:
        ax.legend(loc=loc, **kwargs)


def _plain_log_ticks(axis) -> None:
    """Label a log axis with plain numbers (0.5, 2, 20) instead of powers of ten."""
    axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0),
                                                        numticks=20))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _log_flops_ticks(axis) -> None:
    """Cheap log-axis ticks: powers of ten labelled ``1e21``, no minor ticks."""
    axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, numticks=8))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(
        lambda v, _: f"1e{round(np.log10(v))}" if v > 0 else ""))
    axis.set_minor_locator(matplotlib.ticker.NullLocator())


def _grid(n: int, ncols: int = 3, panel=(3.6, 2.8)):
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows + 0.6),
                             squeeze=False)
    for extra in axes.ravel()[n:]:
        extra.set_visible(False)
    return fig, axes


# ---------------------------------------------------------------------- diagnostics
def plot_energy(*, posterior, ax=None):
    """Energy plot: marginal energy against energy transitions (Betancourt 2016).

    When the transition distribution is much narrower than the marginal, NUTS explores
    the energy levels slowly (low BFMI); the title gives the BFMI of each chain.

    Parameters
    ----------
    posterior : Posterior
        A fit with ``energy`` in ``sample_stats``.
    ax : matplotlib Axes, optional
        Axes to draw on.

    Returns
    -------
    fig, ax
    """
    stats = posterior.tree["sample_stats"].dataset
    if "energy" not in stats:
        raise ValueError("the fit has no energy statistics (sample_stats.energy)")
    energy = stats["energy"].values  # (chain, draw)
    fig, ax = _new_axes(ax, (6.5, 4.2))
    centred = (energy - energy.mean(axis=1, keepdims=True)).ravel()
    trans = np.diff(energy, axis=1).ravel()
    bins = np.linspace(min(centred.min(), trans.min()), max(centred.max(), trans.max()), 50)
    ax.hist(centred, bins=bins, density=True, alpha=0.55, color="C0",
            label="marginal energy (centred)")
    ax.hist(trans, bins=bins, density=True, alpha=0.55, color="C1",
            label="energy transition ΔE")
    bfmi = np.square(np.diff(energy, axis=1)).mean(axis=1) / energy.var(axis=1)
    ax.set_title("Energy: " + ", ".join(f"chain {i} BFMI {b:.2f}" for i, b in enumerate(bfmi)),
                 fontsize=9)
    ax.set_xlabel("energy (nats)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    return fig, ax


def plot_rank(*, posterior, var_names: list[str] | None = None, max_panels: int = 9,
              bins: int = 20):
    """Rank histograms per chain (Vehtari et al. 2021) for scalar parameters.

    Each panel shows, for one scalar element, the histogram of the ranks of its draws
    (ranked over all chains) separately for each chain; well-mixed chains give flat,
    overlapping histograms near the dashed uniform line.

    Parameters
    ----------
    posterior : Posterior
        A fitted model.
    var_names : list of str, optional
        Variables (default: the kind's summary parameters).
    max_panels : int
        At most this many scalar elements are drawn.
    bins : int
        Rank bins.

    Returns
    -------
    fig, axes
        ``axes`` is a 2-d array of Axes.
    """
    post = posterior.posterior
    names = var_names or posterior.kind.summary_var_names(posterior.spec)
    elements = _scalar_elements(post, names, max_panels)
    fig, axes = _grid(len(elements))
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    edges = np.linspace(0, n_chain * n_draw, bins + 1)
    for ax, (name, label, sel) in zip(axes.ravel(), elements, strict=False):
        values = post[name].isel(sel).values
        ranks = np.argsort(np.argsort(values.ravel())).reshape(values.shape)
        for c in range(n_chain):
            counts, _ = np.histogram(ranks[c], bins=edges)
            ax.stairs(counts, edges, lw=1.2, baseline=None, label=f"chain {c}")
        ax.axhline(n_draw / bins, color="k", ls="--", lw=0.8, label="uniform")
        ax.set_ylim(bottom=0)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("rank of draw (all chains)", fontsize=8)
        ax.set_ylabel("draws per bin", fontsize=8)
        ax.tick_params(labelsize=7)
    axes.ravel()[0].legend(fontsize=7)
    fig.suptitle("Rank plots: per-chain rank histograms", fontsize=11)
    fig.tight_layout()
    return fig, axes


# ---------------------------------------------------------------------- prior vs posterior
def sample_prior(posterior, *, draws: int = 500, seed: int | None = None,
                 var_names: list[str] | None = None) -> xr.Dataset:
    """Prior draws of the model rebuilt from the fit's spec and training table.

    Parameters
    ----------
    posterior : Posterior
        The fit (its kind rebuilds the model with ``kind.build(spec, fit_table)``).
    draws : int
        Number of prior draws.
    seed : int, optional
        Seed (default: the fit's seed).
    var_names : list of str, optional
        Variables to draw (default: the kind's summary parameters).

    Returns
    -------
    xarray.Dataset
        Prior draws, dims ``(chain, draw, ...)``.
    """
    import pymc as pm

    model = posterior.kind.build(posterior.spec, posterior.fit_table)
    names = [n for n in (var_names or posterior.kind.summary_var_names(posterior.spec))
             if n in model.named_vars]
    with model, _quiet_pymc():
        tree = pm.sample_prior_predictive(
            draws=draws, var_names=names, random_seed=posterior.seed if seed is None else seed,
            compile_kwargs={"mode": "FAST_COMPILE"})
    return tree["prior"].dataset


def plot_prior_posterior(*, posterior, prior: xr.Dataset | None = None,
                         var_names: list[str] | None = None, max_panels: int = 12):
    """Prior against posterior density of scalar parameters.

    Parameters
    ----------
    posterior : Posterior
        A fitted model.
    prior : xarray.Dataset, optional
        Prior draws (default: :func:`sample_prior`).
    var_names : list of str, optional
        Variables (default: the kind's summary parameters).
    max_panels : int
        At most this many scalar elements.

    Returns
    -------
    fig, axes
    """
    prior = sample_prior(posterior) if prior is None else prior
    post = posterior.posterior
    names = [n for n in (var_names or posterior.kind.summary_var_names(posterior.spec))
             if n in prior]
    elements = _scalar_elements(post, names, max_panels)
    fig, axes = _grid(len(elements), ncols=4)
    for ax, (name, label, sel) in zip(axes.ravel(), elements, strict=False):
        post_v = post[name].isel(sel).values.ravel()
        prior_v = prior[name].isel(sel).values.ravel()
        prior_v = prior_v[np.isfinite(prior_v)]
        positive = (prior_v > 0).all() and (post_v > 0).all()
        if positive:  # positive parameters: densities of log10 values
            prior_v, post_v = np.log10(prior_v), np.log10(post_v)
        lo, hi = np.quantile(prior_v, [0.005, 0.995])
        lo, hi = min(lo, post_v.min()), max(hi, post_v.max())
        edges = np.linspace(lo, hi, 60)
        for values, colour, alpha, name_ in ((prior_v, "grey", 0.5, "prior"),
                                              (post_v, "C0", 0.7, "posterior")):
            dens, _ = np.histogram(values, bins=edges, density=True)
            ax.stairs(dens, edges, fill=True, color=colour, alpha=alpha, label=name_)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(f"log10 {label}" if positive else f"{label} (parameter value)",
                      fontsize=8)
        ax.set_ylabel("density", fontsize=8)
        ax.tick_params(labelsize=7)
    if len(elements):
        axes.ravel()[0].legend(fontsize=7)
    fig.suptitle("Prior (grey) against posterior (blue)", fontsize=11)
    fig.tight_layout()
    return fig, axes


# ---------------------------------------------------------------------- posterior predictive
def in_sample_predictive(posterior, *, seed: int | None = None, max_draws: int = 200
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Posterior predictive draws of every training observation.

    Loss laws use the fit model's own likelihood (:meth:`predict` on the training
    rows); skills models use every model's own fitted deviation.

    Returns
    -------
    observed : ndarray (n,)
        Observed values (loss in nats, or accuracy).
    draws : ndarray (sample, n)
        Posterior predictive draws of a replicated observation.
    """
    seed = posterior.seed if seed is None else seed
    table = posterior.fit_table
    if posterior.spec.kind == "skills":
        from bayescale.evaluate import posterior_parameters
        from bayescale.kinds import skills

        des = skills.make_design(posterior.spec, table)
        post = _thin(posterior.posterior, max_draws)
        p = posterior_parameters(post)
        theta = skills.linear_predictor(p, des.x, des.family_idx, des.sub_idx,
                                        des.models["instruct"].to_numpy(float), np)
        mu = skills.posterior_cell_mean(post, theta, des.chance, des.cell_model,
                                        des.cell_bench, des.models["instruct"].to_numpy(float))
        rng = np.random.default_rng(seed)
        y = skills.draw_scores(posterior.spec, post, mu, des.cell_bench, rng)
        return des.y, y
    from bayescale.posterior import Posterior

    tree = posterior.tree.copy()
    tree["posterior"] = xr.DataTree(_thin(posterior.posterior, max_draws))
    with _quiet_pymc():
        draws = posterior.kind.predict(Posterior(tree), table, seed=seed)["y"]
    y = draws.stack(sample=("chain", "draw")).transpose("sample", "row").values
    return table["loss"].to_numpy(float), y


def _thin(post: xr.Dataset, max_draws: int) -> xr.Dataset:
    total = post.sizes["chain"] * post.sizes["draw"]
    if total <= max_draws:
        return post
    step = int(np.ceil(total / max_draws))
    return post.isel(draw=slice(None, None, step))


def plot_ppc(*, posterior, observed=None, draws=None, ax=None):
    """Posterior predictive check: observed against predicted (median and 90% interval).

    Parameters
    ----------
    posterior : Posterior
        A fitted model.
    observed, draws : ndarray, optional
        Output of :func:`in_sample_predictive` (computed if absent).
    ax : matplotlib Axes, optional
        Axes to draw on.

    Returns
    -------
    fig, ax
        The title gives the share of observations inside their 50% and 90% intervals.
    """
    if observed is None or draws is None:
        observed, draws = in_sample_predictive(posterior)
    fig, ax = _new_axes(ax, (6.5, 5.5))
    q = np.quantile(draws, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    inside90 = np.mean((observed >= q[0]) & (observed <= q[4]))
    inside50 = np.mean((observed >= q[1]) & (observed <= q[3]))
    skills = posterior.spec.kind == "skills"
    if skills:
        from bayescale.kinds import skills as sk

        des = sk.make_design(posterior.spec, posterior.fit_table)
        groups = np.asarray(des.benchmarks)[des.cell_bench]
    else:
        groups = posterior.fit_table["family"].to_numpy()
    labels = list(dict.fromkeys(sorted(groups)))
    colours = _colours(len(labels))
    for colour, label in zip(colours, labels, strict=True):
        m = groups == label
        ax.errorbar(observed[m], q[2][m], yerr=[q[2][m] - q[0][m], q[4][m] - q[2][m]],
                    fmt="o", ms=2.5, lw=0.6, alpha=0.6, color=colour,
                    label=label if len(labels) > 1 else "median and 90% interval")
    lo = min(observed.min(), q[0].min())
    hi = max(observed.max(), q[4].max())
    ax.plot([lo, hi], [lo, hi], color="k", lw=0.8, ls="--", label="predicted = observed")
    if skills:
        ax.set_xlabel("observed score (accuracy)")
        ax.set_ylabel("posterior predictive score (accuracy)")
    else:
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_ticks(ax.xaxis)
        _plain_log_ticks(ax.yaxis)
        ax.set_xlabel("observed final loss (nats per token)")
        ax.set_ylabel("posterior predictive loss (nats per token)")
    ax.set_title(f"Posterior predictive check: {inside50:.0%} of observations inside their "
                 f"50% interval, {inside90:.0%} inside 90%", fontsize=9)
    _legend(ax, n_series=len(labels), long_names=max(len(str(x)) for x in labels) > 20,
            loc="upper left")
    return fig, ax


# ---------------------------------------------------------------------- allocation
def plot_optimal_allocation(*, posterior, families: list[str] | None = None,
                            flops: np.ndarray | None = None, ax=None):
    """Compute-optimal tokens per parameter D*/N* against compute, median and 50%/90% bands.

    Parameters
    ----------
    posterior : Posterior
        A loss law in N and D.
    families : list of str, optional
        Families (default: every training family; a one-family fit draws its law).
    flops : array, optional
        Compute grid in FLOPs (default: smallest training run to 100x the largest).
    ax : matplotlib Axes, optional
        Axes to draw on.

    Returns
    -------
    fig, ax
    """
    table = posterior.fit_table
    if flops is None:
        c = table["flops"].to_numpy(float)  # canonical loss runs always carry flops
        flops = np.geomspace(c.min(), c.max() * 100, 40)
    single = not loss_law.grouped(posterior.spec)
    families = [None] if single else (families or posterior.families)
    fig, ax = _new_axes(ax)
    for colour, fam in zip(_colours(len(families)), families, strict=False):
        ratio = optimal_draws(posterior, flops, family=fam)["tokens_per_param"]
        draws = ratio.stack(sample=("chain", "draw")).transpose("flops", "sample").values
        q = np.quantile(draws, [0.05, 0.25, 0.5, 0.75, 0.95], axis=1)
        name = posterior.families[0] if fam is None else fam
        ax.fill_between(flops, q[0], q[4], color=colour, alpha=0.15,
                        label="90% interval" if fam == families[0] else None)
        ax.fill_between(flops, q[1], q[3], color=colour, alpha=0.3,
                        label="50% interval" if fam == families[0] else None)
        ax.plot(flops, q[2], color=colour, lw=1.5, label=f"{name} (median)")
    ax.axhline(20, color="grey", ls=":", lw=1, label="20 tokens per parameter")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    ax.set_xlabel("training compute C (FLOPs)")
    ax.set_ylabel("compute-optimal tokens per parameter D*/N*")
    ax.set_title(f"{posterior.spec.name}: compute-optimal allocation")
    names = [posterior.families[0] if f is None else f for f in families]
    _legend(ax, n_series=len(names), long_names=max(len(n) for n in names) > 20,
            loc="best")
    return fig, ax


# ---------------------------------------------------------------------- skills fan charts
def plot_skill_extrapolation(*, posterior, benchmarks: list[str] | None = None,
                             families: list[str] | None = None, max_families: int = 4,
                             c_max: float | None = None, seed: int | None = None):
    """Accuracy against compute per benchmark and family, with data and 50%/90% bands.

    Each curve is the posterior of the mean accuracy of a new base model of the family
    (its own deviation drawn from the population), with N and D grown together at the
    family's median tokens-per-parameter ratio, C = 6 N D.

    Parameters
    ----------
    posterior : Posterior
        A skills fit.
    benchmarks : list of str, optional
        Panels (default: every benchmark, at most 9).
    families : list of str, optional
        Families (default: the ``max_families`` with the most models).
    max_families : int
        Number of families drawn when ``families`` is not given.
    c_max : float, optional
        Right end of the compute axis (default: 30x the largest training model).
    seed : int, optional
        Seed of the new models' deviations (default: the fit's seed).

    Returns
    -------
    fig, axes
    """
    from bayescale.kinds import skills as sk

    table = posterior.fit_table
    des = sk.make_design(posterior.spec, table)
    benchmarks = benchmarks or des.benchmarks[:9]
    if families is None:
        counts = des.models.groupby("family")["model"].nunique().sort_values(
            ascending=False, kind="stable")
        families = list(counts.index[:max_families])
    compute = 6 * des.models["params"] * des.models["tokens"]
    c_hi = c_max or compute.max() * 30
    grid = np.geomspace(compute.min(), c_hi, 30)
    rows = []
    for fam in families:
        fm = des.models[des.models["family"] == fam]
        rho = float(np.median(fm["tokens"] / fm["params"]))
        n = np.sqrt(grid / (6 * rho))
        for b in benchmarks:
            for i, (nn, c) in enumerate(zip(n, grid, strict=True)):
                rows.append({"model": f"__{fam}__{i}", "family": fam, "subfamily": fam,
                             "instruct": 0.0, "params": nn, "tokens": rho * nn,
                             "benchmark": b, "flops": c})
    rows = pd.DataFrame(rows)
    post = _thin(posterior.posterior, 600)
    mu = sk.predict_mean(posterior.spec, des, post, rows,
                         seed=posterior.seed if seed is None else seed)
    mu = mu.reshape(-1, len(rows))
    q = np.quantile(mu, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    fig, axes = _grid(len(benchmarks), ncols=3, panel=(4.2, 3.2))
    colours = dict(zip(families, _colours(len(families)), strict=True))
    table = table.assign(flops=6 * table["params"].astype(float) * table["tokens"].astype(float))
    for ax, b in zip(axes.ravel(), benchmarks, strict=False):
        for fam in families:
            m = ((rows["family"] == fam) & (rows["benchmark"] == b)).to_numpy()
            ax.fill_between(grid, q[0][m], q[4][m], color=colours[fam], alpha=0.12)
            ax.fill_between(grid, q[1][m], q[3][m], color=colours[fam], alpha=0.25)
            ax.plot(grid, q[2][m], color=colours[fam], lw=1.3, label=fam)
            d = table[(table["family"] == fam) & (table["benchmark"] == b)]
            ax.scatter(d["flops"], d["score"], s=10, color=colours[fam], edgecolor="k",
                       lw=0.3, zorder=3)
        ax.axhline(des.chance[des.benchmarks.index(b)], color="grey", ls=":", lw=0.8,
                   label="chance")
        ax.set_xscale("log")
        _log_flops_ticks(ax.xaxis)
        ax.set_ylim(0, 1)
        ax.set_title(b, fontsize=10)
        ax.set_xlabel("training compute 6ND (FLOPs)", fontsize=8)
        ax.set_ylabel("accuracy", fontsize=8)
        ax.tick_params(labelsize=7)
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    from matplotlib.patches import Patch

    handles += [Patch(color="grey", alpha=0.25, label="50% interval"),
                Patch(color="grey", alpha=0.12, label="90% interval")]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=8,
               frameon=False)
    fig.suptitle(f"{posterior.spec.name}: accuracy against compute (points: data, lines: "
                 "median for a new base model of the family)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig, axes


# ---------------------------------------------------------------------- family efficiency
def plot_efficiency_forest(*, table, ax=None):
    """Forest plot of effective-compute multipliers (a :func:`family_efficiency` table).

    Points are medians, bars the central interval; weakly identified families are drawn
    hollow and marked with an asterisk. The x axis is log scale; the reference family
    sits at 1. A skills table gets one panel per skill, sharing the family axis.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`bayescale.compare.family_efficiency`.
    ax : matplotlib Axes, optional
        Axes to draw on (loss laws only; a skills table makes its own panels).

    Returns
    -------
    fig, ax
        ``ax`` is an array of Axes for a skills table.
    """
    has_skill = "skill" in table and table["skill"].notna().any()
    groups = list(dict.fromkeys(table["skill"])) if has_skill else [None]
    families = list(dict.fromkeys(table["family"]))
    height = max(2.5, 0.27 * len(families) + 1.4)
    if has_skill:
        fig, axes = plt.subplots(1, len(groups), sharey=True,
                                 figsize=(min(4.0 * len(groups), 13), height), squeeze=False)
        axes = axes[0]
    else:
        fig, one = _new_axes(ax, (7.5, height))
        axes = np.array([one])
    ref = table["reference"].iloc[0]
    at = table["at"].iloc[0]
    axis = table["axis"].iloc[0] if "axis" in table else "flops"
    unit = {"flops": "FLOPs", "params": "parameters", "tokens": "tokens"}.get(axis, axis)
    what = "compute" if axis == "flops" else unit
    ypos = {f: -i for i, f in enumerate(families)}
    weak = table.groupby("family")["weakly_identified"].any() \
        if "weakly_identified" in table else pd.Series(False, index=families)
    for panel, colour, group in zip(axes, _colours(len(groups)), groups, strict=True):
        sub = table if group is None else table[table["skill"] == group]
        vals = sub[["lower", "median", "upper"]].to_numpy(float)
        finite = vals[np.isfinite(vals) & (vals > 0)]
        lo_lim = finite.min() / 1.5 if len(finite) else 0.1
        hi_lim = finite.max() * 1.5 if len(finite) else 10.0
        first = True
        for _, row in sub.iterrows():
            y = ypos[row["family"]]
            med = np.clip(row["median"], lo_lim, hi_lim)
            lo, hi = np.clip(row["lower"], lo_lim, hi_lim), np.clip(row["upper"], lo_lim, hi_lim)
            if not np.isfinite(med):
                continue
            hollow = bool(weak.get(row["family"], False))
            panel.plot([lo, hi], [y, y], color=colour, lw=1.6)
            panel.plot(med, y, "o", color=colour, mfc="white" if hollow else colour, ms=5,
                       label=f"median and {row['ci_prob']:.0%} interval" if first else None)
            first = False
        panel.axvline(1, color="k", ls="--", lw=0.8, label=f"reference {ref} (= 1)")
        panel.set_xscale("log")
        panel.set_xlim(lo_lim, hi_lim)
        if hi_lim / lo_lim > 1e3:
            _log_flops_ticks(panel.xaxis)
        else:
            _plain_log_ticks(panel.xaxis)
        panel.set_ylim(-len(families) + 0.4, 0.6)
        panel.set_title(f"{group}" if group is not None
                        else f"Family efficiency at {unit} = {at:.3g}", fontsize=10)
        panel.set_xlabel(f"effective-{what} multiplier\n({unit} ratio; >1 = more efficient)",
                         fontsize=8)
        panel.grid(axis="x", alpha=0.3)
        panel.set_ylabel("family", fontsize=8)
    axes[0].set_yticks(list(ypos.values()))
    axes[0].set_yticklabels([f + (" *" if weak.get(f, False) else "") for f in families],
                            fontsize=8)
    axes[0].set_ylabel("family (* = weakly identified)")
    axes[0].legend(fontsize=7, loc="best")
    if has_skill:
        fig.suptitle(f"Family efficiency per skill at {unit} = {at:.3g}, relative to {ref}",
                     fontsize=10)
        fig.tight_layout()
        return fig, axes
    return fig, axes[0]


# ---------------------------------------------------------------------- calibration
#: Central intervals recoverable from the quantile columns of a predictions table.
_LEVEL_QUANTILES = {0.5: (0.25, 0.75), 0.8: (0.1, 0.9), 0.9: (0.05, 0.95),
                    0.95: (0.025, 0.975)}


def coverage_table(predictions) -> pd.DataFrame:
    """Empirical coverage of central predictive intervals in a backtest table.

    Parameters
    ----------
    predictions : DataFrame
        ``observed`` and quantile columns ``q0.025 ... q0.975`` (``predictions.csv``).

    Returns
    -------
    DataFrame
        ``nominal, coverage, n`` per level that the quantile columns allow.
    """
    rows = []
    obs = predictions["observed"].to_numpy(float)
    for level, (lo, hi) in _LEVEL_QUANTILES.items():
        if f"q{lo:g}" in predictions and f"q{hi:g}" in predictions:
            ql = predictions[f"q{lo:g}"].to_numpy(float)
            qh = predictions[f"q{hi:g}"].to_numpy(float)
            rows.append({"nominal": level, "coverage": float(np.mean((obs >= ql) & (obs <= qh))),
                         "n": len(obs)})
    return pd.DataFrame(rows)


def plot_calibration(*, predictions, ax=None):
    """Coverage of central predictive intervals against their nominal level.

    The grey band is the 90% range of the coverage a perfectly calibrated forecaster
    would show with this many held-out cells (binomial, ignoring correlation).

    Returns
    -------
    fig, ax
    """
    from scipy import stats

    cov = coverage_table(predictions)
    fig, ax = _new_axes(ax, (5.2, 4.6))
    nominal = np.linspace(0.3, 1.0, 50)
    n = max(len(predictions), 1)
    lo = stats.binom.ppf(0.05, n, nominal) / n
    hi = stats.binom.ppf(0.95, n, nominal) / n
    ax.fill_between(nominal, lo, hi, color="grey", alpha=0.25,
                    label=f"90% range if calibrated (n = {n})")
    ax.plot([0.3, 1], [0.3, 1], "k--", lw=0.8, label="coverage = nominal")
    ax.plot(cov["nominal"], cov["coverage"], "o-", color="C3", label="empirical coverage")
    ax.set_xlim(0.3, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("nominal level of the central interval (probability)")
    ax.set_ylabel("held-out observations inside (fraction)")
    ax.set_title("Calibration: coverage against nominal level", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    return fig, ax


def pit_bins(predictions) -> tuple[np.ndarray, np.ndarray]:
    """PIT histogram from quantile columns: bin edges and density per bin.

    Bins are delimited by the predictive quantile levels present (0, 0.025, ..., 1);
    the density of a calibrated forecast is 1 in every bin.
    """
    levels = sorted(float(c[1:]) for c in predictions.columns
                    if c.startswith("q") and _is_float(c[1:]))
    obs = predictions["observed"].to_numpy(float)
    qs = np.column_stack([predictions[f"q{lv:g}"].to_numpy(float) for lv in levels])
    index = (obs[:, None] > qs).sum(axis=1)       # bin 0 .. len(levels)
    edges = np.array([0.0, *levels, 1.0])
    counts = np.bincount(index, minlength=len(edges) - 1)
    density = counts / max(len(obs), 1) / np.diff(edges)
    return edges, density


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def plot_pit(*, predictions, ax=None):
    """Histogram of the probability integral transform of held-out observations.

    The PIT of an observation is its rank in its predictive distribution; bins are the
    intervals between the quantile levels of ``predictions`` (a calibrated forecast is
    flat at density 1; a U shape means intervals too narrow, a hump too wide).

    Returns
    -------
    fig, ax
    """
    edges, density = pit_bins(predictions)
    fig, ax = _new_axes(ax, (5.2, 4.0))
    ax.bar(edges[:-1], density, width=np.diff(edges), align="edge", color="C0",
           edgecolor="white", label="held-out observations")
    ax.axhline(1.0, color="k", ls="--", lw=0.8, label="uniform (calibrated)")
    ax.set_xlim(0, 1)
    ax.set_xlabel("PIT: predictive CDF at the observed value (probability)")
    ax.set_ylabel("density")
    ax.set_title("PIT histogram of held-out predictions", fontsize=10)
    ax.legend(fontsize=8)
    return fig, ax
