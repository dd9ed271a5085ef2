//! H.264 Annex B (start-code delimited NAL units), as encoders and MPEG-TS
//! carry it, converted to the MP4 forms: length-prefixed (AVCC) frames and an
//! avcC record built from the SPS and PPS.
//!
//! Written here rather than taken from a crate: h264-reader parses NAL
//! payloads but does not build avcC records or AVCC frames.

use bytes::{BufMut, Bytes, BytesMut};

use super::avc::{AvcConfig, AvcError};

pub const NAL_IDR: u8 = 5;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_AUD: u8 = 9;

/// The NAL units of an Annex B buffer (start codes of 3 or 4 bytes), without
/// their start codes. Bytes before the first start code are ignored.
pub fn nal_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |&n| n - 3);
        // A 4-byte start code (or trailing zero bytes) leaves zeros before the next one.
        while end > s && data[end - 1] == 0 {
            end -= 1;
        }
        if end > s {
            out.push(&data[s..end]);
        }
    }
    out
}

pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// One access unit in AVCC form (4-byte lengths), without parameter sets and
/// access unit delimiters (they live in the avcC record); and whether it holds an IDR slice.
pub fn to_avcc(annexb: &[u8]) -> (Bytes, bool) {
    let mut out = BytesMut::with_capacity(annexb.len() + 16);
    let mut idr = false;
    for nal in nal_units(annexb) {
        match nal_type(nal) {
            NAL_SPS | NAL_PPS | NAL_AUD => continue,
            NAL_IDR => idr = true,
            _ => {}
        }
        out.put_u32(nal.len() as u32);
        out.put_slice(nal);
    }
    (out.freeze(), idr)
}

/// An avcC record (ISO/IEC 14496-15 5.3.3.1) from the SPS and PPS found in
/// Annex B data (an encoder's extradata or a keyframe), parsed back into an
/// [`AvcConfig`] so width, height and profile come from the encoded SPS.
pub fn avc_config(annexb: &[u8]) -> Result<AvcConfig, AvcError> {
    let nals = nal_units(annexb);
    let sps: Vec<&[u8]> = nals
        .iter()
        .copied()
        .filter(|n| nal_type(n) == NAL_SPS)
        .collect();
    let pps: Vec<&[u8]> = nals
        .iter()
        .copied()
        .filter(|n| nal_type(n) == NAL_PPS)
        .collect();
    let first = sps.first().ok_or(AvcError::NoSps)?;
    if first.len() < 4 {
        return Err(AvcError::Truncated);
    }
    let mut r = BytesMut::new();
    r.put_u8(1);
    r.put_slice(&first[1..4]); // profile, compatibility, level
    r.put_u8(0xfc | 3); // 4-byte NAL lengths
    r.put_u8(0xe0 | sps.len().min(31) as u8);
    for s in sps.iter().take(31) {
        r.put_u16(s.len() as u16);
        r.put_slice(s);
    }
    r.put_u8(pps.len().min(255) as u8);
    for p in pps.iter().take(255) {
        r.put_u16(p.len() as u16);
        r.put_slice(p);
    }
    AvcConfig::parse(r.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::avc::tests::AVCC_320X240;

    /// The SPS and PPS of the test avcC record, as Annex B.
    fn annexb_params() -> Vec<u8> {
        let cfg = AvcConfig::parse(Bytes::from_static(AVCC_320X240)).unwrap();
        let mut out = Vec::new();
        for n in cfg.sps.iter().chain(cfg.pps.iter()) {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(n);
        }
        out
    }

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5,
        ];
        let nals = nal_units(&data);
        assert_eq!(
            nals,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4, 5][..]]
        );
    }

    #[test]
    fn avcc_frame_drops_parameter_sets_and_finds_the_idr() {
        let data = [
            0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x65, 7, 8,
        ];
        let (avcc, idr) = to_avcc(&data);
        assert!(idr);
        assert_eq!(&avcc[..], &[0, 0, 0, 3, 0x65, 7, 8]);
        let (_, idr) = to_avcc(&[0, 0, 1, 0x41, 9]);
        assert!(!idr);
    }

    #[test]
    fn avcc_record_round_trips_the_sps() {
        let cfg = avc_config(&annexb_params()).unwrap();
        let original = AvcConfig::parse(Bytes::from_static(AVCC_320X240)).unwrap();
        assert_eq!((cfg.width, cfg.height), (320, 240));
        assert_eq!(cfg.codec_string(), original.codec_string());
        assert_eq!(cfg.sps, original.sps);
        assert_eq!(cfg.pps, original.pps);
        assert_eq!(cfg.nal_length_size, 4);
    }

    #[test]
    fn no_sps_is_an_error() {
        assert_eq!(avc_config(&[0, 0, 1, 0x68, 1]), Err(AvcError::NoSps));
    }
}
