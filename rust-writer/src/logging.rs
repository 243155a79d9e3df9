//! Structured logs on stderr: one JSON object per line by default (`--log-format json`), or
//! human-readable text. stdout is reserved for the single JSON summary line of `--once`,
//! `--stop-at-end` and `bench-consume`, so scripts can parse it without filtering logs.
//!
//! `RUST_LOG` (tracing's env filter syntax) overrides the default level `info`.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// Our own lines at info; the libraries' info lines (delta kernel snapshot building, AWS
/// config) are per-commit noise, and delta-rs warns on every dead-letter file that it keeps no
/// statistics for the binary `payload` column, which is by design.
const DEFAULT_FILTER: &str = "info,buoyant_kernel=warn,aws_config=warn,hyper=warn,deltalake_core=warn,deltalake_core::writer::stats=error";

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (for log shippers and the lab's process manager).
    Json,
    /// Human-readable lines.
    Text,
}

/// Install the global subscriber. Call once, first thing in `main`.
pub fn init(format: LogFormat) {
    // librdkafka and the AWS client are chatty at info; keep their warnings.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder.init(),
    }
    // A panic is logged as one line like every other event (the default hook prints several,
    // and a backtrace with RUST_BACKTRACE); whoever catches it decides whether to stop.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let location = info.location().map(|l| l.to_string()).unwrap_or_default();
        tracing::error!(panic = %message.replace('\n', " "), location, "panic");
    }));
}
