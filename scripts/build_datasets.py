#!/usr/bin/env python
"""Build bayescale's shipped dataset tables from the public data in ../shared/data.

Reads the third-party releases under ``--shared`` (default ``<project>/../shared/data``),
keeps only the facts bayescale uses (model names, families, sizes, token counts,
FLOPs, scores, losses), applies the documented corrections, and writes compact CSV
tables plus ``SOURCES.md`` (source, licence, derivation, corrections and exclusions
of every table) into ``--out`` (default ``bayescale/datasets/data``). Every file is
written atomically (temporary file, then ``os.replace``).

Usage::

    .venv/bin/python scripts/build_datasets.py [--shared DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

from bayescale import datasets as ds  # noqa: E402
from bayescale.data import BenchmarkEvals  # noqa: E402

DEFAULT_SHARED = PROJECT.parent / "shared" / "data"
DEFAULT_OUT = PROJECT / "bayescale" / "datasets" / "data"
FLOAT_FORMAT = "%.10g"


@dataclass
class Built:
    """One built table and what to say about it in SOURCES.md."""

    name: str
    frame: pd.DataFrame
    inputs: list[str]
    derived: list[str]
    corrections: list[str] = field(default_factory=list)
    curation: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def read(shared: Path, rel: str) -> pd.DataFrame:
    path = shared / rel
    if not path.exists():
        raise SystemExit(f"error: {path} not found (is --shared right?)")
    df = pd.read_csv(path)
    df.columns = [str(c).strip() for c in df.columns]
    return df


def correct(df: pd.DataFrame, key: str, name: str, column: str, old: float, new: float) -> None:
    """Replace a known-wrong value, checking the source still has the wrong one."""
    hit = df[key] == name
    if hit.sum() != 1:
        raise SystemExit(f"error: correction target {name!r} found {hit.sum()} times")
    have = float(df.loc[hit, column].iloc[0])
    if not np.isclose(have, old):
        raise SystemExit(f"error: {name!r} {column} is {have}, expected the known error {old}")
    df.loc[hit, column] = new


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600 files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write_text(
        path, frame.to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
    )


def wide_frame(ids: pd.DataFrame, scores: pd.DataFrame, benchmarks: dict[str, str]) -> pd.DataFrame:
    """Model-level columns then one column per benchmark (renamed)."""
    out = ids.reset_index(drop=True).copy()
    for src, name in benchmarks.items():
        out[name] = scores[src].to_numpy(dtype=float)
    return out


# ---------------------------------------------------------------------------
# loss runs
# ---------------------------------------------------------------------------


def build_chinchilla(shared: Path) -> Built:
    src = "chinchilla_epoch/svg_extracted_data.csv"
    d = read(shared, src)
    params = d["Model Size"].astype(float)
    flops = d["Training FLOP"].astype(float)
    loss = d["loss"].astype(float)
    outlier = np.zeros(len(d), dtype=bool)
    outlier[np.argsort(-loss.to_numpy(), kind="stable")[:5]] = True
    frame = pd.DataFrame(
        {
            "run": [f"c{i:03d}" for i in range(len(d))],
            "family": "chinchilla",
            "params": params,
            "tokens": flops / (6.0 * params),
            "flops": flops,
            "loss": loss,
            "outlier": outlier,
        }
    )
    top = ", ".join(f"{v:.3f}" for v in np.sort(loss[outlier].to_numpy())[::-1])
    return Built(
        name="chinchilla",
        frame=frame,
        inputs=[f"`{src}` ({len(d)} rows)"],
        derived=[
            "`run` = `c000`... in source order; `family` = `chinchilla`",
            "`params` = `Model Size`; `flops` = `Training FLOP`; `tokens` = C / (6 N); "
            "`loss` = `loss`",
            f"`outlier` = True for the 5 highest losses ({top})",
            "dropped: the digitisation columns (`x`, `y`, colours)",
        ],
    )


def porian_family(row: pd.Series) -> str:
    return (
        f"{row['dataset']}/{row['hparams']}-hparams/{row['warmup']}-warmup/"
        f"{row['decay']}-decay/{row['param_count']}-count"
    )


def build_porian(shared: Path) -> Built:
    src = "loss_runs/porian2024/porian2024_isoflop_points.csv"
    d = read(shared, src)
    family = d.apply(porian_family, axis=1)
    frame = pd.DataFrame(
        {
            "run": [f"p{i:04d}" for i in range(len(d))],
            "family": family,
            "params": d["n_params"].astype(float),
            "tokens": d["tokens"].astype(float),
            "flops": d["flops"].astype(float),
            "loss": d["loss"].astype(float),
            "loss_split": d["loss_split"].astype(str),
        }
    )
    split = frame.groupby("family")["loss_split"].agg(lambda s: "/".join(sorted(set(s))))
    val = sorted(split.index[split == "val"])
    train = sorted(split.index[split == "train"])
    return Built(
        name="porian-recipes",
        frame=frame,
        inputs=[f"`{src}` ({len(d)} rows)"],
        derived=[
            "`run` = `p0000`... in source order",
            "`family` = recipe id `DATASET/HPARAMS-hparams/WARMUP-warmup/DECAY-decay/"
            "PARAMCOUNT-count` from the columns `dataset`, `hparams`, `warmup`, `decay`, "
            f"`param_count` ({family.nunique()} recipes)",
            "`params` = `n_params` (counted as the recipe's `param_count` says), `tokens`, "
            "`flops` (= 6 N D in the source), `loss`; `loss_split` kept",
            "dropped: `source_file` (which summary table of the repo a row came from)",
        ],
        curation=[
            "Each recipe has a single `loss_split`. The 8 recipes with `standard` parameter "
            "count report held-out validation loss (`val`); the 7 with `kaplan` or "
            "`attention` parameter count report training loss (`train`). `load` keeps the "
            "validation-loss recipes (final held-out loss, one parameter-count convention) "
            "and puts the training-loss rows in `excluded`; `include_excluded=True` adds "
            "them back.",
            "Validation-loss recipes: " + ", ".join(f"`{f}`" for f in val) + ".",
            "Training-loss recipes: " + ", ".join(f"`{f}`" for f in train) + ".",
        ],
        notes=[
            "With `kaplan` decay (one cosine schedule for a long run) or `const` decay the "
            "loss at D tokens is not the loss of a run whose schedule was fitted to D; only "
            "the `chinchilla`-decay recipes are end-of-schedule losses. The recipes are "
            "the object of the paper, so all are kept as families.",
        ],
    )


def build_datablations(shared: Path) -> Built:
    src = "loss_runs/datablations/final_val_losses.csv"
    d = read(shared, src)
    seed = pd.array([pd.NA if np.isnan(s) else int(s) for s in d["seed"]], dtype="Int64")
    frame = pd.DataFrame(
        {
            "run": d["run_name"].astype(str),
            "family": "c4",
            "params": d["params"].astype(float),
            "tokens": d["tokens"].astype(float),
            "flops": 6.0 * d["params"].astype(float) * d["tokens"].astype(float),
            "loss": d["val_loss"].astype(float),
            "unique_tokens": d["unique_tokens"].astype(float),
            "epochs": d["epochs"].astype(float),
            "seed": seed,
        }
    )
    n_flag = int(d["is_c4_flagged"].sum())
    high = frame[frame["loss"] > 6]
    return Built(
        name="datablations",
        frame=frame,
        inputs=[f"`{src}` ({len(d)} rows)"],
        derived=[
            "`run` = `run_name`; `family` = `c4` for every run",
            "`params`, `tokens`, `loss` = `val_loss`, `flops` = 6 N D (not in the source)",
            "kept: `unique_tokens`, `epochs` (= tokens / unique tokens), `seed` (empty "
            "unless the run is one of several seeds)",
            "dropped: `name_normalized`, `is_c4_flagged`",
        ],
        notes=[
            f"`is_c4_flagged` is True for {n_flag} runs whose name carries a `c4` tag; they "
            "are the seed replicates (`seed` 1-4) of configurations also present without the "
            "tag, with nearly the same loss, so they are not a different family.",
            f"{len(high)} runs with extreme repetition (up to {high['epochs'].max():.0f} "
            f"epochs of 100M unique tokens) have losses above 6 (max "
            f"{high['loss'].max():.2f}): overfitting, kept as published.",
        ],
    )


def build_gadre(shared: Path) -> Built:
    src = "loss_runs/gadre2024_overtrain/final_losses.csv"
    d = read(shared, src)
    frame = pd.DataFrame(
        {
            "run": d["name"].astype(str),
            "family": d["dataset_name"].astype(str),
            "params": d["N"].astype(float),
            "tokens": d["D"].astype(float),
            "flops": pd.to_numeric(d["flops"]).astype(float),
            "loss": d["loss_c4_val"].astype(float),
            "tok_mult": d["tok_mult"].astype(float),
        }
    )
    return Built(
        name="gadre-overtrain",
        frame=frame,
        inputs=[f"`{src}` ({len(d)} rows, 83 columns)"],
        derived=[
            "`run` = `name`; `family` = `dataset_name` (training set: "
            + ", ".join(f"`{f}`" for f in sorted(frame["family"].unique()))
            + ")",
            "`params` = `N`, `tokens` = `D`, `flops` = `flops` (= 6 N D)",
            "`loss` = `loss_c4_val`: loss on the held-out C4 eval set, the loss the paper "
            "fits for every training set (so families share one evaluation distribution); "
            "`tok_mult` (tokens per parameter) kept",
            "dropped: the other eval losses (OpenLM val, Paloma subsets), the 46 downstream "
            "error columns and plotting columns",
        ],
    )


def build_misfitting(shared: Path) -> Built:
    src = "loss_runs/misfitting/final_checkpoints.csv"
    d = read(shared, src)
    run = [f"m{i:03d}" for i in range(len(d))]
    key = list(zip(d["N"], d["D"], d["loss"], strict=True))
    lrs: dict[tuple, set] = {}
    first: dict[tuple, str] = {}
    for k, lr, r in zip(key, d["peak_lr"], run, strict=True):
        lrs.setdefault(k, set()).add(float(lr))
        first.setdefault(k, r)
    conflict = np.array([len(lrs[k]) > 1 for k in key])
    duplicate_of = [
        "" if (first[k] == r or c) else first[k] for k, r, c in zip(key, run, conflict, strict=True)
    ]
    frame = pd.DataFrame(
        {
            "run": run,
            "family": [f"lr={lr:g}" for lr in d["peak_lr"]],
            "params": d["N"].astype(float),
            "tokens": d["D"].astype(float),
            "flops": pd.to_numeric(d["C"]).astype(float),
            "loss": d["loss"].astype(float),
            "peak_lr": d["peak_lr"].astype(float),
            "model": d["model"].astype(str),
            "lr_conflict": conflict,
            "duplicate_of": duplicate_of,
        }
    )
    n_dup = sum(1 for x in duplicate_of if x)
    sweeps = sorted(set(d.loc[conflict | (frame["duplicate_of"] != ""), "sweep"]))
    same_loss_col = bool((d["loss"] == d["C4 Eval Loss"]).all())
    return Built(
        name="misfitting",
        frame=frame,
        inputs=[f"`{src}` ({len(d)} rows)"],
        derived=[
            "`run` = `m000`... in source order; `family` = `lr=<peak_lr>` (the natural "
            "grouping: the file has 11 dense model sizes x 5 peak learning rates and no "
            "dense/MoE column)",
            "`params` = `N` (with embeddings), `tokens` = `D`, `flops` = `C`, `loss` = `loss`"
            + (" (identical to `C4 Eval Loss` on every row)" if same_loss_col else ""),
            "kept: `peak_lr`, `model` (size name), and the flags `lr_conflict`, `duplicate_of`",
            "dropped: non-embedding counts, step/epoch bookkeeping, sweep ids",
        ],
        curation=[
            f"In sweep {', '.join(sweeps)} (the 17M model) every run appears twice, with "
            "identical N, D and loss to 6 decimals but often different `peak_lr` labels. "
            f"{int(conflict.sum())} rows ({int(conflict.sum()) // 2} runs) carry conflicting "
            "learning rates: `lr_conflict` = True, excluded by `load` (their family is "
            f"unknown). {n_dup} rows repeat another row with the same label: `duplicate_of` = "
            "the first record's run id, excluded by `load`.",
        ],
    )


# ---------------------------------------------------------------------------
# benchmark evaluations
# ---------------------------------------------------------------------------


def build_open_llm(shared: Path) -> Built:
    src = "sloth/data_v2.csv"
    d = read(shared, src)
    tt = read(shared, "sloth/training_tokens.csv")
    tokens = d["Pretraining Data Size (T)"].astype(float).copy()
    lookup = dict(zip(tt["Model"], tt["Tokens (T)"], strict=True))
    missing = tokens.isna()
    fill = d.loc[missing, "Model"].map(lookup)
    filled = int(fill.notna().sum())
    tokens[missing] = fill.to_numpy(dtype=float)
    params = d["#Params (B)"].astype(float) * 1e9
    flops = d["FLOPs (1E21)"].astype(float) * 1e21
    flops = flops.where(flops.notna(), 6.0 * params * tokens * 1e12)
    ids = pd.DataFrame(
        {
            "model": d["Model"].astype(str),
            "family": d["Family"].astype(str),
            "subfamily": d["Family2"].astype(str),
            "instruct": d["Instruct"].astype(bool),
            "params": params,
            "tokens": tokens * 1e12,
            "flops": flops,
        }
    )
    frame = wide_frame(ids, d, {b: b for b in ds.OPEN_LLM_BENCHMARKS})
    groups = json.loads((shared / "sloth/test_groups.json").read_text())
    floors = groups["chance_floor"]
    if {k: float(v) for k, v in floors.items()} != ds.OPEN_LLM_CHANCE:
        raise SystemExit("error: bayescale.datasets.OPEN_LLM_CHANCE differs from test_groups.json")
    no_size = ids[ids["params"].isna() | ids["tokens"].isna()]
    n_v1 = int(d[list(ds.OPEN_LLM_BENCHMARKS[:6])].notna().all(axis=1).sum())
    n_v2 = int(d[list(ds.OPEN_LLM_BENCHMARKS[6:])].notna().all(axis=1).sum())
    return Built(
        name="open-llm-leaderboard",
        frame=frame,
        inputs=[
            f"`{src}` ({len(d)} rows, {d.shape[1]} columns)",
            "`sloth/training_tokens.csv` (hand-collected token counts, checked for gaps)",
            "`sloth/test_groups.json` (`chance_floor`)",
        ],
        derived=[
            "wide table, one row per model: `model` = `Model`, `family` = `Family`, "
            "`subfamily` = `Family2` (the family of Sloth's leave-family-out protocol), "
            "`instruct` = `Instruct`",
            "`params` = `#Params (B)` x 1e9, `tokens` = `Pretraining Data Size (T)` x 1e12, "
            "`flops` = `FLOPs (1E21)` x 1e21 (= 6 N D in the source)",
            "the 12 headline benchmarks "
            + ", ".join(ds.OPEN_LLM_BENCHMARKS)
            + f" (scores 0-1; empty = not evaluated; {n_v1} models have all 6 v1 scores, "
            f"{n_v2} all 6 v2 scores); `load` gives the long table without empty cells",
            "chance floors from `test_groups.json`: "
            + ", ".join(f"{k} {v:g}" for k, v in ds.OPEN_LLM_CHANCE.items()),
            "dropped: sub-task columns (BBH/MATH/GPQA/MUSR/MMLU subjects), XWinograd, "
            "HumanEval, Arena-Elo, MT-Bench, dates",
        ],
        curation=[
            f"{len(no_size)} models lack a token count in data_v2.csv; training_tokens.csv "
            f"fills {filled} of them (it has no value for any). `load` puts them in "
            "`excluded` (reason stated): " + ", ".join(f"`{m}`" for m in no_size["model"]) + ".",
        ],
        notes=[
            "Values are kept as Sloth published them, so the leave-family-out reference "
            "errors in sloth/PROTOCOL.md stay comparable. Suspect values NOT corrected: "
            "`#Params (B)` is read off model names and often rounded or wrong "
            "(stablelm-2-1_6b 6.0 for 1.6B, rwkv-4-1b5-pile 1.0 for 1.5B, bloom-7b1 7.0, "
            "llama-30b 30 for 32.5B, Mixtral 7 / 22 = one expert, not 46.7B / 141B total); "
            "Pythia and dolly-v2 token counts mix 0.25 T and 0.3 T (all Pythia models saw "
            "~0.3 T); codellama-7b/13b/34b-instruct lack tokens although their base models "
            "have 2.52 T.",
            "v1 scores are identical to ObsScaling's for the 86 models in both collections.",
        ],
    )


OBS_SRC = "obsscaling/base_llm_benchmark_eval.csv"
#: (model, column, known wrong value, corrected value, why)
OBS_CORRECTIONS = [
    (
        "cerebras/btlm-3b-8k-base",
        "Pretraining Data Size (T)",
        627.0,
        0.627,
        "627 T should be 0.627 T (627B tokens of SlimPajama); FLOPs recomputed",
    ),
    (
        "openlm-research/open_llama_7b_v2",
        "Model Size (B)",
        13.0,
        7.0,
        "listed as 13B; it is the 7B model; FLOPs recomputed",
    ),
    (
        "mistralai/Mixtral-8x7B-v0.1",
        "Model Size (B)",
        45.0,
        46.7,
        "MoE convention = total parameters (46.7B per the model card; 12.9B active)",
    ),
    (
        "deepseek-ai/deepseek-moe-16b-base",
        "Model Size (B)",
        16.0,
        16.4,
        "MoE convention = total parameters (16.4B per the model card; 2.8B active); FLOPs "
        "recomputed",
    ),
]
#: active parameters of the mixture-of-experts models (B)
OBS_ACTIVE = {"mistralai/Mixtral-8x7B-v0.1": 12.9, "deepseek-ai/deepseek-moe-16b-base": 2.8}


def obs_base(shared: Path) -> pd.DataFrame:
    """ObsScaling's base-model table with the corrections applied (units as in the source)."""
    b = read(shared, OBS_SRC)
    for model, column, old, new, _why in OBS_CORRECTIONS:
        correct(b, "Model", model, column, old, new)
    fixed = b["Model"].isin([c[0] for c in OBS_CORRECTIONS])
    b.loc[fixed, "FLOPs (1E21)"] = (
        6.0 * b.loc[fixed, "Model Size (B)"] * b.loc[fixed, "Pretraining Data Size (T)"]
    )
    return b


def obs_ids(b: pd.DataFrame) -> pd.DataFrame:
    params = b["Model Size (B)"].astype(float) * 1e9
    active = b["Model"].map(OBS_ACTIVE).astype(float) * 1e9
    return pd.DataFrame(
        {
            "model": b["Model"].astype(str),
            "family": b["Model Family"].astype(str),
            "params": params,
            "tokens": b["Pretraining Data Size (T)"].astype(float) * 1e12,
            "flops": b["FLOPs (1E21)"].astype(float) * 1e21,
            "active_params": active.where(active.notna(), params),
        }
    )


OBS_DERIVED = [
    "wide table, one row per model: `model` = `Model` (Hugging Face id), `family` = "
    "`Model Family` (no sub-families; all base models, `instruct` False)",
    "`params` = `Model Size (B)` x 1e9 (MoE: total parameters), `tokens` = `Pretraining "
    "Data Size (T)` x 1e12, `flops` = `FLOPs (1E21)` x 1e21 (= 6 N D; for MoE models this "
    "uses total parameters, as the source does, and overstates training compute, which is "
    "about 6 x active x D), `active_params` (= `params` for dense models)",
]


def obs_corrections(models: set[str]) -> list[str]:
    out = []
    for model, column, old, new, why in OBS_CORRECTIONS:
        if model in models:
            out.append(f"`{model}`: `{column}` {old:g} -> {new:g} ({why})")
    return out or ["none of the corrected models is in this table"]


def obs_excluded(ids: pd.DataFrame) -> str:
    no = ids[ids["tokens"].isna()]
    return (
        f"{len(no)} models have no pretraining-token count (so no FLOPs) in the source; "
        "`load` puts them in `excluded`: " + ", ".join(f"`{m}`" for m in no["model"]) + "."
    )


def build_obs(shared: Path) -> Built:
    b = obs_base(shared)
    ids = obs_ids(b)
    frame = wide_frame(ids, b, {x: x for x in ds.OBS_BENCHMARKS})
    return Built(
        name="observational-scaling",
        frame=frame,
        inputs=[f"`{OBS_SRC}` ({len(b)} rows)"],
        derived=[
            *OBS_DERIVED,
            "the 8 benchmarks " + ", ".join(ds.OBS_BENCHMARKS) + " (scores 0-1, empty = not "
            "evaluated)",
            "chance floors: MMLU 0.25 (4-option multiple choice); ARC-C 0.25 (multiple "
            "choice, almost all items 4 options); HellaSwag 0.25 (4 candidate endings); "
            "Winograd (WinoGrande) 0.5 and XWinograd 0.5 (2 options); GSM8K 0 (free-form "
            "numeric answer, exact match); HumanEval 0 (generated code, pass@1); TruthfulQA "
            "0.31: the scores are the Open LLM Leaderboard v1 metric, TruthfulQA MC2 "
            "(0-shot, normalised probability mass on the true reference answers; they equal "
            "Sloth's values for the shared models), and 0.31 is Sloth's floor for it, about "
            "the lowest score in either collection (min 0.316). A uniform-guess value is not "
            "a floor models respect: MC2 falls as models grow (imitative falsehoods) "
            "before it rises.",
        ],
        corrections=obs_corrections(set(b["Model"])),
        curation=[obs_excluded(ids)],
        notes=[
            "Mistral-7B-v0.1 and Mixtral-8x7B-v0.1 have no FLOPs, so ObsScaling's FLOPs "
            "cut-off split puts them in the test set (its `split_data` sends missing values "
            "to test): the reference '47 train / 30 test of the 77-model core set' counts "
            "them. Here they are in `excluded` (with their scores), since the canonical table "
            "needs a token count.",
        ],
    )


def build_obs_emergent(shared: Path) -> Built:
    src = "obsscaling/base_llm_emergent_capability_eval.csv"
    e = read(shared, src)
    b = obs_base(shared)
    ids = obs_ids(b).set_index("model").loc[e["Model"]].reset_index()
    cols = {
        "parsinlu_qa_2_acc": "parsinlu_qa",
        "word_unscrambling_2_exact_match": "word_unscrambling",
        "ipa_transliterate_2_exact_match": "ipa_transliterate",
        "arithmetic_3ds_2_acc": "arithmetic_3ds",
        "arithmetic_3da_2_acc": "arithmetic_3da",
        "arithmetic_2dm_2_acc": "arithmetic_2dm",
        "arithmetic_2da_2_acc": "arithmetic_2da",
    }
    assert tuple(cols.values()) == ds.OBS_EMERGENT_BENCHMARKS
    frame = wide_frame(ids, e, cols)
    return Built(
        name="observational-scaling-emergent",
        frame=frame,
        inputs=[f"`{src}` ({len(e)} rows)", f"`{OBS_SRC}` (model metadata, joined on `Model`)"],
        derived=[
            *OBS_DERIVED,
            "benchmarks (2-shot BIG-Bench tasks): "
            + ", ".join(f"`{v}` = `{k}`" for k, v in cols.items()),
            "dropped: `ipa_transliterate_2_bleu` (BLEU on a 0-100 scale, same task as "
            "`ipa_transliterate`)",
            "chance floors: parsinlu_qa 0.25 (4-option multiple choice; lowest score 0.23); "
            "0 for the others (answers are generated and exact-matched; scores go down to "
            "0.0)",
        ],
        corrections=obs_corrections(set(e["Model"])),
        curation=[obs_excluded(ids)],
    )


def build_obs_post(shared: Path) -> Built:
    src = "obsscaling/base_llm_post_training_eval.csv"
    p = read(shared, src)
    b = obs_base(shared)
    cols = {
        "gsm8k_5_exact_match,flexible-extract": "GSM8K naive",
        "gsm8k_cot_8_exact_match,flexible-extract": "GSM8K CoT",
        "gsm8k_cot_self_consistency_8_exact_match,maj@5-flexible-extract": "GSM8K CoT-SC",
        "bbh_fewshot_overall_3_exact_match,flexible-extract": "BBH",
        "bbh_cot_fewshot_overall_3_exact_match,flexible-extract": "BBH CoT",
    }
    assert tuple(cols.values()) == ds.OBS_POST_BENCHMARKS
    empty = p[list(cols)].isna().all(axis=1)
    dropped = p.loc[empty, "Model"].tolist()
    p = p[~empty].reset_index(drop=True)
    ids = obs_ids(b).set_index("model").loc[p["Model"]].reset_index()
    frame = wide_frame(ids, p, cols)
    return Built(
        name="observational-scaling-post-training",
        frame=frame,
        inputs=[
            f"`{src}` ({len(p) + len(dropped)} rows, 235 columns)",
            f"`{OBS_SRC}` (model metadata, joined on `Model`)",
        ],
        derived=[
            *OBS_DERIVED,
            "benchmarks (the aggregate headline columns; `flexible-extract` answer parsing "
            "throughout, since `strict-match` scores BBH without CoT as ~0): "
            + "; ".join(f"`{v}` = `{k}`" for k, v in cols.items()),
            "GSM8K naive = 5-shot direct answer, CoT = 8-shot chain of thought, CoT-SC = "
            "8-shot CoT with self-consistency (majority of 5 samples); BBH = 3-shot without / "
            "with CoT, mean of the 27 sub-task accuracies",
            "dropped: the 27 x 2 x 4 BBH sub-task columns, zero-shot CoT, `score-first` "
            "variants and the chance-normalised `,norm` columns (negative values)",
            f"chance floors: GSM8K 0 (free-form answer); BBH {ds.BBH_OVERALL_CHANCE} = mean "
            "over the 27 sub-tasks of their random-guess accuracy (ObsScaling's "
            "`BBH_SUBTASKS2RANDOM_VAL`; the overall score is the unweighted sub-task mean, "
            "checked against the sub-task columns)",
        ],
        corrections=obs_corrections(set(p["Model"])),
        curation=[
            f"{len(dropped)} models have no score in any of these columns and are not "
            "shipped: " + ", ".join(f"`{m}`" for m in dropped) + ".",
            obs_excluded(ids),
        ],
    )


def build_obs_v2(shared: Path) -> Built:
    src = "obsscaling/base_llm_leaderboard_v2_eval.csv"
    v = read(shared, src)
    b = obs_base(shared)
    ids = obs_ids(b).set_index("model").loc[v["Model"]].reset_index()
    cols = {
        "leaderboard_ifeval": "IFEval",
        "leaderboard_bbh": "BBH",
        "leaderboard_math_hard": "MATH Lvl 5",
        "leaderboard_gpqa": "GPQA",
        "leaderboard_musr": "MUSR",
        "leaderboard_mmlu_pro": "MMLU-PRO",
    }
    assert tuple(cols.values()) == ds.OBS_V2_BENCHMARKS
    frame = wide_frame(ids, v, cols)
    return Built(
        name="observational-scaling-leaderboard-v2",
        frame=frame,
        inputs=[f"`{src}` ({len(v)} rows)", f"`{OBS_SRC}` (model metadata, joined on `Model`)"],
        derived=[
            *OBS_DERIVED,
            "benchmarks renamed to the Open LLM Leaderboard v2 names: "
            + ", ".join(f"`{v}` = `{k}`" for k, v in cols.items())
            + " (raw accuracies 0-1, not the leaderboard's chance-normalised scores)",
            "chance floors as Sloth's for the same tasks: "
            + ", ".join(f"{k} {v:g}" for k, v in ds.OBS_V2_CHANCE.items()),
        ],
        corrections=obs_corrections(set(v["Model"])),
        curation=[obs_excluded(ids)],
    )


BUILDERS = {
    "chinchilla": build_chinchilla,
    "open-llm-leaderboard": build_open_llm,
    "observational-scaling": build_obs,
    "observational-scaling-emergent": build_obs_emergent,
    "observational-scaling-post-training": build_obs_post,
    "observational-scaling-leaderboard-v2": build_obs_v2,
    "porian-recipes": build_porian,
    "datablations": build_datablations,
    "gadre-overtrain": build_gadre,
    "misfitting": build_misfitting,
}


# ---------------------------------------------------------------------------
# SOURCES.md
# ---------------------------------------------------------------------------

HEADER = """\
# Sources of the shipped datasets

Written by `scripts/build_datasets.py` from the public data in `../shared/data`; do not
edit by hand (rebuild instead). The tables hold facts only (model names, families, sizes,
token counts, FLOPs, scores, losses), in raw units (7e9 parameters, not 7), floats to 10
significant digits. Benchmark tables are stored wide (one row per model, one column per
benchmark); `bayescale.datasets.load` returns the long canonical table, without empty
cells. Rows a documented rule leaves out are never dropped silently: `load` returns them in
`excluded` with a `reason`, and `load(name, include_excluded=True)` puts back those that
have every required value.

"""


def plural(n: int, word: str) -> str:
    if n == 1:
        return f"1 {word}"
    return f"{n} {word[:-1] + 'ies' if word.endswith('y') else word + 's'}"


def describe(built: Built, shipped: pd.DataFrame, loaded, meta) -> str:
    frame = built.frame
    lines = [f"## `{built.name}` (`{meta.file}`)", ""]
    lines.append(f"- **Source**: {meta.source}.")
    lines.append(f"- **Licence**: {meta.licence}.")
    lines.append("- **Input**: " + "; ".join(built.inputs) + ".")
    if isinstance(loaded, BenchmarkEvals):
        n_models = len(loaded.models)
        n_exc = loaded.excluded["model"].nunique() if len(loaded.excluded) else 0
        n_sub = loaded.table["subfamily"].nunique()
        subfamilies = f" ({n_sub} sub-families)" if n_sub != len(loaded.families) else ""
        lines.append(
            f"- **Rows**: {len(frame)} models shipped; `load` gives {n_models} models, "
            f"{len(loaded.benchmarks)} benchmarks, {len(loaded.table)} scores, "
            f"{plural(len(loaded.families), 'family')}{subfamilies}; "
            f"{plural(n_exc, 'model')} excluded."
        )
    else:
        lines.append(
            f"- **Rows**: {len(frame)} runs shipped; `load` gives {len(loaded.table)} runs in "
            f"{plural(len(loaded.families), 'family')}; {len(loaded.excluded)} excluded."
        )
    lines.append("- **Derived**:")
    lines += [f"  - {x}" for x in built.derived]
    lines.append("- **Corrections**:" + (" none." if not built.corrections else ""))
    lines += [f"  - {x}" for x in built.corrections]
    if meta.exclusions:
        lines.append("- **Excluded by `load`**:")
        for rule in meta.exclusions:
            n = int(np.asarray(rule.select(shipped), dtype=bool).sum())
            unit = "model" if meta.kind == "benchmark" else "row"
            lines.append(f"  - {plural(n, unit)}: {rule.reason}.")
    if built.curation:
        lines.append("- **Curation**:")
        lines += [f"  - {x}" for x in built.curation]
    if built.notes:
        lines.append("- **Notes**:")
        lines += [f"  - {x}" for x in built.notes]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="public data folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    args = parser.parse_args(argv)
    shared = args.shared.resolve()
    if not shared.is_dir():
        print(f"error: shared data folder {shared} not found", file=sys.stderr)
        return 2
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    sections = []
    summary = []
    for name, builder in BUILDERS.items():
        meta = ds.DATASETS[name]
        built = builder(shared)
        path = out / meta.file
        atomic_write_csv(path, built.frame)
        shipped = ds._read_csv(path)
        loaded = ds._build(meta, shipped)  # validates the table as load() will
        sections.append(describe(built, shipped, loaded, meta))
        summary.append((name, len(built.frame), loaded))
    rows = [
        "| dataset | file | kind | shipped | after `load` | excluded by `load` | families |"
        " licence |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, shipped_rows, loaded in summary:
        meta = ds.DATASETS[name]
        if isinstance(loaded, BenchmarkEvals):
            n_exc = loaded.excluded["model"].nunique() if len(loaded.excluded) else 0
            cells = (
                f"{shipped_rows} models",
                f"{len(loaded.models)} models, {len(loaded.table)} scores",
                f"{n_exc} models",
            )
        else:
            cells = (
                f"{shipped_rows} runs",
                f"{len(loaded.table)} runs",
                f"{len(loaded.excluded)} runs",
            )
        rows.append(
            f"| `{name}` | `{meta.file}` | {meta.kind} | {' | '.join(cells)} | "
            f"{len(loaded.families)} | {meta.licence.split(';')[0]} |"
        )
    note = "\n\n"
    atomic_write_text(out / "SOURCES.md", HEADER + "\n".join(rows) + note + "\n".join(sections))
    if not args.quiet:
        for name, shipped_rows, loaded in summary:
            print(
                f"{name:38s} shipped {shipped_rows:5d}  load {len(loaded.table):5d}  "
                f"excluded {len(loaded.excluded):4d}  families {len(loaded.families):3d}"
            )
        print(f"wrote {len(summary)} tables and SOURCES.md to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
