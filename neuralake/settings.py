"""Settings: the one place that knows where the lab's data and services are.

Every notebook, lab, test and service reads its endpoints, credentials, bucket and
warehouse location from here, so switching from a laptop folder to the local stack to
real AWS is one word::

    import neuralake
    s = neuralake.settings()            # the stack if it is up, else the local folder
    s = neuralake.settings("aws")       # real S3, your AWS credentials
    pl.scan_delta(s.table_uri("neural_signals"), storage_options=s.storage_options)

Profiles:

``local``  a ``file://`` warehouse in the project's state folder; no services.
``stack``  MinIO (S3) and Kafka on 127.0.0.1, with the same ports and credentials as
           docker-compose.yml; the default while the stack is up.
``aws``    real AWS S3 (no endpoint override); the bucket comes from
           ``NEURALAKE_S3_BUCKET`` and credentials from the usual AWS chain.

Environment variables named ``NEURALAKE_*`` (see ``ENV_VARS``) override any field.
An unknown profile or a malformed value raises ``ConfigError`` with a one-line fix.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import ParseResult, urlparse

from neuralake.errors import ConfigError

PROFILES = ("local", "stack", "aws")

# The stack's fixed facts. docker-compose.yml repeats them, and a test checks they agree.
STACK_S3_ENDPOINT = "http://127.0.0.1:9000"
STACK_S3_CONSOLE_PORT = 9001
STACK_BUCKET = "neuralake"
STACK_ACCESS_KEY_ID = "neuralake"
STACK_SECRET_ACCESS_KEY = "neuralake-secret"
STACK_REGION = "us-east-1"
STACK_KAFKA_BOOTSTRAP = "127.0.0.1:9092"
STACK_ROAPI_HTTP = "127.0.0.1:8084"
STACK_ROAPI_POSTGRES = "127.0.0.1:5434"
STACK_ROAPI_FLIGHT_SQL = "127.0.0.1:32010"
STACK_POSTGRES_DSN = "postgresql://neuralake:neuralake-secret@127.0.0.1:5433/neuralake"

ENV_VARS = {
    "profile": "NEURALAKE_PROFILE",
    "warehouse_uri": "NEURALAKE_WAREHOUSE_URI",
    "s3_endpoint": "NEURALAKE_S3_ENDPOINT",
    "bucket": "NEURALAKE_S3_BUCKET",
    "region": "NEURALAKE_S3_REGION",
    "access_key_id": "NEURALAKE_S3_ACCESS_KEY_ID",
    "secret_access_key": "NEURALAKE_S3_SECRET_ACCESS_KEY",
    "kafka_bootstrap": "NEURALAKE_KAFKA_BOOTSTRAP",
    "roapi_http": "NEURALAKE_ROAPI_HTTP",
    "roapi_postgres": "NEURALAKE_ROAPI_POSTGRES",
    "roapi_flight_sql": "NEURALAKE_ROAPI_FLIGHT_SQL",
    "postgres_dsn": "NEURALAKE_POSTGRES_DSN",
    "state_dir": "NEURALAKE_STATE_DIR",
    "cache_dir": "NEURALAKE_CACHE_DIR",
}

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_TABLE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=/-]*$")


def project_dir() -> Path:
    """The checkout this package lives in (it is installed in editable mode)."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def state_dir() -> Path:
    """Where the lab keeps its data, logs and pid files: ``.state/`` in the project."""
    return Path(os.environ.get(ENV_VARS["state_dir"]) or project_dir() / ".state").resolve()


def cache_dir() -> Path:
    """Downloads and builds shared by every checkout: MinIO, Kafka and Spark jars."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "neuralake"
    return Path(os.environ.get(ENV_VARS["cache_dir"]) or default).resolve()


def stack_marker(state: Path | None = None) -> Path:
    """Written by ``neuralake stack up``, removed by ``down``: the stack is the default."""
    return (state or state_dir()) / "stack" / "up.json"


@dataclass(frozen=True)
class Settings:
    """Where things are for one profile. Build it with :func:`settings`."""

    profile: str
    warehouse_uri: str
    s3_endpoint: str | None
    bucket: str | None
    region: str
    access_key_id: str | None
    secret_access_key: str | None
    kafka_bootstrap: str | None
    roapi_http: str
    postgres_dsn: str | None
    roapi_postgres: str = STACK_ROAPI_POSTGRES
    roapi_flight_sql: str = STACK_ROAPI_FLIGHT_SQL
    state_dir: Path = field(default_factory=state_dir)
    cache_dir: Path = field(default_factory=cache_dir)

    def table_uri(self, name: str) -> str:
        """The URI of table ``name`` inside the warehouse, e.g. ``s3://neuralake/warehouse/x``."""
        if not _TABLE_NAME_RE.match(name) or ".." in name:
            raise ConfigError(
                f"table name {name!r} is not valid: use letters, digits and _ (e.g. 'signals')"
            )
        return f"{self.warehouse_uri.rstrip('/')}/{name}"

    @property
    def storage_options(self) -> dict[str, str]:
        """Options for delta-rs (``DeltaTable``, ``write_deltalake``) and Polars readers."""
        if self.warehouse_uri.startswith("file://"):
            return {}
        options = {"AWS_REGION": self.region}
        if self.access_key_id and self.secret_access_key:
            options["AWS_ACCESS_KEY_ID"] = self.access_key_id
            options["AWS_SECRET_ACCESS_KEY"] = self.secret_access_key
        if self.s3_endpoint:
            options["AWS_ENDPOINT_URL"] = self.s3_endpoint
            if self.s3_endpoint.startswith("http://"):
                # object_store refuses plain HTTP unless told: "URL scheme is not allowed".
                options["AWS_ALLOW_HTTP"] = "true"
        return options

    @property
    def boto3_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``boto3.client("s3", **kwargs)``."""
        kwargs = {"region_name": self.region}
        if self.s3_endpoint:
            kwargs["endpoint_url"] = self.s3_endpoint
        if self.access_key_id and self.secret_access_key:
            kwargs["aws_access_key_id"] = self.access_key_id
            kwargs["aws_secret_access_key"] = self.secret_access_key
        return kwargs

    @property
    def kafka_config(self) -> dict[str, str]:
        """Base configuration for confluent-kafka producers, consumers and AdminClient."""
        if not self.kafka_bootstrap:
            raise ConfigError(
                f"profile {self.profile!r} has no Kafka: start the stack (make up) "
                f"or set {ENV_VARS['kafka_bootstrap']}=host:port"
            )
        return {"bootstrap.servers": self.kafka_bootstrap}

    @property
    def spark_options(self) -> dict[str, str]:
        """Spark settings for Delta Lake and S3A on this profile, without the jars.

        The jars are an install fact, not a setting: ``neuralake.lab.stack.install.spark_conf(s)``
        adds them (``SparkSession.builder.config(map=spark_conf(s))``).
        """
        conf = {
            "spark.master": "local[2]",
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.ui.enabled": "false",
            "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
            "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
            "spark.sql.session.timeZone": "UTC",
            # Spark's Delta has no conditional-put LogStore for S3 (delta-io/delta#3596):
            # never let Spark and delta-rs commit to the same table at the same time.
            "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
            "spark.hadoop.fs.s3a.endpoint.region": self.region,
        }
        if self.access_key_id and self.secret_access_key:
            conf["spark.hadoop.fs.s3a.access.key"] = self.access_key_id
            conf["spark.hadoop.fs.s3a.secret.key"] = self.secret_access_key
        if self.s3_endpoint:
            conf["spark.hadoop.fs.s3a.endpoint"] = self.s3_endpoint
            conf["spark.hadoop.fs.s3a.path.style.access"] = "true"
            conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(
                self.s3_endpoint.startswith("https://")
            ).lower()
        return conf

    @property
    def spark_conf(self) -> dict[str, str]:
        """Moved to ``neuralake.lab.stack.install.spark_conf(s)``: settings do not know installs."""
        raise ConfigError(
            "settings().spark_conf moved: use neuralake.lab.stack.install.spark_conf(s), "
            "which adds Spark's jars to s.spark_options"
        )

    @property
    def roapi_env(self) -> dict[str, str]:
        """Environment for the ``roapi`` process: it reads S3 credentials from AWS_* vars."""
        return dict(self.storage_options)


def settings(profile: str | None = None) -> Settings:
    """Settings for ``profile`` (``local``, ``stack`` or ``aws``).

    Without a profile: ``NEURALAKE_PROFILE`` if set, else ``stack`` while the stack is
    up, else ``local``. ``NEURALAKE_*`` variables override single fields.
    """
    env = os.environ
    chosen = profile or env.get(ENV_VARS["profile"]) or _default_profile()
    if chosen not in PROFILES:
        raise ConfigError(f"unknown profile {chosen!r}: choose one of {', '.join(PROFILES)}")

    base = _profile_defaults(chosen)
    overrides = {
        name: env[var]
        for name, var in ENV_VARS.items()
        if name not in ("profile", "state_dir", "cache_dir") and env.get(var)
    }
    values = {**base, **overrides}
    _validate(chosen, values)
    return Settings(
        profile=chosen,
        warehouse_uri=_required(values, "warehouse_uri"),
        s3_endpoint=values["s3_endpoint"],
        bucket=values["bucket"],
        region=_required(values, "region"),
        access_key_id=values["access_key_id"],
        secret_access_key=values["secret_access_key"],
        kafka_bootstrap=values["kafka_bootstrap"],
        roapi_http=_required(values, "roapi_http"),
        roapi_postgres=_required(values, "roapi_postgres"),
        roapi_flight_sql=_required(values, "roapi_flight_sql"),
        postgres_dsn=values["postgres_dsn"],
    )


def _required(values: dict[str, str | None], name: str) -> str:
    """A field every profile sets: a missing one is a profile without a default for it."""
    value = values.get(name)
    if value is None:
        raise ConfigError(f"{name} has no value: set {ENV_VARS[name]}")
    return value


def _default_profile() -> str:
    return "stack" if stack_marker().exists() else "local"


def _profile_defaults(profile: str) -> dict[str, str | None]:
    if profile == "local":
        return {
            "warehouse_uri": (state_dir() / "warehouse").as_uri(),
            "s3_endpoint": None,
            "bucket": None,
            "region": STACK_REGION,
            "access_key_id": None,
            "secret_access_key": None,
            "kafka_bootstrap": None,
            "roapi_http": STACK_ROAPI_HTTP,
            "roapi_postgres": STACK_ROAPI_POSTGRES,
            "roapi_flight_sql": STACK_ROAPI_FLIGHT_SQL,
            "postgres_dsn": None,
        }
    if profile == "stack":
        return {
            "warehouse_uri": f"s3://{STACK_BUCKET}/warehouse",
            "s3_endpoint": STACK_S3_ENDPOINT,
            "bucket": STACK_BUCKET,
            "region": STACK_REGION,
            "access_key_id": STACK_ACCESS_KEY_ID,
            "secret_access_key": STACK_SECRET_ACCESS_KEY,
            "kafka_bootstrap": STACK_KAFKA_BOOTSTRAP,
            "roapi_http": STACK_ROAPI_HTTP,
            "roapi_postgres": STACK_ROAPI_POSTGRES,
            "roapi_flight_sql": STACK_ROAPI_FLIGHT_SQL,
            "postgres_dsn": STACK_POSTGRES_DSN,
        }
    # aws: nothing local; the bucket must be named, credentials come from the AWS chain.
    bucket = os.environ.get(ENV_VARS["bucket"])
    if not bucket:
        raise ConfigError(f"profile 'aws' needs a bucket: set {ENV_VARS['bucket']}=your-bucket")
    return {
        "warehouse_uri": f"s3://{bucket}/warehouse",
        "s3_endpoint": None,
        "bucket": bucket,
        "region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "",
        "access_key_id": os.environ.get("AWS_ACCESS_KEY_ID"),
        "secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY"),
        "kafka_bootstrap": None,
        "roapi_http": STACK_ROAPI_HTTP,
        "roapi_postgres": STACK_ROAPI_POSTGRES,
        "roapi_flight_sql": STACK_ROAPI_FLIGHT_SQL,
        "postgres_dsn": None,
    }


def _validate(profile: str, v: dict[str, str | None]) -> None:
    """Reject malformed values with the variable to fix and an example of a good one."""
    warehouse = v["warehouse_uri"] or ""
    if urlparse(warehouse).scheme not in ("s3", "file"):
        raise ConfigError(
            f"{ENV_VARS['warehouse_uri']}={warehouse!r} is not a warehouse URI: "
            "use s3://bucket/prefix or file:///absolute/path"
        )
    if v["s3_endpoint"]:
        url = urlparse(v["s3_endpoint"])
        if url.scheme not in ("http", "https") or not url.hostname or not _port_ok(url):
            raise ConfigError(
                f"{ENV_VARS['s3_endpoint']}={v['s3_endpoint']!r} is not an endpoint URL: "
                "use e.g. http://127.0.0.1:9000"
            )
    if v["bucket"] and not _BUCKET_RE.match(v["bucket"]):
        raise ConfigError(
            f"{ENV_VARS['bucket']}={v['bucket']!r} is not a valid S3 bucket name: "
            "use 3-63 lowercase letters, digits, '-' or '.'"
        )
    for name in ("kafka_bootstrap", "roapi_http", "roapi_postgres", "roapi_flight_sql"):
        value = v.get(name)
        if value and not _host_port_ok(value):
            raise ConfigError(
                f"{ENV_VARS[name]}={value!r} is not host:port: use e.g. 127.0.0.1:9092"
            )
    dsn = v["postgres_dsn"]
    if dsn and urlparse(dsn).scheme not in ("postgresql", "postgres"):
        raise ConfigError(
            f"{ENV_VARS['postgres_dsn']}={dsn!r} is not a PostgreSQL URL: "
            "use postgresql://user:password@host:port/db"
        )
    if profile == "aws" and not v["region"]:
        raise ConfigError(
            "profile 'aws' needs a region: set AWS_REGION or NEURALAKE_S3_REGION (e.g. us-east-1)"
        )


def _port_ok(url: ParseResult) -> bool:
    try:
        return url.port is None or 0 < url.port < 65536
    except ValueError:
        return False


def _host_port_ok(value: str) -> bool:
    for server in value.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            return False
    return True
