//! Kafka offsets stored in the Delta log: the source of truth for exactly-once.
//!
//! Every commit of a batch carries, in the same atomic commit, one `txn` action per Kafka
//! partition it covers: `appId = "<app_id>/<topic>/<partition>"`, `version` = the last offset
//! included. The table therefore always knows exactly which offsets it holds, and the writer
//! resumes each partition at `version + 1`. Kafka's own committed offsets are written after the
//! Delta commit only so lag tools can see progress; they are never read back.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use deltalake::DeltaTable;
use deltalake::kernel::Transaction;

/// The txn appId for one partition of one topic.
pub fn app_id(app: &str, topic: &str, partition: i32) -> String {
    format!("{app}/{topic}/{partition}")
}

/// Per partition, the last offset the table holds (`None`: nothing yet).
pub type TableOffsets = BTreeMap<i32, Option<i64>>;

/// Where to resume a partition: the offset after the one the table holds, or the beginning.
pub fn resume_at(version: Option<i64>) -> Option<i64> {
    version.map(|v| v + 1)
}

/// First and last offset of one partition within a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetRange {
    pub first: i64,
    pub last: i64,
}

/// The offsets a batch covers, per partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOffsets {
    ranges: BTreeMap<i32, OffsetRange>,
}

impl BatchOffsets {
    /// Record a consumed message (valid or malformed: both are covered by the batch).
    pub fn record(&mut self, partition: i32, offset: i64) {
        self.ranges
            .entry(partition)
            .and_modify(|r| {
                r.first = r.first.min(offset);
                r.last = r.last.max(offset);
            })
            .or_insert(OffsetRange {
                first: offset,
                last: offset,
            });
    }

    /// Nothing recorded?
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The ranges, by partition.
    pub fn ranges(&self) -> &BTreeMap<i32, OffsetRange> {
        &self.ranges
    }

    /// One txn action per partition: `version` = last offset included.
    pub fn txn_actions(&self, app: &str, topic: &str) -> Vec<Transaction> {
        let now = chrono::Utc::now().timestamp_millis();
        self.ranges
            .iter()
            .map(|(p, r)| {
                Transaction::new_with_last_update(app_id(app, topic, *p), r.last, Some(now))
            })
            .collect()
    }

    /// Partitions whose data the table already holds (its txn version is at or past the
    /// batch's first offset): another writer, or an earlier attempt of this one, got there.
    /// Committing such a batch would duplicate rows, so it is dropped and the partition
    /// re-sought instead.
    pub fn already_committed(&self, table: &TableOffsets) -> Vec<i32> {
        self.ranges
            .iter()
            .filter(|(p, r)| matches!(table.get(p), Some(Some(v)) if *v >= r.first))
            .map(|(p, _)| *p)
            .collect()
    }
}

/// Read the txn version of every partition from the table's current snapshot.
pub async fn read_table_offsets(
    table: &DeltaTable,
    app: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<TableOffsets> {
    let snapshot = table.snapshot().context("table has no snapshot loaded")?;
    let log_store = table.log_store();
    let mut out = TableOffsets::new();
    for &p in partitions {
        let id = app_id(app, topic, p);
        let version = snapshot
            .transaction_version(log_store.as_ref(), &id)
            .await
            .with_context(|| format!("reading txn version of {id}"))?;
        out.insert(p, version);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids_are_app_topic_partition() {
        assert_eq!(app_id("w", "neural-signals", 2), "w/neural-signals/2");
    }

    #[test]
    fn resume_after_the_last_committed_offset() {
        assert_eq!(resume_at(None), None);
        assert_eq!(resume_at(Some(41)), Some(42));
    }

    #[test]
    fn ranges_track_first_and_last_per_partition() {
        let mut b = BatchOffsets::default();
        for (p, o) in [(0, 5), (1, 9), (0, 6), (0, 7)] {
            b.record(p, o);
        }
        assert_eq!(b.ranges()[&0], OffsetRange { first: 5, last: 7 });
        let txns = b.txn_actions("app", "t");
        let pairs: Vec<(String, i64)> = txns.into_iter().map(|t| (t.app_id, t.version)).collect();
        assert_eq!(pairs, vec![("app/t/0".into(), 7), ("app/t/1".into(), 9)]);
    }

    #[test]
    fn a_batch_the_table_already_holds_is_detected() {
        let mut b = BatchOffsets::default();
        b.record(0, 10);
        b.record(0, 20);
        b.record(1, 5);
        let table: TableOffsets = [(0, Some(9)), (1, Some(5))].into_iter().collect();
        assert_eq!(b.already_committed(&table), vec![1]);
        let fresh: TableOffsets = [(0, Some(9)), (1, None)].into_iter().collect();
        assert!(b.already_committed(&fresh).is_empty());
    }
}
