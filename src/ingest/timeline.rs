//! The half of every demuxer that does not know the protocol (pure, sans-IO):
//! media is held (bounded) until the stream's tracks are known, then each
//! frame's publisher clock becomes a clean per-track timeline through
//! [`crate::ingest::normalize`], and the tracks are announced again whenever
//! a codec config changes or a new timeline starts.
//!
//! RTMP feeds it milliseconds, MPEG-TS 90 kHz ticks: the unit is the
//! caller's (`clock_hz`), already unwrapped to one increasing count.

use std::time::Instant;

use bytes::Bytes;

use super::normalize::{MonotonicDts, SessionClock, Stamp};
use crate::media::aac::SAMPLES_PER_FRAME;
use crate::media::VIDEO_TIMESCALE;
use crate::media::{rescale, AacConfig, AccessUnit, AvcConfig, MediaInfo, TrackKind};

/// What an ingest hands to the hub.
#[derive(Debug)]
pub enum DemuxEvent {
    /// The tracks from here on. Sent before the first access unit and again
    /// whenever a codec config changes or a new timeline starts.
    Tracks(MediaInfo),
    Media(AccessUnit),
}

/// Media held before the tracks are known is bounded by count and by time span.
const PENDING_MAX_FRAMES: usize = 600;
/// With no word of which tracks come, a second of media decides.
const PENDING_MAX_SPAN_SECS: i64 = 1;
/// A track the publisher declared (onMetaData, the PMT) is waited for
/// longer: over MPEG-TS the video config comes only with a keyframe, and a
/// caller that joins mid-GOP (or whose first keyframe was damaged) sends
/// one only at the next GOP.
const DECLARED_MAX_SPAN_SECS: i64 = 10;

/// One parsed frame on the publisher's clock (unwrapped, `clock_hz` units).
pub struct Frame {
    pub track: TrackKind,
    pub time: i64,
    /// Presentation minus decode time, same units (video only).
    pub cts: i64,
    pub data: Bytes,
    pub keyframe: bool,
    pub received: Instant,
}

/// A track's codec config.
pub enum TrackConfig {
    Video(AvcConfig),
    Audio(AacConfig),
}

pub struct Timeline {
    clock_hz: i64,
    video: Option<AvcConfig>,
    audio: Option<AacConfig>,
    /// Which tracks the publisher says it sends (RTMP onMetaData, a TS PMT).
    expect: Option<(bool, bool)>,
    declared_bitrate: Option<u64>,
    announced: bool,
    held: Vec<Frame>,
    session: SessionClock,
    video_dts: MonotonicDts,
    audio_next: Option<i64>,
    /// The next media starts a new timeline: announce the tracks again first.
    new_timeline: bool,
}

impl Timeline {
    /// `backwards`/`forwards`: how far (in `clock_hz` units) the clock may
    /// step back or leap forward before a new timeline starts.
    pub fn new(clock_hz: i64, backwards: i64, forwards: i64) -> Self {
        Timeline {
            clock_hz: clock_hz.max(1),
            video: None,
            audio: None,
            expect: None,
            declared_bitrate: None,
            announced: false,
            held: Vec::new(),
            session: SessionClock::new(backwards, forwards),
            video_dts: MonotonicDts::default(),
            audio_next: None,
            new_timeline: false,
        }
    }

    pub fn video(&self) -> Option<&AvcConfig> {
        self.video.as_ref()
    }

    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// Encoder clock resets and jumps seen (each started a new timeline).
    pub fn clock_resets(&self) -> u64 {
        self.session.resets
    }

    /// Video frames whose decode time stood still or stepped back, repaired.
    pub fn repaired_timestamps(&self) -> u64 {
        self.video_dts.repaired
    }

    pub fn expect(&mut self, video: bool, audio: bool) {
        if video || audio {
            self.expect = Some((video, audio));
        }
    }

    pub fn declare_bitrate(&mut self, bps: Option<u64>) {
        self.declared_bitrate = bps;
    }

    /// A video config; announced (again) if it differs from the last one.
    pub fn set_video(&mut self, cfg: AvcConfig) -> Vec<DemuxEvent> {
        if self.video.as_ref() == Some(&cfg) {
            return Vec::new();
        }
        self.video = Some(cfg);
        self.on_config_change()
    }

    pub fn set_audio(&mut self, cfg: AacConfig) -> Vec<DemuxEvent> {
        if self.audio.as_ref() == Some(&cfg) {
            return Vec::new();
        }
        self.audio = Some(cfg);
        self.audio_next = None;
        self.on_config_change()
    }

    /// A frame that carries its track's config in-band (MPEG-TS: SPS/PPS in
    /// the keyframe, the ADTS header in every audio frame). Before the tracks
    /// are announced the frame is held first, so the timeline starts at the
    /// earliest frame, this one included.
    pub fn frame_with_config(&mut self, cfg: TrackConfig, frame: Frame) -> Vec<DemuxEvent> {
        if self.announced {
            let mut out = match cfg {
                TrackConfig::Video(c) => self.set_video(c),
                TrackConfig::Audio(c) => self.set_audio(c),
            };
            out.extend(self.frame(frame));
            return out;
        }
        match cfg {
            TrackConfig::Video(c) => self.video = Some(c),
            TrackConfig::Audio(c) => {
                if self.audio.as_ref() != Some(&c) {
                    self.audio = Some(c);
                    self.audio_next = None;
                }
            }
        }
        self.frame(frame)
    }

    /// At the end of the input: announce whatever is known and flush held media.
    pub fn finish(&mut self) -> Vec<DemuxEvent> {
        if self.announced || (self.video.is_none() && self.audio.is_none()) {
            return Vec::new();
        }
        self.announce()
    }

    pub fn frame(&mut self, frame: Frame) -> Vec<DemuxEvent> {
        if self.announced {
            let au = self.emit(frame);
            let mut out = Vec::new();
            if std::mem::take(&mut self.new_timeline) {
                out.push(DemuxEvent::Tracks(self.info()));
            }
            out.extend(au.map(DemuxEvent::Media));
            return out;
        }
        self.held.push(frame);
        let span = self.held.last().map_or(0, |l| l.time) - self.held.first().map_or(0, |f| f.time);
        let wait = if self.expect.is_some() {
            DECLARED_MAX_SPAN_SECS
        } else {
            PENDING_MAX_SPAN_SECS
        };
        if self.all_expected_known()
            || span >= wait * self.clock_hz
            || self.held.len() >= PENDING_MAX_FRAMES
        {
            return self.announce();
        }
        Vec::new()
    }

    fn info(&self) -> MediaInfo {
        MediaInfo {
            video: self.video.clone(),
            audio: self.audio.clone(),
            declared_bitrate: self.declared_bitrate,
        }
    }

    fn on_config_change(&mut self) -> Vec<DemuxEvent> {
        if self.announced {
            return vec![DemuxEvent::Tracks(self.info())];
        }
        if self.all_expected_known() {
            return self.announce();
        }
        Vec::new()
    }

    fn all_expected_known(&self) -> bool {
        let (v, a) = self.expect.unwrap_or((true, true));
        (!v || self.video.is_some())
            && (!a || self.audio.is_some())
            && (self.video.is_some() || self.audio.is_some())
    }

    fn announce(&mut self) -> Vec<DemuxEvent> {
        self.announced = true;
        let mut out = vec![DemuxEvent::Tracks(self.info())];
        let held = std::mem::take(&mut self.held);
        if let Some(first) = held.iter().map(|h| h.time).min() {
            self.session.start_at(first);
        }
        out.extend(
            held.into_iter()
                .filter_map(|h| self.emit(h))
                .map(DemuxEvent::Media),
        );
        out
    }

    fn emit(&mut self, f: Frame) -> Option<AccessUnit> {
        let rel = match self.session.map(f.time) {
            Stamp::Same(rel) => rel,
            Stamp::NewTimeline => {
                // The encoder's clock restarted or leapt: downstream sees a new
                // session (a discontinuity), as after a reconnect.
                self.new_timeline = true;
                self.audio_next = None;
                self.video_dts.reset();
                0
            }
        };
        let hz = self.clock_hz as u32;
        let (dts, pts) = match f.track {
            TrackKind::Video => {
                let cfg = self.video.as_ref()?;
                let dts = rescale(rel, hz, VIDEO_TIMESCALE);
                let pts = (dts + rescale(f.cts, hz, VIDEO_TIMESCALE)).max(0);
                let frame = cfg
                    .frame_rate
                    .map_or(3000, |r| (VIDEO_TIMESCALE as f64 / r) as i64);
                self.video_dts.apply(dts, pts, frame)
            }
            TrackKind::Audio => {
                let rate = self.audio.as_ref()?.sample_rate;
                // AAC frames are exactly 1024 samples: count samples, and only
                // follow the publisher's clock when it leaves us by a frame (a gap).
                let from_clock = rescale(rel, hz, rate);
                let dts = match self.audio_next {
                    Some(next) if (from_clock - next).abs() <= SAMPLES_PER_FRAME => next,
                    _ => from_clock,
                };
                self.audio_next = Some(dts + SAMPLES_PER_FRAME);
                (dts, dts)
            }
        };
        Some(AccessUnit {
            track: f.track,
            dts,
            pts,
            keyframe: f.keyframe,
            data: f.data,
            received: f.received,
        })
    }
}
