//! Start-up helpers shared by the processes: opening a table with a clear one-line error, and
//! the shutdown signal.

use std::time::Duration;

use anyhow::Result;
use deltalake::DeltaTable;
use tokio::sync::watch;

use crate::config::S3Args;
use crate::errors::startup;
use crate::schema::{self, OpenError, TableSpec};
use crate::storage::{describe_endpoint, storage_options};

/// How long opening a table may take before S3 counts as unreachable. object_store itself
/// retries a refused connection for minutes, which is right while running, not at start-up.
pub const S3_STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// Open (or create) a table, turning every failure into a start-up error that names the fix.
pub async fn open_table(
    uri: &str,
    s3: &S3Args,
    spec: &TableSpec,
    name: &str,
) -> Result<DeltaTable> {
    let options = storage_options(s3);
    let endpoint = describe_endpoint(s3);
    let opened = tokio::time::timeout(
        S3_STARTUP_TIMEOUT,
        schema::open_or_create(uri, &options, spec, name),
    )
    .await;
    match opened {
        Ok(Ok(table)) => Ok(table),
        Err(_elapsed) => startup(format!(
            "S3 at {endpoint} did not answer within {} s while opening {uri}: start the stack \
             (neuralake stack up) or fix --s3-endpoint",
            S3_STARTUP_TIMEOUT.as_secs()
        )),
        Ok(Err(OpenError::SchemaMismatch(diff))) => startup(format!(
            "table {uri} already exists with another schema ({diff}): pass another --table \
             or --table-uri, or delete that table"
        )),
        Ok(Err(OpenError::Delta(e))) => startup(explain_open_error(uri, &endpoint, &e.to_string())),
    }
}

/// Open (or create) a table and its dead-letter table, as [`open_table`] does each; the
/// dead-letter table is created under the name `<table name>_dead_letters`.
pub async fn open_with_dead_letters(
    uri: &str,
    dead_uri: &str,
    s3: &S3Args,
) -> Result<(DeltaTable, DeltaTable)> {
    let name = crate::config::table_name(uri);
    let table = open_table(uri, s3, &schema::bronze(), name).await?;
    let dead_name = format!("{name}_dead_letters");
    let dead = open_table(dead_uri, s3, &schema::dead_letters(), &dead_name).await?;
    Ok((table, dead))
}

/// Map the text of an S3 / Delta error to a message that names the fix.
pub fn explain_open_error(uri: &str, endpoint: &str, error: &str) -> String {
    let error = error.replace('\n', " ");
    let has = |needles: &[&str]| needles.iter().any(|n| error.contains(n));
    if has(&[
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "403",
    ]) {
        format!(
            "S3 at {endpoint} refused the credentials for {uri} ({error}): fix \
             --s3-access-key-id / --s3-secret-access-key"
        )
    } else if has(&["NoSuchBucket"]) {
        format!(
            "the bucket of {uri} does not exist on {endpoint}: create it (neuralake stack up \
             creates the lab bucket) or fix --table-uri"
        )
    } else if has(&["Connection refused", "connect", "dns error", "timed out"]) {
        format!(
            "cannot reach S3 at {endpoint} ({error}): start the stack (neuralake stack up) or \
             fix --s3-endpoint"
        )
    } else {
        format!(
            "cannot open table {uri} on {endpoint} ({error}): check the stack (neuralake stack \
             up), --s3-endpoint and --table-uri"
        )
    }
}

/// A receiver that turns `true` on SIGINT or SIGTERM. The processes finish the batch or pass
/// in hand, then exit 0; a second signal is not needed (kill -9 is always safe, just slower to
/// recover).
pub fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = ctrl_c => {},
                        _ = term.recv() => {},
                    }
                }
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        tracing::info!("shutdown signal received");
        let _ = tx.send(true);
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_mapped_to_their_fix() {
        let e = |text: &str| explain_open_error("s3://b/t", "http://127.0.0.1:9000", text);
        assert!(e("Error: InvalidAccessKeyId").contains("--s3-access-key-id"));
        assert!(e("NoSuchBucket: b").contains("does not exist"));
        assert!(e("error trying to connect: Connection refused").contains("cannot reach S3"));
        assert!(e("something\nelse").contains("cannot open table s3://b/t"));
        assert!(!e("something\nelse").contains('\n'));
    }
}
