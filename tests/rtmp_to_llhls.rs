//! End to end: ffmpeg publishes over RTMP (x264 with B-frames + AAC), the
//! test reads LL-HLS over HTTP and decodes what is served with ffmpeg.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn check_ll_hls_rules(m: &Media) {
    check_rules(m, true);
}

/// `all_independent`: every segment must start with an IDR (false for a source
/// whose keyframes are further apart than hls.max_segment_duration).
fn check_rules(m: &Media, all_independent: bool) {
    assert!(m.version >= 6, "EXT-X-VERSION {}", m.version);
    assert!(m.target_duration >= 1.0);
    assert!(
        m.server_control.contains("CAN-BLOCK-RELOAD=YES"),
        "{}",
        m.server_control
    );
    let phb: f64 = attr(&m.server_control, "PART-HOLD-BACK")
        .unwrap()
        .parse()
        .unwrap();
    let hb: f64 = attr(&m.server_control, "HOLD-BACK")
        .unwrap()
        .parse()
        .unwrap();
    let skip: f64 = attr(&m.server_control, "CAN-SKIP-UNTIL")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        phb >= 3.0 * m.part_target - 1e-9,
        "PART-HOLD-BACK {phb} < 3 x {}",
        m.part_target
    );
    assert!(hb >= 3.0 * m.target_duration, "HOLD-BACK {hb}");
    assert!(skip >= 6.0 * m.target_duration, "CAN-SKIP-UNTIL {skip}");
    assert!(!m.maps.is_empty(), "EXT-X-MAP");
    assert!(!m.pdt.is_empty(), "EXT-X-PROGRAM-DATE-TIME");
    for (uri, d, _) in &m.parts {
        assert!(
            *d <= m.part_target + 1e-9,
            "part {uri} lasts {d} > PART-TARGET {}",
            m.part_target
        );
    }
    for (uri, d) in &m.segments {
        assert!(
            d.round() <= m.target_duration,
            "segment {uri} lasts {d}, TARGETDURATION {}",
            m.target_duration
        );
    }
    // The first part of every segment starts with an IDR.
    let mut last_msn = None;
    for (uri, _, independent) in &m.parts {
        let msn = msn_of(uri);
        if last_msn != Some(msn) && all_independent {
            assert!(
                *independent,
                "first part {uri} of a segment is not INDEPENDENT"
            );
        }
        last_msn = Some(msn);
    }
    // A segment's parts are listed while its end is within 3 target
    // durations of the playlist's end, and only then.
    let has_parts = |u: &str| m.parts.iter().any(|(p, _, _)| msn_of(p) == msn_of(u));
    let with_parts: Vec<f64> = m
        .segments
        .iter()
        .filter(|(u, _)| has_parts(u))
        .map(|(_, d)| *d)
        .collect();
    let open: f64 = m
        .parts
        .iter()
        .filter(|(p, _, _)| !m.segments.iter().any(|(u, _)| msn_of(u) == msn_of(p)))
        .map(|(_, d, _)| d)
        .sum();
    let limit = 3.0 * m.target_duration + 1e-6;
    let oldest_end = with_parts.iter().skip(1).sum::<f64>() + open;
    assert!(
        oldest_end <= limit,
        "parts listed for a segment that ends {oldest_end} s from the end: {}",
        m.text
    );
    if m.segments.len() > with_parts.len() {
        let older_end = with_parts.iter().sum::<f64>() + open;
        assert!(
            older_end > limit,
            "a segment that ends {older_end} s from the end lists no parts: {}",
            m.text
        );
    }
    assert!(m.preload_hint.is_some(), "EXT-X-PRELOAD-HINT");
    assert!(!m.parts.is_empty());
}

#[test]
fn rtmp_with_b_frames_becomes_ll_hls_that_decodes() {
    let server = Server::start("");
    let _p = Publisher::start(
        &server.rtmp_url("match"),
        Publish {
            gop_frames: 30,
            ..Default::default()
        },
    );

    // Multivariant: codecs from the SPS and AudioSpecificConfig, resolution, frame rate.
    let mv = wait_for(
        &server.url("/live/match/index.m3u8"),
        Duration::from_secs(60),
    );
    assert_eq!(mv.header("access-control-allow-origin"), Some("*"));
    let Ok((_, m3u8_rs::Playlist::MasterPlaylist(master))) = m3u8_rs::parse_playlist(&mv.body)
    else {
        panic!("not a multivariant playlist: {}", mv.text())
    };
    let v = &master.variants[0];
    assert_eq!(v.codecs.as_deref(), Some("avc1.64000d,mp4a.40.2"));
    assert_eq!(v.resolution.map(|r| (r.width, r.height)), Some((320, 240)));
    assert!((v.frame_rate.unwrap() - 30.0).abs() < 0.5);
    assert!(
        v.bandwidth > 64_000 && v.average_bandwidth.unwrap() > 0,
        "{v:?}"
    );
    assert_eq!(v.uri, "source/index.m3u8");

    let m = wait_segments(&server, "match", 6, Duration::from_secs(30));
    check_ll_hls_rules(&m);
    // Served as published: TARGETDURATION is hls.max_segment_duration (2 ×
    // the 1 s target), known before the first frame; segments still follow
    // the source's 1 s keyframes.
    assert_eq!(m.target_duration, 2.0);
    for (uri, d) in &m.segments[1..] {
        assert!((d - 1.0).abs() < 0.05, "{uri} lasts {d}");
    }

    // PART-TARGET never changes between reloads.
    for _ in 0..5 {
        let again = parse_media(&get(&server.url("/live/match/source/index.m3u8")).text());
        assert_eq!(again.part_target, m.part_target);
        assert_eq!(again.target_duration, m.target_duration);
        check_ll_hls_rules(&again);
        std::thread::sleep(Duration::from_millis(150));
    }

    // Everything served decodes, with the expected duration and A/V aligned.
    // One CMAF track per rendition: the video rendition holds no audio.
    let file = assert_decodes(&server, "match", "source", &m);
    let streams = probe_streams(&file.to_path_buf());
    assert!(streams.iter().all(|s| s.0 == "video"), "{streams:?}");
    let video = streams
        .iter()
        .find(|s| s.0 == "video")
        .expect("video stream");
    let am = wait_rendition(&server, "match", "audio", 6, Duration::from_secs(10));
    check_ll_hls_rules(&am);
    let afile = assert_decodes(&server, "match", "audio", &am);
    let astreams = probe_streams(&afile.to_path_buf());
    assert!(astreams.iter().all(|s| s.0 == "audio"), "{astreams:?}");
    let audio = astreams
        .iter()
        .find(|s| s.0 == "audio")
        .expect("audio stream");
    let listed: f64 = m.segments.iter().map(|(_, d)| d).sum();
    assert!(
        (video.2 - listed).abs() < 0.1,
        "decoded video lasts {} s, playlist lists {listed} s",
        video.2
    );
    assert!(
        (video.1 - audio.1).abs() < 0.050,
        "video starts at {} s, audio at {} s",
        video.1,
        audio.1
    );

    // A URL always names the same bytes; HEAD agrees with GET.
    let seg = server.url(&format!("/live/match/source/{}", m.segments[2].0));
    let (a, b) = (get(&seg), get(&seg));
    assert_eq!(a.body, b.body);
    assert!(a.header("cache-control").unwrap().contains("immutable"));
    let head = request("HEAD", &seg);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(a.body.len().to_string().as_str())
    );
}

#[test]
fn blocking_reload_preload_hint_and_error_codes() {
    // No slate: the 503 below needs a stream that stands still.
    let server = Server::start("[slate]\nenabled = false\n");
    let publisher = Publisher::start(&server.rtmp_url("block"), Publish::default());
    wait_segments(&server, "block", 2, Duration::from_secs(30));
    let playlist = server.url("/live/block/source/index.m3u8");

    // Ask for the part after the preload-hinted one: the request is held
    // until it exists, about 200 ms or more. The playlist read may come late
    // on a loaded machine, so the hold is asked of the first of up to five
    // tries that was early enough.
    let (msn, part, r) = (0..5)
        .map(|_| {
            let m = parse_media(&get(&playlist).text());
            let (msn, part) = part_of(&m.preload_hint.expect("preload hint"));
            let r = get(&format!("{playlist}?_HLS_msn={msn}&_HLS_part={}", part + 1));
            (msn, part, r)
        })
        .find(|(_, _, r)| r.status != 200 || r.elapsed >= Duration::from_millis(100))
        .expect("no blocking request of five was held 100 ms");
    assert_eq!(r.status, 200);
    let later = parse_media(&r.text());
    assert!(
        later.text.contains(&format!("/{msn}.{}.m4s", part + 1))
            || later.segments.iter().any(|(u, _)| msn_of(u) > msn),
        "held answer lacks the asked-for part:\n{}",
        later.text
    );
    // The same request made late (its part exists by now) is answered at
    // once with the newest playlist, not the one made when the part was new:
    // a late player catches up in one round trip.
    std::thread::sleep(Duration::from_millis(1500));
    let newest = parse_media(&get(&playlist).text());
    let again = get(&format!("{playlist}?_HLS_msn={msn}&_HLS_part={}", part + 1));
    assert_eq!(again.status, 200);
    let late = parse_media(&again.text());
    let last_part = |m: &Media| m.parts.last().map(|(u, _, _)| u.clone()).unwrap();
    assert!(
        part_of(&last_part(&late)) >= part_of(&last_part(&newest)),
        "late answer ends at {}, the live playlist was already at {}",
        last_part(&late),
        last_part(&newest)
    );
    assert!(
        part_of(&last_part(&late)) > (msn, part + 1),
        "newer than asked"
    );
    assert!(r
        .header("cache-control")
        .unwrap()
        .starts_with("public, max-age="));

    // The preload-hinted part: held until complete, then all of it. A blocking
    // reload returns the moment a part completes, so its hint has just opened
    // (a loaded machine may take the part's 200 ms to ask: up to five tries).
    let hinted_once = || {
        let m1 = parse_media(&get(&playlist).text());
        let (hm, hp) = part_of(&m1.preload_hint.expect("hint"));
        let fresh = get(&format!("{playlist}?_HLS_msn={hm}&_HLS_part={hp}"));
        assert_eq!(fresh.status, 200);
        let hint = parse_media(&fresh.text()).preload_hint.expect("hint");
        let hinted = get(&server.url(&format!("/live/block/source/{hint}")));
        assert_eq!(hinted.status, 200, "hinted part");
        (hint, hinted)
    };
    let (hint, hinted) = (0..5)
        .map(|_| hinted_once())
        .find(|(_, h)| h.elapsed >= Duration::from_millis(50))
        .expect("no hinted part of five was held until complete (all returned at once)");
    let whole = get(&server.url(&format!("/live/block/source/{hint}")));
    assert_eq!(
        hinted.body, whole.body,
        "the held response carried the whole part"
    );
    assert_eq!(&hinted.body[4..8], b"moof");

    // The audio rendition blocks the same way, on its own parts: a reload
    // for its hinted part answers once that part is listed.
    let audio = server.url("/live/block/audio/index.m3u8");
    let am = parse_media(&get(&audio).text());
    let (a_msn, a_part) = part_of(&am.preload_hint.expect("audio preload hint"));
    let r = get(&format!("{audio}?_HLS_msn={a_msn}&_HLS_part={a_part}"));
    assert_eq!(r.status, 200);
    let held = parse_media(&r.text());
    assert!(
        held.parts
            .iter()
            .any(|(u, _, _)| part_of(u) == (a_msn, a_part)),
        "the audio answer lacks part {a_msn}.{a_part}:\n{}",
        held.text
    );
    assert!(
        held.text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART"),
        "{}",
        held.text
    );

    // _HLS_msn=M alone waits for segment M to complete.
    let m2 = parse_media(&get(&playlist).text());
    let next = msn_of(&m2.segments.last().unwrap().0) + 1;
    let r = get(&format!("{playlist}?_HLS_msn={next}"));
    assert_eq!(r.status, 200);
    assert!(parse_media(&r.text())
        .segments
        .iter()
        .any(|(u, _)| msn_of(u) == next));

    // 400s: _HLS_part without _HLS_msn; _HLS_msn more than 2 past the last.
    let bad = get(&format!("{playlist}?_HLS_part=1"));
    assert_eq!(bad.status, 400);
    assert_eq!(bad.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        get(&format!("{playlist}?_HLS_msn={}&_HLS_part=0", next + 10)).status,
        400
    );

    // Delta update: _HLS_skip=YES is accepted and still a valid playlist.
    let delta = parse_media(&get(&format!("{playlist}?_HLS_skip=YES")).text());
    assert!(!delta.parts.is_empty());
    // Once the playlist is longer than CAN-SKIP-UNTIL (6 × TARGETDURATION =
    // 12 s here), segments are skipped; a v2 answer also says no
    // EXT-X-DATERANGE was removed.
    wait_segments(&server, "block", 14, Duration::from_secs(40));
    let v2 = get(&format!("{playlist}?_HLS_skip=v2")).text();
    let skip = v2
        .lines()
        .find(|l| l.starts_with("#EXT-X-SKIP:"))
        .unwrap_or_else(|| panic!("{v2}"));
    assert!(
        skip.ends_with(",RECENTLY-REMOVED-DATERANGES=\"\""),
        "{skip}"
    );
    let yes = get(&format!("{playlist}?_HLS_skip=YES")).text();
    assert!(!yes.contains("RECENTLY-REMOVED-DATERANGES"), "{yes}");
    assert!(yes.contains("#EXT-X-SKIP:"), "{yes}");
    // An unknown _HLS_skip value is ignored: where YES skips, it gets the
    // full playlist (not a 400, and not a delta).
    let no = get(&format!("{playlist}?_HLS_skip=NO"));
    assert_eq!(no.status, 200);
    let no = no.text();
    assert!(!no.contains("EXT-X-SKIP"), "{no}");
    assert!(
        parse_media(&no).segments.len() > parse_media(&yes).segments.len(),
        "the full playlist lists the segments the delta skips"
    );

    // 503 once a request has been held for 3 target durations: pause the publisher.
    publisher.signal("-STOP");
    std::thread::sleep(Duration::from_millis(500));
    let m3 = parse_media(&get(&playlist).text());
    let last = m3.parts.last().unwrap().0.clone();
    let msn = msn_of(&last);
    let started = Instant::now();
    let r = get(&format!("{playlist}?_HLS_msn={}&_HLS_part=0", msn + 1));
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        started.elapsed() >= Duration::from_millis(2900),
        "503 came after {:?}",
        started.elapsed()
    );
    publisher.signal("-CONT");
}

#[test]
fn two_second_gop_gives_two_second_segments_starting_with_idr() {
    let server = Server::start("");
    let _p = Publisher::start(
        &server.rtmp_url("gop2"),
        Publish {
            gop_frames: 60,
            ..Default::default()
        },
    );
    let m = wait_segments(&server, "gop2", 4, Duration::from_secs(40));
    check_ll_hls_rules(&m);
    assert_eq!(m.target_duration, 2.0);
    for (uri, d) in &m.segments {
        assert!((d - 2.0).abs() < 0.05, "{uri} lasts {d}");
    }
    // Each segment, after the init segment, starts with an I frame that is a keyframe.
    let base = server.url("/live/gop2/source/");
    let init = get(&format!("{base}{}", m.maps[0])).body;
    for (uri, _) in m.segments.iter().take(3) {
        let segment = get(&format!("{base}{uri}")).body;
        let (_, sync, key_i) = first_video_frame(&init, &segment);
        assert!(
            sync && key_i,
            "segment {uri} does not start with a keyframe"
        );
    }
}

#[test]
fn reconnect_within_grace_continues_the_playlist_with_a_discontinuity() {
    // A grace well beyond the 1 s drop plus ffmpeg's start on a loaded machine.
    let server = Server::start("[ingest]\nreconnect_grace = 15.0\n");
    let mut first = Publisher::start(&server.rtmp_url("blip"), Publish::default());
    let before = wait_segments(&server, "blip", 3, Duration::from_secs(30));
    let kept_uri = before.segments[1].0.clone();
    let kept = get(&server.url(&format!("/live/blip/source/{kept_uri}"))).body;
    first.kill(); // a network drop: no unpublish
    std::thread::sleep(Duration::from_millis(1000));
    let _second = Publisher::start(&server.rtmp_url("blip"), Publish::default());
    let after = poll(Duration::from_secs(30), || {
        let m = parse_media(&get(&server.url("/live/blip/source/index.m3u8")).text());
        let newer = m
            .segments
            .iter()
            .filter(|(u, _)| msn_of(u) > msn_of(&before.segments.last().unwrap().0) + 1)
            .count();
        if m.discontinuities > 0 && newer >= 2 {
            Ok(m)
        } else {
            Err(format!("no discontinuity after reconnect:\n{}", m.text))
        }
    });
    assert!(!after.endlist);
    assert_eq!(
        after.media_sequence, before.media_sequence,
        "same playlist, not a new stream"
    );
    // Numbering continues: every listed msn is unique and increasing.
    let msns: Vec<u64> = after.segments.iter().map(|(u, _)| msn_of(u)).collect();
    assert!(msns.windows(2).all(|w| w[1] == w[0] + 1), "{msns:?}");
    // A URL viewers already fetched still names the same bytes.
    assert_eq!(
        get(&server.url(&format!("/live/blip/source/{kept_uri}"))).body,
        kept
    );
    // And what is served across the discontinuity decodes.
    assert_decodes(&server, "blip", "source", &after);
    // Counted as a reconnect, not as a second publish.
    assert_eq!(
        server.metric("castline_reconnects_total{protocol=\"rtmp\"}"),
        Some(1.0)
    );
    assert_eq!(
        server.metric("castline_publishes_total{protocol=\"rtmp\"}"),
        Some(1.0)
    );
}

#[test]
fn stream_that_ends_gets_endlist_and_stays_watchable() {
    let server = Server::start("");
    let p = Publisher::start(
        &server.rtmp_url("short"),
        Publish {
            seconds: 5,
            ..Default::default()
        },
    );
    let (ok, err) = p.wait(Duration::from_secs(30));
    assert!(ok, "ffmpeg failed: {err}");
    let m = wait_for_endlist_within(
        &server,
        "/live/short/source/index.m3u8",
        Duration::from_secs(10),
    );
    assert!(m.preload_hint.is_none());
    let listed: f64 = m.segments.iter().map(|(_, d)| d).sum();
    assert!(
        (listed - 5.0).abs() < 0.5,
        "VOD lists {listed} s of a 5 s stream"
    );
    assert_decodes(&server, "short", "source", &m);
    // Blocking directives on an ended playlist are ignored, not held.
    let r = get(&server.url("/live/short/source/index.m3u8?_HLS_msn=999&_HLS_part=0"));
    assert_eq!(r.status, 200);
    assert!(r.elapsed < Duration::from_secs(1));
}

#[test]
fn video_only_and_audio_only_streams() {
    let server = Server::start("");
    let _v = Publisher::start(
        &server.rtmp_url("vonly"),
        Publish {
            audio: false,
            ..Default::default()
        },
    );
    let _a = Publisher::start(
        &server.rtmp_url("aonly"),
        Publish {
            video: false,
            ..Default::default()
        },
    );
    let mv = wait_for(
        &server.url("/live/vonly/index.m3u8"),
        Duration::from_secs(60),
    )
    .text();
    assert!(mv.contains("CODECS=\"avc1.64000d\""), "{mv}");
    let ma = wait_for(
        &server.url("/live/aonly/index.m3u8"),
        Duration::from_secs(60),
    )
    .text();
    assert!(
        ma.contains("CODECS=\"mp4a.40.2\"") && !ma.contains("RESOLUTION"),
        "{ma}"
    );
    for (stream, rendition) in [("vonly", "source"), ("aonly", "audio")] {
        let m = wait_rendition(&server, stream, rendition, 3, Duration::from_secs(30));
        check_ll_hls_rules(&m);
        assert_decodes(&server, stream, rendition, &m);
    }
}

#[test]
fn second_publisher_is_refused_and_first_carries_on() {
    let server = Server::start("");
    let mut first = Publisher::start(&server.rtmp_url("solo"), Publish::default());
    let m = wait_segments(&server, "solo", 2, Duration::from_secs(30));
    let second = Publisher::start(
        &server.rtmp_url("solo"),
        Publish {
            seconds: 5,
            ..Default::default()
        },
    );
    let (ok, _) = second.wait(Duration::from_secs(20));
    assert!(!ok, "a second publisher to a live stream must be refused");
    assert!(first.is_running());
    let later = wait_segments(
        &server,
        "solo",
        m.segments.len() + 3,
        Duration::from_secs(60),
    );
    assert_eq!(later.discontinuities, 0, "the live stream was disturbed");
}

#[test]
fn stream_keys_map_to_names_and_unknown_keys_are_refused() {
    let server = Server::start(
        "[ingest]\nreconnect_grace = 3.0\n[ingest.keys]\n\"s3cret-key\" = \"main\"\n",
    );
    let bad = Publisher::start(
        &server.rtmp_url("guess"),
        Publish {
            seconds: 5,
            ..Default::default()
        },
    );
    let (ok, _) = bad.wait(Duration::from_secs(20));
    assert!(!ok, "an unknown key must be refused");
    let _good = Publisher::start(&server.rtmp_url("s3cret-key"), Publish::default());
    let mv = wait_for(
        &server.url("/live/main/index.m3u8"),
        Duration::from_secs(60),
    );
    assert!(!mv.text().contains("s3cret"));
    assert_eq!(
        get(&server.url("/live/s3cret-key/index.m3u8")).status,
        404,
        "the key is never a playback name"
    );
}

#[test]
fn a_silent_publisher_is_taken_over_by_the_same_key() {
    let server = Server::start("[ingest]\nreconnect_grace = 3.0\ntakeover_after = 2.0\n");
    let first = Publisher::start(&server.rtmp_url("takeover"), Publish::default());
    let before = wait_segments(&server, "takeover", 3, Duration::from_secs(30));
    // The first encoder stops sending but its socket stays open (as after a
    // network change the OS has not noticed yet). The new connection comes
    // 1 s later, sooner than the takeover time: its publish is held, then
    // it takes over (ffmpeg gives up after one refusal).
    first.signal("-STOP");
    std::thread::sleep(Duration::from_millis(1000));
    let _second = Publisher::start(&server.rtmp_url("takeover"), Publish::default());
    let last_before = msn_of(&before.segments.last().unwrap().0);
    let after = poll(Duration::from_secs(15), || {
        let m = parse_media(&get(&server.url("/live/takeover/source/index.m3u8")).text());
        let newer = m
            .segments
            .iter()
            .filter(|(u, _)| msn_of(u) > last_before + 1)
            .count();
        if m.discontinuities > 0 && newer >= 2 {
            Ok(m)
        } else {
            Err(format!("the new publisher did not take over:\n{}", m.text))
        }
    });
    assert!(!after.endlist);
    assert_eq!(
        after.media_sequence, before.media_sequence,
        "the same playlist goes on"
    );
    assert_decodes(&server, "takeover", "source", &after);
    // The old connection was closed: woken up, the first ffmpeg fails.
    first.signal("-CONT");
    let (ok, _) = first.wait(Duration::from_secs(10));
    assert!(
        !ok,
        "the taken-over publisher's connection should be closed"
    );
    let metrics = get(&format!("http://{}/metrics", server.admin)).text();
    assert!(
        metrics.contains("castline_rtmp_errors_total{reason=\"taken_over\"} 1"),
        "{metrics}"
    );
}

#[test]
fn an_ended_session_stays_servable_when_its_name_goes_live_again() {
    let server = Server::start("");
    let short = Publish {
        seconds: 4,
        ..Default::default()
    };
    let (ok, err) =
        Publisher::start(&server.rtmp_url("twice"), short).wait(Duration::from_secs(30));
    assert!(ok, "{err}");
    let vod = wait_for_endlist_within(
        &server,
        "/live/twice/source/index.m3u8",
        Duration::from_secs(10),
    );
    let seg = server.url(&format!("/live/twice/source/{}", vod.segments[1].0));
    let init = server.url(&format!("/live/twice/source/{}", vod.maps[0]));
    let (seg_bytes, init_bytes) = (get(&seg).body, get(&init).body);
    // The same name goes live again: its playlists are the new session's...
    let _again = Publisher::start(&server.rtmp_url("twice"), Publish::default());
    let live = poll(Duration::from_secs(20), || {
        let r = get(&server.url("/live/twice/source/index.m3u8"));
        let m = if r.status == 200 {
            parse_media(&r.text())
        } else {
            Media::default() // the new session has no playlist yet
        };
        if !m.endlist && !m.maps.is_empty() && m.maps[0] != vod.maps[0] {
            Ok(m)
        } else {
            Err("the new session never showed".into())
        }
    });
    assert!(!live.endlist);
    // ...and the ended session's media still answers, with the same bytes.
    let (s, i) = (get(&seg), get(&init));
    assert_eq!((s.status, i.status), (200, 200));
    assert_eq!(s.body, seg_bytes);
    assert_eq!(i.body, init_bytes);
}

#[test]
fn past_the_memory_budget_a_new_stream_is_refused_and_the_live_one_goes_on() {
    // Budget 0.5 MiB: the first stream's DVR window grows to it, then
    // shortens to stay within it; near it a new stream is refused.
    let server = Server::start("[ingest]\nreconnect_grace = 3.0\n[hls]\nmemory_budget_mb = 0.5\n");
    let _first = Publisher::start(&server.rtmp_url("first"), Publish::default());
    let held = || -> u64 {
        get(&format!("http://{}/metrics", server.admin))
            .text()
            .lines()
            .find_map(|l| l.strip_prefix("castline_store_bytes "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let start = Instant::now();
    while held() < 480 * 1024 {
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "the store never filled"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let before = wait_segments(&server, "first", 1, Duration::from_secs(5));
    let second = Publisher::start(
        &server.rtmp_url("second"),
        Publish {
            seconds: 5,
            ..Default::default()
        },
    );
    let (ok, err) = second.wait(Duration::from_secs(20));
    assert!(
        !ok,
        "a new stream past the memory budget must be refused: {err}"
    );
    let metrics = get(&format!("http://{}/metrics", server.admin)).text();
    assert!(
        metrics.contains("castline_rtmp_errors_total{reason=\"memory_budget\"} 1"),
        "{metrics}"
    );
    assert_eq!(get(&server.url("/live/second/index.m3u8")).status, 404);
    // The live stream goes on (its window no longer grows: the last
    // segment's number is what moves).
    let last = |m: &Media| m.media_sequence + m.segments.len() as u64;
    let after = poll(Duration::from_secs(20), || {
        let m = wait_segments(&server, "first", 1, Duration::from_secs(5));
        if last(&m) >= last(&before) + 2 {
            Ok(m)
        } else {
            Err(m.text)
        }
    });
    assert_eq!(after.discontinuities, 0, "the live stream was disturbed");
    // The live stream gave up DVR to stay within the budget: the store holds
    // it and at most the segment a trim waits for (about 120 kB here).
    let trims = get(&format!("http://{}/metrics", server.admin))
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("castline_budget_trims_total{reason=\"memory_budget\"} "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(trims > 0, "the live window never shortened");
    let now = held();
    assert!(now < 512 * 1024 + 200 * 1024, "{now} bytes held");
}

#[test]
fn a_part_is_served_as_long_as_its_segment_is_in_the_window() {
    let server = Server::start("");
    let _p = Publisher::start(&server.rtmp_url("keep"), Publish::default());
    let playlist = server.url("/live/keep/source/index.m3u8");
    let first = wait_segments(&server, "keep", 2, Duration::from_secs(30));
    let (part_uri, _, _) = first.parts.first().cloned().expect("a listed part");
    let msn = msn_of(&part_uri);
    let part_bytes = get(&server.url(&format!("/live/keep/source/{part_uri}"))).body;
    // Wait until the playlist no longer lists that segment's parts.
    let later = poll(Duration::from_secs(30), || {
        let m = parse_media(&get(&playlist).text());
        if m.parts.iter().all(|(u, _, _)| msn_of(u) > msn) && m.segments.len() > 4 {
            Ok(m)
        } else {
            Err(m.text)
        }
    });
    assert!(
        later.segments.iter().any(|(u, _)| msn_of(u) == msn),
        "still in the window"
    );
    let again = get(&server.url(&format!("/live/keep/source/{part_uri}")));
    assert_eq!(again.status, 200, "a part outlives its listing");
    assert_eq!(again.body, part_bytes);
    // The segment is its parts, byte for byte.
    let seg_uri = later
        .segments
        .iter()
        .find(|(u, _)| msn_of(u) == msn)
        .unwrap()
        .0
        .clone();
    let seg = get(&server.url(&format!("/live/keep/source/{seg_uri}")));
    assert_eq!(seg.status, 200);
    assert_eq!(
        seg.header("content-length"),
        Some(seg.body.len().to_string().as_str())
    );
    assert!(
        seg.body.starts_with(&part_bytes),
        "segment {msn} begins with its part 0"
    );
}

#[test]
fn media_answers_etags_304s_and_byte_ranges_and_http_details_hold() {
    let server = Server::start("");
    let _p = Publisher::start(&server.rtmp_url("cdn"), Publish::default());
    let m = wait_segments(&server, "cdn", 2, Duration::from_secs(30));
    let base = server.url("/live/cdn/source/");
    let init_url = format!("{base}{}", m.maps[0]);
    let seg_url = format!("{base}{}", m.segments[0].0);
    for url in [&init_url, &seg_url] {
        let full = get(url);
        assert_eq!(full.status, 200);
        let etag = full.header("etag").expect("ETag").to_string();
        assert_eq!(full.header("accept-ranges"), Some("bytes"));
        let keys = full.header("surrogate-key").expect("Surrogate-Key");
        assert_eq!(keys, "castline-cdn castline-cdn-source");
        // Revalidation: 304, no body.
        let again = request_with("GET", url, &[("If-None-Match", &etag)]);
        assert_eq!(again.status, 304);
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), Some(etag.as_str()));
        // One range: 206 with exactly those bytes.
        let len = full.body.len();
        let r = request_with("GET", url, &[("Range", "bytes=10-99")]);
        assert_eq!(r.status, 206);
        assert_eq!(r.body, &full.body[10..100]);
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes 10-99/{len}").as_str())
        );
        let tail = request_with("GET", url, &[("Range", "bytes=-16")]);
        assert_eq!(tail.body, &full.body[len - 16..]);
        // Past the end: 416 naming the length.
        let past = request_with("GET", url, &[("Range", &format!("bytes={len}-"))]);
        assert_eq!(past.status, 416);
        assert_eq!(
            past.header("content-range"),
            Some(format!("bytes */{len}").as_str())
        );
    }
    // 405 says what is allowed; a CORS preflight allows Range.
    let post = request("POST", &server.url("/live/cdn/index.m3u8"));
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD, OPTIONS"));
    let pre = request("OPTIONS", &seg_url);
    assert!(pre
        .header("access-control-allow-headers")
        .is_some_and(|h| h.contains("Range")));
    assert!(get(&seg_url)
        .header("access-control-expose-headers")
        .is_some_and(|h| h.contains("Content-Range")));
    // Playlists come gzip-compressed to a client that takes it, plain otherwise.
    let pl = server.url("/live/cdn/source/index.m3u8");
    let gz = request_with("GET", &pl, &[("Accept-Encoding", "gzip, br")]);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.header("vary"), Some("Accept-Encoding"));
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz.body[..]), &mut text)
        .expect("gzip");
    assert!(parse_media(&text).segments.len() >= 2, "{text}");
    let plain = request_with("GET", &pl, &[("Accept-Encoding", "gzip;q=0")]);
    assert_eq!(plain.header("content-encoding"), None);
    assert!(plain.text().starts_with("#EXTM3U"));
    assert_eq!(get(&seg_url).header("vary"), None, "media does not vary");
    // Egress by object class: at least the two full media bodies fetched above.
    let text = get(&format!("http://{}/metrics", server.admin)).text();
    let sent = |class: &str| -> f64 {
        let series =
            format!("castline_http_response_bytes_total{{class=\"{class}\",cdn=\"none\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&series)?.parse().ok())
            .unwrap_or(0.0)
    };
    let fetched = (get(&init_url).body.len() + get(&seg_url).body.len()) as f64;
    assert!(sent("media") >= fetched, "{} < {fetched}", sent("media"));
    assert!(sent("playlist") > 0.0);
}

#[test]
fn every_object_class_carries_its_own_cache_and_purge_headers() {
    let server = Server::start("");
    let mut p = Publisher::start(&server.rtmp_url("cls"), Publish::default());
    let m = wait_segments(&server, "cls", 2, Duration::from_secs(30));
    let headers = |r: &Reply| {
        (
            r.header("cache-control").map(str::to_string),
            r.header("surrogate-key").map(str::to_string),
            r.header("vary").map(str::to_string),
        )
    };
    let s = |v: &str| Some(v.to_string());
    // The multivariant: short-lived, purged with the stream, not compressed.
    let mv = get(&server.url("/live/cls/index.m3u8"));
    assert_eq!(mv.status, 200);
    assert_eq!(
        headers(&mv),
        (s("public, max-age=2"), s("castline-cls"), None)
    );
    // A live media playlist: at most a second, and it varies by encoding
    // (gzip or not) even when sent plain.
    let live = get(&server.url("/live/cls/source/index.m3u8"));
    assert_eq!(
        headers(&live),
        (
            s("public, max-age=1"),
            s("castline-cls castline-cls-source"),
            s("Accept-Encoding")
        )
    );
    // A blocking reload names a fixed future state: six target durations
    // (draft-pantos-hls-rfc8216bis, Appendix B.1).
    let (msn, part) = part_of(m.preload_hint.as_deref().expect("hint"));
    let blocking = get(&server.url(&format!(
        "/live/cls/source/index.m3u8?_HLS_msn={msn}&_HLS_part={part}"
    )));
    assert_eq!(blocking.status, 200);
    let six = format!(
        "public, max-age={}",
        6 * (m.target_duration.ceil() as u64).max(1)
    );
    assert_eq!(blocking.header("cache-control"), Some(six.as_str()));
    // Init segments, segments and parts: immutable, never varying.
    let base = server.url("/live/cls/source/");
    for uri in [&m.maps[0], &m.segments[0].0, &m.parts[0].0] {
        let r = get(&format!("{base}{uri}"));
        assert_eq!(r.status, 200, "{uri}");
        assert_eq!(
            headers(&r),
            (
                s("public, max-age=31536000, immutable"),
                s("castline-cls castline-cls-source"),
                None
            ),
            "{uri}"
        );
    }
    // An error is short-lived and purges nothing.
    let missing = get(&server.url("/live/cls/source/nosuch.m4s"));
    assert_eq!(missing.status, 404);
    assert_eq!(headers(&missing), (s("no-cache"), None, None));
    // Ended: the playlist no longer changes, so it may live longer, and
    // PART-HOLD-BACK stays wherever PART-INF does.
    p.kill();
    let ended = wait_for_endlist(&server, "/live/cls/source/index.m3u8");
    let r = get(&server.url("/live/cls/source/index.m3u8"));
    assert_eq!(r.header("cache-control"), Some("public, max-age=10"));
    if ended.text.contains("#EXT-X-PART-INF") {
        assert!(
            ended.server_control.contains("PART-HOLD-BACK="),
            "{}",
            ended.text
        );
    }
}

#[test]
fn a_player_asking_as_the_stream_starts_is_held_until_the_multivariant_exists() {
    // Passthrough with a 4 s GOP: every rendition's first segment, and so
    // the multivariant, comes only at the cut forced at max_segment_duration
    // (2 s by default), well after the stream opens.
    let server = Server::start("[ingest]\nreconnect_grace = 3.0\n[transcode]\nenabled = false\n");
    let _p = Publisher::start(
        &server.rtmp_url("early"),
        Publish {
            gop_frames: 120,
            ..Default::default()
        },
    );
    let api = || -> serde_json::Value {
        let r = get(&format!("http://{}/api/v1/streams/early", server.admin));
        serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null)
    };
    // The stream is open (its renditions exist) before a player can start.
    let open = poll_every(Duration::from_secs(30), Duration::from_millis(20), || {
        let a = api();
        if a["renditions"].as_array().is_some_and(|r| !r.is_empty()) {
            Ok(a)
        } else {
            Err(format!("never open: {a}"))
        }
    });
    assert_eq!(open["playable"], false, "{open}");
    // A player asking now is held and gets the multivariant, not a 404.
    let r = get(&server.url("/live/early/index.m3u8"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("#EXT-X-STREAM-INF"), "{}", r.text());
    assert_eq!(api()["playable"], true);
    // A stream nobody publishes is not waited for.
    let none = get(&server.url("/live/nobody/index.m3u8"));
    assert_eq!(none.status, 404);
}

#[test]
fn http2_with_prior_knowledge_serves_blocking_playlists_and_media_on_one_connection() {
    let server = Server::start("");
    let _p = Publisher::start(&server.rtmp_url("h2"), Publish::default());
    let m = wait_segments(&server, "h2", 2, Duration::from_secs(30));
    let hint = m.preload_hint.clone().expect("hint");
    let (msn, part) = part_of(&hint);
    let playlist = server.url(&format!(
        "/live/h2/source/index.m3u8?_HLS_msn={msn}&_HLS_part={part}"
    ));
    let hinted = server.url(&format!("/live/h2/source/{hint}"));
    let segment = server.url(&format!("/live/h2/source/{}", m.segments[0].0));
    // curl over HTTP/2 without TLS (h2c, prior knowledge).
    let out = Command::new("curl")
        .args(["-s", "--http2-prior-knowledge", "-o", "/dev/null"])
        .args([
            "-w",
            "%{http_version} %{response_code} %{size_download}",
            &segment,
        ])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("2 200 "), "{text}");
    // A player's requests on one HTTP/2 connection: the blocking reload and
    // the hinted part wait together while a segment is fetched beside them.
    // (hyper's client: curl 7.88, Debian 12's, fails reusing an h2c connection
    // with "Error in the HTTP2 framing layer", curl issue #10634.)
    let rt = tokio::runtime::Runtime::new().unwrap();
    let answers = rt.block_on(async {
        use http_body_util::BodyExt;
        let tcp = tokio::net::TcpStream::connect(server.http).await.unwrap();
        let (sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .expect("h2c handshake");
        tokio::spawn(conn);
        let fetch = |url: String| {
            let mut sender = sender.clone();
            async move {
                let req = http::Request::get(url)
                    .body(http_body_util::Empty::<bytes::Bytes>::new())
                    .unwrap();
                let resp = sender.send_request(req).await.expect("response");
                let (status, version) = (resp.status().as_u16(), resp.version());
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                (status, version, body.len())
            }
        };
        tokio::join!(fetch(playlist), fetch(hinted), fetch(segment.clone()))
    });
    for (status, version, len) in [answers.0, answers.1, answers.2] {
        assert_eq!((status, version), (200, http::Version::HTTP_2));
        assert!(len > 0);
    }
    // HTTP/1.1 still answers on the same port.
    assert_eq!(get(&segment).status, 200);
}

#[test]
fn with_a_cdn_secret_only_requests_carrying_it_are_answered() {
    let server = Server::start(
        "[ingest]\nreconnect_grace = 3.0\n[origin]\ncdn_secret = \"edge-only-7f3a\"\n",
    );
    let _p = Publisher::start(&server.rtmp_url("edge"), Publish::default());
    let url = server.url("/live/edge/index.m3u8");
    poll(Duration::from_secs(30), || {
        let r = request_with("GET", &url, &[("X-Castline-CDN-Secret", "edge-only-7f3a")]);
        if r.status == 200 {
            Ok(r)
        } else {
            Err(format!("{}: {}", r.status, r.text()))
        }
    });
    let without = get(&url);
    assert_eq!(without.status, 403);
    assert_eq!(without.header("cache-control"), Some("no-store"));
    let wrong = request_with("GET", &url, &[("X-Castline-CDN-Secret", "edge-only-7f3b")]);
    assert_eq!(wrong.status, 403);
    // Health and metrics stay on the admin port, outside the secret.
    assert_eq!(get(&format!("http://{}/healthz", server.admin)).status, 200);
}

#[test]
fn signed_urls_play_and_unsigned_expired_or_tampered_ones_get_403() {
    let server = Server::start(
        "[ingest]\nreconnect_grace = 3.0\n[origin]\nsigning_key = \"a-long-random-signing-key\"\n",
    );
    let _p = Publisher::start(&server.rtmp_url("paid"), Publish::default());
    let signed = server.signed_url("paid", "1h");
    let mv = wait_for(&signed, Duration::from_secs(30));
    // Relative URIs inherit the token: the media playlist and its media play.
    let base = signed.trim_end_matches("index.m3u8").to_string();
    let m = wait_media_at(
        &format!("{base}source/index.m3u8"),
        2,
        Duration::from_secs(30),
    );
    let seg = get(&format!("{base}source/{}", m.segments[0].0));
    assert_eq!(seg.status, 200, "{}", mv.text());
    assert!(!seg.body.is_empty());
    // Without the token, with another stream's, tampered, or expired: 403.
    assert_eq!(get(&server.url("/live/paid/index.m3u8")).status, 403);
    // A valid token in x-castline-token counts only where a CDN is trusted to
    // have checked it (origin.cdn_checks_tokens): not here, so a viewer's
    // header cannot get an unsigned path into a cache.
    let token = &signed[signed.find("/s/").unwrap()..signed.find("/live/").unwrap()];
    let header = [("x-castline-token", token)];
    let unsigned = request_with("GET", &server.url("/live/paid/index.m3u8"), &header);
    assert_eq!(unsigned.status, 403);
    let other = signed.replace("/live/paid/", "/live/free/");
    assert_eq!(get(&other).status, 403);
    let mut tampered = signed.clone();
    let at = tampered.find("/live/").unwrap() - 1;
    let flip = if tampered.as_bytes()[at] == b'0' {
        "1"
    } else {
        "0"
    };
    tampered.replace_range(at..at + 1, flip);
    assert_eq!(get(&tampered).status, 403);
    let short = server.signed_url("paid", "1s");
    std::thread::sleep(Duration::from_millis(2500));
    let expired = get(&short);
    assert_eq!(expired.status, 403);
    assert!(expired.text().contains("expired"), "{}", expired.text());
}

#[test]
fn with_a_certificate_the_origin_serves_tls_with_alpn_h2_and_http_1_1() {
    let dir = tempfile::tempdir().unwrap();
    let (server, cert) = tls_server(dir.path());
    let _p = Publisher::start(&server.rtmp_url("tls"), Publish::default());
    let url = format!("https://{}/live/tls/source/index.m3u8", server.http);
    let curl = |http: &str| {
        let out = Command::new("curl")
            .args(["-s", "--cacert"])
            .arg(&cert)
            .args([http, "-w", "\n%{http_version} %{response_code}", &url])
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let h2 = poll(Duration::from_secs(30), || {
        let out = curl("--http2");
        if out.ends_with("2 200") {
            Ok(out)
        } else {
            Err(out)
        }
    });
    assert!(
        h2.ends_with("2 200"),
        "ALPN h2 over TLS, verified certificate: {h2}"
    );
    assert!(h2.starts_with("#EXTM3U"));
    let h1 = curl("--http1.1");
    assert!(h1.ends_with("1.1 200"), "{h1}");
}

#[test]
fn a_segment_that_leaves_the_playlist_stays_servable_for_its_duration_plus_the_playlists() {
    // A 3 s window of 1 s segments: an unlisted segment must stay for
    // 1 s + the longest playlist (3 s + 1 s of overrun), RFC 8216 6.2.2.
    let server = Server::start("[ingest]\nreconnect_grace = 3.0\n[hls]\ndvr_window = 3.0\n");
    let _p = Publisher::start(&server.rtmp_url("retain"), Publish::default());
    let playlist = server.url("/live/retain/source/index.m3u8");
    let first = wait_segments(&server, "retain", 1, Duration::from_secs(30));
    let (seg_uri, _) = first.segments.first().cloned().expect("a segment");
    let msn = msn_of(&seg_uri);
    let url = server.url(&format!("/live/retain/source/{seg_uri}"));
    let bytes = get(&url).body;
    let start = Instant::now();
    // The start of the last poll that still listed it: it left the
    // playlist after that instant (a slow poll cannot make it look later).
    let mut unlisted = Instant::now();
    loop {
        let polled = Instant::now();
        if parse_media(&get(&playlist).text()).media_sequence > msn {
            break;
        }
        unlisted = polled;
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "segment {msn} never left the playlist"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Still there 4 s after it left (it is kept for 5 s).
    while unlisted.elapsed() < Duration::from_secs(4) {
        let r = get(&url);
        assert_eq!(
            r.status,
            200,
            "gone {:?} after leaving the playlist",
            unlisted.elapsed()
        );
        assert_eq!(r.body, bytes);
        std::thread::sleep(Duration::from_millis(500));
    }
    // Then freed (not kept for the life of the stream).
    while get(&url).status == 200 {
        assert!(
            unlisted.elapsed() < Duration::from_secs(15),
            "segment {msn} is never freed"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(get(&url).status, 404);
}

#[test]
fn a_ten_second_gop_in_passthrough_is_cut_at_the_maximum_and_still_decodes() {
    let server = Server::start("[ingest]\nreconnect_grace = 3.0\n[transcode]\nenabled = false\n");
    let _p = Publisher::start(
        &server.rtmp_url("longgop"),
        Publish {
            gop_frames: 300,
            ..Default::default()
        },
    );
    // The playlist appears with the first part, before any segment is
    // complete: TARGETDURATION is known from the config.
    let playlist = server.url("/live/longgop/source/index.m3u8");
    let first = wait_for(&playlist, Duration::from_secs(60));
    let first = parse_media(&first.text());
    assert!(
        first.segments.is_empty() && !first.parts.is_empty(),
        "{}",
        first.text
    );
    assert_eq!(first.target_duration, 2.0);

    let m = wait_segments(&server, "longgop", 7, Duration::from_secs(40));
    check_rules(&m, false);
    assert_eq!(m.target_duration, 2.0, "TARGETDURATION never changes");
    for (uri, d) in &m.segments {
        // Cut at the first frame presented 2 s after the last cut: a frame or
        // two over in decode order, never over TARGETDURATION once rounded.
        assert!(
            *d < 2.1 && d.round() <= 2.0,
            "{uri} lasts {d}: past hls.max_segment_duration"
        );
    }
    // Segments cut between keyframes start with a part that is not
    // INDEPENDENT; the keyframe ones (every 10 s) with one that is.
    let firsts: Vec<bool> = m
        .parts
        .iter()
        .filter(|(u, _, _)| u.ends_with(".0.m4s"))
        .map(|(_, _, independent)| *independent)
        .collect();
    assert!(
        firsts.contains(&false),
        "no segment was cut between keyframes: {}",
        m.text
    );
    let metrics = get(&format!("http://{}/metrics", server.admin)).text();
    let forced: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("castline_segments_without_keyframe_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(forced >= 3.0, "{metrics}");
    // The multivariant no longer promises independent segments.
    let mv = get(&server.url("/live/longgop/index.m3u8")).text();
    assert!(!mv.contains("EXT-X-INDEPENDENT-SEGMENTS"), "{mv}");
    // Played from its start, the whole window decodes without error.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("longgop.mp4");
    download(&server, "longgop", "source", &m, &path);
    let errors = decode_errors(&path);
    assert!(errors.trim().is_empty(), "{errors}");
}

/// `hls.part_addressing = "byteranges"`: a part is a byte range of its
/// segment's URL, the preload hint the rest of the open segment. The open
/// segment is served as it grows: whole (200, chunked), or from the hint's
/// offset to 2^53-1 as draft-pantos-hls-rfc8216bis 4.4.5.3 has players ask
/// (206, `Content-Range: bytes START-9007199254740991/*`, RFC 8673); both
/// end with the segment and are its bytes. A listed part's range is that
/// part, the same bytes as its own URL.
#[test]
fn byte_range_parts_name_their_segment_and_an_open_segment_is_served_as_it_grows() {
    let server = Server::start("[hls]\npart_addressing = \"byteranges\"\n");
    let _p = Publisher::start(&server.rtmp_url("br"), Publish::default());
    wait_segments(&server, "br", 2, Duration::from_secs(30));
    let base = server.url("/live/br/source/");
    let text = get(&server.url("/live/br/source/index.m3u8")).text();
    let hint = text
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:"))
        .expect("a preload hint");
    let uri = attr(hint, "URI").expect("hint URI").to_string();
    let start: usize = attr(hint, "BYTERANGE-START")
        .expect("BYTERANGE-START")
        .parse()
        .unwrap();
    assert_eq!(
        uri.matches('.').count(),
        1,
        "the hint names a segment: {hint}"
    );
    // The open segment's listed parts, each `n@o` of it.
    let ranges: Vec<(usize, usize)> = text
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:") && attr(l, "URI") == Some(uri.as_str()))
        .map(|l| {
            let (n, o) = attr(l, "BYTERANGE")
                .expect("BYTERANGE")
                .split_once('@')
                .unwrap();
            (n.parse().unwrap(), o.parse().unwrap())
        })
        .collect();
    assert_eq!(
        ranges.iter().map(|(n, _)| n).sum::<usize>(),
        start,
        "the hint starts where the listed parts end: {text}"
    );
    let url = format!("{base}{uri}");
    // A revalidation of the segment being written: its URL names its bytes
    // for good, so 304 (complete or not).
    let etag = format!("\"br/source/{uri}\"");
    let again = request_with("GET", &url, &[("If-None-Match", etag.as_str())]);
    assert_eq!(again.status, 304, "{}", again.text());
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    let whole = {
        let url = url.clone();
        std::thread::spawn(move || get(&url))
    };
    let rest = {
        let url = url.clone();
        let range = format!("bytes={start}-9007199254740991");
        std::thread::spawn(move || request_with("GET", &url, &[("Range", range.as_str())]))
    };
    // A listed part of the open segment, by its range.
    let listed = ranges.first().map(|&(n, o)| {
        let r = request_with(
            "GET",
            &url,
            &[("Range", &format!("bytes={o}-{}", o + n - 1))],
        );
        (n, o, r)
    });
    let (whole, rest) = (whole.join().unwrap(), rest.join().unwrap());
    let done = get(&url);
    assert_eq!(done.status, 200);
    assert!(
        done.header("content-length").is_some(),
        "complete: a length"
    );
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("transfer-encoding"), Some("chunked"));
    assert_eq!(whole.body, done.body, "the growing answer is the segment");
    assert_eq!(rest.status, 206);
    assert_eq!(
        rest.header("content-range"),
        Some(format!("bytes {start}-9007199254740991/*").as_str())
    );
    assert_eq!(rest.body, &done.body[start..], "the hint's bytes");
    if let Some((n, o, r)) = listed {
        assert_eq!(r.status, 206);
        assert_eq!(r.body, &done.body[o..o + n]);
        assert!(r
            .header("content-range")
            .is_some_and(|c| c.starts_with(&format!("bytes {o}-{}/", o + n - 1))));
    }
    // Every listed part of a complete segment: its range is its own URL's bytes.
    let m = parse_media(&get(&server.url("/live/br/source/index.m3u8")).text());
    let (seg_uri, _) = m.segments.last().expect("a complete segment").clone();
    let seg = get(&format!("{base}{seg_uri}")).body;
    let text = m.text.clone();
    let mut checked = 0;
    for (i, l) in text
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:") && attr(l, "URI") == Some(seg_uri.as_str()))
        .enumerate()
    {
        let (n, o) = attr(l, "BYTERANGE").unwrap().split_once('@').unwrap();
        let (n, o): (usize, usize) = (n.parse().unwrap(), o.parse().unwrap());
        let part_url = format!("{base}{}", seg_uri.replace(".m4s", &format!(".{i}.m4s")));
        assert_eq!(
            &seg[o..o + n],
            &get(&part_url).body[..],
            "part {i} of {seg_uri}"
        );
        checked += 1;
    }
    assert!(
        checked > 0,
        "the last complete segment lists its parts: {text}"
    );
}
