//! The receiver's rules, without sockets: pushes taken, duplicates,
//! conflicts, takeovers and superseded sessions.

use bytes::Bytes;

use super::*;
use crate::package::playlist::PartAddressing;
use crate::package::segmenter::SegmenterConfig;
use crate::publish::wire::{PartMeta, SegmentMeta};

fn receiver() -> Receiver {
    let policy = PackagerConfig {
        segmenter: SegmenterConfig {
            segment_target: Duration::from_secs(1),
            part_target: Duration::from_millis(500),
        },
        dvr_window: Duration::from_secs(60),
        vod_keep: Duration::from_secs(60),
        target_duration: 1,
        part_addressing: PartAddressing::Files,
    };
    Receiver::new(
        Store::new(),
        Arc::new(Metrics::new()),
        policy,
        TaskTracker::new(),
        CancellationToken::new(),
    )
}

fn plan(continues_at: Option<u64>) -> Message {
    Message::Start(SessionPlan {
        video: vec!["v".into()],
        audio: None,
        target_duration: 1,
        part_target: Duration::from_millis(500),
        continues_at,
    })
}

fn part(msn: u64, index: u32, data: &'static [u8]) -> Message {
    Message::Part {
        rendition: "v".into(),
        msn,
        index,
        meta: PartMeta {
            discontinuity: false,
            init_id: 1,
            date_ns: 1_796_000_000_000_000_000 + msn * 1_000_000_000,
            duration: 0.5,
            independent: index == 0,
            next: if index == 0 { (msn, 1) } else { (msn + 1, 0) },
        },
        data: Bytes::from_static(data),
    }
}

fn segment_end(msn: u64) -> Message {
    Message::SegmentEnd {
        rendition: "v".into(),
        msn,
        meta: SegmentMeta {
            duration: 1.0,
            meta: None,
            next: (msn + 1, 0),
        },
    }
}

#[test]
fn pushes_again_are_duplicates_and_other_bytes_under_a_stored_name_are_refused() {
    let r = receiver();
    let key = SessionKey {
        stream: "s".into(),
        epoch: "e".into(),
    };
    let take = |m| r.take(key.clone(), m);
    assert_eq!(take(part(0, 0, b"a")), Err(Refused::UnknownSession));
    assert_eq!(take(plan(None)), Ok(Taken::Stored));
    assert_eq!(take(plan(None)), Ok(Taken::Duplicate));
    let init = |d: &'static [u8]| Message::Init {
        rendition: "v".into(),
        id: 1,
        data: Bytes::from_static(d),
    };
    assert_eq!(take(init(b"ftyp")), Ok(Taken::Stored));
    assert_eq!(take(init(b"ftyp")), Ok(Taken::Duplicate));
    assert_eq!(take(init(b"other")), Err(Refused::Conflict));
    assert_eq!(take(part(0, 0, b"a")), Ok(Taken::Stored));
    assert_eq!(take(part(0, 0, b"a")), Ok(Taken::Duplicate));
    assert_eq!(take(part(0, 0, b"b")), Err(Refused::Conflict));
    assert_eq!(
        take(Message::RenditionEnd {
            rendition: "x".into()
        }),
        Err(Refused::UnknownRendition("x".into()))
    );
}

#[test]
fn a_takeover_closes_the_open_segment_and_refuses_the_old_pods_media() {
    let r = receiver();
    let key = SessionKey {
        stream: "s".into(),
        epoch: "e".into(),
    };
    let take = |m| r.take(key.clone(), m);
    take(plan(None)).unwrap();
    take(part(0, 0, b"a")).unwrap();
    take(part(0, 1, b"b")).unwrap();
    take(segment_end(0)).unwrap();
    // Segment 1 is begun when its ingest pod is lost.
    take(part(1, 0, b"c")).unwrap();
    let resume = r.resume("s").expect("a live session");
    assert_eq!((resume.epoch.as_str(), resume.next_msn), ("e", 2));
    // A takeover must continue after what was begun.
    assert_eq!(take(plan(Some(1))), Err(Refused::PlanConflict));
    assert_eq!(take(plan(Some(2))), Ok(Taken::Stored));
    assert_eq!(take(plan(Some(2))), Ok(Taken::Duplicate));
    let v = r
        .store
        .session("s", "e")
        .unwrap()
        .find_rendition("v")
        .unwrap();
    assert!(v.has_segment(1), "the open segment ended with its parts");
    // The lost pod, still pushing, is refused; the new one is taken.
    assert_eq!(take(part(1, 1, b"d")), Err(Refused::Superseded));
    assert_eq!(take(segment_end(1)), Ok(Taken::Duplicate));
    assert_eq!(take(part(2, 0, b"e")), Ok(Taken::Stored));
}

#[test]
fn a_takeover_brings_the_lost_pods_audio_up_to_its_video_with_silence() {
    use crate::media::{AacConfig, MediaInfo};
    use crate::package::boxes::{self, Sample, TrackRun};
    crate::transcode::init().unwrap();
    let r = receiver();
    let key = SessionKey {
        stream: "s".into(),
        epoch: "e".into(),
    };
    let take = |m| r.take(key.clone(), m);
    let with_audio = SessionPlan {
        video: vec!["v".into()],
        audio: Some("a".into()),
        target_duration: 1,
        part_target: Duration::from_millis(500),
        continues_at: None,
    };
    take(Message::Start(with_audio.clone())).unwrap();
    // AAC-LC, 48 kHz, stereo; one part of 23 frames (0.49 s) from 0.
    let lc = AacConfig::parse(Bytes::from_static(&[0x11, 0x90])).unwrap();
    let info = MediaInfo {
        video: None,
        audio: Some(lc),
        declared_bitrate: None,
    };
    take(Message::Init {
        rendition: "a".into(),
        id: 1,
        data: boxes::init_segment(&info).unwrap(),
    })
    .unwrap();
    let frames: Vec<Sample> = (0..23)
        .map(|_| Sample {
            duration: 1024,
            cts_offset: 0,
            sync: true,
            data: Bytes::from_static(b"\x21\x10\x04\x60\x8c\x1c"),
        })
        .collect();
    let run = TrackRun {
        track_id: 1,
        base_decode_time: 0,
        samples: &frames,
        with_cts: false,
    };
    let Message::Part { meta, .. } = part(0, 0, b"") else {
        unreachable!()
    };
    take(Message::Part {
        rendition: "a".into(),
        msn: 0,
        index: 0,
        meta: PartMeta {
            duration: 23.0 * 1024.0 / 48_000.0,
            ..meta
        },
        data: boxes::chunk(1, &[run]).unwrap(),
    })
    .unwrap();
    // The video had ended segment 0 and begun segment 1 when its pod
    // was lost: it ends 1.5 s in, the audio 0.49 s in.
    take(part(0, 0, b"v0")).unwrap();
    take(part(0, 1, b"v1")).unwrap();
    take(segment_end(0)).unwrap();
    take(part(1, 0, b"v2")).unwrap();
    let plan = SessionPlan {
        continues_at: Some(2),
        ..with_audio
    };
    assert_eq!(take(Message::Start(plan)), Ok(Taken::Stored));
    let a = r
        .store
        .session("s", "e")
        .unwrap()
        .find_rendition("a")
        .unwrap();
    let text = String::from_utf8(a.playlists(None).unwrap().full.to_vec()).unwrap();
    // Segment 0 up to the video's cut at 1 s (47 frames), segment 1 up
    // to its end at 1.5 s (23 frames): both as the video has them, to
    // within a frame.
    assert!(text.contains("#EXTINF:1.00267,\ne/0.m4s"), "{text}");
    assert!(text.contains("#EXTINF:0.49067,\ne/1.m4s"), "{text}");
    // The silence continues the audio's own fragments.
    let (parts, complete) = a.parts_from(1, 0).unwrap();
    assert!(complete);
    let end = crate::publish::fill::fragment_end(parts.last().unwrap()).unwrap();
    assert_eq!(end.decode_time, (23 + 24 + 23) * 1024);
    // The lost pod, still pushing the audio part filled since: its
    // media is superseded, not a conflict of two contents.
    let Message::Part { meta, .. } = part(0, 1, b"") else {
        unreachable!()
    };
    let late = Message::Part {
        rendition: "a".into(),
        msn: 0,
        index: 1,
        meta,
        data: Bytes::from_static(b"the lost pod's audio"),
    };
    assert_eq!(take(late), Err(Refused::Superseded));
}

#[tokio::test]
async fn a_newer_session_replaces_the_live_one_and_an_older_one_is_refused() {
    let r = receiver();
    let key = |epoch: &str| SessionKey {
        stream: "s".into(),
        epoch: epoch.into(),
    };
    assert_eq!(r.take(key("mxd8j253"), plan(None)), Ok(Taken::Stored));
    // A pod that was replaced resends its older session: refused.
    assert_eq!(
        r.take(key("mxd8j252"), plan(None)),
        Err(Refused::Superseded)
    );
    assert_eq!(r.resume("s").map(|x| x.epoch), Some("mxd8j253".into()));
    // The next session of the name (its predecessor's end was lost).
    assert_eq!(r.take(key("mxd8j260"), plan(None)), Ok(Taken::Stored));
    assert_eq!(r.resume("s").map(|x| x.epoch), Some("mxd8j260".into()));
}
