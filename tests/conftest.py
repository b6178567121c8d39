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
