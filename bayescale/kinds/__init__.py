"""Model kinds: each module knows how to build one family of PyMC models.

A kind builds its fit model and its prediction model from the same code (the same
variable names), so that fitting and predicting cannot drift apart. Kinds are
looked up by the ``kind`` key of a spec.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from bayescale.errors import SpecError

if TYPE_CHECKING:
    import pandas as pd
    import pymc as pm
    import xarray as xr

    from bayescale.spec import ModelSpec


class ModelKind(Protocol):
    """What every model kind provides."""

    #: Name used in the ``kind`` key of a spec.
    name: str
    #: Which canonical table it fits: ``"loss"`` or ``"benchmark"``.
    data_kind: str
    #: Name of the observed variable of the fit model.
    observed_name: str

    def validate_spec(self, spec: ModelSpec) -> None:
        """Raise SpecError if the kind-specific sections of ``spec`` are invalid."""

    def check_data(self, spec: ModelSpec, table: pd.DataFrame, source: str) -> None:
        """Raise DataError if ``table`` cannot be fit with ``spec``."""

    def coords(self, spec: ModelSpec, table: pd.DataFrame) -> dict[str, list]:
        """Return the named coordinates of the fit model."""

    def build(self, spec: ModelSpec, table: pd.DataFrame) -> pm.Model:
        """Build the fit model."""

    def summary_var_names(self, spec: ModelSpec) -> list[str]:
        """Return the parameters shown in summaries, in order."""

    def observed_values(self, spec: ModelSpec, table: pd.DataFrame):
        """Return the observation vector the fit model conditions on."""

    def required_columns(self, spec: ModelSpec) -> list[str]:
        """Return the columns a prediction row needs."""

    def simulated_table(self, design: pd.DataFrame, simulated) -> pd.DataFrame:
        """Return ``design`` with its observations replaced by simulated ones."""

    def predict(self, posterior, rows: pd.DataFrame, *, seed: int) -> xr.Dataset:
        """Return draws of ``mu`` (mean curve) and ``y`` (new observation) per row."""


def get_kind(name: str, *, where: str = "spec") -> ModelKind:
    """Return the model-kind module for ``name``.

    Raises
    ------
    SpecError
        If no kind has that name.
    """
    from bayescale.kinds import loss_law, skills

    kinds: dict[str, ModelKind] = {loss_law.KIND.name: loss_law.KIND,
                                   skills.KIND.name: skills.KIND}
    if name not in kinds:
        raise SpecError(f"{where}: unknown model kind '{name}' (known: {', '.join(sorted(kinds))})")
    return kinds[name]
