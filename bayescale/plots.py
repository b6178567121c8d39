"""Plots of fitted models. Every function takes keyword-only arguments and returns ``(fig, ax)``."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from bayescale.kinds import loss_law  # noqa: E402
from bayescale.prediction import optimal_draws  # noqa: E402

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
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(_AXIS_LABEL[axis])
    ax.set_ylabel("final loss (nats per token)")
    ax.set_title(f"{posterior.spec.name}: posterior extrapolation")
    ax.legend(fontsize=8, loc="upper right")
    return fig, ax
