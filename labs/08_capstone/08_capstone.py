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
# # Lab 08 · Capstone: ship a new signal, then diagnose an incident
#
# Two jobs a platform engineer gets in the same week. **First**, the implant's firmware
# now measures each electrode's **impedance** and sends it in every message as
# `impedance_kohm`. A rising impedance is how an electrode fails: the surgeons want an
# alert before the recording is lost. Ship the signal from the producer to an alert:
# Kafka, bronze, a gold feature, the catalog, ROAPI, an alert rule. **Then** something
# went wrong on another pipeline while nobody watched; from the samples the dashboard
# kept, the broker's lag and the Delta log's audit, say what happened, when, and which
# alert showed it first.
#
# **You will be able to** find where a new field stops on its way to a table and why;
# land it in a table of its own that joins bronze exactly; build, declare and serve a
# gold feature; write an alert rule that pages for a failure and not for a glitch; and
# diagnose an incident from lag, freshness and the audit.
#
# **Time:** about 2 hours (part 1 about 75 minutes, part 2 about 30, the stretch 15).
# **Prerequisites:** lessons 01-08, lesson 08 above all (`notebooks/08_whole_pipeline`):
# every API you need is shown there, and the hints name the sections. The stack running
# (`make up`) and the Rust writer built (`make setup`).
#
# **How it is graded.** After each exercise, run its **check** cell. The checks read the
# topic back, compute the truth from bronze and the topic, query ROAPI, and evaluate
# rules on the recording; they never take your word for a number. A check says `PASSED`,
# or what it found and a hint: the first failure gives the **concept**, the second the
# **API**, the third the **call**. Ask for a tier any time with `hint("lab08.ex3", 2)`.
#
# **The setup cell takes about a minute:** it produces the recording, lands it in bronze
# with the Rust writer, and stages the incident of part 2 on a second topic and writer
# while it samples them, as a dashboard would. Every exercise starts from what setup
# wrote (exercise 3 gets an impedance table, exercise 4 a gold table), so none needs
# another's result. `lab.reset("ex3")` puts back one exercise's tables and restarts its
# hints; `lab.reset("ex6")` stages a new incident (of the same kind: `SEED` chooses it).

# %% tags=["parameters"]
PREFIX = "lab08_"  # topic, table and writer names start with this: make it yours
SEED = 8  # which channel fails, when, and which incident is staged

# %%
import json
import time
import types

import polars as pl
from IPython.display import display

import neuralake
from neuralake.api.client import RoapiClient
from neuralake.catalog import Catalog, DeltalakeTable, ModuleDatabase
from neuralake.catalog.quality import NotNull, Range, Unique
from neuralake.lab.api.serve import serve
from neuralake.lab.graders import hint, lab08  # noqa: F401 (hint: yours to call when stuck)
from neuralake.lab.writer import control
from neuralake.monitoring import Rule, audit, evaluate

s = neuralake.settings()
opts = s.storage_options
pl.Config.set_tbl_cols(-1)
pl.Config.set_tbl_width_chars(200)
started = time.perf_counter()
lab = lab08.setup(s, prefix=PREFIX, seed=SEED)
print(f"recording, bronze and the incident ready in {time.perf_counter() - started:.0f} s")
print(f"topic {lab.topic} -> bronze {lab.bronze_uri}")

# %% [markdown]
# # Part 1 · Ship a new signal
#
# ## Exercise 1 · Where does the new field stop?
#
# The firmware team says every message now carries `impedance_kohm`; the setup cell
# produced a recording with it and ran the Rust writer, unchanged, until bronze held
# every message. Look at a message and at bronze. Store in `dropped` the set of message
# fields that bronze does not keep.
#
# *Why it matters:* the writer's bronze schema is a contract, written in its code
# (`rust-writer/src/schema.rs`), and a field it does not know is ignored: not an error,
# not a dead letter. A new field can travel for weeks before anyone notices it never
# landed. Changing the contract means changing the writer and migrating every bronze
# table; this lab takes the path the platform supports today (exercise 2).

# %%
print(lab.messages()["payload"][0].decode())

# %% tags=["solution"]
# Store in dropped (a set of field names) the message fields bronze has no column for.
message = json.loads(lab.messages()["payload"][0])
bronze_columns = set(pl.read_delta(lab.bronze_uri, storage_options=opts).columns)
dropped = set(message) - bronze_columns
dropped

# %%
lab08.check_dropped(lab, dropped)

# %% [markdown]
# ## Exercise 2 · Land the new field in a table of its own
#
# Kafka still holds every message, field and all. Write `land_impedance(messages,
# uri)`: given the topic's messages (`lab.messages()`: `kafka_partition`,
# `kafka_offset`, the raw `payload`), it writes the Delta table at `uri` with one row
# per message: the columns that identify the message, so that the table joins bronze
# exactly, and `impedance_kohm` (a float). Then run it for `lab.uri("impedance")`.
#
# The check runs your function twice on the topic's messages, as a scheduler that
# retries a job would, and compares the table with every message. No lesson reads a field
# out of a JSON text column: Polars' `str.json_path_match` does
# (https://docs.pola.rs/api/python/stable/reference/expressions/api/polars.Expr.str.json_path_match.html).
#
# *Why it matters:* a side table keyed like bronze is how a signal ships before the
# writer's contract changes, and the key decides whether the join is exact.


# %% tags=["solution"]
# Define land_impedance(messages, uri), then run it on lab.messages() for lab.uri("impedance").
def land_impedance(messages: pl.DataFrame, uri: str) -> None:
    impedance = messages.select(
        "kafka_partition",
        "kafka_offset",
        impedance_kohm=pl.col("payload")
        .cast(pl.String)
        .str.json_path_match("$.impedance_kohm")
        .cast(pl.Float64),
    ).filter(pl.col("impedance_kohm").is_not_null())
    impedance.write_delta(uri, mode="overwrite", storage_options=opts)


land_impedance(lab.messages(), lab.uri("impedance"))

# %%
lab08.check_impedance(lab, land_impedance)

# %% [markdown]
# ## Exercise 3 · The gold feature: each electrode's health, per minute
#
# Write `electrode_health(bronze, impedance)`: from a `pl.LazyFrame` of bronze and one
# of the impedance table, a `pl.DataFrame` with one row per `session_id`, `channel`
# (Int32) and `minute` (the minute the device recorded the sample in, a UTC datetime),
# and the columns `samples` (rows, Int64), `impedance_kohm` (its mean, Float64) and
# `quality` (its mean, Float64). Write its result over bronze and the impedance table
# the lab gives you (`lab.uri("given_impedance")`) to `lab.uri("electrode_health")`.
# Lesson 08 truncates times in SQL (`date_trunc`); in Polars it is `dt.truncate`
# (https://docs.pola.rs/api/python/stable/reference/expressions/api/polars.Expr.dt.truncate.html).
#
# *Why it matters:* one number per electrode and minute is what a surgeon reads and what
# an alert watches; computed on the wrong clock, a 20-minute recording collapses into
# the one second it took to reach the broker.


# %% tags=["solution"]
# Define electrode_health(bronze, impedance) -> pl.DataFrame, then write its result over
# bronze and lab.uri("given_impedance") to lab.uri("electrode_health").
def electrode_health(bronze: pl.LazyFrame, impedance: pl.LazyFrame) -> pl.DataFrame:
    return (
        bronze.join(impedance, on=["kafka_partition", "kafka_offset"])
        .group_by(
            "session_id",
            pl.col("channel").cast(pl.Int32),
            minute=pl.col("timestamp").dt.truncate("1m"),
        )
        .agg(
            samples=pl.len().cast(pl.Int64),
            impedance_kohm=pl.col("impedance_kohm").mean(),
            quality=pl.col("quality").cast(pl.Float64).mean(),
        )
        .sort("session_id", "channel", "minute")
        .collect()
    )


bronze = pl.scan_delta(lab.bronze_uri, storage_options=opts)
given = pl.scan_delta(lab.uri("given_impedance"), storage_options=opts)
electrode_health(bronze, given).write_delta(
    lab.uri("electrode_health"), mode="overwrite", storage_options=opts
)

# %%
lab08.check_health(lab, electrode_health)

# %% [markdown]
# ## Exercise 4 · Declare it, serve it, ask it
#
# The setup cell wrote the gold table to `lab.uri("health_served")` (named
# `PREFIX + "health_served"`). Declare it in a catalog, as code: a `DeltalakeTable` in
# a module, with its `upstream` (the tables it is computed from: bronze,
# `lab.bronze_table`, and the impedance table) and at least one quality check that
# passes. Store the catalog in `catalog` and serve it through ROAPI. Then, **through
# ROAPI**, find the channel with the highest impedance in the recording's last minute
# and store it in `worst_channel` (an int).
#
# *Why it matters:* the declaration is the documentation, the lineage and the API at
# once: nobody writes an endpoint, and the next engineer finds where the number comes
# from. `serve()` restarts ROAPI on the stack with your catalog (lessons and other labs
# serve theirs the same way).

# %% tags=["solution"]
# Store in catalog a Catalog that declares the gold table (upstream and checks), serve
# it, then store in worst_channel (an int) the channel ROAPI says is worst in the last minute.
gold = DeltalakeTable(
    PREFIX + "health_served",
    description="Per session, channel and minute of device time: samples, mean electrode "
    "impedance (kOhm) and mean quality.",
    tags=["gold", "capstone"],
    owner="neural-data@neuralake.dev",
    upstream=[lab.bronze_table, PREFIX + "impedance"],
    checks=[
        NotNull("impedance_kohm"),
        Range("impedance_kohm", min=0, max=100_000),
        Unique("session_id", also=["channel", "minute"]),
    ],
)
module = types.ModuleType("lab08_gold", "Lab 08's gold table.")
module.gold, module.__all__ = gold, ["gold"]
catalog = Catalog({"lab08": ModuleDatabase(module)})
served = serve(catalog, "lab08", s, echo=lambda _: None)
client = RoapiClient(settings=s)
worst = client.sql(
    f"SELECT CAST(channel AS INT) AS channel, impedance_kohm FROM {gold.name} "
    "ORDER BY minute DESC, impedance_kohm DESC LIMIT 1"
)
client.close()
worst_channel = int(worst["channel"][0])
print(
    f"ROAPI serves {', '.join(served.values())}; worst in the last minute: channel {worst_channel}"
)

# %%
lab08.check_served(lab, catalog, worst_channel)

# %% [markdown]
# ## Exercise 5 · An alert that pages for a failing electrode, not for a glitch
#
# Write one `Rule` on the gold table's `impedance_kohm` and store it in `rule`. The check
# evaluates it on every channel's minutes (`lab08.per_channel(gold)` gives them, with
# `t_s` counting seconds from the recording's first minute): it must fire on the channel
# whose electrode failed, within 3 minutes of the failure, and on no other channel.
# Look at the data before you choose a threshold and a duration.
#
# *Why it matters:* an alert that fires on every loose connector is muted within a
# week; one that waits too long pages after the recording is lost.

# %%
served_gold = pl.read_delta(lab.uri("health_served"), storage_options=opts)
served_gold.group_by("channel").agg(
    median_kohm=pl.col("impedance_kohm").median().round(1),
    max_kohm=pl.col("impedance_kohm").max().round(1),
).sort("max_kohm", descending=True).head(5)

# %% tags=["solution"]
# Store in rule a Rule on impedance_kohm: the failing electrode only, within 3 minutes.
rule = Rule(
    "electrode failing",
    "impedance_kohm",
    above=1_000,  # healthy electrodes stay below 800 kOhm
    for_s=60,  # two minutes in a row: a one-minute glitch pages nobody
    why="an electrode's impedance rose and stayed up: the recording on it is being lost",
)
channels = lab08.per_channel(served_gold)
pl.concat(
    [evaluate([rule], frame).with_columns(channel=c) for c, frame in channels.items()]
).filter("fired")

# %%
lab08.check_rule(lab, rule)

# %% [markdown]
# # Part 2 · Diagnose an incident
#
# While the setup cell ran, another pipeline (topic `lab.incident_topic`, table
# `lab.incident_uri`, its dead letters at `lab.incident_dead_uri`) ran a steady stream,
# and something happened to it. The setup cell sampled it twice a second, from three
# sides, as lesson 08's dashboard does: the writer's `/metrics`, the broker's lag and a
# reader's age of the newest row. Those samples are `lab.recording()`: `t_s`,
# `sampled_at`, the writer's counters and gauges, `broker_lag`, `served_age_s`,
# `dead_letter_ratio`, and `down` (the probes that got no answer). `lab08.RULES` are
# the pipeline's alert rules.
#
# ## Exercise 6 · What happened, when, and what showed it first?
#
# Store in `what` one of `lab08.INCIDENTS`, in `started_at` the moment the incident
# began (a UTC `datetime`, within 3 s), and in `first_alert` the name of the rule of
# `lab08.RULES` that fired first on the recording. Use the recording and the audit of
# the incident's tables.
#
# *Why it matters:* the first question of every incident review is "when did it start,
# and when did we know?". The gap between the two is what the alerts are for.

# %%
recording = lab.recording()
columns = ["t_s", "phase", "down", "broker_lag", "served_age_s", "messages_total"]
with pl.Config(tbl_rows=40):
    shown = recording.select(*columns, "dead_letter_ratio").gather_every(2)
    display(shown.with_columns(pl.col("t_s", "served_age_s", "dead_letter_ratio").round(2)))

# %% tags=["solution"]
# Store what (one of lab08.INCIDENTS), started_at (a UTC datetime) and first_alert (a rule name).
writer_gone = recording["down"].str.contains("writer").any()  # its /metrics went silent
# Its last commit before the longest silence in bronze's log; the first dead letters.
bronze_log = audit.commits(lab.incident_uri, opts).filter(pl.col("rows_added") > 0)
gaps = bronze_log.with_columns(gap=pl.col("committed_at").diff().shift(-1))
last_before_gap = gaps.sort("gap", descending=True, nulls_last=True)["committed_at"][0]
dead_log = audit.commits(lab.incident_dead_uri, opts).filter(pl.col("rows_added") > 0)
first_dead_letters = dead_log["committed_at"].min()
what = "writer down" if writer_gone else "poison burst"
started_at = last_before_gap if writer_gone else first_dead_letters
alerts = evaluate(lab08.RULES, recording)
first_alert = alerts.filter("fired").sort("first_fired_s")["alert"][0]
print(what, started_at, first_alert)
alerts

# %%
lab08.check_incident(lab, what, started_at, first_alert)

# %% [markdown]
# ## Exercise 7 (stretch) · A rule that would have paged sooner
#
# Every rule of `lab08.RULES` waits a few seconds before it fires (`for_s`). For the
# incident you diagnosed, write one rule, `earlier`, that fires on the recording at
# least 1 s before the first of `lab08.RULES` did, and not before the incident began
# (a rule that fires on the healthy stream pages for nothing).
#
# *Why it matters:* each second of waiting is a second of data lost or served stale;
# what you may drop depends on which signal cannot blip on a healthy stream.

# %% tags=["solution"]
# Store in earlier a Rule that fires at least 1 s before the first of lab08.RULES.
earlier = (
    Rule.absent("writer gone", "messages_total")  # a missing /metrics is the failure itself
    if what == "writer down"
    else Rule("poison", "dead_letter_ratio", above=0.02)  # a healthy stream has no dead letters
)
evaluate([earlier], recording)

# %%
lab08.check_earlier(lab, earlier)

# %% [markdown]
# ## Takeaways
#
# - A writer's schema is a contract: a new field is ignored, silently, until the
#   contract changes. Until then, land it keyed by the Kafka coordinates and join.
# - A feature is computed on the device's clock; the broker's clock says when data
#   arrived, which is what freshness is about, not what the signal is about.
# - Declaring a table in the catalog gives it lineage, checks and an API at once.
# - A good alert fires on a state that lasts, not on a blip: the threshold comes from
#   the data, the duration from what a false page costs.
# - In an incident the witnesses outside the failing part (the broker, a reader, the
#   Delta log) keep talking; the audit dates the failure to the commit.
#
# **What next:** the monitoring guide (`docs/monitoring.md`) lists the pipeline's signals
# and rules; the runbook (`docs/runbook.md`) is what to do when the stack itself fails.
#
# **Sources:** Prometheus alerting rules and their `for` clause,
# https://prometheus.io/docs/prometheus/latest/configuration/alerting_rules/ ; Google SRE
# book, *Monitoring Distributed Systems*,
# https://sre.google/sre-book/monitoring-distributed-systems/ ; Kafka consumer lag,
# https://kafka.apache.org/documentation/#monitoring ; the Delta protocol's `commitInfo`
# and `txn`, https://github.com/delta-io/delta/blob/master/PROTOCOL.md .
#
# ## Stop what the lab started
#
# The setup cell already stopped both writers once their work was done; this cell makes
# sure. The tables, topics and ROAPI's config stay, so you can look at them.

# %%
lab.stop()
still = [f"{w.table}/{w.name}" for w in control.status(s) if w.alive and w.table.startswith(PREFIX)]
print("lab 08 writer processes still running:", still)
