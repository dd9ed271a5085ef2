//! AAC-LC silence in a track's shape: what the slate's audio carries, and
//! what fills the audio up to the video's last cut when a session ends
//! with the video ahead (see `pipeline`'s `Renditions::owe_silence`).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ffmpeg_next as ffmpeg;

use super::SlateError;
use crate::media::AacConfig;

/// Raw AAC frames of silence (1,024 samples each) and the config they
/// were encoded with.
#[derive(Debug)]
pub struct Silence {
    pub config: AacConfig,
    pub frames: Vec<Bytes>,
}

impl Silence {
    /// Whether these frames decode under `track`'s config (same object
    /// type, sampling frequency and channel configuration): true for an
    /// AAC-LC source of the same rate and channels.
    pub fn fits(&self, track: &AacConfig) -> bool {
        let c = &self.config;
        (c.object_type, c.frequency_index, c.channels)
            == (track.object_type, track.frequency_index, track.channels)
    }
}

/// Frames of silence encoded; the first ones carry the encoder's start-up.
const FRAMES: usize = 24;
const SKIP: usize = 4;

/// Silence by (rate, channels), kept for the process's life: a few hundred
/// bytes each, and there are few shapes (rates times channel counts).
type Shared = Vec<((u32, u8), Arc<Silence>)>;
static SHARED: Mutex<Shared> = Mutex::new(Vec::new());

/// Silence at `rate` and `channels`: one already encoded, or one encoded
/// now on a blocking thread (a few milliseconds).
pub async fn shared(rate: u32, channels: u8) -> Result<Arc<Silence>, SlateError> {
    let key = (rate, channels.max(1));
    if let Some(s) = cached(key) {
        return Ok(s);
    }
    let silence = tokio::task::spawn_blocking(move || encode(key.0, key.1))
        .await
        .map_err(|e| SlateError::Encode(e.to_string()))??;
    Ok(remember(key, silence))
}

/// As [`shared`], encoding on this thread if it must: for a caller that
/// cannot wait (an origin ending a lost pod's segments, once per failover).
pub fn shared_now(rate: u32, channels: u8) -> Result<Arc<Silence>, SlateError> {
    let key = (rate, channels.max(1));
    match cached(key) {
        Some(s) => Ok(s),
        None => Ok(remember(key, encode(key.0, key.1)?)),
    }
}

fn cached(key: (u32, u8)) -> Option<Arc<Silence>> {
    let list = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    list.iter().find(|(k, _)| *k == key).map(|(_, s)| s.clone())
}

fn remember(key: (u32, u8), silence: Silence) -> Arc<Silence> {
    let mut list = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, had)) = list.iter().find(|(k, _)| *k == key) {
        return had.clone();
    }
    let silence = Arc::new(silence);
    list.push((key, silence.clone()));
    silence
}

/// Encode AAC-LC silence at `rate` and `channels` with FFmpeg's encoder.
pub fn encode(rate: u32, channels: u8) -> Result<Silence, SlateError> {
    let fail = |e: ffmpeg::Error| SlateError::Encode(format!("AAC: {e}"));
    let codec = ffmpeg::encoder::find(ffmpeg::codec::Id::AAC)
        .ok_or_else(|| SlateError::Encode("no AAC encoder".into()))?;
    let layout = ffmpeg::ChannelLayout::default(channels as i32);
    let format = ffmpeg::format::Sample::F32(ffmpeg::format::sample::Type::Planar);
    let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
        .encoder()
        .audio()
        .map_err(fail)?;
    enc.set_rate(rate as i32);
    enc.set_channel_layout(layout);
    enc.set_channels(channels as i32);
    enc.set_format(format);
    enc.set_bit_rate(64_000);
    enc.set_time_base(ffmpeg::Rational(1, rate as i32));
    enc.set_flags(ffmpeg::codec::Flags::GLOBAL_HEADER);
    let mut enc = enc.open_as(codec).map_err(fail)?;
    let asc = crate::transcode::encoder::extradata(&enc);
    let config =
        AacConfig::parse(Bytes::from(asc)).map_err(|e| SlateError::Encode(e.to_string()))?;
    let samples = crate::media::aac::SAMPLES_PER_FRAME as usize;
    let mut frame = ffmpeg::frame::Audio::new(format, samples, layout);
    frame.set_rate(rate);
    frame.set_channels(channels as u16);
    for i in 0..frame.planes() {
        frame.data_mut(i).fill(0);
    }
    let mut out = Vec::new();
    for i in 0..FRAMES {
        frame.set_pts(Some((i * samples) as i64));
        enc.send_frame(&frame).map_err(fail)?;
        let mut pkt = ffmpeg::Packet::empty();
        while enc.receive_packet(&mut pkt).is_ok() {
            if let Some(d) = pkt.data() {
                out.push(Bytes::copy_from_slice(d));
            }
        }
    }
    let frames: Vec<Bytes> = out.into_iter().skip(SKIP).collect();
    if frames.is_empty() {
        return Err(SlateError::Encode("the AAC encoder gave no frames".into()));
    }
    Ok(Silence { config, frames })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_fits_an_aac_lc_track_of_its_rate_and_channels_only() {
        crate::transcode::init().unwrap();
        let s = encode(48_000, 2).unwrap();
        assert!(!s.frames.is_empty());
        // AAC-LC (2), 48 kHz (index 3), stereo: 0x11 0x90.
        let lc = AacConfig::parse(Bytes::from_static(&[0x11, 0x90])).unwrap();
        assert!(s.fits(&lc));
        // 44.1 kHz stereo LC: 0x12 0x10.
        let other_rate = AacConfig::parse(Bytes::from_static(&[0x12, 0x10])).unwrap();
        assert!(!s.fits(&other_rate));
        // 48 kHz mono LC: 0x11 0x88.
        let mono = AacConfig::parse(Bytes::from_static(&[0x11, 0x88])).unwrap();
        assert!(!s.fits(&mono));
    }
}
