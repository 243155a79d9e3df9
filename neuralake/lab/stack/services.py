"""The native stack's services: what each one runs, where it keeps data, how it is checked.

Ports, credentials and the bucket all come from the ``stack`` settings profile, so the
same code can start a second, isolated stack on other ports (the tests do).
"""

from __future__ import annotations

import base64
import getpass
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from neuralake.errors import ConfigError, StackError
from neuralake.lab.stack import health, versions
from neuralake.lab.stack.install import kafka_classpath, minio_binary
from neuralake.settings import ENV_VARS, Settings


@dataclass(frozen=True)
class Service:
    name: str
    address: str  # what a client connects to
    ports: tuple[int, ...]  # every port the process binds
    data_dir: Path
    command: Callable[[], list[str]]  # built when started: it may need installed tools
    check: Callable[[Settings], None]
    start_timeout: float
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[], None] | None = None  # runs before each native start
    user: str | None = None  # run as this user (PostgreSQL refuses to run as root)


def roapi_config_path(s: Settings) -> Path:
    """Where ``neuralake catalog roapi`` writes the config the stack serves."""
    return s.state_dir / "roapi" / "roapi.yml"


# Every service the native stack can run, in start order (ROAPI only once it has a config).
START_ORDER = ("minio", "kafka", "postgres", "roapi")


def native_services(s: Settings) -> list[Service]:
    """Every service of the native stack, in start order."""
    services = [minio(s), kafka(s), postgres(s)]
    if roapi_config_path(s).exists():
        services.append(roapi(s))
    return services


def minio(s: Settings) -> Service:
    endpoint = _needed(s, "s3_endpoint")
    url = urlparse(endpoint)
    port = url.port or 80
    data = s.state_dir / "minio" / "data"
    return Service(
        name="minio",
        address=endpoint,
        ports=(port, port + 1),
        data_dir=data,
        command=lambda: [
            str(minio_binary(s.cache_dir)),
            "server",
            str(data),
            "--address",
            f"{url.hostname}:{port}",
            "--console-address",
            f"{url.hostname}:{port + 1}",
        ],
        env={
            "MINIO_ROOT_USER": s.access_key_id or "",
            "MINIO_ROOT_PASSWORD": s.secret_access_key or "",
            "MINIO_UPDATE": "off",
        },
        check=health.check_s3,
        start_timeout=60,
        prepare=lambda: data.mkdir(parents=True, exist_ok=True),
    )


def kafka(s: Settings) -> Service:
    bootstrap = _needed(s, "kafka_bootstrap")
    host, port = bootstrap.rsplit(":", 1)
    broker, controller = int(port), int(port) + 1
    home = s.state_dir / "kafka"
    data = home / "data"
    properties = home / "server.properties"

    def prepare() -> None:
        home.mkdir(parents=True, exist_ok=True)
        properties.write_text(_kafka_properties(host, broker, controller, data))
        (home / "log4j2.properties").write_text(_KAFKA_LOG4J)
        if not (data / "meta.properties").exists():  # format storage on first start only
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            subprocess.run(
                [
                    *_java(home, s.cache_dir),
                    "kafka.tools.StorageTool",
                    "format",
                    # "=": a random id may start with "-", which a separate argument
                    # would make the parser read as an option (one start in 64 failed)
                    f"--cluster-id={cluster_id}",
                    f"--config={properties}",
                ],
                check=True,
                capture_output=True,
                text=True,
            )

    return Service(
        name="kafka",
        address=bootstrap,
        ports=(broker, controller),
        data_dir=data,
        command=lambda: [*_java(home, s.cache_dir), "kafka.Kafka", str(properties)],
        check=health.check_kafka,
        start_timeout=120,
        prepare=prepare,
    )


def postgres(s: Settings) -> Service:
    dsn = urlparse(_needed(s, "postgres_dsn"))
    port = dsn.port or 5432
    home = postgres_home(s)
    data, sockets = home / "data", home / "run"
    user = "postgres" if os.geteuid() == 0 else None  # initdb and postgres refuse root

    def prepare() -> None:
        sockets.mkdir(parents=True, exist_ok=True)
        if (data / "PG_VERSION").exists():
            return
        data.mkdir(parents=True, exist_ok=True)
        password = home / "initdb.pw"
        password.write_text(dsn.password or "")
        _chown(user, home)
        subprocess.run(
            [
                str(_postgres_bindir() / "initdb"),
                "-D",
                str(data),
                f"--username={dsn.username}",
                f"--pwfile={password}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            ],
            check=True,
            capture_output=True,
            text=True,
            user=user,
            cwd=home,
        )
        password.unlink()

    return Service(
        name="postgres",
        address=f"{dsn.hostname}:{port}",
        ports=(port,),
        data_dir=data,
        command=lambda: [
            str(_postgres_bindir() / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-c",
            f"listen_addresses={dsn.hostname}",
            "-c",
            f"unix_socket_directories={sockets}",
        ],
        check=health.check_postgres,
        start_timeout=60,
        prepare=prepare,
        user=user,
    )


def postgres_home(s: Settings) -> Path:
    """Where PostgreSQL keeps its files: ``.state/postgres``, except when we are root.

    PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user, who
    may not be allowed into the checkout (a clone inside a 0700 folder, say). Its files
    then live in a folder that user owns, one per state folder.
    """
    if os.geteuid() != 0:
        return s.state_dir / "postgres"
    key = hashlib.sha256(str(s.state_dir).encode()).hexdigest()[:12]
    return Path("/var/lib/neuralake/postgres") / key


def roapi(s: Settings) -> Service:
    """ROAPI on the config that ``neuralake api serve`` (or ``catalog roapi``) wrote.

    The config sets ``reload_interval`` and ``disable_read_only``, so ROAPI re-reads each
    table on its own; a changed *list* of tables needs a restart
    (:func:`neuralake.lab.api.serve.reload`).
    """
    config = roapi_config_path(s)
    binary = Path(sys.executable).parent / "roapi"  # shipped by the roapi wheel
    addresses = (s.roapi_http, s.roapi_postgres, s.roapi_flight_sql)
    ports = tuple(int(address.rsplit(":", 1)[1]) for address in addresses)
    return Service(
        name="roapi",
        address=f"http://{s.roapi_http}",
        ports=ports,
        data_dir=config.parent,
        command=lambda: [str(binary), "-c", str(config)],
        env=s.roapi_env,
        check=health.check_roapi,
        start_timeout=120,
    )


def _needed(s: Settings, field: str) -> str:
    """An address the native stack serves on; the stack profile always sets each one."""
    value = getattr(s, field)
    if not value:
        raise ConfigError(
            f"the native stack needs {ENV_VARS[field]}: set it, or use the stack profile"
        )
    return value


def _java(home: Path, cache: Path) -> list[str]:
    if shutil.which("java") is None:
        raise StackError("`java` is not on PATH: install Java 17 (apt-get install openjdk-17-jre)")
    return [
        "java", "-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}",
        "-cp", kafka_classpath(cache),
    ]  # fmt: skip


def _kafka_properties(host: str, broker: int, controller: int, data: Path) -> str:
    """One combined broker/controller in KRaft mode; single-replica internal topics."""
    return f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{host}:{controller}
listeners=PLAINTEXT://{host}:{broker},CONTROLLER://{host}:{controller}
advertised.listeners=PLAINTEXT://{host}:{broker}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
"""


_KAFKA_LOG4J = """\
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


def _postgres_bindir() -> Path:
    wanted = Path(f"/usr/lib/postgresql/{versions.POSTGRES_MAJOR}/bin")
    if wanted.exists():
        return wanted
    found = sorted(Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin"))
    if not found:
        raise StackError(
            "PostgreSQL is not installed: run `make setup` (apt-get install postgresql)"
        )
    return found[-1]


def _chown(user: str | None, path: Path) -> None:
    if user and user != getpass.getuser():
        for item in [path, *path.rglob("*")]:
            shutil.chown(item, user, user)
