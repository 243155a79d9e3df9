//! `bench-consume`: read every partition from the beginning to the high watermark seen at start
//! and throw the messages away. Same consumer settings and the same consume loop as `ingest`
//! ([`kafka::poll_next`] on a blocking thread), so its messages/s is the ceiling that ingest
//! throughput is reported against: raw rdkafka consume, read and discard.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result};
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Message;
use serde::Serialize;
use tracing::warn;

use crate::config::BenchConsumeArgs;
use crate::errors::startup;
use crate::kafka;

/// The one JSON line printed at the end.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub messages: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub messages_per_s: f64,
}

/// Consume the whole topic once.
pub async fn run(args: BenchConsumeArgs) -> Result<()> {
    let bootstrap = &args.kafka.kafka_bootstrap;
    let topic = &args.kafka.topic;
    let consumer: BaseConsumer = kafka::create(&args.kafka, "neuralake-writer.bench-consume")?;
    let partitions =
        tokio::task::block_in_place(|| kafka::partitions(&consumer, bootstrap, topic))?;
    let marks = match tokio::task::block_in_place(|| {
        kafka::high_watermarks(&consumer, topic, &partitions)
    }) {
        Ok(m) => m,
        Err(e) => {
            return startup(format!(
                "cannot read the end offsets of '{topic}' from {bootstrap}: {e}: check the broker"
            ));
        }
    };
    let from_start: BTreeMap<i32, Option<i64>> = partitions.iter().map(|&p| (p, None)).collect();
    kafka::assign(&consumer, topic, &from_start).context("assigning partitions")?;

    let mut remaining: BTreeMap<i32, i64> =
        marks.into_iter().filter(|(_, high)| *high > 0).collect();
    // Polling blocks: keep it off the async workers, as `ingest` does.
    let (messages, bytes, seconds) = tokio::task::block_in_place(|| {
        let (mut messages, mut bytes) = (0u64, 0u64);
        let started = Instant::now();
        while !remaining.is_empty() {
            match kafka::poll_next(&consumer, || kafka::POLL_SLICE) {
                Some(Ok(m)) => {
                    messages += 1;
                    bytes += m.payload().map_or(0, |p| p.len() as u64);
                    let partition = m.partition();
                    if remaining
                        .get(&partition)
                        .is_some_and(|high| m.offset() + 1 >= *high)
                    {
                        remaining.remove(&partition);
                    }
                }
                Some(Err(e)) => warn!(error = %e, "Kafka consumer error (librdkafka retries)"),
                None => {}
            }
        }
        (messages, bytes, started.elapsed().as_secs_f64())
    });
    let report = BenchReport {
        messages,
        bytes,
        seconds,
        messages_per_s: if seconds > 0.0 {
            messages as f64 / seconds
        } else {
            0.0
        },
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
