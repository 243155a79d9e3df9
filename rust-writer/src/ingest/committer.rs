//! The committing half of `ingest`: a filled batch -> Parquet files -> one Delta commit.
//!
//! The committer owns both tables. For one batch it commits the malformed messages to the
//! dead-letter table, then writes the rows' Parquet files and commits their `add` actions
//! with one txn action per partition in ONE commit, then checkpoints every
//! `--checkpoint-every` commits. It runs on a task of its own while the reader fills the next
//! batch, and only one batch is ever committing, so commits stay in offset order.

use std::time::Instant;

use anyhow::Result;
use delta_kernel::expressions::Scalar;
use deltalake::DeltaTable;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::Action;
use deltalake::protocol::{DeltaOperation, SaveMode};
use indexmap::IndexMap;
use tracing::{info, warn};

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

/// What happened to a bronze commit attempt loop.
enum Bronze {
    Committed {
        commit: Committed,
        files: usize,
        bytes: u64,
    },
    Superseded,
}

pub struct Committer {
    pub app: String,
    pub topic: String,
    pub partitions: Vec<i32>,
    pub bronze: DeltaTable,
    pub bronze_schema: SchemaRef,
    pub dead: DeltaTable,
    pub dead_schema: SchemaRef,
    /// The bronze table's txn versions as of the loaded snapshot: updated by our own commits,
    /// re-read from the log only after a failed or conflicting commit.
    pub held: TableOffsets,
    /// The dead-letter table's txn versions (what it already holds).
    pub dead_offsets: TableOffsets,
    pub metrics: IngestMetrics,
    pub checkpoint_every: u64,
    pub commits_since_checkpoint: u64,
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

        if !dead.is_empty() {
            self.commit_dead_letters(dead, &offsets).await?;
        }
        match self.commit_bronze(&parts, &offsets).await? {
            Bronze::Committed {
                commit,
                files,
                bytes,
            } => {
                let seconds = started.elapsed().as_secs_f64();
                for (p, r) in offsets.ranges() {
                    self.held.insert(*p, Some(r.last));
                }
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
                Ok(Outcome::Committed(offsets))
            }
            Bronze::Superseded => {
                warn!(
                    offsets = %describe(&offsets), table = ?self.held,
                    "the table already holds these offsets: batch dropped, re-seeking"
                );
                self.reread_dead_offsets().await;
                Ok(Outcome::Superseded {
                    held: self.held.clone(),
                    dead_offsets: self.dead_offsets.clone(),
                })
            }
        }
    }

    /// Commit dead letters (before the bronze commit of the same batch). Retries until done.
    async fn commit_dead_letters(
        &mut self,
        mut dead: Vec<DeadLetter>,
        offsets: &BatchOffsets,
    ) -> Result<()> {
        let mut backoff = Backoff::for_io();
        loop {
            let batch = dead_letters::to_record_batch(&self.topic, &dead, &self.dead_schema)?;
            let attempt = async {
                let adds =
                    commit::write_files(&self.dead, [(IndexMap::new(), batch)], None).await?;
                let mut actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
                actions.extend(
                    offsets
                        .txn_actions(&self.app, &self.topic)
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
                            &self.app,
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
        parts: &[(PartitionValues, RecordBatch)],
        offsets: &BatchOffsets,
    ) -> Result<Bronze> {
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
                            &self.app,
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
                return Ok(Bronze::Superseded);
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
                    .txn_actions(&self.app, &self.topic)
                    .into_iter()
                    .map(Action::Txn),
            );
            match commit::commit(&mut self.bronze, actions, append(), COMMIT_RETRIES).await {
                Ok(commit) => {
                    return Ok(Bronze::Committed {
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
        self.commits_since_checkpoint += 1;
        if self.checkpoint_every == 0 || self.commits_since_checkpoint < self.checkpoint_every {
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

    /// Reload the dead-letter table's txn versions (after a superseded batch). Retries.
    async fn reread_dead_offsets(&mut self) {
        let mut backoff = Backoff::for_io();
        loop {
            let dead = match commit::refresh(&mut self.dead).await {
                Ok(()) => {
                    offsets::read_table_offsets(
                        &self.dead,
                        &self.app,
                        &self.topic,
                        &self.partitions,
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            match dead {
                Ok(dead) => {
                    self.dead_offsets = dead;
                    return;
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
