//! AAC's AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1), enough to describe a track.

use bytes::Bytes;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AacError {
    #[error("AudioSpecificConfig is truncated")]
    Truncated,
    #[error("sampling frequency index {0} is reserved")]
    BadFrequencyIndex(u8),
    #[error("sample rate is 0")]
    ZeroSampleRate,
}

const FREQUENCIES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Samples per AAC frame (AAC-LC and the core of HE-AAC).
pub const SAMPLES_PER_FRAME: i64 = 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct AacConfig {
    pub asc: Bytes,
    pub object_type: u8,
    pub frequency_index: u8,
    pub sample_rate: u32,
    pub channels: u8,
}

impl AacConfig {
    pub fn parse(asc: Bytes) -> Result<Self, AacError> {
        let mut bits = Bits { data: &asc, pos: 0 };
        let mut object_type = bits.read(5)? as u8;
        if object_type == 31 {
            object_type = 32 + bits.read(6)? as u8;
        }
        let frequency_index = bits.read(4)? as u8;
        let sample_rate = match frequency_index {
            15 => bits.read(24)?,
            i if (i as usize) < FREQUENCIES.len() => FREQUENCIES[i as usize],
            i => return Err(AacError::BadFrequencyIndex(i)),
        };
        if sample_rate == 0 {
            return Err(AacError::ZeroSampleRate);
        }
        let channels = bits.read(4)? as u8;
        Ok(AacConfig {
            asc,
            object_type,
            frequency_index,
            sample_rate,
            channels,
        })
    }

    /// RFC 6381 codec string, e.g. `mp4a.40.2`.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: usize) -> Result<u32, AacError> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = self.data.get(self.pos / 8).ok_or(AacError::Truncated)?;
            v = (v << 1) | ((byte >> (7 - self.pos % 8)) & 1) as u32;
            self.pos += 1;
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_aac_lc_stereo_44100() {
        let c = AacConfig::parse(Bytes::from_static(&[0x12, 0x10])).unwrap();
        assert_eq!((c.object_type, c.sample_rate, c.channels), (2, 44100, 2));
        assert_eq!(c.codec_string(), "mp4a.40.2");
    }

    #[test]
    fn parses_48k_mono_and_explicit_rate() {
        let c = AacConfig::parse(Bytes::from_static(&[0x11, 0x88])).unwrap();
        assert_eq!((c.sample_rate, c.channels), (48000, 1));
        // AOT 2, index 15, explicit 22050 Hz, 1 channel.
        let v: u64 = (2 << 35) | (15 << 31) | (22050 << 7) | (1 << 3);
        let bytes = v.to_be_bytes();
        let c = AacConfig::parse(Bytes::copy_from_slice(&bytes[3..8])).unwrap();
        assert_eq!((c.sample_rate, c.channels), (22050, 1));
    }

    #[test]
    fn rejects_truncated_and_reserved() {
        assert_eq!(AacConfig::parse(Bytes::new()), Err(AacError::Truncated));
        assert_eq!(
            AacConfig::parse(Bytes::from_static(&[0x16, 0x80])),
            Err(AacError::BadFrequencyIndex(13))
        );
    }
}
