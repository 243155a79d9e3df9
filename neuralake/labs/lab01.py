"""Lab 01, Delta Lake: the tables it starts from, and the graders of its five exercises.

Every grader reads the real table (current version, older versions, storage listing);
none takes the student's word for what happened. The only student-supplied value is
the answer to exercise 2, and it is compared with what the table's versions show.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import polars as pl
from deltalake import DeltaTable, write_deltalake

from neuralake import delta
from neuralake.datagen import Simulation, schemas, write_frames
from neuralake.labs.checks import expect, passed
from neuralake.settings import Settings

MAX_FILES = 4  # exercise 4: compact the signals below this many files
ORIGINAL_COLUMNS = schemas.SESSIONS.names()


@dataclass(frozen=True)
class Lab01:
    """The lab's tables and the facts the graders need about how they were made."""

    sessions_uri: str
    signals_uri: str
    storage_options: dict[str, str]
    signal_rows: int
    new_session: pl.DataFrame  # exercise 3: a session with a new column, `surgeon`

    def sessions(self, version: int | None = None) -> pl.DataFrame:
        return pl.read_delta(
            self.sessions_uri, version=version, storage_options=self.storage_options
        )


def setup(
    settings: Settings,
    *,
    prefix: str = "lab01_",
    rows: int = 200_000,
    files: int = 14,
    seed: int = 1,
) -> Lab01:
    """(Re)create the lab's tables from scratch, with a history worth investigating.

    ``sessions``: v0 three sessions; v1 session 3's task renamed; v2 session 1's task
    renamed; v3 session 4 added; v4 session 2 deleted (by accident).
    ``neural_signals``: written twice (a bad ingest, then the right one), so storage holds
    files no version needs, as ``files`` small files.
    """
    sim = Simulation(rows=rows, sessions=3, patients=2, seed=seed)
    options = settings.storage_options
    sessions_uri = settings.table_uri(prefix + "sessions")
    signals_uri = settings.table_uri(prefix + "neural_signals")
    for uri in (sessions_uri, signals_uri):
        delta.drop_table(uri, options)

    sessions = sim.sessions_table()
    write_deltalake(sessions_uri, sessions, storage_options=options)
    table = DeltaTable(sessions_uri, storage_options=options)
    table.update(predicate="session_id = 3", updates={"task": "'free_play_v2'"})
    table.update(predicate="session_id = 1", updates={"task": "'cursor_control_v2'"})
    fourth = sessions.filter(pl.col("session_id") == 3).with_columns(
        session_id=pl.lit(4, pl.Int32), started_at=pl.col("started_at") + pl.duration(days=1)
    )
    write_deltalake(sessions_uri, fourth, mode="append", storage_options=options)
    table.delete(predicate="session_id = 2")

    for _ in range(2):  # the first write stands for a bad ingest that was redone
        write_frames(
            signals_uri,
            sim.signal_chunks(),
            schemas.NEURAL_SIGNALS,
            options,
            files=files,
            total_rows=sim.signal_rows,
        )

    new_session = fourth.with_columns(
        session_id=pl.lit(5, pl.Int32),
        started_at=pl.col("started_at") + pl.duration(days=1),
        surgeon=pl.lit("Dr. Ada"),
    )
    return Lab01(sessions_uri, signals_uri, options, sim.signal_rows, new_session)


# -- exercise 1: recover a deleted row by time travel -------------------------------------


def check_recovered(lab: Lab01) -> None:
    now = lab.sessions()
    ids = sorted(now["session_id"].to_list())
    copies = ids.count(2)
    expect(
        copies > 0,
        f"session 2 is not in the table (it has sessions {ids}): read the version before "
        "the DELETE with DeltaTable(uri, version=...) and append session 2's row",
    )
    expect(copies == 1, f"session 2 is in the table {copies} times: keep exactly one copy")
    expect(
        {1, 3, 4} <= set(ids),
        f"the table has sessions {ids}: sessions 1, 3 and 4 must stay as they are",
    )
    original = lab.sessions(version=0).filter(pl.col("session_id") == 2)
    restored = now.filter(pl.col("session_id") == 2).select(ORIGINAL_COLUMNS)
    differ = [c for c in ORIGINAL_COLUMNS if restored[c][0] != original[c][0]]
    expect(not differ, f"session 2 differs from the original in {differ}: restore it unchanged")
    passed("session 2 is back, exactly as it was recorded")


# -- exercise 2: which commit changed a value? --------------------------------------------


def task_history(lab: Lab01, session_id: int = 1) -> list[tuple[int, str | None]]:
    """(version, task of the session at that version) for every version of sessions."""
    latest = DeltaTable(lab.sessions_uri, storage_options=lab.storage_options).version()
    history = []
    for version in range(latest + 1):
        rows = lab.sessions(version).filter(pl.col("session_id") == session_id)["task"]
        history.append((version, rows[0] if rows.len() else None))
    return history


def check_changed_in(lab: Lab01, changed_in: int | None) -> None:
    history = task_history(lab)
    truth = next(v for (_, before), (v, task) in pairwise(history) if task != before)
    expect(
        changed_in is not None,
        "changed_in is None: read session 1's task at each version "
        "(pl.read_delta(uri, version=v)) and store the version where it changed",
    )
    expect(
        isinstance(changed_in, int) and 0 <= changed_in < len(history),
        f"changed_in={changed_in!r} is not a version of the table: use an int "
        f"from 0 to {len(history) - 1}",
    )
    if changed_in != truth:
        before = history[changed_in - 1][1] if changed_in > 0 else None
        after = history[changed_in][1]
        expect(
            False,
            f"version {changed_in} did not change session 1's task ({before!r} before, "
            f"{after!r} after): compare each version with the one before it",
        )
    passed(f"version {truth} changed session 1's task")


# -- exercise 3: evolve the schema ---------------------------------------------------------


def check_evolved(lab: Lab01) -> None:
    now = lab.sessions()
    expect(
        "surgeon" in now.columns,
        f"the table has no column 'surgeon' (columns: {now.columns}): append new_session "
        "with schema_mode='merge'",
    )
    expect(
        now.schema["surgeon"] == pl.String,
        f"'surgeon' is {now.schema['surgeon']}, not a string: append new_session as given",
    )
    fifth = now.filter(pl.col("session_id") == 5)
    expect(fifth.height == 1, f"session 5 is in the table {fifth.height} times: append it once")
    expect(
        fifth["surgeon"][0] == lab.new_session["surgeon"][0],
        f"session 5's surgeon is {fifth['surgeon'][0]!r}: append new_session unchanged",
    )
    others = now.filter(pl.col("session_id") != 5)["surgeon"].null_count()
    expect(
        others == now.height - 1,
        "older sessions have a surgeon: merge the schema, do not edit the old rows",
    )
    passed("the schema evolved: 'surgeon' is new, older rows read it as null")


# -- exercise 4: compact the small files ---------------------------------------------------


def check_compacted(lab: Lab01) -> None:
    info = delta.inspect(lab.signals_uri, lab.storage_options).row(0, named=True)
    expect(
        info["rows"] == lab.signal_rows,
        f"the table has {info['rows']:,} rows, it had {lab.signal_rows:,}: compaction must "
        "not change the data; run the setup cell again and only compact",
    )
    expect(
        info["files"] < MAX_FILES,
        f"the table has {info['files']} files; run DeltaTable(uri).optimize.compact() "
        f"until it has fewer than {MAX_FILES}",
    )
    passed(f"{info['files']} file(s) now, same {info['rows']:,} rows")


# -- exercise 5: vacuum ------------------------------------------------------------------


def check_vacuumed(lab: Lab01) -> None:
    table = DeltaTable(lab.signals_uri, storage_options=lab.storage_options)
    used = len(table.file_uris())
    stored = delta.data_files(lab.signals_uri, lab.storage_options).height
    expect(
        stored == used,
        f"storage holds {stored} Parquet files but the current version uses {used}: run "
        "vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)",
    )
    expect(
        table.count() == lab.signal_rows,
        f"the table has {table.count():,} rows, it had {lab.signal_rows:,}: vacuum must "
        "only delete files no version needs",
    )
    passed(f"storage holds only the {used} file(s) the table uses")
