//! MPEG-TS (ISO/IEC 13818-1) packets → PES packets of the program's H.264
//! and AAC streams. Sans-IO: bytes in (any chunking), events out.
//!
//! Our own rather than a crate's: what ingest needs is small (PAT, PMT, PES
//! reassembly) but must be bounded and must survive garbage, lost packets
//! and resyncs while counting each; `mpeg2ts-reader`'s filter-switch macros
//! and callback consumers would be more code than the demux itself.
//!
//! - Packets are found by their 0x47 sync byte; bytes between packets are
//!   skipped (and counted) until two sync bytes 188 apart line up again.
//! - PAT and PMT sections are CRC-checked, so garbage cannot invent a program.
//! - A continuity-counter jump or a transport error drops the PES it damaged
//!   (counted); the next PES starts clean.

use std::collections::HashMap;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

pub const PACKET: usize = 188;
const SYNC: u8 = 0x47;
const PAT_PID: u16 = 0;
/// A PSI section is at most 1024 bytes (13818-1 2.4.4.11, section_length ≤ 1021).
const MAX_SECTION: usize = 1024;
/// A PES larger than this is not a video frame we take: dropped, counted.
pub const MAX_PES: usize = 8 * 1024 * 1024;

const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_MPEG_2);

/// The elementary stream types castline takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// stream_type 0x1B.
    H264,
    /// stream_type 0x0F, ADTS framing.
    Aac,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TsError {
    #[error("the program carries no H.264 or AAC stream (stream types {0:?}); castline takes H.264 and AAC")]
    NoSupportedStream(Vec<u8>),
}

#[derive(Debug, PartialEq)]
pub enum TsEvent {
    /// The program's streams, when the PMT is first seen or changes.
    Program {
        video: bool,
        audio: bool,
    },
    Pes(Pes),
}

#[derive(Debug, PartialEq)]
pub struct Pes {
    pub kind: StreamKind,
    /// 33-bit 90 kHz timestamps as sent.
    pub pts: Option<u64>,
    pub dts: Option<u64>,
    pub data: Bytes,
    /// When the input that carried its last packet arrived (a video PES has
    /// no length: it is known complete only when the next one starts).
    pub arrived: Instant,
}

/// What the demuxer skipped or repaired, for metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TsCounts {
    pub packets: u64,
    pub continuity_errors: u64,
    pub transport_errors: u64,
    /// Bytes skipped looking for a sync byte.
    pub resync_bytes: u64,
    /// PES packets dropped: damaged, oversized or with a broken header.
    pub dropped_pes: u64,
    /// Payload that followed a stuffed packet in the same PES (the early end
    /// was wrong once: it is off for that stream from then on).
    pub early_end_misses: u64,
}

struct Es {
    kind: StreamKind,
    cc: Option<u8>,
    buf: BytesMut,
    /// A PES is being gathered (its start was seen and nothing broke it).
    open: bool,
    /// When its newest payload arrived.
    last_at: Option<Instant>,
    /// A PES without a length is taken as complete at the packet that pads
    /// its payload with stuffing (see `stuffed`), rather than when the next
    /// one starts, a frame later. Turned off for good if a muxer proves it
    /// wrong (payload after such a packet, before the next PES).
    early_end: bool,
    /// The last PES was completed that way.
    ended_early: bool,
}

#[derive(Default)]
struct Section {
    buf: Vec<u8>,
}

pub struct TsDemuxer {
    carry: Vec<u8>,
    pmt_pid: Option<u16>,
    pmt_version: Option<(u16, u8)>,
    sections: HashMap<u16, Section>,
    streams: HashMap<u16, Es>,
    pub counts: TsCounts,
}

impl Default for TsDemuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl TsDemuxer {
    pub fn new() -> Self {
        TsDemuxer {
            carry: Vec::new(),
            pmt_pid: None,
            pmt_version: None,
            sections: HashMap::new(),
            streams: HashMap::new(),
            counts: TsCounts::default(),
        }
    }

    /// Feed bytes (any amount; SRT carries 1 to 7 packets per message) that
    /// arrived at `at`.
    pub fn push(&mut self, data: &[u8], at: Instant) -> Result<Vec<TsEvent>, TsError> {
        let mut out = Vec::new();
        let owned;
        let input: &[u8] = if self.carry.is_empty() {
            data
        } else {
            let mut v = std::mem::take(&mut self.carry);
            v.extend_from_slice(data);
            owned = v;
            &owned
        };
        let mut i = 0;
        while input.len() - i >= PACKET {
            if input[i] != SYNC || !Self::aligned(input, i) {
                i += 1;
                self.counts.resync_bytes += 1;
                continue;
            }
            self.packet(&input[i..i + PACKET], at, &mut out)?;
            i += PACKET;
        }
        self.carry = input[i..].to_vec();
        Ok(out)
    }

    /// A sync byte at `i` is trusted if the next packet's (when we have it)
    /// is there too.
    fn aligned(input: &[u8], i: usize) -> bool {
        input.get(i + PACKET).is_none_or(|&b| b == SYNC)
    }

    /// At the end of the input: the PES still being gathered.
    pub fn finish(&mut self) -> Vec<TsEvent> {
        let mut out = Vec::new();
        let mut pids: Vec<u16> = self.streams.keys().copied().collect();
        pids.sort_unstable();
        for pid in pids {
            self.complete(pid, &mut out);
        }
        out
    }

    fn packet(&mut self, p: &[u8], at: Instant, out: &mut Vec<TsEvent>) -> Result<(), TsError> {
        self.counts.packets += 1;
        let tei = p[1] & 0x80 != 0;
        let pusi = p[1] & 0x40 != 0;
        let pid = u16::from_be_bytes([p[1] & 0x1f, p[2]]);
        let afc = (p[3] >> 4) & 3;
        let cc = p[3] & 0x0f;
        let mut start = 4;
        let mut discontinuity = false;
        let mut stuffing = false;
        if afc & 2 != 0 {
            let len = p[4] as usize;
            if len > 0 {
                discontinuity = p[5] & 0x80 != 0;
            }
            start = 5 + len;
            stuffing = p.get(4..start).is_some_and(stuffed);
        }
        if tei {
            self.counts.transport_errors += 1;
            if let Some(es) = self.streams.get_mut(&pid) {
                es.open = false;
                es.buf.clear();
                es.cc = None;
            }
            return Ok(());
        }
        if afc & 1 == 0 || start > PACKET {
            return Ok(()); // no payload (or a broken adaptation field)
        }
        let payload = &p[start..];
        if pid == PAT_PID || Some(pid) == self.pmt_pid {
            return self.psi(pid, pusi, payload, out);
        }
        if !self.streams.contains_key(&pid) {
            return Ok(()); // not a stream of ours
        }
        if let Some(es) = self.streams.get_mut(&pid) {
            match es.cc {
                Some(last) if !discontinuity && cc == last => return Ok(()), // a duplicate
                Some(last) if !discontinuity && cc != (last + 1) & 0x0f => {
                    self.counts.continuity_errors += 1;
                    if es.open {
                        self.counts.dropped_pes += 1;
                    }
                    es.open = false;
                    es.buf.clear();
                }
                _ => {}
            }
            es.cc = Some(cc);
        }
        if pusi {
            self.complete(pid, out);
            if let Some(es) = self.streams.get_mut(&pid) {
                es.open = true;
                es.ended_early = false;
                es.buf.clear();
            }
        }
        let Some(es) = self.streams.get_mut(&pid) else {
            return Ok(());
        };
        if !es.open {
            if std::mem::take(&mut es.ended_early) {
                // More of the PES we completed at its stuffed packet: this
                // muxer stuffs mid-PES. Count it, and wait for PES starts from now on.
                es.early_end = false;
                self.counts.early_end_misses += 1;
                self.counts.dropped_pes += 1;
            }
            return Ok(()); // waiting for the next PES start
        }
        if es.buf.len() + payload.len() > MAX_PES {
            self.counts.dropped_pes += 1;
            es.open = false;
            es.buf.clear();
            return Ok(());
        }
        es.buf.extend_from_slice(payload);
        es.last_at = Some(at);
        // A PES with a length is complete when it is all here (audio, usually):
        // no need to wait for the next one to start.
        if es.buf.len() >= 6 {
            let declared = u16::from_be_bytes([es.buf[4], es.buf[5]]) as usize;
            if declared > 0 && es.buf.len() >= 6 + declared {
                self.complete(pid, out);
            } else if declared == 0 && stuffing && es.early_end {
                es.ended_early = true;
                self.complete(pid, out);
            }
        }
        Ok(())
    }

    /// The PES gathered on `pid`, if any, as an event.
    fn complete(&mut self, pid: u16, out: &mut Vec<TsEvent>) {
        let Some(es) = self.streams.get_mut(&pid) else {
            return;
        };
        if !std::mem::take(&mut es.open) {
            return;
        }
        let raw = es.buf.split().freeze();
        let arrived = es.last_at.take();
        match (parse_pes(&raw), arrived) {
            (Some((pts, dts, data)), Some(arrived)) => out.push(TsEvent::Pes(Pes {
                kind: es.kind,
                pts,
                dts,
                data,
                arrived,
            })),
            _ => self.counts.dropped_pes += 1,
        }
    }

    fn psi(
        &mut self,
        pid: u16,
        pusi: bool,
        payload: &[u8],
        out: &mut Vec<TsEvent>,
    ) -> Result<(), TsError> {
        let sec = self.sections.entry(pid).or_default();
        if pusi {
            let Some((&pointer, rest)) = payload.split_first() else {
                return Ok(());
            };
            let Some(body) = rest.get(pointer as usize..) else {
                sec.buf.clear();
                return Ok(());
            };
            sec.buf.clear();
            sec.buf.extend_from_slice(body);
        } else if !sec.buf.is_empty() {
            sec.buf.extend_from_slice(payload);
        }
        if sec.buf.len() > MAX_SECTION + PACKET {
            sec.buf.clear();
            return Ok(());
        }
        if sec.buf.len() < 3 {
            return Ok(());
        }
        let len = 3 + (u16::from_be_bytes([sec.buf[1] & 0x0f, sec.buf[2]]) as usize);
        if len > MAX_SECTION {
            sec.buf.clear();
            return Ok(());
        }
        if sec.buf.len() < len {
            return Ok(()); // continues in the next packet
        }
        let section = std::mem::take(&mut sec.buf);
        let section = &section[..len];
        if len < 12 || CRC.checksum(section) != 0 {
            return Ok(()); // a damaged or invented section: wait for the next copy
        }
        match section[0] {
            0x00 if pid == PAT_PID => self.pat(section),
            0x02 => return self.pmt(section, out),
            _ => {}
        }
        Ok(())
    }

    fn pat(&mut self, s: &[u8]) {
        // Programs from byte 8 to the CRC; the first with a PMT (program ≠ 0).
        for e in s[8..s.len() - 4].chunks_exact(4) {
            let program = u16::from_be_bytes([e[0], e[1]]);
            let pmt = u16::from_be_bytes([e[2] & 0x1f, e[3]]);
            if program != 0 {
                if self.pmt_pid != Some(pmt) {
                    self.pmt_pid = Some(pmt);
                    self.pmt_version = None;
                }
                return;
            }
        }
    }

    fn pmt(&mut self, s: &[u8], out: &mut Vec<TsEvent>) -> Result<(), TsError> {
        let program = u16::from_be_bytes([s[3], s[4]]);
        let version = (s[5] >> 1) & 0x1f;
        if self.pmt_version == Some((program, version)) {
            return Ok(()); // the PMT repeats ~10 times a second
        }
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
        self.pmt_version = Some((program, version));
        let mut kept: HashMap<u16, Es> = HashMap::new();
        for (pid, kind) in [(video, StreamKind::H264), (audio, StreamKind::Aac)] {
            let Some(pid) = pid else { continue };
            let es = match self.streams.remove(&pid) {
                Some(es) if es.kind == kind => es,
                _ => Es {
                    kind,
                    cc: None,
                    buf: BytesMut::new(),
                    open: false,
                    last_at: None,
                    early_end: true,
                    ended_early: false,
                },
            };
            kept.insert(pid, es);
        }
        self.streams = kept;
        out.push(TsEvent::Program {
            video: video.is_some(),
            audio: audio.is_some(),
        });
        Ok(())
    }
}

/// Whether an adaptation field (its length byte first) ends in stuffing:
/// the muxer put less payload in the packet than fits. A PES must end in a
/// packet of its own, so muxers stuff its last packet (and, ffmpeg and OBS
/// among them, no other).
fn stuffed(af: &[u8]) -> bool {
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
fn parse_pes(raw: &Bytes) -> Option<(Option<u64>, Option<u64>, Bytes)> {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small TS writer for tests: PAT, PMT and PES split into packets.
    pub struct Writer {
        cc: HashMap<u16, u8>,
    }

    pub const VIDEO_PID: u16 = 0x100;
    pub const AUDIO_PID: u16 = 0x101;
    const PMT_PID: u16 = 0x1000;

    impl Writer {
        pub fn new() -> Self {
            Writer { cc: HashMap::new() }
        }

        fn next_cc(&mut self, pid: u16) -> u8 {
            let c = self.cc.entry(pid).or_insert(15);
            *c = (*c + 1) & 0x0f;
            *c
        }

        /// Packets carrying `payload` on `pid` (stuffing the last one).
        pub fn packets(&mut self, pid: u16, payload: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            let mut first = true;
            let mut rest = payload;
            while first || !rest.is_empty() {
                let cc = self.next_cc(pid);
                let mut p = vec![SYNC, ((first as u8) << 6) | (pid >> 8) as u8, pid as u8];
                let room = PACKET - 4;
                if rest.len() >= room {
                    p.push(0x10 | cc);
                    p.extend_from_slice(&rest[..room]);
                    rest = &rest[room..];
                } else {
                    // Adaptation field of stuffing before the payload.
                    let af = room - rest.len(); // bytes incl. the length byte
                    p.push(0x30 | cc);
                    p.push((af - 1) as u8);
                    if af > 1 {
                        p.push(0);
                        p.extend(std::iter::repeat_n(0xff, af - 2));
                    }
                    p.extend_from_slice(rest);
                    rest = &[];
                }
                assert_eq!(p.len(), PACKET);
                out.extend(p);
                first = false;
            }
            out
        }

        fn section(&mut self, pid: u16, body: &[u8]) -> Vec<u8> {
            let mut s = body.to_vec();
            let crc = CRC.checksum(&s);
            s.extend_from_slice(&crc.to_be_bytes());
            let mut payload = vec![0u8]; // pointer field
            payload.extend(s);
            self.packets(pid, &payload)
        }

        pub fn pat(&mut self) -> Vec<u8> {
            let body = [
                0x00,
                0xb0,
                13,
                0,
                1,
                0xc1,
                0,
                0,
                0,
                1,
                0xe0 | (PMT_PID >> 8) as u8,
                PMT_PID as u8,
            ];
            self.section(PAT_PID, &body)
        }

        /// A PMT with the given (stream_type, pid) entries.
        pub fn pmt(&mut self, streams: &[(u8, u16)]) -> Vec<u8> {
            let len = 9 + 5 * streams.len() + 4;
            let mut body = vec![
                0x02,
                0xb0 | (len >> 8) as u8,
                len as u8,
                0,
                1,
                0xc1,
                0,
                0,
                0xe1,
                0x00,
                0xf0,
                0,
            ];
            for &(t, pid) in streams {
                body.extend_from_slice(&[t, 0xe0 | (pid >> 8) as u8, pid as u8, 0xf0, 0]);
            }
            self.section(PMT_PID, &body)
        }

        pub fn pes(
            &mut self,
            pid: u16,
            pts: u64,
            dts: Option<u64>,
            data: &[u8],
            sized: bool,
        ) -> Vec<u8> {
            let hdr = if dts.is_some() { 10 } else { 5 };
            let mut pes = vec![0, 0, 1, if pid == AUDIO_PID { 0xc0 } else { 0xe0 }];
            let len = if sized { 3 + hdr + data.len() } else { 0 };
            pes.extend_from_slice(&(len as u16).to_be_bytes());
            pes.push(0x80);
            pes.push(if dts.is_some() { 0xc0 } else { 0x80 });
            pes.push(hdr as u8);
            let flag = if dts.is_some() { 3 } else { 2 };
            pes.extend(stamp(flag, pts));
            if let Some(d) = dts {
                pes.extend(stamp(1, d));
            }
            pes.extend_from_slice(data);
            self.packets(pid, &pes)
        }
    }

    fn stamp(prefix: u8, t: u64) -> [u8; 5] {
        [
            (prefix << 4) | (((t >> 30) as u8 & 7) << 1) | 1,
            (t >> 22) as u8,
            (((t >> 15) as u8) << 1) | 1,
            (t >> 7) as u8,
            ((t as u8) << 1) | 1,
        ]
    }

    /// One instant for every input, so events compare equal across chunkings.
    fn t0() -> Instant {
        use std::sync::OnceLock;
        static T: OnceLock<Instant> = OnceLock::new();
        *T.get_or_init(Instant::now)
    }

    fn pes_of(ev: &[TsEvent]) -> Vec<&Pes> {
        ev.iter()
            .filter_map(|e| match e {
                TsEvent::Pes(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    fn program(w: &mut Writer) -> Vec<u8> {
        let mut v = w.pat();
        v.extend(w.pmt(&[(0x1b, VIDEO_PID), (0x0f, AUDIO_PID)]));
        v
    }

    #[test]
    fn pat_pmt_then_pes_across_packets_with_timestamps() {
        let mut w = Writer::new();
        let mut input = program(&mut w);
        let frame: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        input.extend(w.pes(VIDEO_PID, 8_589_934_000, Some(8_589_933_000), &frame, false));
        input.extend(w.pes(AUDIO_PID, 12_345, None, &[0xff, 0xf1, 1, 2], true));
        let mut d = TsDemuxer::new();
        let ev = d.push(&input, t0()).unwrap();
        assert_eq!(
            ev[0],
            TsEvent::Program {
                video: true,
                audio: true
            }
        );
        // Audio has a length, video (no length) ends in a stuffed packet:
        // both are complete without waiting for the next PES.
        let p = pes_of(&ev);
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[1].kind, p[1].pts, p[1].dts),
            (StreamKind::Aac, Some(12_345), None)
        );
        assert!(d.finish().is_empty());
        let v = &p[..1];
        assert_eq!(v[0].kind, StreamKind::H264);
        assert_eq!(v[0].pts, Some(8_589_934_000));
        assert_eq!(v[0].dts, Some(8_589_933_000));
        assert_eq!(&v[0].data[..], &frame[..]);
        assert_eq!(d.counts.continuity_errors, 0);
    }

    #[test]
    fn any_chunking_gives_the_same_events() {
        let mut w = Writer::new();
        let mut input = program(&mut w);
        for i in 0..5u64 {
            input.extend(w.pes(
                VIDEO_PID,
                3000 * i + 6000,
                Some(3000 * i),
                &[i as u8; 500],
                false,
            ));
        }
        let whole = {
            let mut d = TsDemuxer::new();
            let mut e = d.push(&input, t0()).unwrap();
            e.extend(d.finish());
            e
        };
        for chunk in [1, 7, 187, 189, 1316] {
            let mut d = TsDemuxer::new();
            let mut e = Vec::new();
            for c in input.chunks(chunk) {
                e.extend(d.push(c, t0()).unwrap());
            }
            e.extend(d.finish());
            assert_eq!(e, whole, "chunks of {chunk}");
        }
        assert_eq!(pes_of(&whole).len(), 5);
    }

    #[test]
    fn a_lost_packet_drops_its_pes_and_is_counted() {
        let mut w = Writer::new();
        let mut input = program(&mut w);
        let first = w.pes(VIDEO_PID, 0, None, &[1; 600], false); // 4 packets
        input.extend(&first[..PACKET]);
        input.extend(&first[2 * PACKET..]); // the second packet is lost
        input.extend(w.pes(VIDEO_PID, 3000, None, &[2; 100], false));
        let mut d = TsDemuxer::new();
        let mut ev = d.push(&input, t0()).unwrap();
        ev.extend(d.finish());
        let p = pes_of(&ev);
        assert_eq!(
            p.len(),
            1,
            "the damaged PES is dropped, the next one survives"
        );
        assert_eq!(p[0].pts, Some(3000));
        assert_eq!(d.counts.continuity_errors, 1);
        assert_eq!(d.counts.dropped_pes, 1);
    }

    #[test]
    fn garbage_between_packets_is_skipped_and_sync_found_again() {
        let mut w = Writer::new();
        let mut input = program(&mut w);
        input.extend([0x47, 1, 2, 3, 0x47, 0x47, 9, 9, 9]);
        input.extend(w.pes(AUDIO_PID, 90, None, &[0xff, 0xf1, 5], true));
        let mut d = TsDemuxer::new();
        let ev = d.push(&input, t0()).unwrap();
        assert_eq!(pes_of(&ev).len(), 1);
        assert_eq!(d.counts.resync_bytes, 9);
    }

    #[test]
    fn a_video_pes_ends_at_its_stuffed_packet_not_a_frame_later() {
        let mut w = Writer::new();
        let mut input = program(&mut w);
        input.extend(w.pes(VIDEO_PID, 3000, None, &[7; 400], false));
        let mut d = TsDemuxer::new();
        let ev = d.push(&input, t0()).unwrap();
        let p = pes_of(&ev);
        assert_eq!(p.len(), 1, "complete without waiting for the next PES");
        assert_eq!(p[0].data.len(), 400);
        // A muxer that stuffs mid-PES is caught once, then waited for.
        let mut w2 = Writer::new();
        let mut odd = program(&mut w2);
        let pes = w2.pes(VIDEO_PID, 3000, None, &[1; 100], false);
        let more = w2.packets(VIDEO_PID, &[2; 50]);
        odd.extend(pes);
        let mut tail = more;
        tail[1] &= !0x40; // a continuation: no PUSI
        odd.extend(tail);
        odd.extend(w2.pes(VIDEO_PID, 6000, None, &[3; 100], false));
        let mut d = TsDemuxer::new();
        let mut ev = d.push(&odd, t0()).unwrap();
        ev.extend(d.finish());
        assert_eq!(d.counts.early_end_misses, 1);
        let p = pes_of(&ev);
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].pts, Some(6000));
    }

    #[test]
    fn stuffing_is_told_from_a_pcr() {
        assert!(stuffed(&[0]));
        assert!(stuffed(&[3, 0, 0xff, 0xff]));
        assert!(!stuffed(&[7, 0x10, 1, 2, 3, 4, 5, 6]), "a PCR alone");
        assert!(stuffed(&[9, 0x10, 1, 2, 3, 4, 5, 6, 0xff, 0xff]));
    }

    #[test]
    fn a_pmt_without_h264_or_aac_is_refused() {
        let mut w = Writer::new();
        let mut input = w.pat();
        input.extend(w.pmt(&[(0x24, VIDEO_PID), (0x81, AUDIO_PID)])); // HEVC, AC-3
        let mut d = TsDemuxer::new();
        assert_eq!(
            d.push(&input, t0()),
            Err(TsError::NoSupportedStream(vec![0x24, 0x81]))
        );
    }

    #[test]
    fn a_section_with_a_bad_crc_is_ignored() {
        let mut w = Writer::new();
        let mut input = w.pat();
        let mut pmt = w.pmt(&[(0x1b, VIDEO_PID)]);
        pmt[PACKET - 8] ^= 0xff; // inside the section (it ends the packet)
        input.extend(pmt);
        let mut d = TsDemuxer::new();
        assert!(d.push(&input, t0()).unwrap().is_empty());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 0x1234_5678u32;
        let mut d = TsDemuxer::new();
        for _ in 0..200 {
            let chunk: Vec<u8> = (0..1316)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    if seed % 7 == 0 {
                        SYNC
                    } else {
                        seed as u8
                    }
                })
                .collect();
            let _ = d.push(&chunk, t0());
        }
        let _ = d.finish();
    }
}
