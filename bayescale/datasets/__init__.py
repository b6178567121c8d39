"""Curated public scaling data shipped with bayescale.

Every table lives in ``bayescale/datasets/data/`` as a compact CSV built by
``scripts/build_datasets.py`` from the public releases listed in
``data/SOURCES.md`` (which records source, licence and every correction).

>>> from bayescale import datasets
>>> runs = datasets.load("chinchilla")          # 240 runs, 5 outliers in runs.excluded
>>> evals = datasets.load("open-llm-leaderboard")
>>> datasets.list_datasets()                    # one row per dataset

Rows left out by a dataset's documented rule (outliers, models without a token
count, duplicate records, ...) are not dropped silently: they are in the
``excluded`` table of the result, with a ``reason`` column.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bayescale.data import (
    BENCHMARK_COLUMNS,
    BenchmarkEvals,
    LossRuns,
    WideTable,
    _bench_from_wide,
    _from_frame,
    _loss_from_raw,
    read_benchmark_evals,
    read_data,
    read_loss_runs,
)
from bayescale.errors import DataError

__all__ = [
    "DATASETS",
    "DATA_DIR",
    "NAMES",
    "DatasetInfo",
    "Exclusion",
    "info",
    "list_datasets",
    "load",
    "resolve",
]

#: Folder of the shipped CSV tables.
DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Exclusion:
    """A documented rule leaving rows of a shipped table out of the default load.

    Parameters
    ----------
    reason : str
        Why, as stored in the ``reason`` column of ``excluded``.
    select : callable
        Takes the shipped table (as read from its CSV) and returns a boolean mask
        of the rows the rule excludes.
    """

    reason: str
    select: Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class DatasetInfo:
    """Metadata of a shipped dataset.

    Parameters
    ----------
    name : str
        Name given to :func:`load`.
    kind : str
        ``"loss"`` or ``"benchmark"``.
    file : str
        CSV file in :data:`DATA_DIR`.
    description, source, licence : str
        One-line description, source (paper and repository) and licence.
    wide : WideTable, optional
        For benchmark tables: the mapping of the shipped wide CSV (one row per
        model, one column per benchmark, counts already raw).
    exclusions : tuple of Exclusion
        Rules applied by :func:`load`; a row takes the reason of the first rule
        that selects it.
    """

    name: str
    kind: str
    file: str
    description: str
    source: str
    licence: str
    wide: WideTable | None = None
    exclusions: tuple[Exclusion, ...] = ()

    @property
    def path(self) -> Path:
        """Path of the shipped CSV."""
        return DATA_DIR / self.file


def _flag(column: str) -> Callable[[pd.DataFrame], np.ndarray]:
    def select(df: pd.DataFrame) -> np.ndarray:
        s = df[column]
        if s.dtype == bool:
            return s.to_numpy(dtype=bool)
        return s.astype(str).str.strip().str.lower().isin({"true", "1", "yes"}).to_numpy()

    return select


def _equals(column: str, value: str) -> Callable[[pd.DataFrame], np.ndarray]:
    def select(df: pd.DataFrame) -> np.ndarray:
        return (df[column].astype(str) == value).to_numpy()

    return select


def _nonblank(column: str) -> Callable[[pd.DataFrame], np.ndarray]:
    def select(df: pd.DataFrame) -> np.ndarray:
        s = df[column]
        return (s.notna() & (s.astype(str).str.strip() != "")).to_numpy()

    return select


def _missing_size() -> Callable[[pd.DataFrame], np.ndarray]:
    def select(df: pd.DataFrame) -> np.ndarray:
        return (df["params"].isna() | df["tokens"].isna()).to_numpy()

    return select


_NO_SIZE_SLOTH = Exclusion(
    "parameter count or pretraining-token count not reported in the source (data_v2.csv, "
    "and sloth/training_tokens.csv has no value either)",
    _missing_size(),
)
_NO_SIZE_OBS = Exclusion(
    "pretraining-token count (hence FLOPs) not reported in the source "
    "(ObsScaling base_llm_benchmark_eval.csv)",
    _missing_size(),
)

#: The 12 headline benchmarks of the Open LLM Leaderboard v1 (first 6) and v2 (last 6).
OPEN_LLM_BENCHMARKS = (
    "MMLU",
    "ARC",
    "HellaSwag",
    "Winogrande",
    "TruthfulQA",
    "GSM8K",
    "IFEval",
    "BBH",
    "MATH Lvl 5",
    "GPQA",
    "MUSR",
    "MMLU-PRO",
)
#: Chance floors of the Open LLM Leaderboard benchmarks (sloth/test_groups.json).
OPEN_LLM_CHANCE = {
    "MMLU": 0.25,
    "ARC": 0.25,
    "HellaSwag": 0.25,
    "Winogrande": 0.5,
    "TruthfulQA": 0.31,
    "GSM8K": 0.0,
    "IFEval": 0.0,
    "BBH": 0.2885,
    "MATH Lvl 5": 0.0,
    "GPQA": 0.25,
    "MUSR": 0.3433,
    "MMLU-PRO": 0.1,
}
#: ObsScaling's 8 base benchmarks and their chance floors (reasons in SOURCES.md).
OBS_BENCHMARKS = (
    "MMLU",
    "ARC-C",
    "HellaSwag",
    "Winograd",
    "TruthfulQA",
    "GSM8K",
    "XWinograd",
    "HumanEval",
)
OBS_CHANCE = {
    "MMLU": 0.25,
    "ARC-C": 0.25,
    "HellaSwag": 0.25,
    "Winograd": 0.5,
    "TruthfulQA": 0.31,
    "GSM8K": 0.0,
    "XWinograd": 0.5,
    "HumanEval": 0.0,
}
#: BIG-Bench "emergent" tasks of ObsScaling (2-shot).
OBS_EMERGENT_BENCHMARKS = (
    "parsinlu_qa",
    "word_unscrambling",
    "ipa_transliterate",
    "arithmetic_3ds",
    "arithmetic_3da",
    "arithmetic_2dm",
    "arithmetic_2da",
)
OBS_EMERGENT_CHANCE = {
    "parsinlu_qa": 0.25,
    "word_unscrambling": 0.0,
    "ipa_transliterate": 0.0,
    "arithmetic_3ds": 0.0,
    "arithmetic_3da": 0.0,
    "arithmetic_2dm": 0.0,
    "arithmetic_2da": 0.0,
}
#: ObsScaling post-training (prompting technique) headline scores.
OBS_POST_BENCHMARKS = ("GSM8K naive", "GSM8K CoT", "GSM8K CoT-SC", "BBH", "BBH CoT")
#: BBH chance = mean over its 27 sub-tasks of their random-guess accuracy (ObsScaling constants).
BBH_OVERALL_CHANCE = 0.2624
OBS_POST_CHANCE = {
    "GSM8K naive": 0.0,
    "GSM8K CoT": 0.0,
    "GSM8K CoT-SC": 0.0,
    "BBH": BBH_OVERALL_CHANCE,
    "BBH CoT": BBH_OVERALL_CHANCE,
}
#: Open LLM Leaderboard v2 benchmarks as evaluated by ObsScaling.
OBS_V2_BENCHMARKS = ("IFEval", "BBH", "MATH Lvl 5", "GPQA", "MUSR", "MMLU-PRO")
OBS_V2_CHANCE = {b: OPEN_LLM_CHANCE[b] for b in OBS_V2_BENCHMARKS}

_OBS_SOURCE = (
    "Ruan et al. 2024, 'Observational Scaling Laws and the Predictability of Language "
    "Model Performance', github.com/ryoungj/ObsScaling"
)


def _obs_wide(benchmarks: tuple[str, ...], chance: dict[str, float]) -> WideTable:
    return WideTable(benchmarks=list(benchmarks), chance=dict(chance))


_DATASETS = (
    DatasetInfo(
        name="chinchilla",
        kind="loss",
        file="chinchilla.csv",
        description=(
            "245 Chinchilla training runs digitised from Hoffmann et al. (2022) Fig. 4 by "
            "Epoch; the 5 highest-loss outliers excluded by default (240 runs)"
        ),
        source=(
            "Besiroglu et al. 2024, 'Chinchilla Scaling: A replication attempt', "
            "github.com/epoch-research/analyzing-chinchilla"
        ),
        licence="no licence file (figure data digitised from a paper); facts only",
        exclusions=(
            Exclusion(
                "one of the 5 highest-loss points, outliers in every published re-analysis "
                "(Besiroglu et al. 2024)",
                _flag("outlier"),
            ),
        ),
    ),
    DatasetInfo(
        name="open-llm-leaderboard",
        kind="benchmark",
        file="open-llm-leaderboard.csv",
        description=(
            "Open LLM Leaderboard v1+v2 scores of 188 public LLMs on 12 headline benchmarks, "
            "with family, sub-family and instruct flag (Sloth data_v2)"
        ),
        source=(
            "Polo et al. 2025, 'Sloth: scaling laws for LLM skills to predict multi-benchmark "
            "performance across families', github.com/felipemaiapolo/sloth"
        ),
        licence="MIT",
        wide=WideTable(
            benchmarks=list(OPEN_LLM_BENCHMARKS),
            subfamily="subfamily",
            instruct="instruct",
            chance=dict(OPEN_LLM_CHANCE),
        ),
        exclusions=(_NO_SIZE_SLOTH,),
    ),
    DatasetInfo(
        name="observational-scaling",
        kind="benchmark",
        file="observational-scaling.csv",
        description=(
            "128 base LLMs on 8 standard benchmarks (MMLU, ARC-C, HellaSwag, Winograd, "
            "TruthfulQA, GSM8K, XWinograd, HumanEval), with known size errors corrected"
        ),
        source=_OBS_SOURCE,
        licence="Apache-2.0",
        wide=_obs_wide(OBS_BENCHMARKS, OBS_CHANCE),
        exclusions=(_NO_SIZE_OBS,),
    ),
    DatasetInfo(
        name="observational-scaling-emergent",
        kind="benchmark",
        file="observational-scaling-emergent.csv",
        description="65 base LLMs on 7 BIG-Bench 'emergent' tasks (2-shot)",
        source=_OBS_SOURCE,
        licence="Apache-2.0",
        wide=_obs_wide(OBS_EMERGENT_BENCHMARKS, OBS_EMERGENT_CHANCE),
        exclusions=(_NO_SIZE_OBS,),
    ),
    DatasetInfo(
        name="observational-scaling-post-training",
        kind="benchmark",
        file="observational-scaling-post-training.csv",
        description=(
            "77 base LLMs (ObsScaling's core set) under prompting techniques: GSM8K naive / "
            "CoT / CoT self-consistency, BBH without / with CoT"
        ),
        source=_OBS_SOURCE,
        licence="Apache-2.0",
        wide=_obs_wide(OBS_POST_BENCHMARKS, OBS_POST_CHANCE),
        exclusions=(_NO_SIZE_OBS,),
    ),
    DatasetInfo(
        name="observational-scaling-leaderboard-v2",
        kind="benchmark",
        file="observational-scaling-leaderboard-v2.csv",
        description=(
            "55 base LLMs on the Open LLM Leaderboard v2 benchmarks (IFEval, BBH, MATH Lvl 5, "
            "GPQA, MUSR, MMLU-PRO) as evaluated by ObsScaling"
        ),
        source=_OBS_SOURCE,
        licence="Apache-2.0",
        wide=_obs_wide(OBS_V2_BENCHMARKS, OBS_V2_CHANCE),
        exclusions=(_NO_SIZE_OBS,),
    ),
    DatasetInfo(
        name="porian-recipes",
        kind="loss",
        file="porian-recipes.csv",
        description=(
            "IsoFLOP runs under 15 training recipes (dataset / hyper-parameters / warmup / "
            "decay / parameter count); the 8 recipes with held-out validation loss by default"
        ),
        source=(
            "Porian et al. 2024, 'Resolving Discrepancies in Compute-Optimal Scaling of "
            "Language Models', github.com/formll/resolving-scaling-law-discrepancies"
        ),
        licence="MIT",
        exclusions=(
            Exclusion(
                "training loss (loss_split=train; the Kaplan- and attention-parameter-count "
                "recipes), not held-out validation loss: kept out so every default row is a "
                "validation loss with the standard parameter count",
                _equals("loss_split", "train"),
            ),
        ),
    ),
    DatasetInfo(
        name="datablations",
        kind="loss",
        file="datablations.csv",
        description=(
            "Data-constrained runs on C4 with repeated data: final validation loss vs "
            "parameters, tokens, unique tokens and epochs"
        ),
        source=(
            "Muennighoff et al. 2023, 'Scaling Data-Constrained Language Models', "
            "github.com/huggingface/datablations"
        ),
        licence="Apache-2.0",
    ),
    DatasetInfo(
        name="gadre-overtrain",
        kind="loss",
        file="gadre-overtrain.csv",
        description=(
            "Over-trained runs (5 to 640 tokens per parameter) on 3 training sets, C4 eval "
            "loss; family = training set"
        ),
        source=(
            "Gadre et al. 2024, 'Language models scale reliably with over-training and on "
            "downstream tasks', github.com/mlfoundations/scaling"
        ),
        licence="MIT",
    ),
    DatasetInfo(
        name="misfitting",
        kind="loss",
        file="misfitting.csv",
        description=(
            "Final checkpoints of 11 model sizes (12M-1B) trained at 5 peak learning rates; "
            "family = peak learning rate"
        ),
        source=(
            "Li et al. 2025, '(Mis)Fitting: A Survey of Scaling Laws', "
            "github.com/hadasah/scaling_laws"
        ),
        licence="no licence file; facts only",
        exclusions=(
            Exclusion(
                "the same run (identical N, D and loss) is recorded twice with different "
                "peak_lr labels, so its learning rate, hence its family, is unknown",
                _flag("lr_conflict"),
            ),
            Exclusion(
                "duplicate record of another row (identical N, D, peak_lr and loss)",
                _nonblank("duplicate_of"),
            ),
        ),
    ),
)

#: Shipped datasets by name.
DATASETS: dict[str, DatasetInfo] = {d.name: d for d in _DATASETS}
#: Names of the shipped datasets.
NAMES: tuple[str, ...] = tuple(DATASETS)


def info(name: str) -> DatasetInfo:
    """Return the metadata of a shipped dataset.

    Raises
    ------
    bayescale.errors.DataError
        If ``name`` is not a shipped dataset (the message lists them).
    """
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise DataError(
            f"unknown dataset {name!r}; available datasets: {', '.join(NAMES)}"
        ) from None


_TEXT = ("run", "family", "model", "subfamily", "benchmark", "duplicate_of")


def _read_csv(path: Path) -> pd.DataFrame:
    """Read a shipped table exactly as :func:`load` does."""
    return pd.read_csv(path, dtype={c: str for c in _TEXT})


def _read_shipped(meta: DatasetInfo) -> pd.DataFrame:
    path = meta.path
    if not path.exists():
        raise DataError(
            "shipped table missing; rebuild it with scripts/build_datasets.py",
            source=str(path),
        )
    return _read_csv(path)


def _complete(meta: DatasetInfo, df: pd.DataFrame) -> np.ndarray:
    """Rows with every value a canonical table requires (so they can be put back)."""
    cols = ["params", "tokens"] + (["loss"] if meta.kind == "loss" else [])
    return df[cols].notna().all(axis=1).to_numpy()


def _lenient_long(meta: DatasetInfo, df: pd.DataFrame) -> pd.DataFrame:
    """Excluded rows in the canonical layout, without validation (values may be missing)."""
    if meta.kind == "loss":
        out = df.copy()
        if "flops" in out:
            out["flops"] = out["flops"].fillna(6.0 * out["params"] * out["tokens"])
        order = [c for c in ("run", "family", "params", "tokens", "flops", "loss") if c in out]
        return out[order + [c for c in out.columns if c not in order]]
    wide = meta.wide
    assert wide is not None
    bench = wide.benchmark_map()
    ids = ["model", "family", "subfamily", "instruct", "params", "tokens"]
    ids = [c for c in ids if c in df.columns]
    extras = [c for c in df.columns if c not in ids and c not in bench]
    long = (
        df.reset_index(drop=True)
        .reset_index(names="_pos")
        .melt(
            id_vars=["_pos", *ids, *extras],
            value_vars=list(bench),
            var_name="benchmark",
            value_name="score",
        )
    )
    long = long[long["score"].notna()].copy()
    long["_order"] = long["benchmark"].map({b: i for i, b in enumerate(bench)})
    long = long.sort_values(["_pos", "_order"], kind="stable").drop(columns=["_pos", "_order"])
    long["benchmark"] = long["benchmark"].map(bench)
    if "subfamily" not in long:
        long["subfamily"] = long["family"]
    if "instruct" not in long:
        long["instruct"] = False
    long["n_items"] = pd.array([pd.NA] * len(long), dtype="Int64")
    chance = wide.chance or {}
    long["chance"] = long["benchmark"].map(lambda b: chance.get(b, np.nan)).astype(float)
    return long[list(BENCHMARK_COLUMNS) + extras].reset_index(drop=True)


def load(name: str, *, include_excluded: bool = False) -> LossRuns | BenchmarkEvals:
    """Load a shipped dataset as a validated canonical table.

    Parameters
    ----------
    name : str
        One of :data:`NAMES` (see :func:`list_datasets`).
    include_excluded : bool, default False
        Put back the rows a documented rule left out (e.g. Chinchilla's 5 outliers),
        as long as they have every required value. Rows that cannot be valid (a
        model without a token count) stay in ``excluded``.

    Returns
    -------
    LossRuns or BenchmarkEvals
        With ``source = "dataset:NAME"`` and the left-out rows, with a ``reason``
        column, in ``excluded``.

    Raises
    ------
    bayescale.errors.DataError
        If ``name`` is not a shipped dataset.
    """
    meta = info(name)
    return _build(meta, _read_shipped(meta), include_excluded=include_excluded)


def _build(
    meta: DatasetInfo, df: pd.DataFrame, *, include_excluded: bool = False
) -> LossRuns | BenchmarkEvals:
    """Apply a dataset's exclusion rules to its shipped table and validate the rest."""
    reasons = np.full(len(df), "", dtype=object)
    for rule in meta.exclusions:
        hit = np.asarray(rule.select(df), dtype=bool) & (reasons == "")
        reasons[hit] = rule.reason
    if include_excluded:
        reasons[(reasons != "") & _complete(meta, df)] = ""
    keep = reasons == ""
    raw = _from_frame(df[keep], f"dataset:{meta.name}", unit="line")
    raw.locs = [int(i) + 2 for i in np.flatnonzero(keep)]  # lines of the shipped CSV
    if meta.kind == "loss":
        result: LossRuns | BenchmarkEvals = _loss_from_raw(raw)
    else:
        assert meta.wide is not None
        result = _bench_from_wide(raw, meta.wide)
    result.lines = None  # the table's rows do not map to a user's file
    excluded = _lenient_long(meta, df[~keep])
    if meta.kind == "benchmark":
        # one reason per model row of the wide table, repeated on its long rows
        model_reason = dict(zip(df.loc[~keep, "model"], reasons[~keep], strict=True))
        excluded["reason"] = excluded["model"].map(model_reason)
    else:
        excluded["reason"] = reasons[~keep]
    result.excluded = excluded.reset_index(drop=True)
    return result


def list_datasets() -> pd.DataFrame:
    """Describe the shipped datasets.

    Returns
    -------
    pandas.DataFrame
        One row per dataset: ``name, kind, rows`` (rows of the default load),
        ``families, description, source, licence``.
    """
    records = []
    for meta in _DATASETS:
        data = load(meta.name)
        records.append(
            {
                "name": meta.name,
                "kind": meta.kind,
                "rows": len(data.table),
                "families": len(data.families),
                "description": meta.description,
                "source": meta.source,
                "licence": meta.licence,
            }
        )
    return pd.DataFrame.from_records(records)


def resolve(
    data: str | os.PathLike | pd.DataFrame | LossRuns | BenchmarkEvals,
    *,
    kind: str | None = None,
) -> LossRuns | BenchmarkEvals:
    """Turn a shipped dataset name, a file path or a DataFrame into a canonical table.

    Parameters
    ----------
    data : str, path-like, pandas.DataFrame, LossRuns or BenchmarkEvals
        A name from :data:`NAMES`, a ``.csv``/``.parquet`` file or a DataFrame in
        one of the canonical layouts (see :func:`bayescale.data.read_data`); a
        canonical table is returned as is.
    kind : {"loss", "benchmark"}, optional
        Which canonical table a file or DataFrame must be. With it, a table that
        lacks a required column is reported as such (instead of as unrecognisable).

    Returns
    -------
    LossRuns or BenchmarkEvals

    Raises
    ------
    bayescale.errors.DataError
        If a string is neither a shipped dataset nor an existing file, or the
        table is invalid.
    """
    if isinstance(data, (LossRuns, BenchmarkEvals)):
        return data
    if isinstance(data, str) and data in DATASETS:
        return load(data)
    if isinstance(data, (str, os.PathLike)) and not Path(data).exists():
        raise DataError(
            f"{str(data)!r} is neither a shipped dataset ({', '.join(NAMES)}) nor an existing file"
        )
    if kind == "loss" and isinstance(data, (str, os.PathLike, pd.DataFrame)):
        return read_loss_runs(data)
    if kind == "benchmark" and isinstance(data, (str, os.PathLike, pd.DataFrame)):
        return read_benchmark_evals(data)
    return read_data(data)
