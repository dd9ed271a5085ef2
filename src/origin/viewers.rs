//! An estimate of viewers per stream: the distinct clients whose requests
//! for the stream the origin answered over the last one to two windows.
//!
//! A client is a remote address (hashed, never stored as such), so this is
//! what the origin sees: behind a CDN it counts the edge servers that fetch
//! the stream, not the people watching; in front of players it counts
//! households behind one NAT as one. Memory is bounded: at most
//! [`MAX_PER_STREAM`] clients are remembered per stream and window (past it
//! the estimate says "at least that many"), and only streams that exist are
//! tracked.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const MAX_PER_STREAM: usize = 100_000;

struct Window {
    current: HashSet<u64>,
    previous: HashSet<u64>,
    started: Instant,
}

pub struct Viewers {
    window: Duration,
    streams: Mutex<HashMap<String, Window>>,
}

/// A client's identity for counting (a hash of its address).
pub fn client_id(addr: std::net::IpAddr) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    addr.hash(&mut h);
    h.finish()
}

impl Viewers {
    pub fn new(window: Duration) -> Viewers {
        Viewers {
            window,
            streams: Mutex::new(HashMap::new()),
        }
    }

    /// `client` fetched something of `stream` at `now`.
    pub fn seen(&self, stream: &str, client: u64, now: Instant) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if !streams.contains_key(stream) {
            streams.insert(
                stream.to_string(),
                Window {
                    current: HashSet::new(),
                    previous: HashSet::new(),
                    started: now,
                },
            );
        }
        let Some(w) = streams.get_mut(stream) else {
            return;
        };
        self.rotate(w, now);
        if w.current.len() < MAX_PER_STREAM {
            w.current.insert(client);
        }
    }

    fn rotate(&self, w: &mut Window, now: Instant) {
        let age = now.saturating_duration_since(w.started);
        if age >= self.window * 2 {
            w.previous.clear();
            w.current.clear();
            w.started = now;
        } else if age >= self.window {
            w.previous = std::mem::take(&mut w.current);
            w.started = now;
        }
    }

    /// Distinct clients per stream over the current and the previous window
    /// at `now`; streams for which `keep` says no are forgotten.
    pub fn estimate(&self, now: Instant, keep: impl Fn(&str) -> bool) -> Vec<(String, usize)> {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        streams.retain(|name, _| keep(name));
        for w in streams.values_mut() {
            self.rotate(w, now);
        }
        streams
            .iter()
            .map(|(name, w)| {
                let new = w.current.iter().filter(|c| !w.previous.contains(c)).count();
                (name.clone(), w.previous.len() + new)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_clients_are_counted_once_over_two_windows() {
        let v = Viewers::new(Duration::from_secs(60));
        let t = Instant::now();
        for _ in 0..3 {
            v.seen("game", 1, t);
        }
        v.seen("game", 2, t);
        v.seen("news", 1, t);
        let mut e = v.estimate(t, |_| true);
        e.sort();
        assert_eq!(e, [("game".to_string(), 2), ("news".to_string(), 1)]);
        // A new window: the old one still counts, the one before is gone.
        let t1 = t + Duration::from_secs(61);
        v.seen("game", 3, t1);
        assert_eq!(v.estimate(t1, |s| s == "game"), [("game".to_string(), 3)]);
        let t2 = t + Duration::from_secs(122);
        v.seen("game", 3, t2);
        assert_eq!(v.estimate(t2, |_| true), [("game".to_string(), 1)]);
        // Nobody for two windows: nobody.
        let t3 = t2 + Duration::from_secs(121);
        assert_eq!(v.estimate(t3, |_| true), [("game".to_string(), 0)]);
    }

    #[test]
    fn memory_is_bounded_per_stream() {
        let v = Viewers::new(Duration::from_secs(60));
        let t = Instant::now();
        for c in 0..(MAX_PER_STREAM as u64 + 10) {
            v.seen("big", c, t);
        }
        assert_eq!(
            v.estimate(t, |_| true),
            [("big".to_string(), MAX_PER_STREAM)]
        );
    }

    #[test]
    fn addresses_hash_apart() {
        let a = client_id("10.0.0.1".parse().unwrap());
        assert_eq!(a, client_id("10.0.0.1".parse().unwrap()));
        assert_ne!(a, client_id("10.0.0.2".parse().unwrap()));
    }
}
