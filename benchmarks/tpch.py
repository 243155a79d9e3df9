"""Regenerate the committed TPC-H report: SF1, six engine columns, three runs each.

Run: ``.venv/bin/python benchmarks/tpch.py`` with the stack up (``make up``). It writes
``docs/benchmarks/tpch-sf1/{results.json,table.md,*.png}``; the first run generates the
data (about 2 minutes), later runs reuse it. ``spark_cluster`` starts the lab's standalone
Spark cluster (on its own ports) and stops it after. Any ``neuralake bench`` option can follow,
e.g. ``benchmarks/tpch.py --scale 10 --out build/tpch-sf10``.
"""

from __future__ import annotations

import sys

from neuralake.errors import NeuralakeError
from neuralake.lab.bench.cli import app

DEFAULTS = [
    "--suite", "tpch",
    "--scale", "1",
    "--engines", "polars,datafusion,duckdb,duckdb_arrow,spark,spark_cluster",
    "--runs", "3",
    "--out", "docs/benchmarks/tpch-sf1",
]  # fmt: skip

if __name__ == "__main__":
    try:
        app(DEFAULTS + sys.argv[1:], standalone_mode=False)
    except NeuralakeError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
