//! Pure pieces of a PES packet and of the TS packet that carries its end.

use bytes::Bytes;

/// Whether an adaptation field (its length byte first) ends in stuffing:
/// the muxer put less payload in the packet than fits. A PES must end in a
/// packet of its own, so muxers stuff its last packet (and, ffmpeg and OBS
/// among them, no other).
pub fn stuffed(af: &[u8]) -> bool {
    let Some((&len, rest)) = af.split_first() else {
        return false;
    };
    if len == 0 {
        return true; // a length of 0 is itself one byte of stuffing
    }
    let Some((&flags, _)) = rest.split_first() else {
        return false;
    };
    let mut fields = 1;
    if flags & 0x10 != 0 {
        fields += 6; // PCR
    }
    if flags & 0x08 != 0 {
        fields += 6; // OPCR
    }
    if flags & 0x04 != 0 {
        fields += 1; // splice countdown
    }
    if flags & 0x02 != 0 {
        fields += 1 + rest.get(fields).copied().unwrap_or(0) as usize; // private data
    }
    if flags & 0x01 != 0 {
        fields += 1 + rest.get(fields).copied().unwrap_or(0) as usize; // extension
    }
    (len as usize) > fields
}

/// (PTS, DTS, payload) of a whole PES packet; `None` if its header is broken.
pub fn parse_pes(raw: &Bytes) -> Option<(Option<u64>, Option<u64>, Bytes)> {
    if raw.len() < 9 || raw[0..3] != [0, 0, 1] {
        return None;
    }
    let header_len = raw[8] as usize;
    let start = 9 + header_len;
    if start > raw.len() {
        return None;
    }
    let flags = raw[7] >> 6;
    let pts = if flags & 2 != 0 {
        Some(timestamp(raw.get(9..14)?))
    } else {
        None
    };
    let dts = if flags == 3 {
        Some(timestamp(raw.get(14..19)?))
    } else {
        None
    };
    let declared = u16::from_be_bytes([raw[4], raw[5]]) as usize;
    let end = if declared > 0 {
        (6 + declared).min(raw.len())
    } else {
        raw.len()
    };
    if end < start {
        return None;
    }
    Some((pts, dts, raw.slice(start..end)))
}

/// A 33-bit PTS/DTS from its 5-byte field (13818-1 2.4.3.7).
fn timestamp(b: &[u8]) -> u64 {
    ((b[0] as u64 >> 1) & 0x07) << 30
        | (b[1] as u64) << 22
        | ((b[2] as u64) >> 1) << 15
        | (b[3] as u64) << 7
        | (b[4] as u64) >> 1
}
