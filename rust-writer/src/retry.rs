//! Exponential backoff for the "retry, never lose data" loops, and the rule for giving up.
//!
//! Once the writer runs, an S3 or Kafka outage must not kill it: every write and commit is
//! retried. The delay doubles from `base` up to `max` so a long outage costs one request every
//! `max` seconds instead of a busy loop, and a success resets it. A failure that retrying
//! cannot fix ([`crate::errors::permanent`]) is retried only for a bounded time ([`Retry`]).

use std::time::{Duration, Instant};

use anyhow::anyhow;

/// Doubling delays between attempts, capped.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Delays `base`, `2 * base`, `4 * base` ... capped at `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            attempt: 0,
        }
    }

    /// The defaults used for S3 and Kafka retries: 200 ms doubling up to 30 s.
    pub fn for_io() -> Self {
        Self::new(Duration::from_millis(200), Duration::from_secs(30))
    }

    /// Number of failed attempts so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The delay before the next attempt (and count this failure).
    pub fn next_delay(&mut self) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(20));
        self.attempt = self.attempt.saturating_add(1);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Sleep for the next delay.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }
}

/// One retry loop's state: the backoff, and since when the failures have been permanent.
#[derive(Debug, Clone)]
pub struct Retry {
    backoff: Backoff,
    give_up: Duration,
    permanent_since: Option<Instant>,
}

impl Retry {
    /// A loop that gives up after `give_up` of permanent failures in a row.
    pub fn new(give_up: Duration) -> Self {
        Self {
            backoff: Backoff::for_io(),
            give_up,
            permanent_since: None,
        }
    }

    /// Failed attempts so far.
    pub fn attempts(&self) -> u32 {
        self.backoff.attempts()
    }

    /// After a failed attempt: `Err` (one line: the fix, then the cause) once failures with
    /// a `fix` (permanent ones) have lasted `give_up` without a transient one between;
    /// otherwise wait the next backoff delay (none after a commit conflict, which a fresh
    /// attempt resolves).
    pub async fn after(
        &mut self,
        error: &anyhow::Error,
        fix: Option<String>,
        conflict: bool,
    ) -> anyhow::Result<()> {
        self.check(error, fix, Instant::now())?;
        if conflict {
            self.backoff.attempt = self.backoff.attempt.saturating_add(1);
        } else {
            self.backoff.wait().await;
        }
        Ok(())
    }

    fn check(
        &mut self,
        error: &anyhow::Error,
        fix: Option<String>,
        now: Instant,
    ) -> anyhow::Result<()> {
        let Some(fix) = fix else {
            self.permanent_since = None;
            return Ok(());
        };
        let since = *self.permanent_since.get_or_insert(now);
        if now.duration_since(since) >= self.give_up {
            return Err(anyhow!(
                "{fix} (gave up after {} s of: {error:#})",
                self.give_up.as_secs()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_then_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let delays: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 500, 500]);
        assert_eq!(b.attempts(), 5);
    }

    #[test]
    fn permanent_failures_give_up_after_the_bound_and_transient_ones_reset_it() {
        let mut r = Retry::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let err = anyhow!("403 Forbidden");
        let fix = || Some("grant access".to_string());
        assert!(r.check(&err, fix(), t0).is_ok());
        assert!(r.check(&err, fix(), t0 + Duration::from_secs(59)).is_ok());
        // A transient failure between: the clock starts again.
        assert!(r.check(&err, None, t0 + Duration::from_secs(59)).is_ok());
        assert!(r.check(&err, fix(), t0 + Duration::from_secs(61)).is_ok());
        let line = r
            .check(&err, fix(), t0 + Duration::from_secs(121))
            .unwrap_err()
            .to_string();
        assert!(
            line.starts_with("grant access (gave up after 60 s of: 403 Forbidden"),
            "{line}"
        );
    }

    #[test]
    fn many_failures_never_overflow() {
        let mut b = Backoff::for_io();
        for _ in 0..100 {
            assert!(b.next_delay() <= Duration::from_secs(30));
        }
    }
}
