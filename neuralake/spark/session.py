"""One call to a local SparkSession with Delta Lake and S3A wired to the lab's settings.

``session()`` is the only place a notebook, a test or the ELT job builds Spark::

    from neuralake import spark
    sp = spark.session()                      # local[2], Delta + S3A from settings()
    sp.read.format("delta").load(settings().table_uri("neural_signals_bronze")).count()

What it does, and why:

- pyspark's own jars have neither Delta Lake nor ``hadoop-aws``. ``make setup`` resolves
  them once with Maven into the Maven cache; ``neuralake.lab.stack.install.spark_conf``
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
import re
import shutil
import socket
import sys
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING

from neuralake.errors import ConfigError, StackError
from neuralake.settings import Settings
from neuralake.settings import settings as load_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

MASTER_ENV = "NEURALAKE_SPARK_MASTER"

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

# Added when the master is a standalone cluster (``spark://host:port``).
CLUSTER_DEFAULTS: dict[str, str] = {
    # Each executor is a JVM of its own on a worker; 1 GiB fits the lab's 2 GiB worker.
    "spark.executor.memory": "1g",
    # The application's web UI serves its REST API (/api/v1: jobs, stages, executors),
    # which lesson 06 and the cluster tests read; the master links to it.
    "spark.ui.enabled": "true",
    # Python UDFs run in a Python process beside each executor: the workers of the lab's
    # cluster run on this machine, so this interpreter (which has pyspark) serves them.
    "spark.pyspark.python": sys.executable,
}

_MIN_JAVA = 17  # Spark 4 runs on Java 17 or 21
_MASTER_RE = re.compile(r"^(local(\[([0-9]+|\*)\])?|spark://[^:/\s]+:[0-9]+|yarn|k8s://\S+)$")


def spark_config(
    settings: Settings | None = None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The full configuration ``session()`` uses: local defaults, settings, jars, extras.

    ``NEURALAKE_SPARK_MASTER`` (or ``extra={"spark.master": ...}``) points the same code
    at a standalone cluster, e.g. ``spark://127.0.0.1:7077`` (``neuralake spark cluster
    up`` starts one); a cluster master adds ``CLUSTER_DEFAULTS``.
    """
    from neuralake.lab.stack.install import spark_conf

    s = settings or load_settings()
    conf = {**LOCAL_DEFAULTS, **spark_conf(s)}
    master = (extra or {}).get("spark.master") or os.environ.get(MASTER_ENV) or conf["spark.master"]
    if not _MASTER_RE.match(master):
        raise ConfigError(
            f"Spark master {master!r} is not a master URL: use local[2] or spark://host:7077 "
            f"(set by --master or {MASTER_ENV})"
        )
    conf["spark.master"] = master
    if master.startswith("spark://"):
        conf.update(CLUSTER_DEFAULTS)
    conf.update(extra or {})
    return conf


def check_master(master: str, timeout: float = 3.0) -> None:
    """A standalone master answers at ``spark://host:port``, or a one-line StackError.

    Without this a driver waits about a minute before Spark gives up on a master that
    is not there ("All masters are unresponsive").
    """
    if not master.startswith("spark://"):
        return
    host, port = master.removeprefix("spark://").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise StackError(
            f"no Spark master answers at {master} ({err.strerror or err}): start one with "
            "`neuralake spark cluster up`, or unset NEURALAKE_SPARK_MASTER for local[2]"
        ) from err


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


def session(
    settings: Settings | None = None, extra: Mapping[str, str] | None = None
) -> SparkSession:
    """A SparkSession with Delta Lake and S3A for ``settings`` (default: the active profile).

    The second call in a process returns the running session at once. ``extra`` adds
    or overrides Spark settings; a new master applies after ``stop()``, but the driver's
    memory is fixed when this process starts its JVM, which ``stop()`` does not end
    (measured: 2g asked for after ``stop()`` left a 1,024 MiB heap): set it in the first
    call, or restart the kernel.
    """
    from pyspark.sql import SparkSession

    # pyspark 4.2 warns, once per process, that it does not support pandas 3 yet; the
    # lab's Spark code uses no pandas (rows cross to Python as Arrow), so the warning
    # would only clutter every notebook's output.
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    active = SparkSession.getActiveSession()
    if active is not None and not extra:
        return active
    conf = spark_config(settings, extra)  # raises StackError when the jars are missing
    check_java()
    check_master(conf["spark.master"])
    # Bind the driver to loopback, like spark.driver.host, and skip the hostname warning.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    options: dict[str, bool | float | int | str | None] = dict(conf)
    return SparkSession.builder.config(map=options).getOrCreate()


def stop() -> None:
    """Stop this process's SparkSession, if one is running (its JVM lives on until the
    process exits, so the driver's memory stays what the first session asked for)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
