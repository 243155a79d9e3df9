"""Spark, the cold path: a local session with Delta and S3A, a write guard, the ELT job.

- :func:`session` builds (once) a local SparkSession wired to the lab's settings.
- :mod:`neuralake.spark.guard` refuses Spark writes to tables the streaming writer owns.
- :mod:`neuralake.spark.elt` turns bronze into silver and gold, incrementally.
"""

from neuralake.spark.session import check_java, session, spark_config, stop

__all__ = ["check_java", "session", "spark_config", "stop"]
