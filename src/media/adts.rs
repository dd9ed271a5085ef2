//! AAC in ADTS framing (ISO/IEC 13818-7 6.2), as MPEG-TS carries it: each
//! frame's 7- or 9-byte header split off, and the AudioSpecificConfig the
//! header implies built for the MP4 track.

use bytes::Bytes;

use super::aac::{AacConfig, AacError};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AdtsError {
    #[error("no ADTS sync word at byte {0}")]
    NoSync(usize),
    #[error("ADTS frame at byte {0} is truncated")]
    Truncated(usize),
    #[error("ADTS frame at byte {0} holds {1} raw blocks; castline takes one per frame")]
    MultipleBlocks(usize, u8),
    #[error(transparent)]
    Config(#[from] AacError),
}

/// One AAC frame: its raw data and the config its header declares.
#[derive(Debug, PartialEq)]
pub struct AdtsFrame {
    pub config: AacConfig,
    pub data: Bytes,
}

/// The ADTS frames of a buffer (a PES payload), in order.
pub fn frames(buf: &Bytes) -> Result<Vec<AdtsFrame>, AdtsError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < buf.len() {
        let h = buf.get(i..i + 7).ok_or(AdtsError::Truncated(i))?;
        if h[0] != 0xff || h[1] & 0xf6 != 0xf0 {
            return Err(AdtsError::NoSync(i));
        }
        let protection_absent = h[1] & 1 != 0;
        let profile = h[2] >> 6; // object type - 1
        let frequency_index = (h[2] >> 2) & 0x0f;
        let channels = ((h[2] & 1) << 2) | (h[3] >> 6);
        let len = (((h[3] & 3) as usize) << 11) | ((h[4] as usize) << 3) | (h[5] as usize >> 5);
        let blocks = (h[6] & 3) + 1;
        if blocks != 1 {
            return Err(AdtsError::MultipleBlocks(i, blocks));
        }
        let header = if protection_absent { 7 } else { 9 };
        if len < header || i + len > buf.len() {
            return Err(AdtsError::Truncated(i));
        }
        let object_type = profile + 1;
        let asc = [
            (object_type << 3) | (frequency_index >> 1),
            ((frequency_index & 1) << 7) | (channels << 3),
        ];
        out.push(AdtsFrame {
            config: AacConfig::parse(Bytes::copy_from_slice(&asc))?,
            data: buf.slice(i + header..i + len),
        });
        i += len;
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An ADTS frame: AAC-LC, 48 kHz, stereo, no CRC.
    pub fn frame(payload: &[u8]) -> Vec<u8> {
        let len = 7 + payload.len();
        let mut f = vec![
            0xff,
            0xf1,
            (1 << 6) | (3 << 2), // LC, 48 kHz
            (2 << 6) | ((len >> 11) & 3) as u8,
            (len >> 3) as u8,
            ((len as u8 & 7) << 5) | 0x1f,
            0xfc,
        ];
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn splits_frames_and_builds_the_config() {
        let mut buf = frame(&[1, 2, 3]);
        buf.extend(frame(&[4, 5]));
        let f = frames(&Bytes::from(buf)).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(&f[0].data[..], &[1, 2, 3]);
        assert_eq!(&f[1].data[..], &[4, 5]);
        let c = &f[0].config;
        // The same AudioSpecificConfig an RTMP AAC sequence header carries.
        assert_eq!(&c.asc[..], &[0x11, 0x90]);
        assert_eq!((c.object_type, c.sample_rate, c.channels), (2, 48_000, 2));
    }

    #[test]
    fn broken_frames_are_errors() {
        assert_eq!(
            frames(&Bytes::from_static(&[0xff, 0xf1, 0])),
            Err(AdtsError::Truncated(0))
        );
        assert_eq!(
            frames(&Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0])),
            Err(AdtsError::NoSync(0))
        );
        let mut long = frame(&[1, 2, 3]);
        long.truncate(8);
        assert_eq!(frames(&Bytes::from(long)), Err(AdtsError::Truncated(0)));
    }
}
