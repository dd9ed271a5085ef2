//! MPEG-TS (ISO/IEC 13818-1) packets → PES packets of the program's H.264
//! and AAC streams. Sans-IO: bytes in (any chunking), events out.
//!
//! Our own rather than a crate's: what ingest needs is small (PAT, PMT, PES
//! reassembly) but must be bounded and must survive garbage, lost packets
//! and resyncs while counting each; `mpeg2ts-reader`'s filter-switch macros
//! and callback consumers would be more code than the demux itself.
//!
//! The packet layer and PES reassembly are here; `psi` gathers and reads
//! PAT/PMT sections, `pes` parses a whole PES and tells a PES's last packet.
//!
//! - Packets are found by their 0x47 sync byte; bytes between packets are
//!   skipped (and counted) until two sync bytes 188 apart line up again.
//! - PAT and PMT sections are CRC-checked, so garbage cannot invent a program.
//! - A continuity-counter jump or a transport error drops the PES it damaged
//!   (counted); the next PES starts clean.

use std::collections::HashMap;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

mod pes;
mod psi;

use pes::{parse_pes, stuffed};

pub const PACKET: usize = 188;
const SYNC: u8 = 0x47;
const PAT_PID: u16 = 0;
/// A PES larger than this is not a video frame we take: dropped, counted.
pub const MAX_PES: usize = 8 * 1024 * 1024;

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
    /// PES the input ended inside, not known complete: dropped rather than
    /// served cut short (see [`TsDemuxer::finish`]).
    pub unfinished_pes: u64,
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
    /// The newest packet of the open PES was padded with stuffing (what a
    /// muxer does to a PES's last packet unless its payload fills it).
    last_stuffed: bool,
}

impl Es {
    /// Whether the open PES is known to be all here: its declared length
    /// gathered, or (no length) its newest packet stuffed as a last one is.
    fn known_complete(&self) -> bool {
        match self.buf.get(4..6) {
            Some(len) => match u16::from_be_bytes([len[0], len[1]]) as usize {
                0 => self.last_stuffed,
                declared => self.buf.len() >= 6 + declared,
            },
            None => false,
        }
    }
}

pub struct TsDemuxer {
    carry: Vec<u8>,
    pmt_pid: Option<u16>,
    pmt_version: Option<(u16, u8)>,
    sections: HashMap<u16, psi::SectionBuffer>,
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
    ///
    /// A PES still open here is taken only if it is known complete: an SRT
    /// caller that closes without lingering may leave its last packets
    /// unrepaired, and a frame cut short would be served as a damaged picture
    /// (seen with ffmpeg's SRT output under loss). Counted in
    /// `unfinished_pes`; the rare PES whose payload exactly fills its last
    /// packet is dropped too, being indistinguishable from a cut one.
    pub fn finish(&mut self) -> Vec<TsEvent> {
        let mut out = Vec::new();
        let mut pids: Vec<u16> = self.streams.keys().copied().collect();
        pids.sort_unstable();
        for pid in pids {
            if let Some(es) = self.streams.get_mut(&pid) {
                if es.open && !es.known_complete() {
                    es.open = false;
                    es.buf.clear();
                    self.counts.unfinished_pes += 1;
                    continue;
                }
            }
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
        es.last_stuffed = stuffing;
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
        let Some(section) = self.sections.entry(pid).or_default().push(pusi, payload) else {
            return Ok(());
        };
        match section[0] {
            0x00 if pid == PAT_PID => {
                if let Some(pmt) = psi::pat_pmt_pid(&section) {
                    if self.pmt_pid != Some(pmt) {
                        self.pmt_pid = Some(pmt);
                        self.pmt_version = None;
                    }
                }
            }
            0x02 => return self.pmt(&section, out),
            _ => {}
        }
        Ok(())
    }

    fn pmt(&mut self, s: &[u8], out: &mut Vec<TsEvent>) -> Result<(), TsError> {
        let pmt = psi::parse_pmt(s)?;
        if self.pmt_version == Some((pmt.program, pmt.version)) {
            return Ok(()); // the PMT repeats ~10 times a second
        }
        self.pmt_version = Some((pmt.program, pmt.version));
        let mut kept: HashMap<u16, Es> = HashMap::new();
        for (pid, kind) in [(pmt.video, StreamKind::H264), (pmt.audio, StreamKind::Aac)] {
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
                    last_stuffed: false,
                },
            };
            kept.insert(pid, es);
        }
        self.streams = kept;
        out.push(TsEvent::Program {
            video: pmt.video.is_some(),
            audio: pmt.audio.is_some(),
        });
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
