//! hls.js in headless Chromium plays a live castline stream for 20 s.
//! Needs `npm ci` in tests/player (done by `make test`) and /usr/bin/chromium.

mod common;

use std::process::Command;
use std::time::Duration;

use common::player::{assert_played, play, play_with, ONE_PLAYER};
use common::*;

#[test]
fn hlsjs_plays_the_live_stream_in_chromium() {
    let _one = ONE_PLAYER.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start("");
    let _p = Publisher::start(&server.rtmp_url("watch"), Publish::default());
    let url = server.url("/live/watch/index.m3u8");
    wait_for(&url, Duration::from_secs(60));
    let (result, ok) = play(&url, 20, None);
    assert_played(&result, 10.0);
    assert!(
        result["partsLoaded"].as_u64().unwrap_or(0) > 0,
        "hls.js never loaded an LL-HLS part: {result}"
    );
    assert!(ok, "player check failed: {result}");
}

#[test]
fn hlsjs_plays_parts_addressed_as_byte_ranges_without_a_stall() {
    let _one = ONE_PLAYER.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start("[hls]\npart_addressing = \"byteranges\"\n");
    let _p = Publisher::start(&server.rtmp_url("ranges"), Publish::default());
    let url = server.url("/live/ranges/index.m3u8");
    wait_for(&url, Duration::from_secs(60));
    let m = wait_rendition(&server, "ranges", "source", 2, Duration::from_secs(60));
    assert!(m.text.contains(",BYTERANGE=\""), "{}", m.text);
    let (result, ok) = play(&url, 20, None);
    assert_played(&result, 10.0);
    // hls.js loads each listed part as a range of its segment.
    assert!(
        result["partsLoaded"].as_u64().unwrap_or(0) > 0,
        "hls.js never loaded an LL-HLS part: {result}"
    );
    assert_eq!(result["stallsAfterStart"], 0, "playback stalled: {result}");
    eprintln!("hls.js on byte-range parts: latency {}", result["latency"]);
    assert!(ok, "player check failed: {result}");
}

#[test]
fn hlsjs_plays_the_ladder_with_its_audio_rendition_and_switches_level() {
    let _one = ONE_PLAYER.lock().unwrap_or_else(|e| e.into_inner());
    // A three-rung ladder small enough that publisher, transcoder and
    // Chromium share the 2 cores without starving each other.
    let server = Server::start(
        "[[transcode.rungs]]\nname = \"360p\"\nheight = 360\nbitrate_kbps = 800\n\
         [[transcode.rungs]]\nname = \"270p\"\nheight = 270\nbitrate_kbps = 450\n\
         [[transcode.rungs]]\nname = \"180p\"\nheight = 180\nbitrate_kbps = 250\n",
    );
    let _p = Publisher::start(
        &server.rtmp_url("ladder"),
        Publish {
            size: "640x360",
            bitrate: "1000k",
            gop_frames: 60,
            ..Default::default()
        },
    );
    let url = server.url("/live/ladder/index.m3u8");
    wait_for(&url, Duration::from_secs(60));
    // Start on the lowest level and let hls.js's ABR climb.
    let (result, ok) = play(&url, 25, Some(0));
    assert_eq!(result["started"], true, "playback never started: {result}");
    assert_eq!(
        result["fatalErrors"].as_array().map(|a| a.len()),
        Some(0),
        "fatal hls.js errors: {result}"
    );
    assert_eq!(
        result["levels"].as_array().map(|l| l.len()),
        Some(3),
        "hls.js should see the three rungs: {result}"
    );
    assert_eq!(result["audioTracks"], 1, "one audio rendition: {result}");
    // Media of the lowest level and of a higher one was played.
    let buffered: Vec<u64> = result["bufferedLevels"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
        .unwrap_or_default();
    assert!(
        buffered.first() == Some(&0) && buffered.iter().any(|&l| l > 0),
        "hls.js never switched up from the lowest level: {result}"
    );
    assert_eq!(result["stallsAfterStart"], 0, "playback stalled: {result}");
    assert!(
        result["playedSeconds"].as_f64().unwrap_or(0.0) >= 12.0,
        "played too little: {result}"
    );
    assert!(ok, "player check failed: {result}");
}

#[test]
fn hlsjs_plays_a_signed_url() {
    let _one = ONE_PLAYER.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start(
        "[ingest]\nreconnect_grace = 3.0\n[origin]\nsigning_key = \"a-long-random-signing-key\"\n",
    );
    let _p = Publisher::start(&server.rtmp_url("paid"), Publish::default());
    let url = server.signed_url("paid", "1h");
    wait_for(&url, Duration::from_secs(60));
    assert_eq!(get(&server.url("/live/paid/index.m3u8")).status, 403);
    let (result, ok) = play(&url, 12, None);
    assert_played(&result, 5.0);
    assert!(ok, "player exited with an error: {result}");
}

#[test]
fn hlsjs_follows_content_steering_to_another_cdn_when_one_is_marked_down() {
    use common::cdn_proxy::CdnProxy;
    let _one = ONE_PLAYER.lock().unwrap_or_else(|e| e.into_inner());
    let (a, b) = (CdnProxy::start("edge-a"), CdnProxy::start("edge-b"));
    // edge-b is a standby (weight 0): every player starts on edge-a.
    let server = Server::start(&format!(
        "[ingest]\nreconnect_grace = 3.0\n[origin]\nsteering_ttl = 2\n\
         [[origin.cdn]]\nid = \"edge-a\"\nbase_url = \"{}\"\nweight = 1\n\
         [[origin.cdn]]\nid = \"edge-b\"\nbase_url = \"{}\"\nweight = 0\n",
        a.base_url(),
        b.base_url()
    ));
    a.forward_to(server.http);
    b.forward_to(server.http);
    let _p = Publisher::start(&server.rtmp_url("steer"), Publish::default());
    let url = server.url("/live/steer/index.m3u8");
    wait_for(&url, Duration::from_secs(60));
    let player = std::thread::spawn(move || play(&url, 20, None));
    // Marked down once the player is playing through edge-a (Chromium's
    // launch takes from 1 s to tens of seconds on a loaded machine).
    let through_a = "castline_http_requests_total{class=\"media\",status=\"200\",cdn=\"edge-a\"}";
    let start = std::time::Instant::now();
    while server.metric(through_a).unwrap_or(0.0) < 5.0 {
        assert!(
            start.elapsed() < Duration::from_secs(60) && !player.is_finished(),
            "the player never fetched media through edge-a"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    let down = request(
        "POST",
        &format!("http://{}/api/v1/cdns/edge-a/down", server.admin),
    );
    assert_eq!(down.status, 200, "{}", down.text());
    let (result, ok) = player.join().expect("player thread");
    assert_played(&result, 10.0);
    let (host_a, host_b) = (a.addr.to_string(), b.addr.to_string());
    let order: Vec<&str> = result["hostOrder"]
        .as_array()
        .map(|h| h.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    // Started on edge-a, moved to edge-b after it was marked down, stayed.
    assert_eq!(order.first(), Some(&host_a.as_str()), "{result}");
    assert_eq!(order.last(), Some(&host_b.as_str()), "{result}");
    assert!(
        result["steeringLoads"].as_u64().unwrap_or(0) >= 2,
        "{result}"
    );
    assert!(ok, "player check failed: {result}");
}

#[test]
fn hlsjs_plays_over_tls_with_http2() {
    let _one = ONE_PLAYER.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, cert) = tls_server(dir.path());
    let _p = Publisher::start(&server.rtmp_url("secure"), Publish::default());
    let url = format!("https://{}/live/secure/index.m3u8", server.http);
    let start = std::time::Instant::now();
    while !Command::new("curl")
        .args(["-sf", "-o", "/dev/null", "--cacert"])
        .arg(&cert)
        .arg(&url)
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{url} never answered"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let (result, ok) = play_with(&url, 12, None, &[("PLAYER_IGNORE_TLS_ERRORS", "1")]);
    assert_played(&result, 5.0);
    assert_eq!(result["protocols"], serde_json::json!(["h2"]), "{result}");
    assert!(ok, "player check failed: {result}");
}
