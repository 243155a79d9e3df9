//! Command line: one binary, four subcommands. Every flag also reads an environment variable
//! named like the Python settings (`NEURALAKE_...`), so the lab's process manager configures the
//! writer exactly as it configures everything else.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};

use crate::errors::StartupError;
use crate::logging::LogFormat;

/// Default S3 endpoint (the lab's MinIO).
pub const DEFAULT_S3_ENDPOINT: &str = "http://127.0.0.1:9000";
/// Default access key of the lab's MinIO.
pub const DEFAULT_S3_ACCESS_KEY_ID: &str = "neuralake";
/// Default secret of the lab's MinIO.
pub const DEFAULT_S3_SECRET_ACCESS_KEY: &str = "neuralake-secret";

/// Low-latency Kafka -> Delta Lake writer, compactor and vacuum.
#[derive(Debug, Parser)]
#[command(name = "neuralake-writer", version, about, long_about = None)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The processes this binary can be.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume a Kafka topic and append it to the bronze Delta table, exactly once.
    Ingest(IngestArgs),
    /// Rewrite small files of the table into files of the target size.
    Compact(CompactArgs),
    /// Delete files no longer referenced by the table and older than the retention.
    Vacuum(VacuumArgs),
    /// Read the whole topic and discard it: the throughput ceiling for `ingest`.
    BenchConsume(BenchConsumeArgs),
}

/// Flags shared by the table processes: where the table lives and how to reach it.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Warehouse root; the table lives at `<warehouse-uri>/<table>`.
    #[arg(
        long,
        env = "NEURALAKE_WAREHOUSE_URI",
        default_value = "s3://neuralake/warehouse"
    )]
    pub warehouse_uri: String,
    /// Table name under the warehouse.
    #[arg(
        long,
        env = "NEURALAKE_WRITER_TABLE",
        default_value = "neural_signals_bronze"
    )]
    pub table: String,
    /// Full table URI (`s3://...` or `file:///...`); overrides --warehouse-uri and --table.
    #[arg(long, env = "NEURALAKE_WRITER_TABLE_URI")]
    pub table_uri: Option<String>,
    #[command(flatten)]
    pub s3: S3Args,
    /// Address of the /metrics HTTP server (default: a loopback port per process).
    #[arg(long, env = "NEURALAKE_WRITER_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Log format on stderr.
    #[arg(long, env = "NEURALAKE_WRITER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

/// How to reach S3. An empty endpoint means real AWS; an empty key/secret means the AWS
/// credential chain (environment, profile, instance role).
#[derive(Debug, Clone, Args)]
pub struct S3Args {
    /// S3 endpoint URL (empty: real AWS) [default: http://127.0.0.1:9000]
    #[arg(long, env = "NEURALAKE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region.
    #[arg(long, env = "NEURALAKE_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// Access key id (empty: the AWS credential chain) [default: neuralake]
    #[arg(long, env = "NEURALAKE_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    /// Secret access key (empty: the AWS credential chain) [default: neuralake-secret]
    #[arg(long, env = "NEURALAKE_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
}

/// Kafka connection flags.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "NEURALAKE_KAFKA_BOOTSTRAP",
        default_value = "127.0.0.1:9092"
    )]
    pub kafka_bootstrap: String,
    /// Topic to read.
    #[arg(long, env = "NEURALAKE_WRITER_TOPIC", default_value = "neural-signals")]
    pub topic: String,
    /// A librdkafka setting `key=value`, applied after the writer's own (repeatable; the
    /// variable holds one per line), e.g. `security.protocol=SASL_SSL`.
    #[arg(
        long = "kafka-option",
        env = "NEURALAKE_KAFKA_OPTIONS",
        value_delimiter = '\n',
        value_parser = parse_kafka_option
    )]
    pub kafka_options: Vec<(String, String)>,
}

/// `key=value` -> (key, value); the key must not be empty.
pub fn parse_kafka_option(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!(
            "expected a librdkafka setting as key=value (e.g. security.protocol=SSL), got {text:?}"
        )),
    }
}

/// `ingest` flags.
#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Kafka consumer group: workers with the same group share the topic's partitions; the
    /// table refuses a second group while the first has members
    /// [default: neuralake-writer.<table name>]
    #[arg(long, env = "NEURALAKE_WRITER_GROUP_ID")]
    pub group_id: Option<String>,
    /// Where a partition the table holds nothing of starts: its earliest kept message, or
    /// its end (only messages produced from now on).
    #[arg(long, env = "NEURALAKE_WRITER_OFFSET_RESET", value_enum, default_value_t = OffsetReset::Earliest)]
    pub offset_reset: OffsetReset,
    /// Dead-letter table URI [default: <table_uri>_dead_letters]
    #[arg(long, env = "NEURALAKE_WRITER_DEAD_LETTER_URI")]
    pub dead_letter_uri: Option<String>,
    /// Application id in the txn actions: `<app-id>/<topic>/<partition>`.
    #[arg(
        long,
        env = "NEURALAKE_WRITER_APP_ID",
        default_value = "neuralake-writer"
    )]
    pub app_id: String,
    /// Flush at the latest this many milliseconds after the first message of a batch.
    #[arg(long, env = "NEURALAKE_WRITER_FLUSH_MS", default_value_t = 1000)]
    pub flush_ms: u64,
    /// Flush once a batch holds this many messages.
    #[arg(long, env = "NEURALAKE_WRITER_FLUSH_ROWS", default_value_t = 500_000)]
    pub flush_rows: usize,
    /// Flush once a batch holds this many consumed payload bytes.
    #[arg(
        long,
        env = "NEURALAKE_WRITER_FLUSH_BYTES",
        default_value_t = 67_108_864
    )]
    pub flush_bytes: usize,
    /// Write a Delta checkpoint every this many commits.
    #[arg(long, env = "NEURALAKE_WRITER_CHECKPOINT_EVERY", default_value_t = 20)]
    pub checkpoint_every: u64,
    /// Threads decoding messages beside the one consuming them [default (0): one per core].
    #[arg(long, env = "NEURALAKE_WRITER_DECODERS", default_value_t = 0)]
    pub decoders: usize,
    /// Seconds a failure that retrying cannot fix (permission denied, table deleted, schema
    /// changed) is retried before `ingest` exits 1 with one line naming the fix.
    #[arg(long, env = "NEURALAKE_WRITER_GIVE_UP_S", default_value_t = 60)]
    pub give_up_s: u64,
    /// Exit once every partition is committed up to the high watermark seen at start.
    #[arg(long)]
    pub stop_at_end: bool,
}

impl IngestArgs {
    /// `--decoders`, with 0 meaning one per core.
    pub fn decoder_threads(&self) -> usize {
        match self.decoders {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }
}

/// Where a partition without txn version in the table starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OffsetReset {
    /// The earliest message the broker still keeps.
    Earliest,
    /// The end: only messages produced after the partition was assigned.
    Latest,
}

/// `compact` flags.
#[derive(Debug, Clone, Args)]
pub struct CompactArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Seconds between passes.
    #[arg(long, env = "NEURALAKE_COMPACT_INTERVAL_S", default_value_t = 60)]
    pub interval_s: u64,
    /// Target file size in bytes.
    #[arg(
        long,
        env = "NEURALAKE_COMPACT_TARGET_SIZE",
        default_value_t = 134_217_728
    )]
    pub target_size: u64,
    /// Compact a partition once it has at least this many files smaller than the target.
    #[arg(long, env = "NEURALAKE_COMPACT_MIN_FILES", default_value_t = 4)]
    pub min_files: usize,
    /// Re-plans after commit conflicts before a pass gives up (the next pass starts afresh).
    #[arg(long, default_value_t = 10)]
    pub max_retries: u32,
    /// Dead-letter table URI, maintained beside the table [default: <table_uri>_dead_letters]
    #[arg(long, env = "NEURALAKE_WRITER_DEAD_LETTER_URI")]
    pub dead_letter_uri: Option<String>,
    /// Run one pass, print one JSON line and exit.
    #[arg(long)]
    pub once: bool,
}

/// `vacuum` flags.
#[derive(Debug, Clone, Args)]
pub struct VacuumArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Seconds between passes.
    #[arg(long, env = "NEURALAKE_VACUUM_INTERVAL_S", default_value_t = 600)]
    pub interval_s: u64,
    /// Keep unreferenced files younger than this many hours (a float: 0.01 is 36 s).
    #[arg(
        long,
        env = "NEURALAKE_VACUUM_RETENTION_HOURS",
        default_value_t = 168.0
    )]
    pub retention_hours: f64,
    /// `lite`: delete only files the log removed (compacted away). `full`: also any other
    /// file no version references (orphans of failed or killed writes); needs a retention of
    /// at least one hour, longer than any write of this binary takes to commit.
    #[arg(long, env = "NEURALAKE_VACUUM_MODE", value_enum, default_value_t = VacuumModeArg::Lite)]
    pub mode: VacuumModeArg,
    /// Dead-letter table URI, maintained beside the table [default: <table_uri>_dead_letters]
    #[arg(long, env = "NEURALAKE_WRITER_DEAD_LETTER_URI")]
    pub dead_letter_uri: Option<String>,
    /// Run one pass, print one JSON line and exit.
    #[arg(long)]
    pub once: bool,
}

/// Which files `vacuum` may delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VacuumModeArg {
    /// Files named by `remove` actions only.
    Lite,
    /// Also unreferenced files in the table's folder (orphans).
    Full,
}

/// `bench-consume` flags.
#[derive(Debug, Clone, Args)]
pub struct BenchConsumeArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Log format on stderr.
    #[arg(long, env = "NEURALAKE_WRITER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

impl Command {
    /// The log format the chosen subcommand asked for.
    pub fn log_format(&self) -> LogFormat {
        match self {
            Command::Ingest(a) => a.common.log_format,
            Command::Compact(a) => a.common.log_format,
            Command::Vacuum(a) => a.common.log_format,
            Command::BenchConsume(a) => a.log_format,
        }
    }
}

impl CommonArgs {
    /// The table URI: `--table-uri`, or `<warehouse-uri>/<table>`. Only `s3://` and `file://`.
    pub fn table_uri(&self) -> Result<String, StartupError> {
        let uri = match &self.table_uri {
            Some(uri) if !uri.is_empty() => uri.trim_end_matches('/').to_string(),
            _ => format!(
                "{}/{}",
                self.warehouse_uri.trim_end_matches('/'),
                self.table.trim_matches('/')
            ),
        };
        if uri.starts_with("s3://") || uri.starts_with("file:///") {
            Ok(uri)
        } else {
            Err(StartupError::new(format!(
                "table URI '{uri}' is neither s3://bucket/path nor file:///absolute/path: \
                 fix --table-uri or --warehouse-uri"
            )))
        }
    }

    /// The metrics address, or the process's default loopback port.
    pub fn metrics_addr_or(&self, default_port: u16) -> SocketAddr {
        self.metrics_addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], default_port)))
    }
}

/// The dead-letter table of `table_uri`: `flag` when given and not empty, else
/// `<table_uri>_dead_letters` (ingest writes it; compact and vacuum maintain it too).
pub fn dead_letter_uri(table_uri: &str, flag: Option<&str>) -> String {
    match flag {
        Some(uri) if !uri.is_empty() => uri.to_string(),
        _ => format!("{table_uri}_dead_letters"),
    }
}

/// The last path segment of a table URI: `s3://b/w/signals` -> `signals`.
pub fn table_name(table_uri: &str) -> &str {
    table_uri
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(table_uri)
}

/// Resolve an optional string flag whose environment variable may be set but empty.
///
/// clap treats an empty environment variable as absent, but for the S3 flags "empty" has a
/// meaning (real AWS / the credential chain). So: a value from the flag or a non-empty variable
/// wins; a variable that is set but empty gives `None`; nothing at all gives the default.
pub fn resolve_optional(
    value: Option<&str>,
    env_var_present: bool,
    default: &str,
) -> Option<String> {
    match value {
        Some("") => None,
        Some(v) => Some(v.to_string()),
        None if env_var_present => None,
        None => Some(default.to_string()),
    }
}

impl S3Args {
    fn resolve(value: &Option<String>, env: &str, default: &str) -> Option<String> {
        resolve_optional(value.as_deref(), std::env::var_os(env).is_some(), default)
    }

    /// Endpoint override, `None` for real AWS.
    pub fn endpoint(&self) -> Option<String> {
        Self::resolve(
            &self.s3_endpoint,
            "NEURALAKE_S3_ENDPOINT",
            DEFAULT_S3_ENDPOINT,
        )
    }

    /// Static credentials, `None` for the AWS credential chain.
    pub fn credentials(&self) -> Option<(String, String)> {
        let key = Self::resolve(
            &self.s3_access_key_id,
            "NEURALAKE_S3_ACCESS_KEY_ID",
            DEFAULT_S3_ACCESS_KEY_ID,
        )?;
        let secret = Self::resolve(
            &self.s3_secret_access_key,
            "NEURALAKE_S3_SECRET_ACCESS_KEY",
            DEFAULT_S3_SECRET_ACCESS_KEY,
        )?;
        Some((key, secret))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn kafka_options_are_key_value_pairs() {
        use super::parse_kafka_option as parse;
        assert_eq!(parse("a.b=c=d"), Ok(("a.b".into(), "c=d".into())));
        assert_eq!(
            parse("fetch.wait.max.ms="),
            Ok(("fetch.wait.max.ms".into(), "".into()))
        );
        assert!(parse("no-equals").unwrap_err().contains("key=value"));
        assert!(parse("=x").is_err());
    }

    use super::*;

    fn common(table_uri: Option<&str>) -> CommonArgs {
        let cli = Cli::try_parse_from(["neuralake-writer", "vacuum", "--once"]).unwrap();
        let Command::Vacuum(mut args) = cli.command else {
            panic!("parsed another subcommand")
        };
        args.common.table_uri = table_uri.map(str::to_string);
        args.common
    }

    #[test]
    fn table_uri_joins_warehouse_and_table() {
        let mut c = common(None);
        c.warehouse_uri = "s3://neuralake/warehouse/".into();
        c.table = "t1".into();
        assert_eq!(c.table_uri().unwrap(), "s3://neuralake/warehouse/t1");
    }

    #[test]
    fn table_uri_override_wins_and_is_checked() {
        assert_eq!(
            common(Some("file:///tmp/x/")).table_uri().unwrap(),
            "file:///tmp/x"
        );
        let err = common(Some("/tmp/x")).table_uri().unwrap_err();
        assert!(err.0.contains("--table-uri"), "{}", err.0);
    }

    #[test]
    fn dead_letter_uri_defaults_beside_the_table() {
        assert_eq!(
            dead_letter_uri("s3://b/w/t", None),
            "s3://b/w/t_dead_letters"
        );
        assert_eq!(
            dead_letter_uri("s3://b/w/t", Some("")),
            "s3://b/w/t_dead_letters"
        );
        assert_eq!(dead_letter_uri("s3://b/w/t", Some("s3://b/x")), "s3://b/x");
    }

    #[test]
    fn table_name_is_last_segment() {
        assert_eq!(table_name("s3://b/w/signals"), "signals");
        assert_eq!(table_name("file:///tmp/a/b/"), "b");
    }

    #[test]
    fn empty_values_mean_none_absent_means_default() {
        assert_eq!(resolve_optional(Some(""), true, "d"), None);
        assert_eq!(resolve_optional(None, true, "d"), None);
        assert_eq!(resolve_optional(None, false, "d"), Some("d".into()));
        assert_eq!(resolve_optional(Some("x"), false, "d"), Some("x".into()));
    }

    #[test]
    fn flags_parse_with_defaults() {
        let cli = Cli::try_parse_from(["neuralake-writer", "ingest", "--stop-at-end"]).unwrap();
        let Command::Ingest(a) = cli.command else {
            panic!("parsed another subcommand")
        };
        assert!(a.stop_at_end);
        assert_eq!(a.flush_rows, 500_000);
        assert_eq!(a.kafka.topic, "neural-signals");
        assert_eq!(a.common.metrics_addr_or(9464).to_string(), "127.0.0.1:9464");
    }
}
