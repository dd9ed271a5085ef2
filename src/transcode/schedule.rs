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
//! A cut is made by whichever track reaches its instant first; every track
//! then opens segment N with its first frame presented at or after the
//! cut's instant. In interval mode the audio often gets there first (an
//! encoder without B-frames on a busy machine sends its audio ahead of its
//! video); the video still gets that cut, with the same MSN, when it reaches
//! the instant. After a start or a restart, a stream with video cuts first
//! at a source keyframe (the decoder can only resume there), so audio and
//! every rung restart at the same instant.
//!
//! Each cut also carries the segment's EXT-X-PROGRAM-DATE-TIME, from one
//! clock per stream: the wall-clock time at which the first frame of a
//! publishing session arrived, carried on by the source's media time. So
//! every rendition dates MSN N alike, and a reconnect (a new session, whose
//! clock starts over) re-anchors every rendition at once, never before a
//! date already given.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use crate::media::VIDEO_TIMESCALE;

/// All instants here are on the stream's 90 kHz clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub msn: u64,
    /// Presentation time from which frames belong to segment `msn`.
    pub at: i64,
    /// The segment's EXT-X-PROGRAM-DATE-TIME: the date of instant `at`.
    pub program_date_time: SystemTime,
}

impl Cut {
    /// What a rendition's segmenter needs of it.
    pub fn segment(&self) -> crate::package::segmenter::SegmentCut {
        crate::package::segmenter::SegmentCut {
            msn: self.msn,
            program_date_time: self.program_date_time,
        }
    }
}

/// Source presentation time (90 kHz) → wall-clock date, for one session.
#[derive(Debug, Clone, Copy)]
struct DateAnchor {
    wall: SystemTime,
    at: i64,
}

impl DateAnchor {
    fn date(&self, pts: i64) -> SystemTime {
        let ticks = pts - self.at;
        let d = Duration::from_nanos(
            (ticks.unsigned_abs() as u128 * 1_000_000_000 / VIDEO_TIMESCALE as u128) as u64,
        );
        if ticks >= 0 {
            self.wall + d
        } else {
            self.wall.checked_sub(d).unwrap_or(self.wall)
        }
    }
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
    /// Cuts the audio made that the video has not reached yet, oldest first.
    video_pending: VecDeque<Cut>,
    /// The session's date clock; none until its first cut.
    anchor: Option<DateAnchor>,
    /// The latest date a frame of an earlier session had (a new anchor
    /// never goes before it).
    latest: Option<SystemTime>,
    /// The highest presentation time of this session so far, dated only
    /// when the session ends (not per frame).
    max_pts: Option<i64>,
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
            video_pending: VecDeque::new(),
            anchor: None,
            latest: None,
            max_pts: None,
        }
    }

    /// The first cut gets MSN `msn` (the session continues one whose
    /// earlier segments another process made).
    pub fn starting_at(mut self, msn: u64) -> Self {
        self.next_msn = msn;
        self
    }

    pub fn mode(&self) -> CutMode {
        self.mode
    }

    /// Input was lost (the source's clock runs on): the next cut happens at
    /// the first frame that can take one, dated on the same clock.
    pub fn restart(&mut self) {
        self.restart = true;
        self.origin = None;
        self.audio_pending.clear();
        self.video_pending.clear();
    }

    /// Timestamps start over (a new publishing session): as
    /// [`CutSchedule::restart`], and the next cut re-anchors the dates.
    pub fn new_session(&mut self) {
        self.restart();
        let (anchor, max_pts) = (self.anchor.take(), self.max_pts.take());
        if let (Some(a), Some(pts)) = (anchor, max_pts) {
            let last = a.date(pts);
            if self.latest.is_none_or(|l| last > l) {
                self.latest = Some(last);
            }
        }
    }

    /// Whether the video has reached the cut `msn` (or the stream has no
    /// video to wait for): until then, only the audio has opened it.
    pub fn video_reached(&self, msn: u64) -> bool {
        !self.has_video || !self.video_pending.iter().any(|c| c.msn == msn)
    }

    /// Whether the video has opened a cut the audio has not reached yet
    /// (with B-frames the video goes out ahead of its presentation time):
    /// if the session ends now, the audio owes that segment.
    pub fn audio_owed(&self) -> bool {
        self.has_video && !self.audio_pending.is_empty()
    }

    /// The cut `msn` and any after it opened nothing in any rendition (the
    /// audio that reached them was held back and is dropped, the video never
    /// got there): their numbers go to the next cuts instead, so no MSN is
    /// skipped. Call right after [`CutSchedule::restart`] or
    /// [`CutSchedule::new_session`].
    pub fn take_back(&mut self, msn: u64) {
        self.next_msn = self.next_msn.min(msn);
    }

    /// Note a frame presented at `pts`.
    fn seen(&mut self, pts: i64) {
        if self.max_pts.is_none_or(|m| pts > m) {
            self.max_pts = Some(pts);
        }
    }

    /// Open the next segment at `at`; `pts` is the frame that made the cut,
    /// which arrived at `wall`.
    fn open(&mut self, at: i64, pts: i64, wall: SystemTime) -> Cut {
        let latest = self.latest;
        let anchor = *self.anchor.get_or_insert_with(|| {
            // A new session starts at its arrival, but never before a date
            // the previous one has already given out.
            let mut a = DateAnchor { wall, at: pts };
            if let Some(latest) = latest {
                let floor = latest + Duration::from_millis(1);
                let first = a.date(at);
                if first < floor {
                    a.wall += floor.duration_since(first).unwrap_or_default();
                }
            }
            a
        });
        let cut = Cut {
            msn: self.next_msn,
            at,
            program_date_time: anchor.date(at),
        };
        self.next_msn += 1;
        self.last_at = Some(at);
        self.restart = false;
        for q in [&mut self.audio_pending, &mut self.video_pending] {
            if q.len() >= PENDING {
                q.pop_front();
            }
            q.push_back(cut);
        }
        cut
    }

    /// The interval instant at or before `pts`, if it is past the last cut.
    fn interval_cut(&mut self, pts: i64, every: i64, wall: SystemTime) -> Option<Cut> {
        let origin = *self.origin.get_or_insert(pts);
        let k = (pts - origin).div_euclid(every);
        let at = origin + k * every;
        match self.last_at {
            Some(last) if at <= last => None,
            _ => Some(self.open(at, pts, wall)),
        }
    }

    /// A source video access unit (decode order) with presentation time
    /// `pts`, which arrived at `wall`. Returns the cut it opens, if any. In
    /// keyframe mode the cut is this very frame; in interval mode it is the
    /// instant `at` (made by this frame, or by audio that got there first),
    /// and the frame to make an IDR is the first one *presented* at or after it.
    pub fn video(&mut self, pts: i64, keyframe: bool, wall: SystemTime) -> Option<Cut> {
        let cut = self.video_cut(pts, keyframe, wall);
        self.seen(pts);
        cut
    }

    fn video_cut(&mut self, pts: i64, keyframe: bool, wall: SystemTime) -> Option<Cut> {
        let cut = match self.mode {
            CutMode::Keyframes { min, max } => {
                let since = self.last_at.map(|last| pts - last);
                let due = if keyframe {
                    self.restart || since.is_none_or(|s| s >= min)
                } else {
                    // After a (re)start only a keyframe can begin the stream.
                    !self.restart && since.is_some_and(|s| s >= max)
                };
                due.then(|| self.open(pts, pts, wall))
            }
            CutMode::Interval { every } => {
                if self.restart {
                    if !keyframe {
                        return None;
                    }
                    self.origin = None;
                    self.last_at = None;
                }
                self.interval_cut(pts, every, wall)
            }
        };
        // Every cut this frame has reached, whoever made it: the latest one
        // (a frame past two cuts, after a hole in the video, opens the later).
        let mut reached = None;
        while self.video_pending.front().is_some_and(|c| c.at <= pts) {
            reached = self.video_pending.pop_front();
        }
        reached.or(cut)
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

    /// A source audio frame presented at `pts` (90 kHz), which arrived at
    /// `wall`. Returns the cut of the segment it opens in the audio
    /// rendition, if it opens one. In interval mode the audio may reach an
    /// instant before the video does, and makes the cut.
    pub fn audio(&mut self, pts: i64, wall: SystemTime) -> Option<Cut> {
        if let CutMode::Interval { every } = self.mode {
            if self.restart && !self.has_video {
                self.origin = None;
                self.last_at = None;
            }
            if !(self.restart && self.has_video) {
                self.interval_cut(pts, every, wall);
            }
        }
        if !self.has_video {
            self.video_pending.clear();
        }
        self.seen(pts);
        let front = self.audio_pending.front()?;
        if pts < front.at {
            return None;
        }
        self.audio_pending.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 90_000;
    /// When every test frame arrived (dates are tested on their own).
    const W: SystemTime = SystemTime::UNIX_EPOCH;

    fn msn_at(c: Cut) -> (u64, i64) {
        (c.msn, c.at)
    }

    #[test]
    fn interval_cuts_every_second_whatever_the_gop() {
        let mut s = CutSchedule::new(CutMode::Interval { every: SECOND }, true);
        let mut cuts = Vec::new();
        // 30 fps, keyframe only at 0: cuts do not need source keyframes.
        for i in 0..91 {
            if let Some(c) = s.video(i * 3000, i == 0, W) {
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
        assert_eq!(s.video(0, true, W).map(|c| c.at), Some(0));
        // Decode order: a P frame presented at 1.033 s arrives before the B
        // frame presented at 1.0 s; the cut is the instant 1.0 s either way.
        assert_eq!(
            s.video(SECOND + 3000, false, W).map(msn_at),
            Some((1, SECOND))
        );
        assert_eq!(s.video(SECOND, false, W), None);
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
            if let Some(c) = s.video(i * 3000, i % 60 == 0, W) {
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
            if let Some(c) = s.video(i * 3000, key, W) {
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
        assert_eq!(s.video(400 * 3000, false, W), None);
        assert!(s.video(401 * 3000, true, W).is_some());
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
                if let Some(c) = s.audio(a, W) {
                    audio_msns.push((c.msn, a));
                }
                a += 1920;
            } else {
                if let Some(c) = s.video(v, v % SECOND == 0, W) {
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
        assert_eq!(s.video(0, true, W).map(|c| c.msn), Some(0));
        assert_eq!(s.audio(0, W).map(msn_at), Some((0, 0)));
        let by_audio = s.audio(SECOND + 100, W);
        assert_eq!(by_audio.map(msn_at), Some((1, SECOND)));
        // The video reaching the same instant later gets the same cut (so
        // the rungs force an IDR there and open MSN 1), once.
        assert_eq!(s.video(SECOND - 3000, false, W), None);
        assert_eq!(s.video(SECOND + 3000, false, W), by_audio);
        assert_eq!(s.video(SECOND + 6000, false, W), None);
        // Audio running more than a segment ahead: the video still gets
        // every cut, in order, each at its own instant.
        for n in 2..5 {
            s.audio(n * SECOND + 100, W);
        }
        let video: Vec<_> = (31..120)
            .filter_map(|i| s.video(SECOND + i * 3000, false, W).map(msn_at))
            .collect();
        assert_eq!(
            video,
            vec![(2, 2 * SECOND), (3, 3 * SECOND), (4, 4 * SECOND)]
        );
    }

    #[test]
    fn restart_cuts_at_the_next_frame_and_numbering_continues() {
        let mut s = CutSchedule::new(CutMode::Interval { every: SECOND }, true);
        for i in 0..40 {
            s.video(i * 3000, i == 0, W);
        }
        s.restart();
        // The new session's clock starts again near 0; audio waits for the
        // video to anchor the cut, and the video for a keyframe.
        assert_eq!(s.audio(100, W), None);
        assert_eq!(s.video(200, false, W), None);
        assert_eq!(s.video(500, true, W).map(msn_at), Some((2, 500)));
        assert_eq!(s.audio(1000, W).map(|c| c.msn), Some(2));
        assert_eq!(
            s.video(500 + SECOND, false, W).map(msn_at),
            Some((3, 500 + SECOND))
        );
        let mut k = CutSchedule::new(
            CutMode::Keyframes {
                min: SECOND,
                max: 2 * SECOND,
            },
            true,
        );
        k.video(0, true, W);
        k.restart();
        assert_eq!(
            k.video(3000, false, W),
            None,
            "keyframe mode waits for a keyframe"
        );
        assert_eq!(k.video(6000, true, W).map(|c| c.msn), Some(1));
    }

    #[test]
    fn a_gap_in_the_input_skips_instants_without_skipping_numbers() {
        let mut s = CutSchedule::new(CutMode::Interval { every: SECOND }, true);
        s.video(0, true, W);
        assert_eq!(
            s.video(5 * SECOND + 10, false, W).map(msn_at),
            Some((1, 5 * SECOND))
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
        s.video(0, true, W);
        assert_eq!(s.audio(0, W).map(|c| c.msn), Some(0));
        s.video(SECOND, true, W);
        let before = SECOND - 1000; // the last frame presented before the cut
        assert_eq!(s.audio(before, W), None);
        assert!(s.audio_cut_before(before + 1920));
        assert!(!s.audio_cut_before(SECOND - 1));
        // Interval mode: the next clock instant is known without the video.
        let mut s = CutSchedule::new(CutMode::Interval { every: SECOND }, true);
        s.video(0, true, W);
        assert_eq!(s.audio(0, W).map(|c| c.msn), Some(0));
        assert!(!s.audio_cut_before(1920));
        assert!(s.audio_cut_before(SECOND + 500));
    }

    #[test]
    fn audio_only_streams_cut_on_the_clock() {
        let mut s = CutSchedule::new(CutMode::Interval { every: SECOND }, false);
        let msns: Vec<u64> = (0..100)
            .filter_map(|n| s.audio(n * 1920, W).map(|c| c.msn))
            .collect();
        assert_eq!(msns, vec![0, 1, 2], "2.13 s of audio");
        s.restart();
        assert_eq!(
            s.audio(50, W).map(|c| c.msn),
            Some(3),
            "audio alone restarts at its next frame"
        );
    }

    /// The date of the 90 kHz instant `ticks` after `base`.
    fn date(base: SystemTime, ticks: i64) -> SystemTime {
        base + Duration::from_nanos((ticks as u64) * 1_000_000_000 / 90_000)
    }

    #[test]
    fn every_track_dates_a_cut_alike_from_the_first_frame_and_the_media_time() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut s = CutSchedule::new(CutMode::Interval { every: SECOND }, true);
        // The first video frame (presented at 0.5 s) arrived at t0; later
        // frames arrive late or early (a busy encoder), which moves no date.
        let first = s.video(SECOND / 2, true, t0).unwrap();
        assert_eq!(first.program_date_time, t0);
        let late = t0 + Duration::from_secs(3);
        assert_eq!(s.audio(SECOND / 2 + 100, late), Some(first));
        // Cuts every second from 0.5 s: the audio makes the one at 1.5 s.
        let by_audio = s.audio(3 * SECOND / 2 + 100, late).unwrap();
        assert_eq!(by_audio.program_date_time, date(t0, SECOND));
        assert_eq!(s.video(3 * SECOND / 2 + 3000, false, late), Some(by_audio));
        let c2 = s.video(5 * SECOND / 2, false, t0).unwrap();
        assert_eq!(c2.program_date_time, date(t0, 2 * SECOND));
        assert_eq!(s.audio(5 * SECOND / 2 + 5, t0), Some(c2));
    }

    #[test]
    fn a_new_session_dates_from_its_arrival_and_a_lost_input_from_the_media_time() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut s = CutSchedule::new(CutMode::Interval { every: SECOND }, true);
        for i in 0..90 {
            s.video(i * 3000, i == 0, t0);
        }
        // Input lost at 3 s, resumed at 10 s of the same clock: media time.
        s.restart();
        let c = s
            .video(10 * SECOND, true, t0 + Duration::from_secs(60))
            .unwrap();
        assert_eq!(c.program_date_time, date(t0, 10 * SECOND));
        // A reconnect 5 s later: its clock starts over at 0, its date is its arrival.
        s.new_session();
        let back = t0 + Duration::from_secs(15);
        let c = s.video(0, true, back).unwrap();
        assert_eq!((c.msn, c.program_date_time), (4, back));
        // A session that arrives "before" dates already given (a clock that
        // ran ahead of the wall) starts just after them.
        s.video(20 * SECOND, false, back);
        s.new_session();
        let c = s.video(0, true, back + Duration::from_secs(1)).unwrap();
        assert!(c.program_date_time > date(back, 20 * SECOND), "{c:?}");
    }

    #[test]
    fn a_cut_only_the_audio_reached_can_be_taken_back_when_the_session_ends() {
        let mut s = CutSchedule::new(CutMode::Interval { every: SECOND }, true);
        s.video(0, true, W);
        assert_eq!(s.audio(0, W).map(|c| c.msn), Some(0));
        assert!(s.video_reached(0));
        // The audio opens cut 1; the video has not got there yet.
        assert_eq!(s.audio(SECOND + 100, W).map(|c| c.msn), Some(1));
        assert!(!s.video_reached(1));
        // The publisher drops before its video reaches 1 s: nobody used MSN
        // 1, so the new session's first cut takes it.
        s.new_session();
        s.take_back(1);
        assert_eq!(s.video(0, true, W).map(|c| c.msn), Some(1));
        // An audio-only stream has no video to wait for.
        let a = CutSchedule::new(CutMode::Interval { every: SECOND }, false);
        assert!(a.video_reached(7));
    }

    #[test]
    fn a_cut_only_the_video_reached_is_owed_to_the_audio_until_it_gets_there() {
        let mut s = CutSchedule::new(CutMode::Interval { every: SECOND }, true);
        s.video(0, true, W);
        s.audio(0, W);
        assert!(!s.audio_owed());
        // B-frames: the frame presented at 1.1 s goes out while the audio
        // is at 0.95 s.
        assert_eq!(
            s.video(SECOND + SECOND / 10, false, W).map(|c| c.msn),
            Some(1)
        );
        s.audio(SECOND * 95 / 100, W);
        assert!(s.audio_owed());
        // Audio up to the video's last frame: it opens cut 1, owes nothing,
        // and the instant after is not a cut yet (only the video makes it).
        assert_eq!(s.audio(SECOND + 100, W).map(|c| c.msn), Some(1));
        assert!(!s.audio_owed());
        assert!(!s.audio_cut_before(SECOND * 3 / 2));
        assert!(s.audio_cut_before(2 * SECOND));
        // An audio-only stream owes nothing to a video it does not have.
        let mut a = CutSchedule::new(CutMode::Interval { every: SECOND }, false);
        a.audio(0, W);
        assert!(!a.audio_owed());
    }
}
