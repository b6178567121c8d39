"""Exception types of bayescale.

Every error a user can cause (bad data, bad spec, bad run directory) is a
subclass of :class:`BayescaleError`; the CLI prints its message and exits with a
non-zero status, without a traceback. Anything else is a bug.
"""

from __future__ import annotations

from collections.abc import Sequence


class BayescaleError(Exception):
    """Base class of every user-facing error raised by bayescale."""


class DataError(BayescaleError, ValueError):
    """A data table is invalid.

    Parameters
    ----------
    problem : str
        What is wrong, in words.
    source : str, optional
        The file (or a description such as ``"<DataFrame>"``) the table came from.
    rows : sequence of int, optional
        Line numbers in the file (the header is line 1) of the offending rows.
    column : str, optional
        The offending column.
    """

    #: How ``rows`` are named in the message (singular, plural): file lines by default.
    location_unit = ("line", "lines")

    def __init__(
        self,
        problem: str,
        *,
        source: str | None = None,
        rows: Sequence[int] | None = None,
        column: str | None = None,
    ) -> None:
        self.problem = problem
        self.source = source
        self.rows = list(rows) if rows is not None else []
        self.column = column
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.source:
            where.append(str(self.source))
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows[:10])
            more = f" and {len(self.rows) - 10} more" if len(self.rows) > 10 else ""
            label = self.location_unit[0 if len(self.rows) == 1 else 1]
            where.append(f"{label} {shown}{more}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.problem}" if prefix else self.problem


class SpecError(BayescaleError, ValueError):
    """A model specification (``models/*.toml``) is invalid."""


class RunDirError(BayescaleError, OSError):
    """A run directory or ``posterior.nc`` is missing, truncated or foreign."""


class SchedulerError(BayescaleError, OSError):
    """A Dask scheduler address is malformed or the scheduler cannot be reached."""


class ConvergenceError(BayescaleError):
    """A fit failed its convergence diagnostics and ``strict`` was requested."""


class ConvergenceWarning(UserWarning):
    """A fit failed one of its convergence diagnostics (r-hat, ESS, divergences, BFMI)."""
