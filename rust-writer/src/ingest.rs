//! `ingest`: Kafka -> bronze Delta table, exactly once.
//!
//! The loop, one batch at a time:
//! 1. **fill**: consume messages into Arrow builders (valid rows) and a dead-letter list until
//!    the flush rule says the batch is due (messages, payload bytes or age);
//! 2. **dead letters**: commit the batch's malformed messages to the dead-letter table, with
//!    txn actions for the partitions the batch covers;
//! 3. **bronze**: write one Parquet file per date and commit their `add` actions together with
//!    one txn action per partition (`version` = last offset of the batch) in ONE Delta commit;
//! 4. **acknowledge**: only now commit the offsets to Kafka (for lag tools), update metrics and
//!    checkpoint every `--checkpoint-every` commits.
//!
//! A crash anywhere leaves the table at a commit boundary, and a restart resumes each partition
//! at its txn version + 1. Commit conflicts with the compactor are resolved by delta-rs's
//! conflict checker (appends and `dataChange: false` rewrites do not conflict). If the table
//! already holds a batch's offsets (another writer, or our own commit whose response was lost),
//! the batch is dropped and the partitions re-sought from the table. Any other failure (S3 or
//! Kafka down) is retried with backoff, writing fresh Parquet files on each attempt so that a
//! vacuum during a long outage cannot delete files a late commit would reference.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use delta_kernel::expressions::Scalar;
use deltalake::DeltaTable;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::kernel::Action;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::RecordBatchWriter;
use indexmap::IndexMap;
use prometheus_client::registry::Registry;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::batch::{BronzeRows, FlushPolicy};
use crate::commit::{self, Committed, PartitionValues};
use crate::config::{IngestArgs, table_name};
use crate::dead_letters::{self, DeadLetter};
use crate::decode::decode;
use crate::errors::startup;
use crate::kafka;
use crate::metrics::{IngestMetrics, PartitionLabel};
use crate::offsets::{self, BatchOffsets, TableOffsets};
use crate::retry::Backoff;
use crate::schema::{self, DATE_COLUMN};
use crate::startup::{open_table, shutdown_signal};

/// Default metrics port of `ingest`.
pub const METRICS_PORT: u16 = 9464;

/// Conflicts delta-rs may resolve per commit before handing the error to us.
const COMMIT_RETRIES: usize = 15;

/// How often the watermarks for the lag metric are polled (on a client of their own).
const WATERMARK_INTERVAL: Duration = Duration::from_millis(200);

/// How often the lag gauge is recomputed while consuming, not only at commit: a batch fills
/// for up to `--flush-ms`, and a gauge refreshed only at commit time reads about 0 at the tail
/// of a stream while the table is a whole batch behind.
const LAG_UPDATE: Duration = Duration::from_millis(250);

/// The one JSON line printed by `--stop-at-end`.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub messages: u64,
    pub rows: u64,
    pub dead_letters: u64,
    pub batches: u64,
    pub seconds: f64,
    pub version: i64,
}

/// One batch being filled.
struct Pending {
    rows: BronzeRows,
    dead: Vec<DeadLetter>,
    offsets: BatchOffsets,
    messages: usize,
    bytes: usize,
    started: Option<Instant>,
    oldest_kafka_ts_us: Option<i64>,
}

impl Pending {
    fn new(capacity: usize) -> Self {
        Self {
            rows: BronzeRows::new(capacity),
            dead: Vec::new(),
            offsets: BatchOffsets::default(),
            messages: 0,
            bytes: 0,
            started: None,
            oldest_kafka_ts_us: None,
        }
    }

    fn age(&self) -> Duration {
        self.started.map_or(Duration::ZERO, |t| t.elapsed())
    }
}

/// What happened to a batch's bronze commit.
enum Outcome {
    Committed {
        commit: Committed,
        files: usize,
        bytes: u64,
    },
    /// The table already holds (some of) these offsets: batch dropped, re-seek from the table.
    Superseded(TableOffsets),
}

/// Run `ingest` until a signal, or until the end of the topic with `--stop-at-end`.
pub async fn run(args: IngestArgs) -> Result<()> {
    let mut registry = Registry::default();
    let metrics = IngestMetrics::register(&mut registry);
    let mut ingest = Ingest::start(args, metrics).await?;
    crate::metrics::serve(ingest.args.common.metrics_addr_or(METRICS_PORT), registry).await?;
    ingest.metrics.ready.set(1);
    let summary = ingest.run().await?;
    if ingest.args.stop_at_end {
        println!("{}", serde_json::to_string(&summary)?);
    }
    Ok(())
}

struct Ingest {
    args: IngestArgs,
    topic: String,
    consumer: StreamConsumer,
    partitions: Vec<i32>,
    bronze: DeltaTable,
    bronze_schema: SchemaRef,
    dead: DeltaTable,
    dead_schema: SchemaRef,
    /// The bronze table's txn versions as of the loaded snapshot: updated by our own commits,
    /// re-read from the log only after a failed or conflicting commit.
    held: TableOffsets,
    /// The dead-letter table's txn versions (what it already holds).
    dead_offsets: TableOffsets,
    /// Next offset to commit per partition (`None`: from the beginning).
    next: BTreeMap<i32, Option<i64>>,
    /// With `--stop-at-end`: per partition, (low, high) watermarks seen at start.
    targets: Option<BTreeMap<i32, (i64, i64)>>,
    policy: FlushPolicy,
    metrics: IngestMetrics,
    commits_since_checkpoint: u64,
    watermarks: kafka::Watermarks,
    /// When the lag gauge was last recomputed.
    lag_updated: Instant,
    summary: Summary,
}

impl Ingest {
    /// Everything that can fail with a start-up error: Kafka, the topic, both tables.
    async fn start(args: IngestArgs, metrics: IngestMetrics) -> Result<Self> {
        let table_uri = args.common.table_uri()?;
        let name = table_name(&table_uri).to_string();
        let dead_uri = args
            .dead_letter_uri
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| format!("{table_uri}_dead_letters"));
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

        let consumer: StreamConsumer = kafka::create(&bootstrap, &group_id)?;
        let partitions =
            tokio::task::block_in_place(|| kafka::partitions(&consumer, &bootstrap, &topic))?;

        let bronze = open_table(&table_uri, &args.common.s3, &schema::bronze(), &name).await?;
        let dead_name = format!("{name}_dead_letters");
        let dead = open_table(
            &dead_uri,
            &args.common.s3,
            &schema::dead_letters(),
            &dead_name,
        )
        .await?;
        let bronze_schema = RecordBatchWriter::for_table(&bronze)?.arrow_schema();
        let dead_schema = RecordBatchWriter::for_table(&dead)?.arrow_schema();

        let app = args.app_id.clone();
        let table_offsets = offsets::read_table_offsets(&bronze, &app, &topic, &partitions).await?;
        let dead_offsets = offsets::read_table_offsets(&dead, &app, &topic, &partitions).await?;
        let next: BTreeMap<i32, Option<i64>> = table_offsets
            .iter()
            .map(|(p, v)| (*p, offsets::resume_at(*v)))
            .collect();

        let targets = if args.stop_at_end {
            let marks = tokio::task::block_in_place(|| {
                partitions
                    .iter()
                    .map(|&p| {
                        consumer
                            .fetch_watermarks(&topic, p, kafka::STARTUP_TIMEOUT)
                            .map(|w| (p, w))
                    })
                    .collect::<Result<BTreeMap<_, _>, _>>()
            });
            match marks {
                Ok(m) => Some(m),
                Err(e) => {
                    return startup(format!(
                        "cannot read the end offsets of '{topic}' from {bootstrap}: {e}: check the broker"
                    ));
                }
            }
        } else {
            None
        };

        kafka::assign(&consumer, &topic, &next).context("assigning partitions")?;
        let watermarks = kafka::spawn_watermark_poller(
            &bootstrap,
            &group_id,
            &topic,
            &partitions,
            WATERMARK_INTERVAL,
        )?;
        let version = commit::version_of(&bronze);
        metrics.table_version.set(version);
        info!(
            table = %table_uri, dead_letters = %dead_uri, topic = %topic, group_id = %group_id,
            partitions = ?partitions, resume = ?next, version, "ingest ready"
        );
        let policy = FlushPolicy {
            max_messages: args.flush_rows,
            max_bytes: args.flush_bytes,
            max_age: Duration::from_millis(args.flush_ms),
        };
        Ok(Self {
            topic,
            consumer,
            partitions,
            bronze,
            bronze_schema,
            dead,
            dead_schema,
            dead_offsets,
            held: table_offsets,
            next,
            targets,
            policy,
            metrics,
            commits_since_checkpoint: 0,
            watermarks,
            lag_updated: Instant::now(),
            summary: Summary {
                version,
                ..Summary::default()
            },
            args,
        })
    }

    async fn run(&mut self) -> Result<Summary> {
        let started = Instant::now();
        let mut shutdown = shutdown_signal();
        loop {
            if self.reached_targets(None) {
                break;
            }
            let (pending, stop) = self.fill(&mut shutdown).await;
            if pending.messages > 0 {
                self.commit_batch(pending).await?;
            }
            if stop {
                info!("shutting down after committing the last batch");
                break;
            }
        }
        self.summary.seconds = started.elapsed().as_secs_f64();
        self.summary.version = commit::version_of(&self.bronze);
        Ok(std::mem::take(&mut self.summary))
    }

    /// With `--stop-at-end`: is every partition consumed (or, with `pending`, buffered) up to
    /// its high watermark seen at start?
    fn reached_targets(&self, pending: Option<&Pending>) -> bool {
        let Some(targets) = &self.targets else {
            return false;
        };
        targets.iter().all(|(p, (low, high))| {
            let buffered = pending
                .and_then(|b| b.offsets.ranges().get(p))
                .map(|r| r.last + 1);
            let committed = self.next.get(p).copied().flatten().unwrap_or(*low);
            buffered.unwrap_or(committed).max(committed) >= *high
        })
    }

    /// Consume until the batch is due, the end is reached, or a shutdown signal arrives.
    async fn fill(&mut self, shutdown: &mut watch::Receiver<bool>) -> (Pending, bool) {
        let capacity = self.args.flush_rows.min(1 << 20);
        let mut pending = Pending::new(capacity);
        loop {
            if *shutdown.borrow() {
                return (pending, true);
            }
            let wait = if pending.messages == 0 {
                Duration::from_secs(1)
            } else {
                self.policy.time_left(pending.age())
            };
            tokio::select! {
                biased;
                _ = shutdown.changed() => return (pending, true),
                received = tokio::time::timeout(wait, self.consumer.recv()) => match received {
                    Ok(Ok(message)) => {
                        let partition = message.partition();
                        let offset = message.offset();
                        self.add(&mut pending, &message);
                        let at_end = self.targets.as_ref()
                            .and_then(|t| t.get(&partition))
                            .is_some_and(|(_, high)| offset + 1 >= *high);
                        if at_end && self.reached_targets(Some(&pending)) {
                            return (pending, false);
                        }
                    }
                    Ok(Err(e)) => warn!(error = %e, "Kafka consumer error (librdkafka retries)"),
                    Err(_timer) => {}
                }
            }
            if self.lag_updated.elapsed() >= LAG_UPDATE {
                self.update_lag();
            }
            if self
                .policy
                .is_due(pending.messages, pending.bytes, pending.age())
            {
                return (pending, false);
            }
        }
    }

    /// Decode one message into the batch: a row, a dead letter, or nothing (already stored).
    fn add(&self, pending: &mut Pending, message: &BorrowedMessage<'_>) {
        let partition = message.partition();
        let offset = message.offset();
        let payload = message.payload();
        let kafka_ts = kafka::timestamp_us(message.timestamp());
        if pending.started.is_none() {
            pending.started = Some(Instant::now());
        }
        pending.messages += 1;
        pending.bytes += payload.map_or(0, <[u8]>::len);
        pending.offsets.record(partition, offset);
        if let Some(ts) = kafka_ts {
            pending.oldest_kafka_ts_us = Some(pending.oldest_kafka_ts_us.map_or(ts, |o| o.min(ts)));
        }
        self.metrics.messages.inc();
        let decoded = match payload {
            Some(bytes) => decode(bytes),
            None => Err("message has no payload (null value)".to_string()),
        };
        match decoded {
            Ok(signal) => pending.rows.append(&signal, partition, offset, kafka_ts),
            Err(reason) => {
                if !dead_letters::already_dead_lettered(&self.dead_offsets, partition, offset) {
                    pending.dead.push(DeadLetter {
                        partition,
                        offset,
                        payload: payload.unwrap_or_default().to_vec(),
                        reason,
                        received_at_us: chrono::Utc::now().timestamp_micros(),
                    });
                }
            }
        }
    }

    /// Steps 2-4 of the loop for one batch.
    async fn commit_batch(&mut self, pending: Pending) -> Result<()> {
        let started = Instant::now();
        let Pending {
            rows,
            dead,
            offsets,
            messages,
            oldest_kafka_ts_us,
            ..
        } = pending;
        self.summary.messages += messages as u64;
        let row_count = rows.len();
        let dead_count = dead.len();
        let parts: Vec<(PartitionValues, _)> = rows
            .finish(&self.bronze_schema)?
            .into_iter()
            .map(|(date, batch)| {
                let values: PartitionValues =
                    IndexMap::from([(DATE_COLUMN.to_string(), Scalar::Date(date))]);
                (values, batch)
            })
            .collect();

        if !dead.is_empty() {
            self.commit_dead_letters(dead, &offsets).await?;
        }
        match self.commit_bronze(&parts, &offsets).await? {
            Outcome::Committed {
                commit,
                files,
                bytes,
            } => {
                let seconds = started.elapsed().as_secs_f64();
                self.acknowledge(&offsets);
                self.record_commit(commit, row_count, bytes, seconds, oldest_kafka_ts_us);
                info!(
                    version = commit.version, rows = row_count, dead_letters = dead_count,
                    files, bytes, seconds, conflicts = commit.conflicts_resolved,
                    offsets = %describe(&offsets), "committed batch"
                );
                self.maybe_checkpoint().await;
            }
            Outcome::Superseded(table_offsets) => {
                warn!(
                    offsets = %describe(&offsets), table = ?table_offsets,
                    "the table already holds these offsets: batch dropped, re-seeking"
                );
                self.reseek(table_offsets).await;
            }
        }
        Ok(())
    }

    /// Commit dead letters (before the bronze commit of the same batch). Retries until done.
    async fn commit_dead_letters(
        &mut self,
        mut dead: Vec<DeadLetter>,
        offsets: &BatchOffsets,
    ) -> Result<()> {
        let app = self.args.app_id.clone();
        let mut backoff = Backoff::for_io();
        loop {
            let batch = dead_letters::to_record_batch(&self.topic, &dead, &self.dead_schema)?;
            let attempt = async {
                let adds =
                    commit::write_files(&self.dead, [(IndexMap::new(), batch)], None).await?;
                let mut actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
                actions.extend(
                    offsets
                        .txn_actions(&app, &self.topic)
                        .into_iter()
                        .map(Action::Txn),
                );
                Ok::<_, anyhow::Error>(actions)
            }
            .await;
            let result = match attempt {
                Ok(actions) => commit::commit(&mut self.dead, actions, append(), COMMIT_RETRIES)
                    .await
                    .map_err(anyhow::Error::from),
                Err(e) => Err(e),
            };
            match result {
                Ok(c) => {
                    for (p, r) in offsets.ranges() {
                        self.dead_offsets.insert(*p, Some(r.last));
                    }
                    self.metrics.dead_letters.inc_by(dead.len() as u64);
                    self.summary.dead_letters += dead.len() as u64;
                    info!(
                        version = c.version,
                        dead_letters = dead.len(),
                        "committed dead letters"
                    );
                    return Ok(());
                }
                Err(e) => {
                    warn!(
                        error = format!("{e:#}"),
                        attempt = backoff.attempts(),
                        "dead-letter commit failed; retrying"
                    );
                    backoff.wait().await;
                    if commit::refresh(&mut self.dead).await.is_ok() {
                        // Another writer may have stored some of them meanwhile.
                        if let Ok(held) = offsets::read_table_offsets(
                            &self.dead,
                            &app,
                            &self.topic,
                            &self.partitions,
                        )
                        .await
                        {
                            dead.retain(|d| {
                                !dead_letters::already_dead_lettered(&held, d.partition, d.offset)
                            });
                            self.dead_offsets = held;
                            if dead.is_empty() {
                                return Ok(());
                            }
                        }
                    }
                }
            }
        }
    }

    /// Commit the rows and txn actions in one Delta commit. Retries until committed or
    /// superseded.
    async fn commit_bronze(
        &mut self,
        parts: &[(PartitionValues, deltalake::arrow::record_batch::RecordBatch)],
        offsets: &BatchOffsets,
    ) -> Result<Outcome> {
        let app = self.args.app_id.clone();
        let mut backoff = Backoff::for_io();
        let mut reload = false;
        loop {
            if reload {
                // After a failure or a conflict the snapshot may be stale: reload it and re-read
                // what the table holds before deciding whether this batch is still ours to write.
                let reread = match commit::refresh(&mut self.bronze).await {
                    Ok(()) => {
                        offsets::read_table_offsets(
                            &self.bronze,
                            &app,
                            &self.topic,
                            &self.partitions,
                        )
                        .await
                    }
                    Err(e) => Err(e),
                };
                match reread {
                    Ok(held) => self.held = held,
                    Err(e) => {
                        warn!(
                            error = format!("{e:#}"),
                            "reloading the table failed; retrying"
                        );
                        backoff.wait().await;
                        continue;
                    }
                }
            }
            reload = true;
            if !offsets.already_committed(&self.held).is_empty() {
                return Ok(Outcome::Superseded(self.held.clone()));
            }
            let adds = if parts.is_empty() {
                Ok(Vec::new())
            } else {
                commit::write_files(&self.bronze, parts.iter().cloned(), None).await
            };
            let adds = match adds {
                Ok(adds) => adds,
                Err(e) => {
                    warn!(
                        error = format!("{e:#}"),
                        attempt = backoff.attempts(),
                        "writing Parquet failed; retrying"
                    );
                    backoff.wait().await;
                    continue;
                }
            };
            let files = adds.len();
            let bytes: u64 = adds.iter().map(|a| a.size.max(0) as u64).sum();
            let mut actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
            actions.extend(
                offsets
                    .txn_actions(&app, &self.topic)
                    .into_iter()
                    .map(Action::Txn),
            );
            match commit::commit(&mut self.bronze, actions, append(), COMMIT_RETRIES).await {
                Ok(commit) => {
                    return Ok(Outcome::Committed {
                        commit,
                        files,
                        bytes,
                    });
                }
                Err(e) => {
                    if commit::is_conflict(&e) {
                        self.metrics.commit_conflicts.inc();
                    }
                    warn!(
                        error = %e, conflict = commit::is_conflict(&e), attempt = backoff.attempts(),
                        "bronze commit failed; reloading the table and retrying with fresh files"
                    );
                    if !commit::is_conflict(&e) {
                        backoff.wait().await;
                    }
                }
            }
        }
    }

    /// After a successful bronze commit: move positions on and tell Kafka (for lag tools).
    fn acknowledge(&mut self, offsets: &BatchOffsets) {
        let mut list = TopicPartitionList::new();
        for (p, r) in offsets.ranges() {
            self.held.insert(*p, Some(r.last));
            self.next.insert(*p, Some(r.last + 1));
            if let Err(e) = list.add_partition_offset(&self.topic, *p, Offset::Offset(r.last + 1)) {
                warn!(error = %e, partition = p, "building the Kafka offset commit");
            }
        }
        if let Err(e) = self.consumer.commit(&list, CommitMode::Async) {
            warn!(error = %e, "committing offsets to Kafka failed (monitoring only; the table is the source of truth)");
        }
    }

    fn record_commit(
        &mut self,
        commit: Committed,
        rows: usize,
        bytes: u64,
        seconds: f64,
        oldest_kafka_ts_us: Option<i64>,
    ) {
        let m = &self.metrics;
        m.rows.inc_by(rows as u64);
        m.batches.inc();
        m.bytes.inc_by(bytes);
        m.commit_seconds.observe(seconds);
        m.commit_conflicts.inc_by(commit.conflicts_resolved);
        m.table_version.set(commit.version);
        if let Some(oldest) = oldest_kafka_ts_us {
            let now = chrono::Utc::now().timestamp_micros();
            m.freshness_seconds.set((now - oldest) as f64 / 1e6);
        }
        for (p, next) in &self.next {
            if let Some(next) = next {
                m.committed_offset
                    .get_or_create(&PartitionLabel::new(*p))
                    .set(next - 1);
            }
        }
        self.update_lag();
        self.summary.rows += rows as u64;
        self.summary.batches += 1;
    }

    /// Consumer lag per partition: the latest high watermark (polled in the background every
    /// 200 ms) minus the next offset to commit to Delta. Called after every commit and at least
    /// every 250 ms while a batch fills, so it tracks the broker while catching up.
    fn update_lag(&mut self) {
        self.lag_updated = Instant::now();
        let marks = self.watermarks.get();
        for (p, next) in &self.next {
            if let Some(&(low, high)) = marks.get(p) {
                self.metrics
                    .consumer_lag
                    .get_or_create(&PartitionLabel::new(*p))
                    .set(kafka::lag(low, high, *next));
            }
        }
    }

    async fn maybe_checkpoint(&mut self) {
        self.commits_since_checkpoint += 1;
        if self.args.checkpoint_every == 0
            || self.commits_since_checkpoint < self.args.checkpoint_every
        {
            return;
        }
        let started = Instant::now();
        match commit::checkpoint(&self.bronze).await {
            Ok(()) => {
                self.commits_since_checkpoint = 0;
                info!(
                    version = commit::version_of(&self.bronze),
                    seconds = started.elapsed().as_secs_f64(),
                    "checkpoint written"
                );
            }
            Err(e) => warn!(
                error = format!("{e:#}"),
                "checkpoint failed; will try again after the next commit"
            ),
        }
    }

    /// Drop what was buffered and restart every partition from what the table holds.
    async fn reseek(&mut self, held: TableOffsets) {
        let app = self.args.app_id.clone();
        self.next = held
            .iter()
            .map(|(p, v)| (*p, offsets::resume_at(*v)))
            .collect();
        self.held = held;
        let mut backoff = Backoff::for_io();
        loop {
            let dead = match commit::refresh(&mut self.dead).await {
                Ok(()) => {
                    offsets::read_table_offsets(&self.dead, &app, &self.topic, &self.partitions)
                        .await
                }
                Err(e) => Err(e),
            };
            match dead {
                Ok(dead) => {
                    self.dead_offsets = dead;
                    break;
                }
                Err(e) => {
                    warn!(
                        error = format!("{e:#}"),
                        "re-reading the dead-letter offsets failed; retrying"
                    );
                    backoff.wait().await;
                }
            }
        }
        let mut backoff = Backoff::for_io();
        while let Err(e) = kafka::assign(&self.consumer, &self.topic, &self.next) {
            warn!(error = %e, "re-assigning partitions failed; retrying");
            backoff.wait().await;
        }
    }
}

/// The Delta operation of a bronze or dead-letter commit: a blind append.
fn append() -> DeltaOperation {
    DeltaOperation::Write {
        mode: SaveMode::Append,
        partition_by: None,
        predicate: None,
    }
}

/// `0:[10..20] 1:[5..9]` for logs.
fn describe(offsets: &BatchOffsets) -> String {
    offsets
        .ranges()
        .iter()
        .map(|(p, r)| format!("{p}:[{}..{}]", r.first, r.last))
        .collect::<Vec<_>>()
        .join(" ")
}
