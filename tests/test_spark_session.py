"""The Spark session: one call, Delta and S3A configured, fast the second time, clear errors."""

from __future__ import annotations

import dataclasses
import time

import pytest

import neuralake
from neuralake import spark
from neuralake.errors import StackError


def test_missing_jars_name_the_fix(tmp_path):
    s = dataclasses.replace(neuralake.settings("stack"), cache_dir=tmp_path / "empty-cache")
    with pytest.raises(StackError, match=r"not installed: run `make setup`"):
        spark.spark_config(s)


def test_missing_java_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(StackError, match=r"Java 17\+ .*JAVA_HOME=.*apt-get install openjdk"):
        spark.check_java()


def test_master_comes_from_the_environment_for_a_real_cluster(monkeypatch):
    monkeypatch.setenv("NEURALAKE_SPARK_MASTER", "spark://spark-master:7077")
    conf = spark.spark_config(neuralake.settings("stack"))
    assert conf["spark.master"] == "spark://spark-master:7077"
    assert "delta-spark" in conf["spark.jars"] and "hadoop-aws" in conf["spark.jars"]


@pytest.mark.stack
def test_session_is_configured_and_fast_the_second_time(stack_settings):
    from pyspark.sql import SparkSession

    already_running = SparkSession.getActiveSession() is not None  # an earlier test's
    started = time.perf_counter()
    first = spark.session(stack_settings)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    second = spark.session(stack_settings)
    warm = time.perf_counter() - started
    print(f"session(): cold {cold:.1f} s, warm {warm * 1000:.1f} ms")
    assert second is first
    assert warm < 0.5  # the JVM starts once per process
    if not already_running:
        assert cold > 0.5, "the first call should have started the JVM"
    assert first.conf.get("spark.sql.extensions") == "io.delta.sql.DeltaSparkSessionExtension"
    assert first.conf.get("spark.sql.shuffle.partitions") == "4"
    assert first.conf.get("spark.hadoop.fs.s3a.endpoint") == stack_settings.s3_endpoint


def test_jars_command_prints_the_classpath_for_spark_submit():
    from typer.testing import CliRunner

    from neuralake.lab.cli import spark as cli

    result = CliRunner().invoke(cli.app, ["jars"])
    assert result.exit_code == 0, result.output
    jars = result.output.strip().split(",")
    assert any("delta-spark" in jar for jar in jars) and all(jar.endswith(".jar") for jar in jars)
