//! PSI sections (13818-1 2.4.4): gathered across TS packets, CRC-checked
//! (so garbage cannot invent a program), and the two tables ingest reads,
//! PAT and PMT. Pure.

use super::{TsError, PACKET};

/// A PSI section is at most 1024 bytes (13818-1 2.4.4.11, section_length ≤ 1021).
const MAX_SECTION: usize = 1024;

pub(super) const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_MPEG_2);

/// One PID's section being gathered.
#[derive(Default)]
pub struct SectionBuffer {
    buf: Vec<u8>,
}

impl SectionBuffer {
    /// Add a packet's payload; returns a whole section whose CRC checks out.
    /// A damaged or oversized one is dropped: the tables repeat.
    pub fn push(&mut self, pusi: bool, payload: &[u8]) -> Option<Vec<u8>> {
        if pusi {
            let (&pointer, rest) = payload.split_first()?;
            self.buf.clear();
            self.buf.extend_from_slice(rest.get(pointer as usize..)?);
        } else if !self.buf.is_empty() {
            self.buf.extend_from_slice(payload);
        }
        if self.buf.len() > MAX_SECTION + PACKET {
            self.buf.clear();
            return None;
        }
        if self.buf.len() < 3 {
            return None;
        }
        let len = 3 + (u16::from_be_bytes([self.buf[1] & 0x0f, self.buf[2]]) as usize);
        if len > MAX_SECTION {
            self.buf.clear();
            return None;
        }
        if self.buf.len() < len {
            return None; // continues in the next packet
        }
        let mut section = std::mem::take(&mut self.buf);
        section.truncate(len);
        (len >= 12 && CRC.checksum(&section) == 0).then_some(section)
    }
}

/// The PID of the first program's PMT in a PAT section (program 0 is the
/// network PID).
pub fn pat_pmt_pid(s: &[u8]) -> Option<u16> {
    s[8..s.len() - 4].chunks_exact(4).find_map(|e| {
        let program = u16::from_be_bytes([e[0], e[1]]);
        (program != 0).then(|| u16::from_be_bytes([e[2] & 0x1f, e[3]]))
    })
}

/// What a PMT says castline can take.
pub struct Pmt {
    pub program: u16,
    pub version: u8,
    /// The first H.264 (stream_type 0x1B) and ADTS AAC (0x0F) streams.
    pub video: Option<u16>,
    pub audio: Option<u16>,
}

/// A PMT section (at least 12 bytes, CRC checked by [`SectionBuffer`]).
pub fn parse_pmt(s: &[u8]) -> Result<Pmt, TsError> {
    let program = u16::from_be_bytes([s[3], s[4]]);
    let version = (s[5] >> 1) & 0x1f;
    let info_len = u16::from_be_bytes([s[10] & 0x0f, s[11]]) as usize;
    let end = s.len() - 4;
    let mut i = 12 + info_len;
    let (mut video, mut audio) = (None, None);
    let mut others = Vec::new();
    while i + 5 <= end {
        let stream_type = s[i];
        let pid = u16::from_be_bytes([s[i + 1] & 0x1f, s[i + 2]]);
        let es_info = u16::from_be_bytes([s[i + 3] & 0x0f, s[i + 4]]) as usize;
        match stream_type {
            0x1b if video.is_none() => video = Some(pid),
            0x0f if audio.is_none() => audio = Some(pid),
            t => others.push(t),
        }
        i += 5 + es_info;
    }
    if video.is_none() && audio.is_none() {
        return Err(TsError::NoSupportedStream(others));
    }
    Ok(Pmt {
        program,
        version,
        video,
        audio,
    })
}
