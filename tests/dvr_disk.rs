//! The disk tier, end to end: a real ffmpeg publish whose DVR window is
//! longer than the memory window is served from disk past it (and decodes),
//! and an ended session survives a restart of castline on the same data dir
//! with the same bytes under every URL it served.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Memory holds 3 s of each rendition; the DVR window is 30 s.
const CONFIG: &str = "[ingest]\nreconnect_grace = 3.0\n[transcode]\nenabled = false\n\
    [server]\ndrain_delay = 0.0\ndrain_timeout = 3.0\n\
    [hls]\nmemory_window = 3.0\ndvr_window = 30.0\n";

/// The media playlist paths the multivariant of `stream` lists.
fn media_playlists(server: &Server, stream: &str) -> Vec<String> {
    let text = get(&server.url(&format!("/live/{stream}/index.m3u8"))).text();
    let mut uris: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_string)
        .collect();
    uris.extend(
        text.lines()
            .filter(|l| l.starts_with("#EXT-X-MEDIA:"))
            .filter_map(|l| attr(l, "URI").map(str::to_string)),
    );
    assert!(!uris.is_empty(), "no renditions in {text}");
    uris.into_iter()
        .map(|u| format!("/live/{stream}/{u}"))
        .collect()
}

/// Every object a player could fetch from `stream` now: the playlists,
/// and every init, segment and part they list, with their bytes.
fn every_object(server: &Server, stream: &str) -> Vec<(String, Vec<u8>)> {
    let mut paths = vec![format!("/live/{stream}/index.m3u8")];
    for playlist in media_playlists(server, stream) {
        let m = parse_media(&get(&server.url(&playlist)).text());
        let dir = playlist.trim_end_matches("index.m3u8").to_string();
        paths.push(playlist);
        let listed = m.maps.iter().chain(m.segments.iter().map(|(u, _)| u));
        paths.extend(listed.map(|u| format!("{dir}{u}")));
        paths.extend(m.parts.iter().map(|(u, _, _)| format!("{dir}{u}")));
    }
    paths
        .into_iter()
        .map(|p| {
            let r = get(&server.url(&p));
            assert_eq!(r.status, 200, "{p}");
            (p, r.body)
        })
        .collect()
}

#[test]
fn a_dvr_window_longer_than_memory_is_served_from_disk_and_decodes() {
    let server = Server::start_logged(CONFIG);
    let publisher = Publisher::start(
        &server.rtmp_url("dvr"),
        Publish {
            seconds: 14,
            ..Default::default()
        },
    );
    let playlist = "/live/dvr/source/index.m3u8";
    wait_for(&server.url(playlist), Duration::from_secs(60));
    let m = poll(Duration::from_secs(30), || {
        let m = parse_media(&get(&server.url(playlist)).text());
        if m.segments.len() >= 10 {
            Ok(m)
        } else {
            Err(format!("the DVR window never held 10 segments: {}", m.text))
        }
    });
    let (first, _) = &m.segments[0];
    let (epoch, file) = first.split_once('/').expect("EPOCH/MSN.m4s");
    let on_disk = server.sessions_dir().join("dvr").join(epoch).join("source");
    let file_bytes = std::fs::read(on_disk.join(file))
        .unwrap_or_else(|e| panic!("segment {first} is not on disk ({e})"));
    let (newest, _) = m.segments.last().unwrap();
    let newest_file = newest.split_once('/').unwrap().1;
    assert!(
        !on_disk.join(newest_file).exists(),
        "the newest segment {newest} should still be only in memory"
    );

    // The segment and its parts are served from the file.
    let base = server.url("/live/dvr/source/");
    let segment = get(&format!("{base}{first}"));
    assert_eq!(segment.status, 200);
    assert_eq!(
        segment.body, file_bytes,
        "served bytes differ from the file"
    );
    let msn = msn_of(first);
    let mut parts = Vec::new();
    for idx in 0.. {
        let r = get(&format!("{base}{epoch}/{msn}.{idx}.m4s"));
        if r.status != 200 {
            assert_eq!(r.status, 404, "part {msn}.{idx}");
            break;
        }
        parts.extend(r.body);
    }
    assert_eq!(
        parts, file_bytes,
        "the parts of a segment on disk are its byte ranges"
    );
    let ranged = request_with(
        "GET",
        &format!("{base}{first}"),
        &[("range", "bytes=10-99")],
    );
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.body, file_bytes[10..100]);

    // The answer is decided from the object's identity and length before
    // the disk is read: a revalidation reads nothing, a range only itself.
    let disk_reads = || {
        (
            server
                .metric(r#"castline_storage_reads_total{tier="disk"}"#)
                .unwrap_or(0.0),
            server
                .metric(r#"castline_storage_read_bytes_total{tier="disk"}"#)
                .unwrap_or(0.0),
        )
    };
    let etag = segment.header("etag").expect("an ETag").to_string();
    let before = disk_reads();
    assert!(before.0 >= 2.0, "the disk reads so far were not counted");
    let revalidated = request_with(
        "GET",
        &format!("{base}{first}"),
        &[("if-none-match", etag.as_str())],
    );
    assert_eq!(revalidated.status, 304);
    assert!(revalidated.body.is_empty());
    let unsatisfiable = request_with(
        "GET",
        &format!("{base}{first}"),
        &[("range", &format!("bytes={}-", file_bytes.len()))],
    );
    assert_eq!(unsatisfiable.status, 416);
    let head = request_with("HEAD", &format!("{base}{first}"), &[]);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(file_bytes.len().to_string().as_str()),
        "a HEAD answers the object's length"
    );
    assert_eq!(disk_reads(), before, "a 304, a 416 or a HEAD read the disk");
    let ranged = request_with(
        "GET",
        &format!("{base}{first}"),
        &[("range", "bytes=100-1099")],
    );
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.body, file_bytes[100..1100]);
    assert_eq!(
        disk_reads(),
        (before.0 + 1.0, before.1 + 1000.0),
        "a range request reads its 1,000 bytes, not the segment"
    );

    // Memory holds the memory window, not the DVR window.
    let listed: usize = m
        .segments
        .iter()
        .map(|(u, _)| get(&format!("{base}{u}")).body.len())
        .sum();
    let in_memory = server.metric("castline_store_bytes").expect("store bytes");
    let on_disk_bytes = server.metric("castline_disk_bytes").expect("disk bytes");
    assert!(
        in_memory < listed as f64,
        "memory holds {in_memory} bytes, the listed video is {listed}"
    );
    assert!(on_disk_bytes > 0.0, "nothing counted on disk");
    assert_eq!(server.metric("castline_disk_errors"), Some(0.0));

    // Everything listed (most of it from disk) decodes.
    assert_decodes(&server, "dvr", "source", &m);
    let audio = parse_media(&get(&server.url("/live/dvr/audio/index.m3u8")).text());
    assert_decodes(&server, "dvr", "audio", &audio);
    let (ok, err) = publisher.wait(Duration::from_secs(30));
    assert!(ok, "ffmpeg failed: {err}");
    let ended = wait_for_endlist(&server, playlist);
    assert_decodes(&server, "dvr", "source", &ended);
}

#[test]
fn an_ended_session_survives_a_restart_and_a_new_session_of_its_name() {
    let mut server = Server::start_logged(CONFIG);
    let publisher = Publisher::start(
        &server.rtmp_url("kept"),
        Publish {
            seconds: 7,
            ..Default::default()
        },
    );
    let (ok, err) = publisher.wait(Duration::from_secs(40));
    assert!(ok, "ffmpeg failed: {err}");
    wait_for_endlist(&server, "/live/kept/source/index.m3u8");
    wait_for_endlist(&server, "/live/kept/audio/index.m3u8");
    let before = every_object(&server, "kept");
    assert!(
        before.iter().filter(|(p, _)| p.ends_with(".m4s")).count() > 10,
        "too few objects: {:?}",
        before.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );

    server.restart();
    let log = server.log();
    assert!(
        log.contains("serving an ended session kept on disk"),
        "{log}"
    );
    for (path, bytes) in &before {
        let r = get(&server.url(path));
        assert_eq!(r.status, 200, "{path} after the restart");
        assert!(r.body == *bytes, "{path} changed across the restart");
    }
    let vod: serde_json::Value =
        serde_json::from_str(&get(&format!("http://{}/api/v1/vod", server.admin)).text())
            .expect("JSON");
    let sessions = vod["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 1, "{vod}");
    assert_eq!(sessions[0]["name"], "kept");
    assert_eq!(sessions[0]["on_disk"], true);
    let epoch = sessions[0]["epoch"].clone();

    // The name goes live again: its playlists follow the new session, and
    // every URL of the kept one still answers the same bytes.
    let old_multivariant = before[0].1.clone();
    let again = Publisher::start(
        &server.rtmp_url("kept"),
        Publish {
            seconds: 30,
            ..Default::default()
        },
    );
    let start = Instant::now();
    while get(&server.url("/live/kept/index.m3u8")).body == old_multivariant {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the name never went live again"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for (path, bytes) in before
        .iter()
        .filter(|(p, _)| p.ends_with(".m4s") || p.ends_with(".mp4"))
    {
        let r = get(&server.url(path));
        assert_eq!(r.status, 200, "{path} with the name live again");
        assert!(
            r.body == *bytes,
            "{path} changed when the name went live again"
        );
    }
    // The API still lists the kept session, under its own epoch.
    let vod: serde_json::Value =
        serde_json::from_str(&get(&format!("http://{}/api/v1/vod", server.admin)).text())
            .expect("JSON");
    let kept: Vec<&serde_json::Value> = vod["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter(|s| s["name"] == "kept")
        .collect();
    assert_eq!(kept.len(), 1, "{vod}");
    assert_eq!(kept[0]["epoch"], epoch, "{vod}");
    drop(again);
}

#[test]
fn a_kept_session_is_deleted_from_memory_and_disk_once_vod_keep_passes() {
    // Long enough for the reads below on a loaded machine, short for a test.
    let server = Server::start(&format!("{CONFIG}vod_keep = 15.0\n"));
    let publisher = Publisher::start(
        &server.rtmp_url("brief"),
        Publish {
            seconds: 6,
            ..Default::default()
        },
    );
    let (ok, err) = publisher.wait(Duration::from_secs(40));
    assert!(ok, "ffmpeg failed: {err}");
    wait_for_endlist(&server, "/live/brief/source/index.m3u8");
    wait_for_endlist(&server, "/live/brief/audio/index.m3u8");
    let media: Vec<String> = every_object(&server, "brief")
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.ends_with(".m4s") || p.ends_with(".mp4"))
        .collect();
    assert!(media.len() > 10, "{media:?}");
    let api = || -> serde_json::Value {
        serde_json::from_str(&get(&format!("http://{}/api/v1/vod", server.admin)).text())
            .expect("JSON")
    };
    let vod = api();
    let sessions = vod["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 1, "{vod}");
    let keep = sessions[0]["expires"].as_f64().unwrap() - sessions[0]["ended_at"].as_f64().unwrap();
    assert!((keep - 15.0).abs() < 0.01, "kept for {keep} s");
    let dir = server
        .sessions_dir()
        .join("brief")
        .join(sessions[0]["epoch"].as_str().expect("epoch"));
    // Served while kept (from disk: an ended session is persisted there)...
    assert!(dir.join("source").exists(), "{dir:?}");
    // ...and gone from both once vod_keep has passed: every URL a 404 (not
    // other bytes), the files deleted, the API empty.
    poll_every(Duration::from_secs(30), Duration::from_millis(500), || {
        let left: Vec<&String> = media
            .iter()
            .filter(|p| get(&server.url(p)).status != 404)
            .collect();
        if left.is_empty() && !dir.exists() {
            Ok(())
        } else {
            Err(format!(
                "still served or on disk after the end: {left:?}, dir {}",
                dir.exists()
            ))
        }
    });
    assert_eq!(
        get(&server.url("/live/brief/source/index.m3u8")).status,
        404
    );
    assert_eq!(api()["sessions"].as_array().map(Vec::len), Some(0));
}

#[test]
fn a_session_live_when_castline_is_killed_answers_404_after_the_restart_never_other_bytes() {
    let mut server = Server::start_logged(CONFIG);
    let publisher = Publisher::start(
        &server.rtmp_url("crash"),
        Publish {
            seconds: 30,
            ..Default::default()
        },
    );
    let playlist = "/live/crash/source/index.m3u8";
    wait_for(&server.url(playlist), Duration::from_secs(60));
    // Wait until a segment is on disk, so there are files to be left behind.
    let start = Instant::now();
    let (first, epoch) = loop {
        let m = parse_media(&get(&server.url(playlist)).text());
        if let Some((uri, _)) = m.segments.first() {
            let (epoch, file) = uri.split_once('/').expect("EPOCH/MSN.m4s");
            let path = server
                .sessions_dir()
                .join("crash")
                .join(epoch)
                .join("source")
                .join(file);
            if path.exists() {
                break (uri.clone(), epoch.to_string());
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no segment reached the disk: {}",
            m.text
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let segment_url = format!("/live/crash/source/{first}");
    assert_eq!(get(&server.url(&segment_url)).status, 200);

    server.restart_after("-KILL");
    drop(publisher);
    assert!(
        !server.sessions_dir().join("crash").join(&epoch).exists(),
        "the crashed session's files were kept"
    );
    assert_eq!(get(&server.url(&segment_url)).status, 404, "{segment_url}");
    assert_eq!(get(&server.url(playlist)).status, 404);
    let log = server.log();
    assert!(log.contains("castline stopped while it was live"), "{log}");

    // The name published again never reuses the crashed session's epoch.
    let _again = Publisher::start(
        &server.rtmp_url("crash"),
        Publish {
            seconds: 30,
            ..Default::default()
        },
    );
    let m = parse_media(&wait_for(&server.url(playlist), Duration::from_secs(60)).text());
    let (uri, _) = m
        .parts
        .first()
        .map(|(u, _, _)| (u.clone(), 0.0))
        .or_else(|| m.segments.first().cloned())
        .expect("a part or segment");
    assert_ne!(uri.split('/').next(), Some(epoch.as_str()), "epoch reused");
}
