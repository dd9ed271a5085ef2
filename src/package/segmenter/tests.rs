//! The segmenter's behaviour, as pure input and output.

use super::*;
use crate::media::avc::tests::AVCC_320X240;
use crate::media::{AacConfig, AvcConfig};

fn info(video: bool, audio: bool) -> Arc<MediaInfo> {
    Arc::new(MediaInfo {
        video: video.then(|| AvcConfig::parse(Bytes::from_static(AVCC_320X240)).unwrap()),
        audio: audio.then(|| AacConfig::parse(Bytes::from_static(&[0x11, 0x90])).unwrap()),
        declared_bitrate: None,
    })
}

fn video(ms: i64, key: bool) -> AccessUnit {
    AccessUnit {
        track: TrackKind::Video,
        dts: ms * 90,
        pts: ms * 90 + 6000,
        keyframe: key,
        data: Bytes::from_static(b"v"),
        received: Instant::now(),
    }
}

fn audio(n: i64) -> AccessUnit {
    AccessUnit {
        track: TrackKind::Audio,
        dts: n * 1024,
        pts: n * 1024,
        keyframe: true,
        data: Bytes::from_static(b"a"),
        received: Instant::now(),
    }
}

fn cfg() -> SegmenterConfig {
    SegmenterConfig {
        segment_target: Duration::from_secs(1),
        part_target: Duration::from_millis(200),
    }
}

/// 30 fps with millisecond timestamps (as RTMP delivers them), an IDR every
/// `gop` frames, and the schedule opening a segment at each (numbered from
/// `first_msn`), as it does for a passthrough rung.
fn run(seg: &mut Segmenter, frames: i64, gop: i64, first_msn: u64) -> Vec<Output> {
    let mut out = Vec::new();
    for i in 0..frames {
        let ms = (i * 1000 + 15) / 30;
        let key = i % gop == 0;
        let cut = key.then(|| at(first_msn + (i / gop) as u64));
        out.extend(seg.push_scheduled(video(ms, key), cut).unwrap());
    }
    out
}

#[test]
fn parts_never_exceed_the_target_and_segments_follow_the_cuts() {
    let mut seg = Segmenter::new(cfg());
    let mut out = seg.set_tracks(info(true, false)).unwrap();
    assert!(matches!(out[0], Output::Init { id: 1, .. }));
    out.extend(run(&mut seg, 30 * 5 + 1, 30, 0));
    let parts: Vec<&Part> = out
        .iter()
        .filter_map(|o| {
            if let Output::Part(p) = o {
                Some(p)
            } else {
                None
            }
        })
        .collect();
    assert!(
        parts.iter().all(|p| p.duration <= 0.2 + 1e-9),
        "a part exceeds PART-TARGET"
    );
    assert!(
        parts
            .iter()
            .all(|p| p.duration >= 0.85 * 0.2 || p.index == 4),
        "short non-final part"
    );
    let ends: Vec<(u64, f64)> = out
        .iter()
        .filter_map(|o| {
            if let Output::SegmentEnd { msn, duration, .. } = o {
                Some((*msn, *duration))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(ends.len(), 5);
    for (i, (msn, d)) in ends.iter().enumerate() {
        assert_eq!(*msn, i as u64);
        assert!((d - 1.0).abs() < 0.01, "segment {msn} lasts {d}");
    }
    // Every segment's first part is independent and has 5 parts of 200 ms.
    for p in &parts {
        assert_eq!(p.independent, p.index == 0);
    }
    assert_eq!(parts.iter().filter(|p| p.segment.msn == 1).count(), 5);
}

#[test]
fn cuts_two_seconds_apart_make_two_second_segments() {
    let mut seg = Segmenter::new(cfg());
    seg.set_tracks(info(true, false)).unwrap();
    let out = run(&mut seg, 60 * 3 + 1, 60, 0);
    let durations: Vec<f64> = out
        .iter()
        .filter_map(|o| {
            if let Output::SegmentEnd { duration, .. } = o {
                Some(*duration)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(durations.len(), 3);
    assert!(
        durations.iter().all(|d| (d - 2.0).abs() < 0.01),
        "{durations:?}"
    );
}

#[test]
fn a_part_is_complete_when_its_last_frame_arrives() {
    let mut seg = Segmenter::new(cfg());
    seg.set_tracks(info(true, false)).unwrap();
    let out = run(&mut seg, 6, 30, 0);
    assert_eq!(
        out.iter().filter(|o| matches!(o, Output::Part(_))).count(),
        1,
        "6 frames at 30 fps fill a 200 ms part"
    );
    assert_eq!(seg.next_part(), (0, 1));
}

#[test]
fn reconnect_continues_the_timeline_behind_a_discontinuity() {
    let mut seg = Segmenter::new(cfg());
    seg.set_tracks(info(true, false)).unwrap();
    run(&mut seg, 61, 30, 0);
    let out = seg.set_tracks(info(true, false)).unwrap();
    assert!(
        out.iter().all(|o| !matches!(o, Output::Init { .. })),
        "same codecs keep the same init"
    );
    let out = run(&mut seg, 31, 30, 3);
    let Some(Output::Part(first)) = out.iter().find(|o| matches!(o, Output::Part(_))) else {
        panic!("no part")
    };
    assert!(first.segment.discontinuity);
    assert_eq!(first.segment.msn, 3);
    let moof = <mp4_atom::Moof as mp4_atom::Decode>::decode(&mut &first.data[..]).unwrap();
    let tfdt = moof.traf[0].tfdt.as_ref().unwrap().base_media_decode_time;
    assert!(
        tfdt >= 2 * 90_000,
        "timeline continues after the first session, got {tfdt}"
    );
}

#[test]
fn an_audio_rendition_cuts_where_the_schedule_says() {
    let mut seg = Segmenter::new(cfg());
    seg.set_tracks(info(false, true)).unwrap();
    let mut out = Vec::new();
    for n in 0..200 {
        // The first frame at or after each whole second (1,024 samples at 48 kHz).
        let cut = (n == 0 || n * 1024 / 48_000 > (n - 1) * 1024 / 48_000)
            .then(|| at((n * 1024 / 48_000) as u64));
        out.extend(seg.push_scheduled(audio(n), cut).unwrap());
    }
    let segs = out
        .iter()
        .filter(|o| matches!(o, Output::SegmentEnd { .. }))
        .count();
    assert!(segs >= 3, "got {segs} segments");
    assert!(out
        .iter()
        .all(|o| !matches!(o, Output::Part(p) if p.duration > 0.2 + 1e-9)));
}

#[test]
fn frames_before_the_first_cut_are_skipped() {
    let mut seg = Segmenter::new(cfg());
    seg.set_tracks(info(true, false)).unwrap();
    assert!(seg
        .push_scheduled(video(0, false), None)
        .unwrap()
        .is_empty());
    let out: Vec<Output> = (1..8)
        .flat_map(|i| {
            seg.push_scheduled(video(i * 33, i == 1), (i == 1).then(|| at(0)))
                .unwrap()
        })
        .collect();
    let Some(Output::Part(p)) = out.first() else {
        panic!("expected a part")
    };
    assert!(p.independent);
}

#[test]
fn scheduled_cuts_name_the_segments_whatever_the_keyframes() {
    let mut seg = Segmenter::new(cfg());
    seg.set_tracks(info(true, false)).unwrap();
    let mut out = Vec::new();
    // Frames before the first cut are not packaged.
    out.extend(seg.push_scheduled(video(0, true), None).unwrap());
    assert!(out.is_empty());
    for i in 1..=90 {
        let ms = i * 1000 / 30;
        // The schedule opens MSN 7 at frame 1, then one every 30 frames.
        let cut = (i % 30 == 1).then(|| at(7 + (i / 30) as u64));
        out.extend(seg.push_scheduled(video(ms, cut.is_some()), cut).unwrap());
    }
    let ends: Vec<u64> = out
        .iter()
        .filter_map(|o| match o {
            Output::SegmentEnd { msn, .. } => Some(*msn),
            _ => None,
        })
        .collect();
    assert_eq!(ends, vec![7, 8]);
    let first = out.iter().find_map(|o| match o {
        Output::Part(p) => Some(p),
        _ => None,
    });
    assert_eq!(
        first.map(|p| (p.segment.msn, p.index, p.independent)),
        Some((7, 0, true))
    );
    // After a gap, nothing is packaged until the next cut, which keeps its number.
    seg.gap().unwrap();
    assert!(seg
        .push_scheduled(video(3100, false), None)
        .unwrap()
        .is_empty());
    let out = seg.push_scheduled(video(3200, true), Some(at(12))).unwrap();
    assert!(out.is_empty(), "a part needs more than one frame");
    let out: Vec<Output> = (1..8)
        .flat_map(|i| {
            seg.push_scheduled(video(3200 + i * 33, false), None)
                .unwrap()
        })
        .collect();
    let Some(Output::Part(p)) = out.first() else {
        panic!("no part after the cut")
    };
    assert_eq!(p.segment.msn, 12);
    assert!(p.segment.discontinuity);
    assert_eq!(
        p.segment.program_date_time,
        at(12).program_date_time,
        "the schedule's date, not this rendition's clock"
    );
}

/// The cut that opens segment `msn`, dated a second per MSN.
fn at(msn: u64) -> SegmentCut {
    SegmentCut {
        msn,
        program_date_time: std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + msn),
    }
}

/// (tfdt, sum of sample durations) of every part's first track.
fn timeline(out: &[Output]) -> Vec<(u64, u64)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Part(p) => Some(p),
            _ => None,
        })
        .map(|p| {
            let moof = <mp4_atom::Moof as mp4_atom::Decode>::decode(&mut &p.data[..]).unwrap();
            let traf = &moof.traf[0];
            let tfdt = traf.tfdt.as_ref().unwrap().base_media_decode_time;
            let total: u64 = traf.trun[0]
                .samples
                .iter()
                .map(|e| e.duration.unwrap() as u64)
                .sum();
            (tfdt, total)
        })
        .collect()
}

#[test]
fn parts_leave_no_hole_in_the_timeline_whatever_the_rounding() {
    let mut seg = Segmenter::new(cfg());
    seg.set_tracks(info(true, false)).unwrap();
    // 24 fps in whole milliseconds (41/42 ms steps), as RTMP carries it:
    // four frames make a part, and the rounding never adds up evenly.
    let out: Vec<Output> = (0..24 * 4 + 1)
        .flat_map(|i| {
            let ms = (i * 1000 + 12) / 24;
            let cut = (i % 24 == 0).then(|| at((i / 24) as u64));
            seg.push_scheduled(video(ms, i % 24 == 0), cut).unwrap()
        })
        .collect();
    let t = timeline(&out);
    assert!(t.len() >= 15);
    for w in t.windows(2) {
        assert_eq!(
            w[1].0,
            w[0].0 + w[0].1,
            "a hole or an overlap between parts: {w:?}"
        );
    }
    // EXTINF is the media's duration: the sum of the segment's parts.
    let durations: f64 = out
        .iter()
        .filter_map(|o| match o {
            Output::SegmentEnd { duration, .. } => Some(*duration),
            _ => None,
        })
        .sum();
    let media: u64 = t.iter().map(|x| x.1).sum();
    assert!((durations - media as f64 / 90_000.0).abs() < 1e-6);
}

#[test]
fn a_part_told_that_a_cut_follows_is_complete_at_once_and_gapless() {
    let mut seg = Segmenter::new(cfg());
    seg.set_tracks(info(false, true)).unwrap();
    let mut out = Vec::new();
    out.extend(seg.push_scheduled(audio(0), Some(at(0))).unwrap());
    for n in 1..5 {
        out.extend(seg.push_scheduled(audio(n), None).unwrap());
    }
    // Frame 4 is the last before the cut: its part is out without frame 5.
    let ended = seg.end_part().unwrap();
    assert!(
        matches!(&ended[..], [Output::Part(p)] if (p.duration - 5.0 * 1024.0 / 48_000.0).abs() < 1e-9),
        "{ended:?}"
    );
    out.extend(ended);
    // The preload hint names the next segment's first part, not a part of
    // this one that will never exist (Shaka takes its 404 as a critical error).
    assert_eq!(seg.next_part(), (1, 0));
    let next = seg.push_scheduled(audio(5), Some(at(1))).unwrap();
    assert_eq!(seg.next_part(), (1, 0), "part 1.0 is open");
    assert!(next
        .iter()
        .any(|o| matches!(o, Output::SegmentEnd { msn: 0, .. })));
    out.extend(next);
    for n in 6..12 {
        out.extend(seg.push_scheduled(audio(n), None).unwrap());
    }
    out.extend(seg.finish().unwrap());
    let t = timeline(&out);
    assert!(
        t.windows(2).all(|w| w[1].0 == w[0].0 + w[0].1),
        "gapless: {t:?}"
    );
    assert_eq!(
        t[1].0,
        5 * 1024,
        "the next segment starts where the part ended"
    );
}
