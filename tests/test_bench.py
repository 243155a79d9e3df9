"""Benchmarks: all engines agree on all 22 TPC-H queries; compare and verify can fail."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from neuralake.bench import verify
from neuralake.bench.cli import app
from neuralake.bench.engines import engine_names
from neuralake.bench.queries import tpch
from neuralake.errors import ConfigError

runner = CliRunner()


def _document(medians: dict[tuple[str, str], float]) -> dict:
    return {
        "engines": sorted({engine for _, engine in medians}),
        "results": [{"query": q, "engine": e, "median_s": s} for (q, e), s in medians.items()],
    }


def test_verify_accepts_reordered_rows_and_float_noise():
    a = pl.DataFrame({"k": ["x", "y"], "v": [0.1 + 0.2, 2.0]})
    b = pl.DataFrame({"key": ["y", "x"], "total": [2.0, 0.3]})
    verify.check("q99", {"duckdb": a, "spark": b})


def test_verify_fails_on_a_real_mismatch_naming_query_and_engines():
    a = pl.DataFrame({"k": ["x", "y"], "v": [1.0, 2.0]})
    b = pl.DataFrame({"k": ["x", "y"], "v": [1.0, 2.01]})
    with pytest.raises(verify.MismatchError, match=r"^q07: spark disagrees with polars: column"):
        verify.check("q07", {"polars": a, "spark": b})
    with pytest.raises(verify.MismatchError, match=r"shape \(1, 2\) instead of \(2, 2\)"):
        verify.check("q07", {"polars": a, "duckdb": a.head(1)})


def test_compare_exits_1_on_a_regression_and_0_without(tmp_path):
    base = tmp_path / "base.json"
    new = tmp_path / "new.json"
    base.write_text(json.dumps(_document({("q01", "polars"): 1.0, ("q02", "polars"): 1.0})))
    new.write_text(json.dumps(_document({("q01", "polars"): 1.5, ("q02", "polars"): 1.05})))
    result = runner.invoke(app, ["compare", str(base), str(new)])
    assert result.exit_code == 1, result.output
    assert "q01" in result.output and "SLOWER" in result.output
    assert "1 of 2 slower" in result.output
    relaxed = runner.invoke(app, ["compare", str(base), str(new), "--threshold", "0.6"])
    assert relaxed.exit_code == 0, relaxed.output


def test_bad_input_is_one_line_naming_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="choose from polars, datafusion, duckdb, spark"):
        engine_names("polars,sparkk")
    result = runner.invoke(app, ["compare", str(tmp_path / "nope.json"), str(tmp_path)])
    assert isinstance(result.exception, ConfigError)
    assert "run `neuralake bench --out DIR` first" in str(result.exception)


def test_every_query_has_sql_and_a_polars_plan():
    queries = tpch(0.01)
    assert [q.name for q in queries] == [f"q{n:02d}" for n in range(1, 23)]
    assert "0.0100000000" in queries[10].sql  # Q11's fraction is 0.0001 / SF


@pytest.mark.stack
def test_all_engines_agree_on_all_22_queries_at_tiny_scale(stack_settings, tmp_path):
    """One run per query and engine (--runs 0): this proves agreement, not speed."""
    result = runner.invoke(
        app,
        ["--scale", "0.01", "--runs", "0", "--out", str(tmp_path), "--no-progress"],
        catch_exceptions=True,
    )
    if result.exception:
        raise result.exception
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["verified"] is True
    assert {(r["query"], r["engine"]) for r in document["results"]} == {
        (f"q{n:02d}", e) for n in range(1, 23) for e in ("polars", "datafusion", "duckdb", "spark")
    }
    assert document["ceiling"]["storage_bytes_per_s"] > 0
    for png in ("times_log.png", "speedup_vs_spark.png", "ceiling.png"):
        assert (tmp_path / png).stat().st_size > 10_000
    assert document["machine"]["packages"]["polars"]
