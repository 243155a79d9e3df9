"""Settings: profiles, overrides, and one-line errors for bad values (pure logic)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

import neuralake
from neuralake.errors import ConfigError
from neuralake.settings import ENV_VARS


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NEURALAKE_STATE_DIR", str(tmp_path / "state"))


def test_local_profile_is_a_file_warehouse_without_services():
    s = neuralake.settings("local")
    assert s.warehouse_uri.startswith("file://")
    assert s.warehouse_uri.endswith("/state/warehouse")
    assert s.storage_options == {}
    with pytest.raises(ConfigError, match="has no Kafka"):
        _ = s.kafka_config


def test_stack_profile_matches_the_stack():
    s = neuralake.settings("stack")
    assert s.table_uri("signals") == "s3://neuralake/warehouse/signals"
    assert s.storage_options["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    assert s.storage_options["AWS_ALLOW_HTTP"] == "true"
    assert s.boto3_kwargs["endpoint_url"] == "http://127.0.0.1:9000"
    assert s.kafka_config == {"bootstrap.servers": "127.0.0.1:9092"}
    assert s.roapi_env["AWS_ACCESS_KEY_ID"] == "neuralake"


def test_default_profile_is_stack_only_while_the_stack_is_up(tmp_path):
    assert neuralake.settings().profile == "local"
    marker = tmp_path / "state" / "stack" / "up.json"
    marker.parent.mkdir(parents=True)
    marker.write_text("{}")
    assert neuralake.settings().profile == "stack"


def test_environment_overrides_a_field(monkeypatch):
    monkeypatch.setenv("NEURALAKE_PROFILE", "stack")
    monkeypatch.setenv("NEURALAKE_S3_ENDPOINT", "http://127.0.0.1:19000")
    s = neuralake.settings()
    assert s.profile == "stack"
    assert s.boto3_kwargs["endpoint_url"] == "http://127.0.0.1:19000"


@pytest.mark.parametrize("profile", ["local", "stack"])
def test_every_field_has_its_profile_default_or_its_override(monkeypatch, profile):
    s = neuralake.settings(profile)
    assert (s.roapi_http, s.roapi_postgres, s.roapi_flight_sql) == (
        "127.0.0.1:8084",
        "127.0.0.1:5434",
        "127.0.0.1:32010",
    )
    assert s.region == "us-east-1"
    monkeypatch.setenv("NEURALAKE_ROAPI_POSTGRES", "127.0.0.1:15434")
    monkeypatch.setenv("NEURALAKE_ROAPI_FLIGHT_SQL", "127.0.0.1:42010")
    monkeypatch.setenv("NEURALAKE_S3_REGION", "eu-west-1")
    s = neuralake.settings(profile)
    assert (s.roapi_postgres, s.roapi_flight_sql, s.region) == (
        "127.0.0.1:15434",
        "127.0.0.1:42010",
        "eu-west-1",
    )


def test_aws_profile_has_no_endpoint_override(monkeypatch):
    monkeypatch.setenv("NEURALAKE_S3_BUCKET", "my-lab-bucket")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    s = neuralake.settings("aws")
    assert s.table_uri("t") == "s3://my-lab-bucket/warehouse/t"
    assert "endpoint_url" not in s.boto3_kwargs
    assert "AWS_ENDPOINT_URL" not in s.storage_options


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("NEURALAKE_PROFILE", "prod", "unknown profile 'prod': choose one of local, stack, aws"),
        ("NEURALAKE_S3_ENDPOINT", "127.0.0.1:9000", "is not an endpoint URL: use e.g. http://"),
        ("NEURALAKE_S3_ENDPOINT", "http://127.0.0.1:99999", "is not an endpoint URL"),
        ("NEURALAKE_KAFKA_BOOTSTRAP", "localhost", "is not host:port"),
        ("NEURALAKE_S3_BUCKET", "Bad_Bucket", "is not a valid S3 bucket name"),
        ("NEURALAKE_WAREHOUSE_URI", "hdfs://x/y", "is not a warehouse URI"),
        ("NEURALAKE_POSTGRES_DSN", "mysql://x", "is not a PostgreSQL URL"),
    ],
)
def test_malformed_values_give_a_one_line_error(monkeypatch, var, value, message):
    monkeypatch.setenv(var, value)
    profile = None if var == "NEURALAKE_PROFILE" else "stack"
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as err:
        neuralake.settings(profile)
    assert "\n" not in str(err.value)


def test_aws_profile_without_bucket_names_the_variable():
    with pytest.raises(ConfigError, match="set NEURALAKE_S3_BUCKET"):
        neuralake.settings("aws")


def test_table_names_cannot_escape_the_warehouse():
    with pytest.raises(ConfigError, match="not valid"):
        neuralake.settings("stack").table_uri("../secrets")


def test_cli_prints_one_line_and_exits_2_for_an_unknown_profile():
    result = subprocess.run(
        [sys.executable, "-m", "neuralake", "settings", "--profile", "prod"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: unknown profile 'prod': choose one of local, stack, aws"
    )


def test_spark_options_are_plain_facts_and_the_installer_adds_the_jars(tmp_path):
    from neuralake.lab.stack.install import spark_conf

    s = neuralake.settings("stack")
    options = s.spark_options
    assert options["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert "spark.jars" not in options  # an install fact, not a setting
    with pytest.raises(ConfigError, match=r"use neuralake\.lab\.stack\.install\.spark_conf\(s\)"):
        _ = s.spark_conf
    # The installer's conf: the same options plus the resolved jars (a fake install here).
    jar = tmp_path / "delta.jar"
    jar.write_text("", encoding="utf-8")
    from neuralake.lab.stack import versions

    classpath = tmp_path / "cache" / "spark" / versions.DELTA_SPARK_VERSION / "classpath.txt"
    classpath.parent.mkdir(parents=True)
    classpath.write_text(str(jar), encoding="utf-8")
    conf = spark_conf(dataclasses.replace(s, cache_dir=tmp_path / "cache"))
    assert conf == {**options, "spark.jars": str(jar)}
