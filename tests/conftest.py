"""Shared fixtures: session-scoped real NUTS fits serve many tests."""

import warnings
from pathlib import Path

import pytest

from bayescale.errors import ConvergenceWarning

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "shared_data" in item.keywords and not SHARED_DATA.is_dir():
            item.add_marker(pytest.mark.skip(
                reason=f"needs the public data in {SHARED_DATA}, absent on this machine"))


@pytest.fixture(scope="session")
def chinchilla_posterior():
    """The Chinchilla law fit to Epoch's 240 runs (2 chains x 600 draws)."""
    from bayescale import fit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit("chinchilla", "chinchilla", draws=600, tune=600, chains=2, seed=1)


@pytest.fixture(scope="session")
def hierarchical_posterior():
    """The partially pooled Chinchilla law on Gadre et al.'s three data sets."""
    from bayescale import fit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit("chinchilla-hierarchical", "gadre-overtrain", draws=400, tune=600,
                   chains=2, seed=2)


@pytest.fixture(scope="session")
def chinchilla_run_dir(tmp_path_factory, chinchilla_posterior):
    from bayescale import write_run

    return write_run(chinchilla_posterior, tmp_path_factory.mktemp("runs") / "chinchilla")


@pytest.fixture(scope="session")
def skills_mock_posterior():
    """A skills-model Posterior of prior draws (no NUTS): fast, for report/compare plumbing.

    Built from ``pm.sample_prior_predictive`` on the skills model of six leaderboard
    families, reshaped to 2 chains x 60 draws, with synthetic energy statistics. The
    draws are prior draws, so only structure (not values) should be tested with it.
    """
    import numpy as np
    import pandas as pd
    import pymc as pm
    import xarray as xr

    from bayescale.fitting import resolve_data, resolve_spec
    from bayescale.kinds import get_kind
    from bayescale.posterior import Posterior
    from bayescale.sample import compute_diagnostics

    chains, draws, seed = 2, 60, 5
    spec = resolve_spec("skills")
    kind = get_kind(spec.kind)
    canonical = resolve_data("open-llm-leaderboard", kind_data=kind.data_kind)
    table = canonical.table
    keep = ["llama-2", "qwen1.5", "qwen2", "pythia", "gemma", "bloom"]
    table = table[table["family"].isin(keep)].reset_index(drop=True)
    # one family with a single model, to exercise the weak-identification flag
    solo = canonical.table[canonical.table["family"] == "falcon"]
    solo = solo[solo["model"] == sorted(solo["model"].unique())[0]]
    table = pd.concat([table, solo], ignore_index=True)
    model = kind.build(spec, table)
    with model:
        names = [v.name for v in model.free_RVs + model.deterministics]
        prior = pm.sample_prior_predictive(draws=chains * draws, random_seed=seed,
                                           var_names=names,
                                           compile_kwargs={"mode": "FAST_COMPILE"})
    ds = prior["prior"].dataset.isel(chain=0, drop=True)
    ds = xr.concat([ds.isel(draw=slice(c * draws, (c + 1) * draws))
                    .assign_coords(draw=np.arange(draws)) for c in range(chains)],
                   dim=pd.Index(range(chains), name="chain")).transpose("chain", "draw", ...)
    rng = np.random.default_rng(seed)
    dims = ("chain", "draw")
    stats = xr.Dataset({"energy": (dims, rng.normal(size=(chains, draws))),
                        "diverging": (dims, np.zeros((chains, draws), bool))},
                       coords={"chain": ds["chain"], "draw": ds["draw"]})
    tree = xr.DataTree.from_dict({"posterior": ds, "sample_stats": stats})
    diag = compute_diagnostics(tree, sampler="mock", wall_seconds=0.0, tune=0)
    return Posterior.create(tree, spec=spec, table=table, excluded=canonical.excluded,
                            source=canonical.source, diagnostics=diag, seed=seed)
