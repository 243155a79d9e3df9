//! Writing Parquet files and committing them to the Delta log, shared by all three processes.
//!
//! delta-rs 1.x without its `datafusion` feature still has everything a streaming writer needs:
//! `RecordBatchWriter` (Parquet files + `add` actions with statistics), `CommitBuilder` (an
//! atomic commit of any actions, with the conflict checker) and checkpoints.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use delta_kernel::expressions::Scalar;
use deltalake::kernel::transaction::{
    CommitBuilder, CommitConflictError, CommitProperties, TransactionError,
};
use deltalake::kernel::{Action, Add};
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::parquet::schema::types::ColumnPath;
use deltalake::protocol::DeltaOperation;
use deltalake::writer::{RecordBatchWriter, WriteMode};
use deltalake::{DeltaTable, DeltaTableError};
use indexmap::IndexMap;

use deltalake::arrow::record_batch::RecordBatch;

/// Partition values of one file: column name -> typed value (empty for unpartitioned tables).
pub type PartitionValues = IndexMap<String, Scalar>;

/// The longest one ingest attempt (write a batch's Parquet files, then commit them) may take;
/// past it the attempt is abandoned and retried with fresh files, so no file of the writer
/// waits longer than this for its commit (what `vacuum --mode full`'s floor relies on).
/// A batch is at most `--flush-bytes` (64 MiB) of payload: its upload takes seconds.
pub const ATTEMPT_DEADLINE: Duration = Duration::from_secs(10 * 60);

/// What a Parquet file is written for: its settings differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// `ingest`: small files written on the hot path, rewritten by compaction later. Cheap on
    /// CPU first: a fast codec, and no dictionary for columns whose values hardly repeat
    /// (floats, timestamps, offsets), where building one costs a hash per value and the
    /// Parquet writer throws it away anyway once it outgrows its page.
    Ingest,
    /// `compact`: the files readers keep for good. Small first: ZSTD, dictionaries everywhere.
    Compact,
}

/// Columns of the bronze table whose values are (nearly) all distinct.
const NO_DICTIONARY_AT_INGEST: [&str; 5] = [
    "timestamp",
    "voltage_uv",
    "quality",
    "kafka_offset",
    "kafka_timestamp",
];

/// The codec of ingest's files. Measured (`parquet_settings_measured`, 400,000 rows, load
/// about 10): Snappy 77 ms, LZ4_RAW 107 ms, none 58 ms but 40 % bigger files.
pub const INGEST_CODEC: Compression = Compression::SNAPPY;

/// Parquet settings for `job`, with one row group per flush-sized file (the writer's batches
/// are at most `--flush-rows` rows). Column names the table does not have (the dead-letter
/// table's) are ignored.
pub fn writer_properties(job: Job) -> WriterProperties {
    let builder = WriterProperties::builder().set_max_row_group_row_count(Some(1_048_576));
    match job {
        Job::Ingest => NO_DICTIONARY_AT_INGEST
            .iter()
            .fold(builder.set_compression(INGEST_CODEC), |b, column| {
                b.set_column_dictionary_enabled(ColumnPath::from(*column), false)
            })
            .build(),
        Job::Compact => builder
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build(),
    }
}

/// Write one Parquet file per partition value (more if `target_file_size` rolls them over) and
/// return their `add` actions. Nothing is visible to readers until the actions are committed;
/// files of a batch that is never committed are orphans that `vacuum` removes later.
pub async fn write_files(
    table: &DeltaTable,
    parts: impl IntoIterator<Item = (PartitionValues, RecordBatch)>,
    target_file_size: Option<u64>,
    job: Job,
) -> Result<Vec<Add>> {
    let mut writer = RecordBatchWriter::for_table(table)
        .context("creating a Parquet writer for the table")?
        .with_writer_properties(writer_properties(job));
    if let Some(size) = target_file_size {
        writer = writer.with_target_file_size(size);
    }
    for (values, batch) in parts {
        writer
            .write_partition(batch, &values, WriteMode::Default)
            .await
            .context("writing Parquet")?;
    }
    use deltalake::writer::DeltaWriter as _;
    writer.flush().await.context("finishing Parquet files")
}

/// The result of a successful commit.
#[derive(Debug, Clone, Copy)]
pub struct Committed {
    pub version: i64,
    /// Commits by others that landed between our snapshot and our commit, which delta-rs's
    /// conflict checker found compatible (the version gap minus one).
    pub conflicts_resolved: u64,
    pub seconds: f64,
}

/// Commit `actions` on top of the table's loaded snapshot and adopt the new snapshot.
///
/// `max_retries` is how many concurrent commits delta-rs may resolve with its conflict checker
/// (appends and `dataChange: false` rewrites do not conflict with each other); 0 makes any
/// concurrent commit an error the caller handles itself. Checkpoints are the caller's job
/// (`--checkpoint-every`), so the post-commit hook is told not to write them. `metadata` goes
/// into the commit's `commitInfo` (ingest names its consumer group there).
pub async fn commit(
    table: &mut DeltaTable,
    actions: Vec<Action>,
    operation: DeltaOperation,
    max_retries: usize,
    metadata: Vec<(String, serde_json::Value)>,
) -> Result<Committed, DeltaTableError> {
    let started = Instant::now();
    let properties = CommitProperties::default()
        .with_metadata(metadata)
        .with_max_retries(max_retries)
        .with_create_checkpoint(false);
    let snapshot = table.snapshot()?;
    let read_version = snapshot.version();
    let finalized = CommitBuilder::from(properties)
        .with_actions(actions)
        .build(Some(snapshot), table.log_store(), operation)
        .await?;
    let committed = Committed {
        version: i64::try_from(finalized.version()).unwrap_or(i64::MAX),
        conflicts_resolved: finalized.version().saturating_sub(read_version + 1),
        seconds: started.elapsed().as_secs_f64(),
    };
    table.state = Some(finalized.snapshot());
    Ok(committed)
}

/// A concurrent commit prevented ours (as opposed to S3 being unreachable, say).
pub fn is_conflict(err: &DeltaTableError) -> bool {
    matches!(
        err,
        DeltaTableError::VersionAlreadyExists(_)
            | DeltaTableError::Transaction {
                source: TransactionError::CommitConflict(_)
                    | TransactionError::MaxCommitAttempts(_)
                    | TransactionError::VersionAlreadyExists(_)
            }
    )
}

/// Another commit carried a txn action with one of our appIds: someone else wrote (some of)
/// these offsets.
pub fn is_concurrent_txn(err: &DeltaTableError) -> bool {
    matches!(
        err,
        DeltaTableError::Transaction {
            source: TransactionError::CommitConflict(CommitConflictError::ConcurrentTransaction)
        }
    )
}

/// Write a checkpoint of the table's current version (a Parquet summary of the log, so opening
/// the table reads one file instead of every JSON commit since the last checkpoint).
pub async fn checkpoint(table: &DeltaTable) -> Result<()> {
    deltalake::checkpoints::create_checkpoint(table, None)
        .await
        .context("writing a checkpoint")
}

/// The loaded version as a signed number (-1 before the first commit), as metrics and the
/// JSON summaries report it.
pub fn version_of(table: &DeltaTable) -> i64 {
    table
        .version()
        .and_then(|v| i64::try_from(v).ok())
        .unwrap_or(-1)
}

/// Reload the table to its latest version (after a conflict or a failed commit).
pub async fn refresh(table: &mut DeltaTable) -> Result<()> {
    table
        .update_state()
        .await
        .context("reloading the table's latest version")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Not a test: how long encoding 400,000 generator-like rows takes with each setting.
    /// `cargo test --release parquet_settings -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn parquet_settings_measured() {
        use deltalake::arrow::array::{
            ArrayRef, BooleanArray, Float32Array, Int16Array, Int32Array, Int64Array,
            TimestampMicrosecondArray,
        };
        use deltalake::parquet::arrow::ArrowWriter;
        use std::sync::Arc;
        let n = 400_000usize;
        let mut seed = 42u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        let ts: Vec<i64> = (0..n as i64)
            .map(|i| 1_795_000_000_000_000 + i * 250)
            .collect();
        let small = |m: u32, next: &mut dyn FnMut() -> u32| -> Vec<i32> {
            (0..n).map(|_| (next() % m) as i32).collect()
        };
        let columns: Vec<(&str, ArrayRef)> = vec![
            (
                "timestamp",
                Arc::new(TimestampMicrosecondArray::from(ts.clone())),
            ),
            (
                "session_id",
                Arc::new(Int32Array::from(small(8, &mut next))),
            ),
            ("device_id", Arc::new(Int32Array::from(small(8, &mut next)))),
            (
                "patient_id",
                Arc::new(Int32Array::from(small(8, &mut next))),
            ),
            (
                "channel",
                Arc::new(Int16Array::from_iter_values(
                    (0..n).map(|_| (next() % 64) as i16),
                )),
            ),
            (
                "voltage_uv",
                Arc::new(Float32Array::from_iter_values(
                    (0..n).map(|_| next() as f32 / 7e5 - 3e3),
                )),
            ),
            (
                "spike",
                Arc::new(BooleanArray::from_iter(
                    (0..n).map(|_| Some(next() % 50 == 0)),
                )),
            ),
            (
                "quality",
                Arc::new(Float32Array::from_iter_values(
                    (0..n).map(|_| next() as f32 / 4.3e9),
                )),
            ),
            (
                "kafka_partition",
                Arc::new(Int32Array::from(small(3, &mut next))),
            ),
            (
                "kafka_offset",
                Arc::new(Int64Array::from_iter_values(0..n as i64)),
            ),
            (
                "kafka_timestamp",
                Arc::new(TimestampMicrosecondArray::from(ts)),
            ),
        ];
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let without_dictionaries = |codec: Compression| {
            NO_DICTIONARY_AT_INGEST
                .iter()
                .fold(
                    WriterProperties::builder()
                        .set_compression(codec)
                        .set_max_row_group_row_count(Some(1_048_576)),
                    |b, c| b.set_column_dictionary_enabled(ColumnPath::from(*c), false),
                )
                .build()
        };
        let settings: Vec<(&str, WriterProperties)> = vec![
            (
                "snappy, dictionaries everywhere (before)",
                WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_max_row_group_row_count(Some(1_048_576))
                    .build(),
            ),
            (
                "ingest: snappy, no dictionary on distinct columns",
                writer_properties(Job::Ingest),
            ),
            (
                "lz4_raw, no dictionary on distinct columns",
                without_dictionaries(Compression::LZ4_RAW),
            ),
            (
                "uncompressed, no dictionary on distinct columns",
                without_dictionaries(Compression::UNCOMPRESSED),
            ),
            (
                "compact: zstd, dictionaries",
                writer_properties(Job::Compact),
            ),
        ];
        for (name, props) in settings {
            let mut best = f64::MAX;
            let mut size = 0;
            for _ in 0..3 {
                let started = Instant::now();
                let mut out = Vec::new();
                let mut w =
                    ArrowWriter::try_new(&mut out, batch.schema(), Some(props.clone())).unwrap();
                w.write(&batch).unwrap();
                w.close().unwrap();
                best = best.min(started.elapsed().as_secs_f64());
                size = out.len();
            }
            println!("{name}: {:.1} ms, {:.2} MB", best * 1e3, size as f64 / 1e6);
        }
    }

    #[test]
    fn conflicts_are_told_apart_from_io_errors() {
        let conflict = DeltaTableError::Transaction {
            source: TransactionError::CommitConflict(CommitConflictError::ConcurrentTransaction),
        };
        assert!(is_conflict(&conflict));
        assert!(is_concurrent_txn(&conflict));
        let exists = DeltaTableError::VersionAlreadyExists(3);
        assert!(is_conflict(&exists));
        assert!(!is_concurrent_txn(&exists));
        let io = DeltaTableError::Generic("connection refused".into());
        assert!(!is_conflict(&io));
    }
}
