//! What every ingest does to a publisher's clock after parsing, whatever
//! the protocol (pure, sans-IO):
//!
//! - [`Unwrapper`]: N-bit timestamps (32-bit milliseconds in RTMP, 33-bit
//!   90 kHz in MPEG-TS) into one increasing count, across the wrap.
//! - [`SessionClock`]: a session's timestamps relative to its start; a clock
//!   that jumps back (an encoder restart) or far forward starts a new
//!   timeline, which downstream treats as a reconnect (a discontinuity).
//! - [`MonotonicDts`]: a decode time that stands still or steps back inside
//!   one timeline is repaired from the frame duration, and counted.

/// Wrapping N-bit timestamps made into one increasing count: a signed delta
/// between successive values carries the clock across the wrap.
#[derive(Debug, Clone)]
pub struct Unwrapper {
    bits: u32,
    last: Option<u64>,
    acc: i64,
}

impl Unwrapper {
    pub fn new(bits: u32) -> Self {
        debug_assert!((1..=62).contains(&bits));
        Unwrapper {
            bits,
            last: None,
            acc: 0,
        }
    }

    pub fn unwrap(&mut self, raw: u64) -> i64 {
        let modulus = 1u64 << self.bits;
        let raw = raw & (modulus - 1);
        match self.last {
            None => self.acc = raw as i64,
            Some(last) => {
                let d = raw.wrapping_sub(last) & (modulus - 1);
                // Deltas of more than half the range are steps backwards.
                let d = if d >= modulus / 2 {
                    d as i64 - modulus as i64
                } else {
                    d as i64
                };
                self.acc += d;
            }
        }
        self.last = Some(raw);
        self.acc
    }
}

/// Where a timestamp lands on the session's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// On the current timeline, this far after its start.
    Same(i64),
    /// The clock jumped: a new timeline starts here (at 0).
    NewTimeline,
}

/// A session's timeline: timestamps relative to its first one, with resets
/// and jumps detected. Units are the caller's (RTMP: milliseconds).
#[derive(Debug, Clone)]
pub struct SessionClock {
    base: Option<i64>,
    /// The highest timestamp seen on this timeline, any track.
    high: Option<i64>,
    /// How far behind the highest timestamp a frame may be (tracks are
    /// interleaved loosely) before it counts as a clock reset.
    backwards: i64,
    /// How far past the highest timestamp a frame may jump.
    forwards: i64,
    /// New timelines started after the first.
    pub resets: u64,
}

impl SessionClock {
    pub fn new(backwards: i64, forwards: i64) -> Self {
        SessionClock {
            base: None,
            high: None,
            backwards,
            forwards,
            resets: 0,
        }
    }

    /// Start the timeline at `t` (the earliest of the media held before the
    /// tracks were known), if it has not started.
    pub fn start_at(&mut self, t: i64) {
        if self.base.is_none() {
            self.base = Some(t);
            self.high = Some(t);
        }
    }

    pub fn map(&mut self, t: i64) -> Stamp {
        let (Some(base), Some(high)) = (self.base, self.high) else {
            self.start_at(t);
            return Stamp::Same(0);
        };
        if t < high - self.backwards || t > high + self.forwards {
            self.base = Some(t);
            self.high = Some(t);
            self.resets += 1;
            return Stamp::NewTimeline;
        }
        self.high = Some(high.max(t));
        Stamp::Same((t - base).max(0))
    }
}

/// One track's decode times kept strictly increasing within a timeline.
#[derive(Debug, Clone, Default)]
pub struct MonotonicDts {
    last: Option<i64>,
    /// Frames whose decode time was repaired.
    pub repaired: u64,
}

impl MonotonicDts {
    /// (dts, pts) with dts after the previous one: a decode time that stands
    /// still or steps back becomes the previous one plus `frame` ticks, and
    /// the presentation time moves with it if it would come before.
    pub fn apply(&mut self, dts: i64, pts: i64, frame: i64) -> (i64, i64) {
        let (dts, pts) = match self.last {
            Some(last) if dts <= last => {
                self.repaired += 1;
                let fixed = last + frame.max(1);
                (fixed, pts.max(fixed))
            }
            _ => (dts, pts),
        };
        self.last = Some(dts);
        (dts, pts)
    }

    /// A new timeline: the next decode time is taken as it comes.
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_two_bit_milliseconds_cross_the_wrap() {
        let mut u = Unwrapper::new(32);
        assert_eq!(u.unwrap(u32::MAX as u64 - 10), u32::MAX as i64 - 10);
        assert_eq!(u.unwrap(5), u32::MAX as i64 + 6);
        assert_eq!(
            u.unwrap(2),
            u32::MAX as i64 + 3,
            "a small step back stays a step back"
        );
    }

    #[test]
    fn thirty_three_bit_ninety_khz_crosses_the_wrap() {
        let wrap = 1u64 << 33;
        let mut u = Unwrapper::new(33);
        let near = wrap - 3000;
        assert_eq!(u.unwrap(near), near as i64);
        // The next frame, 6000 ticks later, wrapped to 3000.
        assert_eq!(u.unwrap(3000), near as i64 + 6000);
        // Bits above 33 are ignored (PES carries exactly 33).
        assert_eq!(u.unwrap(wrap + 6000), near as i64 + 9000);
    }

    #[test]
    fn a_clock_reset_starts_a_new_timeline() {
        let mut c = SessionClock::new(1000, 10_000);
        assert_eq!(c.map(5000), Stamp::Same(0));
        assert_eq!(c.map(15_000), Stamp::Same(10_000));
        // Audio a little behind video is no reset.
        assert_eq!(c.map(14_700), Stamp::Same(9_700));
        // The encoder restarted its clock at 0.
        assert_eq!(c.map(0), Stamp::NewTimeline);
        assert_eq!(c.map(33), Stamp::Same(33));
        assert_eq!(c.resets, 1);
    }

    #[test]
    fn a_far_forward_jump_starts_a_new_timeline() {
        let mut c = SessionClock::new(1000, 10_000);
        c.map(0);
        c.map(1000);
        assert_eq!(c.map(3_600_000), Stamp::NewTimeline);
        assert_eq!(c.map(3_600_040), Stamp::Same(40));
    }

    #[test]
    fn standing_decode_times_are_repaired_from_the_frame_rate() {
        let mut m = MonotonicDts::default();
        let out: Vec<(i64, i64)> = (0..5).map(|_| m.apply(0, 0, 3000)).collect();
        assert_eq!(
            out,
            vec![
                (0, 0),
                (3000, 3000),
                (6000, 6000),
                (9000, 9000),
                (12000, 12000)
            ]
        );
        assert_eq!(m.repaired, 4);
        // A decode time that moves on again is kept.
        assert_eq!(m.apply(20_000, 26_000, 3000), (20_000, 26_000));
        m.reset();
        assert_eq!(m.apply(0, 6000, 3000), (0, 6000));
    }

    #[test]
    fn aac_sample_counting_does_not_drift_over_hours() {
        // 48 kHz AAC for 10 hours, stamped in milliseconds (rounded) by the
        // publisher: counting 1024-sample frames from the clock's first stamp
        // stays within a frame of the true time.
        let frames = 10 * 3600 * 48_000 / 1024;
        let mut c = SessionClock::new(1000, 10_000);
        let mut next: Option<i64> = None;
        let mut worst = 0i64;
        for n in 0..frames {
            let ms = n * 1024 * 1000 / 48_000; // what RTMP carries
            let Stamp::Same(rel) = c.map(ms) else {
                panic!("no reset expected")
            };
            let from_clock = rel * 48;
            let dts = match next {
                Some(x) if (from_clock - x).abs() <= 1024 => x,
                _ => from_clock,
            };
            next = Some(dts + 1024);
            worst = worst.max((dts - n * 1024).abs());
        }
        assert_eq!(worst, 0, "sample counting drifted by {worst} samples");
    }
}
