"""Lab 08, the capstone: the graders' typical mistakes on the stack, the other incident
staged and diagnosed from its recording, then both versions of the lab run against the
stack (the Rust writer, Kafka, S3 and ROAPI): the solution passes every check, the
student version fails each one with what its grader found."""

from __future__ import annotations

import random
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from lab_runs import assert_solution_passes_every_check, assert_student_fails_every_check

from neuralake.errors import CheckFailed
from neuralake.lab.api.serve import unserve
from neuralake.lab.graders import lab08
from neuralake.lab.stack.services import roapi_config_path
from neuralake.lab.writer import binary
from neuralake.monitoring import Rule, audit

ROOT = Path(__file__).resolve().parents[1]
LAB08 = ROOT / "labs" / "08_capstone" / "08_capstone.ipynb"

# What each check reports when its exercise was not done.
HINTS = [
    "dropped is None",
    "land_impedance is None",
    "electrode_health is None",
    "catalog is None",
    "rule is None, not a Rule",
    "what is None",
    "earlier is None, not a Rule",
]


def test_the_story_is_drawn_from_the_seed_and_the_recording_tells_it() -> None:
    """Without the stack: the failing electrode climbs from its onset, the glitch lasts
    one minute, healthy electrodes stay in their band; the same seed, the same story."""
    start = lab08.datetime(2026, 1, 1, tzinfo=lab08.UTC)
    story = lab08.draw_story(3, start)
    assert story == lab08.draw_story(3, start) and story != lab08.draw_story(4, start)
    rows = lab08.recording(story, 3)
    assert rows.height == lab08.CHANNELS * lab08.MINUTES * lab08.PER_MINUTE
    per_minute = rows.group_by("channel", minute=pl.col("timestamp").dt.truncate("1m")).agg(
        kohm=pl.col("impedance_kohm").mean()
    )
    minute = (pl.col("minute") - start).dt.total_minutes()
    failing = per_minute.filter(pl.col("channel") == story.failing).sort("minute")
    assert failing.filter(minute < story.onset)["kohm"].max() < lab08.HEALTHY_KOHM[1] * 1.05
    assert failing.filter(minute >= story.onset)["kohm"].min() > 1_400
    glitch = per_minute.filter(pl.col("channel") == story.glitch)
    assert glitch.filter(pl.col("kohm") > 1_000).height == 1
    healthy = per_minute.filter(~pl.col("channel").is_in([story.failing, story.glitch]))
    assert healthy["kohm"].max() < lab08.HEALTHY_KOHM[1] * 1.05


@pytest.fixture
def lab_prefix(stack_settings, monkeypatch) -> Iterator[str]:
    """Unique names, the kernel pointed at the stack, and everything removed after
    (ROAPI's config too, when it names this run's tables)."""
    binary.find(stack_settings.cache_dir)  # the lab needs the Rust writer: fail clearly
    monkeypatch.setenv("NEURALAKE_PROFILE", stack_settings.profile)
    prefix = f"test_lab08_{uuid.uuid4().hex[:8]}_"
    yield prefix
    s = stack_settings
    lab08.drop(s, prefix)
    config = roapi_config_path(s)
    if config.exists() and prefix in config.read_text():
        unserve(s)  # a config naming dropped tables would stop ROAPI's next start
    for table in (f"{prefix}bronze", f"{prefix}incident_bronze"):
        shutil.rmtree(s.state_dir / "writer" / table, ignore_errors=True)
    shutil.rmtree(s.state_dir / "labs" / "08" / prefix, ignore_errors=True)


@pytest.mark.stack
def test_graders_name_the_typical_mistakes(stack_settings, lab_prefix) -> None:
    """Part 1 without the incident: an appending job run twice, gold on the broker's
    clock, a rule without a duration, a catalog without lineage; each is named by what
    the grader found. A reset puts back one exercise's tables only."""
    lab = lab08.setup(stack_settings, prefix=lab_prefix, seed=5, incident=False)
    opts = stack_settings.storage_options
    with pytest.raises(CheckFailed, match=r"dropped is \{'quality'\}"):
        lab08.check_dropped(lab, {"quality"})
    lab08.check_dropped(lab, {"impedance_kohm"})

    def append(messages: pl.DataFrame, uri: str) -> None:
        lab08.truth_impedance(lab).write_delta(uri, mode="append", storage_options=opts)

    with pytest.raises(CheckFailed, match=r"after two runs .* repeat a Kafka message"):
        lab08.check_impedance(lab, append)

    def overwrite(messages: pl.DataFrame, uri: str) -> None:
        lab08.truth_impedance(lab).write_delta(uri, mode="overwrite", storage_options=opts)

    lab08.check_impedance(lab, overwrite)

    bronze = pl.scan_delta(lab.bronze_uri, storage_options=opts)
    impedance = pl.scan_delta(lab.uri("given_impedance"), storage_options=opts)
    on_arrival = bronze.with_columns(timestamp=pl.col("kafka_timestamp"))
    lab08.health(on_arrival, impedance).write_delta(
        lab.uri("electrode_health"), storage_options=opts
    )
    with pytest.raises(CheckFailed, match=r"up to \d minutes per channel; .* 20 minutes"):
        lab08.check_health(lab, lab08.health)
    right = lab08.health(bronze, impedance)
    right.write_delta(lab.uri("electrode_health"), mode="overwrite", storage_options=opts)
    lab08.check_health(lab, lab08.health)
    lab.reset("ex3")  # its gold goes; exercise 4's served gold stays
    assert not lab08.DeltaTable.is_deltatable(lab.uri("electrode_health"), opts)
    assert lab08.DeltaTable.is_deltatable(lab.uri("health_served"), opts)

    story = lab.story
    assert story is not None
    hasty = Rule("high", "impedance_kohm", above=1_000)
    with pytest.raises(CheckFailed, match=rf"channel {story.glitch} was high for one minute"):
        lab08.check_rule(lab, hasty)
    lab08.check_rule(lab, Rule("failing", "impedance_kohm", above=1_000, for_s=60))
    slow = Rule("failing", "impedance_kohm", above=1_000, for_s=300)
    with pytest.raises(CheckFailed, match="minutes after its electrode failed"):
        lab08.check_rule(lab, slow)

    with pytest.raises(CheckFailed, match="declares no table at"):
        lab08.check_served(lab, lab08.Catalog({}), story.failing)


def _diagnose(lab: lab08.Lab08) -> tuple[str, object, str]:
    """What a student concludes from the recording and the audit alone."""
    opts = lab.storage_options
    recording = lab.recording()
    if recording["down"].str.contains("writer").any():
        commits = audit.commits(lab.incident_uri, opts).filter(pl.col("rows_added") > 0)
        gaps = commits.with_columns(gap=pl.col("committed_at").diff().shift(-1))
        started = gaps.sort("gap", descending=True, nulls_last=True)["committed_at"][0]
        what = "writer down"
    else:
        dead = audit.commits(lab.incident_dead_uri, opts).filter(pl.col("rows_added") > 0)
        what, started = "poison burst", dead["committed_at"].min()
    first = lab08.evaluate(lab08.RULES, recording).filter("fired").sort("first_fired_s")
    return what, started, first["alert"][0]


@pytest.mark.stack
def test_the_other_incident_is_staged_and_diagnosable(stack_settings, lab_prefix) -> None:
    """The notebook's default seed stages a killed writer; this stages the poison burst
    (on the incident's own topic and writer only), and its recording and audit tell it:
    the dead-letter rule fires, and a rule that waits less fires sooner."""
    assert random.Random(8).choice(lab08.INCIDENTS) == "writer down"  # the notebook's SEED
    work = stack_settings.state_dir / "labs" / "08" / lab_prefix
    lab = lab08.Lab08(stack_settings, lab_prefix, seed=5, work=work)
    lab.work.mkdir(parents=True, exist_ok=True)
    staged = lab08.stage_incident(lab, "poison burst")
    assert lab08.staged(lab)[0] == staged["kind"] == "poison burst"
    what, started, first = _diagnose(lab)
    lab08.check_incident(lab, what, started, first)
    with pytest.raises(CheckFailed, match=re.escape("what is 'writer down'")):
        lab08.check_incident(lab, "writer down", started, first)
    lab08.check_earlier(lab, Rule("poison", "dead_letter_ratio", above=0.02))
    with pytest.raises(CheckFailed, match="already did at"):
        lab08.check_earlier(lab, Rule("poison", "dead_letter_ratio", above=0.02, for_s=5))


@pytest.mark.stack
@pytest.mark.notebook
def test_solution_passes_every_check(tmp_path, lab_prefix) -> None:
    assert_solution_passes_every_check(LAB08, lab_prefix, tmp_path, checks=len(HINTS))


@pytest.mark.stack
@pytest.mark.notebook
def test_student_version_fails_every_check_with_its_hint(tmp_path, lab_prefix) -> None:
    assert_student_fails_every_check(LAB08, lab_prefix, tmp_path, HINTS)
