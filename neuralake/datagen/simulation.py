"""A simulated study: patients, their implants, recording sessions, and what was recorded.

One :class:`Simulation` fixes everything with a seed; each table is a method, so the
tables line up (every signal row belongs to a session, every session to a device and a
patient, and cursor events cover exactly the same time span as the signals)::

    sim = Simulation(rows=2_000_000, sessions=2, seed=7)
    sim.sessions()                      # 2 rows
    sim.neural_signals()                # 2,097,152 rows (whole time steps, see below)
    for chunk in sim.signal_chunks():   # the same rows, 262,144 at a time
        ...

``rows`` is rounded up to whole blocks of 1024 time steps x 256 channels per session, so
that the generator never produces a partial time step. Use ``duration`` instead to ask
for seconds of recording per session.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from neuralake.datagen import schemas
from neuralake.datagen.cursor import TARGET_RADIUS, CursorPath
from neuralake.datagen.signals import (
    BLOCK_SAMPLES,
    CHANNELS,
    SAMPLE_PERIOD_US,
    SAMPLE_RATE_HZ,
    ChannelMap,
    SignalBlock,
    signal_block,
)
from neuralake.errors import ConfigError

DEFAULT_START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CURSOR_RATE_HZ = 60  # a screen refresh: cursor events per second
TASKS = ("cursor_control", "webgrid", "free_play")
COHORTS = ("pilot", "main")
AGE_BANDS = ("20-29", "30-39", "40-49", "50-59")
FIRMWARE = ("1.4.2", "1.5.0")

# Seed-stream names: each table and each block gets its own independent random stream.
_PATIENTS, _DEVICE, _CURSOR, _BLOCK = 1, 2, 3, 4


@dataclass(frozen=True)
class Simulation:
    """Everything about a synthetic study, fixed by ``seed``.

    Give ``rows`` (neural-signal rows in total) or ``duration`` (seconds of recording per
    session), not both.
    """

    rows: int | None = None
    duration: float | None = None
    sessions: int = 2
    patients: int = 2
    seed: int = 0
    start: datetime = DEFAULT_START

    def __post_init__(self) -> None:
        if (self.rows is None) == (self.duration is None):
            raise ConfigError("give the simulation rows=... or duration=..., exactly one")
        if self.rows is not None and self.rows <= 0:
            raise ConfigError(f"rows={self.rows} must be positive (e.g. rows=1_000_000)")
        if self.duration is not None and self.duration <= 0:
            raise ConfigError(f"duration={self.duration} must be positive seconds (e.g. 1.0)")
        if self.sessions < 1 or self.patients < 1:
            raise ConfigError("sessions and patients must be at least 1")
        if self.start.tzinfo is None:
            raise ConfigError("start must be timezone-aware: use datetime(..., tzinfo=UTC)")

    # -- the plan ---------------------------------------------------------------------

    @property
    def samples_per_session(self) -> int:
        """Time steps recorded in each session (a whole number of blocks)."""
        if self.rows is not None:
            wanted = math.ceil(self.rows / (CHANNELS * self.sessions))
        else:
            assert self.duration is not None  # __post_init__: exactly one of the two
            wanted = math.ceil(self.duration * SAMPLE_RATE_HZ)
        return math.ceil(wanted / BLOCK_SAMPLES) * BLOCK_SAMPLES

    @property
    def signal_rows(self) -> int:
        """The exact number of rows :meth:`neural_signals` produces."""
        return self.sessions * self.samples_per_session * CHANNELS

    def _rng(self, *stream: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, *stream]))

    def _session_plan(self) -> list[dict]:
        """Session i: patient i mod patients, one session per day at 09:00 + patient hours."""
        length = timedelta(microseconds=self.samples_per_session * SAMPLE_PERIOD_US)
        plan = []
        for i in range(self.sessions):
            patient = i % self.patients + 1
            started = self.start + timedelta(days=i // self.patients, hours=patient - 1)
            plan.append(
                {
                    "session_id": i + 1,
                    "patient_id": patient,
                    "device_id": 1000 + patient,
                    "task": TASKS[i % len(TASKS)],
                    "started_at": started,
                    "ended_at": started + length,
                    "sample_rate_hz": SAMPLE_RATE_HZ,
                    "channels": CHANNELS,
                    "samples": self.samples_per_session,
                }
            )
        return plan

    # -- the small tables -------------------------------------------------------------

    def patients_table(self) -> pl.DataFrame:
        rng = self._rng(_PATIENTS)
        n = self.patients
        return pl.DataFrame(
            {
                "patient_id": range(1, n + 1),
                "code": [f"P{i:04d}" for i in range(1, n + 1)],
                "cohort": [COHORTS[i % len(COHORTS)] for i in range(n)],
                "age_band": rng.choice(AGE_BANDS, n).tolist(),
                "enrolled_at": [self.start - timedelta(days=90 + 7 * i) for i in range(n)],
            },
            schema=schemas.PATIENTS,
        )

    def devices_table(self) -> pl.DataFrame:
        n = self.patients
        return pl.DataFrame(
            {
                "device_id": [1000 + i for i in range(1, n + 1)],
                "serial": [f"N1-{self.seed % 10_000:04d}-{i:04d}" for i in range(1, n + 1)],
                "patient_id": range(1, n + 1),
                "channels": [CHANNELS] * n,
                "firmware": [FIRMWARE[i % len(FIRMWARE)] for i in range(n)],
                "implanted_at": [self.start - timedelta(days=60 + 7 * i) for i in range(n)],
            },
            schema=schemas.DEVICES,
        )

    def sessions_table(self) -> pl.DataFrame:
        return pl.DataFrame(self._session_plan(), schema=schemas.SESSIONS)

    def cursor_events(self) -> pl.DataFrame:
        """The cursor at 60 Hz during every session: the labels for the neural data."""
        frames = []
        for s in self._session_plan():
            cursor = self._cursor(s["session_id"])
            seconds = s["samples"] / SAMPLE_RATE_HZ
            t_s = np.arange(0, seconds, 1 / CURSOR_RATE_HZ)
            x, y = cursor.position(t_s)
            vx, vy = cursor.velocity(t_s)
            target_id, tx, ty = cursor.targets(t_s)
            start_us = _epoch_us(s["started_at"])
            frames.append(
                pl.DataFrame(
                    {
                        "timestamp": _utc(start_us + np.rint(t_s * 1e6).astype(np.int64)),
                        "session_id": np.full(t_s.size, s["session_id"], np.int32),
                        "x": x.astype(np.float32),
                        "y": y.astype(np.float32),
                        "vx": vx.astype(np.float32),
                        "vy": vy.astype(np.float32),
                        "target_id": target_id,
                        "on_target": np.hypot(x - tx, y - ty) < TARGET_RADIUS,
                    },
                    schema=schemas.CURSOR_EVENTS,
                )
            )
        return pl.concat(frames)

    # -- the big table ----------------------------------------------------------------

    def _cursor(self, session_id: int) -> CursorPath:
        return CursorPath.random(self._rng(_CURSOR, session_id))

    def _channels(self, device_id: int) -> ChannelMap:
        return ChannelMap.random(self._rng(_DEVICE, device_id))

    def signal_chunks(self) -> Iterator[pl.DataFrame]:
        """The neural-signal rows in blocks of 262,144, in time order per session.

        Memory stays flat: one block (about 5 MB) exists at a time.
        """
        for s in self._session_plan():
            cursor = self._cursor(s["session_id"])
            channels = self._channels(s["device_id"])
            start_us = _epoch_us(s["started_at"])
            for block, first in enumerate(range(0, s["samples"], BLOCK_SAMPLES)):
                rng = self._rng(_BLOCK, s["session_id"], block)
                data = signal_block(rng, channels, cursor, first, BLOCK_SAMPLES)
                steps = start_us + (first + np.arange(BLOCK_SAMPLES)) * SAMPLE_PERIOD_US
                yield _signal_frame(s, steps, data)

    def neural_signals(self) -> pl.DataFrame:
        """All neural-signal rows in memory. For big runs, use :meth:`signal_chunks`."""
        return pl.concat(self.signal_chunks(), rechunk=False)


def _signal_frame(session: dict, steps_us: np.ndarray, data: SignalBlock) -> pl.DataFrame:
    """Rows in (timestamp, channel) order; the ids are constants, so they cost nothing."""
    n_steps, n_channels = data.voltage_uv.shape
    frame = pl.DataFrame(
        {
            "timestamp": _utc(np.repeat(steps_us, n_channels)),
            "channel": np.tile(np.arange(n_channels, dtype=np.int16), n_steps),
            "voltage_uv": data.voltage_uv.reshape(-1),
            "spike": data.spike.reshape(-1),
            "quality": data.quality.reshape(-1),
        }
    )
    ids = ("session_id", "device_id", "patient_id")
    frame = frame.with_columns(pl.lit(session[c], dtype=pl.Int32).alias(c) for c in ids)
    return frame.select(schemas.NEURAL_SIGNALS.names())


def _epoch_us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _utc(epoch_us: np.ndarray) -> pl.Series:
    return pl.Series(epoch_us, dtype=pl.Int64).cast(schemas.UTC_MICROS)
