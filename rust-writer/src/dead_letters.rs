//! Malformed messages: kept whole in their own Delta table, never dropped, never duplicated.
//!
//! The dead-letter table carries txn actions with the same appIds as the bronze table, meaning
//! "dead letters up to this offset are here". Dead letters of a batch are committed BEFORE the
//! bronze commit of that batch, so a crash between the two commits replays the batch from the
//! bronze offsets; on replay a malformed message at or below the dead-letter table's version
//! for its partition is skipped ([`already_dead_lettered`]) because it is already stored.

use std::sync::Arc;

use anyhow::{Context, Result};
use deltalake::arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::record_batch::RecordBatch;

use crate::batch::UTC;
use crate::offsets::TableOffsets;

/// One malformed message.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub partition: i32,
    pub offset: i64,
    /// The raw bytes, exactly as consumed (empty for a message without payload).
    pub payload: Vec<u8>,
    pub reason: String,
    /// When the writer consumed it, epoch microseconds UTC.
    pub received_at_us: i64,
}

/// Is this malformed message already in the dead-letter table (written before a crash)?
pub fn already_dead_lettered(table: &TableOffsets, partition: i32, offset: i64) -> bool {
    matches!(table.get(&partition), Some(Some(version)) if offset <= *version)
}

/// The dead letters as one record batch in the dead-letter table's column order.
pub fn to_record_batch(
    topic: &str,
    letters: &[DeadLetter],
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let n = letters.len();
    let bytes: usize = letters.iter().map(|l| l.payload.len()).sum();
    let reason_bytes: usize = letters.iter().map(|l| l.reason.len()).sum();
    let mut topics = StringBuilder::with_capacity(n, n * topic.len());
    let mut partitions = Int32Builder::with_capacity(n);
    let mut offsets = Int64Builder::with_capacity(n);
    let mut payloads = BinaryBuilder::with_capacity(n, bytes);
    let mut reasons = StringBuilder::with_capacity(n, reason_bytes);
    let mut received = TimestampMicrosecondBuilder::with_capacity(n).with_timezone(UTC);
    for l in letters {
        topics.append_value(topic);
        partitions.append_value(l.partition);
        offsets.append_value(l.offset);
        payloads.append_value(&l.payload);
        reasons.append_value(&l.reason);
        received.append_value(l.received_at_us);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(topics.finish()),
        Arc::new(partitions.finish()),
        Arc::new(offsets.finish()),
        Arc::new(payloads.finish()),
        Arc::new(reasons.finish()),
        Arc::new(received.finish()),
    ];
    RecordBatch::try_new(schema.clone(), columns).context("building the dead-letter batch")
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::AsArray;
    use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    #[test]
    fn replayed_dead_letters_are_recognised() {
        let table: TableOffsets = [(0, Some(10)), (1, None)].into_iter().collect();
        assert!(already_dead_lettered(&table, 0, 10));
        assert!(!already_dead_lettered(&table, 0, 11));
        assert!(!already_dead_lettered(&table, 1, 0));
        assert!(!already_dead_lettered(&table, 2, 0), "unknown partition");
    }

    #[test]
    fn payload_bytes_are_kept_exactly() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("kafka_topic", DataType::Utf8, true),
            Field::new("kafka_partition", DataType::Int32, true),
            Field::new("kafka_offset", DataType::Int64, true),
            Field::new("payload", DataType::Binary, true),
            Field::new("reason", DataType::Utf8, true),
            Field::new(
                "received_at",
                DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
                true,
            ),
        ]));
        let letters = vec![DeadLetter {
            partition: 2,
            offset: 7,
            payload: vec![0xff, 0x00, b'{'],
            reason: "payload is not UTF-8".into(),
            received_at_us: 1,
        }];
        let batch = to_record_batch("t", &letters, &schema).unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(
            batch.column(3).as_binary::<i32>().value(0),
            &[0xff, 0x00, b'{']
        );
        assert_eq!(
            batch.column(4).as_string::<i32>().value(0),
            "payload is not UTF-8"
        );
    }
}
