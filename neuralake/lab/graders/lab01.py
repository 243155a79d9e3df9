"""Lab 01, Delta Lake: six exercises, each on its own tables, and their graders.

``setup()`` builds every exercise's tables; ``lab.reset("ex3")`` rebuilds one exercise
and forgets its attempts, so a student can retry it without redoing the others. Each
builder scripts a small story into a table's history (a bad overwrite, a replayed
batch, a writer that lost a race); the grader reads the real table -- its current data,
its older versions, its commits, what a filtered scan opened -- and never takes the
student's word for what happened. Where an exercise asks for an answer (``changed_in``,
``files_skipped``) the grader computes the truth from the table and compares.

Every failure names what the grader found and a tiered :class:`Hint` (concept, API,
call), keyed by exercise (``lab01.ex1`` ... ``lab01.ex6``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from itertools import pairwise
from typing import ClassVar

import numpy as np
import polars as pl
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError

from neuralake.catalog.pushdown import measure
from neuralake.datagen import Simulation, schemas, write_frames
from neuralake.errors import NeuralakeError
from neuralake.lab.graders.base import Lab
from neuralake.lab.graders.checks import Hint, passed
from neuralake.settings import Settings

SESSIONS = 4  # sessions in the simulated study (exercise 4 partitions by them)
SPIKE_KEY = ["session_id", "channel", "timestamp"]  # one spike per channel and instant
MAX_PARTITIONED_FILES = 4 * SESSIONS  # exercise 4: more files than this is over-partitioned
DRIFT = 1.1  # exercise 5: writer A multiplies every gain by this
STREAM_BATCHES = 7  # exercise 6: batches 1..3 landed, 2..6 are replayed, 7 the grader's


# -- the lab and its exercises ------------------------------------------------------------


@dataclass(frozen=True)
class Audit:
    """Exercise 1: a sessions table whose history hides when a value changed."""

    uri: str


@dataclass(frozen=True)
class Restore:
    """Exercise 2: a sessions table a backfill job overwrote by mistake."""

    uri: str


@dataclass(frozen=True)
class Dedupe:
    """Exercise 3: a spikes table, and a replayed batch that overlaps it."""

    uri: str
    # partly already in the table, and with copies of its own rows
    batch: pl.DataFrame = field(repr=False)


@dataclass(frozen=True)
class Partition:
    """Exercise 4: unpartitioned signals, and where the partitioned copy goes."""

    source_uri: str  # the signals as ingested: every file holds every session
    target_uri: str  # write the partitioned copy here
    session: int  # the dashboard reads one session at a time: this one


@dataclass(frozen=True)
class Conflict:
    """Exercise 5: channel gains, and the commit writer A could not make."""

    uri: str
    error: str  # what writer A's UPDATE raised


@dataclass(frozen=True)
class Stream:
    """Exercise 6: a micro-batch stream whose ingest job crashed and is replaying."""

    uri: str
    app_id: str
    replay: list[tuple[int, pl.DataFrame]] = field(repr=False)  # (batch id, rows): 2..6
    batches: dict[int, pl.DataFrame] = field(repr=False)  # every batch, 1..7, for grading


@dataclass
class Lab01(Lab):
    """Lab 01's run (see :class:`~neuralake.lab.graders.base.Lab`) and, per exercise, what its
    tables are and how they were made."""

    number: ClassVar[str] = "01"
    exercises: ClassVar[tuple[str, ...]] = ("ex1", "ex2", "ex3", "ex4", "ex5", "ex6")
    tables: ClassVar[tuple[str, ...]] = (  # every name starts with its exercise
        "ex1_sessions",
        "ex2_sessions",
        "ex3_spikes",
        "ex4_signals",
        "ex4_signals_partitioned",
        "ex5_gains",
        "ex6_spikes",
    )

    seed: int
    ex1: Audit
    ex2: Restore
    ex3: Dedupe
    ex4: Partition
    ex5: Conflict
    ex6: Stream

    def rebuild(self, exercise: str) -> None:
        setattr(self, exercise, BUILDERS[exercise](self.settings, self.prefix, self.seed))


grading = Lab01.grading  # grading("ex3").expect(...): attempts count per exercise


def setup(settings: Settings, *, prefix: str = "lab01_", seed: int = 1) -> Lab01:
    """(Re)create every exercise's tables from scratch; forget every attempt."""
    Lab01.forget_attempts()
    return Lab01(
        settings,
        prefix,
        seed,
        ex1=build_audit(settings, prefix, seed),
        ex2=build_restore(settings, prefix, seed),
        ex3=build_dedupe(settings, prefix, seed),
        ex4=build_partition(settings, prefix, seed),
        ex5=build_conflict(settings, prefix, seed),
        ex6=build_stream(settings, prefix, seed),
    )


def _simulation(seed: int) -> Simulation:
    # rows=1 asks for the smallest study: one block of 1024 time steps x 256 channels
    # per session, 1,048,576 signal rows for 4 sessions.
    return Simulation(rows=1, sessions=SESSIONS, patients=2, seed=seed)


@cache
def _signals(seed: int) -> pl.DataFrame:
    """The simulated signals, generated once per seed (three exercises start from them)."""
    return _simulation(seed).neural_signals()


def drop(settings: Settings, prefix: str = "lab01_") -> None:
    """Delete every table of the lab."""
    Lab01.drop_tables(settings, prefix)


def _spikes(seed: int) -> pl.DataFrame:
    """The spikes of the simulated signals (about 1,900 rows), in time order."""
    return (
        _signals(seed)
        .filter(pl.col("spike"))
        .select("timestamp", "session_id", "channel", "voltage_uv")
        .sort("timestamp", "channel")
    )


def _sessions_v0(
    settings: Settings, prefix: str, name: str, seed: int
) -> tuple[str, pl.DataFrame, DeltaTable]:
    """Table ``name`` created afresh with the study's sessions as version 0: its URI, the
    sessions written, and the table (for the commits a builder scripts on top)."""
    uri = Lab01.fresh_table(settings, prefix, name)
    sessions = _simulation(seed).sessions_table()
    write_deltalake(uri, sessions, storage_options=settings.storage_options)
    return uri, sessions, DeltaTable(uri, storage_options=settings.storage_options)


# -- exercise 1: which commit changed a value? ---------------------------------------------


def build_audit(settings: Settings, prefix: str, seed: int) -> Audit:
    """v0 four sessions; v1 session 3's task renamed; v2 session 1's task renamed;
    v3 session 5 added; v4 session 2 deleted."""
    options = settings.storage_options
    uri, sessions, table = _sessions_v0(settings, prefix, "ex1_sessions", seed)
    table.update(predicate="session_id = 3", updates={"task": "'free_play_v2'"})
    table.update(predicate="session_id = 1", updates={"task": "'cursor_control_v2'"})
    fifth = sessions.filter(pl.col("session_id") == 4).with_columns(
        session_id=pl.lit(5, pl.Int32), started_at=pl.col("started_at") + pl.duration(days=1)
    )
    write_deltalake(uri, fifth, mode="append", storage_options=options)
    DeltaTable(uri, storage_options=options).delete(predicate="session_id = 2")
    return Audit(uri)


def task_history(lab: Lab01, session_id: int = 1) -> list[tuple[int, str | None]]:
    """(version, task of the session at that version) for every version of the table."""
    uri, options = lab.ex1.uri, lab.storage_options
    latest = DeltaTable(uri, storage_options=options).version()
    history = []
    for version in range(latest + 1):
        frame = pl.read_delta(uri, version=version, storage_options=options)
        tasks = frame.filter(pl.col("session_id") == session_id)["task"]
        history.append((version, tasks[0] if tasks.len() else None))
    return history


AUDIT = Hint(
    concept="Every version of a Delta table stays readable. Read session 1's task as it "
    "was at each version and find the first version where it differs from the one before.",
    api="DeltaTable(uri).version() gives the latest version; pl.read_delta(uri, version=v) "
    "reads an older one; history() names each commit's operation (lesson 01, section 4).",
    call="tasks = [pl.read_delta(uri, version=v, storage_options=...).filter(pl.col("
    "'session_id') == 1)['task'][0] for v in range(latest + 1)]; changed_in = the first v "
    "with tasks[v] != tasks[v - 1]",
)


def check_changed_in(lab: Lab01, changed_in: int | None) -> None:
    grade = grading("ex1")
    history = task_history(lab)
    truth = next(v for (_, before), (v, task) in pairwise(history) if task != before)
    grade.expect(changed_in is not None, "changed_in is None", AUDIT)
    if not (isinstance(changed_in, int) and 0 <= changed_in < len(history)):
        grade.fail(
            f"changed_in={changed_in!r} is not a version of the table (0 to {len(history) - 1})",
            AUDIT,
        )
    if changed_in != truth:
        before = history[changed_in - 1][1] if changed_in > 0 else None
        grade.expect(
            False,
            f"version {changed_in} did not change session 1's task ({before!r} before, "
            f"{history[changed_in][1]!r} after)",
            AUDIT,
        )
    passed(f"version {truth} changed session 1's task")


# -- exercise 2: restore after a bad write -------------------------------------------------

RESTORE_GOOD_VERSION = 1  # v0 create, v1 a correction, v2 the bad overwrite, v3 a hotfix
RESTORE_SETUP_VERSION = 3


def build_restore(settings: Settings, prefix: str, seed: int) -> Restore:
    """v0 four sessions; v1 session 2's task corrected (good); v2 a backfill overwrote the
    table with two half-empty rows (bad); v3 a hurried UPDATE on top of the bad data."""
    options = settings.storage_options
    uri, sessions, table = _sessions_v0(settings, prefix, "ex2_sessions", seed)
    table.update(predicate="session_id = 2", updates={"task": "'webgrid_v2'"})
    backfill = sessions.head(2).with_columns(task=pl.lit(None, pl.String), samples=pl.lit(0))
    write_deltalake(uri, backfill, mode="overwrite", storage_options=options)
    DeltaTable(uri, storage_options=options).update(updates={"task": "'unknown'"})
    return Restore(uri)


RESTORE = Hint(
    concept="An overwrite only commits 'remove these files, add those': the good files are "
    "still in storage. Find the last version before the bad write and make the table "
    "that version again, as a new commit that says what it did.",
    api="DeltaTable.history() shows each commit's operation and mode (look for the "
    "overwrite); DeltaTable.restore(version) brings a version back (lesson 01, section 4).",
    call=f"DeltaTable(lab.ex2.uri, storage_options=...).restore({RESTORE_GOOD_VERSION})",
)


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(frame.columns)


def check_restored(lab: Lab01) -> None:
    grade, uri, options = grading("ex2"), lab.ex2.uri, lab.storage_options
    table = DeltaTable(uri, storage_options=options)
    now = _sorted(pl.read_delta(uri, storage_options=options))
    versions = {
        v: _sorted(pl.read_delta(uri, version=v, storage_options=options))
        for v in range(RESTORE_SETUP_VERSION + 1)
    }
    same_as = [v for v, frame in versions.items() if frame.equals(now)]
    if not versions[RESTORE_GOOD_VERSION].equals(now):
        what = f"the data of version {same_as[-1]}" if same_as else "data no setup version had"
        grade.expect(False, f"the table holds {now.height} sessions, {what}", RESTORE)
    last = table.history(limit=1)[0]["operation"]
    grade.expect(
        last == "RESTORE",
        f"the data is right but the commit that made it so is a {last}, not a RESTORE",
        RESTORE,
    )
    passed(f"the table is version {RESTORE_GOOD_VERSION} again, restored in one commit")


# -- exercise 3: land a replayed batch without duplicates ----------------------------------


def build_dedupe(settings: Settings, prefix: str, seed: int) -> Dedupe:
    """v0 the first 60 % of the spikes; the batch holds spikes 40-100 % (so a third of
    it is already in the table), 50 of its rows twice, shuffled."""
    uri = Lab01.fresh_table(settings, prefix, "ex3_spikes")
    spikes = _spikes(seed)
    cut, overlap = int(spikes.height * 0.6), int(spikes.height * 0.4)
    write_deltalake(uri, spikes.head(cut), storage_options=settings.storage_options)
    batch = spikes.slice(overlap)
    batch = pl.concat([batch, batch.sample(50, seed=seed)]).sample(
        fraction=1.0, shuffle=True, seed=seed
    )
    return Dedupe(uri, batch)


DEDUPE = Hint(
    concept="A replayed batch overlaps what is already in the table and can repeat its own "
    "rows. Decide which columns identify a spike, drop the batch's own copies, then insert "
    "only the spikes the table does not have yet, in one atomic commit.",
    api="DataFrame.unique(subset=...) for the batch's copies; DeltaTable.merge(source, "
    "predicate=..., source_alias='s', target_alias='t').when_not_matched_insert_all()"
    ".execute() (lesson 01b, section 3: mind which columns make the key here).",
    call="DeltaTable(lab.ex3.uri, storage_options=...).merge(lab.ex3.batch.unique(subset="
    "['session_id', 'channel', 'timestamp']), predicate='t.session_id = s.session_id AND "
    "t.channel = s.channel AND t.timestamp = s.timestamp', source_alias='s', "
    "target_alias='t').when_not_matched_insert_all().execute()",
)


def check_deduplicated(lab: Lab01) -> None:
    grade, uri, options = grading("ex3"), lab.ex3.uri, lab.storage_options
    table = DeltaTable(uri, storage_options=options)
    before = pl.read_delta(uri, version=0, storage_options=options)
    now = pl.read_delta(uri, storage_options=options)
    expected = pl.concat([before, lab.ex3.batch]).unique()
    new = expected.join(before, on=SPIKE_KEY, how="anti")
    lost = before.join(now, on=SPIKE_KEY, how="anti").height
    grade.expect(lost == 0, f"{lost:,} of the table's original spikes are gone", DEDUPE)
    missing = new.join(now, on=SPIKE_KEY, how="anti").height
    grade.expect(
        missing == 0,
        f"the table lacks {missing:,} of the batch's {new.height:,} new spikes",
        DEDUPE,
    )
    copies = now.height - now.unique(subset=SPIKE_KEY).height
    grade.expect(copies == 0, f"{copies:,} spikes are in the table more than once", DEDUPE)
    changed = now.height - now.join(expected, on=now.columns, how="semi").height
    grade.expect(changed == 0, f"{changed:,} rows differ from the original spikes", DEDUPE)
    since = [c["operation"] for c in table.history() if c["version"] > 0]
    grade.expect(
        bool(since) and set(since) == {"MERGE"},
        f"the rows are right, but the commits since setup are {since}, not a MERGE",
        DEDUPE,
    )
    passed(f"{new.height:,} new spikes landed once each, by MERGE; {before.height:,} kept")


# -- exercise 4: partition for the query, and prove files are skipped ----------------------


def build_partition(settings: Settings, prefix: str, seed: int) -> Partition:
    """The signals as a few files (``files=8`` asks for about 8) of shuffled rows: every
    file holds every session, so a filter on session_id can skip none of them."""
    source_uri = Lab01.fresh_table(settings, prefix, "ex4_signals")
    target_uri = Lab01.fresh_table(settings, prefix, "ex4_signals_partitioned")
    shuffled = _signals(seed).sample(fraction=1.0, shuffle=True, seed=seed)
    write_frames(
        source_uri,
        [shuffled],
        schemas.NEURAL_SIGNALS,
        settings.storage_options,
        files=8,
        total_rows=shuffled.height,
    )
    return Partition(source_uri, target_uri, session=2)


PARTITION = Hint(
    concept="A filtered scan skips a file when the log says the file cannot hold a "
    "matching row. Partitioning on the column the query filters puts each value in its "
    "own files; choose a column with few values, or you trade skipping for many tiny files.",
    api="write_deltalake(uri, data, partition_by=[...]) (lesson 01b, section 7); "
    "DeltaTable.get_add_actions(flatten=True) lists each file with its partition values "
    "and statistics (lesson 01, section 2).",
    call="write_deltalake(lab.ex4.target_uri, pl.read_delta(lab.ex4.source_uri, ...), "
    "mode='overwrite', schema_mode='overwrite', partition_by=['session_id'], "
    "storage_options=...); files_skipped = number of rows of "
    "get_add_actions(flatten=True) whose 'partition.session_id' is not lab.ex4.session",
)


def dashboard_query(lab: Lab01, uri: str) -> Callable[[Settings], pl.LazyFrame]:
    """What the dashboard runs, one session's signals summarised, for given settings
    (what :func:`neuralake.catalog.pushdown.measure` takes)."""
    return lambda s: (
        pl.scan_delta(uri, storage_options=s.storage_options)
        .filter(pl.col("session_id") == lab.ex4.session)
        .select(rows=pl.len(), spikes=pl.col("spike").sum())
    )


def check_partitioned(lab: Lab01, files_skipped: int | None) -> None:
    grade, ex, options = grading("ex4"), lab.ex4, lab.storage_options
    table = lab.require_table(
        "ex4",
        ex.target_uri,
        PARTITION,
        what=f"table at lab.ex4.target_uri ({ex.target_uri})",
        made_by="your partitioned copy goes there",
    )
    per_session = {
        uri: pl.scan_delta(uri, storage_options=options).group_by("session_id").len().collect()
        for uri in (ex.source_uri, ex.target_uri)
    }
    source, target = (_sorted(f) for f in per_session.values())
    grade.expect(
        source.equals(target),
        f"the copy has {target['len'].sum():,} rows, the source {source['len'].sum():,} "
        "(or the sessions differ)",
        PARTITION,
    )
    columns = table.metadata().partition_columns
    files = len(table.file_uris())
    grade.expect(
        files <= MAX_PARTITIONED_FILES,
        f"partitioned by {columns}, the copy has {files:,} files (at most "
        f"{MAX_PARTITIONED_FILES} make sense for {source.height} sessions)",
        PARTITION,
    )
    _, reads = measure(dashboard_query(lab, ex.target_uri), lab.settings)
    opened, skipped = reads.files_opened, files - reads.files_opened
    most = math.ceil(files / SESSIONS)
    grade.expect(
        bool(columns) and opened <= most,
        f"partitioned by {columns}, the query for session {ex.session} opened "
        f"{opened} of {files} files",
        PARTITION,
    )
    grade.expect(files_skipped is not None, "the copy is right; files_skipped is None", PARTITION)
    grade.expect(
        files_skipped == skipped,
        f"files_skipped={files_skipped!r}, but the query skipped {skipped} of {files} files",
        PARTITION,
    )
    passed(
        f"partitioned by {columns}: session {ex.session}'s query opened {opened} "
        f"of {files} files, and you predicted the {skipped} skipped"
    )


# -- exercise 5: recover from a conflicting commit -----------------------------------------

CONFLICT_SETUP_VERSION = 1  # v0 the gains; v1 writer B's UPDATE


def build_conflict(settings: Settings, prefix: str, seed: int) -> Conflict:
    """v0 gains of 16 channels. Writer A opens the table; writer B commits v1 (bank A,
    channels 0-7, gain x2 after a headstage swap); A's UPDATE (every gain x1.1, a drift
    correction) then fails with CommitFailedError: it read a version B has changed."""
    options = settings.storage_options
    uri = Lab01.fresh_table(settings, prefix, "ex5_gains")
    rng = np.random.default_rng(seed)
    gains = pl.DataFrame(
        {
            "channel": pl.Series(range(16), dtype=pl.Int16),
            "gain": rng.uniform(0.9, 1.1, 16).round(3),
        }
    )
    write_deltalake(uri, gains, storage_options=options)
    writer_a = DeltaTable(uri, storage_options=options)
    writer_b = DeltaTable(uri, storage_options=options)
    writer_b.update(predicate="channel < 8", updates={"gain": "gain * 2"})
    try:
        writer_a.update(updates={"gain": f"gain * {DRIFT}"})
    except CommitFailedError as error:
        return Conflict(uri, f"{type(error).__name__}: {error}")
    raise NeuralakeError(
        f"writer A's stale UPDATE of {uri} committed instead of conflicting: this deltalake "
        "is not the locked one; run uv sync --locked"
    )


CONFLICT = Hint(
    concept="Optimistic concurrency: a writer that lost the race must read the table again "
    "and redo its change on the new version, once. Writing back what it computed from the "
    "old version would silently undo the winner's commit.",
    api="deltalake.exceptions.CommitFailedError; a fresh DeltaTable(uri) (or "
    "update_incremental()) sees the latest version; DeltaTable.update(updates=...) "
    "recomputes from it (lesson 01b, section 2).",
    call="in a loop of at most 3 attempts, open a fresh DeltaTable(lab.ex5.uri, "
    f"storage_options=...) and call .update(updates={{'gain': 'gain * {DRIFT}'}}); break "
    "out of the loop once it commits, try again on CommitFailedError",
)


def check_conflict_resolved(lab: Lab01) -> None:
    grade, uri, options = grading("ex5"), lab.ex5.uri, lab.storage_options
    read = {
        v: pl.read_delta(uri, version=v, storage_options=options).sort("channel")["gain"]
        for v in (0, CONFLICT_SETUP_VERSION, None)
    }
    original, b_only, now = read[0], read[CONFLICT_SETUP_VERSION], read[None]

    grade.expect(
        len(now) == len(original),
        f"the table has {len(now)} channels, it had {len(original)}",
        CONFLICT,
    )

    def matches(expected: pl.Series) -> bool:
        return bool(((now - expected).abs() < 1e-9).all())

    grade.expect(
        not matches(b_only),
        "the gains are writer B's, without writer A's drift correction",
        CONFLICT,
    )
    grade.expect(
        not matches(original * DRIFT),
        f"the gains are version 0's x {DRIFT}: writer B's x2 on channels 0-7 is lost",
        CONFLICT,
    )
    grade.expect(
        not matches(b_only * DRIFT * DRIFT),
        f"the gains are writer B's x {DRIFT} twice: writer A's change landed twice",
        CONFLICT,
    )
    wrong = int(((now - b_only * DRIFT).abs() >= 1e-9).sum())
    grade.expect(
        wrong == 0, f"{wrong} of {len(now)} gains are not writer B's gain x {DRIFT}", CONFLICT
    )
    table = DeltaTable(uri, storage_options=options)
    since = [c["operation"] for c in table.history() if c["version"] > CONFLICT_SETUP_VERSION]
    grade.expect(
        set(since) <= {"UPDATE", "MERGE"},
        f"the gains are right, but the commits after writer B's are {since}: an overwrite "
        "replaces what other writers commit meanwhile",
        CONFLICT,
    )
    passed(f"both changes landed: writer B's x2 on channels 0-7, then writer A's x {DRIFT}")


# -- exercise 6 (stretch): an idempotent micro-batch append --------------------------------

STREAM_LANDED = 3  # batches the job committed before it crashed


def build_stream(settings: Settings, prefix: str, seed: int) -> Stream:
    """Batches 1-3 committed by app ``spike-ingest`` with txn versions 1-3; the replay
    holds batches 2-6 (2 and 3 again); the grader appends batch 7."""
    options = settings.storage_options
    uri = Lab01.fresh_table(settings, prefix, "ex6_spikes")
    app_id = "spike-ingest"
    spikes = _spikes(seed)
    size = math.ceil(spikes.height / STREAM_BATCHES)
    batches = {n: spikes.slice((n - 1) * size, size) for n in range(1, STREAM_BATCHES + 1)}
    for n in range(1, STREAM_LANDED + 1):
        write_deltalake(
            uri,
            batches[n],
            mode="append",
            storage_options=options,
            commit_properties=CommitProperties(app_transactions=[Transaction(app_id, n)]),
        )
    replay = [(n, batches[n]) for n in range(2, STREAM_BATCHES)]
    return Stream(uri, app_id, replay, batches)


STREAM = Hint(
    concept="Make the write idempotent: record in the same commit which batch it holds, "
    "and before writing a batch, look up the last batch the table recorded for this app. "
    "The table, not your job's memory, knows what landed, even after a crash.",
    api="Delta's transaction identifiers (PROTOCOL.md, 'Transaction Identifiers'): "
    "write_deltalake(..., commit_properties=CommitProperties(app_transactions="
    "[Transaction(app_id, version)])) records one; DeltaTable.transaction_version(app_id) "
    "reads it back (None before the first).",
    call="in append_batch, open DeltaTable(uri, storage_options=...); if "
    "(table.transaction_version(lab.ex6.app_id) or 0) >= batch_id, return False; otherwise "
    "write_deltalake(uri, frame, mode='append', storage_options=..., commit_properties="
    "CommitProperties(app_transactions=[Transaction(lab.ex6.app_id, batch_id)])) and "
    "return True",
)


def _batch_counts(lab: Lab01, last: int) -> dict[int, int]:
    """How many times each batch 1..last is in the table (each batch's rows are unique)."""
    now = pl.read_delta(lab.ex6.uri, storage_options=lab.storage_options)
    batches = lab.ex6.batches
    return {
        n: now.join(batches[n], on=SPIKE_KEY, how="semi").height // batches[n].height
        for n in range(1, last + 1)
    }


def check_idempotent(lab: Lab01, append_batch: Callable[[str, int, pl.DataFrame], object]) -> None:
    grade, ex, options = grading("ex6"), lab.ex6, lab.storage_options
    grade.expect(append_batch is not None, "append_batch is None", STREAM)
    txn = DeltaTable(ex.uri, storage_options=options).transaction_version(ex.app_id)
    last = max(STREAM_BATCHES - 1, txn or 0)
    counts = _batch_counts(lab, last)
    missing = [n for n, c in counts.items() if c == 0]
    twice = [n for n, c in counts.items() if c > 1]
    grade.expect(not missing, f"after the replay, batches {missing} are missing", STREAM)
    grade.expect(not twice, f"batches {twice} are in the table more than once", STREAM)
    grade.expect(
        txn == last,
        f"every batch is in once, but the table records batch {txn} as app "
        f"{ex.app_id!r}'s last, not {last}",
        STREAM,
    )

    def version() -> int:
        return DeltaTable(ex.uri, storage_options=options).version()

    before = version()
    append_batch(ex.uri, 4, ex.batches[4])
    grade.expect(
        version() == before,
        f"replaying batch 4 committed version {version()}: a batch that landed must be skipped",
        STREAM,
    )
    new = STREAM_BATCHES
    append_batch(ex.uri, new, ex.batches[new])
    append_batch(ex.uri, new, ex.batches[new])
    counts = _batch_counts(lab, new)
    txn = DeltaTable(ex.uri, storage_options=options).transaction_version(ex.app_id)
    grade.expect(
        counts[new] == 1 and txn == new,
        f"after append_batch(uri, {new}, ...) twice, batch {new} is in the table "
        f"{counts[new]} times and the recorded last batch is {txn}",
        STREAM,
    )
    passed(f"batches 1-{new} are in once each; a replayed batch commits nothing")


BUILDERS: dict[str, Callable[[Settings, str, int], object]] = {
    "ex1": build_audit,
    "ex2": build_restore,
    "ex3": build_dedupe,
    "ex4": build_partition,
    "ex5": build_conflict,
    "ex6": build_stream,
}
