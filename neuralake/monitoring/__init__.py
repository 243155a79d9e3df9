"""Monitoring and governance of the lab's pipeline, in the lab's own terms.

Each module has one job:

- :mod:`neuralake.monitoring.watch`: sample the writer's ``/metrics``, the broker's view
  of lag and what a reader sees, over time, into a Polars frame (one row per sample).
- :mod:`neuralake.monitoring.alerts`: small declarative rules (a metric, a threshold, how
  long it must hold) evaluated against those samples.
- :mod:`neuralake.monitoring.audit`: who wrote what and when, from the Delta log of each
  table (engine, operation, Kafka offsets, rows and bytes added, the ELT's metadata).
- :mod:`neuralake.monitoring.lineage`: the catalog's lineage plus the services around it
  (producer, ROAPI), drawn with matplotlib.

Lesson 08 (``notebooks/08_whole_pipeline.py``) uses all four; ``docs/monitoring.md``
explains the rules and why each one is worth an alert.
"""

from neuralake.monitoring import alerts, audit, lineage, watch
from neuralake.monitoring.alerts import Rule, evaluate
from neuralake.monitoring.watch import Watch

__all__ = ["Rule", "Watch", "alerts", "audit", "evaluate", "lineage", "watch"]
