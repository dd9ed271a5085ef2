//! When a connection is idle: no request in flight for `origin.idle_timeout`,
//! or no first request within the header deadline. Without it a client that
//! connects and never sends a byte (hyper-util's HTTP/1.1-or-2 sniffing of
//! the first bytes has no timer, so hyper's header deadline never starts),
//! or an HTTP/2 client that answers pings and opens no stream, would hold
//! its connection slot for good. Between HTTP/1.1 requests hyper's header
//! deadline closes first. Pure: the caller passes the clock.

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
    /// A request has started on it.
    used: bool,
}

impl Activity {
    pub fn new(now: Instant) -> Activity {
        Activity {
            state: Mutex::new(State {
                in_flight: 0,
                since: now,
                used: false,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request starts; it ends when the guard is dropped.
    pub fn begin(&self) -> Busy<'_> {
        let mut s = self.state();
        s.in_flight += 1;
        s.used = true;
        Busy(self)
    }

    /// How long the connection has been idle at `now` (None while a
    /// request is in flight), and whether it ever had a request.
    pub fn idle_for(&self, now: Instant) -> Option<(Duration, bool)> {
        let s = self.state();
        (s.in_flight == 0).then(|| (now.saturating_duration_since(s.since), s.used))
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

/// Resolves once `activity` has been idle for `timeout`, or `first` if it
/// never had a request: at most about twice `timeout` after its last
/// request ended (it sleeps a whole `timeout` while one is in flight).
pub async fn idle(activity: &Activity, timeout: Duration, first: Duration) {
    loop {
        let wait = match activity.idle_for(Instant::now()) {
            Some((idle, used)) => {
                let limit = if used { timeout } else { first.min(timeout) };
                match limit.checked_sub(idle) {
                    None | Some(Duration::ZERO) => return,
                    Some(left) => left,
                }
            }
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
        let five = t + Duration::from_secs(5);
        assert_eq!(a.idle_for(five), Some((Duration::from_secs(5), false)));
        let one = a.begin();
        let two = a.begin();
        assert_eq!(a.idle_for(t + Duration::from_secs(60)), None);
        drop(one);
        assert_eq!(
            a.idle_for(t + Duration::from_secs(60)),
            None,
            "one in flight"
        );
        drop(two);
        let (idle, used) = a.idle_for(Instant::now() + Duration::from_secs(1)).unwrap();
        assert!(used);
        assert!(
            idle >= Duration::from_secs(1) && idle < Duration::from_secs(5),
            "{idle:?}: counted from the last request's end"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_resolves_once_the_timeout_passes_with_nothing_in_flight() {
        use tokio::time::timeout as within;
        let (limit, first) = (Duration::from_secs(2), Duration::from_secs(1));
        let ms = Duration::from_millis;
        let silent = Activity::new(Instant::now());
        let waited = within(ms(1_100), idle(&silent, limit, first)).await;
        assert!(waited.is_ok(), "no first request: closed after `first`");
        let a = Activity::new(Instant::now());
        let busy = a.begin();
        let waited = within(ms(3_000), idle(&a, limit, first)).await;
        assert!(waited.is_err(), "idle while a request was in flight");
        drop(busy);
        let waited = within(ms(1_500), idle(&a, limit, first)).await;
        assert!(waited.is_err(), "a used connection waits the whole timeout");
        let waited = within(ms(3_000), idle(&a, limit, first)).await;
        assert!(waited.is_ok());
    }
}
