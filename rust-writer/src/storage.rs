//! Storage options handed to delta-rs (and through it to `object_store`).
//!
//! No locking provider and no DynamoDB: deltalake-aws 1.x commits `_delta_log/N.json` with an
//! S3 conditional write (`PUT` with `If-None-Match: *`), so two writers racing for version N
//! cannot both succeed; the loser gets "version already exists" and retries on a new snapshot.

use std::collections::HashMap;

use crate::config::S3Args;

/// Options for an `s3://` table; ignored by delta-rs for `file://` tables.
pub fn storage_options(s3: &S3Args) -> HashMap<String, String> {
    let mut options = HashMap::new();
    options.insert("AWS_REGION".to_string(), s3.s3_region.clone());
    if let Some(endpoint) = s3.endpoint() {
        if endpoint.starts_with("http://") {
            // object_store refuses plain HTTP unless told; MinIO in the lab is plain HTTP.
            options.insert("AWS_ALLOW_HTTP".to_string(), "true".to_string());
        }
        options.insert("AWS_ENDPOINT_URL".to_string(), endpoint);
    }
    if let Some((key, secret)) = s3.credentials() {
        options.insert("AWS_ACCESS_KEY_ID".to_string(), key);
        options.insert("AWS_SECRET_ACCESS_KEY".to_string(), secret);
    }
    options
}

/// A short description of where the data lives, for error messages.
pub fn describe_endpoint(s3: &S3Args) -> String {
    s3.endpoint().unwrap_or_else(|| "AWS S3".to_string())
}
