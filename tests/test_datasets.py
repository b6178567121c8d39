"""Tests of bayescale.datasets: the shipped tables load, validate and match their build."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayescale import datasets as ds
from bayescale.data import BenchmarkEvals, LossRuns, read_data
from bayescale.errors import DataError

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared" / "data"
SCRIPT = PROJECT / "scripts" / "build_datasets.py"


@pytest.fixture(scope="module")
def loaded() -> dict[str, LossRuns | BenchmarkEvals]:
    return {name: ds.load(name) for name in ds.NAMES}


@pytest.mark.parametrize("name", ds.NAMES)
def test_every_dataset_loads_and_validates(loaded, name):
    data = loaded[name]
    meta = ds.DATASETS[name]
    assert data.kind == meta.kind
    assert data.source == f"dataset:{name}"
    assert len(data.table) > 0
    assert data.families
    # the canonical table re-validates through the generic reader
    again = read_data(data.table)
    assert type(again) is type(data)
    assert len(again.table) == len(data.table)
    if len(data.excluded):
        assert data.excluded["reason"].map(lambda r: isinstance(r, str) and len(r) > 10).all()
    if isinstance(data, BenchmarkEvals):
        assert not data.chance_floors().isna().any()
        assert data.table["score"].between(0, 1).all()
        assert not data.table.duplicated(["model", "benchmark"]).any()
    else:
        assert (data.table[["params", "tokens", "flops", "loss"]] > 0).all().all()


def test_chinchilla(loaded):
    runs = loaded["chinchilla"]
    assert len(runs.table) == 240
    assert len(runs.excluded) == 5
    assert runs.families == ["chinchilla"]
    assert (runs.excluded["reason"].str.contains("5 highest-loss")).all()
    assert runs.excluded["loss"].min() > runs.table["loss"].max()
    assert not runs.table["outlier"].any()
    t = runs.table
    np.testing.assert_allclose(t["flops"], 6 * t["params"] * t["tokens"], rtol=1e-8)
    full = ds.load("chinchilla", include_excluded=True)
    assert len(full.table) == 245 and full.excluded.empty
    assert full.table["outlier"].sum() == 5


def test_open_llm_leaderboard(loaded):
    evals = loaded["open-llm-leaderboard"]
    assert evals.benchmarks == list(ds.OPEN_LLM_BENCHMARKS)
    assert len(evals.benchmarks) == 12
    assert len(evals.models) == 175
    excluded_models = evals.excluded["model"].unique().tolist()
    assert len(excluded_models) == 13
    assert {"qwen1.5-110b", "mixtral-8x7b-v0.1", "gpt2"} <= set(excluded_models)
    assert len(evals.models) + len(excluded_models) == 188
    assert evals.excluded["tokens"].isna().all()
    assert evals.chance_floors().to_dict() == ds.OPEN_LLM_CHANCE
    models = evals.models
    assert models["instruct"].dtype == bool and models["instruct"].any()
    assert models["subfamily"].nunique() > models["family"].nunique()
    assert "flops" in models.columns
    # no NaN rows for missing cells
    assert not evals.table["score"].isna().any()
    assert len(evals.table) < 12 * 175
    # the excluded list does not come back with include_excluded (no token count)
    assert len(ds.load("open-llm-leaderboard", include_excluded=True).table) == len(evals.table)


def test_open_llm_chance_floors_match_sloth_protocol():
    groups = SHARED / "sloth" / "test_groups.json"
    if not groups.exists():
        pytest.skip(f"public data not found at {SHARED}")
    floors = json.loads(groups.read_text())["chance_floor"]
    assert {k: float(v) for k, v in floors.items()} == ds.OPEN_LLM_CHANCE


def test_observational_scaling_corrections(loaded):
    evals = loaded["observational-scaling"]
    assert evals.benchmarks == list(ds.OBS_BENCHMARKS)
    models = evals.models.set_index("model")
    btlm = models.loc["cerebras/btlm-3b-8k-base"]
    assert btlm["tokens"] == pytest.approx(0.627e12)
    assert btlm["flops"] == pytest.approx(6 * 3e9 * 0.627e12)
    assert models.loc["openlm-research/open_llama_7b_v2", "params"] == 7e9
    moe = models.loc["deepseek-ai/deepseek-moe-16b-base"]
    assert moe["params"] == pytest.approx(16.4e9) and moe["active_params"] == pytest.approx(2.8e9)
    # the observational protocol's cut-off model sits exactly on 84e21 FLOPs
    assert models.loc["meta-llama/Llama-2-7b-hf", "flops"] == 84e21
    excluded = evals.excluded.drop_duplicates("model").set_index("model")
    assert len(excluded) == 16
    assert excluded.loc["mistralai/Mixtral-8x7B-v0.1", "params"] == pytest.approx(46.7e9)
    assert len(evals.models) + len(excluded) == 128


def test_observational_scaling_companions(loaded):
    post = loaded["observational-scaling-post-training"]
    assert post.benchmarks == list(ds.OBS_POST_BENCHMARKS)
    assert "tiiuae/falcon-180B" not in set(post.table["model"])
    assert post.chance_floors()["BBH"] == pytest.approx(0.2624)
    v2 = loaded["observational-scaling-leaderboard-v2"]
    assert v2.benchmarks == list(ds.OBS_V2_BENCHMARKS)
    assert len(v2.models) == 47 and v2.excluded["model"].nunique() == 8
    emergent = loaded["observational-scaling-emergent"]
    assert len(emergent.benchmarks) == 7
    assert len(emergent.models) == 63
    base = loaded["observational-scaling"].models.set_index("model")
    cols = ["family", "params", "tokens"]
    for evals in (post, v2, emergent):
        joined = evals.models.set_index("model")[cols]
        pd.testing.assert_frame_equal(joined, base.loc[joined.index, cols])


def test_porian_recipes(loaded):
    runs = loaded["porian-recipes"]
    assert len(runs.families) == 8
    assert (runs.table["loss_split"] == "val").all()
    assert (runs.excluded["loss_split"] == "train").all()
    assert len(runs.table) + len(runs.excluded) == 1745
    assert len(ds.load("porian-recipes", include_excluded=True).families) == 15


def test_loss_collections(loaded):
    db = loaded["datablations"]
    assert len(db.table) == 296 and db.families == ["c4"]
    assert {"unique_tokens", "epochs", "seed"} <= set(db.table.columns)
    gadre = loaded["gadre-overtrain"]
    assert gadre.families == ["c4_original", "rpj", "rw_original"]
    mis = loaded["misfitting"]
    assert len(mis.table) == 227 and len(mis.excluded) == 34
    assert not mis.table.duplicated(["params", "tokens", "family"]).any()
    assert not mis.table["lr_conflict"].any()
    assert mis.families == ["lr=0.0004", "lr=0.001", "lr=0.002", "lr=0.004", "lr=0.008"]


def test_unknown_dataset_lists_names():
    with pytest.raises(DataError) as info:
        ds.load("chinchila")
    msg = str(info.value)
    assert "chinchila" in msg
    for name in ds.NAMES:
        assert name in msg


def test_resolve(tmp_path, loaded):
    assert len(ds.resolve("chinchilla").table) == 240
    frame = loaded["gadre-overtrain"].table
    assert isinstance(ds.resolve(frame), LossRuns)
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    assert len(ds.resolve(path).table) == len(frame)
    assert ds.resolve(loaded["chinchilla"]) is loaded["chinchilla"]
    with pytest.raises(DataError, match="neither a shipped dataset"):
        ds.resolve("no-such-thing")


def test_list_datasets(loaded):
    table = ds.list_datasets()
    assert table.columns.tolist() == [
        "name",
        "kind",
        "rows",
        "families",
        "description",
        "source",
        "licence",
    ]
    assert table["name"].tolist() == list(ds.NAMES)
    rows = dict(zip(table["name"], table["rows"], strict=True))
    assert rows["chinchilla"] == 240
    assert rows["open-llm-leaderboard"] == len(loaded["open-llm-leaderboard"].table)
    assert table["licence"].str.len().gt(0).all()


def test_sources_md_documents_every_table():
    text = (ds.DATA_DIR / "SOURCES.md").read_text()
    for meta in ds.DATASETS.values():
        assert f"`{meta.file}`" in text
        assert meta.path.exists()
        assert meta.licence.split(";")[0] in text


@pytest.mark.shared_data
@pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"public data not found at {SHARED} (../shared/data)"
)
def test_rebuild_matches_shipped_tables(tmp_path):
    build = runpy.run_path(str(SCRIPT), run_name="build_datasets")
    assert build["main"](["--shared", str(SHARED), "--out", str(tmp_path), "--quiet"]) == 0
    for meta in ds.DATASETS.values():
        rebuilt = ds._read_csv(tmp_path / meta.file)
        shipped = ds._read_csv(meta.path)
        pd.testing.assert_frame_equal(rebuilt, shipped, check_exact=True, obj=meta.file)
    assert (tmp_path / "SOURCES.md").read_text() == (ds.DATA_DIR / "SOURCES.md").read_text()
    assert not list(tmp_path.glob("*.tmp"))
