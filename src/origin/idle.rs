//! When a connection is idle: no request in flight for `origin.idle_timeout`.
//! HTTP/1.1 has hyper's header deadline for a silent client; an HTTP/2
//! client that answers pings and opens no stream would otherwise hold its
//! connection slot for good. Pure: the caller passes the clock.

use std::sync::Mutex;
use std::time::Duration;

// tokio's clock, so tests can pause it.
use tokio::time::Instant;

#[derive(Debug)]
pub struct Activity {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    in_flight: usize,
    /// When the connection opened or its last request ended.
    since: Instant,
}

impl Activity {
    pub fn new(now: Instant) -> Activity {
        Activity {
            state: Mutex::new(State {
                in_flight: 0,
                since: now,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request starts; it ends when the guard is dropped.
    pub fn begin(&self) -> Busy<'_> {
        self.state().in_flight += 1;
        Busy(self)
    }

    /// How long the connection has been idle at `now` (None while a
    /// request is in flight).
    pub fn idle_for(&self, now: Instant) -> Option<Duration> {
        let s = self.state();
        (s.in_flight == 0).then(|| now.saturating_duration_since(s.since))
    }
}

/// A request in flight.
pub struct Busy<'a>(&'a Activity);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut s = self.0.state();
        s.in_flight = s.in_flight.saturating_sub(1);
        s.since = Instant::now();
    }
}

/// Resolves once `activity` has been idle for `timeout` (checked at most
/// every `timeout`, and as often as a second).
pub async fn idle(activity: &Activity, timeout: Duration) {
    loop {
        let wait = match activity.idle_for(Instant::now()) {
            Some(idle) if idle >= timeout => return,
            Some(idle) => timeout - idle,
            None => timeout,
        };
        tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_idle_only_with_no_request_in_flight() {
        let t = Instant::now();
        let a = Activity::new(t);
        assert_eq!(
            a.idle_for(t + Duration::from_secs(5)),
            Some(Duration::from_secs(5))
        );
        let one = a.begin();
        let two = a.begin();
        assert_eq!(a.idle_for(t + Duration::from_secs(60)), None);
        drop(one);
        assert_eq!(
            a.idle_for(t + Duration::from_secs(60)),
            None,
            "one still in flight"
        );
        drop(two);
        let idle = a.idle_for(Instant::now() + Duration::from_secs(1)).unwrap();
        assert!(
            idle >= Duration::from_secs(1) && idle < Duration::from_secs(5),
            "{idle:?}: counted from the last request's end"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_resolves_once_the_timeout_passes_with_nothing_in_flight() {
        let a = Activity::new(Instant::now());
        let busy = a.begin();
        let waited =
            tokio::time::timeout(Duration::from_secs(3), idle(&a, Duration::from_secs(2))).await;
        assert!(waited.is_err(), "idle while a request was in flight");
        drop(busy);
        let waited =
            tokio::time::timeout(Duration::from_secs(3), idle(&a, Duration::from_secs(2))).await;
        assert!(waited.is_ok());
    }
}
