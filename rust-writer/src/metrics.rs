//! Prometheus metrics and the tiny HTTP server that exposes them at `/metrics`.
//!
//! HTTP 200 at `/metrics` is also the health gate the lab's process manager waits for. The
//! server binds to a loopback address by default: metrics say nothing secret, but nothing on
//! this port needs to be reachable from another machine.
//!
//! prometheus-client appends `_total` to counters, so `messages` is exposed as
//! `neuralake_writer_messages_total`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::errors::StartupError;

/// Label of the per-partition gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabel {
    pub partition: String,
}

impl PartitionLabel {
    pub fn new(partition: i32) -> Self {
        Self {
            partition: partition.to_string(),
        }
    }
}

/// Buckets for durations from 5 ms to ~80 s.
fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// Metrics of `ingest`.
#[derive(Clone)]
pub struct IngestMetrics {
    pub ready: Gauge,
    pub messages: Counter,
    pub rows: Counter,
    pub dead_letters: Counter,
    pub batches: Counter,
    pub bytes: Counter,
    pub commit_seconds: Histogram,
    pub commit_conflicts: Counter,
    pub batches_dropped: Counter,
    pub consumer_lag: Family<PartitionLabel, Gauge>,
    pub committed_offset: Family<PartitionLabel, Gauge>,
    pub freshness_seconds: Gauge<f64, AtomicU64>,
    pub table_version: Gauge,
    pub commit_failures: Counter,
    pub seconds_since_last_commit: Gauge<f64, AtomicU64>,
    /// 1 per partition this worker owns in its consumer group (absent: not owned).
    pub assigned_partitions: Family<PartitionLabel, Gauge>,
    pub rebalances: Counter,
    /// Per partition, offsets that were gone from the topic before they were read.
    pub offset_gaps: Family<PartitionLabel, Counter>,
    /// When the last bronze commit landed and since when commits have been failing.
    pub health: Arc<CommitHealth>,
}

/// How long commits may keep failing before `neuralake_writer_ready` reads 0 (stalled).
pub const STALL_AFTER: Duration = Duration::from_secs(30);

/// The committer's progress, read once a second for `ready` and
/// `seconds_since_last_commit` (the committer itself may be stuck in a retry loop).
#[derive(Debug)]
pub struct CommitHealth {
    /// Unix milliseconds of the last bronze commit (the start, before the first).
    last_commit_ms: AtomicI64,
    /// Unix milliseconds of the first failure since the last success; 0: not failing.
    failing_since_ms: AtomicI64,
}

impl CommitHealth {
    pub fn new(now_ms: i64) -> Self {
        Self {
            last_commit_ms: AtomicI64::new(now_ms),
            failing_since_ms: AtomicI64::new(0),
        }
    }

    /// A bronze commit landed (or a batch was found already in the table): not failing.
    pub fn committed(&self, now_ms: i64, landed: bool) {
        if landed {
            self.last_commit_ms.store(now_ms, Ordering::Relaxed);
        }
        self.failing_since_ms.store(0, Ordering::Relaxed);
    }

    /// An attempt failed; the first failure since the last success starts the clock.
    pub fn failed(&self, now_ms: i64) {
        let _ =
            self.failing_since_ms
                .compare_exchange(0, now_ms, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// (seconds since the last commit, stalled?) at `now_ms`.
    pub fn read(&self, now_ms: i64) -> (f64, bool) {
        let since = (now_ms - self.last_commit_ms.load(Ordering::Relaxed)).max(0);
        let failing_since = self.failing_since_ms.load(Ordering::Relaxed);
        let stalled =
            failing_since != 0 && now_ms - failing_since >= STALL_AFTER.as_millis() as i64;
        (since as f64 / 1000.0, stalled)
    }
}

impl IngestMetrics {
    /// Create and register every ingest metric.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            ready: Gauge::default(),
            messages: Counter::default(),
            rows: Counter::default(),
            dead_letters: Counter::default(),
            batches: Counter::default(),
            bytes: Counter::default(),
            commit_seconds: seconds_histogram(),
            commit_conflicts: Counter::default(),
            batches_dropped: Counter::default(),
            consumer_lag: Family::default(),
            committed_offset: Family::default(),
            freshness_seconds: Gauge::default(),
            table_version: Gauge::default(),
            commit_failures: Counter::default(),
            seconds_since_last_commit: Gauge::default(),
            assigned_partitions: Family::default(),
            rebalances: Counter::default(),
            offset_gaps: Family::default(),
            health: Arc::new(CommitHealth::new(chrono::Utc::now().timestamp_millis())),
        };
        let r = registry;
        r.register(
            "neuralake_writer_ready",
            "1 once the table is open and partitions assigned",
            m.ready.clone(),
        );
        r.register(
            "neuralake_writer_messages",
            "Kafka messages consumed",
            m.messages.clone(),
        );
        r.register(
            "neuralake_writer_rows",
            "Rows committed to the bronze table",
            m.rows.clone(),
        );
        r.register(
            "neuralake_writer_dead_letters",
            "Malformed messages committed to the dead-letter table",
            m.dead_letters.clone(),
        );
        r.register(
            "neuralake_writer_batches",
            "Batches committed to the bronze table",
            m.batches.clone(),
        );
        r.register(
            "neuralake_writer_bytes",
            "Parquet bytes written to the bronze table",
            m.bytes.clone(),
        );
        r.register(
            "neuralake_writer_commit_seconds",
            "Duration of one bronze commit (Parquet upload and log commit)",
            m.commit_seconds.clone(),
        );
        r.register(
            "neuralake_writer_batches_dropped",
            "Batches dropped because the table already held their offsets (another writer, or a commit whose response was lost)",
            m.batches_dropped.clone(),
        );
        r.register(
            "neuralake_writer_commit_conflicts",
            "Concurrent commits met while committing",
            m.commit_conflicts.clone(),
        );
        r.register(
            "neuralake_writer_consumer_lag",
            "Messages in the partition not yet committed to the table",
            m.consumer_lag.clone(),
        );
        r.register(
            "neuralake_writer_committed_offset",
            "Last Kafka offset committed to the table",
            m.committed_offset.clone(),
        );
        r.register(
            "neuralake_writer_freshness_seconds",
            "At the last commit: commit end minus the oldest Kafka timestamp of the batch",
            m.freshness_seconds.clone(),
        );
        r.register(
            "neuralake_writer_table_version",
            "Bronze table version after the last commit",
            m.table_version.clone(),
        );
        r.register(
            "neuralake_writer_commit_failures",
            "Failed commit attempts, retried (S3 errors, conflicts, deadlines)",
            m.commit_failures.clone(),
        );
        r.register(
            "neuralake_writer_seconds_since_last_commit",
            "Seconds since the last bronze commit (since the start before the first)",
            m.seconds_since_last_commit.clone(),
        );
        r.register(
            "neuralake_writer_assigned_partition",
            "1 for each partition this worker owns in its consumer group",
            m.assigned_partitions.clone(),
        );
        r.register(
            "neuralake_writer_rebalances",
            "Partitions assigned to or revoked from this worker, one count per rebalance event",
            m.rebalances.clone(),
        );
        r.register(
            "neuralake_writer_offset_gap_messages",
            "Offsets removed from the topic (retention) before this writer read them",
            m.offset_gaps.clone(),
        );
        m
    }

    /// A partition left this worker: its per-partition series go (its new owner reports it).
    pub fn forget_partition(&self, partition: i32) {
        let label = PartitionLabel::new(partition);
        self.assigned_partitions.remove(&label);
        self.consumer_lag.remove(&label);
        self.committed_offset.remove(&label);
    }

    /// Once a second: `seconds_since_last_commit`, and `ready` 0 while commits have been
    /// failing for [`STALL_AFTER`] or more.
    pub fn spawn_health_ticker(&self) {
        let m = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let (since, stalled) = m.health.read(chrono::Utc::now().timestamp_millis());
                m.seconds_since_last_commit.set(since);
                m.ready.set(if stalled { 0 } else { 1 });
            }
        });
    }
}

/// Metrics of `compact`.
#[derive(Clone)]
pub struct CompactMetrics {
    pub runs: Counter,
    pub files_removed: Counter,
    pub files_added: Counter,
    pub bytes_rewritten: Counter,
    pub conflicts: Counter,
    pub seconds: Histogram,
}

impl CompactMetrics {
    /// Create and register every compaction metric.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            runs: Counter::default(),
            files_removed: Counter::default(),
            files_added: Counter::default(),
            bytes_rewritten: Counter::default(),
            conflicts: Counter::default(),
            seconds: seconds_histogram(),
        };
        let r = registry;
        r.register(
            "neuralake_compact_runs",
            "Compaction passes",
            m.runs.clone(),
        );
        r.register(
            "neuralake_compact_files_removed",
            "Small files removed by compaction",
            m.files_removed.clone(),
        );
        r.register(
            "neuralake_compact_files_added",
            "Files written by compaction",
            m.files_added.clone(),
        );
        r.register(
            "neuralake_compact_bytes_rewritten",
            "Bytes of small files rewritten",
            m.bytes_rewritten.clone(),
        );
        r.register(
            "neuralake_compact_conflicts",
            "Commit conflicts met by compaction",
            m.conflicts.clone(),
        );
        r.register(
            "neuralake_compact_seconds",
            "Duration of one compaction pass",
            m.seconds.clone(),
        );
        m
    }
}

/// Metrics of `vacuum`.
#[derive(Clone)]
pub struct VacuumMetrics {
    pub runs: Counter,
    pub files_deleted: Counter,
    pub seconds: Histogram,
}

impl VacuumMetrics {
    /// Create and register every vacuum metric.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            runs: Counter::default(),
            files_deleted: Counter::default(),
            seconds: seconds_histogram(),
        };
        registry.register("neuralake_vacuum_runs", "Vacuum passes", m.runs.clone());
        registry.register(
            "neuralake_vacuum_files_deleted",
            "Unreferenced files deleted",
            m.files_deleted.clone(),
        );
        registry.register(
            "neuralake_vacuum_seconds",
            "Duration of one vacuum pass",
            m.seconds.clone(),
        );
        m
    }
}

/// The text exposition of a registry.
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut body = String::new();
    encode(&mut body, registry)?;
    Ok(body)
}

async fn metrics_handler(State(registry): State<Arc<Registry>>) -> impl IntoResponse {
    match render(&registry) {
        Ok(body) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Bind `addr` now (a busy port is a start-up error) and serve `/metrics` in the background.
pub async fn serve(addr: SocketAddr, registry: Registry) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        StartupError::new(format!(
            "cannot serve metrics on {addr}: {e}: stop the process using it or pass --metrics-addr"
        ))
    })?;
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .with_state(Arc::new(registry));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    tracing::info!(%addr, "serving /metrics");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ready_drops_only_after_failing_for_the_stall_time() {
        let h = CommitHealth::new(1_000);
        assert_eq!(h.read(4_000), (3.0, false));
        h.failed(5_000);
        h.failed(20_000); // the first failure starts the clock
        assert!(!h.read(34_999).1);
        assert!(h.read(35_000).1, "30 s of failures: stalled");
        h.committed(40_000, false); // a dropped batch: progress, no commit
        assert_eq!(h.read(41_000), (40.0, false));
        h.committed(42_000, true);
        assert_eq!(h.read(42_500), (0.5, false));
    }

    use super::*;

    #[test]
    fn exposes_the_contract_names() {
        let mut registry = Registry::default();
        let m = IngestMetrics::register(&mut registry);
        m.messages.inc_by(3);
        m.consumer_lag.get_or_create(&PartitionLabel::new(2)).set(7);
        m.commit_seconds.observe(0.1);
        let text = render(&registry).unwrap();
        assert!(text.contains("neuralake_writer_messages_total 3"), "{text}");
        assert!(
            text.contains("neuralake_writer_commit_failures_total 0"),
            "{text}"
        );
        assert!(
            text.contains("neuralake_writer_seconds_since_last_commit "),
            "{text}"
        );
        assert!(
            text.contains("neuralake_writer_consumer_lag{partition=\"2\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("neuralake_writer_commit_seconds_count 1"),
            "{text}"
        );
        assert!(text.contains("neuralake_writer_ready 0"), "{text}");
    }
}
