//! The ABR ladder end to end: the real castline binary transcodes what a real
//! ffmpeg publishes (x264 with B-frames, AAC) and every rendition is checked
//! over HTTP and decoded with ffmpeg/ffprobe.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A small ladder for tests that need the transcoder but not 720p's CPU.
const SMALL_LADDER: &str =
    "[[transcode.rungs]]\nname = \"360p\"\nheight = 360\nbitrate_kbps = 500\n\
[[transcode.rungs]]\nname = \"240p\"\nheight = 240\nbitrate_kbps = 300\n";

/// An NVIDIA device node exists: the no-GPU checks below do not apply.
fn nvidia_device() -> bool {
    std::path::Path::new("/dev/nvidia0").exists()
}

struct Variant {
    uri: String,
    bandwidth: u64,
    average_bandwidth: Option<u64>,
    resolution: Option<(u64, u64)>,
    frame_rate: Option<f64>,
    codecs: String,
    audio: Option<String>,
}

/// The multivariant playlist's variants and its audio renditions' URIs.
fn multivariant(server: &Server, stream: &str) -> (Vec<Variant>, Vec<String>) {
    let mv = wait_for(
        &server.url(&format!("/live/{stream}/index.m3u8")),
        Duration::from_secs(30),
    );
    let Ok((_, m3u8_rs::Playlist::MasterPlaylist(master))) = m3u8_rs::parse_playlist(&mv.body)
    else {
        panic!("not a multivariant playlist: {}", mv.text())
    };
    let variants = master
        .variants
        .iter()
        .map(|v| Variant {
            uri: v.uri.clone(),
            bandwidth: v.bandwidth,
            average_bandwidth: v.average_bandwidth,
            resolution: v.resolution.map(|r| (r.width, r.height)),
            frame_rate: v.frame_rate,
            codecs: v.codecs.clone().unwrap_or_default(),
            audio: v.audio.clone(),
        })
        .collect();
    let audio = master
        .alternatives
        .iter()
        .filter(|a| a.media_type == m3u8_rs::AlternativeMediaType::Audio)
        .filter_map(|a| a.uri.clone())
        .collect();
    (variants, audio)
}

/// The rendition's media playlist; empty while it does not exist yet.
fn media(server: &Server, stream: &str, rendition: &str) -> Media {
    let r = get(&server.url(&format!("/live/{stream}/{rendition}/index.m3u8")));
    if r.status != 200 {
        return Media::default();
    }
    parse_media(&r.text())
}

/// msn → EXTINF of every complete segment listed.
fn extinfs(m: &Media) -> BTreeMap<u64, f64> {
    m.segments.iter().map(|(u, d)| (msn_of(u), *d)).collect()
}

/// (msn, part index) → part duration, for every part listed.
fn part_durations(m: &Media) -> HashMap<(u64, u32), f64> {
    m.parts
        .iter()
        .map(|(u, d, _)| {
            let stem = u.rsplit('/').next().unwrap().trim_end_matches(".m4s");
            let mut it = stem.split('.');
            let msn = it.next().unwrap().parse().unwrap();
            let idx = it.next().unwrap().parse().unwrap();
            ((msn, idx), *d)
        })
        .collect()
}

/// MSNs listed as complete segments in every one of `ms`.
fn common_msns(ms: &[&Media]) -> Vec<u64> {
    let first = extinfs(ms[0]);
    first
        .keys()
        .copied()
        .filter(|msn| ms.iter().all(|m| extinfs(m).contains_key(msn)))
        .collect()
}

fn segment_bytes(server: &Server, stream: &str, rendition: &str, m: &Media, msn: u64) -> Vec<u8> {
    let uri = &m
        .segments
        .iter()
        .find(|(u, _)| msn_of(u) == msn)
        .expect("segment listed")
        .0;
    let r = get(&server.url(&format!("/live/{stream}/{rendition}/{uri}")));
    assert_eq!(r.status, 200, "{rendition}/{uri}");
    r.body
}

fn init_bytes(server: &Server, stream: &str, rendition: &str, m: &Media) -> Vec<u8> {
    let r = get(&server.url(&format!("/live/{stream}/{rendition}/{}", m.maps[0])));
    assert_eq!(r.status, 200);
    r.body
}

/// Every rendition starts segment N with an IDR at the same presentation
/// time, and lists the same EXTINF for it.
fn assert_aligned(server: &Server, stream: &str, renditions: &[&str], check: usize) -> Vec<Media> {
    assert_aligned_from(server, stream, renditions, check, 0)
}

/// As [`assert_aligned`], for the segments from `from` on.
fn assert_aligned_from(
    server: &Server,
    stream: &str,
    renditions: &[&str],
    check: usize,
    from: u64,
) -> Vec<Media> {
    let ms: Vec<Media> = renditions
        .iter()
        .map(|r| media(server, stream, r))
        .collect();
    let refs: Vec<&Media> = ms.iter().collect();
    let msns: Vec<u64> = common_msns(&refs)
        .into_iter()
        .filter(|&n| n >= from)
        .collect();
    assert!(msns.len() >= check, "only {} common segments", msns.len());
    for &msn in &msns {
        let durations: Vec<f64> = ms.iter().map(|m| extinfs(m)[&msn]).collect();
        assert!(
            durations.iter().all(|d| (d - durations[0]).abs() < 0.0015),
            "segment {msn} lasts {durations:?} in {renditions:?}"
        );
    }
    let inits: Vec<Vec<u8>> = renditions
        .iter()
        .zip(&ms)
        .map(|(r, m)| init_bytes(server, stream, r, m))
        .collect();
    for &msn in msns.iter().take(check) {
        let firsts: Vec<(f64, bool, bool)> = renditions
            .iter()
            .zip(&ms)
            .zip(&inits)
            .map(|((r, m), init)| {
                first_video_frame(init, &segment_bytes(server, stream, r, m, msn))
            })
            .collect();
        for (r, (pts, sync, idr)) in renditions.iter().zip(&firsts) {
            assert!(
                *sync && *idr,
                "{r} segment {msn} does not start with an IDR: {firsts:?}"
            );
            assert!(
                (pts - firsts[0].0).abs() < 0.0015,
                "segment {msn} starts at different times in {renditions:?}: {firsts:?}"
            );
        }
    }
    ms
}

#[test]
fn ladder_from_720p_is_keyframe_aligned_decodes_and_keeps_its_bandwidth() {
    let server = Server::start("");
    let _p = Publisher::start(
        &server.rtmp_url("ladder"),
        Publish {
            size: "1280x720",
            preset: "ultrafast",
            bitrate: "2500k",
            gop_frames: 60,
            seconds: 40,
            ..Default::default()
        },
    );
    // The playlists appear with the first part, not after a whole segment:
    // the cuts come from the config, so TARGETDURATION is known at once.
    let url = server.url("/live/ladder/360p/index.m3u8");
    let (mut last_miss, start) = (None, Instant::now());
    let first = loop {
        let r = get(&url);
        if r.status == 200 {
            break parse_media(&r.text());
        }
        last_miss = Some(Instant::now());
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no 360p playlist"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!first.parts.is_empty(), "{}", first.text);
    // Only a timely poll right after a 404 can tell (a starved test thread
    // may ask late; a 200 at the first poll came after the playlist anyway).
    if last_miss.is_some_and(|t| t.elapsed() < Duration::from_millis(500)) {
        assert!(first.segments.is_empty(), "first playlist:\n{}", first.text);
    } else {
        eprintln!("the poll came late; the first playlist's segment count says nothing");
    }
    let (variants, audio) = multivariant(&server, "ladder");
    let expect = [
        ("720p/index.m3u8", (1280, 720)),
        ("480p/index.m3u8", (854, 480)),
        ("360p/index.m3u8", (640, 360)),
    ];
    assert_eq!(variants.len(), 3, "1080p is skipped for a 720p source");
    for (v, (uri, res)) in variants.iter().zip(expect) {
        assert_eq!(v.uri, uri);
        assert_eq!(v.resolution, Some(res));
        assert_eq!(v.audio.as_deref(), Some("audio"));
        assert!(
            v.codecs.starts_with("avc1.64") && v.codecs.ends_with(",mp4a.40.2"),
            "{}",
            v.codecs
        );
        assert_eq!(v.frame_rate, Some(30.0), "{uri}: the source's rate");
    }
    assert_eq!(audio, vec!["audio/index.m3u8".to_string()]);

    let renditions = ["720p", "480p", "360p"];
    for r in renditions.iter().chain(["audio"].iter()) {
        let m = wait_rendition(&server, "ladder", r, 8, Duration::from_secs(40));
        assert_eq!(
            m.target_duration, 1.0,
            "{r}: TARGETDURATION from the config"
        );
    }
    let ms = assert_aligned(&server, "ladder", &renditions, 5);
    // Every media playlist reports every other rendition of the stream.
    for r in renditions.iter().chain(["audio"].iter()) {
        let text = media(&server, "ladder", r).text;
        for other in renditions
            .iter()
            .chain(["audio"].iter())
            .filter(|o| *o != r)
        {
            let report = format!("#EXT-X-RENDITION-REPORT:URI=\"../{other}/index.m3u8\",LAST-MSN=");
            assert!(
                text.contains(&report),
                "{r} does not report {other}:\n{text}"
            );
        }
    }
    // CODECS names each rung's profile, constraints and level as its
    // encoded SPS (the avcC of its init segment) does.
    let (variants, _) = multivariant(&server, "ladder");
    for (m, (r, v)) in ms.iter().zip(renditions.iter().zip(&variants)) {
        let init = init_bytes(&server, "ladder", r, m);
        let at = init
            .windows(4)
            .position(|w| w == b"avcC")
            .unwrap_or_else(|| panic!("{r}: no avcC"));
        let sps = &init[at + 5..at + 8];
        let expected = format!("avc1.{:02x}{:02x}{:02x}", sps[0], sps[1], sps[2]);
        let video = v.codecs.split(',').next().unwrap_or_default();
        assert!(
            video.eq_ignore_ascii_case(&expected),
            "{r}: CODECS {video}, avcC {expected}"
        );
    }
    // The source's keyframes are 2 s apart, but every rung forces an IDR at
    // each 1 s cut: segments stay independent, and nothing says otherwise.
    let mv = get(&server.url("/live/ladder/index.m3u8")).text();
    assert!(mv.contains("#EXT-X-INDEPENDENT-SEGMENTS"), "{mv}");
    let metrics = get(&format!("http://{}/metrics", server.admin)).text();
    assert!(
        metrics.contains("castline_segments_without_keyframe_total 0"),
        "transcoded segments counted as cut between keyframes"
    );

    // Parts line up too: the same (msn, index) has the same duration everywhere.
    let parts: Vec<HashMap<(u64, u32), f64>> = ms.iter().map(part_durations).collect();
    let shared: Vec<&(u64, u32)> = parts[0]
        .keys()
        .filter(|k| parts.iter().all(|p| p.contains_key(k)))
        .collect();
    assert!(shared.len() >= 5, "too few parts listed in every rendition");
    for k in shared {
        let d: Vec<f64> = parts.iter().map(|p| p[k]).collect();
        assert!(
            d.iter().all(|x| (x - d[0]).abs() < 1e-6),
            "part {k:?}: {d:?}"
        );
    }

    // Each rendition decodes at its declared size; audio is its own track.
    let am = media(&server, "ladder", "audio");
    let afile = assert_decodes(&server, "ladder", "audio", &am);
    let astreams = probe_streams(&afile.to_path_buf());
    assert_eq!(astreams.len(), 1, "{astreams:?}");
    assert_eq!(astreams[0].0, "audio");
    for (m, (r, (_, (w, h)))) in ms.iter().zip(renditions.iter().zip(expect)) {
        let file = assert_decodes(&server, "ladder", r, m);
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_type,width,height",
            ])
            .args(["-of", "csv=p=0"])
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("video,{w},{h}"),
            "{r} is one video track at its size"
        );
        let v = probe_streams(&file.to_path_buf())[0].clone();
        assert!(
            (v.1 - astreams[0].1).abs() < 0.050,
            "{r} starts at {} s, audio at {} s",
            v.1,
            astreams[0].1
        );
    }

    // BANDWIDTH is never exceeded by what is served: every segment with its
    // audio stays within its variant's peak.
    let (variants, _) = multivariant(&server, "ladder");
    let am = media(&server, "ladder", "audio");
    let audio_bits: HashMap<u64, f64> = extinfs(&am)
        .keys()
        .map(|&msn| {
            (
                msn,
                segment_bytes(&server, "ladder", "audio", &am, msn).len() as f64 * 8.0,
            )
        })
        .collect();
    for (m, (r, v)) in ms.iter().zip(renditions.iter().zip(&variants)) {
        let (mut all_bits, mut all_seconds) = (0.0, 0.0);
        for (&msn, &d) in &extinfs(m) {
            let Some(a) = audio_bits.get(&msn) else {
                continue;
            };
            let bits = segment_bytes(&server, "ladder", r, m, msn).len() as f64 * 8.0 + a;
            let rate = bits / d;
            assert!(
                rate <= v.bandwidth as f64,
                "{r} segment {msn}: {rate:.0} bit/s over BANDWIDTH {}",
                v.bandwidth
            );
            (all_bits, all_seconds) = (all_bits + bits, all_seconds + d);
        }
        // AVERAGE-BANDWIDTH is measured (castline's mean covers every
        // segment since the start, this one the window): within half of it.
        let average = v
            .average_bandwidth
            .expect("AVERAGE-BANDWIDTH once measured") as f64;
        let served = all_bits / all_seconds;
        assert!(
            (0.5..=1.5).contains(&(average / served)),
            "{r}: AVERAGE-BANDWIDTH {average:.0}, served {served:.0} bit/s"
        );
    }

    // The metric says which backend runs: x264 without an NVIDIA device;
    // with one, NVENC if it opens there (an H100 has none), else x264.
    let metrics = get(&format!("http://{}/metrics", server.admin)).text();
    let runs =
        |b: &str| metrics.contains(&format!("castline_encoder_backend{{backend=\"{b}\"}} 1"));
    assert!(
        runs("x264") || (nvidia_device() && runs("nvenc")),
        "{metrics}"
    );
    // Each encoded frame's added latency is measured from two starts: its
    // source's arrival, and the decoder giving it out (later, so less).
    // One snapshot, read while the publish goes on.
    let metrics = get(&format!("http://{}/metrics", server.admin)).text();
    for r in renditions {
        let m = |name: &str| -> f64 {
            let prefix = format!("{name}{{rendition=\"{r}\"}} ");
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("{name} for {r} missing: {metrics}"))
        };
        let frames = m("castline_transcode_latency_seconds_count");
        assert!(frames > 100.0, "{r}: {frames} frames timed");
        // Both count every frame, but the two families are rendered one
        // after the other while the rungs encode on: a preempted scrape may
        // see up to a second of frames more in the second (30 at 30 fps).
        let decoded = m("castline_transcode_encode_latency_seconds_count");
        assert!(
            (decoded - frames).abs() <= 30.0,
            "{r}: {decoded} vs {frames} frames"
        );
        let (from_socket, from_decoder) = (
            m("castline_transcode_latency_seconds_sum"),
            m("castline_transcode_encode_latency_seconds_sum"),
        );
        assert!(
            from_decoder > 0.0 && from_decoder < from_socket,
            "{r}: {from_decoder} s from the decoder, {from_socket} s from the socket"
        );
    }
}

#[test]
fn passthrough_rung_makes_every_rung_cut_on_the_source_keyframes() {
    let server = Server::start(&format!(
        "[ingest]\nreconnect_grace = 3.0\n[transcode]\npassthrough = true\n{SMALL_LADDER}"
    ));
    let _p = Publisher::start(
        &server.rtmp_url("pass"),
        Publish {
            size: "640x480",
            gop_frames: 60,
            seconds: 40,
            ..Default::default()
        },
    );
    let (variants, _) = multivariant(&server, "pass");
    let mut uris: Vec<&str> = variants.iter().map(|v| v.uri.as_str()).collect();
    uris.sort();
    assert_eq!(
        uris,
        vec!["240p/index.m3u8", "360p/index.m3u8", "source/index.m3u8"]
    );
    let renditions = ["source", "360p", "240p"];
    for r in renditions {
        let m = wait_rendition(&server, "pass", r, 5, Duration::from_secs(40));
        assert_eq!(m.target_duration, 2.0, "{r}: a 2 s GOP makes 2 s segments");
    }
    let ms = assert_aligned(&server, "pass", &renditions, 4);
    for (&msn, &d) in &extinfs(&ms[0]) {
        assert!((d - 2.0).abs() < 0.05, "segment {msn} lasts {d}");
    }
}

#[test]
fn auto_without_nvenc_says_once_at_start_why_the_ladder_runs_on_x264() {
    if nvidia_device() {
        eprintln!("an NVIDIA device is present: this check is for machines without one");
        return;
    }
    // Said at start (after the encoder probe), not again per stream: a
    // stream is transcoded on x264 before the log is read.
    let server = Server::start_logged(SMALL_LADDER);
    let _p = Publisher::start(
        &server.rtmp_url("why"),
        Publish {
            size: "640x480",
            seconds: 20,
            ..Default::default()
        },
    );
    wait_rendition(&server, "why", "360p", 1, Duration::from_secs(30));
    let log = server.log();
    let said = log
        .lines()
        .filter(|l| l.contains("NVENC is not available; the ladder runs on libx264"))
        .collect::<Vec<_>>();
    assert_eq!(said.len(), 1, "{log}");
    assert!(
        said[0].contains("no NVIDIA device"),
        "no reason given: {}",
        said[0]
    );
    let metrics = get(&format!("http://{}/metrics", server.admin)).text();
    assert!(
        metrics.contains("castline_encoder_backend{backend=\"x264\"} 1"),
        "{metrics}"
    );
}

#[test]
fn castline_probe_says_which_encoders_work_here_and_why_the_others_do_not() {
    let out = Command::new(env!("CARGO_BIN_EXE_castline"))
        .arg("probe")
        .output()
        .expect("castline probe");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = |name: &str| -> String {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} line:\n{text}"))
            .to_string()
    };
    assert!(line("x264").ends_with(": works"), "{text}");
    let gpu = nvidia_device();
    for name in ["nvenc", "cuda"] {
        let l = line(name);
        if gpu {
            assert!(
                l.ends_with(": works") || l.contains(": unavailable: "),
                "{l}"
            );
        } else {
            // Without a device each says why, in words, not just an errno.
            let why = l.split(": unavailable: ").nth(1).unwrap_or_default();
            assert!(why.len() > 20, "{name} gives no reason: {l}");
        }
    }
    if !gpu {
        assert!(line("nvenc").contains("/dev/nvidia0 is absent"), "{text}");
    }
}

#[test]
fn nvenc_demanded_without_a_gpu_refuses_to_start() {
    if nvidia_device() {
        eprintln!("an NVIDIA device is present: this check is for machines without one");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("castline.toml");
    std::fs::write(&cfg, "[transcode]\nencoder = \"nvenc\"\n").unwrap();
    let mut child = serve_command(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("castline started with encoder = \"nvenc\" and no GPU");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(
        err.contains("transcode.encoder = \"nvenc\"") && err.contains("NVENC cannot run here"),
        "{err}"
    );
}

/// Wait until `rendition` lists a discontinuity and `n` segments after
/// `after` (the ladder continued after a reconnect).
fn wait_continued(server: &Server, stream: &str, rendition: &str, after: u64, n: usize) -> Media {
    poll(Duration::from_secs(30), || {
        let m = media(server, stream, rendition);
        let later = m.segments.iter().filter(|(u, _)| msn_of(u) > after).count();
        if m.discontinuities > 0 && later >= n {
            Ok(m)
        } else {
            Err(format!(
                "the ladder did not continue after the resolution change:\n{}",
                m.text
            ))
        }
    })
}

#[test]
fn a_source_that_changes_resolution_keeps_playing() {
    let server = Server::start(SMALL_LADDER);
    let mut first = Publisher::start(
        &server.rtmp_url("resize"),
        Publish {
            size: "640x360",
            ..Default::default()
        },
    );
    let before = wait_rendition(&server, "resize", "240p", 4, Duration::from_secs(30));
    first.kill(); // a drop, then a reconnect with another picture size
    let _second = Publisher::start(
        &server.rtmp_url("resize"),
        Publish {
            size: "960x540",
            ..Default::default()
        },
    );
    let last_before = msn_of(&before.segments.last().unwrap().0);
    let after = wait_continued(&server, "resize", "240p", last_before + 2, 3);
    assert!(!after.endlist);
    let msns: Vec<u64> = after.segments.iter().map(|(u, _)| msn_of(u)).collect();
    assert!(msns.windows(2).all(|w| w[1] == w[0] + 1), "{msns:?}");
    // Same rung size before and after, and it decodes across the discontinuity.
    let file = assert_decodes(&server, "resize", "240p", &after);
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "426,240");
    let audio = media(&server, "resize", "audio");
    assert!(
        audio.discontinuities > 0,
        "audio continues behind a discontinuity too"
    );
    assert_decodes(&server, "resize", "audio", &audio);
}

#[test]
fn every_audio_frame_sent_is_served_once_without_gaps() {
    let tee = tempfile::Builder::new()
        .suffix(".flv")
        .tempfile()
        .unwrap()
        .into_temp_path();
    // A leaked &'static str for the Publish struct; one per test run.
    let tee_path: &'static str = Box::leak(tee.to_string_lossy().into_owned().into_boxed_str());
    let server = Server::start(
        "[ingest]\nreconnect_grace = 3.0\n[[transcode.rungs]]\nname = \"240p\"\nheight = 240\nbitrate_kbps = 300\n",
    );
    let p = Publisher::start(
        &server.rtmp_url("tone"),
        Publish {
            seconds: 60,
            tee: Some(tee_path),
            ..Default::default()
        },
    );
    let (ok, err) = p.wait(Duration::from_secs(90));
    assert!(ok, "ffmpeg failed: {err}");
    let m = wait_for_endlist_within(
        &server,
        "/live/tone/audio/index.m3u8",
        Duration::from_secs(10),
    );
    let served_file = assert_decodes(&server, "tone", "audio", &m);
    let served = packets(&served_file, "a");
    let sent = packets(&tee, "a");
    let sent_video = packets(&tee, "v");
    // Audio before the first video frame is not served (so both start
    // together); every frame from there on is, exactly once.
    let first_video_ms = sent_video
        .iter()
        .map(|p| p.0)
        .min()
        .expect("video was sent");
    let expected = sent.iter().filter(|p| p.0 >= first_video_ms).count();
    assert!(
        served.len().abs_diff(expected) <= 1,
        "served {} audio frames of the {expected} sent after the first video frame ({} sent in all)",
        served.len(),
        sent.len()
    );
    assert!(
        served.len() > 2700,
        "60 s of 48 kHz AAC is about 2812 frames"
    );
    // No hole and no overlap anywhere in the timeline: each frame starts
    // where the previous one ended (1024 samples).
    let holes: Vec<(i64, i64)> = served
        .windows(2)
        .filter(|w| w[1].0 - w[0].0 != 1024)
        .map(|w| (w[0].0, w[1].0))
        .collect();
    assert!(holes.is_empty(), "audio timeline holes at {holes:?}");
    // Consecutive parts leave no gap either (tfdt + durations).
    let listed: f64 = m.segments.iter().map(|(_, d)| d).sum();
    assert!(
        (listed - served.len() as f64 * 1024.0 / 48_000.0).abs() < 0.001,
        "EXTINF sum {listed} is not the media's duration"
    );
}

#[test]
fn alignment_survives_a_transcoder_that_falls_behind() {
    // The 240p encoder stalls for 22 s after 3 s of video: the hub queue
    // (1,024 events, about 13 s) and the queues behind it (about 2 s more)
    // overflow, the stream's pipeline loses events and every
    // rendition must restart at the same next cut.
    let server = Server::start_with_env(
        SMALL_LADDER,
        &[("CASTLINE_FAULT_RUNG", "240p:90:stall-22000")],
    );
    let _p = Publisher::start(
        &server.rtmp_url("hiccup"),
        Publish {
            size: "640x480",
            seconds: 60,
            ..Default::default()
        },
    );
    let renditions = ["360p", "240p"];
    let start = Instant::now();
    let (ms, audio) = loop {
        let ms: Vec<Media> = renditions
            .iter()
            .map(|r| media(&server, "hiccup", r))
            .collect();
        let audio = media(&server, "hiccup", "audio");
        let after_gap = |m: &Media| {
            let first_disc = m.text.find("#EXT-X-DISCONTINUITY\n");
            first_disc.map_or(0, |at| m.text[at..].matches("#EXTINF").count())
        };
        if ms.iter().chain([&audio]).all(|m| after_gap(m) >= 4) {
            break (ms, audio);
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no recovery behind a discontinuity in every rendition:\n{}\n{}",
            ms[1].text,
            audio.text
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let dropped: f64 = get(&format!("http://{}/metrics", server.admin))
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("castline_hub_dropped_events_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(dropped > 0.0, "the stall should have cost hub events");
    // Every rendition has the same segments: same MSNs, same EXTINF, and
    // (checked by decoding) the same IDR instants, before and after the gap.
    let all: Vec<&Media> = ms.iter().chain([&audio]).collect();
    let msns = common_msns(&all);
    // (The playlists were read a moment apart: compare up to the newest common one.)
    let newest = *msns.last().expect("common segments");
    for m in &all {
        let listed: Vec<u64> = extinfs(m)
            .keys()
            .copied()
            .filter(|&n| n <= newest)
            .collect();
        assert_eq!(
            listed, msns,
            "a rendition lists different segments:\n{}",
            m.text
        );
    }
    let ms = assert_aligned(&server, "hiccup", &renditions, 3);
    // Segments after the gap start at the same instants too.
    let tail: Vec<u64> = msns.iter().rev().take(3).copied().collect();
    let init = |r: &str, m: &Media| init_bytes(&server, "hiccup", r, m);
    let inits: Vec<Vec<u8>> = renditions
        .iter()
        .zip(&ms)
        .map(|(r, m)| init(r, m))
        .collect();
    let am = &audio;
    let ainit = init_bytes(&server, "hiccup", "audio", am);
    for msn in tail {
        let pts: Vec<f64> = renditions
            .iter()
            .zip(&ms)
            .zip(&inits)
            .map(|((r, m), i)| first_video_frame(i, &segment_bytes(&server, "hiccup", r, m, msn)).0)
            .collect();
        assert!((pts[0] - pts[1]).abs() < 0.0015, "segment {msn}: {pts:?}");
        // The audio segment of the same number opens with the first audio
        // frame at or after the video's cut (within one AAC frame, 21.3 ms).
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut bytes = ainit.clone();
        bytes.extend(segment_bytes(&server, "hiccup", "audio", am, msn));
        std::fs::write(file.path(), bytes).unwrap();
        let a = packets(file.path(), "a")[0].0 as f64 / 48_000.0;
        assert!(
            a >= pts[0] - 0.0015 && a < pts[0] + 0.0215,
            "audio segment {msn} opens at {a} s, video at {} s",
            pts[0]
        );
    }
    // One timeline across the drop: TARGETDURATION kept, the same MSNs,
    // dates and discontinuities in every rendition, audio included.
    let named: Vec<(&str, &Media)> = renditions
        .iter()
        .copied()
        .zip(&ms)
        .chain([("audio", &audio)])
        .collect();
    assert!(assert_one_timeline(&named, 1.0 / 30.0) >= 3);
    for (r, m) in renditions.iter().zip(&ms) {
        assert_decodes(&server, "hiccup", r, m);
    }
    assert_decodes(&server, "hiccup", "audio", &audio);
}

/// A publisher whose audio reaches a cut instant before its video does (an
/// encoder without B-frames, as GStreamer's x264enc with zerolatency, whose
/// frame times do not fall on the cut instants: its live sources jitter),
/// so the audio makes the cut. Before, the rungs never heard of such cuts:
/// here every video segment lasted 7 s under TARGETDURATION 1 and the video
/// went from MSN 0 to 7 while the audio listed every number.
#[test]
fn audio_sent_ahead_of_the_video_leaves_every_rung_on_the_schedule() {
    let server = Server::start_logged(SMALL_LADDER);
    let _p = Publisher::start(
        &server.rtmp_url("ahead"),
        Publish {
            size: "640x480",
            // 70 ms frames, no B-frames: only every 7th cut instant has a
            // video frame on it; before the others the audio frame that
            // reaches the instant is sent first (ffmpeg interleaves by time).
            fps: "100/7",
            bframes: 0,
            gop_frames: 14,
            seconds: 30,
            ..Default::default()
        },
    );
    let names = ["360p", "240p", "audio"];
    let ms = poll(Duration::from_secs(40), || {
        let ms: Vec<Media> = names.iter().map(|r| media(&server, "ahead", r)).collect();
        if ms.iter().all(|m| m.segments.len() >= 8) {
            Ok(ms)
        } else {
            Err(format!(
                "fewer than 8 segments in every rendition:\n{}",
                ms[0].text
            ))
        }
    });
    let named: Vec<(&str, &Media)> = names.iter().copied().zip(&ms).collect();
    assert!(assert_one_timeline(&named, 0.07) >= 6);
    // Each video segment opens with the first frame at or after its instant.
    for (name, m) in &named[..2] {
        for (uri, d) in &m.segments {
            assert!(
                (d - 1.0).abs() < 0.071,
                "{name}: {uri} lasts {d} s:\n{}",
                m.text
            );
        }
    }
    assert_aligned(&server, "ahead", &names[..2], 3);
    assert!(
        !server.log().contains("longer than TARGETDURATION"),
        "{}",
        server.log()
    );
}

#[test]
fn a_ladder_whose_encoder_cannot_open_serves_the_stream_as_published() {
    // One rung's encoder does not open (as with no NVENC session left and no
    // x264 either): the stream is not lost, it goes out at source quality.
    let server = Server::start_with_env(SMALL_LADDER, &[("CASTLINE_FAULT_RUNG", "240p:0:open")]);
    let _p = Publisher::start(
        &server.rtmp_url("nolad"),
        Publish {
            size: "640x480",
            seconds: 30,
            ..Default::default()
        },
    );
    let (variants, audio) = multivariant(&server, "nolad");
    let uris: Vec<&str> = variants.iter().map(|v| v.uri.as_str()).collect();
    assert_eq!(uris, vec!["source/index.m3u8"], "no rung, the source alone");
    assert_eq!(variants[0].resolution, Some((640, 480)));
    assert_eq!(audio, vec!["audio/index.m3u8".to_string()]);
    let m = wait_rendition(&server, "nolad", "source", 3, Duration::from_secs(30));
    assert_decodes(&server, "nolad", "source", &m);
    let metrics = get(&format!("http://{}/metrics", server.admin)).text();
    assert!(
        metrics.contains("castline_ladder_fallbacks_total{reason=\"encoder_failed\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_failed_encoder_restarts_its_rung_alone_at_the_next_cut() {
    let server = Server::start_with_env(SMALL_LADDER, &[("CASTLINE_FAULT_RUNG", "240p:100:fail")]);
    let _p = Publisher::start(
        &server.rtmp_url("crash"),
        Publish {
            size: "640x480",
            seconds: 40,
            ..Default::default()
        },
    );
    let start = Instant::now();
    let (healthy, restarted) = loop {
        let healthy = media(&server, "crash", "360p");
        let restarted = media(&server, "crash", "240p");
        let after = restarted
            .text
            .find("#EXT-X-DISCONTINUITY\n")
            .map_or(0, |at| restarted.text[at..].matches("#EXTINF").count());
        if after >= 4 {
            break (healthy, restarted);
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "240p did not come back behind a discontinuity:\n{}",
            restarted.text
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(
        healthy.discontinuities, 0,
        "the other rung noticed:\n{}",
        healthy.text
    );
    assert_eq!(media(&server, "crash", "audio").discontinuities, 0);
    // The failed rung's segment was cut short where its encoder failed; from
    // the next cut on, segment N starts at the same instant and lasts as long
    // in both rungs.
    let first_after = {
        let at = restarted.text.find("#EXT-X-DISCONTINUITY\n").unwrap();
        let uri = restarted.text[at..]
            .lines()
            .find(|l| !l.starts_with('#') && !l.is_empty())
            .unwrap()
            .to_string();
        msn_of(&uri)
    };
    let ms = assert_aligned_from(&server, "crash", &["360p", "240p"], 3, first_after);
    assert_decodes(&server, "crash", "240p", &ms[1]);
    // The frames the restarted rung skipped until that cut are counted as
    // its own; the healthy rung dropped none.
    let dropped = |r: &str| {
        server
            .metric(&format!(
                "castline_transcode_dropped_frames_total{{rendition=\"{r}\"}}"
            ))
            .unwrap_or(0.0)
    };
    assert!(dropped("240p") > 0.0, "the restarted rung's skipped frames");
    assert_eq!(dropped("360p"), 0.0);
}

#[test]
fn a_rung_with_a_frame_rate_cap_halves_a_sixty_fps_source_and_stays_aligned() {
    let server = Server::start(
        "[[transcode.rungs]]\nname = \"240p30\"\nheight = 240\nbitrate_kbps = 300\nmax_fps = 30\n\
         [[transcode.rungs]]\nname = \"180p\"\nheight = 180\nbitrate_kbps = 200\n",
    );
    let _p = Publisher::start(
        &server.rtmp_url("sixty"),
        Publish {
            fps: "60",
            gop_frames: 120,
            seconds: 30,
            ..Default::default()
        },
    );
    let (variants, _) = multivariant(&server, "sixty");
    assert_eq!(variants.len(), 2);
    for r in ["240p30", "180p"] {
        wait_rendition(&server, "sixty", r, 5, Duration::from_secs(30));
    }
    // Segment N starts at the same instant with an IDR in both; its listed
    // length may differ by less than a frame (the last part of each ends one
    // frame of its own rate after its last frame).
    let renditions = ["240p30", "180p"];
    let ms: Vec<Media> = renditions
        .iter()
        .map(|r| media(&server, "sixty", r))
        .collect();
    let msns = common_msns(&ms.iter().collect::<Vec<_>>());
    assert!(msns.len() >= 3);
    let inits: Vec<Vec<u8>> = renditions
        .iter()
        .zip(&ms)
        .map(|(r, m)| init_bytes(&server, "sixty", r, m))
        .collect();
    for &msn in &msns[..3] {
        let d: Vec<f64> = ms.iter().map(|m| extinfs(m)[&msn]).collect();
        assert!((d[0] - d[1]).abs() < 1.0 / 30.0, "segment {msn}: {d:?}");
        let firsts: Vec<(f64, bool, bool)> = renditions
            .iter()
            .zip(&ms)
            .zip(&inits)
            .map(|((r, m), i)| first_video_frame(i, &segment_bytes(&server, "sixty", r, m, msn)))
            .collect();
        assert!(
            firsts.iter().all(|f| f.1 && f.2),
            "segment {msn}: {firsts:?}"
        );
        assert!(
            (firsts[0].0 - firsts[1].0).abs() < 0.0015,
            "segment {msn}: {firsts:?}"
        );
    }
    for ((r, m), fps) in ["240p30", "180p"].iter().zip(&ms).zip([30, 60]) {
        let file = assert_decodes(&server, "sixty", r, m);
        let video = packets(&file, "v");
        let seconds: f64 = m.segments.iter().map(|(_, d)| d).sum();
        let rate = video.len() as f64 / seconds;
        assert!(
            (rate - fps as f64).abs() < 1.0,
            "{r}: {} frames in {seconds} s is {rate:.1} fps, expected {fps}",
            video.len()
        );
    }
}

#[test]
fn a_keyframe_interval_makes_every_second_part_independent_on_every_rung() {
    // 1 s segments of five 0.2 s parts; an IDR every 0.4 s: parts 0, 2, 4.
    let server = Server::start(
        "[transcode]\nkeyframe_interval = 0.4\n\
         [[transcode.rungs]]\nname = \"180p\"\nheight = 180\nbitrate_kbps = 250\n\
         [[transcode.rungs]]\nname = \"120p\"\nheight = 120\nbitrate_kbps = 150\n",
    );
    let _p = Publisher::start(
        &server.rtmp_url("idr"),
        Publish {
            gop_frames: 60,
            seconds: 30,
            ..Default::default()
        },
    );
    let renditions = ["180p", "120p"];
    let mut flags: Vec<BTreeMap<(u64, u32), bool>> = Vec::new();
    for r in renditions {
        let m = wait_rendition(&server, "idr", r, 6, Duration::from_secs(30));
        let parts: BTreeMap<(u64, u32), bool> = m
            .parts
            .iter()
            .filter_map(|(uri, _, independent)| {
                let name = uri.rsplit('/').next()?.strip_suffix(".m4s")?;
                let (msn, idx) = name.split_once('.')?;
                Some(((msn.parse().ok()?, idx.parse().ok()?), *independent))
            })
            .collect();
        // Every segment whose five parts are listed: IDRs at 0, 0.4 and 0.8 s.
        let complete: Vec<u64> = m
            .segments
            .iter()
            .filter_map(|(uri, _)| uri.rsplit('/').next()?.strip_suffix(".m4s")?.parse().ok())
            .filter(|msn| (0..5).all(|i| parts.contains_key(&(*msn, i))))
            .collect();
        assert!(
            !complete.is_empty(),
            "{r}: no segment with its parts listed: {}",
            m.text
        );
        for msn in complete {
            let got: Vec<bool> = (0..5).map(|i| parts[&(msn, i)]).collect();
            assert_eq!(
                got,
                [true, false, true, false, true],
                "{r} segment {msn}: {}",
                m.text
            );
        }
        // What INDEPENDENT promises is true: that part starts with an IDR.
        let init = init_bytes(&server, "idr", r, &m);
        let (&(msn, idx), _) = parts.iter().find(|(k, v)| **v && k.1 == 2).expect("part 2");
        let part = get(&server.url(&format!(
            "/live/idr/{r}/{}/{msn}.{idx}.m4s",
            m.maps[0].split('/').next().unwrap_or_default()
        )));
        assert_eq!(part.status, 200);
        let (_, sync, idr) = first_video_frame(&init, &part.body);
        assert!(sync && idr, "{r} part {msn}.{idx} is not an IDR");
        assert_decodes(&server, "idr", r, &m);
        flags.push(parts);
    }
    // The same parts are independent in both renditions.
    for (k, v) in &flags[0] {
        if let Some(w) = flags[1].get(k) {
            assert_eq!(v, w, "part {k:?}");
        }
    }
}

/// The GPU frame path's plumbing, run here with the software `scale` filter
/// in place of `scale_cuda` (`CASTLINE_SCALE_GRAPH=software`): one graph on
/// the decode thread scales every frame to every rung, and is built again
/// when a reconnect brings another picture size. Only the CUDA filters and
/// contexts differ on a GPU node.
#[test]
fn the_scale_graph_feeds_every_rung_at_its_size_across_a_resolution_change() {
    let server = Server::start_with_env(SMALL_LADDER, &[("CASTLINE_SCALE_GRAPH", "software")]);
    let metrics = get(&format!("http://{}/metrics", server.admin)).text();
    assert!(
        metrics.contains("castline_transcode_frame_path{path=\"software_graph\"} 1"),
        "{metrics}"
    );
    let mut first = Publisher::start(
        &server.rtmp_url("graph"),
        Publish {
            size: "640x360",
            ..Default::default()
        },
    );
    let renditions = ["360p", "240p"];
    let before = wait_rendition(&server, "graph", "240p", 5, Duration::from_secs(30));
    assert_aligned(&server, "graph", &renditions, 4);
    first.kill();
    let _second = Publisher::start(
        &server.rtmp_url("graph"),
        Publish {
            size: "960x540",
            ..Default::default()
        },
    );
    let last_before = msn_of(&before.segments.last().unwrap().0);
    wait_continued(&server, "graph", "240p", last_before + 2, 4);
    // After the change, still aligned, and each rung decodes at its size
    // across the discontinuity.
    let ms = assert_aligned_from(&server, "graph", &renditions, 3, last_before + 2);
    for (r, (m, size)) in renditions.iter().zip(ms.iter().zip(["640,360", "426,240"])) {
        let file = assert_decodes(&server, "graph", r, m);
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", "stream=width,height"])
            .args(["-of", "csv=p=0"])
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), size, "{r}");
    }
    let metrics = get(&format!("http://{}/metrics", server.admin)).text();
    assert!(
        metrics.contains("castline_transcode_errors_total 0"),
        "the graph refused frames"
    );
}

/// DESIGN.md's one timeline from the start, across a reconnect, to the end:
/// every rendition (audio included) lists the same MSNs with the same
/// PROGRAM-DATE-TIME and the same DISCONTINUITYs (the slate's start and the
/// input's return), and the dates run on through the outage alike. Before, the video
/// renditions' dates carried on from the last segment while the audio's
/// jumped to the wall clock (2.8 to 7.2 s apart after real OBS reconnects),
/// and the audio could list a last segment the video renditions did not.
#[test]
fn every_rendition_keeps_one_timeline_across_a_reconnect_and_the_end() {
    let server = Server::start(&format!("[ingest]\nreconnect_grace = 15.0\n{SMALL_LADDER}"));
    // B-frames, as OBS sends: the drop may come while the video is past a
    // cut the audio has not reached (the audio is then filled with silence).
    let mut first = Publisher::start(
        &server.rtmp_url("again"),
        Publish {
            size: "640x480",
            ..Default::default()
        },
    );
    wait_rendition(&server, "again", "240p", 4, Duration::from_secs(60));
    first.kill(); // a network drop: no unpublish
    std::thread::sleep(Duration::from_secs(3));
    let second = Publisher::start(
        &server.rtmp_url("again"),
        Publish {
            size: "640x480",
            seconds: 8,
            ..Default::default()
        },
    );
    let (ok, err) = second.wait(Duration::from_secs(60));
    assert!(ok, "ffmpeg failed: {err}");
    let names = ["360p", "240p", "audio"];
    let ms: Vec<Media> = names
        .iter()
        .map(|r| wait_for_endlist(&server, &format!("/live/again/{r}/index.m3u8")))
        .collect();
    let named: Vec<(&str, &Media)> = names.iter().copied().zip(&ms).collect();
    assert!(assert_one_timeline(&named, 1.0 / 30.0) >= 8);
    for (name, m) in &named {
        // The slate covers the outage: one discontinuity as it starts, one
        // as the input comes back, at the same MSNs everywhere.
        assert_eq!(m.discontinuity_msns.len(), 2, "{name}:\n{}", m.text);
        assert_eq!(m.discontinuity_msns, ms[0].discontinuity_msns, "{name}");
        // Every MSN of the session to its end, in every rendition.
        assert_eq!(
            m.segments.last().map(|(u, _)| msn_of(u)),
            ms[0].segments.last().map(|(u, _)| msn_of(u)),
            "{name} ends on another MSN:\n{}\n{}",
            m.text,
            ms[0].text
        );
    }
    // The slate starts where the input stopped and runs until it is back:
    // the dates run on across both discontinuities (no hole of the outage's
    // length), alike everywhere.
    for at in ms[0].discontinuity_msns.clone() {
        for (name, m) in &named {
            let dates = implied_dates(m);
            let before = m
                .segments
                .iter()
                .find(|(u, _)| msn_of(u) == at - 1)
                .map(|(_, d)| dates[&(at - 1)] + d)
                .expect("the segment before the discontinuity");
            let jump = dates[&at] - before;
            assert!(
                jump.abs() < 1.0,
                "{name}: dates jump {jump} s at {at}:\n{}",
                m.text
            );
        }
    }
}

/// With B-frames the video goes out ahead of its presentation time, so a
/// session can end with the video past a cut the audio never reached; the
/// audio then lacked that MSN (issue 29's reconnect edge). Here the audio
/// input ends 4.9 s in while the video goes on: the same state, held long
/// enough to end the session in it, by a drop (the slate follows) and by
/// an unpublish (the end). The audio is filled with silence up to where
/// the video stopped, so it lists every MSN the video renditions list.
#[test]
fn the_audio_lists_every_msn_the_video_does_when_a_session_ends_with_the_video_ahead() {
    let server = Server::start(&format!("[ingest]\nreconnect_grace = 3.0\n{SMALL_LADDER}"));
    let short = |seconds| Publish {
        size: "640x480",
        audio_ends: Some("4.9"),
        seconds,
        ..Default::default()
    };
    let mut dropped = Publisher::start(&server.rtmp_url("dropped"), short(60));
    let ended = Publisher::start(&server.rtmp_url("ended"), short(7));
    // The video is two cuts past the audio's end when the publisher drops.
    wait_rendition(&server, "dropped", "240p", 7, Duration::from_secs(60));
    dropped.kill();
    let (ok, err) = ended.wait(Duration::from_secs(60));
    assert!(ok, "ffmpeg failed: {err}");
    let names = ["360p", "240p", "audio"];
    for (stream, breaks) in [("dropped", 1), ("ended", 0)] {
        let ms: Vec<Media> = names
            .iter()
            .map(|r| wait_for_endlist(&server, &format!("/live/{stream}/{r}/index.m3u8")))
            .collect();
        let named: Vec<(&str, &Media)> = names.iter().copied().zip(&ms).collect();
        assert_one_timeline(&named, 1.0 / 30.0);
        let msns = |m: &Media| {
            m.segments
                .iter()
                .map(|(u, _)| msn_of(u))
                .collect::<Vec<_>>()
        };
        for (name, m) in &named {
            assert_eq!(
                msns(m),
                msns(&ms[0]),
                "{stream}/{name}:\n{}\n{}",
                m.text,
                ms[0].text
            );
            assert_eq!(
                m.discontinuity_msns.len(),
                breaks,
                "{stream}/{name}:\n{}",
                m.text
            );
            assert_eq!(
                m.discontinuity_msns, ms[0].discontinuity_msns,
                "{stream}/{name}"
            );
        }
        // The video went on past the audio's end (4.9 s): at least MSN 6
        // (its own media, before any slate) is in the audio too.
        let video_only = ms[1]
            .segments
            .iter()
            .filter(|(u, _)| {
                ms[1]
                    .discontinuity_msns
                    .first()
                    .is_none_or(|d| msn_of(u) < *d)
            })
            .count();
        assert!(video_only >= 6, "{stream}: {}", ms[1].text);
        // The silence decodes, and the publisher's session (the first
        // init) lasts as long in the audio as in the video.
        let video = assert_decodes(&server, stream, "240p", &ms[1]);
        let audio = assert_decodes(&server, stream, "audio", &ms[2]);
        let length = |f: &tempfile::TempPath, kind: &str| {
            probe_streams(&f.to_path_buf())
                .into_iter()
                .find(|(k, _, _)| k == kind)
                .map(|(_, _, d)| d)
                .expect("a stream")
        };
        let (v, a) = (length(&video, "video"), length(&audio, "audio"));
        assert!((v - a).abs() < 0.1, "{stream}: video {v} s, audio {a} s");
    }
}
