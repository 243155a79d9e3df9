"""Lab 04: the graders' pure logic, then both versions of the lab run against the stack
(the Rust writer included): the solution passes every check, the student version fails
each one with what its grader found."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab_runs import assert_solution_passes_every_check, assert_student_fails_every_check

from neuralake import delta
from neuralake.lab.graders import lab04
from neuralake.lab.writer import binary, control
from neuralake.streaming import replay, topics
from neuralake.streaming.schemas import EXAMPLE_MESSAGE, dead_letter_uri

ROOT = Path(__file__).resolve().parents[1]
LAB04 = ROOT / "labs" / "04_kafka" / "04_kafka.ipynb"

# What each check reports when its exercise was not done.
HINTS = [
    "dead_fields is None",
    "the writer's ingest process is running",
    "no stream was started since setup",
    "nothing was replayed",
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


@pytest.fixture
def lab_prefix(stack_settings, monkeypatch) -> Iterator[str]:
    """Unique names, the kernel pointed at the stack, and everything removed after."""
    binary.find(stack_settings.cache_dir)  # the lab needs the Rust writer: fail clearly
    monkeypatch.setenv("NEURALAKE_PROFILE", stack_settings.profile)
    prefix = f"test_lab04_{uuid.uuid4().hex[:8]}_"
    yield prefix
    s, table = stack_settings, f"{prefix}bronze"
    control.down(s, table, echo=lambda _: None)
    topics.delete_topic(s, f"{prefix}signals")
    uri = s.table_uri(table)
    for name in (uri, dead_letter_uri(uri), replay.ledger_uri(dead_letter_uri(uri))):
        delta.drop_table(name, s.storage_options)
    shutil.rmtree(s.state_dir / "writer" / table, ignore_errors=True)
    shutil.rmtree(s.state_dir / "labs" / "04" / prefix.rstrip("_"), ignore_errors=True)


@pytest.mark.stack
@pytest.mark.notebook
def test_solution_passes_every_check(tmp_path, lab_prefix) -> None:
    assert_solution_passes_every_check(LAB04, lab_prefix, tmp_path, checks=len(HINTS))


@pytest.mark.stack
@pytest.mark.notebook
def test_student_version_fails_every_check_with_its_hint(tmp_path, lab_prefix) -> None:
    assert_student_fails_every_check(LAB04, lab_prefix, tmp_path, HINTS)
