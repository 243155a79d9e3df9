"""Lab 02: the graders find each mistake and hint in tiers, the solution passes, the student
version fails every check.

Grader tests run on a local warehouse (exercise 5's grader starts the real roapi binary
on local files); the notebook tests run both versions of the lab with papermill against
the stack, as tests/test_labs.py does for lab 01.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import types
import uuid
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import yaml
from lab_runs import assert_solution_passes_every_check, assert_student_fails_every_check

import neuralake
from neuralake import delta
from neuralake.catalog import (
    Catalog,
    Column,
    DeltalakeTable,
    Filter,
    ModuleDatabase,
    NotNull,
    Range,
    Unique,
    table,
)
from neuralake.catalog.export import export_catalog
from neuralake.catalog.roapi import write_roapi
from neuralake.catalog.site import build_site
from neuralake.errors import CheckFailed, NeuralakeError
from neuralake.lab.graders import lab02 as grade
from neuralake.lab.graders.checks import Hint

ROOT = Path(__file__).resolve().parents[1]
LAB02 = ROOT / "labs" / "02_catalog" / "02_catalog.ipynb"

# What each check finds when its exercise was not done (the student version).
FOUND = [
    "spike_counts is None",
    "session_two is None",
    "checks is None",
    "site_index is None",
    "session_spikes is None",
]

SCHEMA = {
    "session_id": Column(pl.Int32, "Session."),
    "channel": Column(pl.Int16, "Channel."),
    "spikes": Column(pl.Int64, "Spikes."),
    "mean_quality": Column(pl.Float64, "Quality."),
}
GOOD_CHECKS = [
    NotNull("spikes"),
    Range("spikes", min=0),
    Range("mean_quality", min=0, max=1),
    Unique("session_id", also=["channel"]),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> grade.Lab02:
    tmp = tmp_path_factory.mktemp("lab02")
    settings = dataclasses.replace(
        neuralake.settings("local"), warehouse_uri=(tmp / "wh").as_uri(), state_dir=tmp
    )
    return grade.setup(settings)


def _table(lab: grade.Lab02, **changes) -> DeltalakeTable:
    fields = {
        "uri": lab.uri,
        "description": "Spikes per session and channel, one row each.",
        "schema": SCHEMA,
        "partition_columns": ["session_id"],
        "docs_filters": [Filter("session_id", "=", 1)],
    }
    return DeltalakeTable("spike_counts", **{**fields, **changes})


# -- exercise 1 ---------------------------------------------------------------------------


def test_a_good_declaration_passes(lab, capsys) -> None:
    grade.check_declared(lab, _table(lab))
    assert capsys.readouterr().out.startswith("PASSED: spike_counts is documented")


@pytest.mark.parametrize(
    ("changes", "found"),
    [
        ({"uri": "elsewhere/spike_counts"}, "not lab.uri"),
        ({"description": "counts"}, "the description has 6 characters"),
        ({"schema": {**SCHEMA, "channel": Column(pl.Int32, "c")}}, "channel is Int16, not Int32"),
        ({"schema": {**SCHEMA, "spikes": pl.Int64}}, "columns ['spikes'] have no description"),
        ({"schema": {k: v for k, v in SCHEMA.items() if k != "spikes"}}, "does not declare"),
        ({"partition_columns": []}, "partition_columns is []"),
        ({"docs_filters": [Filter("session_id", "=", 99)]}, "matches no rows"),
    ],
)
def test_declaration_mistakes_say_what_was_found(lab, changes, found) -> None:
    with pytest.raises(CheckFailed, match=re.escape(found)):
        grade.check_declared(lab, _table(lab, **changes))


def test_hints_get_more_specific_and_reset_starts_them_over(lab) -> None:
    lab.reset("ex1")
    messages = []
    for _ in range(4):
        with pytest.raises(CheckFailed) as failure:
            grade.check_declared(lab, None)
        messages.append(str(failure.value))
    assert [re.search(r"Hint (\d)/3", m).group(1) for m in messages] == ["1", "2", "3", "3"]
    assert "spike_counts = DeltalakeTable('spike_counts', uri=lab.uri" in messages[2]
    lab.reset("ex1")
    with pytest.raises(CheckFailed, match="Hint 1/3"):
        grade.check_declared(lab, None)


@pytest.mark.parametrize(
    "name", sorted(n for n, v in vars(grade).items() if isinstance(v, Hint)), ids=str
)
def test_every_hint_tier_is_one_line(name) -> None:
    hint = getattr(grade, name)
    for level in (1, 2, 3):
        assert "\n" not in hint.tier(level)


def test_reset_of_an_unknown_exercise_names_the_real_ones(lab) -> None:
    with pytest.raises(NeuralakeError, match="use one of ex1, ex2, ex3, ex4, ex5"):
        lab.reset("ex9")


# -- exercise 2 ---------------------------------------------------------------------------


@pytest.fixture
def stack_lab(stack_settings) -> Iterator[grade.Lab02]:
    """Lab 02 on the stack: exercise 2's grader counts the S3 requests a scan sends."""
    prefix = f"test_lab02_{uuid.uuid4().hex[:8]}_"
    lab = grade.setup(stack_settings, prefix=prefix)
    yield lab
    for name in (grade.TABLE, grade.VIEW):
        delta.drop_table(stack_settings.table_uri(prefix + name), stack_settings.storage_options)
    shutil.rmtree(lab.out, ignore_errors=True)


@pytest.mark.stack
def test_filter_grader_wants_lazy_pruned_and_right_rows(stack_lab) -> None:
    spike_counts = _table(stack_lab)
    session_two = [Filter("session_id", "=", 2), Filter("channel", "<", 8)]
    grade.check_filtered(stack_lab, lambda: spike_counts.scan(filters=session_two))
    with pytest.raises(CheckFailed, match="session_two is a LazyFrame, not a function"):
        grade.check_filtered(stack_lab, spike_counts.scan(filters=session_two))
    with pytest.raises(CheckFailed, match="session_two\\(\\) returns a DataFrame, not a LazyFrame"):
        grade.check_filtered(stack_lab, lambda: spike_counts.scan(filters=session_two).collect())
    with pytest.raises(CheckFailed, match="session_two has 256 rows"):
        grade.check_filtered(
            stack_lab, lambda: spike_counts.scan(filters=[Filter("session_id", "=", 2)])
        )
    # Right rows, but through an expression no file statistics can answer: all files open.
    by_value = ((pl.col("session_id") + pl.col("channel") * 0) == 2) & (pl.col("channel") < 8)
    with pytest.raises(CheckFailed, match="the scan opened all 4 files"):
        grade.check_filtered(stack_lab, lambda: spike_counts.scan().filter(by_value))


# -- exercise 3 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("checks", "found"),
    [
        ([NotNull("spikes")], "let a negative spike count through"),
        ([Range("spikes", min=0)], "let a missing spike count through"),
        ([NotNull("spikes"), Range("spikes", min=0)], "let a mean_quality above 1 through"),
        (GOOD_CHECKS[:3], "let the same session and channel twice through"),
        ([*GOOD_CHECKS, Range("spikes", min=0, max=1)], "fail on the real (clean) data"),
    ],
)
def test_quality_grader_breaks_rows_in_every_way(lab, checks, found) -> None:
    with pytest.raises(CheckFailed, match=re.escape(found)):
        grade.check_quality(lab, checks)


def test_quality_grader_passes_checks_that_catch_everything(lab, capsys) -> None:
    with pytest.raises(CheckFailed, match="checks is NotNull"):
        grade.check_quality(lab, NotNull("spikes"))
    grade.check_quality(lab, GOOD_CHECKS)
    assert "catch all 4 kinds of broken rows" in capsys.readouterr().out


# -- exercise 4 ---------------------------------------------------------------------------


def _publish(lab: grade.Lab02, spike_counts: DeltalakeTable) -> tuple[Path, Path]:
    module = types.ModuleType("lab02_published")
    module.spike_counts = spike_counts
    module.__all__ = ["spike_counts"]  # declared in this test, published by that module
    catalog = Catalog({"lab": ModuleDatabase(module)})
    export = export_catalog(catalog, "lab02", lab.settings, quality=catalog.check())
    site_index = build_site(export, lab.out / "site")
    return site_index, write_roapi(export, lab.out / "roapi.yaml")


def test_publish_grader_wants_the_checks_attached_and_reported(lab, capsys) -> None:
    lab.reset("ex4")
    with pytest.raises(CheckFailed, match="the export has no quality report for spike_counts"):
        grade.check_published(lab, *_publish(lab, _table(lab)))
    strict = _table(lab, checks=[Range("spikes", min=0, max=1)])
    with pytest.raises(CheckFailed, match=re.escape("fails: ['range(spikes, 0..1)']")):
        grade.check_published(lab, *_publish(lab, strict))
    grade.check_published(lab, *_publish(lab, _table(lab, checks=GOOD_CHECKS)))
    assert "in catalog.json and in the ROAPI config" in capsys.readouterr().out


# -- exercise 5 ---------------------------------------------------------------------------


def _view(lab: grade.Lab02, **metadata):
    spike_counts = _table(lab)
    options = {"materialize": True, "uri": lab.view_uri, "upstream": ["spike_counts"]}

    def session_spikes() -> pl.LazyFrame:
        """Spikes and mean quality per recording session."""
        return (
            spike_counts.scan()
            .group_by("session_id")
            .agg(pl.col("spikes").sum(), pl.col("mean_quality").mean())
        )

    return table(**{**options, **metadata})(session_spikes)


def _config(lab: grade.Lab02, path: Path, uri: str) -> Path:
    served = {"name": "session_spikes", "uri": uri.removeprefix("file://")}
    served["option"] = {"format": "delta", "use_memory_table": False}
    path.write_text(yaml.safe_dump({"addr": {"http": "127.0.0.1:1"}, "tables": [served]}))
    return path


def test_view_grader_serves_the_view_with_roapi(lab, tmp_path, capsys) -> None:
    lab.reset("ex5")
    view = _view(lab)
    with pytest.raises(CheckFailed, match=r"there is no Delta table at lab\.view_uri"):
        grade.check_view(lab, view, None, None)
    view.refresh(lab.settings)
    config = _config(lab, tmp_path / "roapi.yaml", lab.view_uri)
    truth = grade.view_truth(lab)
    grade.check_view(lab, view, config, truth)
    assert "served by ROAPI" in capsys.readouterr().out
    # Read back as JSON would: integers widen to Int64.
    as_json = truth.with_columns(pl.col("session_id").cast(pl.Int64))
    with pytest.raises(CheckFailed, match="session_id is Int64, not Int32"):
        grade.check_view(lab, view, config, as_json)
    with pytest.raises(CheckFailed, match="ROAPI did not start on served_config: error: "):
        grade.check_view(lab, view, _config(lab, tmp_path / "bad.yaml", lab.uri + "_nope"), truth)


def test_view_grader_wants_a_materialized_view_with_lineage(lab) -> None:
    with pytest.raises(CheckFailed, match="is a function, not a materialized view"):
        grade.check_view(lab, _view(lab, materialize=False, uri=None), None, None)
    with pytest.raises(CheckFailed, match="does not name spike_counts"):
        grade.check_view(lab, _view(lab, upstream=[]), None, None)
    with pytest.raises(CheckFailed, match=r"description \(its docstring\) has 0 characters"):
        grade.check_view(lab, _view(lab, description=" "), None, None)


# -- the notebook, both versions ----------------------------------------------------------


@pytest.fixture
def lab_prefix(stack_settings, monkeypatch) -> str:
    monkeypatch.setenv("NEURALAKE_PROFILE", stack_settings.profile)
    prefix = f"test_lab02_{uuid.uuid4().hex[:8]}_"
    yield prefix
    for name in (grade.TABLE, grade.VIEW):
        delta.drop_table(stack_settings.table_uri(prefix + name), stack_settings.storage_options)


@pytest.mark.stack
@pytest.mark.notebook
def test_solution_passes_every_check(tmp_path, lab_prefix) -> None:
    assert_solution_passes_every_check(LAB02, lab_prefix, tmp_path, checks=len(FOUND))


@pytest.mark.stack
@pytest.mark.notebook
def test_student_version_fails_every_check_with_its_hint(tmp_path, lab_prefix) -> None:
    assert_student_fails_every_check(LAB02, lab_prefix, tmp_path, FOUND)
