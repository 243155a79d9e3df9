"""A Spark standalone cluster on this machine: one master and N workers, from the pyspark wheel.

``neuralake spark cluster up | down | status`` (or :func:`up`, :func:`down`, :func:`status`).
The pyspark wheel ships ``bin/spark-class`` but not ``sbin/start-master.sh``, so the
daemons are started the way those scripts would, with nothing downloaded::

    spark-class org.apache.spark.deploy.master.Master --host 127.0.0.1 --port 7077 --webui-port 7080
    spark-class org.apache.spark.deploy.worker.Worker spark://127.0.0.1:7077 --host 127.0.0.1 \\
        --cores 2 --memory 2g --webui-port 7081 --work-dir .state/spark-cluster/worker-1/work

Like the stack's services, each process is started in its own session, tracked by a pid
file (pid and start time) in ``.state/spark-cluster/``, logs to ``.state/logs/``, and is
stopped only by that pid. ``up`` returns once the master's JSON status
(``http://127.0.0.1:7080/json/``) lists every worker as ALIVE.

Everything listens on 127.0.0.1 (``--host`` and ``SPARK_LOCAL_IP``, which the web UIs
bind to). The ports avoid the stack's (9000-9001, 9092-9093, 5433-5434, 8084, 32010,
the writer's 9464-9466) and Spark's usual 8080, which other software often holds. The
defaults fit a 2-core, 24 GiB machine: 1 worker with 2 cores and 2 GiB, i.e. one
executor of 1 GiB (``spark.executor.memory``) that runs 2 tasks at a time.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psutil

from neuralake.errors import ConfigError, StackError
from neuralake.lab.stack import processes
from neuralake.settings import Settings
from neuralake.settings import settings as load_settings
from neuralake.spark.session import CLUSTER_DEFAULTS, check_java

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

HOST = "127.0.0.1"

# The daemons' environment (docker-compose.yml's Spark services set the same).
DAEMON_ENV = {
    "SPARK_LOCAL_IP": HOST,  # the web UIs bind to it (else 0.0.0.0)
    "SPARK_DAEMON_MEMORY": "512m",  # heap of the master and worker daemons (Spark's: 1g)
    # No REST submission server (port 6066, unauthenticated): drivers connect on 7077.
    "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
    # Each application's folder holds the jars its driver shipped (700 MB, most of it the
    # AWS SDK): a worker deletes the folders of finished applications after 10 minutes.
    "SPARK_WORKER_OPTS": (
        "-Dspark.worker.cleanup.enabled=true -Dspark.worker.cleanup.interval=300 "
        "-Dspark.worker.cleanup.appDataTtl=600"
    ),
}

# Settings and the variables that change them; the defaults suit a 2-core, 24 GiB machine.
ENV_VARS = {
    "workers": "NEURALAKE_SPARK_WORKERS",
    "worker_cores": "NEURALAKE_SPARK_WORKER_CORES",
    "worker_memory": "NEURALAKE_SPARK_WORKER_MEMORY",
    "master_port": "NEURALAKE_SPARK_MASTER_PORT",
    "master_ui_port": "NEURALAKE_SPARK_MASTER_UI_PORT",
    "worker_ui_port": "NEURALAKE_SPARK_WORKER_UI_PORT",
}
_MEMORY_RE = re.compile(r"^([1-9][0-9]*)([mg])$")


def memory_mb(value: str) -> int:
    """``2g`` -> 2048, ``1536m`` -> 1536."""
    match = _MEMORY_RE.match(value)
    if match is None:
        raise ConfigError(f"memory {value!r} is not a size like 2g or 1536m: use one")
    number, unit = match.groups()
    return int(number) * (1024 if unit == "g" else 1)


# What each executor of a lab session asks for (session.CLUSTER_DEFAULTS): a worker
# needs at least this much memory, or no executor can start on it.
EXECUTOR_MEMORY_MB = memory_mb(CLUSTER_DEFAULTS["spark.executor.memory"])


@dataclass(frozen=True)
class Cluster:
    """Where the cluster listens, how big it is, and where it keeps its files."""

    state_dir: Path
    workers: int = 1
    worker_cores: int = 2
    worker_memory: str = "2g"
    master_port: int = 7077
    master_ui_port: int = 7080
    worker_ui_port: int = 7081  # worker i (from 1) serves its UI on worker_ui_port + i - 1
    start_timeout: float = 120.0

    @property
    def master_url(self) -> str:
        """What a driver connects to: ``spark.master`` / ``NEURALAKE_SPARK_MASTER``."""
        return f"spark://{HOST}:{self.master_port}"

    @property
    def master_ui(self) -> str:
        return f"http://{HOST}:{self.master_ui_port}"

    @property
    def home(self) -> Path:
        return self.state_dir / "spark-cluster"

    def pid_file(self, name: str) -> Path:
        return self.home / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.state_dir / "logs" / f"spark-{name}.log"

    def worker_dir(self, index: int) -> Path:
        return self.home / f"worker-{index}"

    @property
    def sizing(self) -> str:
        machine_gib = psutil.virtual_memory().total / 2**30
        workers = f"{self.workers} worker{'s' if self.workers > 1 else ''}"
        cores = f"{self.worker_cores} core{'s' if self.worker_cores > 1 else ''}"
        return (
            f"{workers} x {cores} x {self.worker_memory} "
            f"(executors of {EXECUTOR_MEMORY_MB // 1024}g) on a {os.cpu_count()}-core, "
            f"{machine_gib:.0f} GiB machine"
        )


def cluster(
    s: Settings | None = None,
    *,
    workers: int | None = None,
    cores: int | None = None,
    memory: str | None = None,
) -> Cluster:
    """The cluster's settings: arguments, else ``NEURALAKE_SPARK_*`` variables, else defaults."""
    s = s or load_settings()
    c = Cluster(state_dir=s.state_dir)
    from_env: dict[str, Any] = {}
    for name, var in ENV_VARS.items():
        value = os.environ.get(var)
        if value:
            from_env[name] = value if name == "worker_memory" else _integer(var, value)
    c = replace(c, **from_env)
    given: dict[str, Any] = {"workers": workers, "worker_cores": cores, "worker_memory": memory}
    c = replace(c, **{k: v for k, v in given.items() if v is not None})
    _validate(c)
    return c


def up(c: Cluster, *, echo: Callable[[str], None] = print) -> dict:
    """Start the master and the workers not yet running; wait until all are ALIVE."""
    check_java()  # one line naming the fix, before any daemon starts
    started: list[str] = []  # what this call started: stopped again if a later step fails
    try:
        if _start(c, "master", master_command(c), [c.master_port, c.master_ui_port], echo):
            started.append("master")
        for index in range(1, c.workers + 1):
            name = f"worker-{index}"
            if _start(c, name, worker_command(c, index), [_worker_ui_port(c, index)], echo):
                started.append(name)
        _wait_alive(c)
    except BaseException:
        for name in reversed(started):
            processes.stop(c.pid_file(name))
        raise
    state = status(c)
    echo(f"master    {c.master_url} ALIVE, web UI {c.master_ui}")
    echo(f"workers   {state['alive_workers']} ALIVE: {c.sizing}")
    return state


def down(c: Cluster, *, echo: Callable[[str], None] = print) -> list[str]:
    """Stop every worker, then the master, by their pid files. Idempotent."""
    stopped = []
    for name in [*sorted(_tracked_workers(c), reverse=True), "master"]:
        if processes.stop(c.pid_file(name)):  # the process and its children (executors)
            stopped.append(name)
            echo(f"{name:<9} stopped (logs in {c.log_file(name)})")
    # Executors' logs stay in the worker folders; the jars drivers shipped there go.
    for jar in c.home.glob("worker-*/work/app-*/*/*.jar"):
        jar.unlink(missing_ok=True)
    return stopped


def status(c: Cluster) -> dict:
    """The master and each worker: pid, whether the master lists it ALIVE, cores, memory."""
    master = processes.running(c.pid_file("master"))
    state, error = {}, None
    if master is None:
        error = "master not running: start it with `neuralake spark cluster up`"
    else:
        try:
            state = master_state(c)
        except (httpx.HTTPError, ValueError) as err:  # refused, timed out, or not JSON (yet)
            error = f"master does not answer at {c.master_ui}/json/: {err}"
    listed = {w.get("webuiaddress"): w for w in state.get("workers", [])}
    workers = []
    for name in sorted(_tracked_workers(c)):
        tracked = processes.running(c.pid_file(name))
        ui = _worker_ui(c, int(name.split("-")[1]))
        seen = listed.get(ui, {})
        workers.append(
            {
                "name": name,
                "pid": tracked.pid if tracked else None,
                "state": seen.get("state") if tracked else "not running",
                "cores": seen.get("cores"),
                "memory_mb": seen.get("memory"),
                "ui": ui,
            }
        )
    alive = sum(1 for w in workers if w["state"] == "ALIVE")
    apps = [
        {"id": a["id"], "name": a["name"], "cores": a["cores"], "state": a["state"]}
        for a in state.get("activeapps", [])
    ]
    return {
        "master": {
            "url": c.master_url,
            "ui": c.master_ui,
            "pid": master.pid if master else None,
            "state": state.get("status"),
        },
        "workers": workers,
        "alive_workers": alive,
        "applications": apps,
        "sizing": c.sizing,
        "healthy": error is None and state.get("status") == "ALIVE" and 0 < alive == len(workers),
        "error": error,
    }


def master_state(c: Cluster, timeout: float = 3.0) -> dict:
    """The master's own JSON status: workers, their state, cores, memory, applications."""
    return httpx.get(f"{c.master_ui}/json/", timeout=timeout).raise_for_status().json()


def pids(c: Cluster) -> dict[str, list[int]]:
    """Every process of the cluster by daemon: the daemon first, then its executors."""
    found = {}
    for name in ["master", *sorted(_tracked_workers(c))]:
        tracked = processes.running(c.pid_file(name))
        if tracked is None:
            continue
        try:
            children = psutil.Process(tracked.pid).children(recursive=True)
        except psutil.NoSuchProcess:  # it exited just now
            continue
        found[name] = [tracked.pid, *(child.pid for child in children)]
    return found


def app_api(spark: SparkSession, path: str) -> Any:
    """The application's REST API (served by the driver's web UI), e.g. ``executors``,
    ``stages``, ``jobs``: ``/api/v1/applications/<app id>/<path>``."""
    context = spark.sparkContext
    url = f"{context.uiWebUrl}/api/v1/applications/{context.applicationId}/{path}"
    return httpx.get(url, timeout=5).raise_for_status().json()


def wait_for_executors(spark: SparkSession, count: int, timeout: float = 120.0) -> list[dict]:
    """Until ``count`` executors have registered with the driver (they start after the
    session does, one per worker); the executors, as the REST API describes them."""
    found: list[dict] = []

    def check() -> None:
        found[:] = [e for e in app_api(spark, "executors") if e["id"] != "driver"]
        if len(found) < count:
            raise RuntimeError(f"{len(found)} of {count} executors registered")

    try:
        processes.wait_until(check, timeout=timeout)
    except Exception as err:
        raise StackError(
            f"the cluster gave this application {len(found)} of {count} executors within "
            f"{timeout:.0f} s: is every worker ALIVE (`neuralake spark cluster status`) with "
            f"{EXECUTOR_MEMORY_MB}m free for each?"
        ) from err
    return found


def spark_home() -> Path:
    """The pyspark wheel's folder: it holds ``bin/spark-class`` and Spark's jars."""
    import pyspark

    return Path(pyspark.__file__).parent


# --- starting and waiting -------------------------------------------------------------


def master_command(c: Cluster) -> list[str]:
    return [
        str(spark_home() / "bin" / "spark-class"),
        "org.apache.spark.deploy.master.Master",
        *("--host", HOST, "--port", str(c.master_port), "--webui-port", str(c.master_ui_port)),
    ]


def worker_command(c: Cluster, index: int) -> list[str]:
    return [
        str(spark_home() / "bin" / "spark-class"),
        "org.apache.spark.deploy.worker.Worker",
        c.master_url,
        *("--host", HOST, "--webui-port", str(_worker_ui_port(c, index))),
        *("--cores", str(c.worker_cores), "--memory", c.worker_memory),
        *("--work-dir", str(c.worker_dir(index) / "work")),
    ]


def _worker_ui_port(c: Cluster, index: int) -> int:
    return c.worker_ui_port + index - 1


def _worker_ui(c: Cluster, index: int) -> str:
    """Worker ``index``'s web UI: the address the master lists it by."""
    return f"http://{HOST}:{_worker_ui_port(c, index)}"


def _start(
    c: Cluster, name: str, cmd: list[str], ports: list[int], echo: Callable[[str], None]
) -> bool:
    """Start one daemon unless it runs already; whether this call started it."""
    if processes.running(c.pid_file(name)):
        echo(f"{name:<9} already running")
        return False
    for port in ports:
        if not processes.port_is_free(port, HOST):
            var = ENV_VARS["master_port" if port == c.master_port else "master_ui_port"]
            if name.startswith("worker"):
                var = ENV_VARS["worker_ui_port"]
            raise StackError(
                f"port {port} needed by the Spark {name} is held by "
                f"{processes.port_holder(port)}: stop that process, or set {var} to a free port"
            )
    env = {**os.environ, "SPARK_HOME": str(spark_home()), **DAEMON_ENV}
    cwd = c.home
    if name.startswith("worker"):
        folder = c.worker_dir(int(name.split("-")[1]))
        shutil.rmtree(folder, ignore_errors=True)  # scratch of a previous run: app jars, shuffle
        (folder / "work").mkdir(parents=True)
        (folder / "local").mkdir()
        env["SPARK_LOCAL_DIRS"] = str(folder / "local")  # shuffle and spill files
        cwd = folder
    cwd.mkdir(parents=True, exist_ok=True)
    processes.start(cmd, pid_file=c.pid_file(name), log_file=c.log_file(name), env=env, cwd=cwd)
    echo(f"{name:<9} started, log: {c.log_file(name)}")
    return True


def _wait_alive(c: Cluster) -> None:
    """Until the master answers ALIVE, then until it lists each worker ALIVE.

    :func:`processes.wait_healthy` waits for each daemon in turn: a daemon that exits
    fails the wait at once, with the line of its log that says why.
    """

    def master_alive() -> None:
        state = master_state(c).get("status")
        if state != "ALIVE":
            raise RuntimeError(f"master status {state}")

    processes.wait_healthy(
        "the Spark master",
        c.pid_file("master"),
        c.log_file("master"),
        master_alive,
        timeout=c.start_timeout,
    )
    for index in range(1, c.workers + 1):
        name, ui = f"worker-{index}", _worker_ui(c, index)

        def worker_alive(ui: str = ui) -> None:
            listed = {w.get("webuiaddress"): w.get("state") for w in master_state(c)["workers"]}
            if listed.get(ui) != "ALIVE":
                raise RuntimeError(f"the master lists {ui} as {listed.get(ui, 'absent')}")

        processes.wait_healthy(
            f"the Spark {name}",
            c.pid_file(name),
            c.log_file(name),
            worker_alive,
            timeout=c.start_timeout,
        )


def _tracked_workers(c: Cluster) -> list[str]:
    """Every worker with a pid file, also those beyond today's ``workers`` setting."""
    return [p.stem for p in c.home.glob("worker-*.pid")]


# --- checks ---------------------------------------------------------------------------


def _integer(var: str, value: str) -> int:
    if not value.isdigit():
        raise ConfigError(f"{var}={value!r} is not a whole number: use e.g. {var}=2")
    return int(value)


def _validate(c: Cluster) -> None:
    if not 1 <= c.workers <= 8:
        raise ConfigError(f"{c.workers} workers: use --workers 1 to 8 (each is a JVM)")
    if c.worker_cores < 1:
        raise ConfigError(f"{c.worker_cores} cores per worker: use --cores 1 or more")
    if not _MEMORY_RE.match(c.worker_memory):
        raise ConfigError(
            f"worker memory {c.worker_memory!r} is not a size: use e.g. --memory 2g or 1536m"
        )
    if memory_mb(c.worker_memory) < EXECUTOR_MEMORY_MB:
        raise ConfigError(
            f"worker memory {c.worker_memory} is less than the {EXECUTOR_MEMORY_MB}m an executor "
            "asks for (spark.executor.memory), so no executor could start: use --memory 1g or more"
        )
    worker_uis = range(c.worker_ui_port, c.worker_ui_port + c.workers)
    ports = [c.master_port, c.master_ui_port, *worker_uis]
    if len(set(ports)) != len(ports) or not all(0 < p < 65536 for p in ports):
        raise ConfigError(
            f"Spark ports overlap or are out of range ({ports}): set "
            f"{ENV_VARS['master_port']}, {ENV_VARS['master_ui_port']} and "
            f"{ENV_VARS['worker_ui_port']} to separate free ports"
        )
