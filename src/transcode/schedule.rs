//! The cut schedule: which instants of a stream open a segment, and which
//! media sequence number (MSN) each segment has, for every rendition at once.
//!
//! Pure: source timestamps in, [`Cut`]s out. One schedule per stream sees
//! every source access unit (in arrival order) before any rendition does, so
//! all renditions (transcoded rungs, the passthrough rung, audio) get the
//! same cuts with the same MSNs, whatever each one loses later.
//!
//! - [`CutMode::Interval`]: a cut every `every` ticks of source presentation
//!   time (the transcoder forces an IDR there), so the segment duration is
//!   known before the first frame.
//! - [`CutMode::Keyframes`]: a cut at a source keyframe once the open segment
//!   has lasted `min` ticks (the passthrough rung cannot cut elsewhere
//!   without losing independence); past `max` ticks without one (a source
//!   whose keyframe interval is too long, or none at all), a cut at whatever
//!   frame comes: that segment does not start with an IDR, but no segment
//!   outgrows TARGETDURATION.
//!
//! A track that follows (audio, or the decoded video of the rungs) opens
//! segment N with its first frame presented at or after the cut's instant.
//! After a start or a restart, a stream with video cuts first at a source
//! keyframe (the decoder can only resume there), so audio and every rung
//! restart at the same instant.

use std::collections::VecDeque;

/// All instants here are on the stream's 90 kHz clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub msn: u64,
    /// Presentation time from which frames belong to segment `msn`.
    pub at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutMode {
    Interval { every: i64 },
    Keyframes { min: i64, max: i64 },
}

/// Cuts kept for tracks that follow; far more than any real A/V skew needs.
const PENDING: usize = 16;

#[derive(Debug)]
pub struct CutSchedule {
    mode: CutMode,
    /// Video anchors the first cut after a (re)start; audio only follows it.
    has_video: bool,
    next_msn: u64,
    /// Where the current run of interval cuts is anchored.
    origin: Option<i64>,
    last_at: Option<i64>,
    /// The next cut happens at the first possible frame (start, new session, loss).
    restart: bool,
    /// Cuts the audio track has not reached yet, oldest first.
    audio_pending: VecDeque<Cut>,
}

impl CutSchedule {
    /// `has_video`: the stream has a video track (else audio cuts on the clock).
    pub fn new(mode: CutMode, has_video: bool) -> Self {
        CutSchedule {
            mode,
            has_video,
            next_msn: 0,
            origin: None,
            last_at: None,
            restart: true,
            audio_pending: VecDeque::new(),
        }
    }

    pub fn mode(&self) -> CutMode {
        self.mode
    }

    /// Timestamps start over (a new publishing session) or input was lost:
    /// the next cut happens at the first frame that can take one.
    pub fn restart(&mut self) {
        self.restart = true;
        self.origin = None;
        self.audio_pending.clear();
    }

    fn open(&mut self, at: i64) -> Cut {
        let cut = Cut {
            msn: self.next_msn,
            at,
        };
        self.next_msn += 1;
        self.last_at = Some(at);
        self.restart = false;
        if self.audio_pending.len() >= PENDING {
            self.audio_pending.pop_front();
        }
        self.audio_pending.push_back(cut);
        cut
    }

    /// The interval instant at or before `pts`, if it is past the last cut.
    fn interval_cut(&mut self, pts: i64, every: i64) -> Option<Cut> {
        let origin = *self.origin.get_or_insert(pts);
        let k = (pts - origin).div_euclid(every);
        let at = origin + k * every;
        match self.last_at {
            Some(last) if at <= last => None,
            _ => Some(self.open(at)),
        }
    }

    /// A source video access unit (decode order) with presentation time `pts`.
    /// Returns the cut it opens, if any. In keyframe mode the cut is this very
    /// frame; in interval mode it is the instant `at`, and the frame to make an
    /// IDR is the first one *presented* at or after it.
    pub fn video(&mut self, pts: i64, keyframe: bool) -> Option<Cut> {
        match self.mode {
            CutMode::Keyframes { min, max } => {
                let since = self.last_at.map(|last| pts - last);
                let due = if keyframe {
                    self.restart || since.is_none_or(|s| s >= min)
                } else {
                    // After a (re)start only a keyframe can begin the stream.
                    !self.restart && since.is_some_and(|s| s >= max)
                };
                due.then(|| self.open(pts))
            }
            CutMode::Interval { every } => {
                if self.restart {
                    if !keyframe {
                        return None;
                    }
                    self.origin = None;
                    self.last_at = None;
                }
                self.interval_cut(pts, every)
            }
        }
    }

    /// Whether the audio frame presented at `next` (the one after the frame
    /// just given to [`CutSchedule::audio`]) will open a segment, as far as
    /// the schedule knows now: a cut already made by the video, or the next
    /// clock instant in interval mode. The frame before it can then close
    /// its part at once instead of waiting for it.
    pub fn audio_cut_before(&self, next: i64) -> bool {
        if let Some(front) = self.audio_pending.front() {
            return next >= front.at;
        }
        match (self.mode, self.origin) {
            (CutMode::Interval { every }, Some(origin)) if !self.restart => {
                let at = origin + (next - origin).div_euclid(every) * every;
                self.last_at.is_some_and(|last| at > last)
            }
            _ => false,
        }
    }

    /// A source audio frame presented at `pts` (90 kHz). Returns the MSN of
    /// the segment it opens in the audio rendition, if it opens one. In
    /// interval mode the audio may reach an instant before the video does.
    pub fn audio(&mut self, pts: i64) -> Option<u64> {
        if let CutMode::Interval { every } = self.mode {
            if self.restart && !self.has_video {
                self.origin = None;
                self.last_at = None;
            }
            if !(self.restart && self.has_video) {
                self.interval_cut(pts, every);
            }
        }
        let front = self.audio_pending.front()?;
        if pts < front.at {
            return None;
        }
        self.audio_pending.pop_front().map(|c| c.msn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 90_000;

    #[test]
    fn interval_cuts_every_second_whatever_the_gop() {
        let mut s = CutSchedule::new(CutMode::Interval { every: SECOND }, true);
        let mut cuts = Vec::new();
        // 30 fps, keyframe only at 0: cuts do not need source keyframes.
        for i in 0..91 {
            if let Some(c) = s.video(i * 3000, i == 0) {
                cuts.push((c.msn, c.at));
            }
        }
        assert_eq!(
            cuts,
            vec![(0, 0), (1, SECOND), (2, 2 * SECOND), (3, 3 * SECOND)]
        );
    }

    #[test]
    fn b_frame_order_cuts_at_the_instant_not_the_packet() {
        let mut s = CutSchedule::new(CutMode::Interval { every: SECOND }, true);
        assert_eq!(s.video(0, true).map(|c| c.at), Some(0));
        // Decode order: a P frame presented at 1.033 s arrives before the B
        // frame presented at 1.0 s; the cut is the instant 1.0 s either way.
        assert_eq!(
            s.video(SECOND + 3000, false),
            Some(Cut { msn: 1, at: SECOND })
        );
        assert_eq!(s.video(SECOND, false), None);
    }

    #[test]
    fn keyframe_mode_cuts_at_keyframes_past_the_minimum() {
        let mut s = CutSchedule::new(
            CutMode::Keyframes {
                min: 9 * SECOND / 10,
                max: 2 * SECOND,
            },
            true,
        );
        let mut msns = Vec::new();
        for i in 0..181 {
            // A 2 s GOP at 30 fps.
            if let Some(c) = s.video(i * 3000, i % 60 == 0) {
                msns.push((c.msn, c.at / 3000));
            }
        }
        assert_eq!(msns, vec![(0, 0), (1, 60), (2, 120), (3, 180)]);
    }

    #[test]
    fn keyframe_mode_cuts_between_keyframes_past_the_maximum() {
        let mut s = CutSchedule::new(
            CutMode::Keyframes {
                min: 9 * SECOND / 10,
                max: 2 * SECOND,
            },
            true,
        );
        let mut cuts = Vec::new();
        // No keyframe until frame 30 (a restart waits for one), then a 10 s GOP.
        for i in 0..331 {
            let key = i == 30 || (i > 30 && (i - 30) % 300 == 0);
            if let Some(c) = s.video(i * 3000, key) {
                cuts.push((c.msn, i, key));
            }
        }
        // Every 2 s whatever the frame; the keyframe at 10 s comes 2 s after
        // the cut at 8 s, so it cuts too.
        assert_eq!(
            cuts,
            vec![
                (0, 30, true),
                (1, 90, false),
                (2, 150, false),
                (3, 210, false),
                (4, 270, false),
                (5, 330, true)
            ]
        );
        // After a restart, a keyframe again.
        s.restart();
        assert_eq!(s.video(400 * 3000, false), None);
        assert!(s.video(401 * 3000, true).is_some());
    }

    #[test]
    fn audio_follows_the_video_cuts_with_the_same_msns() {
        let mut s = CutSchedule::new(
            CutMode::Keyframes {
                min: SECOND,
                max: 2 * SECOND,
            },
            true,
        );
        let mut audio_msns = Vec::new();
        let mut video_msns = Vec::new();
        // Audio frames of 1920 ticks (1024 samples at 48 kHz), video at 30 fps.
        let (mut a, mut v) = (0i64, 0i64);
        while v <= 3 * SECOND {
            // At equal times the video goes first (as ffmpeg interleaves).
            if a < v {
                if let Some(m) = s.audio(a) {
                    audio_msns.push((m, a));
                }
                a += 1920;
            } else {
                if let Some(c) = s.video(v, v % SECOND == 0) {
                    video_msns.push(c.msn);
                }
                v += 3000;
            }
        }
        assert_eq!(video_msns, vec![0, 1, 2, 3]);
        let msns: Vec<u64> = audio_msns.iter().map(|x| x.0).collect();
        assert_eq!(msns, vec![0, 1, 2]);
        // Each audio segment opens with the first frame at or after the cut.
        for (m, at) in audio_msns {
            let cut = m as i64 * SECOND;
            assert!(at >= cut && at < cut + 1920, "msn {m} opens at {at}");
        }
    }

    #[test]
    fn audio_ahead_of_video_opens_the_interval_cut_first() {
        let mut s = CutSchedule::new(CutMode::Interval { every: SECOND }, true);
        assert_eq!(s.video(0, true).map(|c| c.msn), Some(0));
        assert_eq!(s.audio(0), Some(0));
        assert_eq!(s.audio(SECOND + 100), Some(1));
        // The video reaching the same instant later gets the same cut, once.
        assert_eq!(s.video(SECOND + 3000, false), None);
    }

    #[test]
    fn restart_cuts_at_the_next_frame_and_numbering_continues() {
        let mut s = CutSchedule::new(CutMode::Interval { every: SECOND }, true);
        for i in 0..40 {
            s.video(i * 3000, i == 0);
        }
        s.restart();
        // The new session's clock starts again near 0; audio waits for the
        // video to anchor the cut, and the video for a keyframe.
        assert_eq!(s.audio(100), None);
        assert_eq!(s.video(200, false), None);
        assert_eq!(s.video(500, true), Some(Cut { msn: 2, at: 500 }));
        assert_eq!(s.audio(1000), Some(2));
        assert_eq!(
            s.video(500 + SECOND, false),
            Some(Cut {
                msn: 3,
                at: 500 + SECOND
            })
        );
        let mut k = CutSchedule::new(
            CutMode::Keyframes {
                min: SECOND,
                max: 2 * SECOND,
            },
            true,
        );
        k.video(0, true);
        k.restart();
        assert_eq!(
            k.video(3000, false),
            None,
            "keyframe mode waits for a keyframe"
        );
        assert_eq!(k.video(6000, true).map(|c| c.msn), Some(1));
    }

    #[test]
    fn a_gap_in_the_input_skips_instants_without_skipping_numbers() {
        let mut s = CutSchedule::new(CutMode::Interval { every: SECOND }, true);
        s.video(0, true);
        assert_eq!(
            s.video(5 * SECOND + 10, false),
            Some(Cut {
                msn: 1,
                at: 5 * SECOND
            })
        );
    }

    #[test]
    fn the_audio_frame_before_a_known_cut_is_told_so() {
        // Keyframe mode: the video made cut 1 at 1 s; audio frames of 1920 ticks.
        let mut s = CutSchedule::new(
            CutMode::Keyframes {
                min: SECOND / 2,
                max: 2 * SECOND,
            },
            true,
        );
        s.video(0, true);
        assert_eq!(s.audio(0), Some(0));
        s.video(SECOND, true);
        let before = SECOND - 1000; // the last frame presented before the cut
        assert_eq!(s.audio(before), None);
        assert!(s.audio_cut_before(before + 1920));
        assert!(!s.audio_cut_before(SECOND - 1));
        // Interval mode: the next clock instant is known without the video.
        let mut s = CutSchedule::new(CutMode::Interval { every: SECOND }, true);
        s.video(0, true);
        assert_eq!(s.audio(0), Some(0));
        assert!(!s.audio_cut_before(1920));
        assert!(s.audio_cut_before(SECOND + 500));
    }

    #[test]
    fn audio_only_streams_cut_on_the_clock() {
        let mut s = CutSchedule::new(CutMode::Interval { every: SECOND }, false);
        let msns: Vec<u64> = (0..100).filter_map(|n| s.audio(n * 1920)).collect();
        assert_eq!(msns, vec![0, 1, 2], "2.13 s of audio");
        s.restart();
        assert_eq!(
            s.audio(50),
            Some(3),
            "audio alone restarts at its next frame"
        );
    }
}
