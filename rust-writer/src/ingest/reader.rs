//! The consuming half of `ingest`: Kafka messages -> a [`Pending`] batch, until it is due.
//!
//! The reader owns the Kafka consumer, a member of the writer's consumer group. It decodes each
//! message into the batch's Arrow builders (or its dead-letter list), tracks how far it has
//! read in each partition it owns, keeps the lag gauge fresh, tells Kafka what the table has
//! committed (for lag tools only) and re-seeks when the committer finds the table already
//! holds a batch. A rebalance (see `group.rs`) happens inside `poll`; the reader takes the
//! new partitions' start positions at once and returns the batch early, so that the pipeline
//! can drop it if it holds a revoked partition.
//!
//! Consuming is a plain blocking loop: [`kafka::poll_next`] on a `BaseConsumer`, the clock and
//! the shutdown signal looked at every [`CHECK_EVERY`] messages or whenever the queue runs dry.
//! It runs on the thread that drives the pipeline (through `block_in_place`). The reader does
//! not decode: it copies each payload into a chunk, and full chunks go to the decoder threads
//! (see `decoders.rs`), while the committer encodes and uploads on the runtime's workers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::decoders::{self, Chunk, Ticket};
use super::group::{Change, GroupContext};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tracing::warn;

use crate::batch::{FlushPolicy, backdate};
use crate::config::OffsetReset;
use crate::kafka;
use crate::metrics::{IngestMetrics, PartitionLabel};
use crate::offsets::{self, BatchOffsets, TableOffsets};
use crate::retry::Backoff;

/// How often the lag gauge is recomputed while consuming, not only at commit: a batch fills
/// for up to `--flush-ms`, and a gauge refreshed only at commit time reads about 0 at the tail
/// of a stream while the table is a whole batch behind.
const LAG_UPDATE: Duration = Duration::from_millis(250);

/// How long an empty batch waits for a message while the committer is busy before `fill`
/// returns anyway, so that the commit in flight is acknowledged (Kafka offsets, lag gauge)
/// soon after it lands even when the stream has stopped.
const IDLE_WHILE_COMMITTING: Duration = Duration::from_millis(100);

/// Messages consumed between two looks at the clock (batch age, lag gauge) and at the shutdown
/// signal while messages keep coming; an empty queue triggers a look at once. At the measured
/// catch-up rates this is a few milliseconds of consuming.
const CHECK_EVERY: usize = 1024;

/// One batch being filled.
pub struct Pending {
    /// Its messages, decoded (or being decoded) chunk by chunk, in the order consumed.
    pub chunks: Vec<Ticket>,
    /// The chunk being copied into; handed to a decoder when full or when the batch is due.
    filling: Chunk,
    pub offsets: BatchOffsets,
    pub messages: usize,
    pub bytes: usize,
    /// When the batch's age, and so the `--flush-ms` rule, starts: when its first message was
    /// consumed, backdated by the time that message waited while the reader was paused (see
    /// [`backdate`]). The reader keeps consuming while the previous batch commits, so outside
    /// that pause this is within milliseconds of the message's arrival at the broker.
    pub started: Option<Instant>,
    pub oldest_kafka_ts_us: Option<i64>,
}

impl Pending {
    pub(crate) fn new() -> Self {
        Self {
            chunks: Vec::new(),
            filling: Chunk::default(),
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

pub struct Reader {
    consumer: BaseConsumer<GroupContext>,
    topic: String,
    policy: FlushPolicy,
    /// The decoder threads the batch's chunks go to.
    decoders: decoders::Pool,
    metrics: IngestMetrics,
    /// With `--stop-at-end`: per partition, (low, high) watermarks seen at start.
    targets: Option<BTreeMap<i32, (i64, i64)>>,
    /// Next offset to read per partition this worker owns (`None`: where `reset` says). Runs
    /// ahead of the table by up to two batches: the one committing and the one filling. Its
    /// keys are the partitions owned.
    position: BTreeMap<i32, Option<i64>>,
    /// Next offset the table still needs per partition owned (what the lag gauge counts from).
    committed: BTreeMap<i32, Option<i64>>,
    /// Where a partition the table holds nothing of starts.
    reset: OffsetReset,
    /// Has the group assigned partitions at least once (`--stop-at-end` waits for it)?
    assigned_once: bool,
    /// Rebalance events seen since the pipeline last asked ([`Reader::take_changes`]).
    changes: Vec<Change>,
    /// A reason to stop that the pipeline picks up after `fill` ([`Reader::take_fatal`]).
    fatal: Option<anyhow::Error>,
    /// The dead-letter table's txn versions: messages at or below them are already stored
    /// (shared with the decoders, which skip those).
    dead_offsets: Arc<TableOffsets>,
    watermarks: kafka::Watermarks,
    /// When the lag gauge was last recomputed.
    lag_updated: Instant,
    /// When the last `fill` returned: from then until the next one starts the reader does not
    /// consume (it hands the batch over, waiting for the committer if it is busy).
    paused_at: Option<Instant>,
}

impl Reader {
    /// A reader whose consumer has subscribed to the topic; it owns no partition until the
    /// group assigns some (inside the first polls).
    #[allow(clippy::too_many_arguments)] // each part is one the reader owns or reports to
    pub fn new(
        consumer: BaseConsumer<GroupContext>,
        topic: String,
        policy: FlushPolicy,
        decoders: decoders::Pool,
        metrics: IngestMetrics,
        targets: Option<BTreeMap<i32, (i64, i64)>>,
        reset: OffsetReset,
        watermarks: kafka::Watermarks,
    ) -> Self {
        Self {
            consumer,
            topic,
            policy,
            decoders,
            metrics,
            targets,
            position: BTreeMap::new(),
            committed: BTreeMap::new(),
            reset,
            assigned_once: false,
            changes: Vec::new(),
            fatal: None,
            dead_offsets: Arc::new(TableOffsets::new()),
            watermarks,
            lag_updated: Instant::now(),
            paused_at: None,
        }
    }

    /// With `--stop-at-end`: has every partition this worker owns been read up to its high
    /// watermark seen at start? (Read, not committed: the last batches may still be on their
    /// way to the table.) Never before the group's first assignment.
    pub fn reached_targets(&self) -> bool {
        let Some(targets) = &self.targets else {
            return false;
        };
        // A partition without position starts where `--offset-reset` says: its start or end.
        let latest = self.reset == OffsetReset::Latest;
        self.assigned_once
            && self.position.iter().all(|(p, next)| {
                targets.get(p).is_none_or(|(low, high)| {
                    next.unwrap_or(if latest { *high } else { *low }) >= *high
                })
            })
    }

    /// With `--stop-at-end`: per partition, the (low, high) watermarks seen at start.
    pub fn targets(&self) -> Option<&BTreeMap<i32, (i64, i64)>> {
        self.targets.as_ref()
    }

    /// Why the reader cannot go on (a partition went back: the topic was recreated), if so.
    pub fn take_fatal(&mut self) -> Option<anyhow::Error> {
        self.fatal.take()
    }

    /// The rebalance events since the last call (already applied to the reader).
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }
}

/// The reader's per-partition state, borrowed apart from the consumer (a polled message
/// borrows the consumer while a rebalance is applied).
struct Owned<'a> {
    position: &'a mut BTreeMap<i32, Option<i64>>,
    committed: &'a mut BTreeMap<i32, Option<i64>>,
    dead_offsets: &'a mut Arc<TableOffsets>,
}

impl Owned<'_> {
    /// Apply the rebalance events the consumer's callback recorded: new partitions start at
    /// their txn version + 1, revoked ones are forgotten (and leave the metrics).
    fn absorb(self, changes: &[Change], metrics: &IngestMetrics) {
        for change in changes {
            match change {
                Change::Assigned(starts) => {
                    for (p, start) in starts {
                        let next = offsets::resume_at(start.bronze);
                        self.position.insert(*p, next);
                        self.committed.insert(*p, next);
                        Arc::make_mut(self.dead_offsets).insert(*p, start.dead);
                        let label = PartitionLabel::new(*p);
                        metrics.assigned_partitions.get_or_create(&label).set(1);
                    }
                }
                Change::Revoked(partitions) => {
                    for p in partitions {
                        self.position.remove(p);
                        self.committed.remove(p);
                        metrics.forget_partition(*p);
                    }
                }
            }
        }
        metrics.rebalances.inc_by(changes.len() as u64);
    }
}

impl Reader {
    /// Consume until the batch is due, the end is reached, or a shutdown signal arrives; with
    /// `committer_busy`, also when no message came for [`IDLE_WHILE_COMMITTING`] (an empty
    /// batch). Returns the batch and whether to stop after it.
    ///
    /// This blocks the calling thread (it polls librdkafka, see [`kafka::poll_next`]): call it
    /// through `tokio::task::block_in_place`. The committer meanwhile runs on the runtime's
    /// workers. A shutdown signal is noticed within [`kafka::POLL_SLICE`] when idle.
    pub fn fill(
        &mut self,
        shutdown: &watch::Receiver<bool>,
        committer_busy: bool,
    ) -> (Pending, bool) {
        let (mut pending, stop) = self.fill_until_due(shutdown, committer_busy);
        self.hand_over(&mut pending);
        self.paused_at = Some(Instant::now());
        (pending, stop)
    }

    /// Send the chunk being filled to a decoder.
    fn hand_over(&self, pending: &mut Pending) {
        if pending.filling.is_empty() {
            return;
        }
        let chunk = std::mem::take(&mut pending.filling);
        self.metrics.messages.inc_by(chunk.len() as u64);
        let ticket = self.decoders.submit(chunk, self.dead_offsets.clone());
        pending.chunks.push(ticket);
    }

    fn fill_until_due(
        &mut self,
        shutdown: &watch::Receiver<bool>,
        committer_busy: bool,
    ) -> (Pending, bool) {
        let began = Instant::now();
        let mut pending = Pending::new();
        // Messages left before the next look at the clock and the signal; 0: look now.
        let mut unchecked = 0;
        loop {
            if unchecked == 0 {
                if *shutdown.borrow() {
                    return (pending, true);
                }
                if pending.messages == 0
                    && committer_busy
                    && began.elapsed() >= IDLE_WHILE_COMMITTING
                {
                    return (pending, false);
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
                unchecked = CHECK_EVERY;
            }
            let wait = || match (pending.messages, committer_busy) {
                (0, true) => IDLE_WHILE_COMMITTING.saturating_sub(began.elapsed()),
                (0, false) => kafka::POLL_SLICE,
                _ => self.policy.time_left(pending.age()),
            };
            let polled = kafka::poll_next(&self.consumer, wait);
            // A rebalance runs inside `poll`: take the new positions before any message of a
            // new partition is added, then (below) hand the batch over.
            let rebalanced = self.consumer.context().changed();
            if rebalanced {
                let changes = self.consumer.context().take();
                let state = Owned {
                    position: &mut self.position,
                    committed: &mut self.committed,
                    dead_offsets: &mut self.dead_offsets,
                };
                state.absorb(&changes, &self.metrics);
                self.assigned_once |= changes.iter().any(|c| matches!(c, Change::Assigned(_)));
                self.changes.extend(changes);
            }
            match polled {
                Some(Ok(message)) if rebalanced => {
                    // Polled together with the rebalance: add it (if still ours), then stop.
                    let (partition, offset) = (message.partition(), message.offset());
                    if self.position.contains_key(&partition) {
                        self.add(&mut pending, &message);
                        self.position.insert(partition, Some(offset + 1));
                    }
                    return (pending, false);
                }
                _ if rebalanced => return (pending, false),
                Some(Ok(message)) => {
                    unchecked -= 1;
                    let partition = message.partition();
                    let offset = message.offset();
                    let Some(position) = self.position.get_mut(&partition) else {
                        // Not ours (any more): its new owner reads it.
                        continue;
                    };
                    let expected = position.replace(offset + 1);
                    if let Some(expected) = expected
                        && offset != expected
                        && let Err(e) = gap(&self.topic, &self.metrics, partition, expected, offset)
                    {
                        self.fatal = Some(e);
                        return (pending, true);
                    }
                    self.add(&mut pending, &message);
                    drop(message); // it borrows the consumer, i.e. `self`
                    let at_end = self
                        .targets
                        .as_ref()
                        .and_then(|t| t.get(&partition))
                        .is_some_and(|(_, high)| offset + 1 >= *high);
                    if at_end && self.reached_targets() {
                        return (pending, false);
                    }
                    if self.policy.is_full(pending.messages, pending.bytes) {
                        return (pending, false);
                    }
                }
                Some(Err(e)) => {
                    warn!(error = %e, "Kafka consumer error (librdkafka retries)");
                    unchecked = 0;
                }
                // The queue is empty (or librdkafka served an event of its own): look now.
                None => unchecked = 0,
            }
        }
    }

    /// Copy one message into the batch's chunk (a decoder makes it a row or a dead letter).
    fn add(&self, pending: &mut Pending, message: &BorrowedMessage<'_>) {
        let partition = message.partition();
        let offset = message.offset();
        let payload = message.payload();
        let kafka_ts = kafka::timestamp_us(message.timestamp());
        if pending.started.is_none() {
            let now = Instant::now();
            let queued = kafka_ts.map(|ts| {
                let waited_us = chrono::Utc::now().timestamp_micros() - ts;
                Duration::from_micros(u64::try_from(waited_us).unwrap_or(0))
            });
            let paused = self.paused_at.map_or(Duration::ZERO, |t| now - t);
            let back = backdate(queued, paused);
            pending.started = Some(now.checked_sub(back).unwrap_or(now));
        }
        pending.messages += 1;
        pending.bytes += payload.map_or(0, <[u8]>::len);
        pending.offsets.record(partition, offset);
        if let Some(ts) = kafka_ts {
            pending.oldest_kafka_ts_us = Some(pending.oldest_kafka_ts_us.map_or(ts, |o| o.min(ts)));
        }
        pending.filling.push(partition, offset, kafka_ts, payload);
        if pending.filling.is_full() {
            self.hand_over(pending);
        }
    }

    /// After a batch's Delta commit: the table now needs the offsets after it. Tell Kafka too
    /// (for lag tools; the table stays the source of truth) and refresh the lag gauge.
    pub fn acknowledge(&mut self, offsets: &BatchOffsets) {
        let mut list = TopicPartitionList::new();
        for (p, r) in offsets.ranges() {
            let Some(committed) = self.committed.get_mut(p) else {
                continue; // revoked meanwhile: its new owner reports it
            };
            *committed = Some(r.last + 1);
            if let Err(e) = list.add_partition_offset(&self.topic, *p, Offset::Offset(r.last + 1)) {
                warn!(error = %e, partition = p, "building the Kafka offset commit");
            }
        }
        if list.count() > 0
            && let Err(e) = self.consumer.commit(&list, CommitMode::Async)
        {
            warn!(error = %e, "committing offsets to Kafka failed (monitoring only; the table is the source of truth)");
        }
        self.update_lag();
    }

    /// Consumer lag per partition: the latest high watermark (polled in the background every
    /// 200 ms) minus the next offset the table needs. Called after every commit and at least
    /// every 250 ms while a batch fills, so it tracks the broker while catching up.
    pub fn update_lag(&mut self) {
        self.lag_updated = Instant::now();
        let marks = self.watermarks.get();
        for (p, next) in &self.committed {
            if let Some(&(low, high)) = marks.get(p) {
                self.metrics
                    .consumer_lag
                    .get_or_create(&PartitionLabel::new(*p))
                    .set(kafka::lag(low, high, *next));
            }
        }
    }

    /// Forget everything read past what the table holds (`held`: the txn versions the
    /// committer expects) and read every partition owned again from there.
    pub async fn reseek(&mut self, held: &TableOffsets, dead_offsets: TableOffsets) {
        let next: BTreeMap<i32, Option<i64>> = self
            .position
            .keys()
            .map(|p| (*p, offsets::resume_at(held.get(p).copied().flatten())))
            .collect();
        self.position = next.clone();
        self.committed = next;
        self.dead_offsets = Arc::new(dead_offsets);
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
        while let Err(e) = kafka::seek(&self.consumer, &self.topic, &self.position, self.reset) {
            warn!(error = %e, attempt = backoff.attempts(), "re-seeking partitions failed; retrying");
            backoff.wait().await;
        }
    }

    /// The dead-letter table grew (the committer stored a batch's dead letters).
    pub fn dead_lettered(&mut self, dead_offsets: &TableOffsets) {
        if *self.dead_offsets != *dead_offsets {
            self.dead_offsets = Arc::new(dead_offsets.clone());
        }
    }
}

/// The partition's next message is not the one expected. Ahead: retention (or log compaction)
/// removed the messages between before they were ingested; they are gone, counted and logged,
/// and the partition goes on from there. Behind: the partition went back, which only a deleted
/// and recreated topic does; the table's offsets belong to the old topic, so going on would
/// mix two topics under one appId: an error.
fn gap(
    topic: &str,
    metrics: &IngestMetrics,
    partition: i32,
    expected: i64,
    offset: i64,
) -> anyhow::Result<()> {
    if offset < expected {
        return Err(anyhow::anyhow!(
            "partition {partition} of topic '{topic}' went back from offset {expected} to \
             {offset}: the topic was deleted and recreated, and the table's offsets belong to \
             the old one; write the new topic to another table (--table), or give it another \
             --app-id"
        ));
    }
    let missing = offset - expected;
    warn!(
        partition,
        first_missing = expected,
        next = offset,
        missing,
        "{missing} offsets of partition {partition} ({expected}..{}) were removed from the topic (retention) before they were ingested",
        offset - 1
    );
    metrics
        .offset_gaps
        .get_or_create(&PartitionLabel::new(partition))
        .inc_by(missing as u64);
    Ok(())
}
