"""The data layer of bayescale: two canonical tidy tables and their readers.

bayescale works with two kinds of table.

Loss runs (:class:`LossRuns`)
    One row per training run: ``run`` (id), ``family``, ``params`` (N),
    ``tokens`` (D), ``flops`` (C) and final ``loss``. Counts are raw numbers
    (``7e9``, not ``7``). ``family`` is optional in the input (every row then
    belongs to the family ``"all"``), ``run`` is optional (rows are then
    numbered ``r0``, ``r1``, ...) and ``flops`` defaults to ``6 * N * D``.

Benchmark evaluations (:class:`BenchmarkEvals`)
    Long format, one row per (model, benchmark): ``model``, ``family``,
    ``subfamily`` (defaults to the family), ``instruct`` (defaults to False),
    ``params``, ``tokens``, ``benchmark``, ``score`` in [0, 1], ``n_items``
    (number of test items, optional) and ``chance`` (the chance-level score of
    the benchmark, optional). Wide tables with one column per benchmark, as in
    leaderboard files, are read with a :class:`WideTable` mapping.

The readers accept CSV files, parquet files and DataFrames. They validate every
value and raise :class:`~bayescale.errors.DataError` on the first problem, naming
the source, the offending line(s) of the file (the header is line 1, so data
row ``i`` counted from 0 is line ``i + 2``; for DataFrame and parquet input the
index labels, called rows), the column and the problem. They never drop rows;
columns they do not know are kept after the canonical ones.

:func:`read_data` tells the two tables apart by their columns,
:func:`read_prediction_rows` validates the rows a fitted model predicts at, and
:func:`check_min_rows`, :func:`check_min_families` and
:func:`check_known_families` give model builders uniform errors.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from bayescale.errors import DataError

__all__ = [
    "BENCHMARK_COLUMNS",
    "BENCHMARK_REQUIRED",
    "DEFAULT_FAMILY",
    "LOSS_COLUMNS",
    "LOSS_REQUIRED",
    "BenchmarkEvals",
    "LossRuns",
    "WideTable",
    "check_known_families",
    "check_min_families",
    "check_min_rows",
    "read_benchmark_evals",
    "read_data",
    "read_loss_runs",
    "read_prediction_rows",
]

#: Canonical columns of a loss-run table, in order.
LOSS_COLUMNS: tuple[str, ...] = ("run", "family", "params", "tokens", "flops", "loss")
#: Columns a loss-run input must have.
LOSS_REQUIRED: tuple[str, ...] = ("params", "tokens", "loss")
#: Canonical columns of a (long) benchmark table, in order.
BENCHMARK_COLUMNS: tuple[str, ...] = (
    "model",
    "family",
    "subfamily",
    "instruct",
    "params",
    "tokens",
    "benchmark",
    "score",
    "n_items",
    "chance",
)
#: Columns a long benchmark input must have.
BENCHMARK_REQUIRED: tuple[str, ...] = ("model", "family", "params", "tokens", "benchmark", "score")
#: Family given to every row of a loss table without a ``family`` column.
DEFAULT_FAMILY = "all"

_TEXT_COLUMNS = ("run", "family", "model", "subfamily", "benchmark")
_TRUE = frozenset({"true", "1", "1.0", "yes"})
_FALSE = frozenset({"false", "0", "0.0", "no"})
_BENCHMARK_OPTIONAL = ("subfamily", "instruct", "n_items", "chance")


# ---------------------------------------------------------------------------
# canonical table classes
# ---------------------------------------------------------------------------


def _empty_excluded(columns: Iterable[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in [*columns, "reason"]})


@dataclass
class LossRuns:
    """A validated loss-run table.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``run, family, params, tokens, flops, loss`` in this order, then
        any extra columns of the input. One row per run, index ``0..n-1``.
    source : str
        Where the table came from: a file path, ``"<DataFrame>"`` or
        ``"dataset:NAME"``.
    excluded : pandas.DataFrame, optional
        Rows left out by a shipped dataset's documented rule, with a ``reason``
        column. Empty for user data: the readers never drop rows.
    lines : list of int, optional
        Line of the source file each table row came from (CSV input only).
    """

    kind: ClassVar[str] = "loss"

    table: pd.DataFrame
    source: str
    excluded: pd.DataFrame | None = None
    lines: list[int] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.excluded is None:
            self.excluded = _empty_excluded(self.table.columns)

    @property
    def families(self) -> list[str]:
        """Sorted unique family names."""
        return sorted(self.table["family"].unique().tolist())

    def __len__(self) -> int:
        return len(self.table)


@dataclass
class BenchmarkEvals:
    """A validated benchmark-evaluation table in long format.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``model, family, subfamily, instruct, params, tokens, benchmark,
        score, n_items, chance`` in this order, then any extra columns. One row per
        (model, benchmark) with a score; a missing score is an absent row.
        ``n_items`` is a nullable integer (``<NA>`` if unknown), ``chance`` a float
        (NaN if unknown).
    source : str
        Where the table came from: a file path, ``"<DataFrame>"`` or
        ``"dataset:NAME"``.
    excluded : pandas.DataFrame, optional
        Rows left out by a shipped dataset's documented rule, with a ``reason``
        column. Empty for user data.
    lines : list of int, optional
        Line of the source file each table row came from (CSV input only; for a
        wide file, the line of the model's row).
    """

    kind: ClassVar[str] = "benchmark"

    table: pd.DataFrame
    source: str
    excluded: pd.DataFrame | None = None
    lines: list[int] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.excluded is None:
            self.excluded = _empty_excluded(self.table.columns)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def families(self) -> list[str]:
        """Sorted unique family names."""
        return sorted(self.table["family"].unique().tolist())

    @property
    def benchmarks(self) -> list[str]:
        """Benchmark names in order of first appearance."""
        return self.table["benchmark"].drop_duplicates().tolist()

    @property
    def models(self) -> pd.DataFrame:
        """One row per model, in order of first appearance.

        Columns ``model, family, subfamily, instruct, params, tokens``, then every
        extra column whose value is constant within each model (such as
        ``flops``).
        """
        t = self.table
        cols = ["model", "family", "subfamily", "instruct", "params", "tokens"]
        extras = [c for c in t.columns if c not in BENCHMARK_COLUMNS]
        if extras:
            counts = t.groupby("model", sort=False)[extras].nunique(dropna=False)
            cols += [c for c in extras if (counts[c] <= 1).all()]
        return t.drop_duplicates("model")[cols].reset_index(drop=True)

    def wide(self) -> pd.DataFrame:
        """Scores as a model x benchmark table (NaN where a model lacks a score).

        Returns
        -------
        pandas.DataFrame
            Index ``model`` and columns ``benchmark``, both in order of first
            appearance.
        """
        t = self.table
        out = t.pivot(index="model", columns="benchmark", values="score")
        out = out.reindex(index=t["model"].drop_duplicates(), columns=self.benchmarks)
        out.index.name = "model"
        out.columns.name = "benchmark"
        return out

    def chance_floors(self) -> pd.Series:
        """Chance-level score of each benchmark (NaN where unknown).

        Returns
        -------
        pandas.Series
            Indexed by benchmark name, in order of first appearance.
        """
        first = self.table.drop_duplicates("benchmark")
        out = pd.Series(first["chance"].to_numpy(dtype=float), index=first["benchmark"].tolist())
        out.index.name = "benchmark"
        out.name = "chance"
        return out


@dataclass
class WideTable:
    """How to read a wide benchmark table (one column per benchmark).

    Parameters
    ----------
    benchmarks : list of str or dict of str to str
        The score columns. A list keeps the column names as benchmark names; a
        dict maps source column to benchmark name.
    model, family : str
        Columns holding the model name and family.
    subfamily, instruct : str, optional
        Columns holding the sub-family and the instruct flag (when None, the
        sub-family is the family and instruct is False).
    params, tokens : str
        Columns holding parameter and training-token counts.
    params_unit, tokens_unit : float
        Factors turning those columns into raw counts, e.g. ``1e9`` for
        ``"#Params (B)"`` and ``1e12`` for ``"Pretraining Data Size (T)"``.
    chance : dict of str to float, optional
        Chance-level score per benchmark (keyed by benchmark name or source
        column); benchmarks not listed get NaN.
    """

    benchmarks: list[str] | dict[str, str]
    model: str = "model"
    family: str = "family"
    subfamily: str | None = None
    instruct: str | None = None
    params: str = "params"
    params_unit: float = 1.0
    tokens: str = "tokens"
    tokens_unit: float = 1.0
    chance: dict[str, float] | None = None

    def benchmark_map(self) -> dict[str, str]:
        """Return the mapping source column -> benchmark name."""
        if isinstance(self.benchmarks, Mapping):
            return {str(k): str(v) for k, v in self.benchmarks.items()}
        return {str(c): str(c) for c in self.benchmarks}

    def model_columns(self) -> dict[str, str]:
        """Return the mapping canonical name -> source column for model-level columns."""
        out = {"model": self.model, "family": self.family}
        if self.subfamily is not None:
            out["subfamily"] = self.subfamily
        if self.instruct is not None:
            out["instruct"] = self.instruct
        out["params"] = self.params
        out["tokens"] = self.tokens
        return out


# ---------------------------------------------------------------------------
# reading sources
# ---------------------------------------------------------------------------


class _RowsDataError(DataError):
    """A DataError located by DataFrame index labels ("row") instead of file lines."""

    location_unit = ("row", "rows")


@dataclass
class _Raw:
    """A table as read, with the location of each row for error messages."""

    frame: pd.DataFrame  # RangeIndex 0..n-1
    source: str
    locs: list[Any]  # line numbers (unit "line") or index labels (unit "row")
    unit: str  # "line" or "row"

    def fail(
        self,
        problem: str,
        positions: Sequence[int] | np.ndarray | None = None,
        column: str | None = None,
    ) -> DataError:
        """Build the error for ``positions`` (0-based row positions)."""
        rows = None if positions is None else [self.locs[int(i)] for i in positions]
        cls = DataError if self.unit == "line" else _RowsDataError
        return cls(problem, source=self.source, rows=rows, column=column)

    @property
    def lines(self) -> list[int] | None:
        return [int(x) for x in self.locs] if self.unit == "line" else None


def _from_frame(df: pd.DataFrame, source: str, unit: str = "row") -> _Raw:
    locs = list(df.index) if unit == "row" else [i + 2 for i in range(len(df))]
    frame = df.reset_index(drop=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    return _Raw(frame, source, locs, unit)


def _load_source(source: Any, text_columns: Iterable[str] = ()) -> _Raw:
    """Read a CSV/parquet file or wrap a DataFrame."""
    if isinstance(source, pd.DataFrame):
        return _from_frame(source.copy(), "<DataFrame>")
    if not isinstance(source, (str, os.PathLike)):
        raise DataError(
            f"cannot read data from a {type(source).__name__}: expected a path to a .csv "
            "or .parquet file, or a pandas DataFrame"
        )
    path = Path(source)
    label = str(source)
    if not path.exists():
        raise DataError("file not found", source=label)
    if path.is_dir():
        raise DataError("is a directory, not a data file (.csv or .parquet)", source=label)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        dtype = {c: str for c in (*_TEXT_COLUMNS, *text_columns)}
        try:
            df = pd.read_csv(path, dtype=dtype, skip_blank_lines=False)
        except pd.errors.EmptyDataError:
            raise DataError("file is empty (no header line)", source=label) from None
        except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
            raise DataError(f"cannot read CSV file: {exc}", source=label) from None
        # blank lines at the end of the file are not data rows
        empty = df.isna().all(axis=1).to_numpy()
        n = len(df)
        while n > 0 and empty[n - 1]:
            n -= 1
        return _from_frame(df.iloc[:n], label, unit="line")
    if suffix == ".parquet":
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises many exception types
            raise DataError(f"cannot read parquet file: {exc}", source=label) from None
        return _from_frame(df, label, unit="row")
    raise DataError(
        f"unsupported file type '{path.suffix or '(none)'}': expected .csv or .parquet",
        source=label,
    )


# ---------------------------------------------------------------------------
# column checks
# ---------------------------------------------------------------------------


def _show(values: Iterable[Any], limit: int = 5) -> str:
    uniq: list[Any] = []
    for v in values:
        if v not in uniq:
            uniq.append(v)
    shown = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in uniq[:limit])
    return shown + (f" and {len(uniq) - limit} more" if len(uniq) > limit else "")


def _blank(s: pd.Series) -> np.ndarray:
    """Missing cells: NaN/None/NA or empty strings."""
    miss = s.isna().to_numpy()
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        text = s.astype(str).str.strip()
        miss = miss | (text == "").to_numpy()
    return miss


def _require_columns(
    raw: _Raw, required: Sequence[str], kind: str, expected: Sequence[str]
) -> None:
    have = list(raw.frame.columns)
    missing = [c for c in required if c not in have]
    if missing:
        raise DataError(
            f"missing required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(c) for c in missing)}; a {kind} table needs columns "
            f"{', '.join(expected)} (got: {', '.join(have) or 'none'})",
            source=raw.source,
            column=missing[0],
        )


def _nonempty(raw: _Raw) -> None:
    if len(raw.frame) == 0:
        raise raw.fail("table has no data rows")


def _text(raw: _Raw, col: str, label: str | None = None) -> np.ndarray:
    """Return a required text column as an object array of stripped strings."""
    s = raw.frame[col]
    miss = _blank(s)
    if miss.any():
        raise raw.fail(
            "missing value (empty cell); a value is required", np.flatnonzero(miss), label or col
        )
    out = s.astype(str).str.strip().to_numpy(dtype=object)
    return out


def _numbers(
    raw: _Raw, col: str, *, allow_missing: bool = False, label: str | None = None
) -> np.ndarray:
    """Return a numeric column as float64, rejecting non-numeric, missing and inf values."""
    label = label or col
    s = raw.frame[col]
    miss = _blank(s)
    if s.dtype == bool:
        raise raw.fail(
            "boolean values in a numeric column; expected numbers", np.arange(len(s)), label
        )
    text_like = s.dtype == object or pd.api.types.is_string_dtype(s.dtype)
    num = pd.to_numeric(s.astype(str).str.strip().where(~miss) if text_like else s, errors="coerce")
    arr = num.to_numpy(dtype=float, na_value=np.nan)
    bad = np.isnan(arr) & ~miss
    if bad.any():
        pos = np.flatnonzero(bad)
        raise raw.fail(
            f"non-numeric value {_show(s.iloc[pos].tolist())}; expected a number", pos, label
        )
    if not allow_missing and miss.any():
        raise raw.fail(
            "missing value (empty cell or NaN); a number is required", np.flatnonzero(miss), label
        )
    inf = np.isinf(arr)
    if inf.any():
        raise raw.fail("infinite value; a finite number is required", np.flatnonzero(inf), label)
    return arr


def _positive(raw: _Raw, col: str, label: str | None = None, unit: float = 1.0) -> np.ndarray:
    arr = _numbers(raw, col, label=label)
    bad = arr <= 0
    if bad.any():
        pos = np.flatnonzero(bad)
        raise raw.fail(
            f"non-positive value {_show(arr[pos].tolist())}; {label or col} must be > 0",
            pos,
            label or col,
        )
    return arr * unit


def _scores(
    raw: _Raw, col: str, *, allow_missing: bool = False, label: str | None = None
) -> np.ndarray:
    arr = _numbers(raw, col, allow_missing=allow_missing, label=label)
    bad = (arr < 0) | (arr > 1)
    if bad.any():
        pos = np.flatnonzero(bad)
        raise raw.fail(
            f"score {_show(arr[pos].tolist())} outside [0, 1]; scores are fractions (0.25, not 25)",
            pos,
            label or col,
        )
    return arr


def _booleans(raw: _Raw, col: str, label: str | None = None) -> np.ndarray:
    s = raw.frame[col]
    miss = _blank(s)
    if miss.any():
        raise raw.fail(
            "missing value (empty cell); expected True or False", np.flatnonzero(miss), label or col
        )
    if s.dtype == bool:
        return s.to_numpy(dtype=bool)
    text = s.map(lambda v: str(v).strip().lower())
    is_true = text.isin(_TRUE).to_numpy()
    is_false = text.isin(_FALSE).to_numpy()
    bad = ~(is_true | is_false)
    if bad.any():
        pos = np.flatnonzero(bad)
        raise raw.fail(
            f"value {_show(s.iloc[pos].tolist())} is not boolean-like; use True/False, "
            "true/false, 1/0 or yes/no",
            pos,
            label or col,
        )
    return is_true


def _n_items(raw: _Raw, col: str) -> pd.array:
    arr = _numbers(raw, col, allow_missing=True)
    ok = np.isnan(arr) | ((arr > 0) & (arr == np.round(arr)))
    if not ok.all():
        pos = np.flatnonzero(~ok)
        raise raw.fail(f"n_items {_show(arr[pos].tolist())} is not a positive integer", pos, col)
    return pd.array([pd.NA if np.isnan(v) else int(v) for v in arr], dtype="Int64")


def _chance(raw: _Raw, col: str) -> np.ndarray:
    arr = _numbers(raw, col, allow_missing=True)
    bad = ~np.isnan(arr) & ((arr < 0) | (arr >= 1))
    if bad.any():
        pos = np.flatnonzero(bad)
        raise raw.fail(f"chance {_show(arr[pos].tolist())} outside [0, 1)", pos, col)
    return arr


def _extras(raw: _Raw, canonical: Sequence[str], skip: Iterable[str] = ()) -> list[str]:
    skip = set(skip)
    return [c for c in raw.frame.columns if c not in canonical and c not in skip]


# ---------------------------------------------------------------------------
# loss runs
# ---------------------------------------------------------------------------


def _loss_from_raw(raw: _Raw) -> LossRuns:
    _require_columns(
        raw,
        LOSS_REQUIRED,
        "loss-run",
        ["params", "tokens", "loss", "optional family, run, flops"],
    )
    _nonempty(raw)
    df = raw.frame
    n = len(df)
    params = _positive(raw, "params")
    tokens = _positive(raw, "tokens")
    loss = _positive(raw, "loss")
    family = _text(raw, "family") if "family" in df else np.full(n, DEFAULT_FAMILY, dtype=object)
    run = _text(raw, "run") if "run" in df else np.array([f"r{i}" for i in range(n)], dtype=object)
    six_nd = 6.0 * params * tokens
    if "flops" in df:
        flops = _numbers(raw, "flops", allow_missing=True)
        flops = np.where(np.isnan(flops), six_nd, flops)
        bad = flops <= 0
        if bad.any():
            pos = np.flatnonzero(bad)
            raise raw.fail(
                f"non-positive value {_show(flops[pos].tolist())}; flops must be > 0", pos, "flops"
            )
    else:
        flops = six_nd
    table = pd.DataFrame(
        {
            "run": pd.Series(run, dtype="str"),
            "family": pd.Series(family, dtype="str"),
            "params": params,
            "tokens": tokens,
            "flops": flops,
            "loss": loss,
        }
    )
    for c in _extras(raw, LOSS_COLUMNS):
        table[c] = df[c].to_numpy()
    return LossRuns(table=table, source=raw.source, lines=raw.lines)


def read_loss_runs(source: str | os.PathLike | pd.DataFrame) -> LossRuns:
    """Read and validate a loss-run table.

    Parameters
    ----------
    source : str, path-like or pandas.DataFrame
        A ``.csv`` or ``.parquet`` file, or a DataFrame. Required columns
        ``params``, ``tokens``, ``loss``; optional ``family`` (default ``"all"``),
        ``run`` (default ``r0, r1, ...``) and ``flops`` (default, also for empty
        cells, ``6 * params * tokens``). Other columns are kept.

    Returns
    -------
    LossRuns

    Raises
    ------
    bayescale.errors.DataError
        If the file cannot be read, a required column is missing, the table is
        empty, or a value is non-numeric, missing, infinite or not positive.
    """
    return _loss_from_raw(_load_source(source))


# ---------------------------------------------------------------------------
# benchmark evaluations
# ---------------------------------------------------------------------------


def _bench_from_raw(raw: _Raw) -> BenchmarkEvals:
    _require_columns(
        raw,
        BENCHMARK_REQUIRED,
        "benchmark",
        [*BENCHMARK_REQUIRED, "optional subfamily, instruct, n_items, chance"],
    )
    _nonempty(raw)
    df = raw.frame
    n = len(df)
    model = _text(raw, "model")
    family = _text(raw, "family")
    subfamily = _text(raw, "subfamily") if "subfamily" in df else family.copy()
    instruct = _booleans(raw, "instruct") if "instruct" in df else np.zeros(n, dtype=bool)
    params = _positive(raw, "params")
    tokens = _positive(raw, "tokens")
    benchmark = _text(raw, "benchmark")
    score = _scores(raw, "score")
    n_items = _n_items(raw, "n_items") if "n_items" in df else pd.array([pd.NA] * n, dtype="Int64")
    chance = _chance(raw, "chance") if "chance" in df else np.full(n, np.nan)
    table = pd.DataFrame(
        {
            "model": pd.Series(model, dtype="str"),
            "family": pd.Series(family, dtype="str"),
            "subfamily": pd.Series(subfamily, dtype="str"),
            "instruct": instruct,
            "params": params,
            "tokens": tokens,
            "benchmark": pd.Series(benchmark, dtype="str"),
            "score": score,
            "n_items": n_items,
            "chance": chance,
        }
    )
    _check_consistency(raw, table)
    for c in _extras(raw, BENCHMARK_COLUMNS):
        table[c] = df[c].to_numpy()
    return BenchmarkEvals(table=table, source=raw.source, lines=raw.lines)


def _check_consistency(raw: _Raw, table: pd.DataFrame) -> None:
    dup = table.duplicated(["model", "benchmark"], keep=False).to_numpy()
    if dup.any():
        pos = np.flatnonzero(dup)
        first = table.iloc[pos[0]]
        pairs = table.iloc[pos][["model", "benchmark"]].drop_duplicates()
        raise raw.fail(
            f"duplicate (model, benchmark) rows: ({first['model']!r}, {first['benchmark']!r})"
            + (f" and {len(pairs) - 1} more pair(s)" if len(pairs) > 1 else "")
            + " appear more than once; each model may have one score per benchmark",
            pos,
            "benchmark",
        )
    groups = table.groupby("model", sort=False)
    for col in ("params", "tokens", "family", "subfamily", "instruct"):
        counts = groups[col].nunique(dropna=False)
        bad_models = counts.index[counts > 1]
        if len(bad_models):
            m = bad_models[0]
            pos = np.flatnonzero((table["model"] == m).to_numpy())
            values = table[col].iloc[pos].tolist()
            more = f" ({len(bad_models) - 1} other model(s) too)" if len(bad_models) > 1 else ""
            raise raw.fail(
                f"model {m!r} has inconsistent {col} across its rows: {_show(values)}{more}; "
                "a model's metadata must be the same on every row",
                pos,
                col,
            )
    chance = table[["benchmark", "chance"]]
    counts = chance.groupby("benchmark", sort=False)["chance"].nunique(dropna=False)
    bad = counts.index[counts > 1]
    if len(bad):
        b = bad[0]
        pos = np.flatnonzero((table["benchmark"] == b).to_numpy())
        raise raw.fail(
            f"benchmark {b!r} has different chance values across its rows: "
            f"{_show(table['chance'].iloc[pos].tolist())}",
            pos,
            "chance",
        )


def _wide_long_frame(
    raw: _Raw, wide: WideTable, columns: Mapping[str, np.ndarray], scores: Mapping[str, np.ndarray]
) -> tuple[pd.DataFrame, list[Any]]:
    """Melt prepared wide columns into a long frame (no validation)."""
    bmap = wide.benchmark_map()
    chance_map = {}
    for key, value in (wide.chance or {}).items():
        chance_map[bmap.get(key, key)] = float(value)
    mapped = set(wide.model_columns().values()) | set(bmap)
    extras = [c for c in raw.frame.columns if c not in mapped]
    parts = []
    for order, (src, name) in enumerate(bmap.items()):
        vals = scores[src]
        pos = np.flatnonzero(~np.isnan(vals))
        parts.append(
            pd.DataFrame({"_pos": pos, "_order": order, "benchmark": name, "score": vals[pos]})
        )
    long = pd.concat(parts, ignore_index=True).sort_values(["_pos", "_order"], kind="stable")
    pos = long["_pos"].to_numpy()
    out = pd.DataFrame(
        {
            "model": pd.Series(columns["model"][pos], dtype="str"),
            "family": pd.Series(columns["family"][pos], dtype="str"),
            "subfamily": pd.Series(columns["subfamily"][pos], dtype="str"),
            "instruct": columns["instruct"][pos],
            "params": columns["params"][pos],
            "tokens": columns["tokens"][pos],
            "benchmark": pd.Series(long["benchmark"].to_numpy(), dtype="str"),
            "score": long["score"].to_numpy(dtype=float),
            "n_items": pd.array([pd.NA] * len(pos), dtype="Int64"),
            "chance": np.array([chance_map.get(b, np.nan) for b in long["benchmark"]], dtype=float),
        }
    )
    for c in extras:
        out[c] = raw.frame[c].to_numpy()[pos]
    return out, [raw.locs[i] for i in pos]


def _check_wide_mapping(raw: _Raw, wide: WideTable) -> dict[str, str]:
    bmap = wide.benchmark_map()
    if not bmap:
        raise DataError("the WideTable mapping names no benchmark columns", source=raw.source)
    have = set(raw.frame.columns)
    for role, col in wide.model_columns().items():
        if col not in have:
            raise DataError(
                f"missing column {col!r} (the {role} column of the WideTable mapping); "
                f"columns present: {', '.join(raw.frame.columns)}",
                source=raw.source,
                column=col,
            )
    for col in bmap:
        if col not in have:
            raise DataError(
                f"missing benchmark column {col!r} named in the WideTable mapping",
                source=raw.source,
                column=col,
            )
    names = list(bmap.values())
    if len(set(names)) != len(names):
        raise DataError(
            f"the WideTable mapping gives two columns the same benchmark name: {names}",
            source=raw.source,
        )
    mapped = set(wide.model_columns().values()) | set(bmap)
    for c in raw.frame.columns:
        if c not in mapped and c in BENCHMARK_COLUMNS:
            raise DataError(
                f"column {c!r} is not in the WideTable mapping but has the name of a "
                "canonical column; map it or rename it",
                source=raw.source,
                column=c,
            )
    for key, value in (wide.chance or {}).items():
        if key not in bmap and key not in names:
            raise DataError(
                f"chance floor given for unknown benchmark {key!r}; benchmarks: {', '.join(names)}",
                source=raw.source,
            )
        v = float(value)
        if not (0.0 <= v < 1.0):
            raise DataError(f"chance floor {v!r} of {key!r} outside [0, 1)", source=raw.source)
    return bmap


def _bench_from_wide(raw: _Raw, wide: WideTable) -> BenchmarkEvals:
    bmap = _check_wide_mapping(raw, wide)
    _nonempty(raw)
    n = len(raw.frame)
    cols: dict[str, np.ndarray] = {}
    cols["model"] = _text(raw, wide.model)
    cols["family"] = _text(raw, wide.family)
    cols["subfamily"] = _text(raw, wide.subfamily) if wide.subfamily else cols["family"].copy()
    cols["instruct"] = _booleans(raw, wide.instruct) if wide.instruct else np.zeros(n, dtype=bool)
    cols["params"] = _positive(raw, wide.params, unit=wide.params_unit)
    cols["tokens"] = _positive(raw, wide.tokens, unit=wide.tokens_unit)
    dup = pd.Series(cols["model"]).duplicated(keep=False).to_numpy()
    if dup.any():
        pos = np.flatnonzero(dup)
        raise raw.fail(
            f"duplicate model {_show(cols['model'][pos].tolist())}: a wide table needs one row "
            "per model",
            pos,
            wide.model,
        )
    scores = {src: _scores(raw, src, allow_missing=True) for src in bmap}
    no_score = np.all(np.isnan(np.column_stack(list(scores.values()))), axis=1)
    if no_score.any():
        pos = np.flatnonzero(no_score)
        raise raw.fail(
            f"model {_show(cols['model'][pos].tolist())} has no score in any benchmark column "
            f"({', '.join(bmap)}); remove the row or add its scores (rows are never dropped "
            "silently)",
            pos,
            wide.model,
        )
    long, locs = _wide_long_frame(raw, wide, cols, scores)
    return _bench_from_raw(_Raw(long, raw.source, locs, raw.unit))


def read_benchmark_evals(
    source: str | os.PathLike | pd.DataFrame, *, wide: WideTable | None = None
) -> BenchmarkEvals:
    """Read and validate benchmark evaluations.

    Parameters
    ----------
    source : str, path-like or pandas.DataFrame
        A ``.csv`` or ``.parquet`` file, or a DataFrame. Without ``wide``: a long
        table with columns ``model, family, params, tokens, benchmark, score`` and
        optional ``subfamily`` (default: the family), ``instruct`` (default False;
        True/False, true/false, 1/0, yes/no), ``n_items`` (positive integer) and
        ``chance`` (in [0, 1)). Other columns are kept.
    wide : WideTable, optional
        Read a wide table (one row per model, one column per benchmark) with this
        mapping. Empty score cells are missing evaluations and give no row; a model
        without any score is an error.

    Returns
    -------
    BenchmarkEvals

    Raises
    ------
    bayescale.errors.DataError
        If the file cannot be read, a column is missing, the table is empty, a
        value is invalid, a (model, benchmark) pair is repeated, a model's
        metadata differs between its rows, or a benchmark has two chance values.
    """
    text_cols: list[str] = []
    if wide is not None:
        text_cols = [wide.model, wide.family] + ([wide.subfamily] if wide.subfamily else [])
    raw = _load_source(source, text_cols)
    if wide is not None:
        return _bench_from_wide(raw, wide)
    return _bench_from_raw(raw)


# ---------------------------------------------------------------------------
# generic entry point and checks for model builders
# ---------------------------------------------------------------------------


def read_data(source: str | os.PathLike | pd.DataFrame) -> LossRuns | BenchmarkEvals:
    """Read a canonical table, telling loss runs from benchmark evaluations by its columns.

    A table with a ``loss`` column is read as loss runs; one with ``score`` or
    ``benchmark`` columns as (long) benchmark evaluations.

    Parameters
    ----------
    source : str, path-like or pandas.DataFrame
        A ``.csv`` or ``.parquet`` file, or a DataFrame.

    Returns
    -------
    LossRuns or BenchmarkEvals

    Raises
    ------
    bayescale.errors.DataError
        If the kind of table cannot be recognised, or it fails validation.
    """
    if isinstance(source, (LossRuns, BenchmarkEvals)):
        return source
    raw = _load_source(source)
    cols = set(raw.frame.columns)
    is_loss = "loss" in cols
    is_bench = bool({"score", "benchmark"} & cols)
    if is_loss and is_bench:
        raise DataError(
            "ambiguous table: it has a 'loss' column (loss runs) and 'score'/'benchmark' "
            "columns (benchmark evaluations); use read_loss_runs or read_benchmark_evals",
            source=raw.source,
        )
    if is_loss:
        return _loss_from_raw(raw)
    if is_bench:
        return _bench_from_raw(raw)
    raise DataError(
        "cannot tell what this table is: expected loss runs (columns params, tokens, loss; "
        "optional family, run, flops) or benchmark evaluations in long format (columns "
        "model, family, params, tokens, benchmark, score; optional subfamily, instruct, "
        "n_items, chance); got columns: "
        + (", ".join(raw.frame.columns) or "none")
        + ". For a wide table (one column per benchmark) use "
        "read_benchmark_evals(..., wide=WideTable(...))",
        source=raw.source,
    )


def _table_of(data: LossRuns | BenchmarkEvals | pd.DataFrame) -> tuple[pd.DataFrame, str]:
    if isinstance(data, (LossRuns, BenchmarkEvals)):
        return data.table, data.source
    if isinstance(data, pd.DataFrame):
        return data, "<DataFrame>"
    raise TypeError(f"expected LossRuns, BenchmarkEvals or a DataFrame, got {type(data).__name__}")


def check_min_rows(data: LossRuns | BenchmarkEvals | pd.DataFrame, n: int, what: str) -> None:
    """Require at least ``n`` rows.

    Parameters
    ----------
    data : LossRuns, BenchmarkEvals or pandas.DataFrame
        The table (for benchmark evaluations, a row is one (model, benchmark) score).
    n : int
        Minimum number of rows.
    what : str
        Who needs them, for the message, e.g. ``"the hierarchical loss model"``.

    Raises
    ------
    bayescale.errors.DataError
        ``"<what> needs at least <n> data rows, got <m>"``.
    """
    table, source = _table_of(data)
    m = len(table)
    if m < n:
        raise DataError(f"{what} needs at least {n} data rows, got {m}", source=source)


def check_min_families(data: LossRuns | BenchmarkEvals | pd.DataFrame, n: int, what: str) -> None:
    """Require at least ``n`` distinct families.

    Parameters
    ----------
    data : LossRuns, BenchmarkEvals or pandas.DataFrame
        A table with a ``family`` column.
    n : int
        Minimum number of families.
    what : str
        Who needs them, for the message.

    Raises
    ------
    bayescale.errors.DataError
        ``"<what> needs at least <n> families, got <m> (...)"``.
    """
    table, source = _table_of(data)
    fams = sorted(pd.unique(table["family"]).tolist()) if "family" in table else []
    if len(fams) < n:
        shown = f" ({', '.join(map(str, fams))})" if fams else ""
        raise DataError(
            f"{what} needs at least {n} families, got {len(fams)}{shown}",
            source=source,
            column="family",
        )


def check_known_families(
    data_or_families: LossRuns | BenchmarkEvals | pd.DataFrame | Iterable[str],
    names: Iterable[str],
    source: str | None = None,
) -> None:
    """Require every family to be one of ``names`` (e.g. the families a model was fitted on).

    Parameters
    ----------
    data_or_families : LossRuns, BenchmarkEvals, pandas.DataFrame or iterable of str
        The table (its ``family`` column) or the family values themselves.
    names : iterable of str
        The known families.
    source : str, optional
        Label of the data for the message (default: the table's source).

    Raises
    ------
    bayescale.errors.DataError
        Naming the unknown family values, the lines (CSV input) or rows they are
        on, and the known families.
    """
    known = [str(x) for x in names]
    known_set = set(known)
    lines = None
    if isinstance(data_or_families, (LossRuns, BenchmarkEvals)):
        values = data_or_families.table["family"].astype(str).tolist()
        source = source if source is not None else data_or_families.source
        lines = data_or_families.lines
        locs = list(range(len(values)))
    elif isinstance(data_or_families, pd.DataFrame):
        values = data_or_families["family"].astype(str).tolist()
        locs = list(data_or_families.index)
        source = source if source is not None else "<DataFrame>"
    else:
        values = [str(x) for x in data_or_families]
        locs = list(range(len(values)))
    pos = [i for i, v in enumerate(values) if v not in known_set]
    if not pos:
        return
    unknown = _show([values[i] for i in pos], limit=10)
    problem = f"unknown family {unknown}; known families: {', '.join(known) or 'none'}"
    if lines is not None:
        raise DataError(problem, source=source, rows=[lines[i] for i in pos], column="family")
    raise _RowsDataError(problem, source=source, rows=[locs[i] for i in pos], column="family")


# ---------------------------------------------------------------------------
# rows to predict at
# ---------------------------------------------------------------------------

_SIZE_COLUMNS = ("params", "tokens", "flops")


def read_prediction_rows(
    rows: str | os.PathLike | pd.DataFrame | Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    required: Sequence[str] = (),
) -> pd.DataFrame:
    """Read and validate the rows a fitted model should predict at.

    Parameters
    ----------
    rows : str, path-like, pandas.DataFrame, dict of columns or list of dicts
        A ``.csv``/``.parquet`` file, a DataFrame, or the rows themselves.
    required : sequence of str
        Columns the model needs (e.g. ``["family", "params", "tokens"]``). One of
        ``params``, ``tokens``, ``flops`` may be missing if the other two are given:
        it is derived from ``flops = 6 * params * tokens``.

    Returns
    -------
    pandas.DataFrame
        The rows (index ``0..n-1``) with the input columns in their order; ``params``,
        ``tokens``, ``flops`` as positive floats, ``family``, ``model``,
        ``subfamily``, ``benchmark`` as text, ``instruct`` as bool and ``n_items``
        as integers when present. A ``flops`` column (``6 N D``) is appended when
        ``params`` and ``tokens`` are given without it.

    Raises
    ------
    bayescale.errors.DataError
        If a required column is missing, the table is empty, or a value is invalid
        (names the file, line(s) or rows, column and problem).
    """
    if isinstance(rows, Mapping):
        rows = pd.DataFrame(dict(rows))
    elif isinstance(rows, Sequence) and not isinstance(rows, (str, bytes)):
        rows = pd.DataFrame.from_records(list(rows))
    raw = _load_source(rows)
    df = raw.frame
    have = set(df.columns)
    derivable = [c for c in _SIZE_COLUMNS if c not in have]
    can_derive = len(derivable) == 1 and set(_SIZE_COLUMNS) - set(derivable) <= have
    missing = [c for c in required if c not in have and not (can_derive and c in derivable)]
    if missing:
        raise DataError(
            f"missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(c) for c in missing)} needed for prediction "
            f"(got: {', '.join(df.columns) or 'none'})",
            source=raw.source,
            column=missing[0],
        )
    _nonempty(raw)
    out = df.copy()
    for col in ("model", "family", "subfamily", "benchmark"):
        if col in have:
            out[col] = pd.Series(_text(raw, col), dtype="str")
    sizes = {c: _positive(raw, c) for c in _SIZE_COLUMNS if c in have}
    for col, values in sizes.items():
        out[col] = values
    if "instruct" in have:
        out["instruct"] = _booleans(raw, "instruct")
    if "n_items" in have:
        n_items = _n_items(raw, "n_items")
        if n_items.isna().any():
            pos = np.flatnonzero(n_items.isna())
            raise raw.fail("missing value (empty cell); n_items is required", pos, "n_items")
        out["n_items"] = n_items
    if can_derive:
        (target,) = derivable
        if target == "flops":
            out["flops"] = 6.0 * sizes["params"] * sizes["tokens"]
        elif target == "tokens" and "tokens" in required:
            out["tokens"] = sizes["flops"] / (6.0 * sizes["params"])
        elif target == "params" and "params" in required:
            out["params"] = sizes["flops"] / (6.0 * sizes["tokens"])
    return out
