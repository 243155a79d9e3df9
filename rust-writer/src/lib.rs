//! neuralake-writer: a low-latency Kafka -> Delta Lake writer (`ingest`), its compactor
//! (`compact`) and its vacuum (`vacuum`), as one binary and three processes.
//!
//! Modules, one concern each:
//! - [`config`]: the command line (every flag also an environment variable);
//! - [`decode`]: Kafka payload -> typed row or dead-letter reason (pure);
//! - [`batch`]: Arrow builders and the flush rule (pure);
//! - [`offsets`]: Kafka offsets as Delta `txn` actions (pure parts + reading them back);
//! - [`dead_letters`]: the dead-letter rows and the replay rule;
//! - [`schema`]: the two tables' schemas, creating and checking them;
//! - [`commit`]: writing Parquet and committing to the Delta log;
//! - [`kafka`]: consumer settings (consumer group), start-up checks, seeking, watermarks;
//! - [`ingest`], [`compact`], [`vacuum`], [`bench`]: the four subcommands;
//! - [`metrics`], [`logging`], [`storage`], [`startup`], [`retry`], [`errors`]: plumbing.

pub mod batch;
pub mod bench;
pub mod commit;
pub mod compact;
pub mod config;
pub mod dead_letters;
pub mod decode;
pub mod errors;
pub mod ingest;
pub mod kafka;
pub mod logging;
pub mod metrics;
pub mod offsets;
pub mod retry;
pub mod schema;
pub mod startup;
pub mod storage;
pub mod vacuum;
