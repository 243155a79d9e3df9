//! Exponential backoff for the "retry forever, never lose data" loops.
//!
//! Once the writer runs, an S3 or Kafka outage must not kill it: every write and commit is
//! retried. The delay doubles from `base` up to `max` so a long outage costs one request every
//! `max` seconds instead of a busy loop, and a success resets it.

use std::time::Duration;

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
    fn many_failures_never_overflow() {
        let mut b = Backoff::for_io();
        for _ in 0..100 {
            assert!(b.next_delay() <= Duration::from_secs(30));
        }
    }
}
