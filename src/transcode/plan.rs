//! Ladder planning (pure): the source's size and the configured rungs in,
//! the rungs to encode out. Never upscales; keeps the aspect ratio; even sizes.

use crate::config::RungConfig;

#[derive(Debug, Clone, PartialEq)]
pub struct Rung {
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Bits per second.
    pub bitrate: u64,
    /// Frame-rate cap, if the rung has one.
    pub max_fps: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Highest first.
    pub rungs: Vec<Rung>,
    /// Configured rungs left out because they are taller than the source.
    pub skipped: Vec<String>,
}

/// `num / den` rounded to the nearest even number (at least 2).
fn nearest_even(num: u64, den: u64) -> u32 {
    (((num + den) / (2 * den)) * 2).max(2) as u32
}

/// The rungs for a `width` x `height` source.
pub fn plan(width: u32, height: u32, configured: &[RungConfig]) -> Plan {
    let mut rungs = Vec::new();
    let mut skipped = Vec::new();
    let mut sorted: Vec<&RungConfig> = configured.iter().collect();
    sorted.sort_by_key(|r| std::cmp::Reverse(r.height));
    for r in sorted {
        if r.height > height || width == 0 || height == 0 {
            skipped.push(r.name.clone());
            continue;
        }
        rungs.push(Rung {
            name: r.name.clone(),
            width: nearest_even(width as u64 * r.height as u64, height as u64),
            height: nearest_even(r.height as u64, 1),
            bitrate: r.bitrate_kbps as u64 * 1000,
            max_fps: r.max_fps,
        });
    }
    Plan { rungs, skipped }
}

/// Extra IDRs between cuts (`transcode.keyframe_interval`, pure): the first
/// frame presented at or after each interval since the segment's cut, so the
/// part it opens is INDEPENDENT and a player can start there. Decided once
/// per stream, so every rung makes the same frames IDRs.
#[derive(Debug, Clone)]
pub struct KeyframeClock {
    interval: i64,
    /// Absorbs millisecond-rounded timestamps (a quarter frame).
    slack: i64,
    next: Option<i64>,
}

impl KeyframeClock {
    /// `interval` and `frame` (one frame's duration) in timestamp ticks.
    pub fn new(interval: i64, frame: i64) -> Self {
        KeyframeClock {
            interval: interval.max(1),
            slack: (frame / 4).max(0),
            next: None,
        }
    }

    /// A frame presented at `pts`, and the instant of the cut it opens, if
    /// it opens one. True: encode it as an IDR though it opens no segment.
    pub fn refresh(&mut self, pts: i64, cut_at: Option<i64>) -> bool {
        if let Some(at) = cut_at {
            self.next = Some(at + self.interval);
            return false;
        }
        let Some(mut next) = self.next else {
            return false;
        };
        if pts + self.slack < next {
            return false;
        }
        while next <= pts + self.slack {
            next += self.interval;
        }
        self.next = Some(next);
        true
    }

    /// Input was lost: nothing until the next cut.
    pub fn reset(&mut self) {
        self.next = None;
    }
}

/// Drops frames so a rung stays at or under its frame-rate cap (pure).
/// A frame that opens a segment is always kept: it must become the IDR.
#[derive(Debug, Clone)]
pub struct FrameRateCap {
    interval: i64,
    next_due: Option<i64>,
}

impl FrameRateCap {
    /// `max_fps` in frames per second, timestamps in `timescale` ticks.
    pub fn new(max_fps: f64, timescale: u32) -> Self {
        FrameRateCap {
            interval: (timescale as f64 / max_fps).round().max(1.0) as i64,
            next_due: None,
        }
    }

    pub fn keep(&mut self, pts: i64, opens_segment: bool) -> bool {
        // A quarter interval of slack absorbs millisecond-rounded timestamps.
        let slack = self.interval / 4;
        let due = self.next_due.is_none_or(|d| pts >= d - slack);
        if !(due || opens_segment) {
            return false;
        }
        let next = self.next_due.map_or(pts, |d| d.max(pts - slack)) + self.interval;
        // After a jump (a gap, a new session) count from this frame.
        self.next_due = Some(if opens_segment || next <= pts {
            pts + self.interval
        } else {
            next
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyframe_clock_marks_the_frame_at_each_interval_after_a_cut() {
        // 30 fps (3000 ticks), an IDR every 0.4 s (36000) in 1 s segments;
        // timestamps rounded to milliseconds (90 ticks) as RTMP gives them.
        let mut k = KeyframeClock::new(36_000, 3000);
        assert!(!k.refresh(0, None), "nothing before the first cut");
        let mut marked = Vec::new();
        for i in 0..60i64 {
            let pts = (i * 1000 / 30) * 90; // ms-rounded frame times
            let cut = (i % 30 == 0).then_some(i / 30 * 90_000);
            if k.refresh(pts, cut) {
                marked.push(i);
            }
        }
        // Frames 12 and 24 of each second (0.4 s, 0.8 s); 30 is a cut.
        assert_eq!(marked, vec![12, 24, 42, 54]);
        k.reset();
        assert!(
            !k.refresh(200_000, None),
            "after a gap: only from the next cut"
        );
    }
    use crate::config::TranscodeConfig;

    fn names(p: &Plan) -> Vec<(&str, u32, u32)> {
        p.rungs
            .iter()
            .map(|r| (r.name.as_str(), r.width, r.height))
            .collect()
    }

    #[test]
    fn default_ladder_from_720p_skips_1080p() {
        let p = plan(1280, 720, &TranscodeConfig::default().rungs);
        assert_eq!(
            names(&p),
            vec![("720p", 1280, 720), ("480p", 854, 480), ("360p", 640, 360)]
        );
        assert_eq!(p.skipped, vec!["1080p".to_string()]);
        assert_eq!(p.rungs[0].bitrate, 3_000_000);
    }

    #[test]
    fn four_by_three_and_odd_sizes_stay_even() {
        let p = plan(1440, 1080, &TranscodeConfig::default().rungs);
        assert_eq!(
            names(&p),
            vec![
                ("1080p", 1440, 1080),
                ("720p", 960, 720),
                ("480p", 640, 480),
                ("360p", 480, 360)
            ]
        );
        let p = plan(1000, 563, &TranscodeConfig::default().rungs);
        assert!(p
            .rungs
            .iter()
            .all(|r| r.width % 2 == 0 && r.height % 2 == 0));
        assert_eq!(names(&p)[0], ("480p", 852, 480));
    }

    #[test]
    fn a_small_source_gets_no_rung() {
        let p = plan(320, 240, &TranscodeConfig::default().rungs);
        assert!(p.rungs.is_empty());
        assert_eq!(p.skipped.len(), 4);
    }

    #[test]
    fn a_thirty_fps_cap_keeps_every_other_frame_of_sixty() {
        let mut cap = FrameRateCap::new(30.0, 90_000);
        let kept: Vec<i64> = (0..12)
            .map(|i| i * 1500)
            .filter(|&p| cap.keep(p, false))
            .collect();
        assert_eq!(kept, vec![0, 3000, 6000, 9000, 12000, 15000]);
        // Millisecond-rounded 60 fps (16/17 ms steps) keeps 30 of 60 as well.
        let mut cap = FrameRateCap::new(30.0, 90_000);
        let kept = (0..60)
            .map(|i| (i * 1000 / 60) * 90)
            .filter(|&p| cap.keep(p, false))
            .count();
        assert_eq!(kept, 30);
    }

    #[test]
    fn a_cut_frame_is_always_kept_and_restarts_the_count() {
        let mut cap = FrameRateCap::new(30.0, 90_000);
        assert!(cap.keep(0, false));
        assert!(!cap.keep(1500, false));
        assert!(cap.keep(1500, true), "the frame that opens a segment stays");
        assert!(!cap.keep(3000, false));
        assert!(cap.keep(4500, false));
    }

    #[test]
    fn a_source_under_the_cap_keeps_everything() {
        let mut cap = FrameRateCap::new(30.0, 90_000);
        assert!((0..30).all(|i| cap.keep(i * 3003, false)));
    }
}
