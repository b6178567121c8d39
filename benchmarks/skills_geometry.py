"""Why a skills fit needs long NUTS trajectories: the shape of its posterior.

Usage: ``.venv/bin/python benchmarks/skills_geometry.py RUN_DIR [--top 8]`` where
``RUN_DIR`` holds the ``posterior.nc`` of a skills fit (``bayescale fit ... --out RUN_DIR``
or ``benchmarks/skills_fit.py --out RUN_DIR``).

The free parameters' draws are mapped to the sampler's unconstrained scale (log for
scales and precisions, logit for ceiling fractions; the zero-sum ``slope_z`` keeps all but
its last family, its free coordinates; the LKJ factor of the family correlation is left
out), standardised, and their correlation matrix is
decomposed. A diagonal mass matrix (bayescale's default) equalises each parameter's
scale but not these correlations: the square root of the ratio of the largest to the
smallest eigenvalue is the order of the number of leapfrog steps a trajectory needs to
cross the posterior (the step size is set by the narrowest direction, the trajectory
length by the widest). The script prints that ratio, the sampler's mean steps per draw, the
parameters of the narrowest and widest directions, the most correlated pairs, and the
parameters with the lowest bulk ESS.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

#: Free parameters of the skills model, and the transform to the unconstrained scale.
FREE = {"B": None, "a_family_free": None, "delta": None, "sub_shift": None,
        "slope_z": "zero_sum", "model_z": None, "loading": None, "intercept": None,
        "tau_sub": "log", "tau_slope": "log", "tau_model": "log", "sigma_family": "log",
        "phi": "log", "ceiling_frac": "logit"}


def unconstrained_columns(posterior) -> tuple[np.ndarray, list[str]]:
    """Draws ``(sample, parameter)`` on the unconstrained scale, and their labels."""
    columns, labels = [], []
    for name, transform in FREE.items():
        if name not in posterior:
            continue
        da = posterior[name]
        if transform == "zero_sum":  # drop the last family: the rest are free
            da = da.isel(family=slice(0, -1))
        other = [d for d in da.dims if d not in ("chain", "draw")]
        flat = da.stack(sample=("chain", "draw"))
        flat = flat.stack(element=other) if other else flat.expand_dims(element=[()])
        values = flat.transpose("sample", "element").to_numpy().astype(float)
        if transform == "log":
            values = np.log(values)
        elif transform == "logit":
            values = np.log(values / (1 - values))
        columns.append(values)
        for element in flat["element"].to_numpy():
            parts = element if isinstance(element, tuple) else (element,)
            labels.append(f"{name}[{','.join(str(p) for p in parts)}]" if parts else name)
    return np.concatenate(columns, axis=1), labels


def describe_direction(vector: np.ndarray, labels: list[str], top: int) -> str:
    """The ``top`` largest components of an eigenvector, as ``label:+weight``."""
    order = np.argsort(-np.abs(vector))[:top]
    return ", ".join(f"{labels[i]}:{vector[i]:+.2f}" for i in order)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--top", type=int, default=8, help="components shown per direction")
    args = parser.parse_args()

    import arviz as az
    import xarray as xr

    tree = xr.open_datatree(args.run_dir / "posterior.nc")
    posterior = tree["posterior"].dataset
    draws, labels = unconstrained_columns(posterior)
    standardised = (draws - draws.mean(0)) / draws.std(0)
    corr = np.corrcoef(standardised.T)
    eigenvalues, eigenvectors = np.linalg.eigh(corr)
    steps = tree["sample_stats"].dataset["n_steps"]
    print(f"{draws.shape[1]} free parameters, {draws.shape[0]} draws; not analysed "
          "(deterministic, or the LKJ factor): "
          + ", ".join(sorted(set(posterior.data_vars) - set(FREE))))
    print(f"eigenvalues of the posterior correlation: smallest {eigenvalues[0]:.4f}, "
          f"largest {eigenvalues[-1]:.1f}; sd ratio (order of the leapfrog steps "
          f"a diagonal mass matrix needs) {np.sqrt(eigenvalues[-1] / eigenvalues[0]):.0f}; "
          f"sampler's mean steps per draw {float(steps.mean()):.0f}")
    for k in range(3):
        print(f"narrow direction {k + 1} (eigenvalue {eigenvalues[k]:.4f}): "
              + describe_direction(eigenvectors[:, k], labels, args.top))
    for k in range(1, 4):
        print(f"wide direction {k} (eigenvalue {eigenvalues[-k]:.1f}): "
              + describe_direction(eigenvectors[:, -k], labels, args.top))
    pairs = np.triu_indices_from(corr, 1)
    strongest = np.argsort(-np.abs(corr[pairs]))[:args.top]
    print("most correlated pairs: " + "; ".join(
        f"{labels[pairs[0][i]]} ~ {labels[pairs[1][i]]} {corr[pairs][i]:+.2f}"
        for i in strongest))
    ess = az.ess(tree, method="bulk")
    ess = getattr(ess, "dataset", ess)
    lowest = []
    for name in FREE:
        if name not in ess:
            continue
        da = ess[name]
        for idx, value in np.ndenumerate(da.to_numpy()):
            coords = [str(da[dim].values[i]) for dim, i in zip(da.dims, idx, strict=True)]
            lowest.append((float(value), f"{name}[{','.join(coords)}]"))
    lowest = sorted(v for v in lowest if np.isfinite(v[0]))[:args.top]
    print("lowest bulk ESS: " + ", ".join(f"{label} {value:.0f}" for value, label in lowest))


if __name__ == "__main__":
    main()
