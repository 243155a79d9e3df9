//! The committing half of `ingest`: a filled batch -> Parquet files -> one Delta commit.
//!
//! The committer owns both tables. For one batch it commits the malformed messages to the
//! dead-letter table, then writes the rows' Parquet files and commits their `add` actions
//! with one txn action per partition in ONE commit, then checkpoints every
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
use super::reader::Pending;
use crate::commit::{self, Committed, PartitionValues};
use crate::dead_letters::{self, DeadLetter};
use crate::metrics::{IngestMetrics, PartitionLabel};
use crate::offsets::{self, BatchOffsets, TableOffsets};
use crate::retry::Backoff;
use crate::schema::DATE_COLUMN;

/// Conflicts delta-rs may resolve per commit before handing the error to us.
const COMMIT_RETRIES: usize = 15;

/// What happened to a batch.
pub enum Outcome {
    /// In the table, in one commit: these offsets are done.
    Committed(BatchOffsets),
    /// The table already holds (some of) these offsets: batch dropped. Re-read from `held`.
    Superseded {
        held: TableOffsets,
        dead_offsets: TableOffsets,
    },
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

/// A Delta table with the txn versions of our appIds in its loaded snapshot.
pub struct Tracked {
    pub table: DeltaTable,
    /// Per partition, the txn version in the snapshot version `txn_at` (exactly).
    pub txn: TableOffsets,
    /// The snapshot version `txn` describes; it lags the table's after a failed log read,
    /// and the next [`Committer::sync`] catches up.
    pub txn_at: u64,
}

impl Tracked {
    /// A freshly opened table and the txn versions read from it.
    pub fn new(table: DeltaTable, txn: TableOffsets) -> Self {
        let txn_at = table.version().unwrap_or(0);
        Self { table, txn, txn_at }
    }
}

pub struct Committer {
    pub app: String,
    pub topic: String,
    pub partitions: Vec<i32>,
    pub bronze: Tracked,
    pub bronze_schema: SchemaRef,
    pub dead: Tracked,
    pub dead_schema: SchemaRef,
    /// Per partition, the bronze txn version this writer expects: its own last commit, or what
    /// it read when it last sought there. The reader's position follows it.
    pub held: TableOffsets,
    /// The same for the dead-letter table (what it already holds).
    pub dead_offsets: TableOffsets,
    pub metrics: IngestMetrics,
    pub checkpoint_every: u64,
    pub commits_since_checkpoint: u64,
    pub dead_commits_since_checkpoint: u64,
    pub summary: Summary,
}

impl Committer {
    /// Dead letters, then bronze, then maybe a checkpoint, for one batch.
    pub async fn commit_batch(&mut self, pending: Pending) -> Result<Outcome> {
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
        let parts: Vec<(PartitionValues, RecordBatch)> = rows
            .finish(&self.bronze_schema)?
            .into_iter()
            .map(|(date, batch)| {
                let values: PartitionValues =
                    IndexMap::from([(DATE_COLUMN.to_string(), Scalar::Date(date))]);
                (values, batch)
            })
            .collect();

        if !dead.is_empty()
            && let Attempt::Superseded(partitions) =
                self.commit_dead_letters(&dead, &offsets).await?
        {
            return Ok(self.superseded("dead-letter", &partitions, &offsets).await);
        }
        match self.commit_bronze(&parts, &offsets).await? {
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
                self.maybe_checkpoint().await;
                self.metrics.health.committed(now_ms(), true);
                Ok(Outcome::Committed(offsets))
            }
            Attempt::Superseded(partitions) => {
                Ok(self.superseded("bronze", &partitions, &offsets).await)
            }
        }
    }

    /// The batch is dropped: log one line, and hand the reader the tables' offsets to seek to.
    async fn superseded(
        &mut self,
        table: &str,
        partitions: &[i32],
        offsets: &BatchOffsets,
    ) -> Outcome {
        let found = |txn: &TableOffsets| -> String {
            partitions
                .iter()
                .map(|p| format!("{p}:{:?}", txn.get(p).copied().flatten()))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let (txn, expected) = match table {
            "bronze" => (&self.bronze.txn, &self.held),
            _ => (&self.dead.txn, &self.dead_offsets),
        };
        warn!(
            table, offsets = %describe(offsets), expected = %found(expected), found = %found(txn),
            "the table holds offsets this writer did not commit (another writer, or a commit whose response was lost): batch dropped, re-seeking from the table"
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
        Outcome::Superseded {
            held: self.held.clone(),
            dead_offsets: self.dead_offsets.clone(),
        }
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
            Ok(changes) => {
                for (p, v) in changes {
                    if partitions.contains(&p) {
                        tracked.txn.insert(p, Some(v));
                    }
                }
            }
            Err(e) => {
                warn!(
                    error = format!("{e:#}"),
                    "reading the new commits failed; reading every partition's txn version instead"
                );
                tracked.txn =
                    offsets::read_table_offsets(&tracked.table, app, topic, partitions).await?;
            }
        }
        tracked.txn_at = now;
        Ok(())
    }

    /// After our commit: the txn versions of the snapshot it produced. If delta-rs rebased it
    /// over other commits, theirs are read from the log first (their partitions are not in
    /// our batch, or delta-rs would have failed ours): a change there is another writer, and
    /// the next batch on that partition will be dropped by the check before its commit.
    async fn adopt(
        tracked: &mut Tracked,
        commit: &Committed,
        ours: &[Transaction],
        expected: &TableOffsets,
        names: (&str, &str, &[i32]),
    ) {
        let (app, topic, partitions) = names;
        let version = commit.version as u64;
        if version > tracked.txn_at + 1 {
            let first = tracked.txn_at + 1;
            match offsets::txn_versions_in_commits(&tracked.table, app, topic, first, version - 1)
                .await
            {
                Ok(theirs) => {
                    for (p, v) in theirs {
                        if ours
                            .iter()
                            .any(|t| t.app_id == offsets::app_id(app, topic, p))
                        {
                            error!(
                                partition = p,
                                version = v,
                                "a commit we were rebased over carries our batch's appId"
                            );
                        } else if expected.get(&p).copied().flatten() != Some(v) {
                            warn!(
                                partition = p,
                                version = v,
                                "another writer committed this partition; its next batch here will be dropped"
                            );
                        }
                        if partitions.contains(&p) {
                            tracked.txn.insert(p, Some(v));
                        }
                    }
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
            if let Some(p) = t.app_id.rsplit('/').next().and_then(|p| p.parse().ok()) {
                tracked.txn.insert(p, Some(t.version));
            }
        }
        tracked.txn_at = version;
    }

    /// Commit dead letters (before the bronze commit of the same batch). Retries until
    /// committed or superseded.
    async fn commit_dead_letters(
        &mut self,
        dead: &[DeadLetter],
        offsets: &BatchOffsets,
    ) -> Result<Attempt> {
        let mut backoff = Backoff::for_io();
        loop {
            if let Err(e) =
                Self::sync(&mut self.dead, &self.app, &self.topic, &self.partitions).await
            {
                self.failed();
                warn!(
                    error = format!("{e:#}"),
                    attempt = backoff.attempts(),
                    "reloading the dead-letter table failed; retrying"
                );
                backoff.wait().await;
                continue;
            }
            let foreign = offsets::unexpected(offsets, &self.dead.txn, &self.dead_offsets);
            if !foreign.is_empty() {
                return Ok(Attempt::Superseded(foreign));
            }
            // Never move a dead-letter txn version back: a partition the table already holds
            // past this batch (a replay after a crash between the two commits) gets none.
            let txns = offsets.txn_actions_past(&self.app, &self.topic, &self.dead.txn);
            let batch = dead_letters::to_record_batch(&self.topic, dead, &self.dead_schema)?;
            let attempt = within_deadline(async {
                let adds =
                    commit::write_files(&self.dead.table, [(IndexMap::new(), batch)], None).await?;
                let files = adds.len();
                let bytes: u64 = adds.iter().map(|a| a.size.max(0) as u64).sum();
                let mut actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
                actions.extend(txns.iter().cloned().map(Action::Txn));
                let committed =
                    commit::commit(&mut self.dead.table, actions, append(), COMMIT_RETRIES).await?;
                Ok((committed, files, bytes))
            })
            .await;
            match attempt {
                Ok((commit, files, bytes)) => {
                    let names = (
                        self.app.as_str(),
                        self.topic.as_str(),
                        self.partitions.as_slice(),
                    );
                    Self::adopt(&mut self.dead, &commit, &txns, &self.dead_offsets, names).await;
                    for t in &txns {
                        if let Some(p) = t.app_id.rsplit('/').next().and_then(|p| p.parse().ok()) {
                            self.dead_offsets.insert(p, Some(t.version));
                        }
                    }
                    self.metrics.dead_letters.inc_by(dead.len() as u64);
                    self.summary.dead_letters += dead.len() as u64;
                    info!(
                        version = commit.version,
                        dead_letters = dead.len(),
                        "committed dead letters"
                    );
                    self.maybe_checkpoint_dead().await;
                    return Ok(Attempt::Committed {
                        commit,
                        files,
                        bytes,
                    });
                }
                Err(e) => {
                    self.failed();
                    let conflict = is_conflict(&e);
                    warn!(
                        error = format!("{e:#}"),
                        conflict,
                        attempt = backoff.attempts(),
                        "dead-letter commit failed; reloading the table and retrying"
                    );
                    if !conflict {
                        backoff.wait().await;
                    }
                }
            }
        }
    }

    /// Commit the rows and txn actions in one Delta commit. Retries until committed or
    /// superseded.
    async fn commit_bronze(
        &mut self,
        parts: &[(PartitionValues, RecordBatch)],
        offsets: &BatchOffsets,
    ) -> Result<Attempt> {
        let mut backoff = Backoff::for_io();
        loop {
            if let Err(e) =
                Self::sync(&mut self.bronze, &self.app, &self.topic, &self.partitions).await
            {
                self.failed();
                warn!(
                    error = format!("{e:#}"),
                    attempt = backoff.attempts(),
                    "reloading the table failed; retrying"
                );
                backoff.wait().await;
                continue;
            }
            let foreign = offsets::unexpected(offsets, &self.bronze.txn, &self.held);
            if !foreign.is_empty() {
                return Ok(Attempt::Superseded(foreign));
            }
            let txns = offsets.txn_actions(&self.app, &self.topic);
            let attempt = within_deadline(async {
                let adds = if parts.is_empty() {
                    Vec::new()
                } else {
                    commit::write_files(&self.bronze.table, parts.iter().cloned(), None).await?
                };
                let files = adds.len();
                let bytes: u64 = adds.iter().map(|a| a.size.max(0) as u64).sum();
                let mut actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
                actions.extend(txns.iter().cloned().map(Action::Txn));
                let committed =
                    commit::commit(&mut self.bronze.table, actions, append(), COMMIT_RETRIES)
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
                    );
                    Self::adopt(&mut self.bronze, &commit, &txns, &self.held, names).await;
                    for (p, r) in offsets.ranges() {
                        self.held.insert(*p, Some(r.last));
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
                    warn!(
                        error = format!("{e:#}"),
                        conflict,
                        attempt = backoff.attempts(),
                        "bronze commit failed; reloading the table and retrying with fresh files"
                    );
                    if !conflict {
                        backoff.wait().await;
                    }
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

    async fn maybe_checkpoint(&mut self) {
        let every = self.checkpoint_every;
        let count = &mut self.commits_since_checkpoint;
        checkpoint_if_due(&self.bronze.table, count, every, "bronze").await;
    }

    /// The dead-letter table gets checkpoints too (it is read by the same tools, and without
    /// them opening it replays every JSON commit), counted in its own commits.
    async fn maybe_checkpoint_dead(&mut self) {
        let every = self.checkpoint_every;
        let count = &mut self.dead_commits_since_checkpoint;
        checkpoint_if_due(&self.dead.table, count, every, "dead letters").await;
    }
}

/// Count one commit; every `every` commits (0: never) write a checkpoint of `table`.
async fn checkpoint_if_due(table: &DeltaTable, count: &mut u64, every: u64, name: &str) {
    *count += 1;
    if every == 0 || *count < every {
        return;
    }
    let started = Instant::now();
    match commit::checkpoint(table).await {
        Ok(()) => {
            *count = 0;
            info!(
                table = name,
                version = commit::version_of(table),
                seconds = started.elapsed().as_secs_f64(),
                "checkpoint written"
            );
        }
        Err(e) => warn!(
            table = name,
            error = format!("{e:#}"),
            "checkpoint failed; will try again after the next commit"
        ),
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
