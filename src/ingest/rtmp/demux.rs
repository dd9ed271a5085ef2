//! Turns FLV tag bodies with RTMP millisecond timestamps into access units.
//!
//! Sans-IO: bytes and timestamps in, [`DemuxEvent`]s out. It unwraps RTMP's
//! 32-bit timestamps, starts each session's clock at 0, converts to each
//! track's timescale with integer arithmetic, and holds media back (bounded)
//! until it knows which tracks the stream has.

use std::time::Instant;

use bytes::Bytes;
use rml_rtmp::sessions::StreamMetadata;

use super::flv::{self, AudioTag, FlvError, VideoTag};
use crate::ingest::normalize::{MonotonicDts, SessionClock, Stamp, Unwrapper};
use crate::media::aac::{AacError, SAMPLES_PER_FRAME};
use crate::media::avc::{self, AvcError};
use crate::media::{
    rescale, AacConfig, AccessUnit, AvcConfig, MediaInfo, TrackKind, VIDEO_TIMESCALE,
};

#[derive(Debug, thiserror::Error)]
pub enum DemuxError {
    #[error("bad FLV tag: {0}")]
    Flv(#[from] FlvError),
    #[error("bad H.264 data: {0}")]
    Avc(#[from] AvcError),
    #[error("bad AAC config: {0}")]
    Aac(#[from] AacError),
    #[error("unsupported video codec (FLV codec id {0}); castline takes H.264")]
    UnsupportedVideo(u8),
    #[error("unsupported audio format (FLV sound format {0}); castline takes AAC")]
    UnsupportedAudio(u8),
    #[error("no H.264 or AAC sequence header within the first {0} media frames")]
    NoTracks(usize),
}

#[derive(Debug)]
pub enum DemuxEvent {
    /// The tracks from here on. Sent before the first access unit and again
    /// whenever a sequence header changes.
    Tracks(MediaInfo),
    Media(AccessUnit),
}

/// Media held before the tracks are known is bounded by count and by time span.
const PENDING_MAX_FRAMES: usize = 600;
const PENDING_MAX_SPAN_MS: i64 = 1000;

/// How far one track may run behind the other before a step back counts as
/// an encoder clock reset (tracks are interleaved loosely).
const RESET_BACKWARDS_MS: i64 = 1000;
/// A forward step larger than this starts a new timeline by default.
pub const DEFAULT_MAX_JUMP_MS: i64 = 10_000;

struct Held {
    track: TrackKind,
    ms: i64,
    cts_ms: i32,
    data: Bytes,
    keyframe: bool,
    received: Instant,
}

pub struct Demuxer {
    video: Option<AvcConfig>,
    audio: Option<AacConfig>,
    /// From onMetaData: which tracks the encoder says it sends.
    expect: Option<(bool, bool)>,
    declared_bitrate: Option<u64>,
    announced: bool,
    held: Vec<Held>,
    /// RTMP timestamps are 32-bit milliseconds (they wrap after ~49.7 days).
    clock: Unwrapper,
    session: SessionClock,
    video_dts: MonotonicDts,
    /// The next media starts a new timeline: announce the tracks again first.
    new_timeline: bool,
    audio_next: Option<i64>,
    /// Frames dropped because their track had no sequence header yet.
    pub dropped_frames: u64,
    /// Tags that carry no media (FLV video command frames), skipped.
    pub skipped_tags: u64,
}

impl Default for Demuxer {
    fn default() -> Self {
        Demuxer::with_max_jump(DEFAULT_MAX_JUMP_MS)
    }
}

impl Demuxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// A demuxer that starts a new timeline when the clock jumps forward by
    /// more than `max_jump_ms` (or back by more than a second).
    pub fn with_max_jump(max_jump_ms: i64) -> Self {
        Demuxer {
            video: None,
            audio: None,
            expect: None,
            declared_bitrate: None,
            announced: false,
            held: Vec::new(),
            clock: Unwrapper::new(32),
            session: SessionClock::new(RESET_BACKWARDS_MS, max_jump_ms),
            video_dts: MonotonicDts::default(),
            new_timeline: false,
            dropped_frames: 0,
            skipped_tags: 0,
            audio_next: None,
        }
    }

    /// Encoder clock resets and jumps seen (each started a new timeline).
    pub fn clock_resets(&self) -> u64 {
        self.session.resets
    }

    /// Video frames whose decode time stood still or stepped back, repaired.
    pub fn repaired_timestamps(&self) -> u64 {
        self.video_dts.repaired
    }

    pub fn on_metadata(&mut self, m: &StreamMetadata) {
        let video = m.video_codec_id.is_some() || m.video_width.is_some();
        let audio = m.audio_codec_id.is_some() || m.audio_sample_rate.is_some();
        if video || audio {
            self.expect = Some((video, audio));
        }
        let kbps =
            m.video_bitrate_kbps.unwrap_or(0) as u64 + m.audio_bitrate_kbps.unwrap_or(0) as u64;
        self.declared_bitrate = (kbps > 0).then_some(kbps * 1000);
    }

    pub fn on_video(
        &mut self,
        ts: u32,
        body: &Bytes,
        received: Instant,
    ) -> Result<Vec<DemuxEvent>, DemuxError> {
        let ms = self.clock.unwrap(ts as u64);
        match flv::parse_video(body)? {
            VideoTag::AvcSequenceHeader(record) => {
                let cfg = AvcConfig::parse(record)?;
                if self.video.as_ref() != Some(&cfg) {
                    self.video = Some(cfg);
                    return Ok(self.on_config_change());
                }
                Ok(Vec::new())
            }
            VideoTag::AvcFrame { cts_ms, data } => {
                let Some(cfg) = &self.video else {
                    self.dropped_frames += 1;
                    return Ok(Vec::new());
                };
                let keyframe = avc::scan_frame(&data, cfg.nal_length_size)?;
                Ok(self.on_frame(Held {
                    track: TrackKind::Video,
                    ms,
                    cts_ms,
                    data,
                    keyframe,
                    received,
                }))
            }
            VideoTag::AvcEndOfSequence => Ok(Vec::new()),
            VideoTag::Command => {
                self.skipped_tags += 1;
                Ok(Vec::new())
            }
            VideoTag::Unsupported(id) => Err(DemuxError::UnsupportedVideo(id)),
        }
    }

    pub fn on_audio(
        &mut self,
        ts: u32,
        body: &Bytes,
        received: Instant,
    ) -> Result<Vec<DemuxEvent>, DemuxError> {
        let ms = self.clock.unwrap(ts as u64);
        match flv::parse_audio(body)? {
            AudioTag::AacSequenceHeader(asc) => {
                let cfg = AacConfig::parse(asc)?;
                if self.audio.as_ref() != Some(&cfg) {
                    self.audio = Some(cfg);
                    self.audio_next = None;
                    return Ok(self.on_config_change());
                }
                Ok(Vec::new())
            }
            AudioTag::AacFrame(data) => {
                if self.audio.is_none() {
                    self.dropped_frames += 1;
                    return Ok(Vec::new());
                }
                Ok(self.on_frame(Held {
                    track: TrackKind::Audio,
                    ms,
                    cts_ms: 0,
                    data,
                    keyframe: true,
                    received,
                }))
            }
            AudioTag::Unsupported(f) => Err(DemuxError::UnsupportedAudio(f)),
        }
    }

    /// At the end of the input: announce whatever is known and flush held media.
    pub fn finish(&mut self) -> Vec<DemuxEvent> {
        if self.announced || (self.video.is_none() && self.audio.is_none()) {
            return Vec::new();
        }
        self.announce()
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

    fn on_frame(&mut self, held: Held) -> Vec<DemuxEvent> {
        if self.announced {
            let au = self.emit(held);
            let mut out = Vec::new();
            if std::mem::take(&mut self.new_timeline) {
                out.push(DemuxEvent::Tracks(self.info()));
            }
            out.extend(au.map(DemuxEvent::Media));
            return out;
        }
        self.held.push(held);
        let span = self.held.last().map_or(0, |l| l.ms) - self.held.first().map_or(0, |f| f.ms);
        if self.all_expected_known()
            || span >= PENDING_MAX_SPAN_MS
            || self.held.len() >= PENDING_MAX_FRAMES
        {
            return self.announce();
        }
        Vec::new()
    }

    fn announce(&mut self) -> Vec<DemuxEvent> {
        self.announced = true;
        let mut out = vec![DemuxEvent::Tracks(self.info())];
        let held = std::mem::take(&mut self.held);
        if let Some(first) = held.iter().map(|h| h.ms).min() {
            self.session.start_at(first);
        }
        out.extend(
            held.into_iter()
                .filter_map(|h| self.emit(h))
                .map(DemuxEvent::Media),
        );
        out
    }

    fn emit(&mut self, h: Held) -> Option<AccessUnit> {
        let rel = match self.session.map(h.ms) {
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
        let (dts, pts) = match h.track {
            TrackKind::Video => {
                let cfg = self.video.as_ref()?;
                let ms = VIDEO_TIMESCALE as i64 / 1000;
                let dts = rel * ms;
                let pts = (dts + h.cts_ms as i64 * ms).max(0);
                let frame = cfg
                    .frame_rate
                    .map_or(3000, |f| (VIDEO_TIMESCALE as f64 / f) as i64);
                self.video_dts.apply(dts, pts, frame)
            }
            TrackKind::Audio => {
                let rate = self.audio.as_ref()?.sample_rate;
                // AAC frames are exactly 1024 samples: count samples, and only
                // follow the millisecond clock when it leaves us by a frame (a gap).
                let from_clock = rescale(rel, 1000, rate);
                let dts = match self.audio_next {
                    Some(next) if (from_clock - next).abs() <= SAMPLES_PER_FRAME => next,
                    _ => from_clock,
                };
                self.audio_next = Some(dts + SAMPLES_PER_FRAME);
                (dts, dts)
            }
        };
        Some(AccessUnit {
            track: h.track,
            dts,
            pts,
            keyframe: h.keyframe,
            data: h.data,
            received: h.received,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::avc::tests::AVCC_320X240;

    fn video_seq() -> Bytes {
        let mut v = vec![0x17, 0, 0, 0, 0];
        v.extend_from_slice(AVCC_320X240);
        Bytes::from(v)
    }
    fn video_frame(key: bool, cts: i32) -> Bytes {
        let c = cts.to_be_bytes();
        let nal = if key { 0x65 } else { 0x41 };
        Bytes::from(vec![
            if key { 0x17 } else { 0x27 },
            1,
            c[1],
            c[2],
            c[3],
            0,
            0,
            0,
            2,
            nal,
            0x88,
        ])
    }
    fn audio_seq() -> Bytes {
        Bytes::from_static(&[0xaf, 0, 0x11, 0x90]) // AAC-LC 48 kHz stereo
    }
    fn audio_frame() -> Bytes {
        Bytes::from_static(&[0xaf, 1, 0x21, 0x00])
    }

    fn media(events: Vec<DemuxEvent>) -> Vec<AccessUnit> {
        events
            .into_iter()
            .filter_map(|e| match e {
                DemuxEvent::Media(au) => Some(au),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_encoder_clock_reset_announces_a_new_timeline_from_zero() {
        let now = Instant::now();
        let mut d = Demuxer::new();
        d.on_video(5000, &video_seq(), now).unwrap();
        d.on_audio(5000, &audio_seq(), now).unwrap();
        let mut au = Vec::new();
        for i in 0..300 {
            au.extend(media(
                d.on_video(5000 + i * 33, &video_frame(i % 30 == 0, 0), now)
                    .unwrap(),
            ));
        }
        assert!(au.last().unwrap().dts > 9 * 90_000);
        // The encoder restarts its clock at 0 inside the same session.
        let events = d.on_video(0, &video_frame(true, 0), now).unwrap();
        assert!(
            matches!(events[0], DemuxEvent::Tracks(_)),
            "a new timeline is announced"
        );
        let first = media(events);
        assert_eq!(first[0].dts, 0);
        let next = media(d.on_video(33, &video_frame(false, 0), now).unwrap());
        assert_eq!(next[0].dts, 33 * 90);
        assert_eq!(d.clock_resets(), 1);
    }

    #[test]
    fn standing_video_timestamps_are_repaired_not_held() {
        let now = Instant::now();
        let mut d = Demuxer::new();
        d.on_video(0, &video_seq(), now).unwrap();
        d.on_audio(0, &audio_seq(), now).unwrap();
        let au: Vec<AccessUnit> = (0..100)
            .flat_map(|i| media(d.on_video(0, &video_frame(i == 0, 0), now).unwrap()))
            .collect();
        assert_eq!(au.len(), 100);
        assert!(
            au.windows(2).all(|w| w[1].dts > w[0].dts),
            "decode times advance"
        );
        assert_eq!(d.repaired_timestamps(), 99);
    }

    #[test]
    fn announces_both_tracks_then_starts_at_zero() {
        let now = Instant::now();
        let mut d = Demuxer::new();
        assert!(d.on_video(5000, &video_seq(), now).unwrap().is_empty());
        let ev = d.on_audio(5000, &audio_seq(), now).unwrap();
        assert!(
            matches!(&ev[..], [DemuxEvent::Tracks(i)] if i.video.is_some() && i.audio.is_some())
        );
        let v = media(d.on_video(5000, &video_frame(true, 67), now).unwrap());
        assert_eq!((v[0].dts, v[0].pts, v[0].keyframe), (0, 67 * 90, true));
        let a = media(d.on_audio(5021, &audio_frame(), now).unwrap());
        assert_eq!(a[0].dts, 21 * 48);
        // The next audio frame follows by exactly 1024 samples, not by the rounded ms clock.
        let a = media(d.on_audio(5042, &audio_frame(), now).unwrap());
        assert_eq!(a[0].dts, 21 * 48 + 1024);
        let v = media(d.on_video(5033, &video_frame(false, -33), now).unwrap());
        assert_eq!((v[0].dts, v[0].pts, v[0].keyframe), (33 * 90, 0, false));
    }

    #[test]
    fn video_only_stream_announces_from_metadata() {
        let now = Instant::now();
        let mut d = Demuxer::new();
        let mut m = StreamMetadata::new();
        m.video_codec_id = Some(7);
        d.on_metadata(&m);
        let ev = d.on_video(0, &video_seq(), now).unwrap();
        assert!(
            matches!(&ev[..], [DemuxEvent::Tracks(i)] if i.video.is_some() && i.audio.is_none())
        );
    }

    #[test]
    fn without_metadata_audio_only_announces_after_a_second_of_media() {
        let now = Instant::now();
        let mut d = Demuxer::new();
        d.on_audio(0, &audio_seq(), now).unwrap();
        let mut all = Vec::new();
        for i in 0..60u32 {
            all.extend(d.on_audio(i * 21, &audio_frame(), now).unwrap());
        }
        assert!(matches!(&all[0], DemuxEvent::Tracks(i) if i.video.is_none() && i.audio.is_some()));
        let au = media(all);
        assert!(au.len() >= 48, "held frames are flushed, got {}", au.len());
        assert!(au.windows(2).all(|w| w[1].dts - w[0].dts == 1024));
    }

    #[test]
    fn audio_gap_resyncs_to_the_clock() {
        let now = Instant::now();
        let mut d = Demuxer::new();
        let mut m = StreamMetadata::new();
        m.audio_codec_id = Some(10);
        d.on_metadata(&m);
        d.on_audio(0, &audio_seq(), now).unwrap();
        d.on_audio(0, &audio_frame(), now).unwrap();
        let a = media(d.on_audio(1000, &audio_frame(), now).unwrap());
        assert_eq!(a[0].dts, 48_000);
    }

    #[test]
    fn a_command_frame_is_skipped_and_counted_not_fatal() {
        let now = Instant::now();
        let mut d = Demuxer::new();
        d.on_video(0, &video_seq(), now).unwrap();
        d.on_audio(0, &audio_seq(), now).unwrap();
        assert!(d
            .on_video(10, &Bytes::from_static(&[0x57, 0]), now)
            .unwrap()
            .is_empty());
        assert_eq!(d.skipped_tags, 1);
        // Media carries on after it.
        let out = media(d.on_video(33, &video_frame(true, 0), now).unwrap());
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn broken_tags_are_errors_not_panics() {
        let now = Instant::now();
        let mut d = Demuxer::new();
        d.on_video(0, &video_seq(), now).unwrap();
        let broken = Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 99, 0x65]);
        assert!(matches!(
            d.on_video(0, &broken, now),
            Err(DemuxError::Avc(_))
        ));
        assert!(matches!(
            d.on_video(0, &Bytes::from_static(&[0x17, 0, 0, 0, 0, 1]), now),
            Err(DemuxError::Avc(_))
        ));
        assert!(matches!(
            d.on_video(0, &Bytes::from_static(&[0x1c, 1]), now),
            Err(DemuxError::UnsupportedVideo(12))
        ));
        assert!(matches!(
            d.on_audio(0, &Bytes::new(), now),
            Err(DemuxError::Flv(_))
        ));
    }
}
