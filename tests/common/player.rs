//! The headless-Chromium player harness (tests/player/play.mjs) for the
//! playback tests: hls.js by default, Shaka Player with `PLAYER=shaka`.

use std::process::Command;

/// One browser at a time: two Chromiums decoding beside a live transcode
/// would starve this 2-core machine and stall the player for reasons that
/// are not castline's.
pub static ONE_PLAYER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Play `url` for `seconds` in hls.js; returns play.mjs's JSON and whether it
/// exited 0. The JSON carries the last lines of the player's stderr as
/// `stderrTail`, so every assertion that prints it shows the player's trace.
pub fn play(url: &str, seconds: u32, start_level: Option<u32>) -> (serde_json::Value, bool) {
    play_with(url, seconds, start_level, &[])
}

/// As [`play`], with environment for play.mjs (`PLAYER=shaka`,
/// `PLAYER_SHAKA_CONFIG`, `PLAYER_IGNORE_TLS_ERRORS`, ...).
pub fn play_with(
    url: &str,
    seconds: u32,
    start_level: Option<u32>,
    env: &[(&str, &str)],
) -> (serde_json::Value, bool) {
    let (result, ok) = play_once(url, seconds, start_level, env);
    // The harness itself failed (Chromium did not start, its page did not
    // load, the check hung): nothing of castline's was tried. Once more,
    // then whatever happens is the answer.
    if let Some(e) = result["setupError"].as_str() {
        eprintln!("player setup failed, trying once more: {e}");
        return play_once(url, seconds, start_level, env);
    }
    (result, ok)
}

fn play_once(
    url: &str,
    seconds: u32,
    start_level: Option<u32>,
    env: &[(&str, &str)],
) -> (serde_json::Value, bool) {
    let player = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/player");
    assert!(
        std::path::Path::new(player)
            .join("node_modules/hls.js")
            .exists(),
        "tests/player/node_modules is missing: run `make test` (it runs npm ci there)"
    );
    let mut args = vec!["play.mjs".to_string(), url.to_string(), seconds.to_string()];
    args.extend(start_level.map(|l| l.to_string()));
    let out = Command::new("node")
        .current_dir(player)
        .args(&args)
        .envs(env.iter().copied())
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| {
            panic!(
                "player printed no JSON ({e}; {}); stdout: {stdout}\nstderr: {stderr}",
                out.status
            )
        });
    let lines: Vec<&str> = stderr.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    if let Some(map) = result.as_object_mut() {
        map.insert("stderrTail".into(), tail.into());
    }
    (result, out.status.success())
}

/// Playback started, had no fatal error and played at least `seconds`.
pub fn assert_played(result: &serde_json::Value, seconds: f64) {
    assert_eq!(result["started"], true, "playback never started: {result}");
    assert_eq!(
        result["fatalErrors"].as_array().map(|a| a.len()),
        Some(0),
        "fatal player errors: {result}"
    );
    assert!(
        result["playedSeconds"].as_f64().unwrap_or(0.0) >= seconds,
        "played too little: {result}"
    );
}
