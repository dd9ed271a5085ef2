//! A classic BPF socket filter on the SRT port that drops, in the kernel,
//! the datagrams `srt-protocol` 0.4.4 panics on.
//!
//! `srt-tokio` runs one listener task for every caller on the port; a panic
//! in it ends SRT ingest for all of them. Read in its source (and, for the
//! first, reproduced with ffmpeg): `unimplemented!` on a caller that offers
//! encryption to a listener without a passphrase, on a conclusion whose key
//! material is a response, on handshake extensions other than HSREQ, KMREQ
//! and the stream id (FEC packet filters, groups, congestion control), and
//! `todo!`/`unimplemented!` on control packets a receiver never expects
//! (NAK, congestion warning, peer error, other SRT extensions). The crate
//! offers no hook before it parses a datagram, so the filter sits under it;
//! a dropped caller sees a connection timeout.

use std::io;

use socket2::SockFilter;

// cBPF opcodes (linux/filter.h).
const LD_W_ABS: u16 = 0x20;
const LD_H_ABS: u16 = 0x28;
const LD_H_IND: u16 = 0x48;
const LD_W_LEN: u16 = 0x80;
const ALU_ADD_K: u16 = 0x04;
const ALU_SUB_X: u16 = 0x1c;
const ALU_LSH_K: u16 = 0x64;
const TAX: u16 = 0x07;
const LDX_IMM: u16 = 0x01;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const JGT_K: u16 = 0x25;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

/// For a UDP socket the filter sees the UDP header first.
const UDP: u32 = 8;
/// In an SRT handshake: the extension flags, the handshake type, the first extension.
const HS_EXT_FLAGS: u32 = UDP + 22;
const HS_TYPE: u32 = UDP + 36;
const HS_EXTENSIONS: u32 = UDP + 64;
const CONCLUSION: u32 = 0xffff_ffff;
/// The KMREQ bit of the handshake's extension flags.
const EXT_KMREQ: u32 = 0x2;
/// Extensions a conclusion is scanned for, at most (a real caller sends 3).
const MAX_EXTENSIONS: usize = 8;

enum Op {
    Stmt(u16, u32),
    /// A conditional jump: to `yes` if true, to `no` if false.
    Jump(u16, u32, Target, Target),
}

#[derive(Clone, Copy)]
enum Target {
    Next,
    Accept,
    Drop,
    /// The next extension's check, `n` instructions on.
    Skip(u8),
}

/// The filter program for a listener with (`encrypted`) or without a passphrase.
pub fn program(encrypted: bool) -> Vec<SockFilter> {
    use Target::*;
    let mut ops = vec![
        Op::Stmt(LD_H_ABS, UDP),
        // Data packets (first bit 0) pass untouched.
        Op::Jump(JGE_K, 0x8000, Next, Accept),
        Op::Jump(JEQ_K, 0x8003, Drop, Next), // NAK
        Op::Jump(JEQ_K, 0x8004, Drop, Next), // congestion warning
        Op::Jump(JEQ_K, 0x8008, Drop, Next), // peer error
        Op::Jump(JEQ_K, 0xffff, Next, Skip(2)),
        // SRT extension messages: only key material (3, 4) is handled.
        Op::Stmt(LD_H_ABS, UDP + 2),
        Op::Jump(JGT_K, 4, Drop, Accept),
        Op::Jump(JEQ_K, 0x8000, Next, Accept), // other control packets pass
        Op::Stmt(LD_W_ABS, HS_TYPE),
        Op::Jump(JEQ_K, CONCLUSION, Next, Accept),
    ];
    if !encrypted {
        ops.push(Op::Stmt(LD_H_ABS, HS_EXT_FLAGS));
        ops.push(Op::Jump(JSET_K, EXT_KMREQ, Drop, Next));
    }
    ops.push(Op::Stmt(LDX_IMM, 0));
    for _ in 0..MAX_EXTENSIONS {
        ops.extend([
            // Past the last extension: accept.
            Op::Stmt(LD_W_LEN, 0),
            Op::Stmt(ALU_SUB_X, 0),
            Op::Jump(JGE_K, HS_EXTENSIONS + 4, Next, Accept),
            // Its type: HSREQ (1), the stream id (5), and KMREQ (3) when
            // the listener has a passphrase; nothing else.
            Op::Stmt(LD_H_IND, HS_EXTENSIONS),
            Op::Jump(JEQ_K, 1, Skip(2), Next),
            Op::Jump(JEQ_K, if encrypted { 3 } else { 1 }, Skip(1), Next),
            Op::Jump(JEQ_K, 5, Next, Drop),
            // X += 4 + 4 × its length in words.
            Op::Stmt(LD_H_IND, HS_EXTENSIONS + 2),
            Op::Stmt(ALU_LSH_K, 2),
            Op::Stmt(ALU_ADD_K, 4),
            Op::Stmt(0x0c, 0), // ALU_ADD_X
            Op::Stmt(TAX, 0),
        ]);
    }
    ops.push(Op::Stmt(RET_K, 0)); // more extensions than a caller sends
    assemble(&ops)
}

/// Jumps resolved to offsets; the program ends with "accept" and "drop".
fn assemble(ops: &[Op]) -> Vec<SockFilter> {
    let n = ops.len();
    let (accept, drop) = (n, n + 1);
    let rel = |i: usize, t: Target| -> u8 {
        let to = match t {
            Target::Next => i + 1,
            Target::Accept => accept,
            Target::Drop => drop,
            Target::Skip(k) => i + 1 + k as usize,
        };
        // cBPF jumps are forward and at most 255 instructions.
        u8::try_from(to - i - 1).expect("filter jump within 255 instructions")
    };
    let mut out: Vec<SockFilter> = ops
        .iter()
        .enumerate()
        .map(|(i, op)| match *op {
            Op::Stmt(code, k) => SockFilter::new(code, 0, 0, k),
            Op::Jump(code, k, yes, no) => SockFilter::new(code, rel(i, yes), rel(i, no), k),
        })
        .collect();
    out.push(SockFilter::new(RET_K, 0, 0, u32::MAX));
    out.push(SockFilter::new(RET_K, 0, 0, 0));
    out
}

/// Attach the filter to the listener's socket.
pub fn attach(socket: &socket2::Socket, encrypted: bool) -> io::Result<()> {
    socket.attach_filter(&program(encrypted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    /// A control packet's first 16 bytes.
    fn control(kind: u16, subtype: u16) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&kind.to_be_bytes());
        p.extend_from_slice(&subtype.to_be_bytes());
        p.extend_from_slice(&[0; 12]);
        p
    }

    /// A conclusion handshake with the given extension flags and extensions
    /// (type, words of content).
    fn conclusion(flags: u16, exts: &[(u16, u16)]) -> Vec<u8> {
        let mut p = control(0x8000, 0);
        p.extend_from_slice(&5u32.to_be_bytes()); // version
        p.extend_from_slice(&0u16.to_be_bytes()); // encryption field
        p.extend_from_slice(&flags.to_be_bytes());
        p.extend_from_slice(&[0; 12]); // ISN, MTU, flow window
        p.extend_from_slice(&CONCLUSION.to_be_bytes());
        p.extend_from_slice(&[0; 24]); // socket id, cookie, peer address
        for &(t, words) in exts {
            p.extend_from_slice(&t.to_be_bytes());
            p.extend_from_slice(&words.to_be_bytes());
            p.extend(std::iter::repeat_n(0u8, 4 * words as usize));
        }
        p
    }

    /// Which of `datagrams` get through a filtered socket, in order.
    fn passes(encrypted: bool, datagrams: &[Vec<u8>]) -> Vec<bool> {
        let rx = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        rx.bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
        attach(&rx, encrypted).unwrap();
        let rx: UdpSocket = rx.into();
        rx.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut out = Vec::new();
        for (i, d) in datagrams.iter().enumerate() {
            // A marker after each datagram tells "dropped" from "late".
            let mut marked = d.clone();
            marked.push(i as u8);
            tx.send_to(&marked, rx.local_addr().unwrap()).unwrap();
            let mut buf = [0u8; 2048];
            out.push(match rx.recv(&mut buf) {
                Ok(n) => {
                    assert_eq!(&buf[..n], &marked[..]);
                    true
                }
                Err(_) => false,
            });
        }
        out
    }

    #[test]
    fn what_srt_protocol_panics_on_is_dropped_and_the_rest_passes() {
        let ffmpeg_caller = conclusion(0x5, &[(1, 3), (5, 2)]); // HSREQ, stream id
        let encrypted_caller = conclusion(0x7, &[(1, 3), (3, 10), (5, 2)]);
        let fec_caller = conclusion(0x5, &[(1, 3), (5, 2), (7, 4)]);
        let km_response = conclusion(0x7, &[(1, 3), (4, 10)]);
        let many = conclusion(0x5, &[(1, 0); 9]);
        let mut data = vec![0x12, 0x34, 0, 0];
        data.extend([0x47; 40]);
        let induction = {
            let mut p = conclusion(0x4a17, &[]);
            p[36..40].copy_from_slice(&1u32.to_be_bytes());
            p
        };
        let cases = vec![
            data,
            induction,
            ffmpeg_caller.clone(),
            encrypted_caller.clone(),
            fec_caller,
            km_response,
            many,
            control(0x8002, 0), // ACK
            control(0x8003, 0), // NAK
            control(0x8005, 0), // shutdown
            control(0x8008, 0), // peer error
            control(0xffff, 3), // KMREQ (a key refresh)
            control(0xffff, 6), // congestion extension
        ];
        let open = passes(false, &cases);
        assert_eq!(
            open,
            [true, true, true, false, false, false, false, true, false, true, false, true, false]
        );
        // With a passphrase, a caller's key material is wanted.
        assert_eq!(
            passes(true, &[encrypted_caller, ffmpeg_caller]),
            [true, true]
        );
    }
}
