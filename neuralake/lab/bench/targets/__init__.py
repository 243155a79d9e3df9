"""The writer's and ROAPI's benchmarks, each with its targets beside it.

One module per script in ``benchmarks/``: its ``TARGETS`` (the issue's numbers, which the
script reads too), ``checks(run)`` (one saved run against them) and ``BENCHMARK``.
"""

from neuralake.lab.bench.targets import (
    api_latency,
    compaction_read,
    writer_freshness,
    writer_throughput,
)

#: In the order the report shows them.
BENCHMARKS = (
    writer_throughput.BENCHMARK,
    writer_freshness.BENCHMARK,
    compaction_read.BENCHMARK,
    api_latency.BENCHMARK,
)
