"""Benchmarks: the same questions asked of Polars, DataFusion, DuckDB and Spark.

One module per job:

- :mod:`neuralake.bench.data`     TPC-H from ``tpchgen-cli``, cached, as Delta tables.
- :mod:`neuralake.bench.queries`  the 22 TPC-H queries: one SQL text, one Polars version.
- :mod:`neuralake.bench.engines`  one small adapter per engine: register, run, close.
- :mod:`neuralake.bench.verify`   every engine's answer checked against the others.
- :mod:`neuralake.bench.run`      warm-up, repeated runs, median and spread, machine info.
- :mod:`neuralake.bench.ceiling`  the machine's Parquet scan-and-decode bytes per second.
- :mod:`neuralake.bench.report`   TPC-H results as JSON, a Markdown table, plots as PNG.
- :mod:`neuralake.bench.targets`  the writer's and ROAPI's benchmarks, each with its targets.
- :mod:`neuralake.bench.acceptance` their runs against the targets, as the report's section.
- :mod:`neuralake.bench.compare`  flags the queries that got slower between two results.
- :mod:`neuralake.bench.cli`      ``neuralake bench ...``.
"""
