//! The life of a publishing session, driven by a scripted RTMP client:
//! unpublish ends the stream at once, a republish on the same connection
//! plays, and tags that carry no media are skipped rather than fatal.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use common::rtmp_client::*;
use common::*;
use rml_rtmp::sessions::{ClientSession, StreamMetadata};
use rml_rtmp::time::RtmpTimestamp;

const AVCC: &[u8] = include_bytes!("../fixtures/avcc-320x240-high.bin");

/// A video-only stream's metadata, so castline announces the tracks at once.
fn metadata(tcp: &mut TcpStream, session: &mut ClientSession) {
    let mut m = StreamMetadata::new();
    m.video_codec_id = Some(7);
    m.video_width = Some(320);
    m.video_height = Some(240);
    m.video_frame_rate = Some(30.0);
    let r = session.publish_metadata(&m).unwrap();
    send(tcp, vec![r]);
}

fn video(tcp: &mut TcpStream, session: &mut ClientSession, body: Bytes, ms: u32) {
    let r = session
        .publish_video_data(body, RtmpTimestamp::new(ms), false)
        .unwrap();
    send(tcp, vec![r]);
}

/// `frames` frames at 30 fps from `start_ms`, an IDR every 30, paced in real time.
/// (castline packages them as they come: the ladder has no rung for 320x240.)
fn stream(tcp: &mut TcpStream, session: &mut ClientSession, start_ms: u32, frames: u32) {
    let mut seq = BytesMut::from(&[0x17, 0, 0, 0, 0][..]);
    seq.put_slice(AVCC);
    video(tcp, session, seq.freeze(), start_ms);
    let t0 = Instant::now();
    for i in 0..frames {
        let key = i % 30 == 0;
        let nal: &[u8] = if key {
            &[0x65, 0x88, 0x84]
        } else {
            &[0x41, 0x9a, 0x02]
        };
        let mut body = BytesMut::from(&[if key { 0x17 } else { 0x27 }, 1, 0, 0, 0][..]);
        body.put_u32(nal.len() as u32);
        body.put_slice(nal);
        video(tcp, session, body.freeze(), start_ms + i * 1000 / 30);
        let due = Duration::from_millis(i as u64 * 1000 / 30);
        if let Some(wait) = due.checked_sub(t0.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

fn playlist(server: &Server, stream: &str) -> Media {
    let r = get(&server.url(&format!("/live/{stream}/source/index.m3u8")));
    if r.status != 200 {
        return Media::default();
    }
    parse_media(&r.text())
}

#[test]
fn unpublish_ends_at_once_and_a_republish_on_the_same_connection_plays() {
    // A long grace: an ENDLIST within 5 s can only come from the unpublish.
    let server = Server::start("[ingest]\nreconnect_grace = 15.0\n");
    let (mut tcp, mut session) = publish(server.rtmp, "again");
    metadata(&mut tcp, &mut session);
    stream(&mut tcp, &mut session, 0, 30);
    // A video command frame (FLV frame type 5) mid-stream: skipped, not fatal.
    video(&mut tcp, &mut session, Bytes::from_static(&[0x57, 0]), 1000);
    stream(&mut tcp, &mut session, 1033, 60);
    let first = wait_segments(&server, "again", 2, Duration::from_secs(10));
    assert!(!first.endlist);

    // deleteStream (what rml_rtmp's client sends to stop): ENDLIST at once, not
    // after the grace.
    let r = session.stop_publishing().unwrap();
    send(&mut tcp, r);
    let stopped = Instant::now();
    let ended = poll_every(Duration::from_secs(5), Duration::from_millis(50), || {
        let m = playlist(&server, "again");
        if m.endlist {
            Ok(stopped.elapsed())
        } else {
            Err(format!(
                "no ENDLIST within 5 s of the unpublish (the reconnect grace is 15 s here):\n{}",
                m.text
            ))
        }
    });
    assert!(ended < Duration::from_secs(5), "ENDLIST took {ended:?}");

    // Publish again on the same connection: a fresh session that plays.
    request_publish(&mut tcp, &mut session, "again");
    metadata(&mut tcp, &mut session);
    stream(&mut tcp, &mut session, 0, 90);
    let again = wait_segments(&server, "again", 2, Duration::from_secs(10));
    assert!(
        !again.endlist,
        "the republished stream is live:\n{}",
        again.text
    );
    assert_ne!(
        again.maps[0], first.maps[0],
        "a new publish gets fresh URLs (a new epoch)"
    );
    assert!(!closed_by_server(&mut tcp, Duration::from_millis(300)));
    let metrics = get(&format!("http://{}/metrics", server.admin)).text();
    assert!(
        metrics.contains("castline_ingest_skipped_tags_total 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("castline_rtmp_errors_total{"),
        "no connection was closed on an error: {metrics}"
    );
}

#[test]
fn a_publisher_clock_reset_continues_the_playlist_behind_a_discontinuity() {
    let server = Server::start("");
    let (mut tcp, mut session) = publish(server.rtmp, "reset");
    metadata(&mut tcp, &mut session);
    stream(&mut tcp, &mut session, 0, 120);
    let before = wait_segments(&server, "reset", 2, Duration::from_secs(10));
    // Same connection, same session: the encoder's clock starts again at 0.
    stream(&mut tcp, &mut session, 0, 120);
    let last_before = msn_of(&before.segments.last().unwrap().0);
    let after = poll_every(Duration::from_secs(10), Duration::from_millis(100), || {
        let m = playlist(&server, "reset");
        let later = m
            .segments
            .iter()
            .filter(|(u, _)| msn_of(u) > last_before + 1)
            .count();
        if m.discontinuities > 0 && later >= 2 {
            Ok(m)
        } else {
            Err(format!(
                "no discontinuity after the clock reset:\n{}",
                m.text
            ))
        }
    });
    assert!(!after.endlist);
    let msns: Vec<u64> = after.segments.iter().map(|(u, _)| msn_of(u)).collect();
    assert!(msns.windows(2).all(|w| w[1] == w[0] + 1), "{msns:?}");
    // What is served keeps one increasing timeline across the reset: no
    // segment's frames go back in time (the container's timestamps; these
    // scripted frames are not decodable pictures).
    let file = tempfile::Builder::new()
        .suffix(".mp4")
        .tempfile()
        .unwrap()
        .into_temp_path();
    download(&server, "reset", "source", &after, &file.to_path_buf());
    let pts: Vec<i64> = packets(&file, "v").iter().map(|p| p.0).collect();
    assert!(pts.len() > 100);
    assert!(
        pts.windows(2).all(|w| w[1] > w[0]),
        "the timeline goes back: {pts:?}"
    );
    // Every listed segment is within TARGETDURATION (no 10 s segment).
    assert!(after
        .segments
        .iter()
        .all(|(_, d)| *d <= after.target_duration + 0.5));
    let metrics = get(&format!("http://{}/metrics", server.admin)).text();
    assert!(
        metrics.contains("castline_ingest_clock_resets_total 1"),
        "{metrics}"
    );
}

#[test]
fn a_publisher_whose_frames_would_overfill_the_queue_is_disconnected() {
    let server = Server::start("[ingest]\nreconnect_grace = 3.0\nmax_queue_mb = 1.0\n");
    let (mut tcp, mut session) = publish(server.rtmp, "huge");
    metadata(&mut tcp, &mut session);
    let mut seq = BytesMut::from(&[0x17, 0, 0, 0, 0][..]);
    seq.put_slice(AVCC);
    video(&mut tcp, &mut session, seq.freeze(), 0);
    // Four 400 KB frames: 1.6 MB queued within a second, over the 1 MiB budget.
    for i in 0..4u32 {
        let mut body = BytesMut::from(&[0x17, 1, 0, 0, 0][..]);
        let nal = vec![0x65u8; 400_000];
        body.put_u32(nal.len() as u32);
        body.put_slice(&nal);
        let r = session.publish_video_data(body.freeze(), RtmpTimestamp::new(i * 33), false);
        if let Ok(r) = r {
            let _ = std::io::Write::write_all(
                &mut tcp,
                match &r {
                    rml_rtmp::sessions::ClientSessionResult::OutboundResponse(p) => &p.bytes,
                    _ => &[][..],
                },
            );
        }
    }
    assert!(
        closed_by_server(&mut tcp, Duration::from_secs(5)),
        "the oversized publisher was kept"
    );
    // The error is counted as the connection task ends, just after its
    // socket closes: give it a moment (a CI run read the metrics first).
    let counted = Instant::now();
    let key = "castline_rtmp_errors_total{reason=\"queue_bytes\"}";
    while server.metric(key).is_none() && counted.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(server.metric(key), Some(1.0), "closed for another reason");
}
