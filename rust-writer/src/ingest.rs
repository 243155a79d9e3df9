//! `ingest`: Kafka -> bronze Delta table, exactly once.
//!
//! Two halves, each in its own module, run as a pipeline:
//! 1. the [`reader`] **fills** a batch: it consumes messages and copies them, a chunk of a few
//!    thousand at a time, to the [`decoders`] (`--decoders` threads that turn chunks into Arrow
//!    record batches and dead letters), until the flush rule says the batch is due (messages,
//!    payload bytes or age);
//! 2. the [`committer`], on a task of its own, **commits** the previous batch meanwhile: its
//!    malformed messages to the dead-letter table, then one Parquet file per date whose `add`
//!    actions go into ONE Delta commit together with one txn action per partition
//!    (`version` = last offset of the batch), then starts a checkpoint every
//!    `--checkpoint-every` commits in the background;
//! 3. once that commit is done the reader **acknowledges** it (Kafka offsets for lag tools,
//!    the lag gauge) and the batch just filled goes to the committer. When the stream stops,
//!    the reader returns an empty batch after 100 ms without messages, so the last commit is
//!    acknowledged at once rather than when the next message arrives.
//!
//! At most one batch commits at a time, so commits land in offset order and each carries the
//! txn versions of its own batch. Overlapping them matters on two cores: decoding JSON and
//! encoding Parquet are both CPU work, and consuming no longer stops during an upload, so a
//! batch's age (and the `--flush-ms` rule) starts when its first message arrives, not after
//! the previous commit.
//!
//! Several `ingest` workers share a topic as one Kafka consumer group; the [`group`] module
//! handles rebalances (a new partition starts at the table's txn version + 1, a revoked one's
//! batch being filled is dropped).
//!
//! A crash anywhere leaves the table at a commit boundary, and a restart resumes each partition
//! at its txn version + 1. Commit conflicts with the compactor are resolved by delta-rs's
//! conflict checker (appends and `dataChange: false` rewrites do not conflict). Before every
//! commit the committer checks that the table's txn versions for the batch's partitions are
//! where this writer left them; if not (another writer, or our own commit whose response was
//! lost), the batch and the one filled behind it are dropped and the partitions re-sought from
//! the table. Any other failure (S3 or Kafka down) is retried with backoff, writing fresh
//! Parquet files on each attempt, each attempt abandoned after a deadline, so that no file
//! waits for its commit longer than `vacuum --mode full`'s retention floor. A panic on the
//! commit task ends the process with one line naming the batch (see [`Slot::free`]).

mod checkpointer;
mod committer;
mod decoders;
mod group;
mod reader;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use deltalake::writer::RecordBatchWriter;
use prometheus_client::registry::Registry;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;
use tokio::task::{JoinError, JoinHandle};
use tracing::{error, info, warn};

use crate::batch::FlushPolicy;
use crate::commit;
use crate::config::{IngestArgs, dead_letter_uri, table_name};
use crate::errors::startup;
use crate::kafka;
use crate::metrics::IngestMetrics;
use crate::offsets;
use crate::startup::{open_with_dead_letters, shutdown_signal};
use checkpointer::Checkpointer;
use committer::{Committer, Outcome, Tracked};
use group::{Change, GroupContext, Lookup};
use reader::{Pending, Reader};

/// Default metrics port of `ingest`.
pub const METRICS_PORT: u16 = 9464;

/// How often the watermarks for the lag metric are polled (on a client of their own).
const WATERMARK_INTERVAL: Duration = Duration::from_millis(200);

/// On SIGTERM, how long the batch committing may take to land before the process stops
/// without it (nothing of it was acknowledged: a restart reads it again from the table).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// How long leaving the consumer group may take at exit (with the broker down it would wait
/// for the broker).
const LEAVE_TIMEOUT: Duration = Duration::from_secs(3);

/// How many of the table's latest commits the start-up check reads for another writer group.
const GROUP_CHECK_DEPTH: usize = 20;

/// The one JSON line printed by `--stop-at-end`.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub messages: u64,
    pub rows: u64,
    pub dead_letters: u64,
    pub batches: u64,
    pub seconds: f64,
    pub version: i64,
    /// Seconds the reader spent waiting for the committer with a full batch in hand (a
    /// pipeline bound by uploads and commits shows here; one bound by consuming does not).
    pub waited_for_commits_s: f64,
}

/// Run `ingest` until a signal, or until the end of the topic with `--stop-at-end`.
pub async fn run(args: IngestArgs) -> Result<()> {
    let mut registry = Registry::default();
    let metrics = IngestMetrics::register(&mut registry);
    let stop_at_end = args.stop_at_end;
    let metrics_addr = args.common.metrics_addr_or(METRICS_PORT);
    let (mut reader, committer) = start(args, metrics.clone()).await?;
    crate::metrics::serve(metrics_addr, registry).await?;
    metrics.ready.set(1);
    metrics.spawn_health_ticker();
    let result = pipeline(&mut reader, committer).await;
    leave_group(reader);
    let summary = result?;
    if stop_at_end {
        println!("{}", serde_json::to_string(&summary)?);
    }
    Ok(())
}

/// Everything that can fail with a start-up error: Kafka, the topic, both tables.
async fn start(args: IngestArgs, metrics: IngestMetrics) -> Result<(Reader, Committer)> {
    let table_uri = args.common.table_uri()?;
    let name = table_name(&table_uri).to_string();
    let dead_uri = dead_letter_uri(&table_uri, args.dead_letter_uri.as_deref());
    let group_id = args
        .group_id
        .clone()
        .filter(|g| !g.is_empty())
        .unwrap_or_else(|| format!("neuralake-writer.{name}"));
    let bootstrap = args.kafka.kafka_bootstrap.clone();
    let topic = args.kafka.topic.clone();
    if args.flush_rows == 0 || args.flush_bytes == 0 || args.flush_ms == 0 {
        return startup("--flush-rows, --flush-bytes and --flush-ms must be greater than 0");
    }

    // A plain client for the start-up checks (metadata, end offsets, the group check).
    let probe: BaseConsumer = kafka::create(&args.kafka, &group_id)?;
    let partitions = tokio::task::block_in_place(|| kafka::partitions(&probe, &bootstrap, &topic))?;

    let (bronze, dead) = open_with_dead_letters(&table_uri, &dead_uri, &args.common.s3).await?;
    refuse_another_group(&bronze, &probe, &group_id, &table_uri).await?;
    let bronze_schema = RecordBatchWriter::for_table(&bronze)?.arrow_schema();
    let dead_schema = RecordBatchWriter::for_table(&dead)?.arrow_schema();

    let app = args.app_id.clone();
    let table_offsets = offsets::read_table_offsets(&bronze, &app, &topic, &partitions).await?;
    let dead_offsets = offsets::read_table_offsets(&dead, &app, &topic, &partitions).await?;

    let marks = tokio::task::block_in_place(|| {
        partitions
            .iter()
            .map(|&p| {
                probe
                    .fetch_watermarks(&topic, p, kafka::STARTUP_TIMEOUT)
                    .map(|w| (p, w))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()
    });
    let marks = match marks {
        Ok(m) => m,
        Err(e) => {
            return startup(format!(
                "cannot read the end offsets of '{topic}' from {bootstrap}: {e}: check the broker"
            ));
        }
    };
    if let Some((p, held, high)) = behind_the_table(&marks, &table_offsets) {
        return startup(format!(
            "the table {table_uri} holds offsets of '{topic}' up to {held} in partition {p}, but \
             the topic ends at {high}: it was deleted and recreated. Write it to another table \
             (--table) or under another --app-id"
        ));
    }
    let targets = args.stop_at_end.then_some(marks);

    // The group member: partitions arrive in its rebalance callback, each at the table's txn
    // version + 1, read through table handles of its own.
    let lookup = Lookup::new(bronze.clone(), dead.clone(), &app, &topic);
    let context = GroupContext::new(&topic, args.offset_reset, lookup);
    let consumer: BaseConsumer<GroupContext> = kafka::create_with(&args.kafka, &group_id, context)?;
    consumer
        .subscribe(&[topic.as_str()])
        .context("subscribing to the topic")?;
    let watermarks = kafka::spawn_watermark_poller(
        &args.kafka,
        &group_id,
        &topic,
        &partitions,
        WATERMARK_INTERVAL,
    )?;
    let version = commit::version_of(&bronze);
    metrics.table_version.set(version);
    info!(
        table = %table_uri, dead_letters = %dead_uri, topic = %topic, group_id = %group_id,
        partitions = ?partitions, version, "ingest ready; waiting for the group to assign partitions"
    );
    let policy = FlushPolicy {
        max_messages: args.flush_rows,
        max_bytes: args.flush_bytes,
        max_age: Duration::from_millis(args.flush_ms),
    };
    let decoders = decoders::Pool::start(args.decoder_threads(), bronze_schema.clone())?;
    let reader = Reader::new(
        consumer,
        topic.clone(),
        policy,
        decoders,
        metrics.clone(),
        targets,
        args.offset_reset,
        watermarks,
    );
    let dead_version = commit::version_of(&dead);
    let committer = Committer {
        app,
        topic,
        partitions,
        group: group_id,
        owned: BTreeSet::new(),
        bronze: Tracked::new(bronze, table_offsets.clone()),
        dead: Tracked::new(dead, dead_offsets.clone()),
        dead_schema,
        held: table_offsets,
        dead_offsets,
        metrics,
        checkpoints: (
            Checkpointer::new("bronze", args.checkpoint_every, version),
            Checkpointer::new("dead letters", args.checkpoint_every, dead_version),
        ),
        give_up: Duration::from_secs(args.give_up_s),
        summary: Summary {
            version,
            ..Summary::default()
        },
    };
    Ok((reader, committer))
}

/// Refuse to start when the table's latest commits were made by another consumer group that
/// still has members: two groups would each read every partition (workers of one table share
/// a group). A group with no member left is a writer stopped for good: taking over is fine.
async fn refuse_another_group(
    bronze: &deltalake::DeltaTable,
    probe: &BaseConsumer,
    group_id: &str,
    table_uri: &str,
) -> Result<()> {
    let other = match offsets::last_writer_group(bronze, GROUP_CHECK_DEPTH).await {
        Ok(Some(other)) if other != group_id => other,
        Ok(_) => return Ok(()),
        Err(e) => {
            warn!(
                error = format!("{e:#}"),
                "reading the table's last writer group failed; not checked"
            );
            return Ok(());
        }
    };
    let members = tokio::task::block_in_place(|| kafka::group_members(probe, &other));
    match members {
        Ok(0) => {
            info!(previous_group = %other, "taking over from a consumer group with no member left");
            Ok(())
        }
        Ok(n) => startup(format!(
            "{table_uri} is written by consumer group '{other}' ({n} member(s) running), not \
             '{group_id}': start this writer with --group-id {other} to share its partitions, \
             or stop that group first"
        )),
        Err(e) => {
            warn!(error = %e, group = %other, "asking Kafka for the other group's members failed; not checked");
            Ok(())
        }
    }
}

/// The committer, either free or busy with one batch on its own task (which hands it back).
enum Slot {
    Free(Box<Committer>),
    /// The task, and the batch's offsets (`0:[10..20] 1:[5..9]`) for the log if it panics.
    Busy(JoinHandle<(Box<Committer>, Result<Outcome>)>, String),
}

impl Slot {
    /// Give `pending` to the committer: it starts at once on a task of its own.
    fn commit(mut committer: Box<Committer>, pending: Pending) -> Self {
        let offsets = committer::describe(&pending.offsets);
        Slot::Busy(
            tokio::spawn(async move {
                let outcome = committer.commit_batch(pending).await;
                (committer, outcome)
            }),
            offsets,
        )
    }

    /// Wait until the committer is free: the committer and what happened to its batch.
    async fn free(self) -> Result<(Box<Committer>, Option<Outcome>)> {
        match self {
            Slot::Free(c) => Ok((c, None)),
            Slot::Busy(task, offsets) => Self::joined(task.await, &offsets),
        }
    }

    /// [`Slot::free`], waiting at most `limit`: past it the commit is aborted (nothing of its
    /// batch was acknowledged, so a restart reads it again) and `None` is returned.
    async fn free_within(
        self,
        limit: Option<Duration>,
    ) -> Result<Option<(Box<Committer>, Option<Outcome>)>> {
        let (mut task, offsets, limit) = match (self, limit) {
            (Slot::Busy(task, offsets), Some(limit)) => (task, offsets, limit),
            (slot, _) => return slot.free().await.map(Some),
        };
        match tokio::time::timeout(limit, &mut task).await {
            Ok(joined) => Self::joined(joined, &offsets).map(Some),
            Err(_) => {
                task.abort();
                warn!(
                    offsets,
                    seconds = limit.as_secs(),
                    "stopping without the batch committing (it did not land in time); a restart reads it again from the table"
                );
                Ok(None)
            }
        }
    }

    fn joined(
        joined: Result<(Box<Committer>, Result<Outcome>), JoinError>,
        offsets: &str,
    ) -> Result<(Box<Committer>, Option<Outcome>)> {
        match joined {
            Ok((c, outcome)) => Ok((c, Some(outcome?))),
            Err(e) => Err(commit_task_failed(e, offsets)),
        }
    }
}

/// The commit task died (a panic, say inside delta-rs) and took the committer with it: log it
/// with the batch's offsets and return the error that ends the process (exit code 1, one
/// `error: ` line). Retrying would most likely panic again on the same batch, and nothing of
/// it was acknowledged, so a restart after the fix re-reads it from the table's offsets.
fn commit_task_failed(err: JoinError, offsets: &str) -> anyhow::Error {
    let cause = if err.is_panic() {
        let payload = err.into_panic();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string());
        format!("panicked: {}", message.replace('\n', " "))
    } else {
        "was cancelled".to_string()
    };
    error!(offsets, cause, "the commit task died; stopping");
    anyhow!(
        "the commit of the batch at offsets {offsets} {cause}; nothing of it was acknowledged: \
         restart after fixing the cause, and the batch is read again from the table's offsets"
    )
}

/// Fill batch N+1 while batch N commits; stop on a signal, or at the end with `--stop-at-end`.
async fn pipeline(reader: &mut Reader, committer: Committer) -> Result<Summary> {
    let started = Instant::now();
    let shutdown = shutdown_signal();
    let mut slot = Slot::Free(Box::new(committer));
    loop {
        let (filled, signalled) = {
            // With nothing left to read (`--stop-at-end`), keep polling briefly anyway: the
            // group may still hand this worker partitions another worker has not finished.
            let busy = matches!(slot, Slot::Busy(..)) || reader.reached_targets();
            // The reader polls Kafka on this thread; the committer runs on the workers.
            let (pending, signalled) = tokio::task::block_in_place(|| reader.fill(&shutdown, busy));
            if let Some(fatal) = reader.take_fatal() {
                return Err(fatal);
            }
            (Some(pending).filter(|p| p.messages > 0), signalled)
        };
        let waiting = Instant::now();
        let Some((mut committer, outcome)) = slot.free_within(grace(signalled)).await? else {
            return Ok(abandoned(started));
        };
        if filled.is_some() {
            committer.summary.waited_for_commits_s += waiting.elapsed().as_secs_f64();
        }
        // A rebalance seen while filling: the committer learns the new partitions' txn
        // versions before any batch of theirs reaches it.
        let changes = reader.take_changes();
        committer.apply(&changes);
        let mut reseek = false;
        match outcome {
            None => {}
            Some(Outcome::Committed(offsets)) => {
                reader.acknowledge(&offsets);
                reader.dead_lettered(&committer.dead_offsets);
            }
            // The batch just filled was read behind the dropped one: drop it too.
            Some(Outcome::Superseded) => reseek = true,
        }
        let revoked = revoked_in(&changes);
        if filled
            .as_ref()
            .is_some_and(|p| p.offsets.ranges().keys().any(|k| revoked.contains(k)))
        {
            info!(partitions = ?revoked, "dropping the batch being filled: it holds revoked partitions");
            reseek = true;
        }
        if reseek {
            let dead_offsets = committer.dead_offsets.clone();
            reader.reseek(&committer.held, dead_offsets).await;
        }
        let keep = !reseek;
        let filled = filled.filter(|_| keep);
        let idle = filled.is_none();
        slot = match filled {
            Some(pending) => Slot::commit(committer, pending),
            None => Slot::Free(committer),
        };
        if signalled {
            return finish(slot, reader, started, signalled).await;
        }
        // `--stop-at-end`: this worker has read its partitions to the end, and the table holds
        // every partition of the topic to the end (the other workers' too: a worker whose
        // partitions moved away must not leave them unfinished).
        if idle
            && reader.reached_targets()
            && let (Slot::Free(committer), Some(targets)) = (&mut slot, reader.targets())
            && committer.holds(targets).await
        {
            return finish(slot, reader, started, signalled).await;
        }
    }
}

/// A partition whose end (high watermark) is below the offsets the table holds of it: the
/// topic was recreated since. `(partition, txn version, high watermark)`.
fn behind_the_table(
    marks: &BTreeMap<i32, (i64, i64)>,
    held: &offsets::TableOffsets,
) -> Option<(i32, i64, i64)> {
    marks.iter().find_map(|(p, (_, high))| {
        let version = held.get(p).copied().flatten()?;
        (*high < version + 1).then_some((*p, version, *high))
    })
}

/// The partitions revoked by `changes`.
fn revoked_in(changes: &[Change]) -> BTreeSet<i32> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Revoked(ps) => Some(ps.iter().copied()),
            Change::Assigned(_) => None,
        })
        .flatten()
        .collect()
}

/// How long to wait for a commit: unbounded, or [`SHUTDOWN_GRACE`] once a signal came.
fn grace(signalled: bool) -> Option<Duration> {
    signalled.then_some(SHUTDOWN_GRACE)
}

/// The summary of a run stopped without its last commit.
fn abandoned(started: Instant) -> Summary {
    Summary {
        seconds: started.elapsed().as_secs_f64(),
        ..Summary::default()
    }
}

/// Leave the consumer group (dropping the consumer closes it, so its partitions move to the
/// other workers at once instead of after the session timeout), waiting at most
/// [`LEAVE_TIMEOUT`]: the process exits anyway.
fn leave_group(reader: Reader) {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("leave-group".into())
        .spawn(move || {
            drop(reader);
            let _ = tx.send(());
        });
    if spawned.is_ok() && rx.recv_timeout(LEAVE_TIMEOUT).is_err() {
        warn!(
            seconds = LEAVE_TIMEOUT.as_secs(),
            "leaving the consumer group took too long; exiting without it (the group notices after its session timeout)"
        );
    }
}

/// Wait for the last batch's commit and report. After a signal the wait is bounded by
/// [`SHUTDOWN_GRACE`]: a commit that keeps failing (S3 down) is abandoned, unacknowledged.
async fn finish(
    slot: Slot,
    reader: &mut Reader,
    started: Instant,
    signalled: bool,
) -> Result<Summary> {
    let Some((mut committer, outcome)) = slot.free_within(grace(signalled)).await? else {
        return Ok(abandoned(started));
    };
    match outcome {
        Some(Outcome::Committed(offsets)) => reader.acknowledge(&offsets),
        Some(Outcome::Superseded) => {
            warn!("the last batch was already in the table; a restart resumes after it");
        }
        None => {}
    }
    info!("stopped after committing the last batch");
    committer.summary.seconds = started.elapsed().as_secs_f64();
    committer.settle_checkpoints(SHUTDOWN_GRACE).await;
    committer.summary.version = commit::version_of(&committer.bronze.table);
    Ok(std::mem::take(&mut committer.summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::one_line;

    #[test]
    fn a_topic_that_ends_before_the_table_was_recreated() {
        let marks = BTreeMap::from([(0, (0, 100)), (1, (0, 5))]);
        let held = BTreeMap::from([(0, Some(99)), (1, Some(40))]);
        assert_eq!(behind_the_table(&marks, &held), Some((1, 40, 5)));
        let fine = BTreeMap::from([(0, Some(99)), (1, None)]);
        assert_eq!(behind_the_table(&marks, &fine), None);
    }

    #[tokio::test]
    async fn a_panicking_commit_task_ends_the_process_with_one_line_naming_the_batch() {
        let task = tokio::spawn(async {
            panic!("called `Option::unwrap()` on a `None` value\nin hive_partition_path")
        });
        let slot = Slot::Busy(task, "0:[10..20] 2:[7..9]".to_string());
        let err = slot.free().await.err().expect("a panic is an error");
        let line = one_line(&err);
        assert!(
            line.contains("offsets 0:[10..20] 2:[7..9] panicked"),
            "{line}"
        );
        assert!(
            line.contains("unwrap()` on a `None` value in hive_partition_path"),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
    }
}
