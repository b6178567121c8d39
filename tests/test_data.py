"""Tests of bayescale.data: canonical tables, readers and validation errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayescale.data import (
    BENCHMARK_COLUMNS,
    LOSS_COLUMNS,
    BenchmarkEvals,
    LossRuns,
    WideTable,
    check_known_families,
    check_min_families,
    check_min_rows,
    read_benchmark_evals,
    read_data,
    read_loss_runs,
    read_prediction_rows,
)
from bayescale.errors import BayescaleError, DataError

LOSS_CSV = """\
run,family,params,tokens,loss
a,small,1e6,1e9,4.0
b,small,2e6,2e9,3.5
c,big,4e6,4e9,3.1
"""

BENCH_CSV = """\
model,family,params,tokens,benchmark,score
m1,f,1e9,1e12,MMLU,0.30
m1,f,1e9,1e12,ARC,0.40
m2,g,2e9,1e12,MMLU,0.50
"""


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(func, *args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        func(*args, **kwargs)
    assert isinstance(info.value, BayescaleError)
    return str(info.value)


def assert_names(message: str, *parts: str) -> None:
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"


def loss_frame(**changes) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "family": ["s", "s", "b"],
            "params": [1e6, 2e6, 4e6],
            "tokens": [1e9, 2e9, 4e9],
            "loss": [4.0, 3.5, 3.1],
        },
        index=["r1", "r2", "r3"],
    )
    for col, (label, value) in changes.items():
        df[col] = df[col].astype(object)
        df.loc[label, col] = value
    return df


def bench_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": ["m1", "m1", "m2"],
            "family": ["f", "f", "g"],
            "params": [1e9, 1e9, 2e9],
            "tokens": [1e12, 1e12, 1e12],
            "benchmark": ["MMLU", "ARC", "MMLU"],
            "score": [0.3, 0.4, 0.5],
        }
    )


# ---------------------------------------------------------------------------
# loss runs: happy paths
# ---------------------------------------------------------------------------


def test_loss_csv_reads_canonical_table(tmp_path):
    path = write(tmp_path, LOSS_CSV)
    runs = read_loss_runs(path)
    assert isinstance(runs, LossRuns)
    assert runs.kind == "loss"
    assert list(runs.table.columns) == list(LOSS_COLUMNS)
    assert runs.source == str(path)
    assert runs.families == ["big", "small"]
    assert runs.table["run"].tolist() == ["a", "b", "c"]
    assert runs.excluded.empty and "reason" in runs.excluded.columns
    assert runs.lines == [2, 3, 4]


def test_loss_flops_default_to_6nd_and_family_to_all():
    df = pd.DataFrame({"params": [1e6, 2e6], "tokens": [1e9, 3e9], "loss": [3.0, 2.5]})
    runs = read_loss_runs(df)
    np.testing.assert_allclose(runs.table["flops"], [6e15, 3.6e16])
    assert runs.table["family"].tolist() == ["all", "all"]
    assert runs.families == ["all"]
    assert runs.table["run"].tolist() == ["r0", "r1"]
    assert runs.source == "<DataFrame>"


def test_loss_flops_given_are_kept_and_empty_cells_filled(tmp_path):
    text = "params,tokens,loss,flops\n1e6,1e9,3,7e15\n2e6,2e9,2.5,\n"
    runs = read_loss_runs(write(tmp_path, text))
    np.testing.assert_allclose(runs.table["flops"], [7e15, 2.4e16])


def test_loss_extra_columns_kept_after_canonical(tmp_path):
    text = "lr,params,tokens,loss,note\n0.001,1e6,1e9,3,x\n0.002,2e6,2e9,2.5,y\n"
    runs = read_loss_runs(write(tmp_path, text))
    assert list(runs.table.columns) == [*LOSS_COLUMNS, "lr", "note"]
    assert runs.table["note"].tolist() == ["x", "y"]
    np.testing.assert_allclose(runs.table["lr"], [0.001, 0.002])


def test_loss_numeric_ids_stay_text(tmp_path):
    text = "run,family,params,tokens,loss\n001,7,1e6,1e9,3\n"
    runs = read_loss_runs(write(tmp_path, text))
    assert runs.table["run"].tolist() == ["001"]
    assert runs.table["family"].tolist() == ["7"]


def test_loss_parquet_round_trip(tmp_path):
    runs = read_loss_runs(write(tmp_path, LOSS_CSV))
    path = tmp_path / "runs.parquet"
    runs.table.to_parquet(path)
    again = read_loss_runs(path)
    pd.testing.assert_frame_equal(again.table, runs.table)
    assert again.source == str(path)


def test_trailing_blank_lines_are_not_rows(tmp_path):
    runs = read_loss_runs(write(tmp_path, LOSS_CSV + "\n\n"))
    assert len(runs.table) == 3


# ---------------------------------------------------------------------------
# loss runs: errors (file input names file, line, column, problem)
# ---------------------------------------------------------------------------


def test_missing_required_column(tmp_path):
    path = write(tmp_path, "params,tokens\n1e6,1e9\n")
    msg = error_of(read_loss_runs, path)
    assert_names(msg, str(path), "column 'loss'", "missing required column", "params, tokens")


def test_non_numeric_value(tmp_path):
    path = write(tmp_path, "params,tokens,loss\n1e6,1e9,3\n2e6,7B,2\n")
    msg = error_of(read_loss_runs, path)
    assert_names(msg, str(path), "line 3", "column 'tokens'", "non-numeric", "'7B'")


def test_missing_value(tmp_path):
    path = write(tmp_path, "params,tokens,loss\n1e6,1e9,3\n2e6,2e9,2\n,3e9,1.9\n")
    msg = error_of(read_loss_runs, path)
    assert_names(msg, str(path), "line 4", "column 'params'", "missing value")


def test_nan_text_is_missing(tmp_path):
    path = write(tmp_path, "params,tokens,loss\n1e6,1e9,NaN\n")
    msg = error_of(read_loss_runs, path)
    assert_names(msg, "line 2", "column 'loss'", "missing value")


def test_infinite_value(tmp_path):
    path = write(tmp_path, "params,tokens,loss\n1e6,1e9,inf\n")
    msg = error_of(read_loss_runs, path)
    assert_names(msg, str(path), "line 2", "column 'loss'", "infinite")


@pytest.mark.parametrize("col", ["params", "tokens", "loss"])
def test_non_positive_values(tmp_path, col):
    values = {"params": "1e6", "tokens": "1e9", "loss": "3"}
    rows = ["params,tokens,loss", "1e6,1e9,3"]
    values[col] = "0"
    rows.append(",".join(values[c] for c in ("params", "tokens", "loss")))
    values[col] = "-2"
    rows.append(",".join(values[c] for c in ("params", "tokens", "loss")))
    path = write(tmp_path, "\n".join(rows) + "\n")
    msg = error_of(read_loss_runs, path)
    assert_names(msg, str(path), "lines 3, 4", f"column '{col}'", "non-positive", "> 0")


def test_non_positive_flops(tmp_path):
    path = write(tmp_path, "params,tokens,loss,flops\n1e6,1e9,3,-1\n")
    msg = error_of(read_loss_runs, path)
    assert_names(msg, "line 2", "column 'flops'", "non-positive")


def test_missing_family_value(tmp_path):
    path = write(tmp_path, "family,params,tokens,loss\nx,1e6,1e9,3\n,2e6,2e9,2\n")
    msg = error_of(read_loss_runs, path)
    assert_names(msg, "line 3", "column 'family'", "missing value")


def test_blank_line_inside_table_is_reported(tmp_path):
    path = write(tmp_path, "params,tokens,loss\n1e6,1e9,3\n\n2e6,2e9,2\n")
    msg = error_of(read_loss_runs, path)
    assert_names(msg, "line 3", "missing value")


def test_empty_table(tmp_path):
    path = write(tmp_path, "params,tokens,loss\n")
    msg = error_of(read_loss_runs, path)
    assert_names(msg, str(path), "no data rows")


def test_empty_file(tmp_path):
    path = write(tmp_path, "")
    assert_names(error_of(read_loss_runs, path), str(path), "empty")


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    assert_names(error_of(read_loss_runs, path), str(path), "not found")


def test_wrong_extension(tmp_path):
    path = write(tmp_path, LOSS_CSV, name="runs.txt")
    assert_names(error_of(read_loss_runs, path), str(path), "unsupported file type", ".csv")


def test_directory_is_not_a_file(tmp_path):
    assert_names(error_of(read_loss_runs, tmp_path), str(tmp_path), "directory")


def test_unreadable_parquet(tmp_path):
    path = write(tmp_path, "not parquet", name="bad.parquet")
    assert_names(error_of(read_loss_runs, path), str(path), "cannot read parquet")


def test_bad_source_type():
    assert_names(error_of(read_loss_runs, 42), "int", "DataFrame")


# ---------------------------------------------------------------------------
# DataFrame input: index labels, "row"
# ---------------------------------------------------------------------------


def test_dataframe_errors_name_row_labels():
    msg = error_of(read_loss_runs, loss_frame(loss=("r2", -1.0)))
    assert_names(msg, "<DataFrame>", "row r2", "column 'loss'", "non-positive")
    assert "line" not in msg


def test_dataframe_non_numeric():
    msg = error_of(read_loss_runs, loss_frame(tokens=("r3", "lots")))
    assert_names(msg, "<DataFrame>", "row r3", "column 'tokens'", "non-numeric", "'lots'")


def test_dataframe_nan_and_inf():
    msg = error_of(read_loss_runs, loss_frame(params=("r1", np.nan)))
    assert_names(msg, "row r1", "column 'params'", "missing value")
    msg = error_of(read_loss_runs, loss_frame(params=("r1", np.inf)))
    assert_names(msg, "row r1", "column 'params'", "infinite")


def test_dataframe_missing_column_and_empty():
    msg = error_of(read_loss_runs, loss_frame().drop(columns="tokens"))
    assert_names(msg, "<DataFrame>", "column 'tokens'", "missing required column")
    msg = error_of(read_loss_runs, loss_frame().iloc[0:0])
    assert_names(msg, "<DataFrame>", "no data rows")


def test_dataframe_many_rows_are_abbreviated():
    df = pd.DataFrame({"params": [-1.0] * 12, "tokens": [1e9] * 12, "loss": [3.0] * 12})
    msg = error_of(read_loss_runs, df)
    assert_names(msg, "rows 0, 1", "and 2 more", "column 'params'")


def test_input_dataframe_is_not_modified():
    df = loss_frame()
    before = df.copy()
    read_loss_runs(df)
    pd.testing.assert_frame_equal(df, before)


# ---------------------------------------------------------------------------
# benchmark evaluations
# ---------------------------------------------------------------------------


def test_benchmark_csv_reads_canonical_table(tmp_path):
    path = write(tmp_path, BENCH_CSV)
    evals = read_benchmark_evals(path)
    assert isinstance(evals, BenchmarkEvals)
    assert evals.kind == "benchmark"
    t = evals.table
    assert list(t.columns) == list(BENCHMARK_COLUMNS)
    assert t["subfamily"].tolist() == ["f", "f", "g"]
    assert t["instruct"].tolist() == [False] * 3
    assert str(t["n_items"].dtype) == "Int64" and t["n_items"].isna().all()
    assert t["chance"].isna().all()
    assert evals.families == ["f", "g"]
    assert evals.benchmarks == ["MMLU", "ARC"]
    models = evals.models
    assert models.columns.tolist() == [
        "model",
        "family",
        "subfamily",
        "instruct",
        "params",
        "tokens",
    ]
    assert models["model"].tolist() == ["m1", "m2"]
    wide = evals.wide()
    assert wide.loc["m1", "ARC"] == 0.4 and np.isnan(wide.loc["m2", "ARC"])
    assert wide.columns.tolist() == ["MMLU", "ARC"]
    assert evals.chance_floors().isna().all()


def test_benchmark_optional_columns(tmp_path):
    text = (
        "model,family,subfamily,instruct,params,tokens,benchmark,score,n_items,chance,date\n"
        "m1,f,f-base,no,1e9,1e12,MMLU,0.3,14042,0.25,2024\n"
        "m2,f,f-chat,Yes,1e9,1e12,MMLU,0.4,14042,0.25,2024\n"
        "m3,g,g,1,2e9,1e12,GSM8K,0.1,,0,2023\n"
        "m4,g,g,FALSE,2e9,1e12,GSM8K,0.1,1319.0,0,2023\n"
    )
    evals = read_benchmark_evals(write(tmp_path, text))
    t = evals.table
    assert t["instruct"].tolist() == [False, True, True, False]
    assert t["n_items"].tolist()[:2] == [14042, 14042] and pd.isna(t["n_items"].iloc[2])
    assert evals.chance_floors().to_dict() == {"MMLU": 0.25, "GSM8K": 0.0}
    assert list(t.columns)[-1] == "date"
    assert "date" in evals.models.columns


def test_benchmark_parquet_round_trip(tmp_path):
    evals = read_benchmark_evals(write(tmp_path, BENCH_CSV))
    path = tmp_path / "evals.parquet"
    evals.table.to_parquet(path)
    pd.testing.assert_frame_equal(read_benchmark_evals(path).table, evals.table)


def test_score_outside_unit_interval(tmp_path):
    path = write(tmp_path, BENCH_CSV.replace("0.40", "40"))
    msg = error_of(read_benchmark_evals, path)
    assert_names(msg, str(path), "line 3", "column 'score'", "outside [0, 1]")


def test_chance_outside_range(tmp_path):
    text = "model,family,params,tokens,benchmark,score,chance\nm,f,1e9,1e12,B,0.5,1.0\n"
    msg = error_of(read_benchmark_evals, write(tmp_path, text))
    assert_names(msg, "line 2", "column 'chance'", "outside [0, 1)")


@pytest.mark.parametrize("value", ["2.5", "0", "-3", "many"])
def test_n_items_must_be_positive_integer(tmp_path, value):
    text = f"model,family,params,tokens,benchmark,score,n_items\nm,f,1e9,1e12,B,0.5,{value}\n"
    msg = error_of(read_benchmark_evals, write(tmp_path, text))
    expected = "non-numeric" if value == "many" else "not a positive integer"
    assert_names(msg, "line 2", "column 'n_items'", expected)


def test_duplicate_model_benchmark(tmp_path):
    text = BENCH_CSV + "m1,f,1e9,1e12,MMLU,0.35\n"
    path = write(tmp_path, text)
    msg = error_of(read_benchmark_evals, path)
    assert_names(msg, str(path), "lines 2, 5", "duplicate (model, benchmark)", "'m1'", "'MMLU'")
    assert "column 'benchmark'" in msg


@pytest.mark.parametrize(
    ("col", "old", "new"),
    [("params", "m1,f,1e9", "m1,f,3e9"), ("family", "m1,f,1e9", "m1,h,1e9")],
)
def test_inconsistent_model_metadata(tmp_path, col, old, new):
    lines = BENCH_CSV.splitlines()
    lines[2] = lines[2].replace(old, new)
    path = write(tmp_path, "\n".join(lines) + "\n")
    msg = error_of(read_benchmark_evals, path)
    assert_names(msg, str(path), "lines 2, 3", f"column '{col}'", "inconsistent", "'m1'")


def test_inconsistent_tokens(tmp_path):
    text = BENCH_CSV.replace("m1,f,1e9,1e12,ARC", "m1,f,1e9,2e12,ARC")
    msg = error_of(read_benchmark_evals, write(tmp_path, text))
    assert_names(msg, "lines 2, 3", "column 'tokens'", "inconsistent")


def test_inconsistent_chance_per_benchmark(tmp_path):
    text = (
        "model,family,params,tokens,benchmark,score,chance\n"
        "a,f,1e9,1e12,B,0.5,0.25\nb,f,2e9,1e12,B,0.6,0.2\n"
    )
    msg = error_of(read_benchmark_evals, write(tmp_path, text))
    assert_names(msg, "lines 2, 3", "column 'chance'", "different chance")


def test_instruct_not_boolean(tmp_path):
    text = "model,family,params,tokens,benchmark,score,instruct\nm,f,1e9,1e12,B,0.5,maybe\n"
    msg = error_of(read_benchmark_evals, write(tmp_path, text))
    assert_names(msg, "line 2", "column 'instruct'", "not boolean-like", "'maybe'")


def test_benchmark_missing_column_and_empty(tmp_path):
    path = write(tmp_path, BENCH_CSV.replace("benchmark,", "bench,"))
    msg = error_of(read_benchmark_evals, path)
    assert_names(msg, str(path), "column 'benchmark'", "missing required column")
    path = write(tmp_path, BENCH_CSV.splitlines()[0] + "\n", name="empty.csv")
    assert_names(error_of(read_benchmark_evals, path), str(path), "no data rows")


def test_benchmark_dataframe_errors():
    df = bench_frame()
    df.index = ["x", "y", "z"]
    df.loc["z", "score"] = -0.1
    msg = error_of(read_benchmark_evals, df)
    assert_names(msg, "<DataFrame>", "row z", "column 'score'", "outside [0, 1]")
    df = bench_frame()
    df.loc[1, "model"] = None
    assert_names(error_of(read_benchmark_evals, df), "row 1", "column 'model'", "missing value")


# ---------------------------------------------------------------------------
# wide tables
# ---------------------------------------------------------------------------

WIDE_CSV = """\
Model,Family,#Params (B),Tokens (T),MMLU,ARC,Notes
a,fa,7,2,0.5,0.6,x
b,fb,13,2,,0.7,y
c,fb,70,2,0.8,,z
"""


def wide_spec(**kw) -> WideTable:
    args = dict(
        benchmarks={"MMLU": "mmlu", "ARC": "arc"},
        model="Model",
        family="Family",
        params="#Params (B)",
        params_unit=1e9,
        tokens="Tokens (T)",
        tokens_unit=1e12,
        chance={"mmlu": 0.25, "ARC": 0.25},
    )
    args.update(kw)
    return WideTable(**args)


def test_wide_mapping(tmp_path):
    evals = read_benchmark_evals(write(tmp_path, WIDE_CSV), wide=wide_spec())
    t = evals.table
    assert len(t) == 4  # missing cells are absent, not NaN rows
    assert t[["model", "benchmark"]].values.tolist() == [
        ["a", "mmlu"],
        ["a", "arc"],
        ["b", "arc"],
        ["c", "mmlu"],
    ]
    assert t.loc[t["model"] == "c", "params"].item() == 70e9
    assert (t["tokens"] == 2e12).all()
    assert evals.chance_floors().to_dict() == {"mmlu": 0.25, "arc": 0.25}
    assert t["Notes"].tolist() == ["x", "x", "y", "z"]
    assert evals.lines == [2, 2, 3, 4]
    wide = evals.wide()
    assert wide.shape == (3, 2) and np.isnan(wide.loc["b", "mmlu"])


def test_wide_list_of_benchmarks():
    df = pd.DataFrame(
        {"model": ["a"], "family": ["f"], "params": [1e9], "tokens": [1e12], "X": [0.2]}
    )
    evals = read_benchmark_evals(df, wide=WideTable(benchmarks=["X"]))
    assert evals.benchmarks == ["X"]
    assert np.isnan(evals.chance_floors()["X"])


def test_wide_errors_name_source_column_and_line(tmp_path):
    path = write(tmp_path, WIDE_CSV.replace("0.7", "70"))
    msg = error_of(read_benchmark_evals, path, wide=wide_spec())
    assert_names(msg, str(path), "line 3", "column 'ARC'", "outside [0, 1]")
    msg = error_of(read_benchmark_evals, path, wide=wide_spec(benchmarks=["MMLU", "HellaSwag"]))
    assert_names(msg, "column 'HellaSwag'", "missing benchmark column")
    msg = error_of(read_benchmark_evals, path, wide=wide_spec(params="Params"))
    assert_names(msg, "column 'Params'", "params column")


def test_wide_duplicate_model_and_bad_size(tmp_path):
    path = write(tmp_path, WIDE_CSV + "a,fa,7,2,0.5,0.6,w\n")
    msg = error_of(read_benchmark_evals, path, wide=wide_spec())
    assert_names(msg, "lines 2, 5", "column 'Model'", "duplicate model")
    path = write(tmp_path, WIDE_CSV.replace("b,fb,13", "b,fb,-13"), name="neg.csv")
    msg = error_of(read_benchmark_evals, path, wide=wide_spec())
    assert_names(msg, "line 3", "column '#Params (B)'", "non-positive")


def test_wide_model_without_scores_is_an_error(tmp_path):
    path = write(tmp_path, WIDE_CSV + "d,fd,1,1,,,w\n")
    msg = error_of(read_benchmark_evals, path, wide=wide_spec())
    assert_names(msg, str(path), "line 5", "column 'Model'", "'d'", "no score")


def test_wide_bad_chance_mapping(tmp_path):
    path = write(tmp_path, WIDE_CSV)
    msg = error_of(read_benchmark_evals, path, wide=wide_spec(chance={"nope": 0.1}))
    assert_names(msg, "unknown benchmark", "'nope'")
    msg = error_of(read_benchmark_evals, path, wide=wide_spec(chance={"mmlu": 1.0}))
    assert_names(msg, "outside [0, 1)")


# ---------------------------------------------------------------------------
# read_data
# ---------------------------------------------------------------------------


def test_read_data_detects_kind(tmp_path):
    assert isinstance(read_data(write(tmp_path, LOSS_CSV)), LossRuns)
    assert isinstance(read_data(write(tmp_path, BENCH_CSV, name="b.csv")), BenchmarkEvals)
    assert isinstance(read_data(bench_frame()), BenchmarkEvals)


def test_read_data_unrecognised(tmp_path):
    path = write(tmp_path, "a,b\n1,2\n")
    msg = error_of(read_data, path)
    assert_names(msg, str(path), "cannot tell", "params, tokens, loss", "benchmark, score", "a, b")


def test_read_data_ambiguous():
    df = bench_frame().assign(loss=1.0)
    assert_names(error_of(read_data, df), "ambiguous")


# ---------------------------------------------------------------------------
# checks for model builders
# ---------------------------------------------------------------------------


def test_check_min_rows_and_families(tmp_path):
    runs = read_loss_runs(write(tmp_path, LOSS_CSV))
    check_min_rows(runs, 3, "the loss model")
    check_min_families(runs, 2, "the hierarchical model")
    msg = error_of(check_min_rows, runs, 4, "the loss model")
    assert_names(msg, "the loss model needs at least 4", "got 3", str(tmp_path))
    msg = error_of(check_min_families, runs, 3, "the hierarchical model")
    assert_names(msg, "needs at least 3 families, got 2", "big, small")
    check_min_rows(bench_frame(), 3, "x")


def test_check_known_families(tmp_path):
    runs = read_loss_runs(write(tmp_path, LOSS_CSV))
    check_known_families(runs, ["small", "big"], "fit")
    msg = error_of(check_known_families, runs, ["small"], "new data")
    assert_names(msg, "new data", "line 4", "'big'", "known families: small")
    msg = error_of(check_known_families, ["a", "z", "z"], ["a"], "families")
    assert_names(msg, "rows 1, 2", "'z'")
    df = loss_frame()
    msg = error_of(check_known_families, df, ["s"])
    assert_names(msg, "<DataFrame>", "row r3", "'b'")


# ---------------------------------------------------------------------------
# prediction rows
# ---------------------------------------------------------------------------


def test_prediction_rows_add_flops():
    rows = pd.DataFrame({"params": [7e10, 1e9], "tokens": [1.4e12, 2e10]}, index=[5, 9])
    out = read_prediction_rows(rows, required=["params", "tokens"])
    assert out.columns.tolist() == ["params", "tokens", "flops"]
    assert out.index.tolist() == [0, 1]
    np.testing.assert_allclose(out["flops"], [5.88e23, 1.2e20])


def test_prediction_rows_derive_tokens_and_accept_records():
    out = read_prediction_rows(
        [{"family": "a", "params": 1e9, "flops": 6e18}], required=["family", "params", "tokens"]
    )
    assert out["tokens"].tolist() == [1e9]
    assert out["family"].tolist() == ["a"]


def test_prediction_rows_errors(tmp_path):
    msg = error_of(read_prediction_rows, {"params": [1e9]}, required=["params", "tokens"])
    assert_names(msg, "<DataFrame>", "column 'tokens'", "missing column")
    path = write(tmp_path, "family,params,tokens\na,1e9,2e10\nb,1e9,zero\n")
    msg = error_of(read_prediction_rows, path, required=["family", "params", "tokens"])
    assert_names(msg, str(path), "line 3", "column 'tokens'", "non-numeric")
    path = write(tmp_path, "model,benchmark,params,tokens,n_items\nm,B,1e9,1e12,0\n", "b.csv")
    msg = error_of(read_prediction_rows, path, required=["model", "benchmark"])
    assert_names(msg, "line 2", "column 'n_items'", "positive integer")
    path = write(tmp_path, "params,tokens\n", "empty.csv")
    assert_names(error_of(read_prediction_rows, path), "no data rows")
