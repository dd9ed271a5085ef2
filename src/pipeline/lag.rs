//! Falling-behind episodes of one stream's pipeline (pure): a hub queue that
//! overflows under sustained load lags again and again, so the log says when
//! an episode starts and when it is over, with what it dropped, not once per
//! overflow (the counter `castline_hub_dropped_events_total` counts each).

use std::time::{Duration, Instant};

/// An episode ends after this long without a lag.
pub const QUIET: Duration = Duration::from_secs(5);

/// One episode: from its first lag to its last.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub started: Instant,
    pub last: Instant,
    /// Hub events dropped, over every lag of the episode.
    pub dropped: u64,
    pub lags: u64,
}

#[derive(Debug, Default)]
pub struct Episodes {
    current: Option<Episode>,
}

impl Episodes {
    /// A lag that dropped `n` events at `now`; true when it starts an episode
    /// (then log it).
    pub fn lag(&mut self, n: u64, now: Instant) -> bool {
        match &mut self.current {
            Some(e) => {
                e.last = now;
                e.dropped += n;
                e.lags += 1;
                false
            }
            None => {
                self.current = Some(Episode {
                    started: now,
                    last: now,
                    dropped: n,
                    lags: 1,
                });
                true
            }
        }
    }

    /// The episode that is over at `now` ([`QUIET`] since its last lag), once.
    pub fn ended(&mut self, now: Instant) -> Option<Episode> {
        let over = self
            .current
            .as_ref()
            .is_some_and(|e| now.saturating_duration_since(e.last) >= QUIET);
        if over {
            self.current.take()
        } else {
            None
        }
    }

    /// The episode still open (the stream ended while behind).
    pub fn take(&mut self) -> Option<Episode> {
        self.current.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lags_close_together_are_one_episode_reported_once_it_is_quiet() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut e = Episodes::default();
        assert!(e.lag(40, at(0)), "the first lag starts an episode");
        assert!(!e.lag(25, at(300)));
        assert!(!e.lag(10, at(4_000)));
        assert_eq!(
            e.ended(at(8_999)),
            None,
            "less than QUIET after the last lag"
        );
        assert_eq!(
            e.ended(at(9_000)),
            Some(Episode {
                started: at(0),
                last: at(4_000),
                dropped: 75,
                lags: 3
            })
        );
        assert_eq!(e.ended(at(20_000)), None, "reported once");
        assert!(e.lag(1, at(20_000)), "a later lag starts a new episode");
        assert_eq!(e.take().map(|x| x.dropped), Some(1));
        assert_eq!(e.take(), None);
    }
}
