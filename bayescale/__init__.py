"""bayescale: Bayesian scaling-law inference with hierarchical PyMC models and NUTS.

The flow is ``data -> spec -> kinds (build) -> sample -> Posterior -> predict -> evaluate
-> report``; see ARCHITECTURE.md. The names below are the public Python API.
"""

from bayescale.errors import (
    BayescaleError,
    ConvergenceError,
    ConvergenceWarning,
    DataError,
    RunDirError,
    SchedulerError,
    SpecError,
)

__version__ = "0.1.0"

__all__ = [
    "BayescaleError",
    "ConvergenceError",
    "ConvergenceWarning",
    "DataError",
    "RunDirError",
    "SchedulerError",
    "SpecError",
    "__version__",
    "build_model",
    "fit",
    "load_run",
    "load_spec",
    "optimal_allocation",
    "predict",
    "write_run",
]


def __getattr__(name: str):
    """Import the heavy parts (PyMC) lazily, so ``import bayescale`` stays fast."""
    if name in {"fit", "build_model", "write_run", "load_run"}:
        from bayescale import fitting as _fit

        return getattr(_fit, name)
    if name in {"predict", "optimal_allocation"}:
        from bayescale import prediction as _predict

        return getattr(_predict, name)
    if name == "load_spec":
        from bayescale.spec import load_spec

        return load_spec
    raise AttributeError(f"module 'bayescale' has no attribute {name!r}")
