"""A Spark standalone cluster on this machine: the lab's ELT runs on it, a worker killed
mid-job does not lose the job, the gold it writes is local[2]'s, and ``down`` leaves nothing.

One small cluster (2 workers x 1 core x 1g, on free ports, in a temporary state folder,
so a cluster a student left running is not touched) is shared by the module's tests and
stopped at the end. The local[2] reference runs after the cluster runs, in the same
driver JVM: its first ELT (the slow, cold one) is then already paid for.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import polars as pl
import psutil
import pytest
from deltalake import write_deltalake
from typer.testing import CliRunner

import neuralake
from neuralake import datagen, delta
from neuralake.api.sample import bronze_rows, day
from neuralake.errors import ConfigError, StackError
from neuralake.lab.cli import spark as cli
from neuralake.lab.stack import spark_cluster as cluster
from neuralake.lab.stack.processes import free_port, port_is_free
from neuralake.spark import compare, elt, session, stop
from neuralake.streaming.schemas import BRONZE, PARTITION_BY

BATCHES, ROWS = 3, 4_000  # bronze versions and rows per version: tiny, the point is where
SESSIONS = 4


def _port_block(size: int) -> int:
    """The first of ``size`` consecutive free ports on 127.0.0.1."""
    for _ in range(50):
        first = free_port()
        if first + size < 65535 and all(port_is_free(first + i) for i in range(size)):
            return first
    raise RuntimeError("no block of free ports found")


def _test_cluster(state_dir, workers: int = 2) -> cluster.Cluster:
    base = _port_block(2 + workers)
    return cluster.Cluster(
        state_dir=state_dir,
        workers=workers,
        worker_cores=1,
        worker_memory="1g",
        master_port=base,
        master_ui_port=base + 1,
        worker_ui_port=base + 2,
    )


@dataclass
class World:
    s: neuralake.Settings
    c: cluster.Cluster
    tag: str
    spark: object = None  # the session on the cluster
    seen_pids: set[int] = field(default_factory=set)  # every cluster process ever seen
    seen_ports: set[int] = field(default_factory=set)  # every port they listened on

    def tables(self, run: str) -> elt.Tables:
        return elt.Tables(
            bronze=f"spark_cluster_{self.tag}_bronze",
            silver=f"spark_cluster_{self.tag}_{run}_silver",
            gold=f"spark_cluster_{self.tag}_{run}_gold",
            dims_prefix=f"spark_cluster_{self.tag}_dims/",
        )

    def gold(self, run: str) -> compare.Fingerprint:
        uri = self.tables(run).uri(self.s, "gold")
        table = pl.read_delta(uri, storage_options=self.s.storage_options)
        # Floats rounded: Spark adds partial sums in the order tasks finish.
        return compare.fingerprint(table, decimals=6)

    def note_processes(self) -> None:
        for pids in cluster.pids(self.c).values():
            for pid in pids:
                self.seen_pids.add(pid)
                try:
                    conns = psutil.Process(pid).net_connections(kind="inet")
                except psutil.Error:
                    continue
                self.seen_ports |= {
                    conn.laddr.port for conn in conns if conn.status == psutil.CONN_LISTEN
                }


def _write_inputs(s: neuralake.Settings, tables: elt.Tables) -> None:
    """Dimension tables and a bronze table of BATCHES versions, written with delta-rs."""
    sim = datagen.Simulation(rows=4_096, sessions=SESSIONS, patients=2, seed=16)
    datagen.write_tables(s, sim, files=1, prefix=tables.dims_prefix)
    ids = sim.sessions_table().select("session_id", "patient_id", "device_id")
    for batch in range(BATCHES):
        frame = bronze_rows(ROWS, seed=batch, start=day(0) + timedelta(hours=batch))
        frame = frame.drop("patient_id", "device_id").with_columns(
            session_id=(pl.col("session_id") % SESSIONS + 1).cast(pl.Int32),
            kafka_partition=pl.lit(batch, pl.Int32),  # unique (partition, offset) per batch
        )
        frame = frame.join(ids, on="session_id").select(list(BRONZE))
        write_deltalake(
            tables.uri(s, "bronze"),
            frame.to_arrow(),
            mode="append",
            partition_by=PARTITION_BY,
            storage_options=s.storage_options,
        )


@pytest.fixture(scope="module")
def world(stack_settings, tmp_path_factory) -> Iterator[World]:
    s = stack_settings
    w = World(s, _test_cluster(tmp_path_factory.mktemp("spark-state")), uuid.uuid4().hex[:8])
    _write_inputs(s, w.tables("inputs"))
    try:
        stop()  # a session an earlier test left running
        _timed("cluster up", lambda: cluster.up(w.c, echo=lambda _: None))
        w.spark = session(s, {"spark.master": w.c.master_url})
        cluster.wait_for_executors(w.spark, w.c.workers)
        w.note_processes()
        yield w
    finally:
        stop()
        cluster.down(w.c, echo=lambda _: None)
        for run in ("local", "cluster", "killed"):
            for name in ("silver", "gold"):
                delta.drop_table(w.tables(run).uri(s, name), s.storage_options)
        delta.drop_table(w.tables("inputs").uri(s, "bronze"), s.storage_options)
        dims = w.tables("inputs").dims_prefix.rstrip("/")
        delta.drop_table(s.table_uri(dims), s.storage_options)


def _timed(what: str, fn):
    started = time.perf_counter()
    result = fn()
    print(f"{what}: {time.perf_counter() - started:.1f} s, load {os.getloadavg()[0]:.1f}")
    return result


def _rest(w: World, path: str):
    """The application's REST API (the driver's web UI), e.g. ``executors``."""
    return cluster.app_api(w.spark, path)


# --- against the running cluster, in this order: the later tests read earlier tables ----


@pytest.mark.stack
def test_the_cluster_is_up_on_loopback_with_the_size_asked_for(world):
    state = cluster.status(world.c)
    assert state["healthy"], state
    assert [(w["state"], w["cores"], w["memory_mb"]) for w in state["workers"]] == [
        ("ALIVE", 1, 1024),
        ("ALIVE", 1, 1024),
    ]
    assert state["applications"] and state["applications"][0]["cores"] == 2  # our session
    for pids in cluster.pids(world.c).values():
        for pid in pids:
            for conn in psutil.Process(pid).net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    assert conn.laddr.ip in ("127.0.0.1", "::ffff:127.0.0.1"), (pid, conn)
    executors = [e for e in _rest(world, "executors") if e["id"] != "driver"]
    assert len(executors) == 2 and all(e["totalCores"] == 1 for e in executors)


@pytest.mark.stack
def test_cli_status_reports_the_cluster(world, monkeypatch):
    monkeypatch.setenv("NEURALAKE_STATE_DIR", str(world.c.state_dir))
    monkeypatch.setenv("NEURALAKE_SPARK_MASTER_PORT", str(world.c.master_port))
    monkeypatch.setenv("NEURALAKE_SPARK_MASTER_UI_PORT", str(world.c.master_ui_port))
    monkeypatch.setenv("NEURALAKE_SPARK_WORKER_UI_PORT", str(world.c.worker_ui_port))
    monkeypatch.setenv("NEURALAKE_SPARK_WORKERS", "2")
    monkeypatch.setenv("NEURALAKE_SPARK_WORKER_CORES", "1")
    monkeypatch.setenv("NEURALAKE_SPARK_WORKER_MEMORY", "1g")
    result = CliRunner().invoke(cli.app, ["cluster", "status", "--json"])
    assert result.exit_code == 0, result.output
    state = json.loads(result.output)
    assert state["master"]["url"] == world.c.master_url and state["alive_workers"] == 2
    assert state["sizing"].startswith("2 workers x 1 core x 1g (executors of 1g) on a ")


@pytest.mark.stack
def test_python_functions_run_in_the_executors(world):
    squares = world.spark.sparkContext.parallelize(range(100), 4).map(lambda x: x * x).sum()
    assert squares == sum(x * x for x in range(100))


@pytest.mark.stack
def test_the_elt_runs_on_the_cluster(world):
    run = _timed("ELT on the cluster", lambda: elt.run(world.s, world.tables("cluster")))
    world.note_processes()
    assert run.bronze_rows == BATCHES * ROWS == run.tables["silver"]["rows"]
    assert run.tables["gold"]["rows"] > 0
    # The tasks ran in the executors (which read and wrote S3 themselves), not the driver.
    executors = [e for e in _rest(world, "executors") if e["id"] != "driver"]
    assert all(e["completedTasks"] > 0 and e["totalInputBytes"] > 0 for e in executors)


@pytest.mark.stack
def test_a_worker_killed_mid_job_does_not_lose_the_job(world):
    """kill -9 the first worker once its executor runs a task; the ELT finishes on the other."""
    app = world.spark.sparkContext.applicationId
    victim = cluster.pids(world.c)["worker-1"][0]
    (executor,) = [p.name for p in (world.c.worker_dir(1) / "work" / app).iterdir()]
    killed: dict[str, float] = {}
    done = threading.Event()

    def kill_when_busy() -> None:
        while not done.is_set():
            busy = {e["id"]: e["activeTasks"] for e in _rest(world, "executors")}
            if busy.get(executor, 0) > 0:
                os.kill(victim, signal.SIGKILL)
                killed["at"] = time.monotonic()
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_when_busy, daemon=True)
    watcher.start()
    started = time.monotonic()
    run = elt.run(world.s, world.tables("killed"))
    finished = time.monotonic()
    done.set()
    watcher.join(timeout=10)
    print(f"ELT with a worker killed after {killed.get('at', started) - started:.1f} s: "
          f"{finished - started:.1f} s, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    assert "at" in killed, "the worker's executor never ran a task: nothing was killed"
    assert started < killed["at"] < finished, "the kill must land while the job runs"
    assert not _alive(victim)
    lost = [e for e in _rest(world, "allexecutors") if e["id"] == executor]
    assert lost and lost[0]["isActive"] is False, "the driver must have lost that executor"
    assert run.bronze_rows == BATCHES * ROWS == run.tables["silver"]["rows"]
    assert world.gold("killed") == world.gold("cluster"), "the lost worker changed gold"


@pytest.mark.stack
def test_the_gold_of_the_cluster_is_the_gold_of_local_mode(world):
    """The same ELT in local[2], in this process (its JVM is warm by now): same gold."""
    stop()
    session(world.s, {"spark.master": "local[2]"})
    run = _timed("ELT in local[2]", lambda: elt.run(world.s, world.tables("local")))
    stop()
    assert run.tables["silver"]["rows"] == BATCHES * ROWS
    local = world.gold("local")
    assert local.rows > 0
    assert world.gold("cluster") == local
    assert world.gold("killed") == local


@pytest.mark.stack
def test_down_leaves_no_process_and_no_port(world):
    world.note_processes()
    stop()  # no driver left to ask executors to reconnect
    cluster.down(world.c, echo=lambda _: None)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(map(_alive, world.seen_pids)):
        time.sleep(0.2)  # the orphaned executor of the killed worker exits on its own
    assert [pid for pid in world.seen_pids if _alive(pid)] == []
    assert len(world.seen_ports) >= 4  # master RPC and UI, at least one worker UI, executors
    # No port is left listening. (A port merely in use may be another program's outgoing
    # connection: executor ports come from the ephemeral range, which clients share.)
    listening = {c.laddr.port for c in psutil.net_connections("tcp") if c.status == "LISTEN"}
    assert [p for p in world.seen_ports if p in listening] == []
    assert cluster.pids(world.c) == {}
    assert not cluster.status(world.c)["healthy"]
    executor_folders = list(world.c.home.glob("worker-*/work/app-*/*"))
    assert executor_folders and all((f / "stderr").exists() for f in executor_folders)
    assert list(world.c.home.glob("worker-*/work/app-*/*/*.jar")) == []  # logs kept, jars gone


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# --- no cluster needed: bad input fails in one line that names the fix ------------------


def test_a_taken_port_names_the_process_and_the_variable(tmp_path):
    c = _test_cluster(tmp_path, workers=1)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", c.master_port))
        holder.listen()
        with pytest.raises(StackError) as error:
            cluster.up(c, echo=lambda _: None)
    message = str(error.value)
    assert (
        f"port {c.master_port} needed by the Spark master is held by pid {os.getpid()}" in message
    )
    assert "NEURALAKE_SPARK_MASTER_PORT" in message and "\n" not in message
    assert cluster.pids(c) == {}  # nothing was started


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ({"workers": 0}, r"use --workers 1 to 8"),
        ({"memory": "512m"}, r"less than the 1024m an executor asks for.*--memory 1g"),
        ({"memory": "2 GB"}, r"not a size: use e.g. --memory 2g"),
        ({"cores": 0}, r"use --cores 1 or more"),
    ],
)
def test_bad_sizes_name_the_fix(args, match):
    with pytest.raises(ConfigError, match=match):
        cluster.cluster(neuralake.settings("local"), **args)


def test_defaults_fit_a_two_core_machine(monkeypatch):
    for var in cluster.ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    c = cluster.cluster(neuralake.settings("local"))
    assert (c.workers, c.worker_cores, c.worker_memory) == (1, 2, "2g")
    assert c.master_url == "spark://127.0.0.1:7077" and c.master_ui == "http://127.0.0.1:7080"
    assert c.sizing.startswith("1 worker x 2 cores x 2g (executors of 1g)")
    monkeypatch.setenv("NEURALAKE_SPARK_MASTER_UI_PORT", "x")
    with pytest.raises(ConfigError, match=r"NEURALAKE_SPARK_MASTER_UI_PORT='x' is not a whole"):
        cluster.cluster(neuralake.settings("local"))


def test_a_master_that_does_not_answer_fails_before_the_session_waits():
    nobody = f"spark://127.0.0.1:{free_port()}"
    with pytest.raises(StackError, match=r"no Spark master answers at .*cluster up"):
        session(neuralake.settings("stack"), {"spark.master": nobody})


def test_a_malformed_master_names_the_fix(monkeypatch):
    monkeypatch.setenv("NEURALAKE_SPARK_MASTER", "127.0.0.1:7077")
    with pytest.raises(ConfigError, match=r"not a master URL: use local\[2\] or spark://"):
        neuralake.spark.spark_config(neuralake.settings("stack"))
