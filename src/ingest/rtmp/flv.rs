//! FLV tag bodies as carried in RTMP audio (type 8) and video (type 9) messages.

use bytes::Bytes;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FlvError {
    #[error("empty {0} tag")]
    Empty(&'static str),
    #[error("{0} tag is truncated")]
    Truncated(&'static str),
    #[error("unknown AVC packet type {0}")]
    BadAvcPacketType(u8),
    #[error("unknown AAC packet type {0}")]
    BadAacPacketType(u8),
}

#[derive(Debug, PartialEq)]
pub enum VideoTag {
    /// AVCDecoderConfigurationRecord.
    AvcSequenceHeader(Bytes),
    /// One coded frame as AVCC NAL units; `cts_ms` is PTS - DTS.
    AvcFrame {
        cts_ms: i32,
        data: Bytes,
    },
    AvcEndOfSequence,
    /// A video info / command frame (FLV frame type 5): carries no picture.
    Command,
    /// A codec we do not carry (yet): the FLV codec id, or 0xFF for Enhanced RTMP.
    Unsupported(u8),
}

#[derive(Debug, PartialEq)]
pub enum AudioTag {
    /// AudioSpecificConfig.
    AacSequenceHeader(Bytes),
    AacFrame(Bytes),
    /// A sound format we do not carry: the FLV SoundFormat.
    Unsupported(u8),
}

const CODEC_AVC: u8 = 7;
const SOUND_AAC: u8 = 10;

pub fn parse_video(body: &Bytes) -> Result<VideoTag, FlvError> {
    let first = *body.first().ok_or(FlvError::Empty("video"))?;
    if first & 0x80 != 0 {
        return Ok(VideoTag::Unsupported(0xFF));
    }
    if (first >> 4) == 5 {
        // Video info / command frame (e.g. a seek marker): nothing to show, whatever the codec.
        return Ok(VideoTag::Command);
    }
    if first & 0x0f != CODEC_AVC {
        return Ok(VideoTag::Unsupported(first & 0x0f));
    }
    if body.len() < 5 {
        return Err(FlvError::Truncated("video"));
    }
    let cts = i32::from_be_bytes([0, body[2], body[3], body[4]]);
    let cts_ms = (cts << 8) >> 8; // sign-extend SI24
    match body[1] {
        0 => Ok(VideoTag::AvcSequenceHeader(body.slice(5..))),
        1 => Ok(VideoTag::AvcFrame {
            cts_ms,
            data: body.slice(5..),
        }),
        2 => Ok(VideoTag::AvcEndOfSequence),
        t => Err(FlvError::BadAvcPacketType(t)),
    }
}

pub fn parse_audio(body: &Bytes) -> Result<AudioTag, FlvError> {
    let first = *body.first().ok_or(FlvError::Empty("audio"))?;
    let format = first >> 4;
    if format != SOUND_AAC {
        return Ok(AudioTag::Unsupported(format));
    }
    if body.len() < 2 {
        return Err(FlvError::Truncated("audio"));
    }
    match body[1] {
        0 => Ok(AudioTag::AacSequenceHeader(body.slice(2..))),
        1 => Ok(AudioTag::AacFrame(body.slice(2..))),
        t => Err(FlvError::BadAacPacketType(t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_frame_with_negative_composition_time() {
        let body = Bytes::from_static(&[0x27, 1, 0xff, 0xff, 0xdf, 0, 0, 0, 1, 0x41]);
        assert_eq!(
            parse_video(&body),
            Ok(VideoTag::AvcFrame {
                cts_ms: -33,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x41])
            })
        );
    }

    #[test]
    fn video_sequence_header_and_errors() {
        let body = Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64]);
        assert_eq!(
            parse_video(&body),
            Ok(VideoTag::AvcSequenceHeader(Bytes::from_static(&[1, 0x64])))
        );
        assert_eq!(parse_video(&Bytes::new()), Err(FlvError::Empty("video")));
        assert_eq!(
            parse_video(&Bytes::from_static(&[0x17, 1])),
            Err(FlvError::Truncated("video"))
        );
        assert_eq!(
            parse_video(&Bytes::from_static(&[0x17, 9, 0, 0, 0])),
            Err(FlvError::BadAvcPacketType(9))
        );
        assert_eq!(
            parse_video(&Bytes::from_static(&[0x12])),
            Ok(VideoTag::Unsupported(2))
        );
    }

    #[test]
    fn command_frames_are_recognised_whatever_the_codec() {
        // Frame type 5 with AVC (a seek/info marker), and with a codec id we do not carry.
        assert_eq!(
            parse_video(&Bytes::from_static(&[0x57, 0])),
            Ok(VideoTag::Command)
        );
        assert_eq!(
            parse_video(&Bytes::from_static(&[0x52])),
            Ok(VideoTag::Command)
        );
    }

    #[test]
    fn audio_tags() {
        let hdr = Bytes::from_static(&[0xaf, 0, 0x12, 0x10]);
        assert_eq!(
            parse_audio(&hdr),
            Ok(AudioTag::AacSequenceHeader(Bytes::from_static(&[
                0x12, 0x10
            ])))
        );
        let raw = Bytes::from_static(&[0xaf, 1, 0x21]);
        assert_eq!(
            parse_audio(&raw),
            Ok(AudioTag::AacFrame(Bytes::from_static(&[0x21])))
        );
        assert_eq!(
            parse_audio(&Bytes::from_static(&[0x2f, 1])),
            Ok(AudioTag::Unsupported(2))
        );
        assert_eq!(
            parse_audio(&Bytes::from_static(&[0xaf])),
            Err(FlvError::Truncated("audio"))
        );
        assert_eq!(
            parse_audio(&Bytes::from_static(&[0xaf, 7])),
            Err(FlvError::BadAacPacketType(7))
        );
    }
}
