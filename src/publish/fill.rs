//! AAC silence made into CMAF parts that continue an audio rendition's
//! own fragments, for an origin that must bring a lost ingest pod's audio
//! up to where its video ended (see `receive`). Pure functions of the
//! rendition's init segment, its last part and the silence frames.

use bytes::Bytes;
use mp4_atom::{Decode, Moof, Moov};

use crate::media::aac::SAMPLES_PER_FRAME;
use crate::media::AacConfig;
use crate::package::boxes::{self, Sample, TrackRun};
use crate::slate::silence::Silence;

#[derive(Debug, thiserror::Error)]
pub enum FillError {
    #[error("no {0} box")]
    Missing(&'static str),
    #[error("box parsing failed: {0}")]
    Parse(#[from] mp4_atom::Error),
    #[error("the track's AudioSpecificConfig: {0}")]
    Aac(#[from] crate::media::aac::AacError),
    #[error("the track is not AAC-LC of the silence's rate and channels")]
    NotLc,
    #[error("silence: {0}")]
    Silence(#[from] crate::slate::SlateError),
    #[error("writing the part: {0}")]
    Write(#[from] boxes::BoxError),
}

/// What the silence must match, from an audio rendition's init segment.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioTrack {
    pub config: AacConfig,
    pub track_id: u32,
    /// Ticks per second of its decode times (its sample rate here).
    pub timescale: u32,
}

/// Where an audio rendition's last part ends: its decode time after the
/// last sample, and its fragment sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentEnd {
    pub decode_time: u64,
    pub sequence: u32,
}

/// The top-level box of type `kind` in `data`.
fn top_level<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    let mut at = 0usize;
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().ok()?) as usize;
        if size < 8 || at + size > data.len() {
            return None;
        }
        if &data[at + 4..at + 8] == kind {
            return Some(&data[at..at + size]);
        }
        at += size;
    }
    None
}

/// The audio track of an init segment (its first track).
pub fn audio_track(init: &[u8]) -> Result<AudioTrack, FillError> {
    let mut moov = top_level(init, b"moov").ok_or(FillError::Missing("moov"))?;
    let moov = Moov::decode(&mut moov)?;
    let trak = moov.trak.first().ok_or(FillError::Missing("trak"))?;
    let mp4a = trak
        .mdia
        .minf
        .stbl
        .stsd
        .codecs
        .iter()
        .find_map(|c| match c {
            mp4_atom::Codec::Mp4a(a) => Some(a),
            _ => None,
        })
        .ok_or(FillError::Missing("mp4a"))?;
    let asc = mp4a
        .esds
        .es_desc
        .dec_config
        .dec_specific
        .as_ref()
        .ok_or(FillError::Missing("AudioSpecificConfig"))?;
    Ok(AudioTrack {
        config: AacConfig::parse(Bytes::from(asc.raw.clone()))?,
        track_id: trak.tkhd.track_id,
        timescale: trak.mdia.mdhd.timescale,
    })
}

/// Where the fragment `part` ends (its moof's first track).
pub fn fragment_end(part: &[u8]) -> Result<FragmentEnd, FillError> {
    let mut moof = top_level(part, b"moof").ok_or(FillError::Missing("moof"))?;
    let moof = Moof::decode(&mut moof)?;
    let traf = moof.traf.first().ok_or(FillError::Missing("traf"))?;
    let base = traf
        .tfdt
        .as_ref()
        .ok_or(FillError::Missing("tfdt"))?
        .base_media_decode_time;
    let default = traf.tfhd.default_sample_duration.unwrap_or(0) as u64;
    let samples: u64 = traf
        .trun
        .iter()
        .flat_map(|t| t.samples.iter())
        .map(|e| e.duration.map_or(default, u64::from))
        .sum();
    Ok(FragmentEnd {
        decode_time: base + samples,
        sequence: moof.mfhd.sequence_number,
    })
}

/// `frames` AAC frames of `silence` as one part that follows `after`.
pub fn silence_part(
    track: &AudioTrack,
    silence: &Silence,
    after: FragmentEnd,
    frames: usize,
) -> Result<(Bytes, FragmentEnd), FillError> {
    if !silence.fits(&track.config) {
        return Err(FillError::NotLc);
    }
    let samples: Vec<Sample> = silence
        .frames
        .iter()
        .cycle()
        .take(frames)
        .map(|data| Sample {
            duration: SAMPLES_PER_FRAME as u32,
            cts_offset: 0,
            sync: true,
            data: data.clone(),
        })
        .collect();
    let sequence = after.sequence.wrapping_add(1);
    let run = TrackRun {
        track_id: track.track_id,
        base_decode_time: after.decode_time,
        samples: &samples,
        with_cts: false,
    };
    let data = boxes::chunk(sequence, &[run])?;
    let end = FragmentEnd {
        decode_time: after.decode_time + (frames as u64) * SAMPLES_PER_FRAME as u64,
        sequence,
    };
    Ok((data, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{MediaInfo, TrackKind};

    fn lc_48k_stereo() -> AacConfig {
        AacConfig::parse(Bytes::from_static(&[0x11, 0x90])).unwrap()
    }

    #[test]
    fn the_track_is_read_back_from_the_init_segment_castline_writes() {
        let info = MediaInfo {
            video: None,
            audio: Some(lc_48k_stereo()),
            declared_bitrate: None,
        };
        let init = boxes::init_segment(&info).unwrap();
        let track = audio_track(&init).unwrap();
        assert_eq!(track.config, lc_48k_stereo());
        assert_eq!(track.timescale, 48_000);
        assert_eq!(track.track_id, boxes::track_id(&info, TrackKind::Audio));
    }

    #[test]
    fn silence_continues_the_last_fragment_where_it_ends() {
        let track = AudioTrack {
            config: lc_48k_stereo(),
            track_id: 2,
            timescale: 48_000,
        };
        let silence = Silence {
            config: lc_48k_stereo(),
            frames: vec![Bytes::from_static(b"\x21\x10\x04\x60\x8c\x1c")],
        };
        let start = FragmentEnd {
            decode_time: 480_000,
            sequence: 41,
        };
        let (part, end) = silence_part(&track, &silence, start, 3).unwrap();
        // The part reads back as three frames from 480000 on, fragment 42.
        assert_eq!(
            fragment_end(&part).unwrap(),
            FragmentEnd {
                decode_time: 480_000 + 3 * 1024,
                sequence: 42
            }
        );
        assert_eq!(end, fragment_end(&part).unwrap());
        let (next, _) = silence_part(&track, &silence, end, 1).unwrap();
        assert_eq!(fragment_end(&next).unwrap().decode_time, 480_000 + 4 * 1024);
        // Other audio is not given silence that would not decode.
        let he = AudioTrack {
            config: AacConfig::parse(Bytes::from_static(&[0x29, 0x90])).unwrap(),
            ..track
        };
        assert!(matches!(
            silence_part(&he, &silence, start, 1),
            Err(FillError::NotLc)
        ));
    }
}
