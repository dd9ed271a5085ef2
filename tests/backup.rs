//! A backup input (issue 27): a second publisher of a live stream marked
//! `?backup=1` (RTMP) or `backup=1` in the SRT stream id is kept ready; when
//! the primary dies the stream switches to it (same URLs, no ENDLIST), and
//! back to the primary once it has delivered for `ingest.failback_after`.
//! Real ffmpeg publishers, killed with SIGKILL; what is served is decoded.

mod common;

use std::time::Duration;

use common::picture::{near, picture};
use common::player::{assert_played, play, ONE_PLAYER};
use common::relay::Relay;
use common::*;

const ONE_RUNG: &str = "[[transcode.rungs]]\nname = \"240p\"\nheight = 240\nbitrate_kbps = 300\n";

const RED: (u8, u8, u8) = (255, 0, 0);

fn media(server: &Server, rendition: &str) -> Media {
    parse_media(&get(&server.url(&format!("/live/main/{rendition}/index.m3u8"))).text())
}

/// The middle of segment `msn`'s first picture on the 240p rung is red.
fn red_at(server: &Server, m: &Media, msn: u64) -> bool {
    let rgb = picture(server, "main", "240p", m, msn);
    let o = (15 * 70 + 35) * 3;
    near(&rgb[o..o + 3], RED)
}

/// A server (one rung, a 30 s reconnect grace, `ingest` more keys of
/// `[ingest]`) whose stream `main` has a primary publishing two segments in.
fn primary_live(ingest: &str) -> (Server, Publisher) {
    let server = Server::start(&format!(
        "[ingest]\nreconnect_grace = 30.0\n{ingest}{ONE_RUNG}"
    ));
    let primary = Publisher::start(&server.rtmp_url("main"), Publish::default());
    wait_rendition(&server, "main", "240p", 2, Duration::from_secs(30));
    (server, primary)
}

/// Wait until the API shows stream `main`'s backup connected while the
/// primary is served.
fn backup_connected(server: &Server) {
    poll(Duration::from_secs(30), || {
        let api = get(&format!("http://{}/api/v1/streams/main", server.admin)).text();
        if api.contains("\"backup\":\"connected\"") && api.contains("\"active\":\"primary\"") {
            Ok(())
        } else {
            Err(api)
        }
    });
}

#[test]
fn the_backup_takes_over_when_the_primary_dies_and_gives_back_once_it_is_healthy() {
    // One at a time with the player tests: a stall of the primary under
    // load would start the slate (0.5 s) and break the count of switches.
    let _one = ONE_PLAYER.lock().unwrap_or_else(|e| e.into_inner());
    let (server, mut primary) = primary_live("failback_after = 3.0\n");
    // The backup over SRT, a red picture so the test can tell them apart.
    let _backup = Publisher::start(
        &server.srt_url("#!::r=main,m=publish,backup=1", ""),
        Publish {
            picture: "color=c=red",
            ..Default::default()
        },
    );
    backup_connected(&server);
    let before = media(&server, "240p");
    // Not served while the primary is healthy.
    std::thread::sleep(Duration::from_secs(2));
    let healthy = media(&server, "240p");
    assert_eq!(healthy.discontinuities, 0, "{}", healthy.text);
    let last = msn_of(&healthy.segments.last().unwrap().0);
    assert!(!red_at(&server, &healthy, last), "the backup was served");

    primary.kill();
    let switched = wait_discontinuities(&server, "main", "240p", 1, 2);
    let at = switched.discontinuity_msns[0];
    assert!(
        red_at(&server, &switched, at + 1),
        "not the backup after the switch"
    );
    assert!(!switched.endlist);
    assert_eq!(
        switched.media_sequence, before.media_sequence,
        "the same playlist"
    );
    assert_eq!(
        server.metric("castline_input_active{stream=\"main\",input=\"backup\"}"),
        Some(1.0)
    );
    assert_eq!(
        server.metric("castline_input_switches_total{reason=\"input_lost\"}"),
        Some(1.0)
    );
    assert_eq!(
        server.metric("castline_input_switches_total{reason=\"slate\"}"),
        None,
        "no slate while the backup delivers"
    );

    // The primary comes back: after 3 s of delivery the stream returns to it.
    let _again = Publisher::start(&server.rtmp_url("main"), Publish::default());
    let back = wait_discontinuities(&server, "main", "240p", 2, 2);
    let at = back.discontinuity_msns[1];
    assert!(
        !red_at(&server, &back, at + 1),
        "still the backup after failback"
    );
    assert_eq!(
        server.metric("castline_input_switches_total{reason=\"failback\"}"),
        Some(1.0)
    );
    let audio = wait_discontinuities(&server, "main", "audio", 2, 2);
    assert_one_timeline(&[("240p", &back), ("audio", &audio)], 1.0 / 30.0);
    assert_decodes(&server, "main", "240p", &back);
    assert_decodes(&server, "main", "audio", &audio);
}

#[test]
fn a_backup_without_a_primary_a_third_publisher_and_a_wrong_key_are_refused() {
    let server = Server::start(
        "[ingest]\nreconnect_grace = 3.0\n[ingest.keys]\n\"k-main\" = \"main\"\n\"k-other\" = \"other\"\n[transcode]\nenabled = false\n",
    );
    let short = Publish {
        seconds: 4,
        ..Default::default()
    };
    // A backup for a stream nobody publishes.
    let (ok, _) =
        Publisher::start(&server.rtmp_url("k-other?backup=1"), short).wait(Duration::from_secs(20));
    assert!(!ok, "a backup without a primary must be refused");
    assert_eq!(
        server.metric("castline_rtmp_errors_total{reason=\"no_primary\"}"),
        Some(1.0)
    );
    assert_eq!(get(&server.url("/live/other/index.m3u8")).status, 404);

    let _primary = Publisher::start(&server.rtmp_url("k-main"), Publish::default());
    let first = wait_segments(&server, "main", 2, Duration::from_secs(30));
    let _backup = Publisher::start(&server.rtmp_url("k-main?backup=1"), Publish::default());
    backup_connected(&server);
    // A second backup while the first sends: held, then refused.
    let (ok, _) =
        Publisher::start(&server.rtmp_url("k-main?backup=1"), short).wait(Duration::from_secs(20));
    assert!(!ok, "a third publisher must be refused");
    assert_eq!(
        server.metric("castline_rtmp_errors_total{reason=\"still_sending\"}"),
        Some(1.0)
    );
    // A backup with a wrong key.
    let (ok, _) =
        Publisher::start(&server.rtmp_url("guess?backup=1"), short).wait(Duration::from_secs(20));
    assert!(!ok, "a backup with a wrong key must be refused");
    // The live stream never noticed.
    let later = wait_segments(
        &server,
        "main",
        first.segments.len() + 3,
        Duration::from_secs(30),
    );
    assert_eq!(later.discontinuities, 0, "{}", later.text);
    assert!(!later.endlist);
}

#[test]
fn hlsjs_plays_on_when_the_primary_dies_and_the_backup_takes_over() {
    let _one = ONE_PLAYER.lock().unwrap_or_else(|e| e.into_inner());
    let (server, mut primary) = primary_live("");
    let _backup = Publisher::start(&server.rtmp_url("main?backup=1"), Publish::default());
    wait_rendition(&server, "main", "240p", 4, Duration::from_secs(30));
    let url = server.url("/live/main/index.m3u8");
    let player = std::thread::spawn(move || play(&url, 30, None));
    // About 8 s into playback the primary dies; the backup carries on.
    std::thread::sleep(Duration::from_secs(10));
    primary.kill();
    let (result, _) = player.join().unwrap();
    eprintln!("{result}");
    assert_played(&result, 25.0);
    // No stall longer than a part: in all, at most a part stalled (the
    // switch can leave a hole of a few frames that hls.js jumps, 69 ms seen).
    let stalled = result["stalledSeconds"].as_f64().unwrap_or(f64::MAX);
    assert!(stalled <= 0.2, "hls.js stalled over the failover: {result}");
    let m = media(&server, "240p");
    assert_eq!(m.discontinuities, 1, "{}", m.text);
    assert!(!m.endlist);
    assert_eq!(
        server.metric("castline_input_switches_total{reason=\"input_lost\"}"),
        Some(1.0)
    );
}

/// One encoder's two outputs (ffmpeg's tee muxer: one to the primary URL,
/// one to the backup URL) carry the same frames. When the primary's route
/// dies (a relay in front of it is cut; the encoder carries on), the stream
/// goes on from the backup with no discontinuity: the same MSNs and init,
/// every segment as long as the others, decoded across the switch; hls.js
/// plays through it.
#[test]
fn one_encoders_two_outputs_switch_with_no_discontinuity() {
    let _one = ONE_PLAYER.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start(&format!("[ingest]\nreconnect_grace = 30.0\n{ONE_RUNG}"));
    let relay = Relay::start(server.rtmp);
    // A leaked &'static str for the Publish struct; one per test run.
    let backup: &'static str =
        Box::leak(format!("{}?backup=1", server.rtmp_url("main")).into_boxed_str());
    let _encoder = Publisher::start(
        &format!("rtmp://{}/live/main", relay.addr),
        Publish {
            tee: Some(backup),
            ..Default::default()
        },
    );
    wait_rendition(&server, "main", "240p", 4, Duration::from_secs(30));
    backup_connected(&server);
    let url = server.url("/live/main/index.m3u8");
    let player = std::thread::spawn(move || play(&url, 20, None));
    // About 6 s into playback the primary's route dies.
    std::thread::sleep(Duration::from_secs(8));
    relay.cut();
    poll(Duration::from_secs(20), || {
        let on = server.metric("castline_input_active{stream=\"main\",input=\"backup\"}");
        (on == Some(1.0)).then_some(()).ok_or(format!("{on:?}"))
    });
    let at = msn_of(&media(&server, "240p").parts.last().unwrap().0);
    let names = ["240p", "audio"];
    let ms: Vec<Media> = poll(Duration::from_secs(30), || {
        let ms: Vec<Media> = names.iter().map(|r| media(&server, r)).collect();
        let past = |m: &Media| m.segments.last().is_some_and(|(u, _)| msn_of(u) >= at + 3);
        if ms.iter().all(past) {
            Ok(ms)
        } else {
            Err(ms[0].text.clone())
        }
    });
    assert_eq!(
        server.metric("castline_input_switches_total{reason=\"input_lost\"}"),
        Some(1.0)
    );
    for (name, m) in names.iter().zip(&ms) {
        assert_eq!(m.discontinuities, 0, "{name}:\n{}", m.text);
        assert_eq!(m.maps.len(), 1, "{name}: one init:\n{}", m.text);
        assert!(!m.endlist);
    }
    let named: Vec<(&str, &Media)> = names.iter().copied().zip(&ms).collect();
    assert_one_timeline(&named, 1.0 / 30.0);
    // No frame lost or shown twice at the switch: every video segment after
    // the first lasts its 30 frames.
    for (uri, d) in ms[0].segments.iter().skip(1) {
        assert!((d - 1.0).abs() < 0.01, "{uri} lasts {d} s:\n{}", ms[0].text);
    }
    assert_decodes(&server, "main", "240p", &ms[0]);
    assert_decodes(&server, "main", "audio", &ms[1]);
    let (result, _) = player.join().unwrap();
    eprintln!("{result}");
    assert_played(&result, 15.0);
    let stalled = result["stalledSeconds"].as_f64().unwrap_or(f64::MAX);
    assert!(stalled <= 0.2, "hls.js stalled over the switch: {result}");
}

/// A backup without audio (a camera feed with no sound): once it is cut in,
/// the audio rendition carries silence on the video's clock, so it lists
/// every MSN the video does (instead of standing still while the video
/// goes on) and what it serves decodes.
#[test]
fn a_backup_without_audio_gets_silence_in_the_audio_rendition() {
    // One at a time with the player tests: a stall of the primary under
    // load would start the slate (0.5 s) and break the count of switches.
    let _one = ONE_PLAYER.lock().unwrap_or_else(|e| e.into_inner());
    let (server, mut primary) = primary_live("");
    let _backup = Publisher::start(
        &server.rtmp_url("main?backup=1"),
        Publish {
            audio: false,
            picture: "color=c=red",
            ..Default::default()
        },
    );
    backup_connected(&server);
    primary.kill();
    let video = wait_discontinuities(&server, "main", "240p", 1, 4);
    let audio = wait_discontinuities(&server, "main", "audio", 1, 4);
    assert_eq!(audio.discontinuity_msns, video.discontinuity_msns);
    assert_one_timeline(&[("240p", &video), ("audio", &audio)], 1.0 / 30.0);
    let at = video.discontinuity_msns[0];
    assert!(red_at(&server, &video, at + 1), "not the backup");
    assert_decodes(&server, "main", "audio", &audio);
}
