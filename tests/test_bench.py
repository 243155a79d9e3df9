"""Benchmarks: all engines agree on all 22 TPC-H queries; compare and verify can fail; the
report renders the committed SF1 results and the writer's and ROAPI's figures."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import neuralake
from neuralake.errors import ConfigError
from neuralake.lab.bench import acceptance, report, verify
from neuralake.lab.bench.cli import app
from neuralake.lab.bench.engines import DataFusionEngine, engine_names
from neuralake.lab.bench.queries import Query, tpch
from neuralake.lab.bench.targets import (
    BENCHMARKS,
    api_latency,
    compaction_read,
    writer_freshness,
    writer_throughput,
)

runner = CliRunner()
KINDS = api_latency.KINDS
ROOT = Path(__file__).resolve().parents[1]
SF1 = ROOT / "docs" / "benchmarks" / "tpch-sf1"


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
    with pytest.raises(ConfigError, match="choose from polars, datafusion, duckdb, duckdb_arrow"):
        engine_names("polars,sparkk")
    result = runner.invoke(app, ["compare", str(tmp_path / "nope.json"), str(tmp_path)])
    assert isinstance(result.exception, ConfigError)
    assert "run `neuralake bench --out DIR` first" in str(result.exception)


def test_the_datafusion_engine_answers_as_a_frame_and_close_drops_its_tables(tmp_path):
    from deltalake import write_deltalake

    s = dataclasses.replace(neuralake.settings("local"), warehouse_uri=tmp_path.as_uri())
    write_deltalake(s.table_uri("t"), pl.DataFrame({"x": [1, 2, 3]}).to_arrow())
    query = Query("sum", "SELECT sum(x) AS total FROM t", lambda tables: tables["t"].sum())
    engine = DataFusionEngine(s)
    engine.register({"t": s.table_uri("t")})
    answer = engine.run(query)
    assert isinstance(answer, pl.DataFrame) and answer.item() == 6
    engine.close()
    with pytest.raises(Exception, match="t"):
        engine.run(query)  # the view went with the old context


Q1_COLUMNS = (
    "l_quantity", "l_extendedprice", "l_discount", "l_tax",
    "l_returnflag", "l_linestatus", "l_shipdate",
)  # fmt: skip


def test_the_duckdb_engine_reads_delta_with_extensions_from_its_packages(tmp_path):
    """delta_scan through the delta extension loaded from duckdb-extension-delta's files,
    with auto-install off: no download can have happened."""
    from deltalake import write_deltalake

    from neuralake.lab.bench.engines import DuckDBEngine

    s = dataclasses.replace(neuralake.settings("local"), warehouse_uri=tmp_path.as_uri())
    write_deltalake(s.table_uri("t"), pl.DataFrame({"x": [1, 2, 3]}).to_arrow())
    write_deltalake(s.table_uri("t"), pl.DataFrame({"x": [10]}).to_arrow(), mode="overwrite")
    engine = DuckDBEngine(s)
    engine.register({"t": s.table_uri("t")})
    query = Query("sum", "SELECT sum(x) AS total FROM t", lambda tables: tables["t"].sum())
    assert engine.run(query).item() == 10  # the log's current file only, not the folder
    loaded = engine.con.sql(
        "SELECT extension_name, install_mode FROM duckdb_extensions() WHERE loaded "
        "AND extension_name IN ('delta', 'httpfs') ORDER BY 1"
    ).fetchall()
    assert loaded == [("delta", "NOT_INSTALLED"), ("httpfs", "NOT_INSTALLED")]
    autoinstall = engine.con.sql("SELECT current_setting('autoinstall_known_extensions')")
    assert autoinstall.fetchone() == (False,)
    engine.close()


def test_the_ceiling_reads_the_columns_each_query_names():
    from neuralake.lab.bench.ceiling import columns_named

    class Table:  # the one attribute columns_named reads
        def __init__(self, *columns: str) -> None:
            self.columns = list(columns)

    tables = {
        "lineitem": Table("l_orderkey", *Q1_COLUMNS, "l_comment"),
        "orders": Table("o_orderkey", "o_comment"),
    }
    named = columns_named(tpch(1, [1])[0].sql, tables)  # type: ignore[arg-type]
    assert named == {"lineitem": list(Q1_COLUMNS)}


def test_targets_are_reported_met_or_not():
    medians = {("q01", "spark"): 10.0, ("q01", "polars"): 0.9, ("q01", "duckdb"): 1.0}
    medians |= {("q01", "datafusion"): 1.3}
    checks = {name: (value, ok) for name, value, ok in report.targets(_document(medians))}
    assert checks["polars >= 10x Spark local in total"] == ("11.1x", True)
    assert checks["datafusion >= 10x Spark local in total"] == ("7.7x", False)
    ratio = "within 1.2x of DuckDB's own reader (time / DuckDB's)"
    assert checks[f"polars {ratio}"] == ("0.90x", True)
    assert checks[f"datafusion {ratio}"] == ("1.30x", False)


def test_every_query_has_sql_and_a_polars_plan():
    queries = tpch(0.01)
    assert [q.name for q in queries] == [f"q{n:02d}" for n in range(1, 23)]
    assert "0.0100000000" in queries[10].sql  # Q11's fraction is 0.0001 / SF


@pytest.mark.stack
def test_all_engines_agree_on_all_22_queries_at_tiny_scale(stack_settings, tmp_path):
    """One run per query and engine (--runs 0): this proves agreement, not speed."""
    engines = ("polars", "datafusion", "duckdb", "duckdb_arrow", "spark")
    options = ["--scale", "0.01", "--runs", "0", "--engines", ",".join(engines)]
    result = runner.invoke(
        app,
        [*options, "--out", str(tmp_path), "--no-progress"],
        catch_exceptions=True,
    )
    if result.exception:
        raise result.exception
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["verified"] is True
    assert {(r["query"], r["engine"]) for r in document["results"]} == {
        (f"q{n:02d}", e) for n in range(1, 23) for e in engines
    }
    ceiling = document["ceiling"]
    assert len(ceiling["queries"]) == 22 and ceiling["read_s"] > 0 and ceiling["bytes"] > 0
    assert ceiling["queries"]["q01"]["columns"] == {"lineitem": list(Q1_COLUMNS)}
    assert set(ceiling["fraction_by_engine"]) == set(engines)
    for png in ("times_log.png", "speedup_vs_spark.png", "ceiling.png"):
        assert (tmp_path / png).stat().st_size > 10_000
    assert document["machine"]["packages"]["polars"]


def test_the_committed_sf1_results_still_plot_tabulate_and_compare(tmp_path):
    document = json.loads((SF1 / "results.json").read_text())
    written = report.plot(document, tmp_path)
    assert sorted(p.name for p in written) == [
        "ceiling.png",
        "speedup_vs_spark.png",
        "times_log.png",
    ]
    assert all(p.stat().st_size > 10_000 for p in written)
    table = report.markdown_table(document)
    assert table.count("\n| q") == 22 and "speed-up vs Spark" in table
    assert "fraction of the ceiling" in table and "DuckDB's own reader" in table
    pairs = len(document["results"])
    same = runner.invoke(app, ["compare", str(SF1 / "results.json"), str(SF1 / "results.json")])
    assert same.exit_code == 0, same.output
    assert f"0 of {pairs} slower" in same.output


# The writer's and ROAPI's figures. Each fixture has the shape its script prints (see
# benchmarks/*.py); the numbers are chosen to sit on either side of a target.


def _throughput(messages=2_000_000, rust=380_000, python=95_000, load=1.2) -> dict:
    def side(rate: int) -> dict:
        return {"messages": messages, "seconds": messages / rate, "messages_per_s": rate}

    run = {"messages": messages, "ceiling": {"messages_per_s": 500_000.4}, "rust": side(rust)}
    if python:
        run["python"] = side(python)
    return {**run, "load_average_1m": load}


def _freshness(writer="rust", rate=10_000.0, p99=1.14, load=1.6) -> dict:
    seen = p99 is not None
    return {
        "writer": writer,
        "rate": rate,
        "flush_ms": 1000,
        "producer_messages_per_s": 9_990,
        "load_average_1m": load,
        "rows": 300_000 if seen else 0,
        "p50_s": 0.62 if seen else None,
        "p99_s": p99,
        "max_s": p99 + 0.05 if seen else None,
    }


def _compaction(open_before=0.30, open_after=0.05) -> dict:
    return {
        "rows": 100_000,
        "files_before": 200,
        "bytes_before": 4_000_000,
        "files_after": 1,
        "bytes_after": 2_000_000,
        "before": {"open_scan_s": open_before, "scan_only_s": 0.2},
        "after": {"open_scan_s": open_after, "scan_only_s": 0.02},
        "load_average_1m": 0.9,
    }


def _latency(
    window=(36.0, 29.0, 46.0), whole=(287.0, 290.0, 1123.0), fresh_s=2.7, rows=10_127_079
) -> dict:
    """A run of benchmarks/api_latency.py, as it writes one (its fields, fewer paths)."""

    def kinds(p99: tuple[float, float, float]) -> dict:
        return {k: {"p50_ms": ms / 2, "p99_ms": ms} for k, ms in zip(KINDS, p99, strict=True)}

    return {
        "rows_live_at_end": rows,
        "files": {"live_table": 7, "window": 1},
        "freshness_age_of_newest_row": {
            "roapi_window": {"p50_s": 2.3, "p99_s": fresh_s, "max_s": fresh_s},
            "roapi_provider": {"p50_s": 1.9, "p99_s": 2.8, "max_s": 2.9},
            "fastapi_polars": {"p50_s": 4.5, "p99_s": 8.2, "max_s": 8.3},
        },
        "latency": {
            "roapi, SELECT 1 (no table)": {"p50_ms": 1.5, "p99_ms": 9.9, "load_1m": 2.3},
            "roapi_window, recent": kinds(window),
            "roapi_provider, whole table": kinds(whole),
            "fastapi_polars, whole table": kinds((69.0, 174.0, 32.0)),
        },
        "writer_commits_during_run": 135,
        "load_average_1m_start_end": [2.1, 3.5],
    }


def _met(checks: list[acceptance.Check]) -> dict[str, bool]:
    return {c.measure: c.met for c in checks if c.met is not None}


def test_catch_up_needs_2m_messages_100k_msg_s_and_5x_python():
    assert all(_met(writer_throughput.checks(_throughput(python=70_000))).values())
    missed = _met(writer_throughput.checks(_throughput(python=95_000)))
    assert [m for m, ok in missed.items() if not ok] == ["Rust / Python"]  # 4.0x
    tiny = _met(writer_throughput.checks(_throughput(messages=3_000, python=4_000)))
    assert tiny["messages in the preloaded topic"] is False  # a tiny run proves nothing
    skipped = _met(writer_throughput.checks(_throughput(python=0)))
    assert skipped["Rust / Python"] is False
    ceiling = {c.measure: c.value for c in writer_throughput.checks(_throughput())}
    assert ceiling["Rust / consume ceiling"] == "0.76"


def test_freshness_target_is_the_rust_writers_at_10k_msg_s():
    assert all(_met(writer_freshness.checks(_freshness())).values())
    assert _met(writer_freshness.checks(_freshness(p99=2.0)))["freshness p99"] is False
    slow = _met(writer_freshness.checks(_freshness(rate=500.0)))
    assert slow["producer rate, requested"] is False
    assert _met(writer_freshness.checks(_freshness(writer="python", p99=5.0))) == {}
    nothing = _met(writer_freshness.checks(_freshness(p99=None)))
    assert nothing["freshness p99"] is False


def test_compaction_target_is_open_plus_scan_at_5x():
    assert _met(compaction_read.checks(_compaction(0.30, 0.05))) == {"open + scan speed-up": True}
    assert _met(compaction_read.checks(_compaction(0.19, 0.05))) == {"open + scan speed-up": False}


def test_each_roapi_path_needs_p99_under_100_ms_on_data_at_most_5_s_old():
    met = _met(api_latency.checks(_latency()))
    assert met == {
        "rows in the live table": True,
        "writer commits during the run": True,
        "roapi_window: newest row's age, max": True,
        "roapi_provider: newest row's age, max": True,
        "roapi_window, recent: p99 point / filter / aggregate": True,
        "roapi_provider, whole table: p99 point / filter / aggregate": False,
    }  # FastAPI + Polars is the baseline: shown, no verdict
    assert all(_met(api_latency.checks(_latency(whole=(60.0, 70.0, 99.0)))).values())
    stale = _met(api_latency.checks(_latency(fresh_s=5.2)))
    assert stale["roapi_window: newest row's age, max"] is False
    slow = _met(api_latency.checks(_latency(window=(36.0, 29.0, 101.0))))
    assert slow["roapi_window, recent: p99 point / filter / aggregate"] is False
    assert _met(api_latency.checks(_latency(rows=100_000)))["rows in the live table"] is False
    moonshot = {c.measure: c.value for c in api_latency.checks(_latency())}
    assert moonshot["moonshot: best ROAPI path's worst p99"] == "46.0 ms (roapi_window, recent)"


def _section(folder: Path, linked_from: Path | None = None) -> str:
    return acceptance.section(BENCHMARKS, folder, linked_from)


def _save(folder: Path, name: str, text: str) -> None:
    (folder / f"{name}.json").write_text(text)


def test_section_shows_each_result_its_target_and_load(tmp_path):
    _save(tmp_path, "writer_throughput", json.dumps(_throughput(), indent=2))
    runs = [_freshness(), _freshness(writer="python", p99=5.06, load=15.3)]
    _save(tmp_path, "writer_freshness", json.dumps(runs))
    table_then_json = "| files | 200 | 1 |\n| --- | ---: | ---: |\n" + json.dumps(_compaction())
    _save(tmp_path, "compaction_read", table_then_json)  # compaction_read.py prints both
    _save(tmp_path, "api_latency_fresh", json.dumps(_latency(), indent=2))
    section = _section(tmp_path, linked_from=tmp_path / "tpch-sf1")
    summary = section.splitlines()[2:6]
    assert summary[0].endswith("| 1 | **not met**: Rust / Python | 1.2 |")
    assert "[`writer_throughput.json`](../writer_throughput.json)" in summary[0]
    assert summary[1].endswith("| 2 | **met** | 1.6, 15.3 |")
    assert summary[2].endswith("| 1 | **met** | 0.9 |")
    assert summary[3].endswith(
        "| 1 | **not met**: roapi_provider, whole table: p99 point / filter / aggregate "
        "| 2.1 -> 3.5 |"
    )
    assert "| Rust / Python | >= 5.00x | 4.00x **not met** |" in section
    assert "| freshness p99 | <= 1.15 s | 1.14 s **met** | 5.06 s |" in section
    assert "| files before -> after |  | 200 -> 1 |" in section
    assert (
        "| roapi_window, recent: p99 point / filter / aggregate | < 100 ms each "
        "| 36.0 / 29.0 / 46.0 ms **met** |" in section
    )
    assert (
        "| fastapi_polars, whole table: p99 point / filter / aggregate | baseline "
        "| 69.0 / 174 / 32.0 ms |" in section
    )


def test_a_benchmark_without_a_saved_result_shows_as_not_run(tmp_path):
    _save(tmp_path, "compaction_read", json.dumps(_compaction()))
    section = _section(tmp_path)
    assert section.count("| 0 | **not run** |") == 3
    for name, script in [
        ("writer_throughput", "writer_throughput"),
        ("writer_freshness", "writer_freshness"),
        ("api_latency_fresh", "api_latency"),
    ]:
        assert f"no `{name}.json` yet. Run `.venv/bin/python benchmarks/{script}.py" in section


def test_result_files_are_read_as_the_scripts_print_them(tmp_path):
    path = tmp_path / "writer_freshness.json"
    assert acceptance.load_runs(path) is None
    path.write_text(json.dumps(_freshness(), indent=2) + "\n" + json.dumps(_freshness(p99=3.0)))
    assert [run["p99_s"] for run in acceptance.load_runs(path)] == [1.14, 3.0]  # appended with >>
    path.write_text('{"writer": "rust", "rate": ')
    with pytest.raises(ConfigError, match="broken JSON"):
        acceptance.load_runs(path)
    path.write_text("| only | a table |\n")
    with pytest.raises(ConfigError, match="holds no JSON result"):
        acceptance.load_runs(path)
    path.write_text(json.dumps({"writer": "rust"}))
    with pytest.raises(
        ConfigError, match=r"lacks the field 'rate'.*benchmarks/writer_freshness\.py"
    ):
        _section(tmp_path)


def test_report_command_rewrites_only_the_generated_section(tmp_path):
    readme = tmp_path / "tpch-sf1" / "README.md"
    readme.parent.mkdir()
    readme.write_text(
        f"# Report\n\nbefore\n\n{acceptance.MARK_START}\nSTALE TEXT\n"
        f"{acceptance.MARK_END}\n\nafter\n"
    )
    _save(tmp_path, "compaction_read", json.dumps(_compaction(0.19, 0.05)))
    args = ["report", "--out", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "**not met**: open + scan speed-up" in result.output
    text = readme.read_text()
    assert (
        "STALE TEXT" not in text
        and text.startswith("# Report\n\nbefore\n")
        and text.endswith("after\n")
    )
    assert "3.80x **not met**" in text
    assert runner.invoke(app, args).exit_code == 0 and readme.read_text() == text  # idempotent
    readme.write_text("# Report without markers\n")
    result = runner.invoke(app, args)
    assert isinstance(result.exception, ConfigError)
    assert "add the lines <!--" in str(result.exception)


def test_lesson_04_still_reads_the_writer_s_runs_through_the_report():
    assert report.writer_throughput_checks is writer_throughput.checks
    assert report.writer_freshness_checks is writer_freshness.checks
    assert report.load_runs is acceptance.load_runs


@pytest.mark.parametrize("name", ["compaction_read", "api_latency"])
def test_the_benchmark_script_reads_the_targets_its_checks_use(name):
    script = (ROOT / "benchmarks" / f"{name}.py").read_text()
    assert f"from neuralake.lab.bench.targets.{name} import TARGETS" in script


def test_the_committed_report_carries_the_committed_results(monkeypatch):
    """Fails when a benchmark's JSON changed and the report was not regenerated."""
    monkeypatch.chdir(ROOT)  # the section names the files as `neuralake bench report` does
    text = (SF1 / "README.md").read_text()
    section = _section(Path("docs/benchmarks"), Path("docs/benchmarks/tpch-sf1"))
    assert f"{acceptance.MARK_START}\n\n{section}\n\n{acceptance.MARK_END}" in text, (
        "docs/benchmarks/tpch-sf1/README.md is stale: run `neuralake bench report`"
    )


def test_the_roapi_engine_answers_and_leaves_no_server_behind(tmp_path, monkeypatch):
    """A local Delta table served by the engine's own roapi process (no stack needed)."""
    import psutil
    from deltalake import write_deltalake

    import neuralake
    from neuralake.lab.bench.engines import RoapiEngine
    from neuralake.lab.bench.queries import Query

    monkeypatch.setenv("NEURALAKE_STATE_DIR", str(tmp_path / "state"))
    uri = (tmp_path / "numbers").as_uri()
    write_deltalake(uri, pl.DataFrame({"n": [1, 2, 3]}).to_arrow())
    engine = RoapiEngine(neuralake.settings("local"))
    engine.register({"numbers": uri})
    try:
        query = Query("sum", "SELECT sum(n) AS total FROM numbers", lambda _: None)
        assert engine.run(query)["total"].to_list() == [6]
        (pid_file,) = (tmp_path / "state" / "bench").glob("roapi-*.pid")
        pid = json.loads(pid_file.read_text())["pid"]
    finally:
        engine.close()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_roapi_engine_that_cannot_start_says_why(tmp_path, monkeypatch):
    import neuralake
    from neuralake.errors import StackError
    from neuralake.lab.bench.engines import RoapiEngine

    monkeypatch.setenv("NEURALAKE_STATE_DIR", str(tmp_path / "state"))
    engine = RoapiEngine(neuralake.settings("local"))
    with pytest.raises(StackError, match=r"roapi exited during start .*Failed to load"):
        engine.register({"missing": (tmp_path / "missing").as_uri()})
    engine.close()
