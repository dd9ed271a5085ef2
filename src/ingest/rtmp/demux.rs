//! Turns FLV tag bodies with RTMP millisecond timestamps into access units.
//!
//! Sans-IO: bytes and timestamps in, [`DemuxEvent`]s out. It unwraps RTMP's
//! 32-bit timestamps and parses FLV; the protocol-neutral
//! [`crate::ingest::timeline`] holds media until the tracks are known and
//! makes the clock a clean timeline.

use std::time::Instant;

use bytes::Bytes;
use rml_rtmp::sessions::StreamMetadata;

use super::flv::{self, AudioTag, FlvError, VideoTag};
use crate::ingest::normalize::Unwrapper;
use crate::ingest::timeline::{Frame, Timeline};
use crate::media::aac::AacError;
use crate::media::avc::{self, AvcError};
use crate::media::{AacConfig, AvcConfig, TrackKind};

pub use crate::ingest::timeline::DemuxEvent;

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
}

/// How far one track may run behind the other before a step back counts as
/// an encoder clock reset (tracks are interleaved loosely).
const RESET_BACKWARDS_MS: i64 = 1000;
/// A forward step larger than this starts a new timeline by default.
pub const DEFAULT_MAX_JUMP_MS: i64 = 10_000;

pub struct Demuxer {
    /// RTMP timestamps are 32-bit milliseconds (they wrap after ~49.7 days).
    clock: Unwrapper,
    timeline: Timeline,
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
            clock: Unwrapper::new(32),
            timeline: Timeline::new(1000, RESET_BACKWARDS_MS, max_jump_ms),
            dropped_frames: 0,
            skipped_tags: 0,
        }
    }

    /// Encoder clock resets and jumps seen (each started a new timeline).
    pub fn clock_resets(&self) -> u64 {
        self.timeline.clock_resets()
    }

    /// Video frames whose decode time stood still or stepped back, repaired.
    pub fn repaired_timestamps(&self) -> u64 {
        self.timeline.repaired_timestamps()
    }

    pub fn on_metadata(&mut self, m: &StreamMetadata) {
        let video = m.video_codec_id.is_some() || m.video_width.is_some();
        let audio = m.audio_codec_id.is_some() || m.audio_sample_rate.is_some();
        self.timeline.expect(video, audio);
        let kbps =
            m.video_bitrate_kbps.unwrap_or(0) as u64 + m.audio_bitrate_kbps.unwrap_or(0) as u64;
        self.timeline
            .declare_bitrate((kbps > 0).then_some(kbps * 1000));
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
                Ok(self.timeline.set_video(AvcConfig::parse(record)?))
            }
            VideoTag::AvcFrame { cts_ms, data } => {
                let Some(cfg) = self.timeline.video() else {
                    self.dropped_frames += 1;
                    return Ok(Vec::new());
                };
                let keyframe = avc::scan_frame(&data, cfg.nal_length_size)?;
                Ok(self.timeline.frame(Frame {
                    track: TrackKind::Video,
                    time: ms,
                    cts: cts_ms as i64,
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
            AudioTag::AacSequenceHeader(asc) => Ok(self.timeline.set_audio(AacConfig::parse(asc)?)),
            AudioTag::AacFrame(data) => {
                if !self.timeline.has_audio() {
                    self.dropped_frames += 1;
                    return Ok(Vec::new());
                }
                Ok(self.timeline.frame(Frame {
                    track: TrackKind::Audio,
                    time: ms,
                    cts: 0,
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
        self.timeline.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::avc::tests::AVCC_320X240;
    use crate::media::AccessUnit;

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
