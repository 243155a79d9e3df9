//! The two tables this writer owns: their schemas, creating them, and refusing an existing
//! table whose schema differs.
//!
//! Timestamps are Delta `timestamp` (microseconds, adjusted to UTC), never `timestamp_ntz`:
//! `timestamp_ntz` is a table feature (reader 3 / writer 7) that ROAPI 0.12 and Spark 3 read
//! badly, while plain `timestamp` keeps the protocol at reader 1 / writer 2. In Arrow it is
//! `Timestamp(Microsecond, Some("UTC"))`.

use std::collections::HashMap;
use std::fmt::Write as _;

use deltalake::kernel::{DataType, StructField};
use deltalake::operations::create::CreateBuilder;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError};

/// Name of the bronze table's only partition column.
pub const DATE_COLUMN: &str = "date";

/// What a table must look like: columns in order (all nullable) and partition columns.
#[derive(Debug, Clone)]
pub struct TableSpec {
    pub columns: Vec<(&'static str, DataType)>,
    pub partition_columns: Vec<&'static str>,
}

/// The bronze table: one row per valid Kafka message, partitioned by the UTC date.
pub fn bronze() -> TableSpec {
    TableSpec {
        columns: vec![
            ("timestamp", DataType::TIMESTAMP),
            ("session_id", DataType::INTEGER),
            ("device_id", DataType::INTEGER),
            ("patient_id", DataType::INTEGER),
            ("channel", DataType::SHORT),
            ("voltage_uv", DataType::FLOAT),
            ("spike", DataType::BOOLEAN),
            ("quality", DataType::FLOAT),
            ("kafka_partition", DataType::INTEGER),
            ("kafka_offset", DataType::LONG),
            ("kafka_timestamp", DataType::TIMESTAMP),
            (DATE_COLUMN, DataType::DATE),
        ],
        partition_columns: vec![DATE_COLUMN],
    }
}

/// The dead-letter table: one row per malformed message, raw bytes kept. Not partitioned.
pub fn dead_letters() -> TableSpec {
    TableSpec {
        columns: vec![
            ("kafka_topic", DataType::STRING),
            ("kafka_partition", DataType::INTEGER),
            ("kafka_offset", DataType::LONG),
            ("payload", DataType::BINARY),
            ("reason", DataType::STRING),
            ("received_at", DataType::TIMESTAMP),
        ],
        partition_columns: vec![],
    }
}

impl TableSpec {
    /// Delta struct fields, all nullable.
    pub fn fields(&self) -> Vec<StructField> {
        self.columns
            .iter()
            .map(|(name, data_type)| StructField::new(*name, data_type.clone(), true))
            .collect()
    }

    /// Compare with an existing table. `Err` lists every difference in one sentence.
    pub fn compare(
        &self,
        existing: &[(String, DataType)],
        existing_partitions: &[String],
    ) -> Result<(), String> {
        let mut problems = String::new();
        let found: HashMap<&str, &DataType> =
            existing.iter().map(|(n, t)| (n.as_str(), t)).collect();
        for (name, expected) in &self.columns {
            match found.get(name) {
                None => {
                    let _ = write!(problems, "column '{name}' is missing; ");
                }
                Some(actual) if *actual != expected => {
                    let _ = write!(
                        problems,
                        "column '{name}' is {}, expected {}; ",
                        type_name(actual),
                        type_name(expected)
                    );
                }
                Some(_) => {}
            }
        }
        for (name, _) in existing {
            if !self.columns.iter().any(|(n, _)| n == name) {
                let _ = write!(problems, "unexpected column '{name}'; ");
            }
        }
        if existing_partitions
            .iter()
            .map(String::as_str)
            .ne(self.partition_columns.iter().copied())
        {
            let _ = write!(
                problems,
                "partitioned by {existing_partitions:?}, expected {:?}; ",
                self.partition_columns
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.trim_end_matches("; ").to_string())
        }
    }
}

/// Delta's name for a type, as it appears in the log (`short`, `timestamp`, ...).
fn type_name(t: &DataType) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{t:?}"))
}

/// Why an existing table cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Delta(#[from] DeltaTableError),
    #[error("schema differs: {0}")]
    SchemaMismatch(String),
}

/// Open the table at `uri`, creating it with `spec` if there is none, and check its schema.
///
/// `SaveMode::Ignore` makes delta-rs load an existing table instead of failing. Two processes
/// creating the same table race for `_delta_log/00000000000000000000.json`; the conditional PUT
/// lets exactly one win, and the loser simply opens what the winner created.
pub async fn open_or_create(
    uri: &str,
    storage_options: &HashMap<String, String>,
    spec: &TableSpec,
    table_name: &str,
) -> Result<DeltaTable, OpenError> {
    if let Some(path) = uri.strip_prefix("file://") {
        std::fs::create_dir_all(path).map_err(|source| DeltaTableError::Io { source })?;
    }
    let create = || {
        CreateBuilder::new()
            .with_location(uri)
            .with_storage_options(storage_options.clone())
            .with_table_name(table_name)
            .with_columns(spec.fields())
            .with_partition_columns(spec.partition_columns.iter().copied())
            .with_save_mode(SaveMode::Ignore)
    };
    let table = match create().await {
        Ok(table) => table,
        Err(DeltaTableError::VersionAlreadyExists(_)) => create().await?,
        Err(e) => return Err(e.into()),
    };
    table.snapshot()?;
    check(&table, spec).map_err(OpenError::SchemaMismatch)?;
    Ok(table)
}

/// Does the loaded snapshot of `table` still have `spec`'s schema? `Err` says how it differs
/// (someone replaced the table's schema under a running writer, say).
pub fn check(table: &DeltaTable, spec: &TableSpec) -> Result<(), String> {
    let snapshot = table.snapshot().map_err(|e| e.to_string())?;
    let existing: Vec<(String, DataType)> = snapshot
        .schema()
        .fields()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    let partitions = snapshot.metadata().partition_columns().to_vec();
    spec.compare(&existing, &partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_existing(spec: &TableSpec) -> (Vec<(String, DataType)>, Vec<String>) {
        (
            spec.columns
                .iter()
                .map(|(n, t)| (n.to_string(), t.clone()))
                .collect(),
            spec.partition_columns
                .iter()
                .map(|s| s.to_string())
                .collect(),
        )
    }

    #[test]
    fn identical_schema_is_accepted() {
        let spec = bronze();
        let (cols, parts) = as_existing(&spec);
        assert_eq!(spec.compare(&cols, &parts), Ok(()));
    }

    #[test]
    fn every_difference_is_named() {
        let spec = bronze();
        let (mut cols, _) = as_existing(&spec);
        cols[4].1 = DataType::INTEGER; // channel
        cols.retain(|(n, _)| n != "quality");
        cols.push(("extra".into(), DataType::STRING));
        let err = spec.compare(&cols, &[]).unwrap_err();
        assert!(
            err.contains("column 'channel' is integer, expected short"),
            "{err}"
        );
        assert!(err.contains("column 'quality' is missing"), "{err}");
        assert!(err.contains("unexpected column 'extra'"), "{err}");
        assert!(
            err.contains("partitioned by [], expected [\"date\"]"),
            "{err}"
        );
    }

    #[test]
    fn timestamps_are_never_ntz() {
        for spec in [bronze(), dead_letters()] {
            assert!(
                spec.columns
                    .iter()
                    .all(|(_, t)| *t != DataType::TIMESTAMP_NTZ)
            );
        }
    }
}
