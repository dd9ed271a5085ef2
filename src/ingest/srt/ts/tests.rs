//! The TS demuxer, as bytes in and events out; and a small TS writer the
//! SRT demux tests use too.

use super::pes::stuffed;
use super::psi::CRC;
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
fn a_pes_the_input_ends_inside_is_dropped_unless_known_complete() {
    let mut w = Writer::new();
    let mut input = program(&mut w);
    let video = w.pes(VIDEO_PID, 3000, None, &[7; 600], false); // 4 packets
    let audio = w.pes(AUDIO_PID, 3000, None, &[0xff, 0xf1, 9, 9], true);
    input.extend(&audio[..]);
    input.extend(&video[..3 * PACKET]); // the caller closed before the last one
    let mut d = TsDemuxer::new();
    let mut ev = d.push(&input, t0()).unwrap();
    ev.extend(d.finish());
    let p = pes_of(&ev);
    assert_eq!(p.len(), 1, "only the whole audio PES");
    assert_eq!(p[0].kind, StreamKind::Aac);
    assert_eq!(d.counts.unfinished_pes, 1);
    assert_eq!(
        d.counts.continuity_errors, 0,
        "a cut tail breaks no counter"
    );

    // An audio PES short of its declared length, too.
    let mut w = Writer::new();
    let mut input = program(&mut w);
    let long = w.pes(AUDIO_PID, 90, None, &[0xff; 400], true);
    input.extend(&long[..2 * PACKET]);
    let mut d = TsDemuxer::new();
    let mut ev = d.push(&input, t0()).unwrap();
    ev.extend(d.finish());
    assert!(pes_of(&ev).is_empty());
    assert_eq!(d.counts.unfinished_pes, 1);

    // A muxer that stuffs mid-PES (early ends off): its last PES, stuffed,
    // is still taken at the end.
    let mut w = Writer::new();
    let mut input = program(&mut w);
    input.extend(w.pes(VIDEO_PID, 3000, None, &[1; 100], false));
    let mut more = w.packets(VIDEO_PID, &[2; 50]);
    more[1] &= !0x40;
    input.extend(more);
    input.extend(w.pes(VIDEO_PID, 6000, None, &[3; 100], false));
    let mut more = w.packets(VIDEO_PID, &[4; 50]);
    more[1] &= !0x40;
    input.extend(more);
    let mut d = TsDemuxer::new();
    let mut ev = d.push(&input, t0()).unwrap();
    ev.extend(d.finish());
    let p = pes_of(&ev);
    assert_eq!(p.last().map(|p| p.pts), Some(Some(6000)));
    assert_eq!(p.last().map(|p| p.data.len()), Some(150));
    assert_eq!(d.counts.unfinished_pes, 0);
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
