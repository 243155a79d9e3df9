//! Checkpoints in the background: the committer starts one and goes on committing.
//!
//! A checkpoint (a Parquet summary of the Delta log) takes from tens of milliseconds to a
//! second or more on a big table. Written inline, it delayed the next commit by that much,
//! which showed as a spike in freshness every `--checkpoint-every` commits. Now the committer
//! hands a copy of the table's snapshot to a task and goes on: at most one checkpoint per table
//! is in flight (a due checkpoint waits while the previous one runs), and one that failed is
//! tried again after the next commit. A checkpoint is an optimisation for readers, never part
//! of a commit: one lost at exit costs nothing but a longer log replay.

use std::time::{Duration, Instant};

use anyhow::Result;
use deltalake::DeltaTable;
use futures::FutureExt;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::commit;

/// When to checkpoint one table, and the checkpoint in flight.
pub struct Checkpointer {
    /// The table's name in the logs (`bronze`, `dead letters`).
    name: &'static str,
    /// `--checkpoint-every`: a checkpoint once this many versions passed (0: never).
    every: i64,
    /// The version of the last checkpoint written (or of the table at start).
    last: i64,
    /// The checkpoint being written: its version when it succeeds.
    running: Option<JoinHandle<Result<i64>>>,
}

impl Checkpointer {
    pub fn new(name: &'static str, every: u64, version_at_start: i64) -> Self {
        Self {
            name,
            every: i64::try_from(every).unwrap_or(i64::MAX),
            last: version_at_start,
            running: None,
        }
    }

    /// After a commit: start a checkpoint of `table`'s loaded version if one is due and none
    /// is running. Never waits.
    pub fn after_commit(&mut self, table: &DeltaTable) {
        if self.every == 0 || !self.take_finished() {
            return;
        }
        let version = commit::version_of(table);
        if version - self.last < self.every {
            return;
        }
        let (table, name) = (table.clone(), self.name);
        self.running = Some(tokio::spawn(async move {
            let started = Instant::now();
            match commit::checkpoint(&table).await {
                Ok(()) => {
                    let seconds = started.elapsed().as_secs_f64();
                    info!(table = name, version, seconds, "checkpoint written");
                    Ok(version)
                }
                Err(e) => {
                    warn!(
                        table = name,
                        error = format!("{e:#}"),
                        "checkpoint failed; will try again after the next commit"
                    );
                    Err(e)
                }
            }
        }));
    }

    /// Is no checkpoint running (any finished one taken into account)?
    fn take_finished(&mut self) -> bool {
        let Some(task) = self.running.take_if(|t| t.is_finished()) else {
            return self.running.is_none();
        };
        if let Some(Ok(Ok(version))) = task.now_or_never() {
            self.last = version;
        }
        true
    }

    /// At exit: let a checkpoint in flight finish, waiting at most `limit`.
    pub async fn settle(&mut self, limit: Duration) {
        if let Some(task) = self.running.take()
            && let Ok(Ok(Ok(version))) = tokio::time::timeout(limit, task).await
        {
            self.last = version;
        }
    }

    /// The version of the last checkpoint written (or of the table at start).
    #[cfg(test)]
    pub fn last(&self) -> i64 {
        self.last
    }
}
