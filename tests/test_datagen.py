"""The synthetic data: shape, determinism, physics, and writing it to a warehouse."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import timedelta

import numpy as np
import polars as pl
import pytest
from deltalake import DeltaTable

import neuralake
from neuralake import datagen, delta
from neuralake.datagen import Simulation, schemas
from neuralake.datagen.signals import BLOCK_SAMPLES, CHANNELS, FIRING_RATE_HZ, SAMPLE_RATE_HZ
from neuralake.errors import ConfigError, TableSchemaError

SMALL = Simulation(rows=600_000, sessions=2, patients=2, seed=11)


@pytest.fixture(scope="module")
def signals() -> pl.DataFrame:
    return SMALL.neural_signals()


@pytest.fixture
def local(tmp_path) -> neuralake.Settings:
    """The local profile, with its warehouse in a temporary folder."""
    return dataclasses.replace(neuralake.settings("local"), warehouse_uri=tmp_path.as_uri())


def test_every_table_has_its_declared_schema(signals):
    assert signals.schema == schemas.NEURAL_SIGNALS
    assert SMALL.patients_table().schema == schemas.PATIENTS
    assert SMALL.devices_table().schema == schemas.DEVICES
    assert SMALL.sessions_table().schema == schemas.SESSIONS
    assert SMALL.cursor_events().schema == schemas.CURSOR_EVENTS
    assert set(schemas.SCHEMAS) == {
        "patients",
        "devices",
        "sessions",
        "neural_signals",
        "cursor_events",
    }


def test_rows_round_up_to_whole_blocks(signals):
    assert signals.height == SMALL.signal_rows >= 600_000
    assert SMALL.signal_rows % (BLOCK_SAMPLES * CHANNELS) == 0
    assert SMALL.signal_rows - 600_000 < 2 * BLOCK_SAMPLES * CHANNELS


def test_one_row_per_timestamp_and_channel_at_10_khz(signals):
    one = signals.filter(pl.col("session_id") == 1)
    per_step = one.group_by("timestamp").agg(pl.col("channel").n_unique())
    assert per_step["channel"].unique().to_list() == [CHANNELS]
    steps = one["timestamp"].unique().sort().diff().drop_nulls().unique()
    assert steps.to_list() == [timedelta(microseconds=100)]
    assert signals["timestamp"].dtype == pl.Datetime("us", "UTC")


def test_same_seed_same_data_other_seed_other_data(signals):
    again = Simulation(rows=600_000, sessions=2, patients=2, seed=11).neural_signals()
    other = Simulation(rows=600_000, sessions=2, patients=2, seed=12).neural_signals()
    assert signals.equals(again)
    assert not signals["voltage_uv"].equals(other["voltage_uv"])


def test_chunks_are_blocks_and_add_up_to_the_table(signals):
    chunks = list(SMALL.signal_chunks())
    assert {c.height for c in chunks} == {BLOCK_SAMPLES * CHANNELS}
    assert pl.concat(chunks).equals(signals)


def test_spike_rate_artifacts_and_quality_are_plausible(signals):
    seconds = SMALL.samples_per_session / SAMPLE_RATE_HZ * SMALL.sessions
    rate_hz = signals["spike"].sum() / (seconds * CHANNELS)
    assert 0.5 * FIRING_RATE_HZ < rate_hz < 1.2 * FIRING_RATE_HZ  # 5 % of events are artifacts
    artifact_rows = signals.filter(pl.col("quality") <= 0.1 + 1e-6)
    assert artifact_rows.height > 0
    assert artifact_rows["voltage_uv"].max() > 100  # artifacts are big positive bumps
    assert signals.filter(pl.col("spike"))["voltage_uv"].mean() < -10  # spikes: troughs
    assert signals["quality"].is_between(0, 1).all()


def test_firing_follows_the_cursor_direction():
    """Cosine tuning: a channel fires more while the cursor moves its preferred way."""
    sim = Simulation(duration=2.0, sessions=1, patients=1, seed=3)
    cursor = sim.cursor_events().select("timestamp", "vx")
    spikes = (
        sim.neural_signals()
        .group_by_dynamic("timestamp", every="100ms", group_by="channel")
        .agg(pl.col("spike").sum())
    )
    velocity = cursor.group_by_dynamic("timestamp", every="100ms").agg(pl.col("vx").mean())
    joined = spikes.join(velocity, on="timestamp")
    correlations = joined.group_by("channel").agg(pl.corr("spike", "vx")).drop_nans()
    # Half the channels prefer +x, half -x: both tails must be clearly present.
    assert correlations["spike"].max() > 0.3
    assert correlations["spike"].min() < -0.3


def test_cursor_events_cover_the_sessions_at_60_hz():
    sessions = SMALL.sessions_table()
    events = SMALL.cursor_events()
    for row in sessions.iter_rows(named=True):
        mine = events.filter(pl.col("session_id") == row["session_id"])
        assert mine["timestamp"].min() == row["started_at"]
        assert mine["timestamp"].max() < row["ended_at"]
        seconds = row["samples"] / SAMPLE_RATE_HZ
        assert abs(mine.height - 60 * seconds) <= 1
    assert events["x"].is_between(0, 1).all() and events["y"].is_between(0, 1).all()
    # Target k sits where the cursor is at the end of its 2 s turn: it gets reached.
    longer = Simulation(duration=5.0, sessions=1, seed=11).cursor_events()
    reached = longer.filter("on_target")["target_id"].unique().sort().to_list()
    assert reached[:2] == [0, 1]


def test_duration_asks_for_seconds_per_session():
    sim = Simulation(duration=0.25, sessions=3, seed=1)
    assert sim.samples_per_session == 3 * BLOCK_SAMPLES  # 2500 samples -> 3 blocks
    assert sim.sessions_table().height == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"rows": 10, "duration": 1.0},
        {"rows": 0},
        {"duration": -1.0},
        {"rows": 10, "sessions": 0},
    ],
)
def test_bad_simulation_arguments_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        Simulation(**kwargs)


def test_write_tables_local_round_trip(local):
    uris = datagen.write_tables(local, SMALL, files=8)
    assert set(uris) == set(schemas.SCHEMAS)
    table = pl.read_delta(uris["neural_signals"])
    order = ["session_id", "timestamp", "channel"]
    assert table.sort(order).equals(SMALL.neural_signals().sort(order))
    for name, uri in uris.items():
        assert pl.read_delta(uri).schema == schemas.SCHEMAS[name]
        protocol = DeltaTable(uri).protocol()
        assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)


@pytest.mark.parametrize("files", [4, 16, 40])
def test_files_sets_about_how_many_files(local, files):
    sim = Simulation(rows=1_000_000, seed=2)
    uri = local.table_uri("signals")
    datagen.write_frames(
        uri, sim.signal_chunks(), schemas.NEURAL_SIGNALS, files=files, total_rows=sim.signal_rows
    )
    info = delta.inspect(uri).row(0, named=True)
    assert info["rows"] == sim.signal_rows
    assert 0.75 * files <= info["files"] <= 1.25 * files + 1
    assert info["version"] == 0  # every file in ONE commit


def test_partitioning(local):
    uris = datagen.write_tables(local, SMALL, files=2, partition_by=["session_id"])
    info = delta.inspect(uris["neural_signals"]).row(0, named=True)
    assert info["partition_columns"] == ["session_id"]
    assert info["files"] >= SMALL.sessions


def _failing(sim: Simulation, after: int) -> Iterator[pl.DataFrame]:
    for i, chunk in enumerate(sim.signal_chunks()):
        if i == after:
            raise RuntimeError("generator died half-way")
        yield chunk


def _readers_never_see_half_a_table(settings: neuralake.Settings, uri: str) -> None:
    sim = Simulation(rows=1_000_000, seed=4)
    options = settings.storage_options
    datagen.write_frames(uri, [SMALL.sessions_table()], schemas.SESSIONS, options)
    with pytest.raises(Exception, match="half-way"):
        datagen.write_frames(
            uri,
            _failing(sim, after=2),
            schemas.NEURAL_SIGNALS,
            options,
            files=4,
            total_rows=sim.signal_rows,
        )
    table = DeltaTable(uri, storage_options=options)
    assert table.version() == 0
    assert pl.read_delta(uri, storage_options=options).equals(SMALL.sessions_table())


def test_a_failed_write_commits_nothing_local(local):
    _readers_never_see_half_a_table(local, local.table_uri("half"))


def test_a_frame_with_the_wrong_schema_is_refused(local):
    uri = local.table_uri("sessions")
    with pytest.raises(TableSchemaError, match="declared schema"):
        datagen.write_frames(uri, [SMALL.devices_table()], schemas.SESSIONS)


def test_append_with_another_schema_is_refused_and_names_the_fix(local):
    uri = local.table_uri("sessions")
    datagen.write_frames(uri, [SMALL.sessions_table()], schemas.SESSIONS)
    with pytest.raises(TableSchemaError, match="schema_mode='merge'"):
        datagen.write_frames(uri, [SMALL.devices_table()], schemas.DEVICES, mode="append")
    assert DeltaTable(uri).version() == 0


@pytest.fixture
def stack_prefix(stack_settings) -> Iterator[str]:
    prefix = f"test_datagen_{uuid.uuid4().hex[:8]}_"
    yield prefix
    for name in [*schemas.SCHEMAS, "half"]:
        delta.drop_table(stack_settings.table_uri(prefix + name), stack_settings.storage_options)


@pytest.mark.stack
def test_write_tables_on_the_stack(stack_settings, stack_prefix):
    uris = datagen.write_tables(stack_settings, SMALL, files=6, prefix=stack_prefix)
    assert all(uri.startswith("s3://") for uri in uris.values())
    info = delta.inspect(uris["neural_signals"], stack_settings.storage_options).row(0, named=True)
    assert info["rows"] == SMALL.signal_rows
    assert 4 <= info["files"] <= 9
    assert (info["min_reader_version"], info["min_writer_version"]) == (1, 2)
    sessions = pl.read_delta(uris["sessions"], storage_options=stack_settings.storage_options)
    assert sessions.equals(SMALL.sessions_table())


@pytest.mark.stack
def test_a_failed_write_commits_nothing_on_s3(stack_settings, stack_prefix):
    _readers_never_see_half_a_table(stack_settings, stack_settings.table_uri(stack_prefix + "half"))


def test_schemas_import_without_io():
    import importlib

    module = importlib.reload(schemas)
    assert isinstance(module.NEURAL_SIGNALS, pl.Schema)
    assert np.dtype("float32")  # numpy is the only other import the generator needs
