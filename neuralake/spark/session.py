"""One call to a local SparkSession with Delta Lake and S3A wired to the lab's settings.

``session()`` is the only place a notebook, a test or the ELT job builds Spark::

    from neuralake import spark
    sp = spark.session()                      # local[2], Delta + S3A from settings()
    sp.read.format("delta").load(settings().table_uri("neural_signals_bronze")).count()

What it does, and why:

- pyspark's own jars have neither Delta Lake nor ``hadoop-aws``. ``make setup`` resolves
  them once with Maven into the Maven cache; ``neuralake.stack.install.spark_conf``
  returns the profile's options plus that list as ``spark.jars``. Nothing downloads here.
- Memory fits a 2-core, 8 GiB laptop shared with MinIO, Kafka and Jupyter: a 1 GiB
  driver (local mode runs executors inside the driver) and 4 shuffle partitions instead
  of Spark's 200, which on lab-sized data would be 200 near-empty tasks per shuffle.
- The first call starts a JVM: about 12 s on an idle 2-core machine, over 30 s while
  other work runs (pyspark 4.2.0, Java 17). Later calls return the running session in
  milliseconds; ``tests/test_spark_session.py`` measures both.
- Missing Java or missing jars fail before the JVM starts, with one line naming the fix.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping

from neuralake.errors import StackError
from neuralake.settings import Settings
from neuralake.settings import settings as load_settings

# Lab-sized defaults; a real cluster overrides all of them (see docs/spark.md).
LOCAL_DEFAULTS: dict[str, str] = {
    "spark.app.name": "neuralake",
    "spark.driver.memory": "1g",
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "2",
    # Delta reads its log with this many tasks (default 50): lab tables have tiny logs.
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.sql.adaptive.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
}

_MIN_JAVA = 17  # Spark 4 runs on Java 17 or 21


def spark_config(
    settings: Settings | None = None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The full configuration ``session()`` uses: local defaults, settings, jars, extras.

    ``NEURALAKE_SPARK_MASTER`` (or ``extra={"spark.master": ...}``) points the same code
    at a standalone cluster, e.g. ``spark://host:7077``.
    """
    from neuralake.stack.install import spark_conf

    s = settings or load_settings()
    conf = {**LOCAL_DEFAULTS, **spark_conf(s)}
    master = os.environ.get("NEURALAKE_SPARK_MASTER")
    if master:
        conf["spark.master"] = master
    conf.update(extra or {})
    return conf


def check_java() -> str:
    """The ``java`` that Spark will start, or a one-line StackError saying how to get one."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        raise StackError(
            f"Spark needs Java {_MIN_JAVA}+ and none was found"
            + (f" under JAVA_HOME={home}" if home else " on PATH")
            + ": install it (apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )
    return java


def session(settings: Settings | None = None, extra: Mapping[str, str] | None = None):
    """A SparkSession with Delta Lake and S3A for ``settings`` (default: the active profile).

    The second call in a process returns the running session at once. ``extra`` adds
    or overrides Spark settings; settings that Spark fixes at JVM start (memory, jars,
    master) only apply on the first call, so change them before the first call or
    after ``stop()``.
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and not extra:
        return active
    conf = spark_config(settings, extra)  # raises StackError when the jars are missing
    check_java()
    # Bind the driver to loopback, like spark.driver.host, and skip the hostname warning.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return SparkSession.builder.config(map=conf).getOrCreate()


def stop() -> None:
    """Stop this process's SparkSession and its JVM, if one is running."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
