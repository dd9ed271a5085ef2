//! The slate (issue 27): while a stream has no input, every rendition
//! carries the slate picture and the audio silence, part by part; the input
//! comes back at its next keyframe; the reconnect grace's end is ENDLIST.
//! Real ffmpeg publishers over RTMP, killed with SIGKILL; what is served is
//! decoded by ffmpeg and played by hls.js.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::picture::{near, picture, segments_with_maps};
use common::player::{assert_played, play, ONE_PLAYER};
use common::*;

const ONE_RUNG: &str = "[[transcode.rungs]]\nname = \"240p\"\nheight = 240\nbitrate_kbps = 300\n";

/// The built-in card's bars as RGB (75 % colour bars), left to right.
const BARS: [(u8, u8, u8); 7] = [
    (191, 191, 191),
    (191, 191, 0),
    (0, 191, 191),
    (0, 191, 0),
    (191, 0, 191),
    (191, 0, 0),
    (0, 0, 191),
];

/// The picture is the built-in card: the seven bars on top, dark below.
fn assert_card(rgb: &[u8], what: &str) {
    for (i, bar) in BARS.iter().enumerate() {
        let o = (5 * 70 + 5 + 10 * i) * 3;
        assert!(
            near(&rgb[o..o + 3], *bar),
            "{what}: bar {i} is {:?}, want {bar:?}",
            &rgb[o..o + 3]
        );
    }
    let o = (27 * 70 + 35) * 3;
    assert!(
        rgb[o..o + 3].iter().all(|&c| c < 50),
        "{what}: the band is {:?}",
        &rgb[o..o + 3]
    );
}

/// The audio of segment `msn` decodes to samples (silence is still audio).
fn assert_audio_decodes(server: &Server, stream: &str, m: &Media, msn: u64) {
    let (map, uri) = segments_with_maps(m)
        .into_iter()
        .find(|(_, u)| msn_of(u) == msn)
        .unwrap_or_else(|| panic!("no audio segment {msn}:\n{}", m.text));
    let base = server.url(&format!("/live/{stream}/audio/"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.mp4");
    let mut bytes = get(&format!("{base}{map}")).body;
    bytes.extend(get(&format!("{base}{uri}")).body);
    std::fs::write(&file, bytes).unwrap();
    assert_eq!(
        decode_errors(&file.to_path_buf()),
        "",
        "audio segment {msn}"
    );
    let streams = probe_streams(&file.to_path_buf());
    assert!(
        streams
            .iter()
            .any(|(kind, _, d)| kind == "audio" && *d > 0.5),
        "audio segment {msn}: {streams:?}"
    );
}

fn media(server: &Server, stream: &str, rendition: &str) -> Media {
    parse_media(&get(&server.url(&format!("/live/{stream}/{rendition}/index.m3u8"))).text())
}

/// The newest part a playlist lists, as (MSN, index).
fn newest_part(m: &Media) -> Option<(u64, u32)> {
    m.parts.last().map(|(u, _, _)| part_of(u))
}

/// Poll `rendition`'s playlist every 100 ms for `span`: how many times it
/// moved and the longest it stood still.
fn watch(server: &Server, stream: &str, rendition: &str, span: Duration) -> (u32, Duration) {
    let start = Instant::now();
    let (mut last, mut since, mut moves, mut longest) = (None, Instant::now(), 0, Duration::ZERO);
    while start.elapsed() < span {
        let now = newest_part(&media(server, stream, rendition));
        if now != last {
            longest = longest.max(since.elapsed());
            since = Instant::now();
            last = now;
            moves += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (moves, longest.max(since.elapsed()))
}

#[test]
fn a_lost_input_shows_the_slate_in_every_rendition_until_the_input_returns() {
    let server = Server::start(&format!("[ingest]\nreconnect_grace = 15.0\n{ONE_RUNG}"));
    // B-frames, as OBS sends: the drop may come while the video is past a
    // cut the audio has not reached (the audio is then filled with silence).
    let mut first = Publisher::start(&server.rtmp_url("slate"), Publish::default());
    wait_rendition(&server, "slate", "240p", 3, Duration::from_secs(30));
    first.kill();
    // For 6 s of outage the playlists keep moving.
    let (moves, still) = watch(&server, "slate", "240p", Duration::from_secs(6));
    eprintln!("outage: the 240p playlist moved {moves} times, stood still at most {still:?}");
    assert!(
        moves >= 10,
        "the playlist stood still: {moves} moves in 6 s"
    );
    let during = media(&server, "slate", "240p");
    assert!(!during.endlist);
    assert_eq!(during.discontinuities, 1, "{}", during.text);
    let slate_msn = during.discontinuity_msns[0];
    let rgb = picture(&server, "slate", "240p", &during, slate_msn + 1);
    assert_card(&rgb, "240p during the outage");
    let audio = media(&server, "slate", "audio");
    assert_eq!(
        audio.discontinuity_msns, during.discontinuity_msns,
        "{}",
        audio.text
    );
    assert_audio_decodes(&server, "slate", &audio, slate_msn + 1);
    assert_eq!(
        server.metric("castline_input_active{stream=\"slate\",input=\"slate\"}"),
        Some(1.0)
    );

    // The publisher comes back (a red picture now): the stream cuts back to
    // it behind a second discontinuity, every rendition at the same MSN.
    let _back = Publisher::start(
        &server.rtmp_url("slate"),
        Publish {
            picture: "color=c=red",
            ..Default::default()
        },
    );
    let after = wait_discontinuities(&server, "slate", "240p", 2, 2);
    let back_msn = after.discontinuity_msns[1];
    let rgb = picture(&server, "slate", "240p", &after, back_msn + 1);
    assert!(
        near(&rgb[(15 * 70 + 35) * 3..], (255, 0, 0)),
        "not the red input: {:?}",
        &rgb[..3]
    );
    let audio = wait_discontinuities(&server, "slate", "audio", 2, 2);
    assert_one_timeline(&[("240p", &after), ("audio", &audio)], 1.0 / 30.0);
    assert!(!after.endlist);
    assert_eq!(
        after.media_sequence, during.media_sequence,
        "the same playlist"
    );
    assert_eq!(
        server.metric("castline_input_active{stream=\"slate\",input=\"slate\"}"),
        Some(0.0)
    );
    let shown = server
        .metric("castline_slate_seconds_total{stream=\"slate\"}")
        .unwrap_or(0.0);
    assert!(shown >= 5.0, "slate seconds: {shown}");
}

#[test]
fn passthrough_shows_the_slate_at_the_source_size_until_the_grace_ends() {
    let server = Server::start("[ingest]\nreconnect_grace = 4.0\n[transcode]\nenabled = false\n");
    let mut p = Publisher::start(&server.rtmp_url("pass"), Publish::default());
    wait_segments(&server, "pass", 3, Duration::from_secs(30));
    p.kill();
    let ended = wait_for_endlist_within(
        &server,
        "/live/pass/source/index.m3u8",
        Duration::from_secs(30),
    );
    assert_eq!(ended.discontinuities, 1, "{}", ended.text);
    let slate_msn = ended.discontinuity_msns[0];
    // Segments carry on through the grace (4 s), at the source's size.
    let last = msn_of(&ended.segments.last().unwrap().0);
    assert!(last >= slate_msn + 2, "{}", ended.text);
    let rgb = picture(&server, "pass", "source", &ended, slate_msn + 1);
    assert_card(&rgb, "source during the outage");
    let (map, uri) = segments_with_maps(&ended)
        .into_iter()
        .find(|(_, u)| msn_of(u) == slate_msn + 1)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.mp4");
    let base = server.url("/live/pass/source/");
    let mut bytes = get(&format!("{base}{map}")).body;
    bytes.extend(get(&format!("{base}{uri}")).body);
    std::fs::write(&file, bytes).unwrap();
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "320,240");
    let audio = wait_for_endlist_within(
        &server,
        "/live/pass/audio/index.m3u8",
        Duration::from_secs(10),
    );
    assert_eq!(audio.discontinuity_msns, ended.discontinuity_msns);
    assert_audio_decodes(&server, "pass", &audio, slate_msn + 1);
}

/// castline paused (SIGSTOP, as a starved or throttled pod is) while the
/// encoder goes on sending: when it runs again its input has been silent
/// past `slate.after` by its own clock, but the frames are there to read.
/// That is no lost input: no slate, no discontinuity.
#[test]
fn a_paused_process_whose_input_kept_sending_shows_no_slate() {
    let server = Server::start("[transcode]\nenabled = false\n");
    let _p = Publisher::start(&server.rtmp_url("paused"), Publish::default());
    wait_segments(&server, "paused", 3, Duration::from_secs(30));
    server.signal("-STOP");
    std::thread::sleep(Duration::from_millis(1500));
    server.signal("-CONT");
    let before = media(&server, "paused", "source");
    let last = msn_of(&before.segments.last().unwrap().0);
    // Four segments more, from the input itself.
    let after = poll(Duration::from_secs(20), || {
        let m = media(&server, "paused", "source");
        let now = msn_of(&m.segments.last().unwrap().0);
        (now >= last + 4)
            .then_some(m)
            .ok_or(format!("at MSN {now}"))
    });
    assert_eq!(after.discontinuities, 0, "{}", after.text);
    assert_eq!(
        server.metric("castline_input_switches_total{reason=\"slate\"}"),
        None,
        "the slate was cut in"
    );
}

#[test]
fn hlsjs_plays_through_an_outage_on_the_slate_and_back() {
    let _one = ONE_PLAYER.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start(&format!("[ingest]\nreconnect_grace = 15.0\n{ONE_RUNG}"));
    let mut first = Publisher::start(&server.rtmp_url("play"), Publish::default());
    wait_rendition(&server, "play", "240p", 3, Duration::from_secs(30));
    let url = server.url("/live/play/index.m3u8");
    let player = std::thread::spawn(move || play(&url, 30, None));
    // About 8 s into playback the input is lost for 6 s, then comes back.
    std::thread::sleep(Duration::from_secs(10));
    first.kill();
    std::thread::sleep(Duration::from_secs(6));
    let _back = Publisher::start(&server.rtmp_url("play"), Publish::default());
    let (result, _) = player.join().unwrap();
    eprintln!("{result}");
    assert_played(&result, 25.0);
    // The input falls silent for slate.after (0.5 s) before the slate's
    // parts appear: at most a part stalled in all (at 1 s, 43 and 594 ms
    // were seen).
    let stalled = result["stalledSeconds"].as_f64().unwrap_or(f64::MAX);
    assert!(stalled <= 0.2, "hls.js stalled over the outage: {result}");
    let m = media(&server, "play", "240p");
    assert_eq!(m.discontinuities, 2, "{}", m.text);
}
