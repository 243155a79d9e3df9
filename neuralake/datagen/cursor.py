"""A cursor that moves smoothly around the screen: the label the neural data is tied to.

Neuralink's labelled-data use case: a participant moves a cursor (or plays a game) while
the implant records, and a decoder learns velocity from spikes. Here the cursor path is
a sum of slow sine waves, so its position and velocity at ANY instant are one formula.
That lets the signal generator modulate firing rates by the velocity at every 100 µs
sample while the event table samples the same path at 60 Hz, with no shared state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COMPONENTS = 3  # sine waves per axis
AMPLITUDE = 0.45  # sum of amplitudes: the cursor stays within 0.05..0.95 of the screen
TARGET_PERIOD_S = 2.0  # a new target appears every 2 seconds
TARGET_RADIUS = 0.08  # the cursor is "on target" within this distance


@dataclass(frozen=True)
class CursorPath:
    """Position and velocity of one session's cursor as functions of time (seconds)."""

    freqs_hz: np.ndarray  # shape (2, COMPONENTS): x and y
    amplitudes: np.ndarray  # shape (2, COMPONENTS), each row sums to AMPLITUDE
    phases: np.ndarray  # shape (2, COMPONENTS)

    @classmethod
    def random(cls, rng: np.random.Generator) -> CursorPath:
        weights = rng.uniform(0.2, 1.0, size=(2, COMPONENTS))
        return cls(
            freqs_hz=rng.uniform(0.1, 0.6, size=(2, COMPONENTS)),
            amplitudes=AMPLITUDE * weights / weights.sum(axis=1, keepdims=True),
            phases=rng.uniform(0, 2 * np.pi, size=(2, COMPONENTS)),
        )

    def _angles(self, t_s: np.ndarray) -> np.ndarray:
        # shape (2, COMPONENTS, len(t)): the argument of every sine, for both axes
        omega = 2 * np.pi * self.freqs_hz
        return omega[..., None] * t_s[None, None, :] + self.phases[..., None]

    def position(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Screen position (0..1) at times ``t_s`` (seconds since the session started)."""
        xy = 0.5 + (self.amplitudes[..., None] * np.sin(self._angles(t_s))).sum(axis=1)
        return xy[0], xy[1]

    def velocity(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Velocity (screen widths per second): the exact derivative of :meth:`position`."""
        scale = self.amplitudes * 2 * np.pi * self.freqs_hz
        vxy = (scale[..., None] * np.cos(self._angles(t_s))).sum(axis=1)
        return vxy[0], vxy[1]

    @property
    def max_speed(self) -> float:
        """An upper bound of |vx| and |vy|: divides velocity into the range -1..1."""
        return float((self.amplitudes * 2 * np.pi * self.freqs_hz).sum(axis=1).max())

    def targets(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The target shown at each time: its id and where it is.

        Target ``k`` is shown from ``k * TARGET_PERIOD_S`` and sits where the cursor will be
        when the next target appears, so a good "player" reaches it at the end of its turn.
        """
        target_id = np.floor(t_s / TARGET_PERIOD_S).astype(np.int32)
        tx, ty = self.position((target_id + 1) * TARGET_PERIOD_S)
        return target_id, tx, ty
