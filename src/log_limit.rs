//! Log lines about misbehaving or refused clients, kept to a few per period:
//! a client that retries in a loop cannot flood the log.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one log line per key per `every`, with the number of lines held
/// back since, so a flood of refusals cannot flood the log.
#[derive(Debug)]
pub struct LogLimiter {
    every: Duration,
    last: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl LogLimiter {
    pub fn new(every: Duration) -> Self {
        LogLimiter {
            every,
            last: Mutex::default(),
        }
    }

    /// `Some(suppressed)` when a line for `key` may be written now.
    pub fn allow(&self, key: &'static str, now: Instant) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match last.get_mut(key) {
            Some((at, held)) if now.duration_since(*at) < self.every => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                let n = *held;
                *at = now;
                *held = 0;
                Some(n)
            }
            None => {
                last.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_limiter_writes_one_line_per_period_and_counts_the_rest() {
        let l = LogLimiter::new(Duration::from_secs(10));
        let t = Instant::now();
        assert_eq!(l.allow("x", t), Some(0));
        assert_eq!(l.allow("x", t + Duration::from_secs(1)), None);
        assert_eq!(l.allow("x", t + Duration::from_secs(2)), None);
        assert_eq!(l.allow("y", t + Duration::from_secs(2)), Some(0));
        assert_eq!(l.allow("x", t + Duration::from_secs(11)), Some(2));
    }
}
