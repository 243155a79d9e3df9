"""Run the Rust writer's three processes for one table: ingest, compact and vacuum.

``up`` starts them as pid-tracked processes (:mod:`neuralake.lab.stack.processes`), with the
S3 and Kafka settings handed over as the ``NEURALAKE_*`` variables the binary reads, and
returns only once each one serves its ``/metrics`` (ingest: once it reports
``neuralake_writer_ready 1``, i.e. its tables are open and it has joined its consumer group;
the group hands it partitions right after). A process that dies on the way fails fast with
its own ``error:`` line and its log file.

Everything about one table lives in ``.state/writer/<table>/``: the pid files, the logs
and ``writer.json`` (topic, URIs, metrics ports). The default table uses the ports
9464/9465/9466; any other table gets free ports, chosen once and recorded, so writers
for two tables can run side by side. ``up`` is idempotent (a live process is left
alone, a dead one restarted) and ``down`` stops only processes ``up`` started.

Scale-out: ``up(workers=N)`` runs N ingest workers (``ingest``, ``ingest-1``, ...), each
with its own metrics port, in one Kafka consumer group; the group spreads the topic's
partitions over them and moves partitions when a worker joins or leaves. A later ``up``
with another N adds workers or stops the extra ones cleanly. Compaction and vacuum stay
single processes; checkpoints are written by the worker owning the first partition.
``status`` shows which partitions each worker owns and its lag.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from neuralake.delta import drop_table
from neuralake.errors import ConfigError, StackError
from neuralake.lab.stack import processes
from neuralake.lab.writer import binary
from neuralake.settings import Settings, project_dir
from neuralake.streaming import metrics
from neuralake.streaming.schemas import DEFAULT_TABLE, DEFAULT_TOPIC, dead_letter_uri

PROCESSES = ("ingest", "compact", "vacuum")  # the kinds of process; ingest may have workers
# The processes that can run one pass in the foreground, and the options each one takes.
ONE_SHOT = {
    "compact": ("target_size", "min_files"),
    "vacuum": ("retention_hours",),
}
DEFAULT_PORTS = {"ingest": 9464, "compact": 9465, "vacuum": 9466}
START_TIMEOUT_S = 60.0  # the binary gives up on an unreachable broker after about 10 s

# Options of `up` -> the variable the binary reads. None means "the binary's default".
OPTION_VARS = {
    "flush_ms": "NEURALAKE_WRITER_FLUSH_MS",
    "flush_rows": "NEURALAKE_WRITER_FLUSH_ROWS",
    "flush_bytes": "NEURALAKE_WRITER_FLUSH_BYTES",
    "checkpoint_every": "NEURALAKE_WRITER_CHECKPOINT_EVERY",
    "app_id": "NEURALAKE_WRITER_APP_ID",
    "offset_reset": "NEURALAKE_WRITER_OFFSET_RESET",
    "give_up_s": "NEURALAKE_WRITER_GIVE_UP_S",
    "decoders": "NEURALAKE_WRITER_DECODERS",
    "compact_interval_s": "NEURALAKE_COMPACT_INTERVAL_S",
    "target_size": "NEURALAKE_COMPACT_TARGET_SIZE",
    "min_files": "NEURALAKE_COMPACT_MIN_FILES",
    "vacuum_interval_s": "NEURALAKE_VACUUM_INTERVAL_S",
    "retention_hours": "NEURALAKE_VACUUM_RETENTION_HOURS",
}


@dataclass(frozen=True)
class WriterStatus:
    table: str
    name: str
    pid: int | None
    alive: bool
    metrics_url: str
    table_uri: str
    topic: str | None  # ingest only
    dead_letter_uri: str | None  # ingest only
    log: str
    partitions: list[int] | None = None  # ingest workers: the partitions the group gave it
    lag: int | None = None  # ingest workers: messages of its partitions not yet in the table


def worker_names(workers: int) -> list[str]:
    """The ingest workers' process names: ``ingest``, ``ingest-1``, ``ingest-2``, ..."""
    return ["ingest"] + [f"ingest-{i}" for i in range(1, workers)]


def _kind(name: str) -> str:
    """The binary's subcommand for a process name (``ingest-2`` is an ``ingest``)."""
    return "ingest" if name.startswith("ingest") else name


def _names(config: dict, workers: int | None = None) -> list[str]:
    """Every process of a table, in start order: the workers, then compact and vacuum."""
    count = workers if workers is not None else config.get("workers", 1)
    return [*worker_names(count), "compact", "vacuum"]


def up(
    s: Settings,
    *,
    topic: str = DEFAULT_TOPIC,
    table: str = DEFAULT_TABLE,
    echo: Callable[[str], None] = print,
    only: Sequence[str] | None = None,
    workers: int | None = None,
    **options: int | float | str | None,
) -> list[WriterStatus]:
    """Start ingest, compact and vacuum for ``table`` from ``topic`` (idempotent).

    ``only`` starts a subset (``["ingest"]``: a writer without background compaction, whose
    compaction and vacuum you run by hand with :func:`run_once`). ``workers`` is how many
    ingest workers share the topic (default: as many as the last ``up`` asked for, else 1);
    fewer than are running stops the extra ones cleanly. ``options`` are the tuning knobs of
    :data:`OPTION_VARS` (``flush_ms=200``, ...); they are recorded with the table, so a later
    ``up`` restarts a dead process with them.
    """
    if workers is not None and workers < 1:
        raise ConfigError(f"workers={workers}: run at least 1 ingest worker (e.g. --workers 3)")
    exe = binary.find(s.cache_dir)
    config = _config(s, table)
    before = _names(config)
    count = workers if workers is not None else config.get("workers", 1)
    wanted = [n for kind in _chosen(only) for n in _names(config, count) if _kind(n) == kind]
    surplus = [n for n in before if n not in _names(config, count)]
    for name in surplus:  # a smaller group: the extra workers leave it cleanly
        if processes.stop(_pid_file(s, table, name)):
            echo(f"writer {name:<8} stopped ({table}): {count} worker(s) wanted")
    known = set(before) | set(_names(config, count))
    live = {name for name in known if processes.running(_pid_file(s, table, name))}
    if any(_kind(n) == "ingest" for n in live) and config.get("topic") != topic:
        raise StackError(
            f"the writer for {table!r} is running on topic {config.get('topic')!r}: "
            f"stop it first (neuralake writer down --table {table})"
        )
    # Options are remembered: a process restarted by a later `up` keeps its tuning.
    options = {**config.get("options", {}), **{k: v for k, v in options.items() if v is not None}}
    started_before = [n for n in config.get("processes", []) if n not in surplus]
    names = _names(config, count)
    config = {
        **config,
        "options": options,
        "topic": topic,
        "workers": count,
        "table_uri": s.table_uri(table),
        "dead_letter_uri": dead_letter_uri(s.table_uri(table)),
        "ports": _ports(table, names, config.get("ports", {}), live),
        # The processes `up` has started for this table so far (`status` lists these).
        "processes": [n for n in names if n in wanted or n in started_before],
    }
    env = process_env(s, topic=topic, table_uri=config["table_uri"], **options)
    _write_config(s, table, config)
    for name in wanted:  # ingest first: it creates the table the other two work on
        if name in live:
            echo(f"writer {name:<8} already running ({table})")
            continue
        log = _log_file(s, table, name)
        processes.start(
            [str(exe), _kind(name)],
            pid_file=_pid_file(s, table, name),
            log_file=log,
            env={**env, "NEURALAKE_WRITER_METRICS_ADDR": f"127.0.0.1:{config['ports'][name]}"},
            cwd=project_dir(),
        )
        _wait_healthy(s, table, name, config)
        shown = os.path.relpath(log, project_dir())  # no absolute path in lesson outputs
        echo(f"writer {name:<8} healthy at {_metrics_url(config, name)} (log: {shown})")
    return status(s, table)


def run_once(
    s: Settings,
    name: str,
    *,
    table: str = DEFAULT_TABLE,
    retention_hours: float | None = None,
    target_size: int | None = None,
    min_files: int | None = None,
) -> dict:
    """One pass of ``compact`` or ``vacuum`` on ``table``, in the foreground: its JSON report.

    The same binary and settings as the background processes (``neuralake-writer compact
    --once``): ``{"files_removed": ..., "files_added": ..., "version": ...}`` for compact,
    ``{"files_deleted": ..., "log_files_deleted": ..., "version": ...}`` for vacuum, each with
    ``"dead_letters"``: the same report for the table's dead-letter table, which the pass
    maintains too. Options
    left at None take the ones recorded by ``up`` for this table, else the binary's defaults.
    """
    if name not in ONE_SHOT:
        raise ConfigError(f"cannot run {name!r} once: choose one of {', '.join(ONE_SHOT)}")
    recorded = _config(s, table).get("options", {})
    given = {"retention_hours": retention_hours, "target_size": target_size, "min_files": min_files}
    options = {
        k: v
        for k, v in {**recorded, **{k: v for k, v in given.items() if v is not None}}.items()
        if k in ONE_SHOT[name]
    }
    table_uri = s.table_uri(table)
    topic = _config(s, table).get("topic", DEFAULT_TOPIC)  # unused by compact and vacuum
    env = process_env(s, topic=topic, table_uri=table_uri, **options)
    done = subprocess.run(
        [str(binary.find(s.cache_dir)), name, "--once"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=project_dir(),
    )
    if done.returncode != 0:
        cause = processes.error_line(done.stderr) if done.stderr.strip() else "(no output)"
        raise StackError(
            f"neuralake-writer {name} --once on {table_uri} failed "
            f"(exit code {done.returncode}): {cause}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def forget(s: Settings, table: str, *, echo: Callable[[str], None] = print) -> int:
    """Drop ``table``, its dead-letter table and the writer's state for it; objects deleted.

    Refused while a writer process of the table runs (stop it first). The Kafka topic and
    the consumer group are left alone: the table's txn actions, not the group, say where a
    writer resumes, so a new ``up`` reads the topic from the beginning again.
    """
    table_uri = s.table_uri(table)  # validates the name
    names = _names(_config(s, table))
    running = [n for n in names if processes.running(_pid_file(s, table, n))]
    if running:
        raise StackError(
            f"the writer for {table!r} is running ({', '.join(running)}): "
            f"stop it first (neuralake writer down --table {table})"
        )
    deleted = 0
    for uri in (table_uri, dead_letter_uri(table_uri)):
        count = drop_table(uri, s.storage_options)
        echo(f"dropped {uri} ({count} objects)")
        deleted += count
    folder = _folder(s, table)
    if folder.exists():
        shutil.rmtree(folder)
        echo(f"removed the writer state {folder}")
    return deleted


def down(
    s: Settings, table: str | None = None, *, echo: Callable[[str], None] = print
) -> list[str]:
    """Stop the writer processes of ``table`` (every table when None). Idempotent."""
    stopped = []
    for name_of_table in [table] if table else tables(s):
        for name in reversed(_names(_config(s, name_of_table))):
            if processes.stop(_pid_file(s, name_of_table, name)):
                stopped.append(f"{name_of_table}/{name}")
                echo(f"writer {name:<8} stopped ({name_of_table})")
    return stopped


def status(s: Settings, table: str | None = None) -> list[WriterStatus]:
    """One row per process of ``table``, or of every table started and not stopped since.

    Only the processes ``up`` was asked to start are listed (all three unless ``only``).

    ``down`` removes the pid files, so a stopped table drops out of the list; a process
    that died keeps its pid file and shows as not alive.
    """
    rows = []
    started = [
        t for t in tables(s) if any(_pid_file(s, t, n).exists() for n in _names(_config(s, t)))
    ]
    for name_of_table in [table] if table else started:
        config = _config(s, name_of_table)
        if not config:
            continue
        for name in config.get("processes", PROCESSES):
            tracked = processes.running(_pid_file(s, name_of_table, name))
            worker = _kind(name) == "ingest"
            partitions, lag = (
                _ownership(_metrics_url(config, name)) if worker and tracked else (None, None)
            )
            rows.append(
                WriterStatus(
                    table=name_of_table,
                    name=name,
                    pid=tracked.pid if tracked else None,
                    alive=tracked is not None,
                    metrics_url=_metrics_url(config, name),
                    table_uri=config["table_uri"],
                    topic=config["topic"] if worker else None,
                    dead_letter_uri=config["dead_letter_uri"] if worker else None,
                    log=str(_log_file(s, name_of_table, name)),
                    partitions=partitions,
                    lag=lag,
                )
            )
    return rows


def _ownership(url: str) -> tuple[list[int] | None, int | None]:
    """The partitions a worker owns and their summed lag, read from its metrics (None, None
    when it does not answer)."""
    try:
        samples = metrics.samples(url)
    except StackError:
        return None, None
    owned = samples.filter(
        (pl.col("name") == "neuralake_writer_assigned_partition") & (pl.col("value") == 1)
    )["labels"].to_list()
    partitions = sorted(int(label.split('"')[1]) for label in owned)
    lags = samples.filter(pl.col("name") == "neuralake_writer_consumer_lag")
    lag = sum(
        int(value)
        for label, value in lags.select("labels", "value").iter_rows()
        if int(label.split('"')[1]) in partitions
    )
    return partitions, lag


def tables(s: Settings) -> list[str]:
    """Tables the writer has been started for (they have a folder in the state)."""
    root = s.state_dir / "writer"
    return (
        sorted(p.name for p in root.iterdir() if (p / "writer.json").exists())
        if root.exists()
        else []
    )


def as_json(rows: list[WriterStatus]) -> str:
    return json.dumps([asdict(row) for row in rows], indent=2)


def log_file(s: Settings, table: str, name: str) -> Path:
    return _log_file(s, table, name)


# --- helpers -------------------------------------------------------------------------


def _chosen(only: Sequence[str] | None) -> list[str]:
    """The kinds of process to start, in start order (ingest first); all three when None."""
    if only is None:
        return list(PROCESSES)
    unknown = sorted(set(only) - set(PROCESSES))
    if unknown or not only:
        raise ConfigError(
            f"unknown writer process {', '.join(unknown) or '(none given)'}: "
            f"--only takes {', '.join(PROCESSES)}"
        )
    return [name for name in PROCESSES if name in only]


def _folder(s: Settings, table: str) -> Path:
    s.table_uri(table)  # validates the name: it becomes a folder
    return s.state_dir / "writer" / table


def _pid_file(s: Settings, table: str, name: str) -> Path:
    return _folder(s, table) / f"{name}.pid"


def _log_file(s: Settings, table: str, name: str) -> Path:
    return _folder(s, table) / f"{name}.log"


def _config(s: Settings, table: str) -> dict:
    try:
        return json.loads((_folder(s, table) / "writer.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _write_config(s: Settings, table: str, config: dict) -> None:
    path = _folder(s, table) / "writer.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))


def _ports(
    table: str, names: list[str], recorded: dict[str, int], live: set[str]
) -> dict[str, int]:
    """Each process's metrics port: kept while its process lives, else free now. The default
    table's first worker, compact and vacuum have fixed ports; other workers get free ones."""
    ports: dict[str, int] = {}
    for name in names:
        fixed = table == DEFAULT_TABLE and name in DEFAULT_PORTS
        wanted = DEFAULT_PORTS[name] if fixed else recorded.get(name)
        if wanted and (name in live or processes.port_is_free(wanted)):
            ports[name] = wanted
        elif wanted and fixed:
            raise StackError(
                f"port {wanted} for the writer's {name} metrics is held by "
                f"{processes.port_holder(wanted)}: stop that process, or write another "
                "table (--table NAME gets free ports)"
            )
        else:
            ports[name] = processes.free_port()
    return ports


def process_env(
    s: Settings, *, topic: str, table_uri: str, **options: int | float | str | None
) -> dict[str, str]:
    """The environment for ``neuralake-writer``: the settings as its NEURALAKE_* variables.

    Tests and benchmarks that run the binary directly use it too, so every run of the
    binary sees the same S3 and Kafka as the Python code.
    """
    env = {
        **os.environ,
        "NEURALAKE_WRITER_TABLE_URI": table_uri,
        "NEURALAKE_WRITER_DEAD_LETTER_URI": dead_letter_uri(table_uri),
        "NEURALAKE_WRITER_TOPIC": topic,
        "NEURALAKE_KAFKA_BOOTSTRAP": s.kafka_config["bootstrap.servers"],
        "NEURALAKE_S3_ENDPOINT": s.s3_endpoint or "",  # empty: real AWS
        "NEURALAKE_S3_REGION": s.region,
        "NEURALAKE_S3_ACCESS_KEY_ID": s.access_key_id or "",  # empty: AWS credential chain
        "NEURALAKE_S3_SECRET_ACCESS_KEY": s.secret_access_key or "",
        "NEURALAKE_WRITER_LOG_FORMAT": "json",
    }
    for option, value in options.items():
        if option not in OPTION_VARS:
            raise StackError(f"unknown writer option {option!r}: use {list(OPTION_VARS)}")
        if value is not None:
            env[OPTION_VARS[option]] = str(value)
    return env


def _metrics_url(config: dict, name: str) -> str:
    return f"http://127.0.0.1:{config['ports'][name]}/metrics"


def _wait_healthy(s: Settings, table: str, name: str, config: dict) -> None:
    url = _metrics_url(config, name)

    def ready() -> None:
        if _kind(name) == "ingest":  # serving /metrics is not enough: the table must be open
            if metrics.values(url).get("neuralake_writer_ready") != 1.0:
                raise StackError(f"writer ingest is not ready yet ({url})")
        else:
            metrics.scrape(url)

    processes.wait_healthy(
        f"writer {name}",
        _pid_file(s, table, name),
        _log_file(s, table, name),
        ready,
        timeout=START_TIMEOUT_S,
        interval=0.2,
    )
