"""Lab 04: the graders' pure logic, then both versions of the lab run against the stack
(the Rust writer included): the solution passes every check, the student version fails
each one with what its grader found."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from lab_runs import assert_solution_passes_every_check, assert_student_fails_every_check

from neuralake.lab.graders import lab04
from neuralake.lab.writer import binary
from neuralake.streaming.schemas import EXAMPLE_MESSAGE

ROOT = Path(__file__).resolve().parents[1]
LAB04 = ROOT / "labs" / "04_kafka" / "04_kafka.ipynb"

# What each check reports when its exercise was not done.
HINTS = [
    "culprit is None",
    "the writer's ingest process is running",
    "doubled_version is None",
    "nothing was replayed",
    "1 ingest worker(s) of",
    "p99 is None",
]


@pytest.mark.parametrize(
    ("reason", "field"),
    [
        ("field 'channel' = 70000 is out of range for Int16 (-32768..32767)", "channel"),
        ("field 'quality': missing", "quality"),
        ("not JSON: Unterminated string starting at line 1 column 120", "payload"),
        ("payload is not valid JSON: EOF while parsing", "payload"),
    ],
)
def test_reason_field_names_the_broken_field(reason: str, field: str) -> None:
    assert lab04.reason_field(reason) == field


def _payload(**changes) -> bytes:
    return json.dumps({**EXAMPLE_MESSAGE, **changes}).encode()


def test_expected_fix_repairs_only_what_is_knowable() -> None:
    assert lab04.expected_fix(_payload(spike="yes"))["spike"] is True
    assert lab04.expected_fix(_payload(voltage_uv="-12.5"))["voltage_uv"] == -12.5
    naive = lab04.expected_fix(_payload(timestamp="2026-11-23T19:14:44.123456"))
    assert naive["timestamp"] == 1_795_461_284_123_456  # read as UTC, in microseconds
    message = dict(EXAMPLE_MESSAGE)
    del message["quality"]
    assert lab04.expected_fix(json.dumps(message).encode()) is None  # missing: unknowable
    assert lab04.expected_fix(_payload(channel=70_000)) is None
    assert lab04.expected_fix(b'{"timestamp": "2026-11') is None
    assert lab04.expected_fix(_payload()) is None  # nothing to repair
    assert lab04.expected_fix(_payload(spike="yes", channel=70_000)) is None  # still broken


def test_dead_by_source_tells_one_device_from_the_trickle() -> None:
    rows = [(_payload(session_id=7, timestamp=10**18), "timestamp")] * 5
    rows += [(_payload(spike="yes"), "spike"), (_payload(channel=70_000), "channel")] * 3
    rows += [(b'{"session_id": 7, "cha', "payload")] * 2  # not JSON: no sender
    found = lab04.dead_by_source(pl.DataFrame(rows, schema=["payload", "field"], orient="row"))
    assert found.row(0) == (7, "timestamp", 5)
    assert found.filter(pl.col("session_id").is_null())["len"].to_list() == [2]


def test_doubling_finds_the_commit_that_added_known_offsets_again(tmp_path) -> None:
    uri = (tmp_path / "bronze").as_uri()
    first = pl.DataFrame(
        {"kafka_partition": [0, 0, 1, 1], "kafka_offset": [0, 1, 0, 1]},
        schema={"kafka_partition": pl.Int32, "kafka_offset": pl.Int64},
    )
    first.write_delta(uri)
    first.filter(pl.col("kafka_offset") == 1).write_delta(uri, mode="append")  # v1: copies
    first.with_columns(pl.col("kafka_offset") + 2).write_delta(uri, mode="append")  # v2: new
    found = lab04.doubling(uri, {})
    assert found.select("version", "kafka_partition", "rows", "txn").rows() == [
        (1, 0, 1, False),
        (1, 1, 1, False),
    ]


@pytest.fixture
def lab_prefix(stack_settings, monkeypatch) -> Iterator[str]:
    """Unique names, the kernel pointed at the stack, and everything removed after."""
    binary.find(stack_settings.cache_dir)  # the lab needs the Rust writer: fail clearly
    monkeypatch.setenv("NEURALAKE_PROFILE", stack_settings.profile)
    prefix = f"test_lab04_{uuid.uuid4().hex[:8]}_"
    yield prefix
    lab04.drop(stack_settings, prefix)


@pytest.mark.stack
@pytest.mark.notebook
def test_solution_passes_every_check(tmp_path, lab_prefix) -> None:
    assert_solution_passes_every_check(LAB04, lab_prefix, tmp_path, checks=len(HINTS))


@pytest.mark.stack
@pytest.mark.notebook
def test_student_version_fails_every_check_with_its_hint(tmp_path, lab_prefix) -> None:
    assert_student_fails_every_check(LAB04, lab_prefix, tmp_path, HINTS)
