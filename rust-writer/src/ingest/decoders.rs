//! Decoding off the consuming thread: a pool of decoder threads.
//!
//! The reader's thread only polls Kafka, tracks offsets and copies each payload into a
//! [`Chunk`] (a few thousand messages in one buffer). A full chunk, and the last one of a
//! batch, goes to the pool, where one of `--decoders` threads turns it into Arrow record
//! batches (one per UTC date) and dead letters ([`decode_chunk`]). The reader gets a
//! [`Ticket`] back at once and goes on polling; the committer waits for the batch's tickets
//! before it writes Parquet.
//!
//! Nothing about exactly-once changes: the reader still decides where a batch ends (messages,
//! bytes, age, all known without decoding), a batch's offsets are still recorded by the
//! reader, and commits still happen one batch at a time in offset order. The order of rows
//! inside a batch's file does not matter to anyone. The job queue is bounded, so a reader
//! faster than the decoders waits for them instead of buffering the topic in memory.
//!
//! A panic while decoding a chunk (which the shared wire corpus says cannot happen) is caught
//! and becomes that batch's error, naming the chunk's offsets: the process stops with one line
//! and nothing of the batch was acknowledged.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{Context, Result, anyhow};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::record_batch::RecordBatch;
use tokio::sync::oneshot;

use crate::batch::BronzeRows;
use crate::dead_letters::{self, DeadLetter};
use crate::decode::decode;
use crate::offsets::TableOffsets;

/// Messages per chunk: big enough that handing a chunk over costs nothing per message, small
/// enough that the last chunk of a batch is decoded within a millisecond or two.
pub const CHUNK_MESSAGES: usize = 4096;

/// Payload bytes per chunk (a chunk of big messages is handed over sooner).
pub const CHUNK_BYTES: usize = 1 << 20;

/// Chunks waiting for a decoder, per decoder thread, before the reader waits.
const QUEUED_PER_THREAD: usize = 4;

/// One message's place in a chunk.
#[derive(Debug, Clone, Copy)]
struct Meta {
    partition: i32,
    offset: i64,
    kafka_ts_us: Option<i64>,
    /// The payload is `data[start..end]`; `None`: the message had no value (null payload).
    payload: Option<(usize, usize)>,
}

/// Messages copied out of librdkafka's buffers, waiting to be decoded.
#[derive(Debug, Default)]
pub struct Chunk {
    data: Vec<u8>,
    metas: Vec<Meta>,
}

impl Chunk {
    /// Copy one message in (the first one reserves room for a full chunk).
    pub fn push(
        &mut self,
        partition: i32,
        offset: i64,
        kafka_ts_us: Option<i64>,
        payload: Option<&[u8]>,
    ) {
        if self.metas.capacity() == 0 {
            self.metas.reserve(CHUNK_MESSAGES);
            self.data.reserve(CHUNK_BYTES);
        }
        let payload = payload.map(|bytes| {
            let start = self.data.len();
            self.data.extend_from_slice(bytes);
            (start, self.data.len())
        });
        self.metas.push(Meta {
            partition,
            offset,
            kafka_ts_us,
            payload,
        });
    }

    /// Messages in the chunk.
    pub fn len(&self) -> usize {
        self.metas.len()
    }

    /// No message yet?
    pub fn is_empty(&self) -> bool {
        self.metas.is_empty()
    }

    /// Time to hand it to a decoder?
    pub fn is_full(&self) -> bool {
        self.metas.len() >= CHUNK_MESSAGES || self.data.len() >= CHUNK_BYTES
    }

    /// `partition:first..last` of the chunk's messages, for an error message.
    fn describe(&self) -> String {
        let mut ranges: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
        for m in &self.metas {
            let r = ranges.entry(m.partition).or_insert((m.offset, m.offset));
            r.0 = r.0.min(m.offset);
            r.1 = r.1.max(m.offset);
        }
        ranges
            .iter()
            .map(|(p, (a, b))| format!("{p}:[{a}..{b}]"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A decoded chunk: its valid rows as record batches by UTC date (days since the epoch), and
/// its malformed messages.
#[derive(Debug, Default)]
pub struct Decoded {
    pub batches: Vec<(i32, RecordBatch)>,
    pub dead: Vec<DeadLetter>,
    pub rows: usize,
}

impl Decoded {
    /// Add another chunk's rows and dead letters.
    pub fn extend(&mut self, other: Decoded) {
        self.batches.extend(other.batches);
        self.dead.extend(other.dead);
        self.rows += other.rows;
    }
}

/// Decode every message of `chunk`: a row in the batch of its date, or a dead letter (unless
/// the dead-letter table already holds it: `dead_offsets`, see
/// [`dead_letters::already_dead_lettered`]). `schema` is the bronze table's Arrow schema.
pub fn decode_chunk(
    chunk: &Chunk,
    dead_offsets: &TableOffsets,
    schema: &SchemaRef,
) -> Result<Decoded> {
    let mut rows = BronzeRows::new(chunk.len());
    let mut dead = Vec::new();
    for m in &chunk.metas {
        let payload = m.payload.map(|(start, end)| &chunk.data[start..end]);
        let decoded = match payload {
            Some(bytes) => decode(bytes),
            None => Err("message has no value (null payload)".to_string()),
        };
        match decoded {
            Ok(signal) => rows.append(&signal, m.partition, m.offset, m.kafka_ts_us),
            Err(reason) => {
                if !dead_letters::already_dead_lettered(dead_offsets, m.partition, m.offset) {
                    dead.push(DeadLetter {
                        partition: m.partition,
                        offset: m.offset,
                        payload: payload.unwrap_or_default().to_vec(),
                        reason,
                        received_at_us: chrono::Utc::now().timestamp_micros(),
                    });
                }
            }
        }
    }
    let count = rows.len();
    Ok(Decoded {
        batches: rows.finish(schema)?,
        dead,
        rows: count,
    })
}

/// A chunk on its way through a decoder (or, in tests, decoded already).
pub enum Ticket {
    Ready(Box<Result<Decoded>>),
    Waiting(oneshot::Receiver<Result<Decoded>>),
}

impl Ticket {
    /// The decoded chunk, once a decoder has finished it.
    pub async fn wait(self) -> Result<Decoded> {
        match self {
            Ticket::Ready(decoded) => *decoded,
            Ticket::Waiting(rx) => rx
                .await
                .map_err(|_| anyhow!("a decoder thread stopped before finishing a chunk"))?,
        }
    }
}

/// Every ticket of a batch, waited for in order and put together.
pub async fn gather(tickets: Vec<Ticket>) -> Result<Decoded> {
    let mut all = Decoded::default();
    for ticket in tickets {
        all.extend(ticket.wait().await?);
    }
    Ok(all)
}

struct Job {
    chunk: Chunk,
    dead_offsets: Arc<TableOffsets>,
    reply: oneshot::Sender<Result<Decoded>>,
}

/// The decoder threads and their bounded job queue. Dropping the pool closes the queue: each
/// thread finishes its job and exits.
pub struct Pool {
    jobs: Option<SyncSender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Start `threads` decoder threads (at least one) for the bronze table's `schema`.
    pub fn start(threads: usize, schema: SchemaRef) -> Result<Self> {
        let threads = threads.max(1);
        let (tx, rx) = sync_channel::<Job>(threads * QUEUED_PER_THREAD);
        let rx = Arc::new(Mutex::new(rx));
        let handles = (0..threads)
            .map(|i| {
                let (rx, schema) = (rx.clone(), schema.clone());
                std::thread::Builder::new()
                    .name(format!("decoder-{i}"))
                    .spawn(move || run_decoder(&rx, &schema))
                    .context("starting a decoder thread")
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            jobs: Some(tx),
            threads: handles,
        })
    }

    /// Hand `chunk` to a decoder; waits while every decoder is busy and the queue is full.
    pub fn submit(&self, chunk: Chunk, dead_offsets: Arc<TableOffsets>) -> Ticket {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            chunk,
            dead_offsets,
            reply,
        };
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(job));
        match sent {
            Some(Ok(())) => Ticket::Waiting(rx),
            _ => Ticket::Ready(Box::new(Err(anyhow!(
                "the decoder threads have stopped; a chunk could not be decoded"
            )))),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs.take();
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

/// One decoder thread: take jobs until the queue closes.
fn run_decoder(jobs: &Mutex<Receiver<Job>>, schema: &SchemaRef) {
    loop {
        // The lock is held only while waiting for the next job, never while decoding.
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(Job {
            chunk,
            dead_offsets,
            reply,
        }) = job
        else {
            return; // the pool was dropped
        };
        let result = catch_unwind(AssertUnwindSafe(|| {
            decode_chunk(&chunk, &dead_offsets, schema)
        }))
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_string());
            Err(anyhow!(
                "decoding the messages at offsets {} panicked: {}",
                chunk.describe(),
                message.replace('\n', " ")
            ))
        });
        // The batch may have been dropped (a rebalance): nobody waits for it then.
        let _ = reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::{Array, AsArray};
    use deltalake::arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};

    const GOOD: &str = r#"{"timestamp":"2026-11-23T19:14:44.123456Z","session_id":1,"device_id":1,"patient_id":1,"channel":3,"voltage_uv":-12.5,"spike":false,"quality":0.98}"#;
    const NEXT_DAY: &str = r#"{"timestamp":"2026-11-24T00:00:01Z","session_id":1,"device_id":1,"patient_id":1,"channel":3,"voltage_uv":-12.5,"spike":false,"quality":0.98}"#;

    fn schema() -> SchemaRef {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some(crate::batch::UTC.into()));
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

    fn chunk() -> Chunk {
        let mut c = Chunk::default();
        c.push(0, 10, Some(1), Some(GOOD.as_bytes()));
        c.push(0, 11, None, Some(b"{not json"));
        c.push(1, 5, Some(2), Some(NEXT_DAY.as_bytes()));
        c.push(1, 6, Some(3), None);
        c.push(0, 12, Some(4), Some(GOOD.as_bytes()));
        c
    }

    #[test]
    fn a_chunk_decodes_into_rows_by_date_and_dead_letters() {
        let decoded = decode_chunk(&chunk(), &TableOffsets::new(), &schema()).unwrap();
        assert_eq!(decoded.rows, 3);
        let dates: Vec<i32> = decoded.batches.iter().map(|(d, _)| *d).collect();
        assert_eq!(dates.len(), 2);
        assert!(dates[0] + 1 == dates[1]);
        let offsets = decoded.batches[0].1.column(9).as_primitive::<Int64Type>();
        assert_eq!(offsets.values(), &[10, 12]);
        let dead: Vec<(i32, i64)> = decoded
            .dead
            .iter()
            .map(|d| (d.partition, d.offset))
            .collect();
        assert_eq!(dead, vec![(0, 11), (1, 6)]);
        assert_eq!(decoded.dead[0].payload, b"{not json");
        assert!(
            decoded.dead[0]
                .reason
                .starts_with("payload is not valid JSON")
        );
        assert_eq!(
            decoded.dead[1].reason,
            "message has no value (null payload)"
        );
        assert_eq!(decoded.batches[0].1.column(10).null_count(), 0);
    }

    #[test]
    fn dead_letters_already_stored_are_skipped() {
        let stored = TableOffsets::from([(0, Some(11)), (1, None)]);
        let decoded = decode_chunk(&chunk(), &stored, &schema()).unwrap();
        let dead: Vec<i64> = decoded.dead.iter().map(|d| d.offset).collect();
        assert_eq!(
            dead,
            vec![6],
            "offset 11 of partition 0 is in the table already"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pool_decodes_every_chunk_it_is_given() {
        let pool = Pool::start(2, schema()).unwrap();
        let stored = Arc::new(TableOffsets::new());
        let tickets: Vec<Ticket> = (0..20)
            .map(|_| pool.submit(chunk(), stored.clone()))
            .collect();
        let all = gather(tickets).await.unwrap();
        assert_eq!(all.rows, 60);
        assert_eq!(all.dead.len(), 40);
        let rows: usize = all.batches.iter().map(|(_, b)| b.num_rows()).sum();
        assert_eq!(rows, 60);
    }

    #[test]
    fn a_full_chunk_is_due_by_messages_or_bytes() {
        let mut c = Chunk::default();
        assert!(c.is_empty() && !c.is_full());
        c.push(0, 0, None, Some(&vec![b' '; CHUNK_BYTES]));
        assert!(c.is_full() && c.len() == 1);
        assert_eq!(c.describe(), "0:[0..0]");
    }
}
