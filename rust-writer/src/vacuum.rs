//! `vacuum`: delete data files the table no longer references, once they are older than the
//! retention.
//!
//! Compaction removes small files from the table, but only logically: the `remove` action keeps
//! them readable for time travel and for readers that opened an older version. Vacuum deletes
//! them for real once their removal is older than `--retention-hours`.
//!
//! Two modes. **LITE** (the default) deletes only the files `remove` actions name: a file the
//! log removed can never be added again, so no write in flight can need it, whatever the
//! retention (the lab uses minutes, 0.01 h = 36 s). **FULL** also lists the table's folder
//! and deletes every file no version references and older than the retention: the orphans of
//! failed or killed writes, but also the files of a commit still in flight, which look exactly
//! the same. So FULL needs a retention longer than any write takes from its first file to its
//! commit: [`FULL_MODE_MIN_RETENTION_HOURS`], refused below with an `error:` line naming the
//! fix.
//!
//! The retention is also a promise to readers: a query that started on version N less than
//! the retention ago can still read all of N's files; time travel to a version whose files were
//! vacuumed fails. Below delta-rs's default safety limit (168 h) its check is disabled
//! explicitly.
//!
//! Each pass also deletes the log's own expired files (see [`cleanup_log`]).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use deltalake::DeltaTable;
use deltalake::operations::vacuum::VacuumMode;
use futures::TryStreamExt;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tracing::{info, warn};

use crate::commit;
use crate::config::{VacuumArgs, VacuumModeArg, dead_letter_uri};
use crate::errors::startup;
use crate::metrics::VacuumMetrics;
use crate::startup::{open_with_dead_letters, shutdown_signal};

/// Default metrics port of `vacuum`.
pub const METRICS_PORT: u16 = 9466;

/// The one JSON line printed by `--once`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct PassReport {
    pub files_deleted: u64,
    /// Commit and checkpoint files of the log deleted because they are older than the
    /// table's `logRetentionDuration` (30 days by default) and before the last checkpoint.
    pub log_files_deleted: u64,
    pub version: i64,
}

/// What `vacuum --once` prints: the table's pass, and its dead-letter table's beside it.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub table: PassReport,
    pub dead_letters: PassReport,
}

/// The shortest retention FULL mode accepts, in hours. A file of this binary is never left
/// uncommitted longer than this: an ingest attempt (Parquet upload and commit) is abandoned
/// after [`commit::ATTEMPT_DEADLINE`] (10 min) and retried with fresh files, a compaction of one
/// partition after [`crate::compact::PARTITION_DEADLINE`] (50 min); the hour leaves 10 minutes
/// for a request still in flight when its deadline strikes. (Another program writing to the
/// table must keep within the same bound, or use LITE.)
pub const FULL_MODE_MIN_RETENTION_HOURS: f64 = 1.0;

/// Refuse FULL mode with a retention that could delete the files of a commit in flight.
pub fn check_mode(mode: VacuumModeArg, retention_hours: f64) -> Result<(), String> {
    if mode == VacuumModeArg::Full && retention_hours < FULL_MODE_MIN_RETENTION_HOURS {
        return Err(format!(
            "--mode full deletes unreferenced files, and a commit still in flight has such files: \
             it needs --retention-hours {FULL_MODE_MIN_RETENTION_HOURS} or more (the longest a \
             write of this binary takes to commit, plus a margin), got {retention_hours}: raise \
             --retention-hours, or use --mode lite (only files the log removed)"
        ));
    }
    Ok(())
}

/// The retention as a chrono duration, or `None` for a negative or non-finite value.
pub fn retention(hours: f64) -> Option<chrono::Duration> {
    (hours.is_finite() && hours >= 0.0)
        .then(|| chrono::Duration::milliseconds((hours * 3_600_000.0).round() as i64))
}

/// Run `vacuum`: a pass every `--interval-s`, or one pass with `--once`, on the table and
/// then on its dead-letter table.
pub async fn run(args: VacuumArgs) -> Result<()> {
    let Some(retention) = retention(args.retention_hours) else {
        return startup(format!(
            "--retention-hours must be a number >= 0, got {}",
            args.retention_hours
        ));
    };
    if let Err(message) = check_mode(args.mode, args.retention_hours) {
        return startup(message);
    }
    let mode = match args.mode {
        VacuumModeArg::Lite => VacuumMode::Lite,
        VacuumModeArg::Full => VacuumMode::Full,
    };
    let uri = args.common.table_uri()?;
    let dead_uri = dead_letter_uri(&uri, args.dead_letter_uri.as_deref());
    let (mut table, mut dead) = open_with_dead_letters(&uri, &dead_uri, &args.common.s3).await?;
    let mut registry = Registry::default();
    let metrics = VacuumMetrics::register(&mut registry);
    if args.once {
        let report = Report {
            table: pass(&mut table, retention, mode.clone(), &metrics).await?,
            dead_letters: pass(&mut dead, retention, mode.clone(), &metrics)
                .await
                .context("vacuuming the dead-letter table")?,
        };
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    crate::metrics::serve(args.common.metrics_addr_or(METRICS_PORT), registry).await?;
    info!(table = %uri, dead_letters = %dead_uri, retention_hours = args.retention_hours, mode = ?args.mode, interval_s = args.interval_s, "vacuum ready");
    let mut shutdown = shutdown_signal();
    loop {
        for (name, table) in [("table", &mut table), ("dead letters", &mut dead)] {
            match pass(table, retention, mode.clone(), &metrics).await {
                Ok(report) => info!(of = name, ?report, "vacuum pass done"),
                Err(e) => warn!(
                    of = name,
                    error = format!("{e:#}"),
                    "vacuum pass failed; next pass retries"
                ),
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(args.interval_s)) => {}
        }
    }
}

/// One vacuum pass on the latest version.
pub async fn pass(
    table: &mut DeltaTable,
    retention: chrono::Duration,
    mode: VacuumMode,
    metrics: &VacuumMetrics,
) -> Result<PassReport> {
    let started = Instant::now();
    table.update_state().await.context("reloading the table")?;
    let existing = existing_files(table).await?;
    let (vacuumed, result) = table
        .clone()
        .vacuum()
        .with_retention_period(retention)
        .with_enforce_retention_duration(false)
        .with_mode(mode)
        .with_dry_run(false)
        .await
        .context("vacuuming")?;
    *table = vacuumed;
    let deleted = count_really_deleted(&result.files_deleted, &existing);
    let log_files_deleted = cleanup_log(table).await?;
    metrics.runs.inc();
    metrics.files_deleted.inc_by(deleted);
    metrics.seconds.observe(started.elapsed().as_secs_f64());
    Ok(PassReport {
        files_deleted: deleted,
        log_files_deleted,
        version: commit::version_of(table),
    })
}

/// Delete the log's expired commit and checkpoint files (Delta's "metadata cleanup").
///
/// A writer that commits every second adds 86,400 JSON commits a day to `_delta_log/`.
/// Readers never read the ones before the last checkpoint, but they stay on storage (and in
/// every listing of the folder) until a cleanup removes them. Only files older than the
/// table's `logRetentionDuration` and older than the last checkpoint go, so time travel keeps
/// working within that retention.
async fn cleanup_log(table: &DeltaTable) -> Result<u64> {
    let deleted = deltalake::checkpoints::cleanup_metadata(table, None)
        .await
        .context("deleting expired log files")?;
    Ok(deleted as u64)
}

/// Every object under the table's folder, as paths relative to the table root.
async fn existing_files(table: &DeltaTable) -> Result<HashSet<String>> {
    table
        .object_store()
        .list(None)
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .context("listing the table's files")
}

/// How many of the paths delta-rs reports as deleted existed before the pass.
///
/// delta-rs keeps a `remove` action (a tombstone) in the snapshot until the table's
/// `deletedFileRetentionDuration` (7 days by default) expires, and every vacuum pass issues a
/// DELETE for every expired tombstone again. S3 answers a DELETE of a missing key with 204 and
/// delta-rs also counts "not found" as deleted, so its `files_deleted` re-lists the files an
/// earlier pass already removed. Counting only paths that were listed before the pass reports
/// what this pass really deleted.
pub fn count_really_deleted(reported: &[String], existing: &HashSet<String>) -> u64 {
    reported.iter().filter(|p| existing.contains(*p)).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_already_gone_are_not_counted_again() {
        let existing: HashSet<String> = ["date=2026-11-23/a.parquet", "b.parquet"]
            .into_iter()
            .map(String::from)
            .collect();
        let reported: Vec<String> = ["date=2026-11-23/a.parquet", "gone.parquet", "b.parquet"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(count_really_deleted(&reported, &existing), 2);
        assert_eq!(count_really_deleted(&reported, &HashSet::new()), 0);
    }

    #[test]
    fn full_mode_refuses_a_retention_below_the_longest_commit() {
        assert!(check_mode(VacuumModeArg::Lite, 0.0).is_ok());
        assert!(check_mode(VacuumModeArg::Full, 1.0).is_ok());
        let err = check_mode(VacuumModeArg::Full, 0.5).unwrap_err();
        assert!(err.contains("--retention-hours 1 or more"), "{err}");
        assert!(err.contains("--mode lite") && !err.contains('\n'), "{err}");
        // The floor exceeds every deadline after which a write abandons its files.
        let floor = FULL_MODE_MIN_RETENTION_HOURS * 3600.0;
        assert!(floor > commit::ATTEMPT_DEADLINE.as_secs_f64());
        assert!(floor > crate::compact::PARTITION_DEADLINE.as_secs_f64());
    }

    #[test]
    fn retention_accepts_fractions_of_hours() {
        assert_eq!(retention(0.01), Some(chrono::Duration::seconds(36)));
        assert_eq!(retention(168.0), Some(chrono::Duration::hours(168)));
        assert_eq!(retention(-1.0), None);
        assert_eq!(retention(f64::NAN), None);
    }
}
