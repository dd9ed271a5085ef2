//! hls.js in headless Chromium plays a live castline stream for 20 s.
//! Needs `npm ci` in tests/player (done by `make test`) and /usr/bin/chromium.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn hlsjs_plays_the_live_stream_in_chromium() {
    let player = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/player");
    assert!(
        std::path::Path::new(player)
            .join("node_modules/hls.js")
            .exists(),
        "tests/player/node_modules is missing: run `make test` (it runs npm ci there)"
    );
    let server = Server::start("");
    let _p = Publisher::start(&server.rtmp_url("watch"), Publish::default());
    let url = server.url("/live/watch/index.m3u8");
    wait_for(&url, Duration::from_secs(20));
    let out = Command::new("node")
        .current_dir(player)
        .args(["play.mjs", &url, "20"])
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}"))
        .unwrap_or_else(|e| {
            panic!(
                "player printed no JSON ({e}); stdout: {stdout}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert_eq!(result["started"], true, "playback never started: {result}");
    assert_eq!(
        result["fatalErrors"].as_array().map(|a| a.len()),
        Some(0),
        "fatal hls.js errors: {result}"
    );
    assert!(
        result["playedSeconds"].as_f64().unwrap_or(0.0) >= 10.0,
        "played too little: {result}"
    );
    assert!(
        result["partsLoaded"].as_u64().unwrap_or(0) > 0,
        "hls.js never loaded an LL-HLS part: {result}"
    );
    assert!(
        out.status.success(),
        "player exited {:?}: {result}",
        out.status
    );
}
