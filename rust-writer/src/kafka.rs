//! Kafka plumbing: the consumer's configuration, the start-up checks, seeking and watermarks.
//!
//! `ingest` subscribes to the topic in a consumer group (cooperative-sticky assignment, see
//! `ingest/group.rs`); the position of each partition it is given comes from the Delta table's
//! txn versions, never from the group's committed offsets, which are written after each Delta
//! commit only so that lag tools see progress. `bench-consume` assigns every partition itself.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use rdkafka::config::{ClientConfig, FromClientConfig, FromClientConfigAndContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Offset, Timestamp, TopicPartitionList};

use crate::config::{KafkaArgs, OffsetReset};
use crate::errors::StartupError;

/// How long start-up waits for the broker before giving up.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Consumer configuration tuned for catch-up throughput with low idle latency.
pub fn consumer_config(bootstrap: &str, group_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group_id)
        .set("client.id", "neuralake-writer")
        // Offsets live in the Delta log; Kafka's copy is written explicitly after each commit.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // A position below the log start (retention deleted it) restarts at the earliest kept.
        .set("auto.offset.reset", "earliest")
        // Group membership (ingest only; bench-consume assigns by hand): a rebalance moves
        // only the partitions that change owner. A worker killed with -9 is noticed after
        // the session timeout (10 s: its partitions pause that long). Members learn of a
        // rebalance at their next heartbeat, and a cooperative one takes two rounds: with
        // librdkafka's 3 s heartbeat a joining worker got its partitions after about 6 s,
        // longer than catching up 3,000,000 messages alone; 1 s makes it about 2 s.
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        // Partitions added to the topic are noticed (and assigned) within 10 s.
        .set("topic.metadata.refresh.interval.ms", "10000")
        .set("enable.partition.eof", "false")
        // Bigger fetches while catching up; a fetch returns after 100 ms when idle.
        .set("max.partition.fetch.bytes", "8388608")
        .set("fetch.wait.max.ms", "100")
        // Prefetch at most 32 MiB per partition (librdkafka's default is 64 MiB).
        .set("queued.max.messages.kbytes", "32768")
        // Once a partition's queue holds `queued.min.messages` (100,000), librdkafka waits
        // `fetch.queue.backoff.ms` before it looks again; the default, 1 s, caps a consumer
        // that drains 100,000 messages in less than that at about one refill per partition
        // per second. Looking again after 10 ms keeps the queue topped up while catching up.
        .set("fetch.queue.backoff.ms", "10");
    config
}

/// The longest single wait for a message: how soon an idle consume loop looks at the clock
/// (a batch due by age) and at the shutdown signal.
pub const POLL_SLICE: Duration = Duration::from_millis(100);

/// The next message (or consumer error): at once if librdkafka has one queued, otherwise after
/// waiting up to `wait()` for one. `None`: nothing came, or librdkafka only served an event of
/// its own (an offset-commit result, a log line).
///
/// This is the consume step of both `ingest` and `bench-consume`: a [`BaseConsumer`] polled in
/// a plain blocking loop, with no future and no timer per message (an async loop around
/// `StreamConsumer::recv` pays for both on every message). `wait` is only called when the
/// queue is empty, so a busy loop never reads the clock for it.
pub fn poll_next<'c, X: ConsumerContext>(
    consumer: &'c BaseConsumer<X>,
    wait: impl FnOnce() -> Duration,
) -> Option<KafkaResult<BorrowedMessage<'c>>> {
    consumer
        .poll(Duration::ZERO)
        .or_else(|| consumer.poll(wait().min(POLL_SLICE)))
}

/// Create a consumer (base or stream) with [`consumer_config`], then the `--kafka-option`
/// settings on top (a key librdkafka does not know fails here, as a start-up error).
pub fn create<C: FromClientConfig>(kafka: &KafkaArgs, group_id: &str) -> Result<C> {
    full_config(kafka, group_id)
        .create()
        .map_err(|e| create_failed(kafka, e))
}

/// [`create`] with a context of ours (the group consumer's rebalance callback).
pub fn create_with<X, C>(kafka: &KafkaArgs, group_id: &str, context: X) -> Result<C>
where
    X: ConsumerContext,
    C: FromClientConfigAndContext<X>,
{
    full_config(kafka, group_id)
        .create_with_context(context)
        .map_err(|e| create_failed(kafka, e))
}

fn full_config(kafka: &KafkaArgs, group_id: &str) -> ClientConfig {
    let mut config = consumer_config(&kafka.kafka_bootstrap, group_id);
    for (key, value) in &kafka.kafka_options {
        config.set(key, value);
    }
    config
}

fn create_failed(kafka: &KafkaArgs, e: rdkafka::error::KafkaError) -> anyhow::Error {
    StartupError::new(format!(
        "cannot create a Kafka consumer for {}: {e}: check --kafka-bootstrap and --kafka-option",
        kafka.kafka_bootstrap
    ))
    .into()
}

impl OffsetReset {
    /// Where to start a partition whose next offset is `next` (`None`: the table holds
    /// nothing of it, so the policy decides).
    pub fn offset(self, next: Option<i64>) -> Offset {
        match (next, self) {
            (Some(o), _) => Offset::Offset(o),
            (None, OffsetReset::Earliest) => Offset::Beginning,
            (None, OffsetReset::Latest) => Offset::End,
        }
    }
}

/// Move each partition of `positions` (all assigned to this consumer) to its position. The
/// fetch restarts there and any message of the partition already queued is discarded.
pub fn seek<C: Consumer<X>, X: ConsumerContext>(
    consumer: &C,
    topic: &str,
    positions: &BTreeMap<i32, Option<i64>>,
    reset: OffsetReset,
) -> KafkaResult<()> {
    let mut list = TopicPartitionList::new();
    for (&p, next) in positions {
        list.add_partition_offset(topic, p, reset.offset(*next))?;
    }
    if list.count() == 0 {
        return Ok(());
    }
    let done = consumer.seek_partitions(list, STARTUP_TIMEOUT)?;
    for elem in done.elements() {
        elem.error()?;
    }
    Ok(())
}

/// How many members the consumer group `group` has right now (0: nobody runs in it).
pub fn group_members<C: Consumer<X>, X: ConsumerContext>(
    consumer: &C,
    group: &str,
) -> KafkaResult<usize> {
    let list = consumer.fetch_group_list(Some(group), STARTUP_TIMEOUT)?;
    Ok(list
        .groups()
        .iter()
        .filter(|g| g.name() == group)
        .map(|g| g.members().len())
        .sum())
}

/// The topic's partitions, or a start-up error naming the fix (broker down, topic missing).
pub fn partitions<C: Consumer>(consumer: &C, bootstrap: &str, topic: &str) -> Result<Vec<i32>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), STARTUP_TIMEOUT)
        .map_err(|e| {
            StartupError::new(format!(
                "cannot reach Kafka at {bootstrap} within {} s ({e}): start the stack \
                 (neuralake stack up) or pass --kafka-bootstrap",
                STARTUP_TIMEOUT.as_secs()
            ))
        })?;
    let found = metadata.topics().iter().find(|t| t.name() == topic);
    match found {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
            let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
            ids.sort_unstable();
            Ok(ids)
        }
        _ => Err(StartupError::new(format!(
            "topic '{topic}' does not exist on {bootstrap}: create it (neuralake produce \
             creates it) or pass --topic"
        ))
        .into()),
    }
}

/// The high watermark (next offset to be written) of every partition, asked from the broker.
pub fn high_watermarks<C: Consumer>(
    consumer: &C,
    topic: &str,
    partitions: &[i32],
) -> KafkaResult<BTreeMap<i32, i64>> {
    partitions
        .iter()
        .map(|&p| {
            let (_low, high) = consumer.fetch_watermarks(topic, p, STARTUP_TIMEOUT)?;
            Ok((p, high))
        })
        .collect()
}

/// Assign every partition at its resume position (`None`: the beginning). Calling it again
/// replaces the assignment, which is how the writer re-seeks after dropping a batch.
pub fn assign<C: Consumer>(
    consumer: &C,
    topic: &str,
    positions: &BTreeMap<i32, Option<i64>>,
) -> KafkaResult<()> {
    let mut list = TopicPartitionList::new();
    for (&p, next) in positions {
        let offset = next.map_or(Offset::Beginning, Offset::Offset);
        list.add_partition_offset(topic, p, offset)?;
    }
    consumer.assign(&list)
}

/// The partitions' (low, high) watermarks, refreshed by a background thread (for the lag
/// metric).
#[derive(Debug, Clone, Default)]
pub struct Watermarks(Arc<Mutex<BTreeMap<i32, (i64, i64)>>>);

impl Watermarks {
    /// The latest (low, high) watermarks seen per partition.
    pub fn get(&self) -> BTreeMap<i32, (i64, i64)> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn set(&self, partition: i32, marks: (i64, i64)) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(partition, marks);
    }
}

/// Messages of a partition not yet in the table: the high watermark minus the next offset to
/// commit to Delta (the table's txn version + 1; the low watermark when the table holds
/// nothing of the partition yet). Never negative: a watermark read a moment before our own
/// commit can be below the new position.
pub fn lag(low: i64, high: i64, next: Option<i64>) -> i64 {
    (high - next.unwrap_or(low)).max(0)
}

/// Poll the watermarks every `every` on a thread of its own, with a client of its own:
/// on the consumer's connection a ListOffsets request waits behind the fetch long-poll
/// (measured: about 100 ms per partition), which would stall the ingest loop. On its own
/// connection one round costs one short request per partition, so it can run several times a
/// second and the lag gauge stays within a fraction of a second of the broker. The thread lives
/// as long as the process; a failed poll is logged and retried at the next tick.
pub fn spawn_watermark_poller(
    kafka: &KafkaArgs,
    group_id: &str,
    topic: &str,
    partitions: &[i32],
    every: Duration,
) -> Result<Watermarks> {
    let client: BaseConsumer = create(kafka, group_id)?;
    let marks = Watermarks::default();
    let (shared, topic, mut partitions) = (marks.clone(), topic.to_string(), partitions.to_vec());
    std::thread::Builder::new()
        .name("watermarks".into())
        .spawn(move || {
            for round in 1u64.. {
                // Partitions added to the topic while running get a lag too.
                if round % 50 == 0
                    && let Ok(metadata) = client.fetch_metadata(Some(&topic), STARTUP_TIMEOUT)
                    && let Some(t) = metadata.topics().iter().find(|t| t.name() == topic)
                    && t.partitions().len() > partitions.len()
                {
                    partitions = t.partitions().iter().map(|p| p.id()).collect();
                    partitions.sort_unstable();
                }
                for &p in &partitions {
                    match client.fetch_watermarks(&topic, p, STARTUP_TIMEOUT) {
                        Ok(m) => shared.set(p, m),
                        Err(e) => tracing::warn!(error = %e, partition = p, "reading the high watermark failed"),
                    }
                }
                std::thread::sleep(every);
            }
        })
        .map_err(|e| anyhow::anyhow!("starting the watermark thread: {e}"))?;
    Ok(marks)
}

/// The message's Kafka timestamp in epoch microseconds, if it has one.
pub fn timestamp_us(ts: Timestamp) -> Option<i64> {
    ts.to_millis().map(|ms| ms.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_timestamps_become_micros() {
        assert_eq!(timestamp_us(Timestamp::CreateTime(1_500)), Some(1_500_000));
        assert_eq!(timestamp_us(Timestamp::NotAvailable), None);
    }

    #[test]
    fn lag_counts_from_the_next_offset_to_commit() {
        // Table holds offsets up to 99 (next = 100), broker at 16,877: 16,777 behind.
        assert_eq!(lag(0, 16_877, Some(100)), 16_777);
        // Nothing committed yet: everything from the low watermark on is lag.
        assert_eq!(lag(40, 100, None), 60);
        // A watermark read just before our own commit is never negative lag.
        assert_eq!(lag(0, 90, Some(100)), 0);
    }

    #[test]
    fn offsets_are_never_auto_committed() {
        let c = consumer_config("127.0.0.1:9092", "g");
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("group.id"), Some("g"));
    }

    #[test]
    fn a_full_prefetch_queue_is_looked_at_again_soon() {
        let c = consumer_config("127.0.0.1:9092", "g");
        let backoff: u64 = c.get("fetch.queue.backoff.ms").unwrap().parse().unwrap();
        assert!(
            backoff <= 100,
            "librdkafka's 1,000 ms default throttles catch-up"
        );
    }
}
