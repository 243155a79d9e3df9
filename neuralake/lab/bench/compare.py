"""Compare two result files: which queries got slower, and by how much.

``neuralake bench compare BASELINE NEW`` prints one line per (query, engine) present in
both files and exits with status 1 when any median is slower than the baseline by more
than the threshold (default 20 %: on a shared 2-core machine, repeated medians of the
same code differ by up to about 10 %).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from neuralake.errors import ConfigError

DEFAULT_THRESHOLD = 0.20


@dataclass(frozen=True)
class Change:
    query: str
    engine: str
    baseline_s: float
    new_s: float

    @property
    def ratio(self) -> float:
        return self.new_s / self.baseline_s if self.baseline_s > 0 else float("inf")

    def regressed(self, threshold: float) -> bool:
        return self.ratio > 1 + threshold


def load(path: Path) -> dict:
    """A result file written by ``neuralake bench``; a bad path is a one-line error."""
    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"no result file at {path}: run `neuralake bench --out DIR` first"
        ) from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path} is not JSON ({err.msg}): pass a results.json") from None
    if "results" not in document:
        raise ConfigError(f"{path} has no 'results': pass a results.json from neuralake bench")
    return document


def changes(baseline: dict, new: dict) -> list[Change]:
    """Median times of every (query, engine) that both documents measured."""
    before = {(r["query"], r["engine"]): r["median_s"] for r in baseline["results"]}
    return [
        Change(r["query"], r["engine"], before[(r["query"], r["engine"])], r["median_s"])
        for r in new["results"]
        if (r["query"], r["engine"]) in before
    ]


def regressions(baseline: dict, new: dict, threshold: float = DEFAULT_THRESHOLD) -> list[Change]:
    """The changes slower than the baseline by more than ``threshold`` (0.2 = 20 %)."""
    return [c for c in changes(baseline, new) if c.regressed(threshold)]
