"""Lab 02, code as a catalog: the table it starts from, and the graders of its exercises.

The lab writes one undocumented Delta table, ``spike_counts`` (spikes per session and
channel, partitioned by session). Students document it as a catalog table (ex1), read
it with a filter that skips files (ex2), give it quality checks that catch broken rows
(ex3), publish it as site, export and ROAPI config (ex4), and, as a stretch, serve a
materialized view of it through ROAPI (ex5).

Every grader looks at the real thing -- the table's data, what a scan opened, the files
the site generator wrote, a ROAPI server started on the student's config -- and fails
with what it found and a tiered :class:`Hint` keyed by exercise (``lab02.ex1`` ...
``lab02.ex5``). ``lab.reset("ex4")`` rebuilds one exercise's state and restarts its hints.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import httpx
import polars as pl
import yaml
from deltalake import DeltaTable, write_deltalake

from neuralake import delta
from neuralake.catalog import DeltalakeTable, FunctionTable
from neuralake.catalog.pushdown import measure
from neuralake.catalog.quality import run_checks
from neuralake.datagen import Simulation
from neuralake.errors import StackError
from neuralake.lab.api.server import roapi
from neuralake.lab.graders.base import Lab
from neuralake.lab.graders.checks import Hint, passed
from neuralake.settings import Settings

TABLE = "spike_counts"
VIEW = "session_spikes"
SESSIONS = 4
SESSION = 2  # exercise 2 reads this session ...
CHANNELS_BELOW = 8  # ... channels 0..7
MIN_DESCRIPTION = 20  # characters: a sentence, not a word
ARROW = "application/vnd.apache.arrow.stream"


# -- the lab ----------------------------------------------------------------------------


@dataclass
class Lab02(Lab):
    """Lab 02's run (see :class:`~neuralake.lab.graders.base.Lab`): its table and outputs."""

    number: ClassVar[str] = "02"
    exercises: ClassVar[tuple[str, ...]] = ("ex1", "ex2", "ex3", "ex4", "ex5")
    tables: ClassVar[tuple[str, ...]] = (TABLE, VIEW)

    uri: str  # spike_counts: pass it as DeltalakeTable(..., uri=lab.uri)
    out: Path  # exercise 4 writes the site and the ROAPI config here
    view_uri: str  # exercise 5 materializes session_spikes here
    rows: int  # rows of spike_counts

    def data(self) -> pl.DataFrame:
        """The rows of ``spike_counts`` (what every grader compares with)."""
        frame = pl.read_delta(self.uri, storage_options=self.storage_options)
        return frame.sort("session_id", "channel")

    def rebuild(self, exercise: str) -> None:
        if exercise in ("ex1", "ex2", "ex3"):
            _write_spike_counts(self.settings, self.uri)
        elif exercise == "ex4":
            _clear(self.out)
        else:
            delta.drop_table(self.view_uri, self.settings.storage_options)


grading = Lab02.grading  # grading("ex3").expect(...): attempts count per exercise


def setup(settings: Settings, *, prefix: str = "lab02_") -> Lab02:
    """(Re)create ``spike_counts``, clear the outputs of exercises 4 and 5, forget attempts."""
    Lab02.forget_attempts()
    uri = settings.table_uri(prefix + TABLE)
    rows = _write_spike_counts(settings, uri)
    view_uri = Lab02.fresh_table(settings, prefix, VIEW)
    out = settings.state_dir / "labs" / f"{prefix}catalog"
    _clear(out)
    return Lab02(settings, prefix, uri, out, view_uri, rows)


def _spike_counts() -> pl.DataFrame:
    """Spikes and mean quality per session and channel: 4 sessions x 256 channels."""
    # rows=1 asks for the smallest study: one block of 1024 time steps x 256 channels
    # per session.
    signals = Simulation(rows=1, sessions=SESSIONS, patients=2, seed=3).neural_signals()
    return (
        signals.group_by("session_id", "channel")
        .agg(
            spikes=pl.col("spike").sum().cast(pl.Int64),
            mean_quality=pl.col("quality").mean().cast(pl.Float64),
        )
        .sort("session_id", "channel")
    )


def _write_spike_counts(settings: Settings, uri: str) -> int:
    counts = _spike_counts()
    delta.drop_table(uri, settings.storage_options)
    write_deltalake(
        uri,
        counts.to_arrow(),
        partition_by=["session_id"],
        storage_options=settings.storage_options or None,
    )
    return counts.height


def _clear(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)


# -- exercise 1: document the table -------------------------------------------------------

DECLARE = Hint(
    concept="A catalog table is a declaration: where the data is, what one row is, and "
    "every column's type and meaning, so that nobody has to open the files to use it.",
    api="DeltalakeTable(name, uri=..., description=..., schema={col: Column(type, text)}, "
    "partition_columns=[...], docs_filters=[Filter(...)]) (lesson 02, section 3).",
    call="spike_counts = DeltalakeTable('spike_counts', uri=lab.uri, description='...', "
    "schema={'session_id': Column(pl.Int32, '...'), ...}, partition_columns=['session_id'], "
    "docs_filters=[Filter('session_id', '=', 1)])",
)
TYPES = Hint(
    concept="The declared types are a contract: they must be the types in the table, or "
    "every reader that trusts the catalog gets a surprise.",
    api="lab.data().schema (or pl.scan_delta(lab.uri, ...).collect_schema()) shows the "
    "table's types; lesson 02 section 3 compares a declaration with the log.",
    call="schema={'session_id': Column(pl.Int32, ...), 'channel': Column(pl.Int16, ...), "
    "'spikes': Column(pl.Int64, ...), 'mean_quality': Column(pl.Float64, ...)}",
)
PARTITIONS = Hint(
    concept="The catalog documents how the table is laid out, so readers know which "
    "filters skip files. Look at the folders the data files are in.",
    api="DeltaTable(lab.uri, storage_options=...).get_add_actions(flatten=True) has a "
    "partition.<column> field (lesson 02, section 2).",
    call="partition_columns=['session_id']",
)
EXAMPLE = Hint(
    concept="docs_filters is the example the site's snippets run: it must show real rows.",
    api="Filter(column, op, value) lists (lesson 02, section 3); try it with "
    "spike_counts.scan(filters=...).collect().",
    call="docs_filters=[Filter('session_id', '=', 1), Filter('channel', '<', 4)]",
)


def check_declared(lab: Lab02, table: Any) -> None:
    """Ex1: a DeltalakeTable at lab.uri whose schema, partitioning and example match the data."""
    grade = grading("ex1")
    grade.expect_a(table, DeltalakeTable, "spike_counts", DECLARE)
    grade.expect(table.name == TABLE, f"the table is named {table.name!r}, not {TABLE!r}", DECLARE)
    location = table.location(lab.settings)
    grade.expect(location == lab.uri, f"the table points at {location}, not lab.uri", DECLARE)
    length = len(table.description.strip())
    grade.expect(
        length >= MIN_DESCRIPTION,
        f"the description has {length} characters (at least {MIN_DESCRIPTION}: a sentence "
        "that says what one row is)",
        DECLARE,
    )
    actual = lab.data().schema
    declared = {c.name: c.dtype for c in table.declared_columns()}
    missing = [c for c in actual if c not in declared]
    grade.expect(not missing, f"the schema does not declare {missing}", TYPES)
    extra = [c for c in declared if c not in actual]
    grade.expect(not extra, f"the data has no column {extra}", TYPES)
    wrong = [f"{c} is {actual[c]}, not {declared[c]}" for c in actual if actual[c] != declared[c]]
    grade.expect(not wrong, f"declared types differ from the data: {'; '.join(wrong)}", TYPES)
    undescribed = [c.name for c in table.declared_columns() if not c.description.strip()]
    grade.expect(not undescribed, f"columns {undescribed} have no description", DECLARE)
    grade.expect(
        list(table.partition_columns) == ["session_id"],
        f"partition_columns is {list(table.partition_columns)}, the data is laid out differently",
        PARTITIONS,
    )
    grade.expect(len(table.docs_filters) > 0, "docs_filters is empty", EXAMPLE)
    example = table.scan(filters=list(table.docs_filters), settings=lab.settings).collect()
    grade.expect(
        example.height > 0,
        f"the example filter {list(table.docs_filters)} matches no rows",
        EXAMPLE,
    )
    passed(
        f"spike_counts is documented: {len(declared)} columns described, the example "
        f"filter returns {example.height} rows"
    )


# -- exercise 2: read with a filter that skips files --------------------------------------

LAZY = Hint(
    concept="A filter can only skip files if it reaches the scan: the query must stay a "
    "plan (LazyFrame) until the check collects it, and the check builds it itself (a "
    "function that returns it) so that it can count the files the scan requests.",
    api="table.scan(filters=[Filter(...), ...]) returns a LazyFrame (lesson 02, section 3); "
    ".collect() turns it into a DataFrame, too early here. measure(make_frame, s) takes "
    "a function for the same reason (lesson 02, section 6).",
    call=f"session_two = lambda: spike_counts.scan(filters=[Filter('session_id', '=', "
    f"{SESSION}), Filter('channel', '<', {CHANNELS_BELOW})])",
)
PRUNE = Hint(
    concept="Files are skipped by partition value and by the min/max statistics in the "
    "Delta log. A filter the optimizer cannot compare with them opens every file.",
    api="short_plan / LazyFrame.explain() lists the files a scan will open (lesson 02, "
    "section 2); filter on the partition column with a plain comparison.",
    call=f"spike_counts.scan(filters=[Filter('session_id', '=', {SESSION}), "
    f"Filter('channel', '<', {CHANNELS_BELOW})])",
)


def check_filtered(lab: Lab02, session_two: Callable[[], pl.LazyFrame] | None) -> None:
    """Ex2: a function returning a LazyFrame of the right rows, whose scan requests fewer
    files than the table has (counted by :func:`neuralake.catalog.pushdown.measure`)."""
    grade = grading("ex2")
    grade.expect(session_two is not None, "session_two is None", LAZY)
    if not callable(session_two):
        grade.fail(
            f"session_two is a {type(session_two).__name__}, not a function that returns "
            "the query (session_two = lambda: spike_counts.scan(...))",
            LAZY,
        )
    frame = session_two()
    grade.expect(
        isinstance(frame, pl.LazyFrame),
        f"session_two() returns a {type(frame).__name__}, not a LazyFrame",
        LAZY,
    )
    # Catalog tables read through the request log by default inside measure().
    result, reads = measure(lambda _: session_two(), lab.settings)
    total = len(DeltaTable(lab.uri, storage_options=lab.storage_options).file_uris())
    wanted = (pl.col("session_id") == SESSION) & (pl.col("channel") < CHANNELS_BELOW)
    expected = lab.data().filter(wanted)
    grade.expect(
        result.height == expected.height,
        f"session_two has {result.height} rows; session {SESSION}, channels "
        f"0-{CHANNELS_BELOW - 1} has {expected.height}",
        LAZY,
    )
    on = ["session_id", "channel"]
    grade.expect(
        set(result.columns) >= set(on)
        and result.select(on).sort(on).equals(expected.select(on).sort(on)),
        "session_two has the right number of rows but not the right ones",
        LAZY,
    )
    grade.expect(reads.files_opened < total, f"the scan opened all {total} files", PRUNE)
    passed(f"{result.height} rows; the scan opened {reads.files_opened} of {total} files")


# -- exercise 3: quality checks that catch broken rows ------------------------------------

CHECKS = Hint(
    concept="A check is a rule every row must keep. Ask what would make a row of "
    "spike_counts wrong, and write one check per way.",
    api="NotNull, Range(column, min=, max=), Unique(column, also=[...]), AcceptedValues "
    "(lesson 02, section 8); run_checks(name, frame, checks) tries them on any frame.",
    call="checks = [NotNull('spikes'), Range('spikes', min=0), Range('mean_quality', "
    "min=0, max=1), Unique('session_id', also=['channel'])]; spike_counts.checks = checks",
)
TOO_STRICT = Hint(
    concept="The table's data is clean: a check that fails on it is wrong, not the data.",
    api="run_checks('spike_counts', spike_counts.scan(), checks) shows which check fails "
    "and how many rows break it (lesson 02, section 8).",
    call="bound only what is impossible: Range('spikes', min=0) (no max: busy channels "
    "spike a lot), Range('mean_quality', min=0, max=1)",
)


def broken_rows(lab: Lab02) -> dict[str, pl.DataFrame]:
    """Three real rows, broken in each of the four ways a row of spike_counts can be wrong."""
    rows = lab.data().head(3)
    return {
        "a negative spike count": rows.with_columns(spikes=pl.Series([-1, 0, 1])),
        "a missing spike count": rows.with_columns(spikes=pl.Series([None, 0, 1], dtype=pl.Int64)),
        "a mean_quality above 1": rows.with_columns(mean_quality=pl.Series([0.5, 1.5, 0.9])),
        "the same session and channel twice": pl.concat([rows, rows.head(1)]),
    }


def check_quality(lab: Lab02, checks: Any) -> None:
    """Ex3: checks that pass on the clean table and fail on each kind of broken row."""
    grade = grading("ex3")
    grade.expect(checks is not None, "checks is None", CHECKS)
    grade.expect(
        isinstance(checks, list | tuple) and len(checks) > 0,
        f"checks is {checks!r}, not a list of checks",
        CHECKS,
    )
    odd = [type(c).__name__ for c in checks if not hasattr(c, "aggregate")]
    grade.expect(not odd, f"checks holds {odd}, which are not checks", CHECKS)
    table = pl.scan_delta(lab.uri, storage_options=lab.storage_options)
    good = run_checks(TABLE, table, checks)
    failing = [r.check for r in good.results if not r.passed]
    grade.expect(not failing, f"{failing} fail on the real (clean) data", TOO_STRICT)
    for label, bad in broken_rows(lab).items():
        report = run_checks(TABLE, bad.lazy(), checks)
        grade.expect(not report.passed, f"your checks let {label} through", CHECKS)
    passed(
        f"{len(checks)} checks pass on the data and catch all {len(broken_rows(lab))} kinds "
        "of broken rows"
    )


# -- exercise 4: publish ------------------------------------------------------------------

PUBLISH = Hint(
    concept="The site and the ROAPI config are generated from one export of the catalog; "
    "the catalog of this notebook is the notebook's module.",
    api="Catalog({'lab': ModuleDatabase(sys.modules[__name__])}) (lesson 02, section 4); "
    "export_catalog(catalog, name, settings, quality=catalog.check()) and build_site(export, "
    "folder) (section 9); write_roapi(export, path) saves the config roapi_config(export) "
    "builds (section 10).",
    call="catalog = Catalog({'lab': ModuleDatabase(sys.modules[__name__])}); export = "
    "export_catalog(catalog, 'lab02', s, quality=catalog.check()); site_index = "
    "build_site(export, lab.out / 'site'); roapi_path = write_roapi(export, lab.out / "
    "'roapi.yaml')",
)
ATTACH = Hint(
    concept="The catalog runs the checks declared on a table, and the export carries their "
    "reports only when it is given them.",
    api="A table's checks (lesson 02, section 3: DeltalakeTable(..., checks=[...]), or set "
    "spike_counts.checks later); export_catalog(..., quality=catalog.check()) (section 9).",
    call="spike_counts.checks = checks; catalog = Catalog({'lab': "
    "ModuleDatabase(sys.modules[__name__])}); export = export_catalog(catalog, 'lab02', s, "
    "quality=catalog.check())",
)
REEXPORT = Hint(
    concept="The export is a snapshot of the declarations when it was made: declare first, "
    "then export.",
    api="A ModuleDatabase lists the tables the module holds when it is built (lesson 02, "
    "section 4): rebuild the Catalog after declaring or changing a table.",
    call="re-run the publish cell after exercise 1: catalog = Catalog(...); export = "
    "export_catalog(catalog, 'lab02', s, quality=catalog.check()); build_site(...); "
    "write_roapi(...)",
)


def check_published(lab: Lab02, site_index: Any, roapi_path: Any) -> None:
    """Ex4: the site, its catalog.json (with a passing quality report) and the ROAPI config."""
    grade = grading("ex4")
    grade.expect(site_index is not None, "site_index is None", PUBLISH)
    grade.expect(roapi_path is not None, "roapi_path is None", PUBLISH)
    site = Path(site_index).parent
    grade.expect(
        site.resolve() == (lab.out / "site").resolve(),
        f"the site is in {site}, not in lab.out / 'site'",
        PUBLISH,
    )
    export_file = site / "catalog.json"
    grade.expect(export_file.exists(), f"{export_file.name} is missing from the site", PUBLISH)
    tables = {t["name"]: t for t in json.loads(export_file.read_text())["tables"]}
    grade.expect(TABLE in tables, f"the export lists {sorted(tables)}, not {TABLE}", REEXPORT)
    entry = tables[TABLE]
    grade.expect(
        bool(entry["description"]) and all(c["description"] for c in entry["columns"]),
        "the exported table or one of its columns has no description",
        REEXPORT,
    )
    quality = entry["quality"]
    grade.expect(quality is not None, f"the export has no quality report for {TABLE}", ATTACH)
    broken = [r["check"] for r in quality["results"] if not r["passed"]]
    grade.expect(
        quality["passed"],
        f"the quality report for {TABLE} fails: {broken or quality['error']}",
        ATTACH,
    )
    page = site / "tables" / f"{entry['id']}.html"
    grade.expect(page.exists(), f"the table page {page.name} is missing", PUBLISH)
    config = yaml.safe_load(Path(roapi_path).read_text())
    served = {t["name"]: t for t in config["tables"]}
    grade.expect(TABLE in served, f"the ROAPI config serves {sorted(served)}, not {TABLE}", PUBLISH)
    expected_uri = lab.uri.removeprefix("file://")
    got_uri = served[TABLE]["uri"]
    grade.expect(
        got_uri == expected_uri, f"ROAPI would read {got_uri}, not {expected_uri}", PUBLISH
    )
    passed(f"{TABLE} is on the site ({page.name}), in catalog.json and in the ROAPI config")


# -- exercise 5 (stretch): a materialized view served through ROAPI -----------------------

VIEW_DECLARE = Hint(
    concept="A materialized view is a function table whose result is stored as a Delta "
    "table, so that ROAPI (which cannot run Python) can serve it.",
    api="@table(materialize=True, uri=..., upstream=[...], schema={...}) above a function "
    "that returns a LazyFrame (lesson 02, section 7: channel_stats).",
    call="@table(materialize=True, uri=lab.view_uri, upstream=['spike_counts']) above "
    "def session_spikes() -> pl.LazyFrame, which returns spike_counts.scan()"
    ".group_by('session_id').agg(pl.col('spikes').sum(), pl.col('mean_quality').mean())"
    ".sort('session_id'), with a docstring that describes the view",
)
VIEW_DATA = Hint(
    concept="The view holds one row per session: the session's total spikes over all "
    "channels and the mean of its channels' mean_quality.",
    api="LazyFrame.group_by(...).agg(...) inside the function; catalog.refresh(name) or "
    "session_spikes.refresh() rewrites the stored table (lesson 02, section 7).",
    call="spike_counts.scan().group_by('session_id').agg(pl.col('spikes').sum(), "
    "pl.col('mean_quality').mean()).sort('session_id'), then session_spikes.refresh()",
)
VIEW_SERVE = Hint(
    concept="ROAPI serves what its config lists, and the config is written from an export "
    "made after the view was declared and refreshed.",
    api="Catalog(...) and export_catalog(...) as in exercise 4; write_roapi(export, path) "
    "saves the config roapi_config(export) builds (lesson 02, section 10); "
    "roapi(roapi_config(export)['tables'], s, folder) serves those tables on free ports.",
    call="catalog = Catalog({'lab': ModuleDatabase(sys.modules[__name__])}); export = "
    "export_catalog(catalog, 'lab02', s); served_config = write_roapi(export, lab.out / "
    "'roapi-view.yaml')",
)
VIEW_TYPES = Hint(
    concept="JSON has one kind of number and no timestamps: read back from JSON, an Int32 "
    "column comes back as Int64. Ask for a format that carries the schema.",
    api="ROAPI's response formats: the Accept header (lesson 02, section 10, JSON vs Arrow); "
    "pl.read_ipc_stream(response.content) reads Arrow.",
    call=f"answer = httpx.post(f'http://{{listeners.http}}/api/sql', content='SELECT * FROM {VIEW} "
    f"ORDER BY session_id', headers={{'Accept': '{ARROW}'}}); served = "
    "pl.read_ipc_stream(answer.content)",
)


def view_truth(lab: Lab02) -> pl.DataFrame:
    """What session_spikes must hold: one row per session."""
    return (
        lab.data()
        .group_by("session_id")
        .agg(pl.col("spikes").sum(), pl.col("mean_quality").mean())
        .sort("session_id")
    )


def _same_rows(frame: pl.DataFrame, truth: pl.DataFrame) -> bool:
    """Same sessions and spike totals, and mean_quality within 1e-9 (float sums)."""
    columns = ["session_id", "spikes", "mean_quality"]
    if not set(columns) <= set(frame.columns) or frame.height != truth.height:
        return False
    got = frame.select(columns).sort("session_id")
    return (
        got["session_id"].cast(pl.Int64).to_list() == truth["session_id"].cast(pl.Int64).to_list()
        and got["spikes"].cast(pl.Int64).to_list() == truth["spikes"].to_list()
        and ((got["mean_quality"] - truth["mean_quality"]).abs() < 1e-9).all()
    )


def check_view(lab: Lab02, view: Any, served_config: Any, served: Any) -> None:
    """Ex5: a refreshed materialized view, served by a ROAPI the grader starts, read typed."""
    grade = grading("ex5")
    grade.expect(view is not None, f"{VIEW} is None", VIEW_DECLARE)
    grade.expect(
        isinstance(view, FunctionTable) and view.materialize,
        f"{VIEW} is a {getattr(view, 'kind_label', type(view).__name__)}, not a materialized view",
        VIEW_DECLARE,
    )
    grade.expect(view.name == VIEW, f"the view is named {view.name!r}, not {VIEW!r}", VIEW_DECLARE)
    location = view.location(lab.settings)
    grade.expect(
        location == lab.view_uri,
        f"the view is stored at {location}, not lab.view_uri",
        VIEW_DECLARE,
    )
    length = len(view.description.strip())
    grade.expect(
        length >= MIN_DESCRIPTION,
        f"the view's description (its docstring) has {length} characters, not a sentence",
        VIEW_DECLARE,
    )
    grade.expect(
        TABLE in view.upstream,
        f"the view's upstream is {list(view.upstream)}: its lineage does not name {TABLE}",
        VIEW_DECLARE,
    )
    stored = lab.read_table(
        "ex5",
        lab.view_uri,
        VIEW_DATA,
        what="Delta table at lab.view_uri",
        made_by="the view was never refreshed",
    )
    truth = view_truth(lab)
    grade.expect(
        _same_rows(stored, truth),
        f"the stored view has {stored.height} rows and columns {stored.columns}; it should "
        f"hold {truth.height} sessions with session_id, spikes, mean_quality",
        VIEW_DATA,
    )
    grade.expect(served_config is not None, "served_config is None", VIEW_SERVE)
    config = yaml.safe_load(Path(served_config).read_text())
    tables = {t["name"]: t for t in config["tables"]}
    grade.expect(
        VIEW in tables, f"the ROAPI config serves {sorted(tables)}, not {VIEW}", VIEW_SERVE
    )
    with serving(served_config, lab.settings) as sql:
        answer = sql(f"SELECT * FROM {VIEW} ORDER BY session_id")
    grade.expect(
        _same_rows(answer, truth),
        f"ROAPI serves {answer.height} rows of {VIEW} that differ from the stored view",
        VIEW_SERVE,
    )
    grade.expect(served is not None, "served is None", VIEW_TYPES)
    grade.expect(
        isinstance(served, pl.DataFrame) and _same_rows(served, truth),
        f"served is not the view's {truth.height} rows (session_id, spikes, mean_quality)",
        VIEW_TYPES,
    )
    drifted = [
        f"{c} is {served.schema[c]}, not {stored.schema[c]}"
        for c in ("session_id", "spikes", "mean_quality")
        if served.schema[c] != stored.schema[c]
    ]
    grade.expect(not drifted, f"served lost the view's types: {'; '.join(drifted)}", VIEW_TYPES)
    passed(
        f"{VIEW} is materialized ({stored.height} sessions), served by ROAPI, and read back "
        "with its types"
    )


# -- a ROAPI server for the grader ----------------------------------------------------------


@contextmanager
def serving(config_path: Path | str, settings: Settings) -> Iterator[Callable[[str], pl.DataFrame]]:
    """Serve ``config_path``'s tables with ROAPI on free ports; yield ``sql(query) -> frame``.

    The server is the library's (:func:`neuralake.lab.api.server.roapi`), on ports of its
    own, so it never collides with one the student left running. If ROAPI cannot start,
    the check fails with ROAPI's own error line.
    """
    tables = yaml.safe_load(Path(config_path).read_text())["tables"]
    with tempfile.TemporaryDirectory(prefix="lab02-roapi-") as folder, ExitStack() as stack:
        try:
            listeners = stack.enter_context(roapi(tables, settings, Path(folder), timeout=30))
        except StackError:
            log = (Path(folder) / "roapi.log").read_text(errors="replace").splitlines()
            said = [line for line in log if "error" in line.lower()]
            grading("ex5").expect(
                False,
                f"ROAPI did not start on served_config: {said[-1] if said else 'no error printed'}",
                VIEW_SERVE,
            )
        yield partial(_sql, f"http://{listeners.http}/api/sql")


def _sql(url: str, query: str) -> pl.DataFrame:
    """``query``'s answer as Arrow (types kept); a refused query fails exercise 5's check."""
    answer = httpx.post(url, content=query, headers={"Accept": ARROW}, timeout=30)
    said = " ".join(answer.text.split())[:200]  # one line
    grading("ex5").expect(
        answer.is_success, f"ROAPI answered {answer.status_code} to {query!r}: {said}", VIEW_SERVE
    )
    return pl.read_ipc_stream(answer.content)
