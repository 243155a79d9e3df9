"""Benchmarks: the same questions asked of Polars, DataFusion, DuckDB and Spark.

One module per job:

- :mod:`neuralake.lab.bench.data`     TPC-H from ``tpchgen-cli``, cached, as Delta tables.
- :mod:`neuralake.lab.bench.queries`  the 22 TPC-H queries: one SQL text, one Polars version.
- :mod:`neuralake.lab.bench.engines`  one small adapter per engine: register, run, close.
- :mod:`neuralake.lab.bench.verify`   every engine's answer checked against the others.
- :mod:`neuralake.lab.bench.run`      warm-up, repeated runs, median and spread, machine info.
- :mod:`neuralake.lab.bench.ceiling` each query's columns read by pyarrow alone: the ceiling.
- :mod:`neuralake.lab.bench.report`   TPC-H results as JSON, a Markdown table, plots as PNG.
- :mod:`neuralake.lab.bench.targets`  the writer's and ROAPI's benchmarks, each with its targets.
- :mod:`neuralake.lab.bench.acceptance` their runs against the targets, as the report's section.
- :mod:`neuralake.lab.bench.compare`  flags the queries that got slower between two results.
- :mod:`neuralake.lab.bench.cli`      ``neuralake bench ...``.
"""
