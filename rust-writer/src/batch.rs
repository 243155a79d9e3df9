//! Building Arrow record batches straight from decoded messages, and when to flush them.
//!
//! Rows go into Arrow builders (one set per UTC date, since `date` is the partition column and
//! one Parquet file is written per partition value per flush). No intermediate row structs are
//! kept: a decoded [`Signal`] is appended column by column and dropped.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use deltalake::arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Date32Array, Float32Builder, Int16Builder,
    Int32Builder, Int64Builder, TimestampMicrosecondBuilder,
};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::record_batch::RecordBatch;

use crate::decode::Signal;

/// The timezone of every timestamp column (see `schema.rs`).
pub const UTC: &str = "UTC";

/// When a batch is flushed: whichever limit is reached first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// Messages (valid and malformed: both advance the Kafka offsets).
    pub max_messages: usize,
    /// Consumed payload bytes.
    pub max_bytes: usize,
    /// Time since the batch's first message.
    pub max_age: Duration,
}

impl FlushPolicy {
    /// Is a batch of this size and age due? An empty batch never is.
    pub fn is_due(&self, messages: usize, bytes: usize, age: Duration) -> bool {
        self.is_full(messages, bytes) || (messages > 0 && age >= self.max_age)
    }

    /// Is a batch of this size due whatever its age? (Checked for every message; the age,
    /// which needs the clock, only every so often.)
    pub fn is_full(&self, messages: usize, bytes: usize) -> bool {
        messages > 0 && (messages >= self.max_messages || bytes >= self.max_bytes)
    }

    /// How long the consumer may wait for the next message before the batch is due by age.
    pub fn time_left(&self, age: Duration) -> Duration {
        self.max_age.saturating_sub(age)
    }
}

/// How long before its first message was consumed a batch's age starts: the time that message
/// sat waiting (now minus its Kafka timestamp, `queued`), but never more than the time since the
/// reader last stopped consuming (`paused`, while it handed a batch to the committer).
///
/// A message that arrives while the reader waits for the committer is consumed only afterwards;
/// counting its batch's age from that moment would make the flush late by the whole wait.
/// Capping at `paused` keeps the old messages of a catch-up (Kafka timestamps minutes ago) from
/// making every batch due at once.
pub fn backdate(queued: Option<Duration>, paused: Duration) -> Duration {
    queued.map_or(Duration::ZERO, |q| q.min(paused))
}

/// Column builders for the rows of one date.
struct DateColumns {
    date: i32,
    timestamp: TimestampMicrosecondBuilder,
    session_id: Int32Builder,
    device_id: Int32Builder,
    patient_id: Int32Builder,
    channel: Int16Builder,
    voltage_uv: Float32Builder,
    spike: BooleanBuilder,
    quality: Float32Builder,
    kafka_partition: Int32Builder,
    kafka_offset: Int64Builder,
    kafka_timestamp: TimestampMicrosecondBuilder,
}

impl DateColumns {
    fn new(date: i32, capacity: usize) -> Self {
        Self {
            date,
            timestamp: TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone(UTC),
            session_id: Int32Builder::with_capacity(capacity),
            device_id: Int32Builder::with_capacity(capacity),
            patient_id: Int32Builder::with_capacity(capacity),
            channel: Int16Builder::with_capacity(capacity),
            voltage_uv: Float32Builder::with_capacity(capacity),
            spike: BooleanBuilder::with_capacity(capacity),
            quality: Float32Builder::with_capacity(capacity),
            kafka_partition: Int32Builder::with_capacity(capacity),
            kafka_offset: Int64Builder::with_capacity(capacity),
            kafka_timestamp: TimestampMicrosecondBuilder::with_capacity(capacity)
                .with_timezone(UTC),
        }
    }

    fn append(&mut self, s: &Signal, partition: i32, offset: i64, kafka_ts_us: Option<i64>) {
        self.timestamp.append_value(s.timestamp_us);
        self.session_id.append_value(s.session_id);
        self.device_id.append_value(s.device_id);
        self.patient_id.append_value(s.patient_id);
        self.channel.append_value(s.channel);
        self.voltage_uv.append_value(s.voltage_uv);
        self.spike.append_value(s.spike);
        self.quality.append_value(s.quality);
        self.kafka_partition.append_value(partition);
        self.kafka_offset.append_value(offset);
        self.kafka_timestamp.append_option(kafka_ts_us);
    }

    fn finish(mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let rows = self.kafka_offset.len();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.timestamp.finish()),
            Arc::new(self.session_id.finish()),
            Arc::new(self.device_id.finish()),
            Arc::new(self.patient_id.finish()),
            Arc::new(self.channel.finish()),
            Arc::new(self.voltage_uv.finish()),
            Arc::new(self.spike.finish()),
            Arc::new(self.quality.finish()),
            Arc::new(self.kafka_partition.finish()),
            Arc::new(self.kafka_offset.finish()),
            Arc::new(self.kafka_timestamp.finish()),
            Arc::new(Date32Array::from_value(self.date, rows)),
        ];
        RecordBatch::try_new(schema.clone(), columns)
            .with_context(|| format!("building the record batch for date {}", self.date))
    }
}

/// The valid rows of one batch, grouped by date.
pub struct BronzeRows {
    dates: Vec<DateColumns>,
    /// Index into `dates` of the last date appended: messages arrive mostly in time order,
    /// so this saves a search per row.
    last: usize,
    rows: usize,
    capacity: usize,
}

impl BronzeRows {
    /// Empty builders; `capacity` rows are reserved for the first date.
    pub fn new(capacity: usize) -> Self {
        Self {
            dates: Vec::new(),
            last: 0,
            rows: 0,
            capacity,
        }
    }

    /// Number of rows appended.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// No rows yet?
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Append one valid message.
    pub fn append(&mut self, s: &Signal, partition: i32, offset: i64, kafka_ts_us: Option<i64>) {
        let date = s.date_days();
        if self.dates.get(self.last).is_none_or(|d| d.date != date) {
            self.last = match self.dates.iter().position(|d| d.date == date) {
                Some(i) => i,
                None => {
                    // Only the first date gets the full reservation; stragglers start small.
                    let capacity = if self.dates.is_empty() {
                        self.capacity
                    } else {
                        1024
                    };
                    self.dates.push(DateColumns::new(date, capacity));
                    self.dates.len() - 1
                }
            };
        }
        self.dates[self.last].append(s, partition, offset, kafka_ts_us);
        self.rows += 1;
    }

    /// One record batch per date, in the table's column order (`schema` must be the table's
    /// Arrow schema, partition column included).
    pub fn finish(self, schema: &SchemaRef) -> Result<Vec<(i32, RecordBatch)>> {
        self.dates
            .into_iter()
            .map(|d| Ok((d.date, d.finish(schema)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_backdated_by_the_wait_but_never_past_the_pause() {
        let ms = Duration::from_millis;
        // Arrived 300 ms ago while the reader was paused for 500 ms: age starts 300 ms ago.
        assert_eq!(backdate(Some(ms(300)), ms(500)), ms(300));
        // A catch-up message from an hour ago: only the 500 ms pause counts.
        assert_eq!(backdate(Some(ms(3_600_000)), ms(500)), ms(500));
        // No timestamp, or no pause: nothing to backdate.
        assert_eq!(backdate(None, ms(500)), Duration::ZERO);
        assert_eq!(backdate(Some(ms(300)), Duration::ZERO), Duration::ZERO);
    }
    use deltalake::arrow::array::{Array, AsArray};
    use deltalake::arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};

    fn schema() -> SchemaRef {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()));
        let f = |n: &str, t: DataType| Field::new(n, t, true);
        Arc::new(Schema::new(vec![
            f("timestamp", ts.clone()),
            f("session_id", DataType::Int32),
            f("device_id", DataType::Int32),
            f("patient_id", DataType::Int32),
            f("channel", DataType::Int16),
            f("voltage_uv", DataType::Float32),
            f("spike", DataType::Boolean),
            f("quality", DataType::Float32),
            f("kafka_partition", DataType::Int32),
            f("kafka_offset", DataType::Int64),
            f("kafka_timestamp", ts),
            f("date", DataType::Date32),
        ]))
    }

    fn signal(day: i64) -> Signal {
        Signal {
            timestamp_us: day * crate::decode::MICROS_PER_DAY + 5,
            session_id: 1,
            device_id: 2,
            patient_id: 3,
            channel: 4,
            voltage_uv: -1.5,
            spike: true,
            quality: 0.5,
        }
    }

    #[test]
    fn flush_is_due_on_the_first_limit_reached() {
        let p = FlushPolicy {
            max_messages: 10,
            max_bytes: 100,
            max_age: Duration::from_secs(1),
        };
        let young = Duration::from_millis(10);
        assert!(
            !p.is_due(0, 1000, Duration::from_secs(5)),
            "empty never flushes"
        );
        assert!(!p.is_due(9, 99, young));
        assert!(p.is_due(10, 0, young));
        assert!(p.is_due(1, 100, young));
        assert!(p.is_due(1, 0, Duration::from_secs(1)));
        assert!(p.is_full(10, 0) && p.is_full(1, 100));
        assert!(
            !p.is_full(9, 99) && !p.is_full(0, 1000),
            "size only, and never empty"
        );
        assert_eq!(
            p.time_left(Duration::from_millis(300)),
            Duration::from_millis(700)
        );
        assert_eq!(p.time_left(Duration::from_secs(3)), Duration::ZERO);
    }

    #[test]
    fn rows_are_grouped_by_date_in_column_order() {
        let mut rows = BronzeRows::new(4);
        rows.append(&signal(100), 0, 10, Some(7));
        rows.append(&signal(101), 0, 11, None);
        rows.append(&signal(100), 1, 12, Some(8));
        assert_eq!(rows.len(), 3);
        let batches = rows.finish(&schema()).unwrap();
        let dates: Vec<i32> = batches.iter().map(|(d, _)| *d).collect();
        assert_eq!(dates, vec![100, 101]);
        let (_, day100) = &batches[0];
        assert_eq!(day100.num_rows(), 2);
        let offsets = day100.column(9).as_primitive::<Int64Type>();
        assert_eq!(offsets.values(), &[10, 12]);
        assert_eq!(day100.column(10).null_count(), 0);
        assert_eq!(
            batches[1].1.column(10).null_count(),
            1,
            "no Kafka timestamp -> null"
        );
        assert_eq!(
            day100.schema().field(0).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
        );
    }
}
