//! Two kinds of failure, two exit paths.
//!
//! * [`StartupError`]: something is wrong before the process starts its work (a bad flag, the
//!   broker or S3 unreachable, a missing topic, a table with another schema). `main` prints ONE
//!   line `error: <message>` on stderr and exits with [`STARTUP_EXIT_CODE`]; the message names
//!   the fix, because the person reading it is about to type the next command.
//! * Everything else is an `anyhow::Error` with context. Once running, Kafka and S3 failures are
//!   retried with backoff (see `retry.rs`), so an error that reaches `main` is a bug or a
//!   shutdown problem, reported with its whole context chain and exit code 1.

use thiserror::Error;

/// Exit code for start-up errors (the same code clap uses for a bad flag).
pub const STARTUP_EXIT_CODE: i32 = 2;

/// A start-up problem with a message that tells the user what to do about it.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct StartupError(pub String);

impl StartupError {
    /// Build a start-up error from any message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Convenience: turn a message into `Err(anyhow::Error)` carrying a [`StartupError`].
pub fn startup<T>(message: impl Into<String>) -> anyhow::Result<T> {
    Err(StartupError::new(message).into())
}

/// The one line printed for an error: the start-up message itself, or the whole context chain
/// of any other error joined on one line (JSON logs and process managers read stderr by line).
pub fn one_line(error: &anyhow::Error) -> String {
    match error.downcast_ref::<StartupError>() {
        Some(startup) => startup.0.replace('\n', " "),
        None => format!("{error:#}").replace('\n', " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn startup_message_is_kept_verbatim() {
        let err: anyhow::Error = StartupError::new("topic 'x' does not exist").into();
        assert_eq!(one_line(&err), "topic 'x' does not exist");
        assert!(err.downcast_ref::<StartupError>().is_some());
    }

    #[test]
    fn other_errors_keep_their_context_on_one_line() {
        let err = Err::<(), _>(anyhow::anyhow!("disk\nfull"))
            .context("writing parquet")
            .unwrap_err();
        assert_eq!(one_line(&err), "writing parquet: disk full");
    }
}
