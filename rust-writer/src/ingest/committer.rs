//! The committing half of `ingest`: a filled batch -> Parquet files -> one Delta commit.
//!
//! The committer owns both tables. For one batch it commits the malformed messages to the
//! dead-letter table, then writes the rows' Parquet files and commits their `add` actions
//! with one txn action per partition in ONE commit, then starts a checkpoint (in the background) every
//! `--checkpoint-every` commits. It runs on a task of its own while the reader fills the next
//! batch, and only one batch is ever committing, so commits stay in offset order.
//!
//! **Never a batch twice** (the kafka-delta-ingest rule): before every commit, to either table,
//! the committer reloads the table and checks that the txn version of every partition in the
//! batch is still the one this writer expects (its own last commit there, or what it read when
//! it last sought there). Anything else means another writer, or a commit of ours whose
//! response was lost, got there: the batch is dropped and the reader re-seeks from the table.
//! Between that check and the commit, delta-rs's conflict checker fails our commit if another
//! one with any of the batch's appIds lands first (`ConcurrentTransaction`), and lets it
//! through, rebased, over commits that carry none (the compactor, or another writer on other
//! partitions). After a rebase the committer reads the commits it was rebased over, so that
//! the txn versions it keeps are exactly those of the snapshot it holds, and the next check
//! sees another writer's progress on the other partitions.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use anyhow::{Result, anyhow};
use delta_kernel::expressions::Scalar;
use deltalake::DeltaTable;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::{Action, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use indexmap::IndexMap;
use tracing::{error, info, warn};

use super::Summary;
use super::checkpointer::Checkpointer;
use super::decoders::{self, Decoded};
use super::group::Change;
use super::reader::Pending;
use crate::commit::{self, Committed, PartitionValues};
use crate::dead_letters;
use crate::errors;
use crate::metrics::{IngestMetrics, PartitionLabel};
use crate::offsets::{self, BatchOffsets, TableOffsets};
use crate::retry::{Backoff, Retry};
use crate::schema::{self, DATE_COLUMN};

/// Conflicts delta-rs may resolve per commit before handing the error to us.
const COMMIT_RETRIES: usize = 15;

/// What happened to a batch.
pub enum Outcome {
    /// In the table, in one commit: these offsets are done.
    Committed(BatchOffsets),
    /// The table already holds (some of) these offsets: batch dropped. The committer's
    /// `held` and `dead_offsets` now say where to read again.
    Superseded,
}

/// What happened to a commit attempt loop.
enum Attempt {
    Committed {
        commit: Committed,
        files: usize,
        bytes: u64,
    },
    /// These partitions of the table are not where this writer expects them.
    Superseded(Vec<i32>),
}

/// Which of the two tables a commit goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Bronze,
    DeadLetters,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Bronze => "bronze",
            Which::DeadLetters => "dead letters",
        }
    }

    fn spec(self) -> schema::TableSpec {
        match self {
            Which::Bronze => schema::bronze(),
            Which::DeadLetters => schema::dead_letters(),
        }
    }
}

/// A Delta table with the txn versions of our appIds in its loaded snapshot.
pub struct Tracked {
    pub table: DeltaTable,
    /// Per partition, the txn version in the snapshot version `txn_at` (exactly).
    pub txn: TableOffsets,
    /// Per partition, the consumer group named by the commit that set `txn` there, when
    /// known (commits read one by one; unknown after a full re-read).
    pub groups: BTreeMap<i32, String>,
    /// The snapshot version `txn` describes; it lags the table's after a failed log read,
    /// and the next [`Committer::sync`] catches up.
    pub txn_at: u64,
}

impl Tracked {
    /// A freshly opened table and the txn versions read from it.
    pub fn new(table: DeltaTable, txn: TableOffsets) -> Self {
        let txn_at = table.version().unwrap_or(0);
        Self {
            table,
            txn,
            groups: BTreeMap::new(),
            txn_at,
        }
    }

    /// Take the txn versions (and writers) a range of commits set, for every partition of
    /// the topic (one added while running included).
    fn absorb(&mut self, written: BTreeMap<i32, offsets::Written>) {
        for (p, w) in written {
            self.txn.insert(p, Some(w.version));
            match w.group {
                Some(g) => self.groups.insert(p, g),
                None => self.groups.remove(&p),
            };
        }
    }
}

pub struct Committer {
    pub app: String,
    pub topic: String,
    /// Every partition of the topic (owned or not: the txn versions of all are tracked).
    pub partitions: Vec<i32>,
    /// This worker's consumer group, named in the `commitInfo` of each commit.
    pub group: String,
    /// The partitions this worker owns (its group's assignment).
    pub owned: BTreeSet<i32>,
    pub bronze: Tracked,
    pub dead: Tracked,
    pub dead_schema: SchemaRef,
    /// Per partition, the bronze txn version this writer expects: its own last commit, or what
    /// it read when it was assigned the partition or last sought there. The reader's position
    /// follows it.
    pub held: TableOffsets,
    /// The same for the dead-letter table (what it already holds).
    pub dead_offsets: TableOffsets,
    pub metrics: IngestMetrics,
    /// Checkpoints of bronze and of the dead-letter table, written in the background.
    pub checkpoints: (Checkpointer, Checkpointer),
    /// How long a permanent failure is retried before the process gives up (`--give-up-s`).
    pub give_up: std::time::Duration,
    pub summary: Summary,
}

impl Committer {
    /// Dead letters, then bronze, then maybe a checkpoint, for one batch.
    pub async fn commit_batch(&mut self, pending: Pending) -> Result<Outcome> {
        let started = Instant::now();
        let Pending {
            chunks,
            offsets,
            messages,
            oldest_kafka_ts_us,
            ..
        } = pending;
        self.summary.messages += messages as u64;
        // The decoders finish the batch's last chunks while the previous commit lands.
        let Decoded {
            batches,
            dead,
            rows: row_count,
        } = decoders::gather(chunks).await?;
        let dead_count = dead.len();
        let parts: Vec<(PartitionValues, RecordBatch)> = batches
            .into_iter()
            .map(|(date, batch)| {
                let values: PartitionValues =
                    IndexMap::from([(DATE_COLUMN.to_string(), Scalar::Date(date))]);
                (values, batch)
            })
            .collect();

        if !dead.is_empty() {
            let batch = dead_letters::to_record_batch(&self.topic, &dead, &self.dead_schema)?;
            let parts = [(IndexMap::new(), batch)];
            match self
                .append_with_txn(Which::DeadLetters, &parts, &offsets)
                .await?
            {
                Attempt::Superseded(partitions) => {
                    return self
                        .superseded(Which::DeadLetters, &partitions, &offsets)
                        .await;
                }
                Attempt::Committed { commit, .. } => {
                    self.metrics.dead_letters.inc_by(dead_count as u64);
                    self.summary.dead_letters += dead_count as u64;
                    info!(
                        version = commit.version,
                        dead_letters = dead_count,
                        "committed dead letters"
                    );
                    self.maybe_checkpoint(Which::DeadLetters);
                }
            }
        }
        match self
            .append_with_txn(Which::Bronze, &parts, &offsets)
            .await?
        {
            Attempt::Committed {
                commit,
                files,
                bytes,
            } => {
                let seconds = started.elapsed().as_secs_f64();
                self.record_commit(
                    commit,
                    &offsets,
                    row_count,
                    bytes,
                    seconds,
                    oldest_kafka_ts_us,
                );
                info!(
                    version = commit.version, rows = row_count, dead_letters = dead_count,
                    files, bytes, seconds, conflicts = commit.conflicts_resolved,
                    offsets = %describe(&offsets), "committed batch"
                );
                self.maybe_checkpoint(Which::Bronze);
                self.metrics.health.committed(now_ms(), true);
                Ok(Outcome::Committed(offsets))
            }
            Attempt::Superseded(partitions) => {
                self.superseded(Which::Bronze, &partitions, &offsets).await
            }
        }
    }

    /// A rebalance: take the new partitions' txn versions (read when they were assigned) as
    /// what this writer expects there, and forget the revoked ones.
    pub fn apply(&mut self, changes: &[Change]) {
        for change in changes {
            match change {
                Change::Assigned(starts) => {
                    for (p, start) in starts {
                        if !self.partitions.contains(p) {
                            // Added to the topic while running.
                            self.partitions.push(*p);
                            self.partitions.sort_unstable();
                        }
                        self.owned.insert(*p);
                        self.held.insert(*p, start.bronze);
                        self.dead_offsets.insert(*p, start.dead);
                    }
                }
                Change::Revoked(partitions) => {
                    for p in partitions {
                        self.owned.remove(p);
                    }
                }
            }
        }
    }

    /// The batch is dropped: log one line, and reload both tables so that `held` and
    /// `dead_offsets` say where to read again. If a writer of another consumer group moved
    /// the batch's partitions, this writer is the second writer on the table: an error.
    async fn superseded(
        &mut self,
        which: Which,
        partitions: &[i32],
        offsets: &BatchOffsets,
    ) -> Result<Outcome> {
        let found = |txn: &TableOffsets| -> String {
            partitions
                .iter()
                .map(|p| format!("{p}:{:?}", txn.get(p).copied().flatten()))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let (tracked, expected) = match which {
            Which::Bronze => (&self.bronze, &self.held),
            Which::DeadLetters => (&self.dead, &self.dead_offsets),
        };
        if let Some(err) = fenced(tracked, partitions, &self.group) {
            return Err(err);
        }
        warn!(
            table = which.name(), offsets = %describe(offsets), expected = %found(expected),
            found = %found(&tracked.txn),
            "the table holds offsets this writer did not commit (a rebalance, another writer, or a commit whose response was lost): batch dropped, re-seeking from the table"
        );
        self.metrics.batches_dropped.inc();
        self.metrics.health.committed(now_ms(), false);
        // Both tables' current offsets: bronze says where to read, dead letters what to skip.
        let mut backoff = Backoff::for_io();
        while let Err(e) = self.sync_both().await {
            warn!(
                error = format!("{e:#}"),
                "reloading the tables failed; retrying"
            );
            backoff.wait().await;
        }
        self.held = only(&self.bronze.txn, &self.partitions);
        self.dead_offsets = only(&self.dead.txn, &self.partitions);
        Ok(Outcome::Superseded)
    }

    /// Does the bronze table hold every partition of `targets` up to its end (`--stop-at-end`)?
    /// Reloads the table first; a failed reload answers no (the caller asks again).
    pub async fn holds(&mut self, targets: &BTreeMap<i32, (i64, i64)>) -> bool {
        if let Err(e) = Self::sync(&mut self.bronze, &self.app, &self.topic, &self.partitions).await
        {
            warn!(error = format!("{e:#}"), "reloading the table failed");
            return false;
        }
        targets.iter().all(|(p, (low, high))| {
            high <= low || self.bronze.txn.get(p).copied().flatten() >= Some(high - 1)
        })
    }

    /// Count a failed attempt (and start the stall clock).
    fn failed(&self) {
        self.metrics.commit_failures.inc();
        self.metrics.health.failed(now_ms());
    }

    async fn sync_both(&mut self) -> Result<()> {
        Self::sync(&mut self.bronze, &self.app, &self.topic, &self.partitions).await?;
        Self::sync(&mut self.dead, &self.app, &self.topic, &self.partitions).await
    }

    /// Reload `tracked` to the table's latest version and bring its txn versions along: read
    /// the commits that arrived since (one GET each), or, if that fails, every partition's
    /// version from the new snapshot.
    async fn sync(tracked: &mut Tracked, app: &str, topic: &str, partitions: &[i32]) -> Result<()> {
        commit::refresh(&mut tracked.table).await?;
        let now = tracked.table.version().unwrap_or(0);
        if now <= tracked.txn_at {
            return Ok(());
        }
        match offsets::txn_versions_in_commits(&tracked.table, app, topic, tracked.txn_at + 1, now)
            .await
        {
            Ok(changes) => tracked.absorb(changes),
            Err(e) => {
                warn!(
                    error = format!("{e:#}"),
                    "reading the new commits failed; reading every partition's txn version instead"
                );
                tracked.txn =
                    offsets::read_table_offsets(&tracked.table, app, topic, partitions).await?;
                tracked.groups.clear();
            }
        }
        tracked.txn_at = now;
        Ok(())
    }

    /// After our commit: the txn versions of the snapshot it produced. If delta-rs rebased it
    /// over other commits, theirs are read from the log first (their partitions are not in
    /// our batch, or delta-rs would have failed ours): the other workers' partitions, and,
    /// on a partition this worker owns, a zombie or a second writer, whose next batch here
    /// will be dropped by the check before its commit.
    async fn adopt(
        tracked: &mut Tracked,
        commit: &Committed,
        ours: &[Transaction],
        (expected, owned): (&TableOffsets, &BTreeSet<i32>),
        names: (&str, &str, &[i32], &str),
    ) {
        let (app, topic, _, group) = names;
        let version = commit.version as u64;
        if version > tracked.txn_at + 1 {
            let first = tracked.txn_at + 1;
            match offsets::txn_versions_in_commits(&tracked.table, app, topic, first, version - 1)
                .await
            {
                Ok(theirs) => {
                    for (p, w) in &theirs {
                        if ours
                            .iter()
                            .any(|t| offsets::partition_of(&t.app_id, app, topic) == Some(*p))
                        {
                            error!(
                                partition = p,
                                version = w.version,
                                "a commit we were rebased over carries our batch's appId"
                            );
                        } else if owned.contains(p)
                            && expected.get(p).copied().flatten() != Some(w.version)
                        {
                            warn!(
                                partition = p,
                                version = w.version,
                                "another writer committed a partition this worker owns; its next batch here will be dropped"
                            );
                        }
                    }
                    tracked.absorb(theirs);
                }
                Err(e) => {
                    // Leave `txn_at` behind: the next sync reads these commits, and ours.
                    warn!(
                        error = format!("{e:#}"),
                        "reading the commits we were rebased over failed; the next reload reads them"
                    );
                    return;
                }
            }
        }
        for t in ours {
            if let Some(p) = offsets::partition_of(&t.app_id, app, topic) {
                tracked.txn.insert(p, Some(t.version));
                tracked.groups.insert(p, group.to_string());
            }
        }
        tracked.txn_at = version;
    }

    /// Append `parts` (Parquet files, one per partition value; none at all is fine) to one
    /// of the two tables in ONE commit with a txn action per partition of the batch that
    /// moves forward. Before each attempt the table is reloaded and its txn versions for the
    /// batch's partitions checked against what this writer expects; any other version ends
    /// the loop as [`Attempt::Superseded`]. Every failure is retried with fresh files: at once
    /// after a conflict, after a capped backoff otherwise.
    async fn append_with_txn(
        &mut self,
        which: Which,
        parts: &[(PartitionValues, RecordBatch)],
        offsets: &BatchOffsets,
    ) -> Result<Attempt> {
        let mut retry = Retry::new(self.give_up);
        let spec = which.spec();
        let metadata = vec![(
            offsets::GROUP_KEY.to_string(),
            serde_json::Value::from(self.group.clone()),
        )];
        loop {
            let (tracked, expected) = match which {
                Which::Bronze => (&mut self.bronze, &mut self.held),
                Which::DeadLetters => (&mut self.dead, &mut self.dead_offsets),
            };
            let synced = Self::sync(tracked, &self.app, &self.topic, &self.partitions).await;
            let checked = synced.and_then(|()| {
                schema::check(&tracked.table, &spec)
                    .map_err(|diff| anyhow!("the table's schema changed under the writer: {diff}"))
            });
            if let Err(e) = checked {
                self.metrics.commit_failures.inc();
                self.metrics.health.failed(now_ms());
                let fix = errors::permanent(&e).or_else(|| {
                    e.to_string().contains("schema changed").then(|| {
                        "restore the table's schema, or write to another table (--table)"
                            .to_string()
                    })
                });
                warn!(
                    table = which.name(),
                    error = format!("{e:#}"),
                    permanent = fix.is_some(),
                    attempt = retry.attempts(),
                    "reloading the table failed; retrying"
                );
                retry.after(&e, fix, false).await?;
                continue;
            }
            let foreign = offsets::unexpected(offsets, &tracked.txn, expected);
            if !foreign.is_empty() {
                return Ok(Attempt::Superseded(foreign));
            }
            // Never move a txn version back: a partition the table already holds past this
            // batch (dead letters replayed after a crash between the two commits) gets none.
            let txns = offsets.txn_actions_past(&self.app, &self.topic, &tracked.txn);
            let attempt = within_deadline(async {
                let adds = if parts.is_empty() {
                    Vec::new()
                } else {
                    commit::write_files(
                        &tracked.table,
                        parts.iter().cloned(),
                        None,
                        commit::Job::Ingest,
                    )
                    .await?
                };
                let files = adds.len();
                let bytes: u64 = adds.iter().map(|a| a.size.max(0) as u64).sum();
                let mut actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
                actions.extend(txns.iter().cloned().map(Action::Txn));
                let committed = commit::commit(
                    &mut tracked.table,
                    actions,
                    append(),
                    COMMIT_RETRIES,
                    metadata.clone(),
                )
                .await?;
                Ok((committed, files, bytes))
            })
            .await;
            match attempt {
                Ok((commit, files, bytes)) => {
                    let names = (
                        self.app.as_str(),
                        self.topic.as_str(),
                        self.partitions.as_slice(),
                        self.group.as_str(),
                    );
                    Self::adopt(tracked, &commit, &txns, (expected, &self.owned), names).await;
                    for t in &txns {
                        if let Some(p) = offsets::partition_of(&t.app_id, &self.app, &self.topic) {
                            expected.insert(p, Some(t.version));
                        }
                    }
                    return Ok(Attempt::Committed {
                        commit,
                        files,
                        bytes,
                    });
                }
                Err(e) => {
                    self.failed();
                    let conflict = is_conflict(&e);
                    if conflict {
                        self.metrics.commit_conflicts.inc();
                    }
                    let fix = errors::permanent(&e);
                    warn!(
                        table = which.name(),
                        error = format!("{e:#}"),
                        conflict,
                        permanent = fix.is_some(),
                        attempt = retry.attempts(),
                        "commit failed; reloading the table and retrying with fresh files"
                    );
                    retry.after(&e, fix, conflict).await?;
                }
            }
        }
    }

    fn record_commit(
        &mut self,
        commit: Committed,
        offsets: &BatchOffsets,
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
        for (p, r) in offsets.ranges() {
            m.committed_offset
                .get_or_create(&PartitionLabel::new(*p))
                .set(r.last);
        }
        self.summary.rows += rows as u64;
        self.summary.batches += 1;
    }

    /// A checkpoint of `which` once `--checkpoint-every` versions have passed since the last
    /// one, written in the background (see `checkpointer.rs`) and only by the worker owning
    /// the topic's first partition: one owner per table, whatever the number of workers
    /// (during a rebalance two may overlap, which is harmless: a checkpoint of a version is
    /// the same file whoever writes it).
    fn maybe_checkpoint(&mut self, which: Which) {
        let first = self.partitions.first().copied();
        if !first.is_some_and(|p| self.owned.contains(&p)) {
            return;
        }
        match which {
            Which::Bronze => self.checkpoints.0.after_commit(&self.bronze.table),
            Which::DeadLetters => self.checkpoints.1.after_commit(&self.dead.table),
        }
    }

    /// At exit: let checkpoints in flight finish, waiting at most `limit` for each.
    pub async fn settle_checkpoints(&mut self, limit: std::time::Duration) {
        self.checkpoints.0.settle(limit).await;
        self.checkpoints.1.settle(limit).await;
    }
}

/// The error that stops a writer whose partitions another consumer group moved: two groups
/// on one table each read every partition, and each drops what the other committed first.
/// Of two groups started together exactly one goes on: the one whose name sorts first (the
/// other, seeing its commits, stops; it merely drops the other's duplicates meanwhile). A
/// group started beside a running one is refused at start instead (`ingest.rs`).
fn fenced(tracked: &Tracked, partitions: &[i32], group: &str) -> Option<anyhow::Error> {
    let (p, other) = partitions.iter().find_map(|p| {
        let other = tracked.groups.get(p).filter(|g| g.as_str() < group)?;
        Some((p, other))
    })?;
    let url = tracked.table.table_url();
    let uri = url.as_str().trim_end_matches('/');
    error!(partition = p, other_group = %other, group, "another consumer group writes this table");
    Some(anyhow!(
        "consumer group '{other}' also writes {uri} (it committed partition {p} under this \
         writer, group '{group}'): stop one of the two, or start this writer with \
         --group-id {other} to share the partitions"
    ))
}

/// The Delta operation of a bronze or dead-letter commit: a blind append.
fn append() -> DeltaOperation {
    DeltaOperation::Write {
        mode: SaveMode::Append,
        partition_by: None,
        predicate: None,
    }
}

/// One attempt (write files, commit them), abandoned after [`commit::ATTEMPT_DEADLINE`].
async fn within_deadline<T>(attempt: impl Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(commit::ATTEMPT_DEADLINE, attempt).await {
        Ok(result) => result,
        Err(_) => Err(anyhow!(
            "the attempt took longer than {} s: abandoned, its files are never committed",
            commit::ATTEMPT_DEADLINE.as_secs()
        )),
    }
}

/// A concurrent commit prevented ours (as opposed to S3 being unreachable, say).
fn is_conflict(e: &anyhow::Error) -> bool {
    e.downcast_ref::<deltalake::DeltaTableError>()
        .is_some_and(commit::is_conflict)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `txn` restricted to the topic's partitions.
fn only(txn: &TableOffsets, partitions: &[i32]) -> TableOffsets {
    partitions
        .iter()
        .map(|p| (*p, txn.get(p).copied().flatten()))
        .collect()
}

/// `0:[10..20] 1:[5..9]` for logs.
pub fn describe(offsets: &BatchOffsets) -> String {
    offsets
        .ranges()
        .iter()
        .map(|(p, r)| format!("{p}:[{}..{}]", r.first, r.last))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The committer's state machine on real `file://` tables: commits, the check before each
/// commit, two committers racing for the same offsets, and the fence between two groups.
#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use deltalake::writer::RecordBatchWriter;
    use prometheus_client::registry::Registry;

    use super::*;
    use crate::decode::decode;

    const GOOD: &str = r#"{"timestamp":"2026-11-23T19:14:44.123456Z","session_id":1,"device_id":1,"patient_id":1,"channel":3,"voltage_uv":-12.5,"spike":false,"quality":0.98}"#;

    /// A fresh folder for one test's tables (removed by the test through [`Scratch`]'s drop).
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let folder = format!("committer-{name}-{}-{nanos}", std::process::id());
            Self(std::env::temp_dir().join(folder))
        }

        fn uri(&self) -> String {
            format!("file://{}/t", self.0.display())
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    async fn committer(uri: &str, group: &str) -> Committer {
        let open = |u: String, spec: schema::TableSpec| async move {
            schema::open_or_create(&u, &HashMap::new(), &spec, "t")
                .await
                .unwrap()
        };
        let bronze = open(uri.to_string(), schema::bronze()).await;
        let dead = open(format!("{uri}_dead_letters"), schema::dead_letters()).await;
        let partitions = vec![0, 1];
        let held = offsets::read_table_offsets(&bronze, "app", "t", &partitions)
            .await
            .unwrap();
        let dead_offsets = offsets::read_table_offsets(&dead, "app", "t", &partitions)
            .await
            .unwrap();
        let checkpoints = (
            Checkpointer::new("bronze", 0, commit::version_of(&bronze)),
            Checkpointer::new("dead letters", 0, commit::version_of(&dead)),
        );
        Committer {
            app: "app".into(),
            topic: "t".into(),
            partitions,
            group: group.into(),
            owned: BTreeSet::from([0, 1]),
            dead_schema: RecordBatchWriter::for_table(&dead).unwrap().arrow_schema(),
            bronze: Tracked::new(bronze, held.clone()),
            dead: Tracked::new(dead, dead_offsets.clone()),
            held,
            dead_offsets,
            metrics: IngestMetrics::register(&mut Registry::default()),
            checkpoints,
            give_up: std::time::Duration::from_secs(1),
            summary: Summary::default(),
        }
    }

    /// The bronze table's Arrow schema (what the decoders build record batches with).
    fn schema_of(c: &Committer) -> SchemaRef {
        RecordBatchWriter::for_table(&c.bronze.table)
            .unwrap()
            .arrow_schema()
    }

    /// Offsets `first..=last` of `partition`; those in `bad` are malformed.
    fn batch(partition: i32, first: i64, last: i64, bad: &[i64], schema: &SchemaRef) -> Pending {
        let mut p = Pending::new();
        let mut rows = crate::batch::BronzeRows::new(16);
        let mut dead = Vec::new();
        for offset in first..=last {
            p.offsets.record(partition, offset);
            p.messages += 1;
            if bad.contains(&offset) {
                dead.push(dead_letters::DeadLetter {
                    partition,
                    offset,
                    payload: b"{".to_vec(),
                    reason: "not JSON".into(),
                    received_at_us: 0,
                });
            } else {
                let signal = decode(GOOD.as_bytes()).unwrap();
                rows.append(&signal, partition, offset, None);
            }
        }
        let decoded = Decoded {
            rows: rows.len(),
            batches: rows.finish(schema).unwrap(),
            dead,
        };
        p.chunks
            .push(decoders::Ticket::Ready(Box::new(Ok(decoded))));
        p
    }

    /// Rows in the table's latest version (from the files' statistics).
    async fn rows(uri: &str) -> u64 {
        let mut table = deltalake::open_table(url::Url::parse(uri).unwrap())
            .await
            .unwrap();
        commit::refresh(&mut table).await.unwrap();
        table
            .snapshot()
            .unwrap()
            .log_data()
            .iter()
            .map(|f| {
                let stats: serde_json::Value = serde_json::from_str(&f.stats().unwrap()).unwrap();
                stats["numRecords"].as_u64().unwrap()
            })
            .sum()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_commits_rows_dead_letters_and_txn_versions_once() {
        let scratch = Scratch::new("once");
        let uri = scratch.uri();
        let mut c = committer(&uri, "g").await;
        let outcome = c
            .commit_batch(batch(0, 0, 9, &[3], &schema_of(&c)))
            .await
            .unwrap();
        assert!(matches!(outcome, Outcome::Committed(_)));
        assert_eq!(c.held.get(&0), Some(&Some(9)));
        assert_eq!(c.dead_offsets.get(&0), Some(&Some(9)));
        assert_eq!(rows(&uri).await, 9);
        assert_eq!(rows(&format!("{uri}_dead_letters")).await, 1);
        // The next batch of the partition goes on from there.
        let outcome = c
            .commit_batch(batch(0, 10, 14, &[], &schema_of(&c)))
            .await
            .unwrap();
        assert!(matches!(outcome, Outcome::Committed(_)));
        assert_eq!(rows(&uri).await, 14);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_committers_racing_for_the_same_offsets_store_them_once() {
        let scratch = Scratch::new("race");
        let uri = scratch.uri();
        for round in 0..3 {
            let (mut a, mut b) = (committer(&uri, "g").await, committer(&uri, "g").await);
            let first = round * 10;
            let (ra, rb) = tokio::join!(
                a.commit_batch(batch(0, first, first + 9, &[first + 1], &schema_of(&a))),
                b.commit_batch(batch(0, first, first + 9, &[first + 1], &schema_of(&b)))
            );
            let committed = [ra.unwrap(), rb.unwrap()]
                .iter()
                .filter(|o| matches!(o, Outcome::Committed(_)))
                .count();
            assert_eq!(committed, 1, "round {round}: exactly one commits the batch");
        }
        assert_eq!(rows(&uri).await, 27, "30 offsets, 3 malformed, none twice");
        assert_eq!(rows(&format!("{uri}_dead_letters")).await, 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stale_committer_drops_its_batch_and_learns_where_the_table_is() {
        let scratch = Scratch::new("stale");
        let uri = scratch.uri();
        let (mut a, mut b) = (committer(&uri, "g").await, committer(&uri, "g").await);
        assert!(matches!(
            a.commit_batch(batch(1, 0, 4, &[], &schema_of(&a)))
                .await
                .unwrap(),
            Outcome::Committed(_)
        ));
        // b still expects partition 1 empty: its batch is dropped, nothing duplicated.
        assert!(matches!(
            b.commit_batch(batch(1, 0, 7, &[], &schema_of(&b)))
                .await
                .unwrap(),
            Outcome::Superseded
        ));
        assert_eq!(b.held.get(&1), Some(&Some(4)));
        assert!(matches!(
            b.commit_batch(batch(1, 5, 7, &[], &schema_of(&b)))
                .await
                .unwrap(),
            Outcome::Committed(_)
        ));
        assert_eq!(rows(&uri).await, 8);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_committer_of_another_group_is_fenced_with_one_line() {
        let scratch = Scratch::new("fence");
        let uri = scratch.uri();
        let (mut a, mut b) = (committer(&uri, "g1").await, committer(&uri, "g2").await);
        a.commit_batch(batch(0, 0, 4, &[], &schema_of(&a)))
            .await
            .unwrap();
        let err = match b.commit_batch(batch(0, 0, 4, &[], &schema_of(&b))).await {
            Err(e) => format!("{e:#}"),
            Ok(_) => panic!("the second group's batch must not be accepted"),
        };
        assert!(err.contains("consumer group 'g1' also writes"), "{err}");
        assert!(err.contains("--group-id g1"), "{err}");
        assert!(!err.contains('\n'));
        assert_eq!(rows(&uri).await, 5);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_tables_are_checkpointed_in_the_background() {
        let scratch = Scratch::new("checkpoint");
        let uri = scratch.uri();
        let mut c = committer(&uri, "g").await;
        c.checkpoints = (
            Checkpointer::new("bronze", 2, commit::version_of(&c.bronze.table)),
            Checkpointer::new("dead letters", 2, commit::version_of(&c.dead.table)),
        );
        for round in 0..3 {
            let first = round * 10;
            let batch = batch(0, first, first + 9, &[first], &schema_of(&c));
            c.commit_batch(batch).await.unwrap();
        }
        c.settle_checkpoints(std::time::Duration::from_secs(60))
            .await;
        // Versions 1..=3 in both tables; a checkpoint is due every 2 versions: at version 2.
        assert_eq!((c.checkpoints.0.last(), c.checkpoints.1.last()), (2, 2));
        for table in ["t", "t_dead_letters"] {
            let file = scratch
                .0
                .join(table)
                .join("_delta_log/00000000000000000002.checkpoint.parquet");
            assert!(file.exists(), "{} has no checkpoint at version 2", table);
        }
    }
}
