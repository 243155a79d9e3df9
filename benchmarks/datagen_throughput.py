"""How fast does the generator make neural-signal rows, in memory, on one core?

Run: ``.venv/bin/python benchmarks/datagen_throughput.py [--rows 20000000]``.
The lab's target is at least 5 million rows per second. Prints rows/s for each of a
few repeats and the best, so a noisy neighbour on a shared machine shows as spread.
"""

from __future__ import annotations

import argparse
import os
import time

# One core: NumPy and Polars may not spread the work over threads.
os.environ.setdefault("POLARS_MAX_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from neuralake.datagen import Simulation  # imported after the thread limits

TARGET_ROWS_PER_S = 5_000_000


def measure(rows: int, seed: int) -> float:
    """Rows per second to generate ``rows`` neural-signal rows, chunk by chunk."""
    simulation = Simulation(rows=rows, sessions=2, seed=seed)
    start = time.perf_counter()
    produced = sum(chunk.height for chunk in simulation.signal_chunks())
    return produced / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # pin to one core
    results = [measure(args.rows, seed) for seed in range(args.repeats)]
    for seed, rate in enumerate(results):
        print(f"run {seed}: {rate:,.0f} rows/s")
    best = max(results)
    verdict = "meets" if best >= TARGET_ROWS_PER_S else "MISSES"
    print(f"best: {best:,.0f} rows/s ({verdict} the {TARGET_ROWS_PER_S:,} rows/s target)")


if __name__ == "__main__":
    main()
