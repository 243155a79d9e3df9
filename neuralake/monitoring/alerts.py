"""Alert rules as data: a column of the samples, a threshold, and how long it must hold.

A rule says what a person should be woken for, in one line::

    Rule("consumer lag", "broker_lag", above=10_000, for_s=3,
         why="the writer is slower than the producers, or down")

It fires at a sample when ``column > above`` has held, sample after sample, for at least
``for_s`` seconds (Prometheus's ``for:`` clause: one noisy sample does not page anyone).
``missing_fires=True`` makes a missing value (the probe's service did not answer) count
as a breach: a writer that serves no metrics is not healthy, it is silent.
``Rule.absent(name, column)`` fires on missing values only.

:func:`evaluate` runs every rule over a frame of samples (:class:`~.watch.Watch`'s, or any
frame with a ``t_s`` column) and returns one row per rule: did it fire, first when, is it
still firing at the last sample, and the worst value seen (none for a rule on absence,
which watches no value). The rules are plain
dataclasses, so they can live in code review like the catalog's tables do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from neuralake.errors import ConfigError

RESULT_SCHEMA = {
    "alert": pl.String,
    "condition": pl.String,
    "fired": pl.Boolean,
    "first_fired_s": pl.Float64,
    "firing_at_end": pl.Boolean,
    "worst": pl.Float64,
    "why": pl.String,
}


@dataclass(frozen=True)
class Rule:
    """Fire when ``column > above`` has held for ``for_s`` seconds of samples."""

    name: str
    column: str
    above: float
    for_s: float = 0.0
    missing_fires: bool = False
    why: str = ""

    @classmethod
    def absent(cls, name: str, column: str, *, for_s: float = 0.0, why: str = "") -> Rule:
        """Fire when ``column`` has no value (its probe's service is silent) for ``for_s``."""
        return cls(name, column, above=math.inf, for_s=for_s, missing_fires=True, why=why)

    @property
    def condition(self) -> str:
        if self.above == math.inf:
            text = f"{self.column} missing" if self.missing_fires else "never"
        else:
            text = f"{self.column} > {self.above:g}" + (" or missing" if self.missing_fires else "")
        return text + (f" for {self.for_s:g} s" if self.for_s else "")

    def breached(self, value: float | None) -> bool:
        if value is None:
            return self.missing_fires
        return value > self.above


def firing(rule: Rule, t_s: Sequence[float], values: Sequence[float | None]) -> list[bool]:
    """At each sample: has the breach lasted ``rule.for_s`` seconds (samples in time order)?"""
    states, since = [], None
    for t, value in zip(t_s, values, strict=True):
        if rule.breached(value):
            since = t if since is None else since
            states.append(t - since >= rule.for_s)
        else:
            since = None
            states.append(False)
    return states


def evaluate(rules: Sequence[Rule], samples: pl.DataFrame) -> pl.DataFrame:
    """One row per rule: ``fired``, ``first_fired_s``, ``firing_at_end``, ``worst`` value."""
    if "t_s" not in samples.columns:
        raise ConfigError("the samples need a t_s column (seconds since the start): use Watch")
    samples = samples.sort("t_s")
    rows = []
    for rule in rules:
        if rule.column not in samples.columns:
            raise ConfigError(
                f"rule {rule.name!r} watches {rule.column!r}, not a column of the samples: "
                f"use one of {samples.columns}"
            )
        values = samples[rule.column].cast(pl.Float64).to_list()
        states = firing(rule, samples["t_s"].to_list(), values)
        fired_at = [t for t, on in zip(samples["t_s"], states, strict=True) if on]
        present = [v for v in values if v is not None]
        rows.append(
            {
                "alert": rule.name,
                "condition": rule.condition,
                "fired": bool(fired_at),
                "first_fired_s": fired_at[0] if fired_at else None,
                "firing_at_end": bool(states and states[-1]),
                # A rule on absence watches no value: its column's values say nothing.
                "worst": max(present) if present and rule.above != math.inf else None,
                "why": rule.why,
            }
        )
    return pl.DataFrame(rows, schema=RESULT_SCHEMA, orient="row")
