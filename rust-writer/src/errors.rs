//! Two kinds of failure, two exit paths.
//!
//! * [`StartupError`]: something is wrong before the process starts its work (a bad flag, the
//!   broker or S3 unreachable, a missing topic, a table with another schema). `main` prints ONE
//!   line `error: <message>` on stderr and exits with [`STARTUP_EXIT_CODE`]; the message names
//!   the fix, because the person reading it is about to type the next command.
//! * Everything else is an `anyhow::Error` with context. Once running, transient Kafka and S3
//!   failures are retried with capped backoff (see `retry.rs`). A failure that retrying cannot
//!   fix ([`permanent`]: permission denied, the table or its bucket deleted, the table's schema
//!   changed) is retried for `--give-up-s` seconds, in case it was a blip, and then ends the
//!   process with exit code 1 and one line naming the fix; so does a bug.

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

/// The fix for a failure that retrying cannot cure, or `None` for one worth retrying (a
/// network error, a slow or restarting S3 server, a commit conflict). Read from the error's
/// whole chain, as object_store and delta-rs report S3 answers as text.
pub fn permanent(error: &anyhow::Error) -> Option<String> {
    let text = format!("{error:#}");
    let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    if has(&[
        "AccessDenied",
        "Forbidden",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "status: 403",
        "403 Forbidden",
    ]) {
        Some(
            "S3 refuses this writer (permission denied): grant its credentials read and write \
             on the table's prefix, or fix --s3-access-key-id / --s3-secret-access-key"
                .to_string(),
        )
    } else if has(&["NoSuchBucket"]) {
        Some("the table's bucket was deleted: recreate it, or point --table-uri elsewhere".into())
    } else if has(&[
        "Not a Delta table",
        "not a Delta table",
        "No files in log segment",
        "NotATable",
        "is not in the log",
    ]) {
        Some(
            "the table was deleted while the writer ran: restart the writer to create it \
             afresh (it re-reads the topic from its start), or point --table-uri elsewhere"
                .to_string(),
        )
    } else {
        None
    }
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
    fn permanent_failures_are_told_apart_from_transient_ones() {
        let e = |text: &str| permanent(&anyhow::anyhow!(text.to_string()).context("committing"));
        assert!(e("Error performing PUT: status: 403 Forbidden, AccessDenied").is_some());
        assert!(e("NoSuchBucket: neuralake").unwrap().contains("bucket"));
        assert!(
            e("Not a Delta table: No files in log segment")
                .unwrap()
                .contains("deleted")
        );
        assert_eq!(e("error sending request: Connection refused"), None);
        assert_eq!(e("Transaction failed: version already exists"), None);
    }

    #[test]
    fn other_errors_keep_their_context_on_one_line() {
        let err = Err::<(), _>(anyhow::anyhow!("disk\nfull"))
            .context("writing parquet")
            .unwrap_err();
        assert_eq!(one_line(&err), "writing parquet: disk full");
    }
}
