"""Lab 06, the cold path: a new gold feature in Spark, made incremental, proven in Polars.

The feature is ``channel_features``: per session, day and electrode channel, the clean
samples, the spikes and the RMS voltage (``sqrt(mean(voltage_uv**2))``), the number a
neuroscientist checks first to find a dead or noisy electrode.

``setup()`` writes a bronze table the way the streaming writer leaves it: three commits,
each carrying the writer's ``txn`` action (so the Spark write guard refuses it), an
upstream replay of rows it already holds, and a few rows whose ``quality`` is outside
the catalog's range. The graders never trust a number the student reports: they compute
the truth from bronze with Polars (:mod:`neuralake.spark.polars_elt`) and read what
Spark wrote with delta-rs. The incremental exercise is graded by appending new bronze
data and calling the student's function, as a scheduler would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import polars as pl
from deltalake import CommitProperties, Transaction, write_deltalake
from deltalake import DeltaTable as DeltaLog

from neuralake import delta
from neuralake.api.sample import bronze_rows
from neuralake.catalog.examples import neuro
from neuralake.labs.base import Lab
from neuralake.labs.checks import Hint, expect, passed
from neuralake.settings import Settings
from neuralake.spark import compare, guard, polars_elt
from neuralake.streaming.schemas import BRONZE, PARTITION_BY

SEED = 66
SESSIONS = 3  # recording sessions in bronze, 64 channels each
EXERCISES = ("ex1", "ex2", "ex3", "ex4", "ex5")
CHECKS = neuro.neural_signals.checks
FEATURE_KEY = ["session_id", "date", "channel"]
FEATURE_SCHEMA = {
    "session_id": pl.Int32,
    "date": pl.Date,
    "channel": pl.Int32,
    "samples": pl.Int64,
    "spikes": pl.Int64,
    "rms_uv": pl.Float64,
}
WRITER_APP = "neuralake-baseline/lab06/0"  # the txn a writer commit carries
NEW_SESSION = 2  # the session the incremental check's new data belongs to
DECIMALS = 6  # float columns are compared rounded: engines add floats in different orders


@dataclass
class Lab06(Lab):
    """Where the lab's tables are and what setup wrote into bronze."""

    number: ClassVar[str] = "06"
    exercises: ClassVar[tuple[str, ...]] = EXERCISES
    tables: ClassVar[tuple[str, ...]] = (
        "bronze",
        "silver",
        "channel_features",
        "features_checkpoint",
    )
    replayed: int = 0  # bronze rows delivered twice
    bad: int = 0  # bronze rows failing a catalog check

    def uri(self, name: str) -> str:
        return self.settings.table_uri(self.prefix + name)

    @property
    def bronze_uri(self) -> str:
        return self.uri("bronze")

    @property
    def silver_uri(self) -> str:
        return self.uri("silver")

    @property
    def features_uri(self) -> str:
        return self.uri("channel_features")

    @property
    def checkpoint(self) -> str:
        """Where exercise 4's stream remembers the last bronze version (``s3a://``)."""
        return guard.spark_path(self.uri("features_checkpoint"))

    def rebuild(self, exercise: str) -> None:
        """ex2: no silver; ex3: no feature table; ex3 and ex4: the stream starts over."""
        if exercise == "ex2":
            delta.drop_table(self.silver_uri, self.storage_options)
        if exercise == "ex3":
            delta.drop_table(self.features_uri, self.storage_options)
        if exercise in ("ex3", "ex4"):  # its first run reads every bronze version again
            delta.drop_table(self.uri("features_checkpoint"), self.storage_options)


def setup(s: Settings, prefix: str = "lab06_", rows: int = 30_000) -> Lab06:
    """Drop the lab's tables and write bronze: clean rows, then a replay, then bad rows."""
    Lab06.forget_attempts()
    drop(s, prefix)
    clean = _bronze(rows, first_offset=0)
    replay = clean.head(max(rows // 20, 1))
    bad = _bronze(8, first_offset=clean.height).with_columns(quality=pl.lit(1.5, pl.Float32))
    lab = Lab06(s, prefix, replayed=replay.height, bad=bad.height)
    for version, frame in enumerate((clean, replay, bad)):
        _append_as_writer(lab, frame, version)
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


def _append_as_writer(lab: Lab06, frame: pl.DataFrame, version: int) -> None:
    """Append with the writer's ``txn`` action, as every streaming-writer commit has."""
    write_deltalake(
        lab.bronze_uri,
        frame.to_arrow(),
        mode="append",
        partition_by=PARTITION_BY,
        storage_options=lab.settings.storage_options,
        commit_properties=CommitProperties(app_transactions=[Transaction(WRITER_APP, version)]),
    )


def _bronze_scan(lab: Lab06) -> pl.LazyFrame:
    return pl.scan_delta(lab.bronze_uri, storage_options=lab.settings.storage_options)


def truth_silver(lab: Lab06) -> pl.DataFrame:
    """Silver as it must be: bronze deduplicated, typed and checked (Polars)."""
    return polars_elt.clean(_bronze_scan(lab), CHECKS).collect()


def channel_features(silver: pl.LazyFrame) -> pl.LazyFrame:
    """The feature, in Polars: per session, day and channel, samples, spikes, RMS voltage."""
    return silver.group_by(FEATURE_KEY).agg(
        samples=pl.len().cast(pl.Int64),
        spikes=pl.col("spike").cast(pl.Int64).sum(),
        rms_uv=(pl.col("voltage_uv") ** 2).mean().sqrt(),
    )


def truth_features(lab: Lab06) -> pl.DataFrame:
    return channel_features(truth_silver(lab).lazy()).collect()


def _read(lab: Lab06, uri: str) -> pl.DataFrame | None:
    if not DeltaLog.is_deltatable(uri, lab.settings.storage_options):
        return None
    return pl.read_delta(uri, storage_options=lab.settings.storage_options)


# -- exercise 1: read the writer's table --------------------------------------------------

DUPLICATES = Hint(
    concept="A Kafka message is identified by its partition and offset, not by its values: "
    "a replay delivers the same (kafka_partition, kafka_offset) twice.",
    api="spark.read.format('delta').load(path), then count() and dropDuplicates([...]).count() "
    "(lesson 06, sections 2 and 3).",
    call="bronze = sp.read.format('delta').load(guard.spark_path(lab.bronze_uri)); duplicates "
    "= bronze.count() - bronze.dropDuplicates(['kafka_partition', 'kafka_offset']).count()",
)


def check_duplicates(lab: Lab06, duplicates: Any) -> None:
    """Exercise 1: the number of bronze rows that repeat a Kafka message already there."""
    key = "lab06.ex1"
    expect(duplicates is not None, "duplicates is None", DUPLICATES, key=key)
    bronze = _bronze_scan(lab)
    rows = bronze.select(pl.len()).collect().item()
    distinct = bronze.select(polars_elt.KEY).unique().select(pl.len()).collect().item()
    expect(
        isinstance(duplicates, int) and duplicates == rows - distinct,
        f"duplicates is {duplicates!r}; bronze holds {rows:,} rows",
        DUPLICATES,
        key=key,
    )
    passed(f"{duplicates:,} of {rows:,} bronze rows repeat a Kafka message")


# -- exercise 2: silver, Spark's own table -----------------------------------------------

SILVER = Hint(
    concept="Spark may read the writer's bronze, never write it; silver is Spark's own table: "
    "one row per Kafka message, typed, without the rows the catalog's checks reject.",
    api="elt.clean(bronze, elt.row_checks(checks)) and guard.write_delta(df, uri, s, "
    "partition_by=[...]) (lesson 06, sections 3, 5 and 6).",
    call="guard.write_delta(elt.clean(bronze, elt.row_checks(neuro.neural_signals.checks)), "
    "lab.silver_uri, s, mode='overwrite', partition_by=['date'])",
)


def check_silver(lab: Lab06) -> None:
    """Exercise 2: silver written by Spark, bronze untouched."""
    key = "lab06.ex2"
    log = DeltaLog(lab.bronze_uri, storage_options=lab.settings.storage_options)
    spark_commits = [c["version"] for c in log.history() if "Spark" in c.get("engineInfo", "")]
    expect(
        not spark_commits, f"bronze has Spark commits (versions {spark_commits})", SILVER, key=key
    )
    silver = _read(lab, lab.silver_uri)
    expect(silver is not None, "there is no silver table", SILVER, key=key)
    truth = truth_silver(lab)
    dupes = silver.height - silver.select(polars_elt.KEY).unique().height
    expect(dupes == 0, f"silver repeats {dupes:,} Kafka messages", SILVER, key=key)
    bad = silver.filter((pl.col("quality") > 1) | (pl.col("quality") < 0)).height
    expect(bad == 0, f"silver keeps {bad} rows with quality outside [0, 1]", SILVER, key=key)
    expect(
        compare.fingerprint(silver.select(truth.columns)) == compare.fingerprint(truth),
        f"silver holds {silver.height:,} rows, and differs from bronze cleaned "
        f"({truth.height:,} rows) in its rows or column types",
        SILVER,
        key=key,
    )
    partitions = DeltaLog(lab.silver_uri, storage_options=lab.settings.storage_options)
    expect(
        partitions.metadata().partition_columns == ["date"],
        f"silver is partitioned by {partitions.metadata().partition_columns}",
        SILVER,
        key=key,
    )
    passed(f"silver: {silver.height:,} rows, one per Kafka message, checked, by date")


# -- exercise 3: the feature in Spark --------------------------------------------------

FEATURE = Hint(
    concept="One row per session, day and channel: a group-by on three columns; RMS is the "
    "square root of the mean of the squared voltage.",
    api="silver.groupBy(...).agg(F.count(F.lit(1)), F.sum(F.col('spike').cast('long')), "
    "F.sqrt(F.avg(F.col('voltage_uv') ** 2))) (lesson 06, section 3: elt.features).",
    call="silver.groupBy('session_id', 'date', 'channel').agg(F.count(F.lit(1)).alias('samples'),"
    " F.sum(F.col('spike').cast('long')).alias('spikes'), "
    "F.sqrt(F.avg(F.col('voltage_uv') * F.col('voltage_uv'))).alias('rms_uv'))",
)


def _check_features_table(lab: Lab06, key: str, hint: Hint) -> pl.DataFrame:
    got = _read(lab, lab.features_uri)
    expect(got is not None, "there is no channel_features table", hint, key=key)
    missing = [c for c in FEATURE_SCHEMA if c not in got.columns]
    expect(not missing, f"channel_features has no column {', '.join(missing)}", hint, key=key)
    types = {c: got.schema[c] for c in FEATURE_SCHEMA}
    wrong = [f"{c} is {t}" for c, t in types.items() if t != FEATURE_SCHEMA[c]]
    expect(not wrong, f"channel_features: {', '.join(wrong)}", hint, key=key)
    got = got.select(list(FEATURE_SCHEMA))
    truth = truth_features(lab).select(list(FEATURE_SCHEMA))
    extra = got.height - got.select(FEATURE_KEY).unique().height
    expect(
        extra == 0, f"channel_features repeats {extra} (session, day, channel) keys", hint, key=key
    )
    expect(
        compare.fingerprint(got, decimals=DECIMALS)
        == compare.fingerprint(truth, decimals=DECIMALS),
        f"channel_features has {got.height} rows and differs from silver's numbers "
        f"({truth.height} rows expected)",
        hint,
        key=key,
    )
    return got


def check_features(lab: Lab06, features_fn: Any) -> None:
    """Exercise 3: the feature table Spark wrote, and the Spark function that computes it."""
    key = "lab06.ex3"
    expect(callable(features_fn), "channel_features_spark is None", FEATURE, key=key)
    got = _check_features_table(lab, key, FEATURE)
    passed(f"channel_features: {got.height} (session, day, channel) rows, equal to the truth")


# -- exercise 4: incremental ----------------------------------------------------------

INCREMENTAL = Hint(
    concept="Read only the bronze versions not yet processed, then touch only the "
    "(session, day, channel) rows that new data changed: never rewrite the whole table.",
    api="sp.readStream...writeStream.foreachBatch(fn).option('checkpointLocation', ...)"
    ".trigger(availableNow=True) and DeltaTable.forPath(sp, path).merge(...) (lesson 06, "
    "section 3).",
    call="in foreachBatch: MERGE the cleaned batch into silver (whenNotMatchedInsertAll), then "
    "recompute channel_features_spark for the batch's keys from silver (left_semi join) and "
    "MERGE on session_id, date, channel (whenMatchedUpdateAll, whenNotMatchedInsertAll)",
)


def _commits_since(uri: str, lab: Lab06, version: int) -> list[dict]:
    log = DeltaLog(uri, storage_options=lab.settings.storage_options)
    return [c for c in log.history() if c["version"] > version]


def _version(lab: Lab06, uri: str) -> int:
    return DeltaLog(uri, storage_options=lab.settings.storage_options).version()


def add_new_bronze(lab: Lab06, rows: int = 2_000) -> pl.DataFrame:
    """New messages for one session (new offsets), committed as the writer would."""
    bronze = pl.read_delta(lab.bronze_uri, storage_options=lab.settings.storage_options)
    fresh = (
        bronze.filter(pl.col("session_id") == NEW_SESSION)
        .unique(polars_elt.KEY)
        .sort(polars_elt.KEY)
        .head(rows)
        .with_columns(
            kafka_offset=pl.int_range(pl.len(), dtype=pl.Int64) + bronze["kafka_offset"].max() + 1
        )
    )
    _append_as_writer(lab, fresh, _version(lab, lab.bronze_uri) + 1)  # any growing number
    return fresh


def check_incremental(lab: Lab06, update_features: Any) -> None:
    """Exercise 4: call the student's update twice around new bronze data, and once idle."""
    key = "lab06.ex4"
    expect(callable(update_features), "update_features is None", INCREMENTAL, key=key)
    update_features()  # catch up on whatever is not processed yet (a first run reads all)
    _check_features_table(lab, key, INCREMENTAL)
    before = {u: _version(lab, u) for u in (lab.silver_uri, lab.features_uri)}
    fresh = add_new_bronze(lab)
    update_features()
    got = _check_features_table(lab, key, INCREMENTAL)
    touched = fresh.select("session_id", "date", "channel").unique().height
    commits = _commits_since(lab.features_uri, lab, before[lab.features_uri])
    operations = sorted({c["operation"] for c in commits})
    expect(
        bool(commits) and operations == ["MERGE"],
        f"after new bronze data, channel_features got commits {operations or 'none'}, "
        "not MERGE only",
        INCREMENTAL,
        key=key,
    )
    source = sum(int(c["operationMetrics"].get("numSourceRows", 0)) for c in commits)
    expect(
        source <= touched < got.height,
        f"the MERGE into channel_features read {source} rows; the new data touched {touched} "
        f"of {got.height} (session, day, channel) rows",
        INCREMENTAL,
        key=key,
    )
    silver = _read(lab, lab.silver_uri)
    expect(
        silver is not None and silver.height == truth_silver(lab).height,
        f"silver holds {0 if silver is None else silver.height:,} rows after the update, not "
        f"{truth_silver(lab).height:,}",
        INCREMENTAL,
        key=key,
    )
    idle = {u: _version(lab, u) for u in (lab.silver_uri, lab.features_uri)}
    update_features()
    after = {u: _version(lab, u) for u in (lab.silver_uri, lab.features_uri)}
    expect(
        after == idle,
        "with no new bronze data, update_features still committed "
        f"{sum(after.values()) - sum(idle.values())} versions",
        INCREMENTAL,
        key=key,
    )
    passed(
        f"{fresh.height:,} new bronze rows -> MERGE of {source} of {got.height} feature rows; "
        "nothing committed when nothing was new"
    )


# -- exercise 5: Spark and Polars agree ----------------------------------------------

AGREE = Hint(
    concept="The same transform in another engine must give the same rows: deduplicate, "
    "type and check first, then aggregate, and compare floats rounded.",
    api="polars_elt.clean(pl.scan_delta(...), checks), group_by(...).agg(...), "
    "compare.fingerprint(frame, decimals=6) (lesson 06, section 5).",
    call="polars_elt.clean(bronze, neuro.neural_signals.checks).group_by('session_id', 'date', "
    "'channel').agg(samples=pl.len().cast(pl.Int64), spikes=pl.col('spike').cast(pl.Int64)"
    ".sum(), rms_uv=(pl.col('voltage_uv') ** 2).mean().sqrt()).collect()",
)


def check_agree(
    lab: Lab06, polars_features: Callable[[pl.LazyFrame], pl.DataFrame] | None, agree: Any
) -> None:
    """Exercise 5: the student's Polars feature equals Spark's table, and they said so."""
    key = "lab06.ex5"
    expect(callable(polars_features), "polars_channel_features is None", AGREE, key=key)
    mine = polars_features(_bronze_scan(lab))
    if isinstance(mine, pl.LazyFrame):
        mine = mine.collect()
    missing = [c for c in FEATURE_SCHEMA if c not in mine.columns]
    expect(not missing, f"your Polars frame has no column {', '.join(missing)}", AGREE, key=key)
    mine = mine.select(list(FEATURE_SCHEMA)).cast(FEATURE_SCHEMA)
    spark = _read(lab, lab.features_uri)
    expect(spark is not None, "there is no channel_features table to compare with", AGREE, key=key)
    spark = spark.select(list(FEATURE_SCHEMA))
    same = compare.fingerprint(mine, decimals=DECIMALS) == compare.fingerprint(
        spark, decimals=DECIMALS
    )
    expect(
        same,
        f"your Polars feature has {mine.height} rows and differs from Spark's "
        f"channel_features ({spark.height} rows)",
        AGREE,
        key=key,
    )
    expect(agree is True, f"agree is {agree!r}, but the fingerprints are equal", AGREE, key=key)
    passed(f"Spark and Polars agree on all {mine.height} channel_features rows")
