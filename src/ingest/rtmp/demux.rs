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

/// RTMP timestamps are 32-bit milliseconds and wrap after ~49.7 days; a signed
/// delta between successive timestamps carries the clock across the wrap.
#[derive(Debug, Default)]
pub struct TimestampUnwrapper {
    last: Option<u32>,
    acc: i64,
}

impl TimestampUnwrapper {
    pub fn unwrap(&mut self, ts: u32) -> i64 {
        match self.last {
            None => self.acc = ts as i64,
            Some(last) => self.acc += ts.wrapping_sub(last) as i32 as i64,
        }
        self.last = Some(ts);
        self.acc
    }
}

struct Held {
    track: TrackKind,
    ms: i64,
    cts_ms: i32,
    data: Bytes,
    keyframe: bool,
    received: Instant,
}

#[derive(Default)]
pub struct Demuxer {
    video: Option<AvcConfig>,
    audio: Option<AacConfig>,
    /// From onMetaData: which tracks the encoder says it sends.
    expect: Option<(bool, bool)>,
    declared_bitrate: Option<u64>,
    announced: bool,
    held: Vec<Held>,
    clock: TimestampUnwrapper,
    base_ms: Option<i64>,
    audio_next: Option<i64>,
    /// Frames dropped because their track had no sequence header yet.
    pub dropped_frames: u64,
    /// Tags that carry no media (FLV video command frames), skipped.
    pub skipped_tags: u64,
}

impl Demuxer {
    pub fn new() -> Self {
        Self::default()
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
        let ms = self.clock.unwrap(ts);
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
        let ms = self.clock.unwrap(ts);
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
            return self.emit(held).into_iter().map(DemuxEvent::Media).collect();
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
        if self.base_ms.is_none() {
            self.base_ms = held.iter().map(|h| h.ms).min();
        }
        out.extend(
            held.into_iter()
                .filter_map(|h| self.emit(h))
                .map(DemuxEvent::Media),
        );
        out
    }

    fn emit(&mut self, h: Held) -> Option<AccessUnit> {
        let base = *self.base_ms.get_or_insert(h.ms);
        let rel = (h.ms - base).max(0);
        let (dts, pts) = match h.track {
            TrackKind::Video => {
                self.video.as_ref()?;
                let dts = rel * (VIDEO_TIMESCALE as i64 / 1000);
                (
                    dts,
                    (dts + h.cts_ms as i64 * (VIDEO_TIMESCALE as i64 / 1000)).max(0),
                )
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
    fn unwrapper_crosses_the_32_bit_wrap() {
        let mut u = TimestampUnwrapper::default();
        assert_eq!(u.unwrap(u32::MAX - 10), (u32::MAX - 10) as i64);
        assert_eq!(u.unwrap(5), u32::MAX as i64 + 6);
        // Slightly out of order (audio behind video) goes backwards, not forward 49 days.
        assert_eq!(u.unwrap(2), u32::MAX as i64 + 3);
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
