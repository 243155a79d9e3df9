# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · The whole pipeline, watched and governed
#
# **Time:** about 60 minutes to read and try; the notebook itself runs for about two
# minutes on an idle 2-core machine (up to six when busy), most of them Spark's start
# and its two ELT runs (section 3 prints how long each took).
# **Prerequisites:** lessons 02 (the catalog), 03 and 04 (the Rust writer, Kafka,
# exactly-once), 05 (ROAPI) and 06 (Spark's ELT). The stack up (`make up`) and the Rust
# writer built (`make setup` builds it).
#
# **You will be able to**
#
# 1. run producer -> Kafka -> Rust writer -> Delta bronze, with ROAPI serving it live
#    (hot path) and Spark turning it into silver and gold incrementally (cold path);
# 2. draw the lineage of the whole pipeline from the catalog, and run its quality and
#    freshness checks;
# 3. sample the writer's `/metrics`, the broker and a reader over time, and chart
#    freshness and consumer lag through an outage;
# 4. write alert rules as data and show which ones fire, and why each one is worth a page;
# 5. answer "who wrote what, and when?" for every table from its Delta log alone.
#
# **Why.** Each earlier lesson built one part. A platform is all of them at once, and
# the questions change: not "does the writer work?" but "is the data a surgeon's
# dashboard shows fresh *right now*, and how would we know if it were not?", "which
# tables does a bad message reach?", "which job wrote this gold row, from which bronze
# version?". Neuralink's answer, which this lab follows, is to keep those answers in the
# tables and the code: offsets and job metadata in the Delta log, lineage and checks in
# the catalog, health in Prometheus metrics. This lesson runs the pipeline end to end and
# asks those questions of it.
#
# Every number below is measured when the notebook runs.

# %% tags=["parameters"]
PREFIX = "l08_"  # silver, gold and dimension tables start with this
TOPIC = "pipeline-signals"  # the lesson's Kafka topic
BRONZE = "pipeline_signals_bronze"  # the writer's table
PARTITIONS = 3  # partitions of the topic
RATE = 1_000  # messages per second while the live chart runs, and during the outage
LIVE_SECONDS = 20  # how long the live chart runs
OUTAGE_SECONDS = 10  # how long the writer is down in section 4
MALFORMED_RATIO = 0.05  # share of broken messages during the outage (the dead-letter alert)
SEED = 8

# %%
import os
import signal
import threading
import time
import types
from datetime import UTC, datetime
from html import escape

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from confluent_kafka import KafkaException
from deltalake import DeltaTable as DeltaLog
from IPython.display import HTML, display

import neuralake
from neuralake import delta
from neuralake.api.client import RoapiClient
from neuralake.api.serve import serve
from neuralake.catalog import Catalog, DeltaTable, ModuleDatabase, NotNull, Unique
from neuralake.catalog.export import export_catalog
from neuralake.catalog.quality import Freshness
from neuralake.catalog.roapi import RELOAD_INTERVAL_S
from neuralake.catalog.site import build_site
from neuralake.datagen import Simulation, schemas
from neuralake.datagen.write import write_frames
from neuralake.monitoring import Rule, Watch, audit, evaluate, lineage
from neuralake.monitoring.audit import elt_behind, summary
from neuralake.settings import project_dir
from neuralake.spark import catalog as spark_catalog
from neuralake.spark import elt
from neuralake.spark import session as spark_session
from neuralake.spark import stop as stop_spark
from neuralake.streaming import topics
from neuralake.streaming.produce import produce
from neuralake.streaming.schemas import BRONZE as BRONZE_SCHEMA
from neuralake.streaming.schemas import PARTITION_BY, app_id, dead_letter_uri
from neuralake.writer import control

s = neuralake.settings()
assert s.profile != "local", "lesson 08 needs Kafka, S3 and ROAPI: start the stack with `make up`"
TABLES = elt.Tables(
    bronze=BRONZE,
    silver=f"{PREFIX}signals_silver",
    gold=f"{PREFIX}session_features",
    dims_prefix=PREFIX,  # l08_sessions, l08_devices, l08_patients
)
APP = "neuralake-writer"  # the writer's app id: it names the txn actions and the group
GROUP = f"{APP}.{BRONZE}"  # the writer's consumer group
uri = {name: TABLES.uri(s, name) for name in ("bronze", "silver", "gold")}
uri["dead_letters"] = dead_letter_uri(uri["bronze"])
DIMS = {name: s.table_uri(PREFIX + name) for name in ("sessions", "devices", "patients")}
client = RoapiClient(settings=s)
print(f"profile {s.profile} | topic {TOPIC} | bronze {uri['bronze']} | ROAPI {client.base}")

# %% [markdown]
# Start clean, so the notebook can run again: stop this lesson's writer, drop its
# tables (the ELT's checkpoint lives inside silver's folder), delete the topic and wait
# until Kafka no longer lists it, then create it again.

# %%
control.down(s, BRONZE, echo=lambda _: None)
for table_uri in [*uri.values(), *DIMS.values()]:
    delta.drop_table(table_uri, s.storage_options)
topics.delete_topic(s, TOPIC)
deadline = time.monotonic() + 30
while TOPIC in topics.admin(s).list_topics(timeout=10).topics:
    assert time.monotonic() < deadline, f"Kafka still lists {TOPIC} 30 s after deleting it"
    time.sleep(0.2)
topics.ensure_topic(s, TOPIC, PARTITIONS)
print("clean")

# %% [markdown]
# ## 1 · The streaming half: writer up, bronze served
#
# **Why:** the hot path must show a sample within seconds of the implant sending it.
# **Do:** start the writer's three processes (lesson 03) on the lesson's topic, with
# compaction every 10 s so that its commits show up in the audit later, then declare
# bronze in a catalog and let `serve()` write ROAPI's config and restart it (lesson 05).

# %%
writer = control.up(
    s, topic=TOPIC, table=BRONZE, compact_interval_s=10, min_files=4, echo=lambda _: None
)
INGEST = next(w for w in writer if w.name == "ingest")
display(pl.DataFrame([{"process": w.name, "pid": w.pid, "metrics": w.metrics_url} for w in writer]))

bronze = DeltaTable(
    BRONZE,
    schema=BRONZE_SCHEMA,
    partition_columns=PARTITION_BY,
    description="Every good message of the pipeline-signals topic, exactly once, written by "
    "the Rust writer about once a second.",
    tags=["bronze", "streaming"],
    owner="neural-data@neuralake.dev",
    upstream=[f"kafka:{TOPIC}"],
    checks=[
        NotNull("voltage_uv"),
        Unique("kafka_partition", also=["kafka_offset"]),
        Freshness("kafka_timestamp", hours=0.25),
    ],
)
hot = types.ModuleType("lesson08_hot", "The hot path: bronze only.")
hot.bronze, hot.__all__ = bronze, ["bronze"]
served = serve(Catalog({"l08": ModuleDatabase(hot)}), "lesson08", s, echo=lambda _: None)
print("ROAPI serves:", served, f"| provider tables re-read every {RELOAD_INTERVAL_S} s")

# %% [markdown]
# ## 2 · The hot path, live: the last minute of signals through ROAPI
#
# **Do:** a background thread produces `RATE` messages a second for `LIVE_SECONDS`
# seconds. Meanwhile, about once a second (less often on a busy machine: the line under
# the chart counts the queries), we ask ROAPI for the last minute per channel and second
# (`date_trunc` on the broker's `kafka_timestamp`, the time the sample reached the
# lakehouse) and redraw one figure in place, as a dashboard would. `channel` is cast to
# `INT`: ROAPI 0.12.7's DataFusion mishandles `Int16` in some expressions.
#
# **Measure:** the same loop feeds a `Watch` (`neuralake.monitoring.watch`), which
# samples the writer's `/metrics`, the broker's lag, the table's file count and the
# newest `kafka_timestamp` ROAPI returns. Its `served_age_s` is freshness as the
# dashboard meets it: now minus the newest row it can see.

# %%
LAST_MINUTE = f"""
SELECT CAST(channel AS INT) AS channel,
       date_trunc('second', kafka_timestamp) AS second,
       avg(abs(voltage_uv)) AS mean_abs_uv,
       count(voltage_uv) AS samples
FROM {BRONZE}
WHERE kafka_timestamp > now() - INTERVAL '60 seconds'
GROUP BY 1, 2
"""
NEWEST = f"SELECT max(kafka_timestamp) AS newest FROM {BRONZE}"
log = DeltaLog(uri["bronze"], storage_options=s.storage_options)


def bronze_files() -> int:
    """Data files in bronze's current version: the backlog compaction works down."""
    log.update_incremental()
    return len(log.file_uris())


def new_watch() -> Watch:
    """Samples of the writer's metrics, the broker's lag, ROAPI's newest row, bronze's files."""
    return Watch(
        INGEST.metrics_url,
        broker_lag=lambda: int(topics.group_lag(s, GROUP, TOPIC)["lag"].sum()),
        newest_served=lambda: client.sql(NEWEST)["newest"][0],
        files=bronze_files,
    )


watch = new_watch()


def producing(count: int, malformed: float, seed: int) -> threading.Thread:
    """Produce ``count`` messages at ``RATE`` per second in a background thread."""
    thread = threading.Thread(
        target=produce,
        kwargs={"s": s, "topic": TOPIC, "count": count, "rate": RATE,
                "malformed_ratio": malformed, "seed": seed, "partitions": PARTITIONS},
    )  # fmt: skip
    thread.start()
    return thread


def last_minute(frame: pl.DataFrame, now: datetime) -> tuple[np.ndarray, np.ndarray]:
    """The query's rows as a 256 x 60 grid (channel x second) and samples per second."""
    grid, per_second = np.full((256, 60), np.nan), np.zeros(60)
    if frame.height:
        ago = ((pl.lit(now) - pl.col("second")).dt.total_milliseconds() // 1000).cast(pl.Int64)
        cells = frame.with_columns(col=59 - ago).filter(pl.col("col").is_between(0, 59))
        grid[cells["channel"].to_numpy(), cells["col"].to_numpy()] = cells["mean_abs_uv"]
        totals = cells.group_by("col").agg(pl.col("samples").sum())
        per_second[totals["col"].to_numpy()] = totals["samples"].to_numpy()
    return grid, per_second


# One figure, drawn once; each second only its data changes (set_data, set_height).
fig, (heat_ax, rate_ax) = plt.subplots(
    2, 1, figsize=(10, 5), dpi=80, sharex=True, height_ratios=[3, 1]
)
image = heat_ax.imshow(
    np.full((256, 60), np.nan), aspect="auto", origin="lower", extent=(-60, 0, 0, 256),
    cmap="magma", interpolation="nearest",
)  # fmt: skip
fig.colorbar(image, ax=[heat_ax, rate_ax], label="mean |voltage|, µV", pad=0.01)
heat_ax.set_ylabel("channel")
bars = rate_ax.bar(np.arange(-60, 0) + 0.5, np.zeros(60), width=1.0, color="#48c")
rate_ax.set_xlim(-60, 0)
rate_ax.set_ylim(0, 2 * RATE)
rate_ax.set_xlabel("seconds before the query (kafka_timestamp, the broker's arrival time)")
rate_ax.set_ylabel("samples")
handle = display(fig, display_id=True)

LIVE_MESSAGES = RATE * LIVE_SECONDS
producer = producing(LIVE_MESSAGES, 0.0, SEED)
queries, query_ms, served_total = 0, [], 0
started = time.monotonic()
# Until the producer is done and ROAPI serves every message it sent.
while producer.is_alive() or served_total < LIVE_MESSAGES:
    assert time.monotonic() - started < LIVE_SECONDS + 60, "ROAPI did not serve every message"
    tick = time.monotonic()
    frame = client.sql(LAST_MINUTE)
    query_ms.append((time.monotonic() - tick) * 1000)
    queries += 1
    grid, per_second = last_minute(frame, datetime.now(UTC))
    served_rows = int(per_second.sum())  # in the last minute (an empty answer has no columns)
    served_total = client.sql(f"SELECT count(voltage_uv) AS n FROM {BRONZE}")["n"][0]
    image.set_data(grid)
    if np.isfinite(grid).any():  # colours up to the 99th percentile: a few spikes would
        image.set_clim(0, np.nanpercentile(grid, 99))  # otherwise wash out the rest
    for bar, height in zip(bars, per_second, strict=True):
        bar.set_height(height)
    heat_ax.set_title(
        f"last minute served by ROAPI: {int(per_second.sum()):,} samples, "
        f"query {query_ms[-1]:.0f} ms (t = {time.monotonic() - started:.0f} s)"
    )
    handle.update(fig)
    watch.sample("healthy")
    time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
producer.join()
plt.close(fig)  # the display above keeps the last frame
live = watch.frame().filter(pl.col("phase") == "healthy")
print(
    f"{queries} dashboard queries in {time.monotonic() - started:.0f} s (median "
    f"{np.median(query_ms):.0f} ms); the last one returned {served_rows:,} samples of the "
    f"{LIVE_MESSAGES:,} produced, in {frame.height:,} channel-seconds"
)
print(
    f"newest row seen via ROAPI: median {live['served_age_s'].median():.1f} s old, "
    f"at most {live['served_age_s'].max():.1f} s old over {live.height} samples"
)

# %% [markdown]
# Read the figure and the two lines under it. While the producer ran, the heat map
# filled from the right, one column per second of arrivals, one row per channel (some
# channels are louder than others all along: the simulated implant's tuned neurons).
# The bar chart counts the samples ROAPI returned for each second: about `RATE` while the
# producer ran. The loop stopped once ROAPI served every message produced, so the last
# frame holds them all, and the seconds after the producer stopped are empty.
#
# The second line is freshness as the dashboard meets it: the newest row it could see was
# that many seconds old when it looked. It adds up the writer's flush interval (1 s), its
# commit, ROAPI's re-read of the log (every `RELOAD_INTERVAL_S` s) and the query itself.
#
# ## 3 · The cold path: Spark turns bronze into silver and gold
#
# **Why:** analysts and models want clean, typed, deduplicated rows (silver) and features
# per session and day (gold), not a message log. Spark's job is the cold path: minutes of
# delay are fine, correctness is not negotiable. **Do:** write the three small dimension
# tables the gold join needs, then run the incremental ELT (`neuralake.spark.elt`, the
# same job as `neuralake spark elt`) on this lesson's tables. The run's summary is one
# JSON line.

# %%
sim = Simulation(rows=1, sessions=1, patients=1, seed=SEED)  # the producer's ids: session 1
for name, frame in {
    "sessions": sim.sessions_table(),
    "devices": sim.devices_table(),
    "patients": sim.patients_table(),
}.items():
    write_frames(DIMS[name], [frame], schemas.SCHEMAS[name], s.storage_options)

started = time.monotonic()
spark_session(s).sparkContext.setLogLevel("ERROR")  # start the JVM; only errors, please
spark_start_s = time.monotonic() - started
started = time.monotonic()
first_run = elt.run(s, TABLES)  # the same session: elt uses neuralake.spark.session(s)
first_run_s = time.monotonic() - started
print(first_run.to_json())
print(f"Spark session started in {spark_start_s:.0f} s; first ELT run: {first_run_s:.0f} s")
assert first_run.bronze_rows > 0, "the ELT should have read the bronze rows produced above"

# %% [markdown]
# `bronze_versions` is the range of bronze versions this run read, `bronze_rows` how
# many rows they added, and `tables` the silver and gold versions and rows it left.
# The job does not scan bronze again next time: Spark's Delta streaming source keeps
# the last version it processed in a checkpoint (in silver's folder), and every silver
# and gold commit records in its `userMetadata` the bronze version it covers. The audit
# in section 6 reads that back.
#
# ## 4 · Monitoring: an outage, seen from three sides
#
# **Why:** a pipeline rarely fails loudly. The writer crashes, the producers keep
# sending, the dashboard keeps answering: with old data. Monitoring must notice from the
# outside. **Do:** produce again (with `MALFORMED_RATIO` broken messages this time),
# kill the writer's ingest process after 4 s (`SIGKILL`, a crash), restart it
# `OUTAGE_SECONDS` later with `control.up` (it resumes from the `txn` offsets in the
# Delta log, lesson 04), and keep sampling twice a second until the writer has caught up.

# %%
OUTAGE_MESSAGES = RATE * (OUTAGE_SECONDS + 12)


def caught_up() -> bool:
    """Does bronze hold every offset Kafka has? (its txn versions, lesson 04)"""
    table = DeltaLog(uri["bronze"], storage_options=s.storage_options)
    try:
        highs = topics.describe(s, TOPIC).select("partition", "high").iter_rows()
    except KafkaException:  # the broker timed out (a busy machine): not known yet, ask again
        return False
    done = {p: table.transaction_version(app_id(APP, TOPIC, p)) for p in range(PARTITIONS)}
    return all(high == 0 or (done[p] or -1) >= high - 1 for p, high in highs)


producer = producing(OUTAGE_MESSAGES, MALFORMED_RATIO, SEED + 1)
# Nothing was produced while Spark ran, so the newest row is as old as the live chart's
# last one. Wait until the new stream is served, so the watch starts from a healthy state.
deadline = time.monotonic() + 60
while (new_watch().sample()["served_age_s"] or float("inf")) > RELOAD_INTERVAL_S + 2:
    assert time.monotonic() < deadline, "ROAPI did not serve the new stream within 60 s"
    time.sleep(0.5)
watch = new_watch()  # a fresh watch: t_s counts from here
killed_at = restarted_at = None
while True:  # sample twice a second until produced, restarted and caught up
    row = watch.sample("outage")
    elapsed = row["t_s"]
    if not producer.is_alive() and restarted_at is not None and caught_up():
        break
    assert elapsed < 120, "the writer did not catch up within 120 s"
    if killed_at is None and elapsed >= 4:
        pid = next(w.pid for w in control.status(s, BRONZE) if w.name == "ingest")
        os.kill(pid, signal.SIGKILL)
        killed_at = elapsed
    if killed_at is not None and restarted_at is None and elapsed >= 4 + OUTAGE_SECONDS:
        control.up(s, topic=TOPIC, table=BRONZE, echo=lambda _: None)
        restarted_at = time.monotonic() - watch.started
    time.sleep(0.5)
producer.join()
samples = watch.frame()
print(
    f"{samples.height} samples; ingest killed at t={killed_at:.1f} s, restarted (ready) at "
    f"t={restarted_at:.1f} s; bronze held every offset again at t={samples['t_s'][-1]:.1f} s"
)
print(
    f"broker lag up to {samples['broker_lag'].max():,} messages, newest row via ROAPI up "
    f"to {samples['served_age_s'].max():.1f} s old, "
    f"{samples['down'].str.contains('writer').sum()} samples without writer metrics"
)


# %%
def mark_outage(ax) -> None:
    ax.axvspan(killed_at, restarted_at, color="#c44", alpha=0.12, label="ingest down")


fig, ax = plt.subplots(figsize=(10, 3.2))
ax.plot(samples["t_s"], samples["served_age_s"], label="newest row via ROAPI (reader)")
ax.plot(samples["t_s"], samples["writer_freshness_s"], label="writer gauge at its last commit")
mark_outage(ax)
ax.set_xlabel("seconds since the outage phase started")
ax.set_ylabel("age, s")
ax.set_title("Freshness: how old is the newest data?")
ax.legend(loc="upper left")
plt.tight_layout()
plt.show()

fig, ax = plt.subplots(figsize=(10, 3.2))
ax.plot(samples["t_s"], samples["broker_lag"], label="broker: high watermark - committed")
ax.plot(samples["t_s"], samples["writer_lag"], label="writer gauge: consumer_lag")
mark_outage(ax)
ax.set_xlabel("seconds since the outage phase started")
ax.set_ylabel("messages behind")
ax.set_title("Consumer lag")
ax.legend(loc="upper left")
plt.tight_layout()
plt.show()

# %% [markdown]
# Two views of the same outage. In the freshness chart the reader's line (what ROAPI
# serves) keeps climbing, one second per second, while ingest is down; the writer's gauge
# has a gap instead: a dead process serves no metrics, and its last value is frozen at
# the last commit it made. Right after the restart the gauge jumps: the first batch holds
# messages that waited through the whole outage. In the lag chart the broker's line climbs at `RATE` messages
# a second through the outage, then falls when the restarted writer commits the backlog;
# the writer's own gauge again has a gap. The lesson: the signals that keep working when
# the writer is dead are the ones measured from *outside* it (the broker, a reader). The
# writer's metrics say what it believes, and an absent `/metrics` is itself the alarm.
#
# ### Alert rules, as data
#
# A rule is a column of the samples, a threshold and how long the breach must last
# (`neuralake.monitoring.alerts.Rule`; Prometheus's `for:`, so one slow commit pages
# nobody). Thresholds follow from the pipeline's design: lag is allowed about two
# seconds of messages (the writer commits once a second), freshness two reload intervals
# plus two flushes, dead letters 2 % of messages, the file backlog a few compaction
# intervals' worth of commits.

# %%
RULES = [
    Rule("consumer lag", "broker_lag", above=3 * RATE, for_s=2,
         why="producers outrun the writer, or it is down: data piles up in Kafka"),
    Rule("stale hot path", "served_age_s", above=2 * RELOAD_INTERVAL_S + 2, for_s=2,
         why="the dashboard shows old data: writer, storage or ROAPI is stuck"),
    Rule.absent("writer silent", "messages_total", for_s=2,
         why="no /metrics from ingest: the process is dead or hung"),
    Rule("dead-letter rate", "dead_letter_ratio", above=0.02, for_s=2,
         why="a producer sends malformed messages: rows are missing from bronze"),
    Rule("small-file backlog", "files", above=60,
         why="compaction is not keeping up: every query opens more files"),
]  # fmt: skip
alerts = evaluate(RULES, samples)
with pl.Config(fmt_str_lengths=80, tbl_width_chars=160):
    display(alerts.drop("why"))
calm = evaluate(RULES, live)
print(
    "fired while the live chart ran (no fault injected):", calm.filter("fired")["alert"].to_list()
)
fired = dict(alerts.select("alert", "fired").iter_rows())
assert fired["consumer lag"] and fired["writer silent"], "the outage should fire both alerts"
assert fired["dead-letter rate"], f"{MALFORMED_RATIO:.0%} malformed messages should fire"

# %% [markdown]
# Read `fired`, `first_fired_s` (compare with the kill time printed above: the rules'
# `for_s` and the sampling interval delay each alert by a few seconds) and `worst`. The
# outage fired the lag, silence and staleness alerts; the malformed messages fired the
# dead-letter rate as soon as its 5 s window was full. Its `worst` can exceed 1: the
# writer commits a batch's dead letters a moment before the batch's rows, and a sample
# that falls between the two commits of the big catch-up batch counts the dead letters
# before their messages. That blip is one reason every rule waits `for_s`. Whether the
# small-file backlog fired depends on how far compaction was behind: its worst value is
# the most data files bronze had at one sample. `firing_at_end` shows what is still
# wrong at the last sample: the writer caught up, so lag, silence and staleness cleared,
# while malformed messages kept coming until the producer stopped. The line under the
# table evaluates the same rules over the live chart's samples, where nothing was broken
# on purpose: an empty list means the thresholds leave a healthy pipeline alone.
#
# ## 5 · The cold path again: only the new versions
#
# Bronze has grown by the outage's messages. The ELT is behind, and that too is
# something to alert on: `elt_behind` (`neuralake.monitoring.audit`) compares bronze's
# log with the bronze version silver's last ELT commit names. Then the second run.

# %%
bronze_log = audit.commits(uri["bronze"], s.storage_options, name="bronze")
silver_log = audit.commits(uri["silver"], s.storage_options, name="silver")
before = elt_behind(bronze_log, silver_log)
started = time.monotonic()
second_run = elt.run(s, TABLES)
second_run_s = time.monotonic() - started
print(second_run.to_json())
after = elt_behind(
    audit.commits(uri["bronze"], s.storage_options),
    audit.commits(uri["silver"], s.storage_options),
)
staleness = pl.DataFrame([{"when": "before run 2", **before}, {"when": "after run 2", **after}])
display(staleness)
print(f"second ELT run: {second_run_s:.0f} s")
assert second_run.bronze_versions[0] == first_run.bronze_versions[1] + 1, "only new versions"
assert after["versions_behind"] == 0 or after["covered"] > before["covered"], "no progress"

# %% [markdown]
# The second run started at the version after the first run's last one (compare the two
# `bronze_versions`) and read only the rows added since: `bronze_rows` counts the
# outage's good messages, `rejected_rows` rows the catalog's checks refused. As a rule:
# `Rule("ELT staleness", "seconds_behind", above=...)`, with the threshold set by how
# often the job is scheduled; here it would have fired before run 2 and cleared after
# (`seconds_behind` above).
#
# ## 6 · Governance: the catalog, lineage and checks across all of it
#
# **Why:** "where does this number come from?" must have an answer a new engineer can
# find. **Do:** declare silver and gold (with Spark's schemas from
# `neuralake.spark.catalog`) and the dimensions next to bronze, serve all of them, build
# the catalog site, and draw the lineage of the whole pipeline: the catalog's own edges
# plus the producer and ROAPI.

# %%
lesson = types.ModuleType("lesson08", "Lesson 08: the whole pipeline.")
lesson.bronze = bronze
lesson.silver = DeltaTable(
    TABLES.silver,
    schema=spark_catalog.neural_signals_silver.schema,
    partition_columns=["date"],
    description="Bronze cleaned by the Spark ELT: typed, deduplicated, checked.",
    tags=["silver", "spark"],
    owner="neural-data@neuralake.dev",
    upstream=[BRONZE],
    checks=[*spark_catalog.neural_signals_silver.checks, Freshness("kafka_timestamp", hours=1)],
)
lesson.gold = DeltaTable(
    TABLES.gold,
    schema=spark_catalog.session_features.schema,
    partition_columns=["date"],
    description="Per session and day: spike rate, voltage statistics, with dimensions.",
    tags=["gold", "spark"],
    owner="neural-data@neuralake.dev",
    upstream=[TABLES.silver, *(PREFIX + d for d in ("sessions", "devices", "patients"))],
    checks=spark_catalog.session_features.checks,
)
for name in ("sessions", "devices", "patients"):
    setattr(lesson, name, DeltaTable(PREFIX + name, schema=schemas.SCHEMAS[name], tags=["dims"]))
lesson.__all__ = ["bronze", "silver", "gold", "sessions", "devices", "patients"]
catalog = Catalog({"l08": ModuleDatabase(lesson)})

served = serve(catalog, "lesson08", s, echo=lambda _: None)
reports = catalog.check(settings=s)
export = export_catalog(catalog, "lesson08", s, quality=reports)
site = build_site(export, project_dir() / "build" / "l08_catalog_site")
graph, known = lineage.pipeline_graph(
    export,
    extra_edges=[
        ("producer (devices)", f"kafka:{TOPIC}"),
        (f"kafka:{TOPIC}", f"{BRONZE}_dead_letters"),
    ],
    only_served=[f"l08.{BRONZE}", f"l08.{TABLES.gold}"],  # the two this lesson queries
)
fig, ax = plt.subplots(figsize=(11, 3.6))
lineage.plot(graph, known, ax)
ax.set_title("Lineage: catalog tables solid, external systems dashed")
plt.tight_layout()
plt.show()
pages = len(export["tables"])
print(f"site: {site.relative_to(project_dir())} ({pages} table pages)")
print(f"ROAPI serves {sorted(served.values())}")

# %% [markdown]
# Read it left to right: devices produce into the topic, the writer splits it into bronze
# and its dead letters, Spark builds silver and then gold (joined with the dimensions),
# and ROAPI serves every Delta table of the catalog (the drawing shows the serving edge
# of the two tables this lesson queries through it, bronze and gold). The solid boxes
# and their edges are in the catalog code (`upstream=[...]`); the dashed ones are
# systems the catalog only names. The layout is the catalog's: columns by longest path
# from a source, a dimension table next to the table it feeds, and an edge that skips
# columns (bronze to ROAPI) drawn above the boxes. The site draws the same layout per
# table, e.g. silver's page:

# %%
page = (site.parent / "tables" / f"l08.{TABLES.silver}.html").read_text()
assert '<svg id="lineage"' in page, "the site should draw silver's lineage"
HTML(
    f'<div><iframe srcdoc="{escape(page)}" style="width:100%;height:520px;border:1px solid #ccc">'
    "</iframe></div>"
)

# %% [markdown]
# The checks ran over every table that declares some (one lazy Polars pass per table):
# not-null, ranges, uniqueness of the Kafka coordinates, and **freshness**, the newest
# timestamp compared with the age the table promises.

# %%
checks = pl.DataFrame(
    [
        {"table": r.table, "rows": r.rows, "check": c.check, "passed": c.passed, "detail": c.detail}
        for r in reports
        for c in r.results
    ]
)
with pl.Config(fmt_str_lengths=40, tbl_rows=30, tbl_width_chars=160):
    display(checks)
assert checks["passed"].all(), "every declared check should pass on the lesson's tables"

# %% [markdown]
# And the gold table through the hot path, the way a dashboard would read the features
# Spark computed (`channels` and `samples` per session and day):

# %%
client.sql(
    f"SELECT session_id, date, task, firmware, samples, channels, spikes, "
    f"round(mean_quality, 3) AS mean_quality FROM {TABLES.gold}"
)

# %% [markdown]
# ## 7 · Audit: who wrote what, and when
#
# **Why:** "which process wrote this row, and from what?" is a governance question, and
# the Delta log answers it without any extra system: every commit names its engine, its
# operation, and whatever the writer chose to record. `neuralake.monitoring.audit` reads
# every commit file of every table and classifies the writer: `txn` actions name the
# streaming writer (`<app>/<topic>/<partition>`), the ELT's `userMetadata` names its job,
# `OPTIMIZE` is compaction.

# %%
audited = audit.audit(
    {"bronze": uri["bronze"], "dead_letters": uri["dead_letters"], "silver": uri["silver"],
     "gold": uri["gold"]},
    s.storage_options,
)  # fmt: skip
with pl.Config(tbl_rows=30, fmt_str_lengths=40, tbl_width_chars=160):
    display(summary(audited))

# %% [markdown]
# Three kinds of commits, side by side:

# %%
examples = pl.concat(
    [
        audited.filter((pl.col("table") == "bronze") & pl.col("txn").is_not_null()).tail(1),
        audited.filter(pl.col("operation") == "OPTIMIZE").tail(1),
        audited.filter(pl.col("table") == "silver").tail(1),
    ]
).select("table", "version", "operation", "writer", "engine", "txn", "data_change",
         "rows_added", "bronze_version")  # fmt: skip
with pl.Config(fmt_str_lengths=60, tbl_width_chars=180):
    display(examples)

bronze_rows = pl.scan_delta(uri["bronze"], storage_options=s.storage_options).select(pl.len())
bronze_commits = audited.filter(pl.col("table") == "bronze")
assert bronze_commits.filter(pl.col("writer") == "neuralake-writer")["txn"].is_not_null().all()
assert (bronze_commits.filter(pl.col("operation") == "OPTIMIZE")["data_change"] == False).all()  # noqa: E712
assert audited.filter(pl.col("table") == "silver")["engine"].str.starts_with("Apache-Spark").all()
assert bronze_commits["rows_added"].sum() == bronze_rows.collect().item(), "rows unaccounted for"
print(
    f"bronze: {bronze_commits['rows_added'].sum():,} rows added by data-changing commits "
    f"= {bronze_rows.collect().item():,} rows in the table"
)

# %% [markdown]
# In the summary, the `CREATE TABLE` commits were made by the writer at start-up (before
# any offset, so only their engine names them). Read the three rows above. The bronze
# write was made by `neuralake-writer` with `delta-rs` and
# carries, per partition, the last Kafka offset it includes: the exactly-once record of
# lesson 04, and an audit trail down to the message. A compaction commit (if one ran,
# `OPTIMIZE`) has `data_change = false`: it rewrote files, not data, and it adds no rows
# to the count. The silver commit was made by Spark (`engine`), by the job its metadata
# names, from the bronze version in `bronze_version`. The sum printed last closes the
# books: every row in bronze was added by a data-changing commit of the writer, none by
# compaction.
#
# ## 8 · What to alert on, and why
#
# | signal | measured from | alert when | why |
# |---|---|---|---|
# | consumer lag | the broker (AdminClient) | above ~2 s of messages for a few seconds | the only lag that keeps counting when the writer is dead |
# | freshness of the hot path | a reader (ROAPI query) | above 2 reloads + 2 flushes | what a user actually sees; catches writer, storage and ROAPI |
# | writer silent | absent `/metrics` | any sample missing for a few seconds | a dead process reports nothing: absence is the signal |
# | dead-letter rate | writer counters | above ~1-2 % of messages | rows are missing from bronze; a producer or schema changed |
# | small-file backlog | the Delta log (files in the version) | above a few compaction intervals of commits | compaction stopped: reads slow down quietly |
# | ELT staleness | the Delta logs of bronze and silver | older than the schedule + one run | gold is behind; decisions use yesterday's data |
#
# Not worth a page: a single slow commit, commit conflicts the writer retried, one slow
# query. Chart them; alert on what a user or a downstream job would notice.
#
# ## 9 · Stop what this notebook started
#
# The writer's three processes and the Spark session. The tables, the topic and ROAPI's
# config stay, so you can look at them; running the notebook again starts from scratch.

# %%
control.down(s, BRONZE, echo=print)
stop_spark()
client.close()
print("writer processes still running:", [w.name for w in control.status(s, BRONZE) if w.alive])

# %% [markdown]
# ## Exercises
#
# 1. Set `OUTAGE_SECONDS = 3` and run again. Which alerts still fire? Change the rules'
#    `for_s` until a 3 s outage pages nobody but a 10 s one does: what did you trade?
# 2. Add a rule on `writer_freshness_s`. Why does it miss the outage in section 4?
#    (Look at the chart: what does a dead process's gauge show?)
# 3. Set `MALFORMED_RATIO = 0.01`. Does the dead-letter alert still fire? Read
#    `dead_letter_ratio` in `watch.frame()` around the outage and pick a threshold.
# 4. Give compaction `min_files=50` in `control.up` and make the small-file backlog rule
#    fire. Then read the audit: how many `OPTIMIZE` commits are there now?
# 5. Stretch: write `Rule("ELT staleness", "seconds_behind", ...)` and evaluate it on a
#    frame of `elt_behind` results sampled every few seconds while the writer runs and
#    the ELT does not.
#
# ## Key takeaways
#
# - One pipeline, two paths: the writer makes bronze fresh within seconds and ROAPI serves
#   it (hot); Spark turns it into silver and gold on a schedule (cold), reading only
#   the bronze versions it has not seen.
# - Measure health from outside the component: broker lag and a reader's freshness keep
#   working when the writer is dead; a missing `/metrics` is itself an alert.
# - Alert rules are data: a signal, a threshold derived from the design (flush and
#   reload intervals, compaction interval, schedule) and a duration that ignores blips.
# - Lineage and checks live in the catalog's code; offsets, jobs and versions live in the
#   Delta log. Together they answer "where did this come from?" without another system.
#
# ## Check yourself
#
# 1. During the outage, the writer's freshness gauge stayed low while the dashboard's
#    data got older. Why?
# 2. An audit shows an `OPTIMIZE` commit on bronze with `data_change = false`. Should the
#    ELT process its files? Should the audit count its rows?
# 3. Gold looks wrong for one session today. Which two records lead you from a gold
#    commit back to the Kafka messages it was computed from?
#
# <details><summary>Answers</summary>
#
# 1. The gauge is set by the writer at each commit; a dead writer makes no commits and
#    serves no metrics, so the last value (or nothing) is what a scraper sees. Freshness
#    must be measured by a reader, against the clock.
# 2. No and no: compaction rewrites existing rows into fewer files. The ELT's streaming
#    source skips `dataChange = false` commits, and the audit adds only data-changing
#    files' `numRecords`, which is why its sum equals the table's rows.
# 3. The gold (and silver) commit's `userMetadata` names the bronze version it covers;
#    bronze's commits up to that version carry `txn` actions with the Kafka offsets per
#    partition, and every bronze row keeps its `kafka_partition` and `kafka_offset`.
#
# </details>
#
# ## Sources
#
# - Delta transaction protocol: commit provenance (`commitInfo`), transaction identifiers
#   (`txn`), `dataChange`: https://github.com/delta-io/delta/blob/master/PROTOCOL.md
# - Delta Lake streaming source and sink (what `dataChange = false` means to a stream):
#   https://docs.delta.io/latest/delta-streaming.html
# - Prometheus alerting rules (the `for` clause) and `increase()` across counter resets:
#   https://prometheus.io/docs/prometheus/latest/configuration/alerting_rules/ and
#   https://prometheus.io/docs/prometheus/latest/querying/functions/#increase
# - Kafka consumer lag and monitoring: https://kafka.apache.org/documentation/#monitoring
# - ROAPI: https://roapi.github.io/docs/ ; DataFusion SQL functions (`date_trunc`,
#   `now`): https://datafusion.apache.org/user-guide/sql/scalar_functions.html
# - Google SRE book, *Monitoring Distributed Systems* (symptoms over causes):
#   https://sre.google/sre-book/monitoring-distributed-systems/
# - the lab's monitoring guide: `docs/monitoring.md`; terms: `docs/glossary.md`
