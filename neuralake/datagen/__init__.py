"""Deterministic synthetic data for the lab: a Neuralink-style study at any scale.

Start with :class:`Simulation` (what to generate) and :func:`write_tables` (where to)::

    from neuralake import datagen, settings
    sim = datagen.Simulation(rows=1_000_000, seed=7)
    sim.neural_signals()                                  # in memory
    datagen.write_tables(settings(), sim, files=16)       # Delta tables in the warehouse

The schemas (``datagen.schemas.NEURAL_SIGNALS`` ...) are plain constants: importing them
does no I/O.
"""

import polars as pl

from neuralake.datagen import schemas
from neuralake.datagen.schemas import SCHEMAS
from neuralake.datagen.simulation import Simulation
from neuralake.datagen.write import write_frames, write_tables


def neural_signals(rows: int = 1_048_576, *, seed: int = 0, sessions: int = 1) -> pl.DataFrame:
    """Neural-signal rows in memory: a shortcut for ``Simulation(...).neural_signals()``."""
    return Simulation(rows=rows, seed=seed, sessions=sessions, patients=1).neural_signals()


__all__ = [
    "SCHEMAS",
    "Simulation",
    "neural_signals",
    "schemas",
    "write_frames",
    "write_tables",
]
