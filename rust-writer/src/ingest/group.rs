//! Consumer-group membership: which partitions this worker owns, and where each one starts.
//!
//! Several `ingest` workers share a topic and a table through one Kafka consumer group
//! (cooperative-sticky assignment: a rebalance moves only the partitions that change owner).
//! librdkafka calls [`GroupContext::rebalance`] on the polling thread, inside `poll`:
//!
//! - **Assign**: the worker reloads both tables and reads the txn version of each new
//!   partition, then assigns the partition at `version + 1` (with none, at the start policy's
//!   end of the partition). The versions read are what the committer will expect there.
//! - **Revoke**: the partitions are unassigned at once (no message of theirs is returned
//!   after the callback); the reader drops the batch it is filling if it holds any of them,
//!   and a batch already committing finishes (its commit is verified like any other).
//!
//! The callback only records what changed ([`Change`]) and raises a flag; the reader and the
//! pipeline apply it (see `reader.rs` and `ingest.rs`). Safety never depends on the timing of
//! a rebalance: before every commit the committer checks the table's txn versions of the
//! batch's partitions against what it expects, so a worker that lost a partition (a zombie
//! after a long pause, say) can never commit its offsets twice.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use deltalake::DeltaTable;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, TopicPartitionList};
use tracing::{error, info, warn};

use crate::commit;
use crate::config::OffsetReset;
use crate::offsets::{self, TableOffsets};
use crate::retry::Backoff;

/// How long one read of the tables' txn versions may take inside the rebalance callback.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Reads tried before a new partition starts unverified (see [`Lookup::starts`]).
const LOOKUP_ATTEMPTS: u32 = 3;

/// Where a newly assigned partition stands in the two tables (their txn versions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    pub bronze: Option<i64>,
    pub dead: Option<i64>,
}

/// One rebalance event, as the callback saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Assigned(BTreeMap<i32, Start>),
    Revoked(Vec<i32>),
}

/// Reads the txn versions of newly assigned partitions from the two tables, blocking the
/// polling thread (the rebalance callback must return with the partitions assigned). Holds
/// its own handles on the tables, so it never waits for the committer.
pub struct Lookup {
    runtime: tokio::runtime::Handle,
    tables: Arc<tokio::sync::Mutex<(DeltaTable, DeltaTable)>>,
    app: String,
    topic: String,
}

impl Lookup {
    pub fn new(bronze: DeltaTable, dead: DeltaTable, app: &str, topic: &str) -> Self {
        Self {
            runtime: tokio::runtime::Handle::current(),
            tables: Arc::new(tokio::sync::Mutex::new((bronze, dead))),
            app: app.to_string(),
            topic: topic.to_string(),
        }
    }

    /// The txn versions of `partitions` in both tables, freshly reloaded. After
    /// [`LOOKUP_ATTEMPTS`] failed reads (S3 down), every partition starts as if the tables
    /// held nothing of it: the committer's check before the first commit then finds the
    /// real versions and re-seeks, so this costs re-reading, never a duplicate.
    fn starts(&self, partitions: &[i32]) -> BTreeMap<i32, Start> {
        let mut backoff = Backoff::for_io();
        for attempt in 1..=LOOKUP_ATTEMPTS {
            match self.read(partitions) {
                Ok(starts) => return starts,
                Err(e) => {
                    warn!(
                        error = format!("{e:#}"), attempt, partitions = ?partitions,
                        "reading the new partitions' txn versions failed"
                    );
                    if attempt < LOOKUP_ATTEMPTS {
                        std::thread::sleep(backoff.next_delay());
                    }
                }
            }
        }
        error!(
            partitions = ?partitions,
            "starting the new partitions unverified; the first commit re-seeks them from the table"
        );
        let unknown = Start {
            bronze: None,
            dead: None,
        };
        partitions.iter().map(|p| (*p, unknown)).collect()
    }

    /// One read, on the runtime (this thread is the polling thread, outside any task).
    fn read(&self, partitions: &[i32]) -> Result<BTreeMap<i32, Start>> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (tables, app, topic) = (self.tables.clone(), self.app.clone(), self.topic.clone());
        let wanted = partitions.to_vec();
        self.runtime.spawn(async move {
            let read = async {
                let mut guard = tables.lock().await;
                let (bronze, dead) = &mut *guard;
                commit::refresh(bronze).await?;
                commit::refresh(dead).await?;
                let b = offsets::read_table_offsets(bronze, &app, &topic, &wanted).await?;
                let d = offsets::read_table_offsets(dead, &app, &topic, &wanted).await?;
                Ok::<_, anyhow::Error>(starts_from(&wanted, &b, &d))
            };
            let _ = tx.send(read.await);
        });
        rx.recv_timeout(LOOKUP_TIMEOUT)
            .map_err(|_| anyhow!("no answer within {} s", LOOKUP_TIMEOUT.as_secs()))?
            .context("reading the tables' txn versions")
    }
}

/// Pair the two tables' versions per partition.
fn starts_from(
    partitions: &[i32],
    bronze: &TableOffsets,
    dead: &TableOffsets,
) -> BTreeMap<i32, Start> {
    partitions
        .iter()
        .map(|p| {
            let start = Start {
                bronze: bronze.get(p).copied().flatten(),
                dead: dead.get(p).copied().flatten(),
            };
            (*p, start)
        })
        .collect()
}

/// The consumer's context: handles rebalances and queues what changed for the reader.
pub struct GroupContext {
    topic: String,
    reset: OffsetReset,
    lookup: Lookup,
    changes: Mutex<Vec<Change>>,
    changed: AtomicBool,
}

impl GroupContext {
    pub fn new(topic: &str, reset: OffsetReset, lookup: Lookup) -> Self {
        Self {
            topic: topic.to_string(),
            reset,
            lookup,
            changes: Mutex::new(Vec::new()),
            changed: AtomicBool::new(false),
        }
    }

    /// Has a rebalance happened since the last [`GroupContext::take`]? One atomic load: the
    /// reader asks after every poll.
    pub fn changed(&self) -> bool {
        self.changed.load(Ordering::Acquire)
    }

    /// The rebalance events since the last call, oldest first.
    pub fn take(&self) -> Vec<Change> {
        let mut changes = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        self.changed.store(false, Ordering::Release);
        std::mem::take(&mut *changes)
    }

    fn record(&self, change: Change) {
        self.changes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(change);
        self.changed.store(true, Ordering::Release);
    }

    fn ours(&self, tpl: &TopicPartitionList) -> Vec<i32> {
        let mut partitions: Vec<i32> = tpl
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        partitions.sort_unstable();
        partitions
    }

    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let partitions = self.ours(tpl);
        let starts = self.lookup.starts(&partitions);
        let mut list = TopicPartitionList::new();
        for (p, start) in &starts {
            let offset = self.reset.offset(offsets::resume_at(start.bronze));
            if let Err(e) = list.add_partition_offset(&self.topic, *p, offset) {
                error!(error = %e, partition = p, "building the assignment");
            }
        }
        let assigned = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(&list),
            _ => consumer.assign(&list),
        };
        if let Err(e) = assigned {
            error!(error = %e, "assigning partitions failed");
        }
        info!(partitions = ?partitions, starts = ?starts, "partitions assigned");
        self.record(Change::Assigned(starts));
    }

    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let partitions = self.ours(tpl);
        let lost = consumer.assignment_lost();
        let revoked = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_unassign(tpl),
            _ => consumer.unassign(),
        };
        if let Err(e) = revoked {
            error!(error = %e, "unassigning partitions failed");
        }
        if lost {
            warn!(partitions = ?partitions, "partitions lost (the group moved on without this worker, e.g. after a long pause)");
        } else {
            info!(partitions = ?partitions, "partitions revoked");
        }
        self.record(Change::Revoked(partitions));
    }
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.revoke(consumer, tpl),
            other => {
                // librdkafka's rule for an unexpected rebalance error: drop the assignment.
                error!(error = ?other, "rebalance error; dropping the assignment");
                let all = self.ours(tpl);
                if let Err(e) = consumer.unassign() {
                    error!(error = %e, "unassigning after a rebalance error failed");
                }
                self.record(Change::Revoked(all));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_pair_both_tables() {
        let b: TableOffsets = [(0, Some(5)), (1, None)].into();
        let d: TableOffsets = [(0, Some(3))].into();
        let s = starts_from(&[0, 1], &b, &d);
        assert_eq!(
            s[&0],
            Start {
                bronze: Some(5),
                dead: Some(3)
            }
        );
        assert_eq!(
            s[&1],
            Start {
                bronze: None,
                dead: None
            }
        );
    }
}
