//! MPEG-TS bytes (as SRT delivers them) into access units and track
//! announcements. Sans-IO, the sibling of `ingest::rtmp::demux`:
//! [`super::ts`] finds the PES packets, this module turns H.264 Annex B
//! into AVCC frames plus an avcC config and ADTS into raw AAC frames plus an
//! AudioSpecificConfig, and the shared [`crate::ingest::timeline`] does the
//! rest (tracks before media, the 33-bit clock made a clean timeline).

use std::time::Instant;

use super::ts::{Pes, StreamKind, TsCounts, TsDemuxer, TsError, TsEvent};
use crate::ingest::normalize::Unwrapper;
use crate::ingest::timeline::{Frame, Timeline, TrackConfig};
use crate::media::adts::{self, AdtsError};
use crate::media::annexb::{self, NAL_SPS};
use crate::media::avc::AvcError;
use crate::media::{TrackKind, VIDEO_TIMESCALE};

pub use crate::ingest::timeline::DemuxEvent;

#[derive(Debug, thiserror::Error)]
pub enum DemuxError {
    #[error("bad MPEG-TS: {0}")]
    Ts(#[from] TsError),
}

/// Recoverable problems, counted rather than fatal: the next PES starts clean.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DemuxCounts {
    pub ts: TsCounts,
    /// PES packets without a PTS, or whose H.264/ADTS content did not parse.
    pub bad_pes: u64,
    /// Frames before their track's config (video before the first SPS).
    pub dropped_frames: u64,
    /// Encoder clock resets and jumps (each started a new timeline).
    pub clock_resets: u64,
    /// Video decode times that stood still or stepped back, repaired.
    pub repaired_timestamps: u64,
}

/// A clock step back by more than this (tracks are interleaved loosely in TS,
/// by up to the muxer's 0.7 s max delay) counts as an encoder clock reset.
const RESET_BACKWARDS: i64 = VIDEO_TIMESCALE as i64;

pub struct Demuxer {
    ts: TsDemuxer,
    /// PTS/DTS are 33-bit 90 kHz (they wrap after ~26.5 hours).
    clock: Unwrapper,
    timeline: Timeline,
    bad_pes: u64,
    dropped_frames: u64,
    /// The last PES error, for a rate-limited log line.
    pub last_error: Option<String>,
}

impl Demuxer {
    /// A demuxer that starts a new timeline when the clock leaps forward by
    /// more than `max_jump_ms` (or back by more than a second).
    pub fn with_max_jump(max_jump_ms: i64) -> Self {
        Demuxer {
            ts: TsDemuxer::new(),
            clock: Unwrapper::new(33),
            timeline: Timeline::new(
                VIDEO_TIMESCALE as i64,
                RESET_BACKWARDS,
                max_jump_ms.saturating_mul(90),
            ),
            bad_pes: 0,
            dropped_frames: 0,
            last_error: None,
        }
    }

    pub fn counts(&self) -> DemuxCounts {
        DemuxCounts {
            ts: self.ts.counts,
            bad_pes: self.bad_pes,
            dropped_frames: self.dropped_frames,
            clock_resets: self.timeline.clock_resets(),
            repaired_timestamps: self.timeline.repaired_timestamps(),
        }
    }

    /// Feed the bytes of one SRT message (or any chunk of the TS).
    pub fn push(&mut self, data: &[u8], received: Instant) -> Result<Vec<DemuxEvent>, DemuxError> {
        let events = self.ts.push(data, received)?;
        Ok(self.on_ts(events))
    }

    /// At the end of the input: the last PES, and whatever tracks are known.
    pub fn finish(&mut self) -> Vec<DemuxEvent> {
        let events = self.ts.finish();
        let mut out = self.on_ts(events);
        out.extend(self.timeline.finish());
        out
    }

    fn on_ts(&mut self, events: Vec<TsEvent>) -> Vec<DemuxEvent> {
        let mut out = Vec::new();
        for e in events {
            match e {
                TsEvent::Program { video, audio } => self.timeline.expect(video, audio),
                TsEvent::Pes(pes) => match self.on_pes(pes, &mut out) {
                    Ok(()) => {}
                    Err(why) => {
                        self.bad_pes += 1;
                        self.last_error = Some(why);
                    }
                },
            }
        }
        out
    }

    fn on_pes(&mut self, pes: Pes, out: &mut Vec<DemuxEvent>) -> Result<(), String> {
        // A frame counts as received when its last TS packet arrived.
        let received = pes.arrived;
        let pts = pes.pts.ok_or("a PES without a PTS")?;
        match pes.kind {
            StreamKind::H264 => {
                let dts = pes.dts.unwrap_or(pts);
                let nals = annexb::nal_units(&pes.data);
                let cfg = if nals.iter().any(|n| annexb::nal_type(n) == NAL_SPS) {
                    Some(annexb::avc_config(&pes.data).map_err(|e: AvcError| e.to_string())?)
                } else {
                    None
                };
                if cfg.is_none() && self.timeline.video().is_none() {
                    self.dropped_frames += 1;
                    return Ok(());
                }
                let (data, keyframe) = annexb::to_avcc(&pes.data);
                if data.is_empty() {
                    return Ok(()); // parameter sets or delimiters only
                }
                let frame = Frame {
                    track: TrackKind::Video,
                    time: self.clock.unwrap(dts),
                    cts: signed_33(pts.wrapping_sub(dts)),
                    data,
                    keyframe,
                    received,
                };
                out.extend(match cfg {
                    Some(cfg) => self
                        .timeline
                        .frame_with_config(TrackConfig::Video(cfg), frame),
                    None => self.timeline.frame(frame),
                });
            }
            StreamKind::Aac => {
                let frames = adts::frames(&pes.data).map_err(|e: AdtsError| e.to_string())?;
                let base = self.clock.unwrap(pts);
                for (i, f) in frames.into_iter().enumerate() {
                    let rate = f.config.sample_rate as i64;
                    // Frames after the first in one PES follow it by 1024 samples each.
                    let offset = i as i64 * 1024 * VIDEO_TIMESCALE as i64 / rate;
                    let frame = Frame {
                        track: TrackKind::Audio,
                        time: base + offset,
                        cts: 0,
                        data: f.data,
                        keyframe: true,
                        received,
                    };
                    out.extend(
                        self.timeline
                            .frame_with_config(TrackConfig::Audio(f.config), frame),
                    );
                }
            }
        }
        Ok(())
    }
}

/// A 33-bit difference as a signed value (PTS may trail DTS after a wrap).
fn signed_33(d: u64) -> i64 {
    let d = d & ((1 << 33) - 1);
    if d >= 1 << 32 {
        d as i64 - (1 << 33)
    } else {
        d as i64
    }
}

#[cfg(test)]
mod tests {
    use super::super::ts::tests::{Writer, AUDIO_PID, VIDEO_PID};
    use super::*;
    use crate::media::adts::tests::frame as adts_frame;
    use crate::media::avc::tests::AVCC_320X240;
    use crate::media::{AccessUnit, AvcConfig};
    use bytes::Bytes;

    fn keyframe_annexb() -> Vec<u8> {
        let cfg = AvcConfig::parse(Bytes::from_static(AVCC_320X240)).unwrap();
        let mut out = vec![0, 0, 0, 1, 0x09, 0xf0];
        for n in cfg.sps.iter().chain(cfg.pps.iter()) {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(n);
        }
        out.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88, 0x84]);
        out
    }

    fn media(events: &[DemuxEvent]) -> Vec<&AccessUnit> {
        events
            .iter()
            .filter_map(|e| match e {
                DemuxEvent::Media(au) => Some(au),
                _ => None,
            })
            .collect()
    }

    fn stream(start: u64) -> Vec<u8> {
        let mut w = Writer::new();
        let mut ts = w.pat();
        ts.extend(w.pmt(&[(0x1b, VIDEO_PID), (0x0f, AUDIO_PID)]));
        // Keyframe with B-frame delay (PTS = DTS + 2 frames), then a P frame.
        ts.extend(w.pes(
            VIDEO_PID,
            start + 6000,
            Some(start),
            &keyframe_annexb(),
            false,
        ));
        let mut two = adts_frame(&[1; 10]);
        two.extend(adts_frame(&[2; 10]));
        ts.extend(w.pes(AUDIO_PID, start + 900, None, &two, true));
        ts.extend(w.pes(
            VIDEO_PID,
            start + 9000,
            Some(start + 3000),
            &[0, 0, 1, 0x41, 0x9a],
            false,
        ));
        ts
    }

    #[test]
    fn h264_and_adts_become_tracks_and_access_units_from_zero() {
        let mut d = Demuxer::with_max_jump(10_000);
        let now = Instant::now();
        // Start just before the 33-bit wrap: the clock carries across it.
        let start = (1u64 << 33) - 2000;
        let mut ev = d.push(&stream(start), now).unwrap();
        ev.extend(d.finish());
        let DemuxEvent::Tracks(info) = &ev[0] else {
            panic!("tracks first, got {:?}", ev[0]);
        };
        let v = info.video.as_ref().unwrap();
        assert_eq!((v.width, v.height), (320, 240));
        let a = info.audio.as_ref().unwrap();
        assert_eq!((a.sample_rate, a.channels), (48_000, 2));
        let au = media(&ev);
        let video: Vec<_> = au.iter().filter(|a| a.track == TrackKind::Video).collect();
        let audio: Vec<_> = au.iter().filter(|a| a.track == TrackKind::Audio).collect();
        assert_eq!(video.len(), 2);
        assert_eq!(
            (video[0].dts, video[0].pts, video[0].keyframe),
            (0, 6000, true)
        );
        assert_eq!(
            &video[0].data[..4],
            &[0, 0, 0, 3],
            "AVCC, parameter sets taken out"
        );
        assert_eq!(
            (video[1].dts, video[1].pts, video[1].keyframe),
            (3000, 9000, false)
        );
        // Audio 10 ms after video's first DTS, in 48 kHz samples; the second
        // frame of the PES follows by 1024 samples.
        assert_eq!(audio.len(), 2);
        assert_eq!(audio[0].dts, 480);
        assert_eq!(audio[1].dts, 480 + 1024);
        assert_eq!(&audio[0].data[..], &[1; 10]);
        assert_eq!(d.counts().bad_pes, 0);
    }

    #[test]
    fn an_encoder_clock_reset_is_counted_and_announced_as_a_new_timeline() {
        let mut d = Demuxer::with_max_jump(10_000);
        let now = Instant::now();
        d.push(&stream(900_000_000), now).unwrap();
        // The encoder restarts: its clock is back near 0.
        let ev = d.push(&stream(0), now).unwrap();
        assert_eq!(d.counts().clock_resets, 1);
        assert!(ev.iter().any(|e| matches!(e, DemuxEvent::Tracks(_))));
    }

    #[test]
    fn broken_adts_is_counted_not_fatal() {
        let mut w = Writer::new();
        let mut ts = w.pat();
        ts.extend(w.pmt(&[(0x0f, AUDIO_PID)]));
        ts.extend(w.pes(AUDIO_PID, 0, None, &[9, 9, 9, 9, 9, 9, 9, 9], true));
        ts.extend(w.pes(AUDIO_PID, 1920, None, &adts_frame(&[3; 4]), true));
        let mut d = Demuxer::with_max_jump(10_000);
        let ev = d.push(&ts, Instant::now()).unwrap();
        assert_eq!(media(&ev).len(), 1);
        assert_eq!(d.counts().bad_pes, 1);
        assert!(d.last_error.as_deref().unwrap().contains("ADTS"));
    }

    #[test]
    fn signed_difference_across_the_wrap() {
        assert_eq!(signed_33(6000), 6000);
        assert_eq!(signed_33(5u64.wrapping_sub(10)), -5);
    }
}
