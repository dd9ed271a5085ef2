//! Codec-neutral media types shared by every stage: access units, track
//! configurations and the small header parsers needed to describe them.
//!
//! Nothing in here knows which protocol a stream arrived by.

pub mod aac;
pub mod adts;
pub mod annexb;
pub mod avc;

use bytes::Bytes;
use std::time::Instant;

pub use aac::AacConfig;
pub use avc::AvcConfig;

/// Timescale of every video track (the MPEG 90 kHz clock).
pub const VIDEO_TIMESCALE: u32 = 90_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Video,
    Audio,
}

/// One coded frame of one track.
///
/// `dts` and `pts` are in the track's timescale ([`VIDEO_TIMESCALE`] for video,
/// the sample rate for audio) and start near 0 for each publishing session.
#[derive(Debug, Clone)]
pub struct AccessUnit {
    pub track: TrackKind,
    pub dts: i64,
    pub pts: i64,
    /// For video: the frame holds an IDR picture. Audio frames are always sync samples.
    pub keyframe: bool,
    /// Video: AVCC (length-prefixed) NAL units. Audio: one raw AAC frame.
    pub data: Bytes,
    /// When the last byte of this frame was read from the network; used to
    /// measure ingest-to-servable latency.
    pub received: Instant,
}

impl AccessUnit {
    /// One raw AAC frame presented at `pts` (audio frames are all sync samples).
    pub fn audio(pts: i64, data: Bytes, received: Instant) -> AccessUnit {
        AccessUnit {
            track: TrackKind::Audio,
            dts: pts,
            pts,
            keyframe: true,
            data,
            received,
        }
    }
}

/// The tracks of one publishing session, known before its first access unit.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaInfo {
    pub video: Option<AvcConfig>,
    pub audio: Option<AacConfig>,
    /// Bitrate the encoder announced (onMetaData), in bits per second, if any.
    pub declared_bitrate: Option<u64>,
}

impl MediaInfo {
    pub fn timescale(&self, track: TrackKind) -> u32 {
        match track {
            TrackKind::Video => VIDEO_TIMESCALE,
            TrackKind::Audio => self.audio.as_ref().map_or(48_000, |a| a.sample_rate),
        }
    }

    /// Just the video track (a CMAF track file carries one track).
    pub fn video_only(&self) -> Option<MediaInfo> {
        Some(MediaInfo {
            video: Some(self.video.clone()?),
            audio: None,
            declared_bitrate: self.declared_bitrate,
        })
    }

    /// Just the audio track.
    pub fn audio_only(&self) -> Option<MediaInfo> {
        Some(MediaInfo {
            video: None,
            audio: Some(self.audio.clone()?),
            declared_bitrate: None,
        })
    }

    /// The RFC 6381 codec list for a multivariant playlist, e.g. `avc1.64001f,mp4a.40.2`.
    pub fn codecs(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = &self.video {
            parts.push(v.codec_string());
        }
        if let Some(a) = &self.audio {
            parts.push(a.codec_string());
        }
        parts.join(",")
    }
}

/// Rescale `value` from timescale `from` to timescale `to`, rounding down,
/// without overflow for any realistic stream length (i128 intermediate).
pub fn rescale(value: i64, from: u32, to: u32) -> i64 {
    if from == to {
        return value;
    }
    let num = value as i128 * to as i128;
    num.div_euclid(from as i128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_is_exact_for_integer_ratios_and_does_not_overflow() {
        assert_eq!(rescale(1000, 1000, 90_000), 90_000);
        assert_eq!(rescale(-1, 1000, 90_000), -90);
        // 30 days in milliseconds to 48 kHz.
        let ms = 30 * 24 * 3600 * 1000i64;
        assert_eq!(rescale(ms, 1000, 48_000), ms * 48);
        assert_eq!(rescale(1, 3, 1), 0);
    }
}
