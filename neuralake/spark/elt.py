"""The cold path: bronze -> silver -> gold with Spark, incrementally, as Spark's own tables.

- **bronze** (read only): the streaming writer's table, one row per Kafka message.
- **silver** ``neural_signals_silver``: typed for every reader (channel Int32, voltages
  Float64: ROAPI's DataFusion cannot compare Int16 columns with literals), deduplicated on
  ``(kafka_partition, kafka_offset)`` (a MERGE that inserts only unseen offsets, so a
  replayed batch adds nothing), and filtered by the per-row checks the catalog declares
  for ``neural_signals`` (not null, range, accepted values); rejected rows are counted.
- **gold** ``session_features``: one row per session and day (spike rate, voltage
  statistics, quality) joined with the sessions, devices and patients dimension tables.

Incremental, with Spark's Delta streaming source and ``Trigger.AvailableNow``: each run
reads only the bronze versions committed since the last run (the stream's checkpoint
records the last bronze version; the writer's compaction commits carry
``dataChange=false`` and are skipped), processes them as micro-batches and stops. Gold
is recomputed only for the (session, day) pairs a batch touched, then merged. Every
silver and gold commit records the bronze versions it covers in its ``userMetadata``.

Run it with ``neuralake spark elt``, or
``spark-submit --jars "$(neuralake spark jars)" neuralake/spark/elt.py``; the same code
runs on a cluster when ``--master`` or ``NEURALAKE_SPARK_MASTER`` names one (docs/spark.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from neuralake.catalog.examples import neuro
from neuralake.catalog.quality import AcceptedValues, NotNull, Range
from neuralake.errors import NeuralakeError, TableNotFoundError
from neuralake.settings import Settings
from neuralake.settings import settings as load_settings
from neuralake.spark import catalog as spark_catalog
from neuralake.spark import guard
from neuralake.spark.session import session
from neuralake.streaming.schemas import DEFAULT_TABLE

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

APP = "neuralake-spark-elt"
KEY = ["kafka_partition", "kafka_offset"]
GOLD_KEY = ["session_id", "date"]


@dataclass(frozen=True)
class Tables:
    """Where the job reads and writes, as warehouse-relative names (``settings.table_uri``)."""

    bronze: str = DEFAULT_TABLE
    silver: str = neuro.PREFIX + "neural_signals_silver"
    gold: str = neuro.PREFIX + "session_features"
    dims_prefix: str = neuro.PREFIX  # sessions, devices, patients (neuro's seed writes them)

    def uri(self, s: Settings, name: str) -> str:
        return s.table_uri(getattr(self, name))

    def checkpoint(self, s: Settings) -> str:
        """The stream's progress lives beside silver, in a folder Delta ignores."""
        return guard.spark_path(s.table_uri(self.silver + "/_elt_checkpoint"))


@dataclass
class Run:
    """What one run did: printed as one JSON line by ``neuralake spark elt``."""

    bronze_versions: list[int] = field(default_factory=list)  # [first, last] read, or []
    batches: int = 0
    bronze_rows: int = 0
    rejected_rows: int = 0
    duplicate_rows: int = 0
    tables: dict[str, dict] = field(default_factory=dict)  # name -> uri, version, rows

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def row_checks(checks: Iterable) -> list:
    """Spark predicates a good row satisfies, from the catalog's per-row checks.

    Table-level checks (``Unique``, ``Freshness``) say nothing about one row: skipped.
    """
    from pyspark.sql import functions as F

    predicates = []
    for check in checks:
        col = F.col(check.column)
        if isinstance(check, NotNull):
            predicates.append(col.isNotNull())
        elif isinstance(check, Range):
            if check.min is not None:
                predicates.append(col.isNull() | (col >= check.min))
            if check.max is not None:
                predicates.append(col.isNull() | (col <= check.max))
        elif isinstance(check, AcceptedValues):
            predicates.append(col.isNull() | col.isin(list(check.values)))
    return predicates


def to_silver(bronze: DataFrame) -> DataFrame:
    """Bronze rows, typed for every reader, one per Kafka offset (dupes dropped)."""
    from pyspark.sql import functions as F

    return bronze.dropDuplicates(KEY).select(
        "timestamp",
        "session_id",
        "device_id",
        "patient_id",
        F.col("channel").cast("int").alias("channel"),
        F.col("voltage_uv").cast("double").alias("voltage_uv"),
        "spike",
        F.col("quality").cast("double").alias("quality"),
        "kafka_partition",
        "kafka_offset",
        "kafka_timestamp",
        "date",
    )


def clean(bronze: DataFrame, predicates: list[Column]) -> DataFrame:
    """Silver: typed, deduplicated, and only the rows that pass every predicate."""
    return to_silver(bronze).where(_all(predicates))


def features(
    silver: DataFrame, sessions: DataFrame, devices: DataFrame, patients: DataFrame
) -> DataFrame:
    """Per (session, day): volume, spike rate, voltage statistics, joined with dimensions."""
    from pyspark.sql import functions as F

    per_day = silver.groupBy(*GOLD_KEY).agg(
        F.count(F.lit(1)).alias("samples"),
        F.countDistinct("channel").cast("int").alias("channels"),
        F.sum(F.col("spike").cast("long")).alias("spikes"),
        F.min("timestamp").alias("first_sample"),
        F.max("timestamp").alias("last_sample"),
        F.avg("voltage_uv").alias("mean_voltage_uv"),
        F.stddev_samp("voltage_uv").alias("std_voltage_uv"),
        F.avg("quality").alias("mean_quality"),
        F.first("device_id").alias("device_id"),
        F.first("patient_id").alias("patient_id"),
    )
    # Whole microseconds first: a timestamp cast to double (epoch seconds) keeps only
    # about 0.2 us of a 2026 date, enough to move the rate of a short session visibly.
    seconds = (F.unix_micros("last_sample") - F.unix_micros("first_sample")) / 1e6
    return (
        per_day.withColumn(
            "spikes_per_channel_s",
            F.when(seconds > 0, F.col("spikes") / (seconds * F.col("channels"))),
        )
        .join(sessions.select("session_id", "task"), "session_id", "left")
        .join(devices.select("device_id", "firmware"), "device_id", "left")
        .join(patients.select("patient_id", "cohort", "age_band"), "patient_id", "left")
        .select(*spark_catalog.SESSION_FEATURES)  # the declared columns, in order
    )


class Job:
    """One ELT run for ``tables`` on ``settings``."""

    def __init__(self, s: Settings, tables: Tables = Tables()) -> None:
        self.s, self.tables, self.spark = s, tables, session(s)
        self.run = Run()
        self.uris = {name: tables.uri(s, name) for name in ("bronze", "silver", "gold")}
        for name in ("silver", "gold"):
            guard.ensure_spark_may_write(self.uris[name], s)
        self.dims = {
            name: self._read(s.table_uri(tables.dims_prefix + name))
            for name in ("sessions", "devices", "patients")
        }
        self.checks = row_checks(neuro.neural_signals.checks)

    def _read(self, uri: str) -> DataFrame:
        from deltalake import DeltaTable

        if not DeltaTable.is_deltatable(uri, storage_options=self.s.storage_options):
            raise TableNotFoundError(
                f"no Delta table at {uri}: write the dimension tables first "
                "(neuralake.catalog.examples.seed.seed(settings()))"
            )
        return self.spark.read.format("delta").load(guard.spark_path(uri))

    def execute(self) -> Run:
        """Process every bronze version committed since the last run, then stop."""
        from deltalake import DeltaTable

        if not DeltaTable.is_deltatable(self.uris["bronze"], self.s.storage_options):
            raise TableNotFoundError(
                f"no bronze table at {self.uris['bronze']}: start the writer "
                "(neuralake writer up) and produce messages first"
            )
        stream = (
            self.spark.readStream.format("delta")
            .option("maxFilesPerTrigger", 1000)
            .load(guard.spark_path(self.uris["bronze"]))
        )
        previous = self._last_bronze_version()
        self.bronze_version = DeltaTable(
            self.uris["bronze"], storage_options=self.s.storage_options
        ).version()
        query = (
            stream.writeStream.foreachBatch(self._batch)
            .option("checkpointLocation", self.tables.checkpoint(self.s))
            .trigger(availableNow=True)
            .start()
        )
        query.awaitTermination()
        error = query.exception()
        if error is not None:
            raise error
        if self.run.batches:  # AvailableNow reads up to the version current at its start
            first = 0 if previous is None else previous + 1
            self.run.bronze_versions = [first, self.bronze_version]
        for name in ("silver", "gold"):
            self.run.tables[name] = self._describe(self.uris[name])
        return self.run

    def _batch(self, bronze: DataFrame, batch_id: int) -> None:
        from delta.tables import DeltaTable as SparkDelta
        from pyspark.sql import functions as F

        bronze = bronze.persist()
        rows = bronze.count()
        if rows == 0:
            bronze.unpersist()
            return
        typed = to_silver(bronze).withColumn("_ok", _all(self.checks)).persist()
        (counts,) = typed.agg(F.count(F.lit(1)), F.sum(F.col("_ok").cast("long"))).collect()
        distinct, kept = counts[0], counts[1] or 0
        good = typed.where("_ok").drop("_ok")
        self.run.batches += 1
        self.run.bronze_rows += rows
        self.run.duplicate_rows += rows - distinct
        self.run.rejected_rows += distinct - kept
        # foreachBatch hands over a cloned session: commit settings go on the batch's own.
        batch_session = bronze.sparkSession
        meta = {"app": APP, "bronze": self.uris["bronze"], "batch": batch_id}
        meta["bronze_version"] = self.bronze_version
        batch_session.conf.set("spark.databricks.delta.commitInfo.userMetadata", json.dumps(meta))
        silver_path = guard.spark_path(self.uris["silver"])
        if SparkDelta.isDeltaTable(batch_session, silver_path):
            on = " AND ".join(f"s.{c} = b.{c}" for c in [*KEY, "date"])
            (
                SparkDelta.forPath(batch_session, silver_path)
                .alias("s")
                .merge(good.alias("b"), on)
                .whenNotMatchedInsertAll()
                .execute()
            )
        else:
            guard.write_delta(good, self.uris["silver"], self.s, partition_by=["date"])
        self._gold(batch_session, good.select(*GOLD_KEY).distinct())
        typed.unpersist()
        bronze.unpersist()
        batch_session.conf.unset("spark.databricks.delta.commitInfo.userMetadata")

    def _gold(self, spark: SparkSession, touched: DataFrame) -> None:
        """Recompute the touched (session, day) pairs from all of silver and merge them."""
        from delta.tables import DeltaTable as SparkDelta

        silver = spark.read.format("delta").load(guard.spark_path(self.uris["silver"]))
        fresh = features(silver.join(touched, GOLD_KEY, "left_semi"), **self.dims)
        gold_path = guard.spark_path(self.uris["gold"])
        if SparkDelta.isDeltaTable(spark, gold_path):
            on = " AND ".join(f"g.{c} = f.{c}" for c in GOLD_KEY)
            (
                SparkDelta.forPath(spark, gold_path)
                .alias("g")
                .merge(fresh.alias("f"), on)
                .whenMatchedUpdateAll()
                .whenNotMatchedInsertAll()
                .execute()
            )
        else:
            guard.write_delta(fresh, self.uris["gold"], self.s, partition_by=["date"])

    def _last_bronze_version(self) -> int | None:
        """The bronze version the previous run reached, from silver's newest ELT commit."""
        from deltalake import DeltaTable

        if not DeltaTable.is_deltatable(self.uris["silver"], self.s.storage_options):
            return None
        silver = DeltaTable(self.uris["silver"], storage_options=self.s.storage_options)
        for commit in silver.history():
            meta = commit.get("userMetadata")
            if meta and json.loads(meta).get("app") == APP:
                return int(json.loads(meta)["bronze_version"])
        return None

    def _describe(self, uri: str) -> dict:
        from deltalake import DeltaTable

        if not DeltaTable.is_deltatable(uri, self.s.storage_options):
            return {"uri": uri, "version": None, "rows": 0}
        table = DeltaTable(uri, storage_options=self.s.storage_options)
        return {"uri": uri, "version": table.version(), "rows": table.count()}


def _all(predicates: list[Column]) -> Column:
    """All predicates together (true when there are none)."""
    from pyspark.sql import functions as F

    combined = F.lit(True)
    for p in predicates:
        combined = combined & p
    return combined


def run(s: Settings | None = None, tables: Tables = Tables()) -> Run:
    """Run the ELT once: every bronze version not yet processed, into silver and gold."""
    return Job(s or load_settings(), tables).execute()


def main(argv: list[str] | None = None) -> int:
    """``spark-submit neuralake/spark/elt.py [--bronze NAME] ...``: one JSON line out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Tables()
    for name in ("bronze", "silver", "gold", "dims_prefix"):
        parser.add_argument(f"--{name.replace('_', '-')}", default=getattr(defaults, name))
    args = parser.parse_args(argv)
    tables = Tables(args.bronze, args.silver, args.gold, args.dims_prefix)
    try:
        print(run(load_settings(), tables).to_json())
    except NeuralakeError as error:  # one line, as the CLI prints it
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
