//! Kafka offsets stored in the Delta log: the source of truth for exactly-once.
//!
//! Every commit of a batch carries, in the same atomic commit, one `txn` action per Kafka
//! partition it covers: `appId = "<app_id>/<topic>/<partition>"`, `version` = the last offset
//! included. The table therefore always knows exactly which offsets it holds, and the writer
//! resumes each partition at `version + 1`. Kafka's own committed offsets are written after the
//! Delta commit only so lag tools can see progress; they are never read back.
//!
//! Each commit of `ingest` also names its consumer group in the commit's `commitInfo`
//! ([`GROUP_KEY`]): a writer that finds its partitions moved by another group knows it is not
//! a rebalance of its own group but a second writer, and stops (see the committer).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use deltalake::DeltaTable;
use deltalake::kernel::{Action, Transaction};

/// The txn appId for one partition of one topic.
pub fn app_id(app: &str, topic: &str, partition: i32) -> String {
    format!("{app}/{topic}/{partition}")
}

/// The partition an appId of ours names (`None`: another app's, or another topic's).
pub fn partition_of(app_id: &str, app: &str, topic: &str) -> Option<i32> {
    app_id
        .strip_prefix(app)?
        .strip_prefix('/')?
        .strip_prefix(topic)?
        .strip_prefix('/')?
        .parse()
        .ok()
}

/// The `commitInfo` key naming the consumer group of the writer that made the commit.
pub const GROUP_KEY: &str = "neuralakeWriterGroup";

/// A partition's txn version as one commit set it, and the group of the writer that did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub version: i64,
    pub group: Option<String>,
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

    /// Txn actions only for the partitions where this batch goes past the table's version
    /// (`table`): a txn version never moves back.
    pub fn txn_actions_past(
        &self,
        app: &str,
        topic: &str,
        table: &TableOffsets,
    ) -> Vec<Transaction> {
        self.txn_actions(app, topic)
            .into_iter()
            .zip(self.ranges.iter())
            .filter(|(_, (p, r))| table.get(p).copied().flatten().is_none_or(|v| r.last > v))
            .map(|(t, _)| t)
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

/// The txn versions our appIds get in the commits `from..=to` (later commits win), with the
/// group of the writer of each, read from the log: what changed in the table's offsets
/// between two snapshots. One GET per commit; cheaper than [`read_table_offsets`], which
/// replays the log once per partition.
pub async fn txn_versions_in_commits(
    table: &DeltaTable,
    app: &str,
    topic: &str,
    from: u64,
    to: u64,
) -> Result<BTreeMap<i32, Written>> {
    let log_store = table.log_store();
    let mut out = BTreeMap::new();
    for version in from..=to {
        let bytes = log_store
            .read_commit_entry(version)
            .await
            .with_context(|| format!("reading commit {version}"))?
            .with_context(|| format!("commit {version} is not in the log"))?;
        let actions = deltalake::logstore::get_actions(version, &bytes)
            .with_context(|| format!("parsing commit {version}"))?;
        let group = group_of(&actions);
        out.extend(our_txns(&actions, app, topic).into_iter().map(|(p, v)| {
            let written = Written {
                version: v,
                group: group.clone(),
            };
            (p, written)
        }));
    }
    Ok(out)
}

/// Partition -> txn version of the txn actions in `actions` that carry our appIds.
pub fn our_txns(actions: &[Action], app: &str, topic: &str) -> BTreeMap<i32, i64> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Txn(t) => Some((partition_of(&t.app_id, app, topic)?, t.version)),
            _ => None,
        })
        .collect()
}

/// The writer group a commit's `commitInfo` names, if any.
pub fn group_of(actions: &[Action]) -> Option<String> {
    actions.iter().find_map(|a| match a {
        Action::CommitInfo(info) => info.info.get(GROUP_KEY)?.as_str().map(str::to_string),
        _ => None,
    })
}

/// The group named by the newest of the table's last `depth` commits that names one.
pub async fn last_writer_group(table: &DeltaTable, depth: usize) -> Result<Option<String>> {
    use futures::TryStreamExt as _;
    let infos: Vec<_> = table
        .history(Some(depth))
        .try_collect()
        .await
        .context("reading the table's history")?;
    Ok(infos
        .iter()
        .find_map(|info| info.info.get(GROUP_KEY)?.as_str().map(str::to_string)))
}

/// The partitions of `batch` whose txn version in the table (`table`) is not the one this
/// writer expects (`expected`: its own last commit there, or what it read when it last sought
/// there; in a topic without offset gaps, the offset just before the batch's first). Empty:
/// the batch is still ours to commit. Otherwise another writer got there: the batch must be
/// dropped and the partitions re-sought from the table.
pub fn unexpected(batch: &BatchOffsets, table: &TableOffsets, expected: &TableOffsets) -> Vec<i32> {
    batch
        .ranges()
        .keys()
        .filter(|p| table.get(p).copied().flatten() != expected.get(p).copied().flatten())
        .copied()
        .collect()
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
    fn txn_versions_never_move_back() {
        let mut b = BatchOffsets::default();
        b.record(0, 10);
        b.record(0, 20);
        b.record(1, 5);
        b.record(2, 7);
        let table: TableOffsets = [(0, Some(9)), (1, Some(50)), (2, None)]
            .into_iter()
            .collect();
        let versions: Vec<(String, i64)> = b
            .txn_actions_past("a", "t", &table)
            .into_iter()
            .map(|t| (t.app_id, t.version))
            .collect();
        assert_eq!(versions, vec![("a/t/0".into(), 20), ("a/t/2".into(), 7)]);
    }

    #[test]
    fn a_batch_is_ours_only_where_the_table_is_where_we_left_it() {
        let mut b = BatchOffsets::default();
        b.record(0, 10);
        b.record(1, 5);
        let expected: TableOffsets = [(0, Some(9)), (1, None), (2, Some(3))]
            .into_iter()
            .collect();
        assert!(unexpected(&b, &expected, &expected).is_empty());
        // Another writer moved partition 1; partition 2 is not in the batch.
        let table: TableOffsets = [(0, Some(9)), (1, Some(7)), (2, Some(8))]
            .into_iter()
            .collect();
        assert_eq!(unexpected(&b, &table, &expected), vec![1]);
        // Behind what we expect (a table replaced under us) is no better than ahead.
        let behind: TableOffsets = [(0, Some(2)), (1, None)].into_iter().collect();
        assert_eq!(unexpected(&b, &behind, &expected), vec![0]);
    }

    #[test]
    fn partitions_are_parsed_from_our_app_ids_only() {
        assert_eq!(partition_of("w/t/3", "w", "t"), Some(3));
        assert_eq!(partition_of("w/t/x", "w", "t"), None);
        assert_eq!(partition_of("w/other/1", "w", "t"), None);
        assert_eq!(partition_of("ww/t/1", "w", "t"), None);
        assert_eq!(partition_of("w/t/1", "w/t", "1"), None);
    }

    #[test]
    fn the_writer_group_is_read_from_commit_info() {
        let mut info = deltalake::kernel::CommitInfo::default();
        info.info
            .insert(GROUP_KEY.to_string(), serde_json::Value::from("g1"));
        let actions = vec![
            Action::CommitInfo(info),
            Action::Txn(Transaction::new("w/t/0", 4)),
        ];
        assert_eq!(group_of(&actions).as_deref(), Some("g1"));
        assert_eq!(group_of(&actions[1..]), None);
    }

    #[test]
    fn only_our_app_and_topic_count() {
        let txn = |id: &str, v| Action::Txn(Transaction::new(id, v));
        let actions = vec![
            txn("w/t/0", 5),
            txn("w/t/2", 9),
            txn("w/other/1", 3),
            txn("x/t/1", 4),
            txn("w/t/x", 1),
        ];
        let found: Vec<(i32, i64)> = our_txns(&actions, "w", "t").into_iter().collect();
        assert_eq!(found, vec![(0, 5), (2, 9)]);
    }
}
