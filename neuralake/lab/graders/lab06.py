"""Lab 06, the cold path: a new gold feature in Spark, proven in Polars, made incremental
step by step.

The feature is ``channel_features``: per session, day and electrode channel, the clean
samples, the spikes and the RMS voltage (``sqrt(mean(voltage_uv**2))``), the number a
neuroscientist checks first to find a dead or noisy electrode.

``setup()`` writes a bronze table the way the streaming writer leaves it: three commits,
each carrying the writer's ``txn`` action (so the Spark write guard refuses it), an
upstream replay of rows it already holds, and a few rows whose ``quality`` is outside
the catalog's range. Then it writes what each later exercise starts from, so that no
exercise needs another's result: a silver table for the feature, Spark's feature table
for the comparison, and for the incremental steps a silver table, a stale feature table
and a batch of incoming messages (new ones, a replay and rows the checks reject), and
a bronze copy of their own for the stream. The graders never trust a number the student
reports: they compute the truth from bronze with Polars (:mod:`neuralake.spark.polars_elt`),
read what Spark wrote with delta-rs, and call the student's functions on tables they
built, as a scheduler would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import polars as pl
from deltalake import CommitProperties, Transaction, write_deltalake
from deltalake import DeltaTable as DeltaLog

import neuralake
from neuralake import delta
from neuralake.api.sample import bronze_rows
from neuralake.catalog.examples import neuro
from neuralake.lab.graders.base import Lab, TableUri
from neuralake.lab.graders.checks import Hint, passed
from neuralake.settings import Settings
from neuralake.spark import compare, guard, polars_elt
from neuralake.streaming.schemas import BRONZE, PARTITION_BY

SEED = 66
SESSIONS = 3  # recording sessions in bronze, 64 channels each
EXERCISES = ("ex1", "ex2", "ex3", "ex4", "ex5", "ex6", "ex7")
CHECKS = neuro.neural_signals.checks
FEATURE_KEY = ["session_id", "date", "channel"]
FEATURE_SCHEMA = pl.Schema(
    {
        "session_id": pl.Int32,
        "date": pl.Date,
        "channel": pl.Int32,
        "samples": pl.Int64,
        "spikes": pl.Int64,
        "rms_uv": pl.Float64,
    }
)
WRITER_APP = "neuralake-baseline/lab06/0"  # the txn a writer commit carries
NEW_SESSION = 2  # the session the incoming messages belong to
NEW_ROWS = 2_000  # new messages in each incoming batch
REPLAY_ROWS = 50  # messages of bronze delivered again in each incoming batch
DECIMALS = 6  # float columns are compared rounded: engines add floats in different orders


@dataclass
class Lab06(Lab):
    """Where the lab's tables are and what setup wrote into bronze."""

    number: ClassVar[str] = "06"
    exercises: ClassVar[tuple[str, ...]] = EXERCISES
    tables: ClassVar[tuple[str, ...]] = (
        "bronze",
        "silver",  # ex2 writes it
        "given_silver",  # ex3 reads it
        "channel_features",  # ex3 writes it
        "spark_features",  # ex4 compares with it
        "ex5_silver",
        "ex5_incoming",
        "ex6_silver",
        "ex6_features",
        "ex6_incoming",
        "stream_bronze",
        "stream_silver",
        "stream_features",
        "stream_checkpoint",
    )
    rows: int = 30_000  # clean bronze rows
    replayed: int = 0  # bronze rows delivered twice
    bad: int = 0  # bronze rows failing a catalog check

    def uri(self, name: str) -> str:
        return self.settings.table_uri(self.prefix + name)

    def path(self, name: str) -> str:
        """The table's address as Spark reads it (``s3a://``)."""
        return guard.spark_path(self.uri(name))

    bronze_uri = TableUri("bronze")
    silver_uri = TableUri("silver")
    features_uri = TableUri("channel_features")

    @property
    def checkpoint(self) -> str:
        """Where exercise 7's stream remembers the last bronze version (``s3a://``)."""
        return self.path("stream_checkpoint")

    def rebuild(self, exercise: str) -> None:
        BUILDERS[exercise](self)


def setup(
    s: Settings, prefix: str = "lab06_", rows: int = 30_000, *, with_spark: bool = True
) -> Lab06:
    """Drop the lab's tables, write bronze (clean rows, a replay, bad rows), then what
    every exercise starts from. Exercise 4's table is written with Spark (``session()``
    starts it, or returns the kernel's); ``with_spark=False`` leaves it out."""
    Lab06.forget_attempts()
    drop(s, prefix)
    lab = Lab06(s, prefix, rows=rows)
    lab.replayed, lab.bad = _write_bronze(lab, lab.bronze_uri)
    for exercise, build in BUILDERS.items():
        if with_spark or exercise != "ex4":
            build(lab)
    return lab


def drop(s: Settings, prefix: str) -> None:
    """Delete every table of the lab."""
    Lab06.drop_tables(s, prefix)


def _bronze(rows: int, first_offset: int) -> pl.DataFrame:
    """``rows`` bronze rows of sessions 1-3 (64 channels each), offsets from ``first_offset``."""
    session = (pl.col("session_id") % SESSIONS + 1).cast(pl.Int32)
    return (
        bronze_rows(rows, seed=SEED + first_offset)
        .with_columns(session_id=session, patient_id=session, device_id=session + 1000)
        .with_columns(kafka_offset=pl.int_range(pl.len(), dtype=pl.Int64) + first_offset)
        .select(list(BRONZE))
    )


def _write_bronze(lab: Lab06, uri: str) -> tuple[int, int]:
    """Three writer commits at ``uri``: clean rows, a replay of some, rows failing a check."""
    delta.drop_table(uri, lab.storage_options)
    clean = _bronze(lab.rows, first_offset=0)
    replay = clean.head(max(lab.rows // 20, 1))
    bad = _bronze(8, first_offset=clean.height).with_columns(quality=pl.lit(1.5, pl.Float32))
    for version, frame in enumerate((clean, replay, bad)):
        _append_as_writer(lab, uri, frame, version)
    return replay.height, bad.height


def _append_as_writer(lab: Lab06, uri: str, frame: pl.DataFrame, version: int) -> None:
    """Append with the writer's ``txn`` action, as every streaming-writer commit has."""
    write_deltalake(
        uri,
        frame.to_arrow(),
        mode="append",
        partition_by=PARTITION_BY,
        storage_options=lab.settings.storage_options,
        commit_properties=CommitProperties(app_transactions=[Transaction(WRITER_APP, version)]),
    )


def _scan(lab: Lab06, uri: str | None = None) -> pl.LazyFrame:
    return pl.scan_delta(uri or lab.bronze_uri, storage_options=lab.settings.storage_options)


def truth_silver(lab: Lab06, bronze: pl.LazyFrame | None = None) -> pl.DataFrame:
    """Silver as it must be: bronze deduplicated, typed and checked (Polars)."""
    return polars_elt.clean(_scan(lab) if bronze is None else bronze, CHECKS).collect()


def channel_features(silver: pl.LazyFrame) -> pl.LazyFrame:
    """The feature, in Polars: per session, day and channel, samples, spikes, RMS voltage."""
    return silver.group_by(FEATURE_KEY).agg(
        samples=pl.len().cast(pl.Int64),
        spikes=pl.col("spike").cast(pl.Int64).sum(),
        rms_uv=(pl.col("voltage_uv") ** 2).mean().sqrt(),
    )


def truth_features(lab: Lab06, bronze: pl.LazyFrame | None = None) -> pl.DataFrame:
    return channel_features(truth_silver(lab, bronze).lazy()).collect()


def _write(lab: Lab06, name: str, frame: pl.DataFrame, partition_by: list[str] | None) -> None:
    uri = Lab06.fresh_table(lab.settings, lab.prefix, name)
    write_deltalake(
        uri, frame.to_arrow(), partition_by=partition_by, storage_options=lab.storage_options
    )


def incoming(lab: Lab06, bronze: pl.DataFrame) -> pl.DataFrame:
    """A micro-batch as the stream would hand it over: NEW_ROWS new messages of one
    session, REPLAY_ROWS messages bronze already holds, and 5 rows no check accepts."""
    fresh = (
        bronze.filter(pl.col("session_id") == NEW_SESSION)
        .unique(polars_elt.KEY)
        .sort(polars_elt.KEY)
        .head(NEW_ROWS)
        .with_columns(
            kafka_offset=pl.int_range(pl.len(), dtype=pl.Int64) + bronze["kafka_offset"].max() + 1
        )
    )
    replay = bronze.unique(polars_elt.KEY).sort(polars_elt.KEY).head(REPLAY_ROWS)
    bad = fresh.head(5).with_columns(
        kafka_offset=pl.col("kafka_offset") + NEW_ROWS, quality=pl.lit(1.5, pl.Float32)
    )
    return pl.concat([fresh, replay, bad])


# -- what each exercise starts from ---------------------------------------------------------


def _build_nothing(lab: Lab06) -> None:
    """Exercise 1 only reads bronze."""


def _build_ex2(lab: Lab06) -> None:
    delta.drop_table(lab.silver_uri, lab.storage_options)


def _build_ex3(lab: Lab06) -> None:
    _write(lab, "given_silver", truth_silver(lab), ["date"])
    delta.drop_table(lab.features_uri, lab.storage_options)


def _build_ex4(lab: Lab06) -> None:
    """Spark's feature table, written by Spark from bronze (the comparison's other side)."""
    from pyspark.sql import functions as F

    from neuralake.spark import elt

    sp = neuralake.spark.session(lab.settings)
    silver = elt.clean(sp.read.format("delta").load(lab.path("bronze")), elt.row_checks(CHECKS))
    features = silver.groupBy(*FEATURE_KEY).agg(
        F.count(F.lit(1)).alias("samples"),
        F.sum(F.col("spike").cast("long")).alias("spikes"),
        F.sqrt(F.avg(F.col("voltage_uv") * F.col("voltage_uv"))).alias("rms_uv"),
    )
    uri = Lab06.fresh_table(lab.settings, lab.prefix, "spark_features")
    guard.write_delta(features, uri, lab.settings, mode="overwrite", partition_by=["date"])


def _build_ex5(lab: Lab06) -> None:
    bronze = _scan(lab).collect()
    _write(lab, "ex5_silver", truth_silver(lab), ["date"])
    _write(lab, "ex5_incoming", incoming(lab, bronze), PARTITION_BY)


def _build_ex6(lab: Lab06) -> None:
    """Silver already holds the batch; the feature table is as it was before it."""
    bronze = _scan(lab).collect()
    batch = incoming(lab, bronze)
    _write(lab, "ex6_silver", truth_silver(lab, pl.concat([bronze, batch]).lazy()), ["date"])
    _write(lab, "ex6_features", truth_features(lab), ["date"])
    _write(lab, "ex6_incoming", batch, PARTITION_BY)


def _build_ex7(lab: Lab06) -> None:
    """A bronze of the stream's own (the check appends to it), silver and features built
    from it, and no checkpoint: the first run reads every bronze version."""
    _write_bronze(lab, lab.uri("stream_bronze"))
    bronze = _scan(lab, lab.uri("stream_bronze"))
    _write(lab, "stream_silver", truth_silver(lab, bronze), ["date"])
    _write(lab, "stream_features", truth_features(lab, bronze), ["date"])
    delta.drop_table(lab.uri("stream_checkpoint"), lab.storage_options)


BUILDERS: dict[str, Callable[[Lab06], None]] = {
    "ex1": _build_nothing,
    "ex2": _build_ex2,
    "ex3": _build_ex3,
    "ex4": _build_ex4,
    "ex5": _build_ex5,
    "ex6": _build_ex6,
    "ex7": _build_ex7,
}


# -- exercise 1: read the writer's table --------------------------------------------------

DUPLICATES = Hint(
    concept="A Kafka message is identified by where Kafka put it, not by its values: a "
    "replay delivers the same message twice, and two different messages can carry equal "
    "values.",
    api="spark.read.format('delta').load(path), then count() and dropDuplicates([...]).count() "
    "(lesson 06, sections 2 and 3).",
    call="bronze = sp.read.format('delta').load(bronze_path); duplicates = bronze.count() "
    "- bronze.dropDuplicates(['kafka_partition', 'kafka_offset']).count()",
)


def check_duplicates(lab: Lab06, duplicates: Any) -> None:
    """Exercise 1: the number of bronze rows that repeat a Kafka message already there."""
    grade = Lab06.grading("ex1")
    grade.expect(duplicates is not None, "duplicates is None", DUPLICATES)
    bronze = _scan(lab)
    rows = bronze.select(pl.len()).collect().item()
    distinct = bronze.select(polars_elt.KEY).unique().select(pl.len()).collect().item()
    grade.expect(
        isinstance(duplicates, int) and duplicates == rows - distinct,
        f"duplicates is {duplicates!r}; bronze holds {rows:,} rows",
        DUPLICATES,
    )
    passed(f"{duplicates:,} of {rows:,} bronze rows repeat a Kafka message")


# -- exercise 2: silver, Spark's own table -----------------------------------------------

SILVER = Hint(
    concept="Spark may read the writer's bronze, never write it. Silver is a table of "
    "Spark's own: think about what one row should stand for, and which rules decide "
    "that a row is fit to keep.",
    api="elt.clean(bronze, elt.row_checks(checks)) and guard.write_delta(df, uri, s, "
    "partition_by=[...]) (lesson 06, sections 3, 5 and 6).",
    call="guard.write_delta(elt.clean(bronze, elt.row_checks(neuro.neural_signals.checks)), "
    "lab.silver_uri, s, mode='overwrite', partition_by=['date'])",
)


def check_silver(lab: Lab06) -> None:
    """Exercise 2: silver written by Spark, bronze untouched."""
    grade = Lab06.grading("ex2")
    log = DeltaLog(lab.bronze_uri, storage_options=lab.settings.storage_options)
    spark_commits = [c["version"] for c in log.history() if "Spark" in c.get("engineInfo", "")]
    grade.expect(not spark_commits, f"bronze has Spark commits (versions {spark_commits})", SILVER)
    silver = lab.read_table(
        "ex2", lab.silver_uri, SILVER, what="silver table", made_by="exercise 2 writes it"
    )
    truth = truth_silver(lab)
    dupes = silver.height - silver.select(polars_elt.KEY).unique().height
    grade.expect(dupes == 0, f"silver repeats {dupes:,} Kafka messages", SILVER)
    bad = silver.filter((pl.col("quality") > 1) | (pl.col("quality") < 0)).height
    grade.expect(bad == 0, f"silver keeps {bad} rows with quality outside [0, 1]", SILVER)
    grade.expect(
        compare.fingerprint(silver.select(truth.columns)) == compare.fingerprint(truth),
        f"silver holds {silver.height:,} rows, and differs from bronze cleaned "
        f"({truth.height:,} rows) in its rows or column types",
        SILVER,
    )
    partitions = DeltaLog(lab.silver_uri, storage_options=lab.settings.storage_options)
    grade.expect(
        partitions.metadata().partition_columns == ["date"],
        f"silver is partitioned by {partitions.metadata().partition_columns}",
        SILVER,
    )
    passed(f"silver: {silver.height:,} rows, one per Kafka message, checked, by date")


# -- exercise 3: the feature in Spark --------------------------------------------------

FEATURE = Hint(
    concept="One row per thing the question is about: decide which columns identify it. "
    "RMS is the square root of the mean of the squared voltage, and counts must stay "
    "whole numbers.",
    api="silver.groupBy(...).agg(F.count(F.lit(1)), F.sum(F.col('spike').cast('long')), "
    "F.sqrt(F.avg(...))) (lesson 06, section 3: elt.features), and guard.write_delta "
    "(lesson 06, section 2).",
    call="channel_features_spark = lambda silver: silver.groupBy('session_id', 'date', "
    "'channel').agg(F.count(F.lit(1)).alias('samples'), F.sum(F.col('spike').cast('long'))"
    ".alias('spikes'), F.sqrt(F.avg(F.col('voltage_uv') * F.col('voltage_uv'))).alias("
    "'rms_uv')); guard.write_delta(channel_features_spark(sp.read.format('delta').load("
    "lab.path('given_silver'))), lab.features_uri, s, mode='overwrite', partition_by=['date'])",
)


def _check_features_table(
    lab: Lab06, uri: str, truth: pl.DataFrame, exercise: str, hint: Hint, what: str
) -> pl.DataFrame:
    grade = Lab06.grading(exercise)
    made_by = f"exercise {exercise.removeprefix('ex')} writes it"
    table = what if what.endswith("table") else f"{what} table"
    got = lab.read_table(exercise, uri, hint, what=table, made_by=made_by)
    missing = [c for c in FEATURE_SCHEMA if c not in got.columns]
    grade.expect(not missing, f"{what} has no column {', '.join(missing)}", hint)
    types = {c: got.schema[c] for c in FEATURE_SCHEMA}
    wrong = [f"{c} is {t}" for c, t in types.items() if t != FEATURE_SCHEMA[c]]
    grade.expect(not wrong, f"{what}: {', '.join(wrong)}", hint)
    got = got.select(list(FEATURE_SCHEMA))
    truth = truth.select(list(FEATURE_SCHEMA))
    extra = got.height - got.select(FEATURE_KEY).unique().height
    grade.expect(extra == 0, f"{what} repeats {extra} (session, day, channel) keys", hint)
    grade.expect(
        compare.fingerprint(got, decimals=DECIMALS)
        == compare.fingerprint(truth, decimals=DECIMALS),
        f"{what} has {got.height} rows and differs from silver's numbers "
        f"({truth.height} rows expected)",
        hint,
    )
    return got


def check_features(lab: Lab06, features_fn: Any) -> None:
    """Exercise 3: the feature table Spark wrote from the given silver, and the function."""
    grade = Lab06.grading("ex3")
    grade.expect(callable(features_fn), "channel_features_spark is None", FEATURE)
    truth = channel_features(_scan(lab, lab.uri("given_silver"))).collect()
    got = _check_features_table(lab, lab.features_uri, truth, "ex3", FEATURE, "channel_features")
    passed(f"channel_features: {got.height} (session, day, channel) rows, equal to the truth")


# -- exercise 4: Spark and Polars agree ----------------------------------------------

AGREE = Hint(
    concept="The same transform in another engine must give the same rows: the same rows "
    "must go in before anything is aggregated, and floats two engines computed differ in "
    "their last digits.",
    api="polars_elt.clean(pl.scan_delta(...), checks), group_by(...).agg(...), "
    "compare.fingerprint(frame, decimals=6) (lesson 06, section 5).",
    call="polars_elt.clean(bronze, neuro.neural_signals.checks).group_by('session_id', 'date', "
    "'channel').agg(samples=pl.len().cast(pl.Int64), spikes=pl.col('spike').cast(pl.Int64)"
    ".sum(), rms_uv=(pl.col('voltage_uv') ** 2).mean().sqrt()).collect()",
)


def check_agree(
    lab: Lab06, polars_features: Callable[[pl.LazyFrame], pl.DataFrame] | None, agree: Any
) -> None:
    """Exercise 4: the student's Polars feature equals Spark's table, and they said so."""
    grade = Lab06.grading("ex4")
    if not callable(polars_features):
        grade.fail("polars_channel_features is None", AGREE)
    mine = polars_features(_scan(lab))
    if isinstance(mine, pl.LazyFrame):
        mine = mine.collect()
    missing = [c for c in FEATURE_SCHEMA if c not in mine.columns]
    grade.expect(not missing, f"your Polars frame has no column {', '.join(missing)}", AGREE)
    mine = mine.select(list(FEATURE_SCHEMA)).cast(FEATURE_SCHEMA)
    spark = lab.read_table(
        "ex4",
        lab.uri("spark_features"),
        AGREE,
        what="spark_features table",
        made_by="lab.reset('ex4') writes it again",
    )
    spark = spark.select(list(FEATURE_SCHEMA))
    same = compare.fingerprint(mine, decimals=DECIMALS) == compare.fingerprint(
        spark, decimals=DECIMALS
    )
    grade.expect(
        same,
        f"your Polars feature has {mine.height} rows and differs from Spark's "
        f"channel_features ({spark.height} rows)",
        AGREE,
    )
    grade.expect(agree is True, f"agree is {agree!r}, but the fingerprints are equal", AGREE)
    passed(f"Spark and Polars agree on all {mine.height} channel_features rows")


# -- exercise 5: one batch into silver, exactly once ------------------------------------

MERGE_SILVER = Hint(
    concept="A batch can hold messages silver already has (a replay) and rows the checks "
    "reject; adding it again must change nothing. Think about what identifies a message "
    "and what may happen to a row that silver already holds.",
    api="SparkDelta.forPath(spark, path).alias(...).merge(source.alias(...), condition)"
    ".whenNotMatchedInsertAll().execute(), after elt.clean (lesson 06, section 3).",
    call="SparkDelta.forPath(batch.sparkSession, silver_path).alias('s').merge(elt.clean("
    "batch, elt.row_checks(neuro.neural_signals.checks)).alias('b'), 's.kafka_partition = "
    "b.kafka_partition AND s.kafka_offset = b.kafka_offset AND s.date = b.date')"
    ".whenNotMatchedInsertAll().execute()",
)


def _commits_since(lab: Lab06, uri: str, version: int) -> list[dict]:
    log = DeltaLog(uri, storage_options=lab.settings.storage_options)
    return [c for c in log.history() if c["version"] > version]


def _version(lab: Lab06, uri: str) -> int:
    return DeltaLog(uri, storage_options=lab.settings.storage_options).version()


def _spark_read(lab: Lab06, name: str) -> Any:
    return neuralake.spark.session(lab.settings).read.format("delta").load(lab.path(name))


def check_merge_silver(lab: Lab06, merge_into_silver: Any) -> None:
    """Exercise 5: the grader builds silver and a batch, hands the student's function the
    batch twice; silver gains each new, clean message once, by MERGE."""
    grade = Lab06.grading("ex5")
    grade.expect(callable(merge_into_silver), "merge_into_silver is None", MERGE_SILVER)
    _build_ex5(lab)  # from the start, whatever earlier tries left in its tables
    uri = lab.uri("ex5_silver")
    batch = _scan(lab, lab.uri("ex5_incoming"))
    truth = truth_silver(lab, pl.concat([_scan(lab), batch]))
    before = _version(lab, uri)
    merge_into_silver(_spark_read(lab, "ex5_incoming"), lab.path("ex5_silver"))
    operations = sorted({c["operation"] for c in _commits_since(lab, uri, before)})
    grade.expect(
        operations == ["MERGE"],
        f"the batch reached silver through commits {operations or 'none'}, not a MERGE",
        MERGE_SILVER,
    )
    silver = pl.read_delta(uri, storage_options=lab.storage_options).select(truth.columns)
    grade.expect(
        compare.fingerprint(silver) == compare.fingerprint(truth),
        f"after the batch silver holds {silver.height:,} rows; its messages that pass the "
        f"checks, with silver's, are {truth.height:,}",
        MERGE_SILVER,
    )
    merge_into_silver(_spark_read(lab, "ex5_incoming"), lab.path("ex5_silver"))
    again = pl.read_delta(uri, storage_options=lab.storage_options)
    grade.expect(
        again.height == truth.height,
        f"the same batch merged a second time left silver with {again.height:,} rows, "
        f"not {truth.height:,}",
        MERGE_SILVER,
    )
    before_rows = _rows_at(lab, uri, before)
    added = truth.height - before_rows
    passed(
        f"silver {before_rows:,} -> {truth.height:,} rows (+{added:,} new clean messages), "
        "and the same batch again added nothing"
    )


def _rows_at(lab: Lab06, uri: str, version: int) -> int:
    return pl.read_delta(uri, version=version, storage_options=lab.storage_options).height


# -- exercise 6: the feature rows the batch touched ----------------------------------------

REFRESH = Hint(
    concept="A feature row depends on every sample of its (session, day, channel), old and "
    "new. Which rows can one batch change, and where are all of their samples?",
    api="a left_semi join of silver with the batch's keys, then SparkDelta.forPath(...)"
    ".merge(...).whenMatchedUpdateAll().whenNotMatchedInsertAll().execute() (lesson 06, "
    "section 3).",
    call="keys = elt.clean(batch, elt.row_checks(neuro.neural_signals.checks)).select("
    "'session_id', 'date', 'channel').distinct(); silver = spark.read.format('delta')"
    ".load(silver_path); SparkDelta.forPath(spark, features_path).alias('f').merge("
    "channel_features_spark(silver.join(keys, ['session_id', 'date', 'channel'], "
    "'left_semi')).alias('n'), 'f.session_id = n.session_id AND f.date = n.date AND "
    "f.channel = n.channel').whenMatchedUpdateAll().whenNotMatchedInsertAll().execute()",
)


def check_refresh(lab: Lab06, refresh_features: Any) -> None:
    """Exercise 6: silver already holds the batch; the student's function must bring the
    stale feature table up to date with one MERGE of only the touched rows."""
    grade = Lab06.grading("ex6")
    grade.expect(callable(refresh_features), "refresh_features is None", REFRESH)
    _build_ex6(lab)  # the stale feature table again, whatever earlier tries did
    uri = lab.uri("ex6_features")
    before = _version(lab, uri)
    refresh_features(
        _spark_read(lab, "ex6_incoming"), lab.path("ex6_silver"), lab.path("ex6_features")
    )
    commits = _commits_since(lab, uri, before)
    operations = sorted({c["operation"] for c in commits})
    grade.expect(
        operations == ["MERGE"],
        f"the feature table got commits {operations or 'none'}, not MERGE only",
        REFRESH,
    )
    truth = channel_features(_scan(lab, lab.uri("ex6_silver"))).collect()
    got = _check_features_table(lab, uri, truth, "ex6", REFRESH, "the feature table")
    touched = _scan(lab, lab.uri("ex6_incoming")).select(FEATURE_KEY).unique().collect().height
    source = sum(int(c["operationMetrics"].get("numSourceRows", 0)) for c in commits)
    grade.expect(
        source <= touched < got.height,
        f"the MERGE read {source} feature rows; the batch touched {touched} of {got.height}",
        REFRESH,
    )
    passed(f"{source} of {got.height} feature rows recomputed and merged; the others untouched")


# -- exercise 7: the stream that runs both steps ------------------------------------------

STREAM = Hint(
    concept="A scheduler calls the job again and again, and the process may die between "
    "calls. Where does the job keep what it has already read, so that the knowledge "
    "outlives the process?",
    api="sp.readStream.format('delta').load(path).writeStream.foreachBatch(fn)"
    ".option('checkpointLocation', ...).trigger(availableNow=True).start() "
    "(lesson 06, section 3).",
    call="sp.readStream.format('delta').load(lab.path('stream_bronze')).writeStream"
    ".foreachBatch(lambda batch, _: (merge_into_silver(batch, lab.path('stream_silver')), "
    "refresh_features(batch, lab.path('stream_silver'), lab.path('stream_features'))))"
    ".option('checkpointLocation', lab.checkpoint).trigger(availableNow=True).start()"
    ".awaitTermination()",
)


def add_new_bronze(lab: Lab06, rows: int = NEW_ROWS) -> pl.DataFrame:
    """New messages for one session (new offsets) in the stream's bronze, as the writer
    commits them."""
    uri = lab.uri("stream_bronze")
    bronze = pl.read_delta(uri, storage_options=lab.storage_options)
    fresh = incoming(lab, bronze).head(rows)  # the new messages only
    _append_as_writer(lab, uri, fresh, _version(lab, uri) + 1)  # any growing number
    return fresh


def check_stream(lab: Lab06, run_incremental: Any) -> None:
    """Exercise 7: call the student's job to catch up, again around new bronze data, and
    once more with nothing new."""
    grade = Lab06.grading("ex7")
    grade.expect(callable(run_incremental), "run_incremental is None", STREAM)
    _build_ex7(lab)  # the stream's tables as setup left them, and no checkpoint
    silver_uri, features_uri = lab.uri("stream_silver"), lab.uri("stream_features")
    run_incremental()  # catch up on every bronze version (the checkpoint starts empty)
    before = _version(lab, features_uri)
    fresh = add_new_bronze(lab)
    run_incremental()
    bronze = _scan(lab, lab.uri("stream_bronze"))
    truth = truth_features(lab, bronze)
    got = _check_features_table(lab, features_uri, truth, "ex7", STREAM, "stream_features")
    commits = _commits_since(lab, features_uri, before)
    operations = sorted({c["operation"] for c in commits})
    grade.expect(
        operations == ["MERGE"],
        f"after new bronze data, stream_features got commits {operations or 'none'}, "
        "not MERGE only",
        STREAM,
    )
    touched = fresh.select(FEATURE_KEY).unique().height
    source = sum(int(c["operationMetrics"].get("numSourceRows", 0)) for c in commits)
    grade.expect(
        source <= touched < got.height,
        f"after new bronze data the MERGE read {source} feature rows; the new data "
        f"touched {touched} of {got.height}: the job read more than the new versions",
        STREAM,
    )
    silver = pl.read_delta(silver_uri, storage_options=lab.storage_options)
    want = truth_silver(lab, bronze).height
    grade.expect(
        silver.height == want,
        f"stream_silver holds {silver.height:,} rows after the new data, not {want:,}",
        STREAM,
    )
    idle = {u: _version(lab, u) for u in (silver_uri, features_uri)}
    run_incremental()
    after = {u: _version(lab, u) for u in (silver_uri, features_uri)}
    grade.expect(
        after == idle,
        "with no new bronze data, run_incremental still committed "
        f"{sum(after.values()) - sum(idle.values())} versions",
        STREAM,
    )
    passed(
        f"{fresh.height:,} new bronze rows -> MERGE of {source} of {got.height} feature rows; "
        "nothing committed when nothing was new"
    )
