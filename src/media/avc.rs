//! H.264 in its MP4/FLV form: the AVCDecoderConfigurationRecord (avcC) and
//! length-prefixed (AVCC) NAL units.

use bytes::Bytes;
use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::{decode_nal, BitReader};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AvcError {
    #[error("avcC record is truncated")]
    Truncated,
    #[error("avcC configurationVersion is {0}, expected 1")]
    BadVersion(u8),
    #[error("avcC holds no SPS")]
    NoSps,
    #[error("SPS cannot be parsed: {0}")]
    BadSps(String),
    #[error("NAL unit length {len} runs past the end of the frame ({remaining} bytes left)")]
    NalOverrun { len: usize, remaining: usize },
    #[error("frame holds no NAL unit")]
    EmptyFrame,
}

/// A parsed avcC record; `record` keeps the original bytes for the sample entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AvcConfig {
    pub record: Bytes,
    pub profile: u8,
    pub compatibility: u8,
    pub level: u8,
    pub nal_length_size: u8,
    pub sps: Vec<Bytes>,
    pub pps: Vec<Bytes>,
    pub width: u32,
    pub height: u32,
    /// Frame rate from the SPS timing info, when the encoder wrote it.
    pub frame_rate: Option<f64>,
}

impl AvcConfig {
    pub fn parse(record: Bytes) -> Result<Self, AvcError> {
        let b = &record[..];
        if b.len() < 7 {
            return Err(AvcError::Truncated);
        }
        if b[0] != 1 {
            return Err(AvcError::BadVersion(b[0]));
        }
        let nal_length_size = (b[4] & 0x03) + 1;
        let mut pos = 6;
        let sps = read_param_sets(&record, &mut pos, (b[5] & 0x1f) as usize)?;
        let pps_count = *b.get(pos).ok_or(AvcError::Truncated)? as usize;
        pos += 1;
        let pps = read_param_sets(&record, &mut pos, pps_count)?;
        let first = sps.first().ok_or(AvcError::NoSps)?;
        let rbsp = decode_nal(first).map_err(|e| AvcError::BadSps(e.to_string()))?;
        let parsed = SeqParameterSet::from_bits(BitReader::new(&rbsp[..]))
            .map_err(|e| AvcError::BadSps(format!("{e:?}")))?;
        let (width, height) = parsed
            .pixel_dimensions()
            .map_err(|e| AvcError::BadSps(format!("{e:?}")))?;
        Ok(AvcConfig {
            profile: b[1],
            compatibility: b[2],
            level: b[3],
            nal_length_size,
            frame_rate: parsed.fps().filter(|f| f.is_finite() && *f > 0.0),
            sps,
            pps,
            width,
            height,
            record,
        })
    }

    /// RFC 6381 codec string, e.g. `avc1.64001f`.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile, self.compatibility, self.level
        )
    }
}

fn read_param_sets(record: &Bytes, pos: &mut usize, count: usize) -> Result<Vec<Bytes>, AvcError> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let len_bytes = record.get(*pos..*pos + 2).ok_or(AvcError::Truncated)?;
        let len = u16::from_be_bytes([len_bytes[0], len_bytes[1]]) as usize;
        *pos += 2;
        if *pos + len > record.len() {
            return Err(AvcError::Truncated);
        }
        out.push(record.slice(*pos..*pos + len));
        *pos += len;
    }
    Ok(out)
}

/// Walk the NAL units of one AVCC frame, checking every length; returns
/// whether the frame holds an IDR slice (nal_unit_type 5).
pub fn scan_frame(data: &[u8], nal_length_size: u8) -> Result<bool, AvcError> {
    let n = nal_length_size as usize;
    let mut pos = 0;
    let mut idr = false;
    let mut count = 0;
    while pos < data.len() {
        let Some(len_bytes) = data.get(pos..pos + n) else {
            return Err(AvcError::NalOverrun {
                len: n,
                remaining: data.len() - pos,
            });
        };
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        pos += n;
        if len > data.len() - pos {
            return Err(AvcError::NalOverrun {
                len,
                remaining: data.len() - pos,
            });
        }
        if len > 0 && data[pos] & 0x1f == 5 {
            idr = true;
        }
        pos += len;
        count += 1;
    }
    if count == 0 {
        return Err(AvcError::EmptyFrame);
    }
    Ok(idr)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// avcC from `ffmpeg -f lavfi -i testsrc2=size=320x240:rate=30 -c:v libx264 -f flv`
    /// (High profile, level 1.3, with the High-profile extension bytes).
    pub const AVCC_320X240: &[u8] = include_bytes!("../../fixtures/avcc-320x240-high.bin");

    #[test]
    fn parses_profile_level_and_resolution() {
        let cfg = AvcConfig::parse(Bytes::from_static(AVCC_320X240)).unwrap();
        assert_eq!((cfg.profile, cfg.level, cfg.nal_length_size), (100, 13, 4));
        assert_eq!((cfg.width, cfg.height), (320, 240));
        assert_eq!(cfg.codec_string(), "avc1.64000d");
        assert_eq!((cfg.sps.len(), cfg.pps.len()), (1, 1));
    }

    #[test]
    fn rejects_truncated_records() {
        for cut in [0, 3, 8, 20, 35, 38] {
            let r = AvcConfig::parse(Bytes::copy_from_slice(&AVCC_320X240[..cut]));
            assert!(r.is_err(), "cut at {cut} must fail");
        }
    }

    #[test]
    fn scan_frame_finds_idr_and_rejects_overruns() {
        let idr = [0, 0, 0, 2, 0x65, 0x88, 0, 0, 0, 1, 0x06];
        assert_eq!(scan_frame(&idr, 4), Ok(true));
        let p = [0, 0, 0, 2, 0x41, 0x9a];
        assert_eq!(scan_frame(&p, 4), Ok(false));
        let broken = [0, 0, 0, 9, 0x41, 0x9a];
        assert!(matches!(
            scan_frame(&broken, 4),
            Err(AvcError::NalOverrun { .. })
        ));
        assert_eq!(scan_frame(&[], 4), Err(AvcError::EmptyFrame));
        assert!(scan_frame(&[0, 0], 4).is_err());
    }
}
