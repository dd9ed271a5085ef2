//! Property test of what a publisher controls: FLV tag bodies and their
//! timestamps, random and mutated, through the FLV parser, the demuxer and
//! the clock normaliser. No input may panic, and what comes out is bounded.
//! 100,000 cases per run (about a second in a release build, a few in debug).

use bytes::Bytes;
use castline::ingest::normalize::{MonotonicDts, SessionClock, Unwrapper};
use castline::ingest::rtmp::demux::{DemuxEvent, Demuxer};
use proptest::prelude::*;
use std::time::Instant;

const AVCC: &[u8] = include_bytes!("../fixtures/avcc-320x240-high.bin");

/// A tag: video or audio, a timestamp, and a body that is either random or a
/// valid header/frame with some bytes flipped or cut.
#[derive(Debug, Clone)]
enum Tag {
    Video(u32, Vec<u8>),
    Audio(u32, Vec<u8>),
}

fn valid_bodies() -> Vec<Vec<u8>> {
    let mut seq = vec![0x17, 0, 0, 0, 0];
    seq.extend_from_slice(AVCC);
    vec![
        seq,
        vec![0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88],
        vec![0x27, 1, 0, 0, 0x21, 0, 0, 0, 2, 0x41, 0x9a],
        vec![0x57, 0],
        vec![0xaf, 0, 0x11, 0x90],
        vec![0xaf, 1, 0x21, 0x10, 0x04],
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        (
            0..valid_bodies().len(),
            proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            proptest::option::of(any::<usize>()),
        )
            .prop_map(|(i, flips, cut)| {
                let mut b = valid_bodies()[i].clone();
                for (at, v) in flips {
                    if !b.is_empty() {
                        let n = b.len();
                        b[at % n] = v;
                    }
                }
                if let Some(c) = cut {
                    let n = b.len() + 1;
                    b.truncate(c % n);
                }
                b
            }),
    ]
}

fn tag() -> impl Strategy<Value = Tag> {
    prop_oneof![
        (any::<u32>(), body()).prop_map(|(t, b)| Tag::Video(t, b)),
        (any::<u32>(), body()).prop_map(|(t, b)| Tag::Audio(t, b)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 100_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_tag_sequence_panics_the_demuxer_and_output_stays_bounded(
        tags in proptest::collection::vec(tag(), 1..12),
    ) {
        let mut d = Demuxer::new();
        let now = Instant::now();
        let mut media = 0usize;
        for t in &tags {
            let r = match t {
                Tag::Video(ts, b) => d.on_video(*ts, &Bytes::copy_from_slice(b), now),
                Tag::Audio(ts, b) => d.on_audio(*ts, &Bytes::copy_from_slice(b), now),
            };
            if let Ok(events) = r {
                for e in events {
                    if let DemuxEvent::Media(au) = e {
                        media += 1;
                        prop_assert!(au.dts >= 0 && au.pts >= 0);
                    }
                }
            }
        }
        // Nothing is made up: at most one access unit per tag.
        prop_assert!(media <= tags.len());
        for e in d.finish() {
            if let DemuxEvent::Media(au) = e {
                prop_assert!(au.dts >= 0);
            }
        }
    }

    #[test]
    fn the_clock_rules_never_panic_and_keep_decode_times_increasing(
        stamps in proptest::collection::vec(any::<u64>(), 1..40),
        bits in prop_oneof![Just(32u32), Just(33u32)],
    ) {
        let mut u = Unwrapper::new(bits);
        let mut clock = SessionClock::new(1000, 10_000);
        let mut dts = MonotonicDts::default();
        let mut last = None;
        for s in stamps {
            let t = u.unwrap(s);
            if let castline::ingest::normalize::Stamp::Same(rel) = clock.map(t) {
                prop_assert!(rel >= 0);
                let (d, p) = dts.apply(rel, rel, 3000);
                prop_assert!(p >= d);
                if let Some(l) = last {
                    prop_assert!(d > l);
                }
                last = Some(d);
            } else {
                dts.reset();
                last = None;
            }
        }
    }
}
