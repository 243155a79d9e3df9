"""docker-compose.yml, the native stack, the Maven POMs, pyproject.toml and
environment.yml all describe one stack: this checks they agree and are valid."""

from __future__ import annotations

import json
import re
import tomllib
import xml.etree.ElementTree as ET
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlparse

import jsonschema
import pyspark
import pytest
import yaml

from neuralake.lab.stack import versions
from neuralake.lab.stack.services import roapi, roapi_config_path
from neuralake.settings import (
    STACK_ACCESS_KEY_ID,
    STACK_KAFKA_BOOTSTRAP,
    STACK_POSTGRES_DSN,
    STACK_ROAPI_FLIGHT_SQL,
    STACK_ROAPI_HTTP,
    STACK_ROAPI_POSTGRES,
    STACK_S3_CONSOLE_PORT,
    STACK_S3_ENDPOINT,
    STACK_SECRET_ACCESS_KEY,
    settings,
)

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def vendored_schema(name: str) -> dict:
    """Schemas shipped inside check-jsonschema: no download at test time."""
    schema_dir = files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(schema_dir.joinpath(f"{name}.json").read_text())


@pytest.mark.parametrize(
    ("path", "schema"),
    [("docker-compose.yml", "compose-spec"), (".github/workflows/ci.yml", "github-workflows")],
)
def test_yaml_is_valid_against_its_schema(path, schema):
    document = yaml.safe_load((ROOT / path).read_text())
    if True in document:  # YAML 1.1 reads the workflow key `on:` as the boolean true
        document["on"] = document.pop(True)
    jsonschema.validate(document, vendored_schema(schema))


def test_schema_validation_can_fail():
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"services": {"x": {"ports": "9000"}}}, vendored_schema("compose-spec"))


def service(name: str) -> dict:
    return COMPOSE["services"][name]


def host_ports(name: str) -> set[int]:
    return {int(p.split(":")[1]) for p in service(name)["ports"]}


def test_images_match_the_native_versions():
    assert service("minio")["image"] == versions.MINIO_IMAGE
    assert service("kafka")["image"] == versions.KAFKA_IMAGE
    assert service("postgres")["image"] == versions.POSTGRES_IMAGE


def test_ports_are_published_on_loopback_only():
    for name in COMPOSE["services"]:
        for mapping in service(name).get("ports", []):  # host-networked Spark publishes none
            assert mapping.startswith("127.0.0.1:"), f"{name} publishes {mapping} beyond loopback"


def test_ports_match_the_stack_profile():
    s3_port = urlparse(STACK_S3_ENDPOINT).port
    assert host_ports("minio") == {s3_port, STACK_S3_CONSOLE_PORT}
    assert host_ports("kafka") == {int(STACK_KAFKA_BOOTSTRAP.rsplit(":", 1)[1])}
    assert host_ports("postgres") == {urlparse(STACK_POSTGRES_DSN).port}
    advertised = service("kafka")["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert advertised == f"PLAINTEXT://{STACK_KAFKA_BOOTSTRAP}"


def test_credentials_match_the_stack_profile():
    minio_env = service("minio")["environment"]
    assert minio_env["MINIO_ROOT_USER"] == STACK_ACCESS_KEY_ID
    assert minio_env["MINIO_ROOT_PASSWORD"] == STACK_SECRET_ACCESS_KEY
    dsn = urlparse(STACK_POSTGRES_DSN)
    pg_env = service("postgres")["environment"]
    assert (pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"]) == (dsn.username, dsn.password)
    assert pg_env["POSTGRES_DB"] == dsn.path.lstrip("/")


ROAPI_LISTENERS = (STACK_ROAPI_HTTP, STACK_ROAPI_POSTGRES, STACK_ROAPI_FLIGHT_SQL)


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def test_roapi_image_is_the_release_of_the_native_wheel():
    assert version("roapi") == versions.ROAPI_VERSION
    assert service("roapi")["image"] == versions.ROAPI_IMAGE


def test_roapi_listens_where_the_native_stack_does():
    assert host_ports("roapi") == {_port(a) for a in ROAPI_LISTENERS}
    command = service("roapi")["command"]
    flags = dict(zip(command[::2], command[1::2], strict=True))
    inside = {flags["--addr-http"], flags["--addr-postgres"], flags["--addr-flight-sql"]}
    assert {_port(a) for a in inside} == {_port(a) for a in ROAPI_LISTENERS}


def test_native_roapi_binds_every_listener_on_loopback():
    s = settings("stack")
    assert all(a.startswith("127.0.0.1:") for a in ROAPI_LISTENERS)
    assert set(roapi(s).ports) == {_port(a) for a in ROAPI_LISTENERS}


def test_roapi_reads_the_config_the_native_stack_serves():
    s = settings("stack")
    (volume,) = service("roapi")["volumes"]
    source, target, _ = volume.split(":")
    flags = service("roapi")["command"]
    config = flags[flags.index("--config") + 1]
    assert (ROOT / source).resolve() / Path(config).name == roapi_config_path(s).resolve()
    assert Path(config).parent == Path(target)


def test_roapi_reaches_minio_with_the_stack_credentials():
    env = service("roapi")["environment"]
    native = settings("stack").roapi_env
    assert {k: v for k, v in env.items() if k != "AWS_ENDPOINT_URL"} == {
        k: v for k, v in native.items() if k != "AWS_ENDPOINT_URL"
    }
    assert urlparse(env["AWS_ENDPOINT_URL"]).port == urlparse(STACK_S3_ENDPOINT).port


def pom_property(name: str, prop: str) -> str:
    root = ET.parse(ROOT / "deps" / name / "pom.xml").getroot()
    return root.find(f"m:properties/m:{prop}", POM_NS).text


def test_maven_jars_match_the_pinned_versions():
    assert pom_property("kafka", "kafka.version") == versions.KAFKA_VERSION
    assert pom_property("spark", "delta.version") == versions.DELTA_SPARK_VERSION
    assert pom_property("spark", "hadoop.version") == versions.HADOOP_AWS_VERSION


def test_hadoop_aws_matches_the_hadoop_inside_pyspark():
    jars = Path(pyspark.__file__).parent / "jars"
    (client,) = jars.glob("hadoop-client-api-*.jar")
    assert client.name == f"hadoop-client-api-{versions.HADOOP_AWS_VERSION}.jar"
    assert pyspark.__version__ == versions.SPARK_VERSION


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = project["project"]["dependencies"] + project["dependency-groups"]["dev"]
    return dict(pin.split("==") for pin in pins)


def test_python_pins_match_spark_jars():
    assert pyproject_pins()["delta-spark"] == versions.DELTA_SPARK_VERSION
    assert pyproject_pins()["pyspark"] == versions.SPARK_VERSION


def test_environment_yml_pins_the_same_versions_as_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    (pip_section,) = [d for d in env["dependencies"] if isinstance(d, dict)]
    conda_pins = dict(pin.split("==") for pin in pip_section["pip"])
    assert conda_pins == pyproject_pins()
    assert "python=3.11" in env["dependencies"]


def test_ci_runs_make_test_and_nothing_else():
    lines = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line.strip()]
    commands = [line for line in lines if not line.startswith(("#", "set ", "cd "))]
    assert commands == ["make test"]
    assert re.search(r"^test:.*\bsetup\b.*\blint\b", (ROOT / "Makefile").read_text(), re.M)


# --- Spark: the compose cluster is the native `neuralake spark cluster up` -------------

SPARK_SERVICES = {"spark-master": "master", "spark-worker": "worker"}


def native_spark_commands() -> dict[str, list[str]]:
    """What `neuralake spark cluster up` runs at its defaults, without the local paths."""
    from neuralake.lab.stack import spark_cluster as cluster

    c = cluster.Cluster(state_dir=Path("/state"))
    commands = {"master": cluster.master_command(c), "worker": cluster.worker_command(c, 1)}
    return {name: _without_work_dir(cmd[1:]) for name, cmd in commands.items()}


def _without_work_dir(args: list[str]) -> list[str]:
    """The worker's scratch folder is a path of its own in each mode."""
    if "--work-dir" not in args:
        return args
    at = args.index("--work-dir")
    return args[:at] + args[at + 2 :]


def test_spark_image_is_the_spark_of_the_pyspark_wheel_on_java_17():
    for name in SPARK_SERVICES:
        image = service(name)["image"]
        assert image == f"apache/spark:{pyspark.__version__}-scala2.13-java17-python3-ubuntu"
        assert service(name)["profiles"] == ["spark"]  # started only when asked for


def test_spark_services_run_the_native_cluster_commands():
    native = native_spark_commands()
    for name, role in SPARK_SERVICES.items():
        command = service(name)["command"]
        assert command[0] == "/opt/spark/bin/spark-class"
        assert _without_work_dir(command[1:]) == native[role], name


def test_spark_services_bind_loopback_with_the_native_daemon_settings():
    from neuralake.lab.stack import spark_cluster as cluster

    for name in SPARK_SERVICES:
        assert service(name)["network_mode"] == "host", f"{name}: executors must reach the driver"
        env = service(name)["environment"]
        assert env["SPARK_LOCAL_IP"] == cluster.HOST == "127.0.0.1"
        assert {k: v for k, v in env.items() if k in cluster.DAEMON_ENV} == {
            k: v for k, v in cluster.DAEMON_ENV.items() if k in env
        }
    assert service("spark-master")["environment"]["SPARK_MASTER_OPTS"]
    assert service("spark-worker")["environment"]["SPARK_WORKER_OPTS"]
    command = service("spark-master")["command"]
    assert command[command.index("--host") + 1] == "127.0.0.1"


def test_spark_ports_avoid_the_stack():
    from neuralake.lab.stack import spark_cluster as cluster

    c = cluster.Cluster(state_dir=Path("/state"))
    spark_ports = {c.master_port, c.master_ui_port, c.worker_ui_port}
    stack_ports = {p for name in COMPOSE["services"] for p in _published(name)}
    assert spark_ports.isdisjoint(stack_ports), spark_ports & stack_ports
    assert 8080 not in spark_ports  # Spark's usual UI port, often held by other software


def _published(name: str) -> set[int]:
    return {int(p.split(":")[1]) for p in service(name).get("ports", [])}


def test_native_services_need_the_stack_profile_s_addresses():
    from neuralake.errors import ConfigError
    from neuralake.lab.stack.services import native_services

    with pytest.raises(ConfigError, match="needs NEURALAKE_S3_ENDPOINT: set it, or use the stack"):
        native_services(settings("local"))  # a file warehouse, no servers to start
    assert [svc.name for svc in native_services(settings("stack"))][:3] == [
        "minio",
        "kafka",
        "postgres",
    ]
