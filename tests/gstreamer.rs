//! A second real publisher beside ffmpeg: GStreamer 1.22's `rtmp2sink`
//! (x264 with B-frames, AAC), as a hardware encoder or a GStreamer-based
//! production tool would send it. Needs `gst-launch-1.0` with the good, bad
//! and ugly plugins (installed by `make test`).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// gst-launch-1.0 publishing `seconds` of 320x240 30 fps x264 (2 B-frames,
/// a keyframe a second) and 48 kHz AAC to `url`, stopping with EOS (`-e`):
/// rtmp2sink then sends `stop_commands` (its default: FCUnpublish and
/// deleteStream).
fn gst_publish(url: &str, seconds: u32, stop_commands: &str) -> Command {
    let video_buffers = format!("num-buffers={}", seconds * 30);
    // 1,024 samples per buffer at 48 kHz.
    let audio_buffers = format!("num-buffers={}", seconds * 48_000 / 1024);
    let location = format!("location={url}");
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.args([
        "-q",
        "-e",
        "videotestsrc",
        "is-live=true",
        &video_buffers,
        "!",
    ])
    .args(["video/x-raw,width=320,height=240,framerate=30/1", "!"])
    .args([
        "x264enc",
        "speed-preset=veryfast",
        "bframes=2",
        "key-int-max=30",
    ])
    .args([
        "bitrate=400",
        "!",
        "video/x-h264,profile=high",
        "!",
        "h264parse",
        "!",
    ])
    .args(["queue", "!", "flvmux", "name=mux", "streamable=true", "!"])
    .args([
        "rtmp2sink",
        &location,
        &format!("stop-commands={stop_commands}"),
    ])
    .args([
        "audiotestsrc",
        "is-live=true",
        "wave=sine",
        "freq=440",
        &audio_buffers,
    ])
    .args([
        "!",
        "audio/x-raw,rate=48000,channels=1",
        "!",
        "audioconvert",
        "!",
    ])
    .args([
        "voaacenc",
        "bitrate=64000",
        "!",
        "aacparse",
        "!",
        "queue",
        "!",
        "mux.",
    ]);
    cmd
}

/// Publish with GStreamer until its EOS, and wait for ENDLIST; fails unless
/// it comes within 1 s of gst-launch's exit.
fn publish_until_endlist(server: &Server, stream: &str, seconds: u32, stop: &str) -> Media {
    let status = gst_publish(&server.rtmp_url(stream), seconds, stop)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run gst-launch-1.0");
    let stopped = Instant::now();
    assert!(status.success(), "gst-launch-1.0 failed: {status}");
    let url = server.url(&format!("/live/{stream}/source/index.m3u8"));
    loop {
        let m = wait_media_at(&url, 1, Duration::from_secs(5));
        if m.endlist {
            return m;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "no ENDLIST within 5 s of GStreamer's EOS ({stop}; the grace is 10 s): {}",
            m.text
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `closeStream` alone, as Flash's `NetStream.close` sends it: no stream id
/// argument (rml_rtmp's session raises nothing for it; castline watches for it).
#[test]
fn a_close_stream_alone_ends_the_stream_at_once() {
    let server = Server::start("[ingest]\nreconnect_grace = 10.0\n[transcode]\nenabled = false\n");
    let m = publish_until_endlist(&server, "closing", 5, "closestream");
    assert!(m.segments.len() >= 3, "{}", m.text);
}

#[test]
fn gstreamer_publishes_without_timeline_holes_and_its_eos_ends_the_stream_at_once() {
    // A long reconnect grace: an ENDLIST within 5 s can only come from the
    // unpublish, not from the grace running out.
    let server = Server::start("[ingest]\nreconnect_grace = 10.0\n[transcode]\nenabled = false\n");
    let video = publish_until_endlist(&server, "gst", 20, "fcunpublish+deletestream");
    let audio = wait_media_at(
        &server.url("/live/gst/audio/index.m3u8"),
        1,
        Duration::from_secs(2),
    );
    assert!(audio.endlist, "{}", audio.text);
    assert_eq!(video.discontinuities, 0, "{}", video.text);
    assert!(video.segments.len() >= 15, "{}", video.text);

    for (rendition, m, timescale) in [("source", &video, 90_000.0), ("audio", &audio, 48_000.0)] {
        let file = tempfile::NamedTempFile::new()
            .expect("temp file")
            .into_temp_path();
        download(&server, "gst", rendition, m, &file.to_path_buf());
        // GStreamer's live timestamps are irregular (frames 16 to 48 ms
        // apart, as in the FLV it sends), which ffmpeg's null muxer reports
        // for the publisher's own FLV as well; anything else is an error.
        let errors: Vec<String> = decode_errors(&file.to_path_buf())
            .lines()
            .filter(|l| !l.contains("non monotonically increasing dts to muxer"))
            // ffmpeg's note that the line before came twice: that line
            // itself is kept (or was the dts note above).
            .filter(|l| !l.trim_start().starts_with("Last message repeated"))
            .map(str::to_string)
            .collect();
        assert!(errors.is_empty(), "{rendition} does not decode: {errors:?}");
        let timeline = fragment_timeline(&std::fs::read(&file).expect("read media"));
        assert!(
            timeline.len() >= 15,
            "{rendition}: {} fragments",
            timeline.len()
        );
        // Each sample lasts until the next one starts, so each segment's
        // tfdt is where the one before it ended: no hole, no overlap.
        let gaps = fragment_holes(&timeline);
        assert!(gaps.is_empty(), "{rendition}: timeline holes at {gaps:?}");
        // EXTINF adds up to the media's duration.
        let listed: f64 = m.segments.iter().map(|(_, d)| d).sum();
        let media = timeline.iter().map(|(_, d)| *d).sum::<u64>() as f64 / timescale;
        assert!(
            (listed - media).abs() < 0.002,
            "{rendition}: EXTINF sum {listed} s, media {media} s"
        );
    }
}

/// GStreamer as a new user would run it at 720p (issue 28): x264enc with
/// zerolatency (no B-frames, so nothing sends its video ahead of its time),
/// live sources whose frame times jitter, flvmux, 1,024-sample AAC; the
/// default ladder (720p, 480p, 360p) on this 2-core machine, which GStreamer's
/// own 720p encode keeps busy. Before, a cut the audio reached first never
/// reached the rungs: segments of 2-7 s under TARGETDURATION 1, video MSNs
/// skipped while the audio's went on.
#[test]
fn gstreamer_at_720p_keeps_one_timeline_across_the_ladder() {
    let server = Server::start("[ingest]\nreconnect_grace = 10.0\n");
    let seconds = 15;
    let video_buffers = format!("num-buffers={}", seconds * 30);
    let audio_buffers = format!("num-buffers={}", seconds * 48_000 / 1024);
    let location = format!("location={}", server.rtmp_url("gst720"));
    let status = Command::new("gst-launch-1.0")
        .args(["-q", "-e", "videotestsrc", "is-live=true", "pattern=smpte"])
        .args([&video_buffers, "!"])
        .args([
            "video/x-raw,width=1280,height=720,framerate=30/1,format=I420",
            "!",
            "timeoverlay",
            "!",
        ])
        .args([
            "x264enc",
            "tune=zerolatency",
            "speed-preset=veryfast",
            "bitrate=2500",
            "key-int-max=60",
            "!",
            "h264parse",
            "!",
        ])
        .args(["flvmux", "name=m", "streamable=true", "!", "rtmp2sink"])
        .arg(&location)
        .args(["audiotestsrc", "is-live=true", "wave=sine", "freq=440"])
        .arg(&audio_buffers)
        .args(["!", "audio/x-raw,rate=48000,channels=2", "!"])
        .args(["voaacenc", "bitrate=128000", "!", "aacparse", "!", "m."])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run gst-launch-1.0");
    assert!(status.success(), "gst-launch-1.0 failed: {status}");
    let names = ["720p", "480p", "360p", "audio"];
    let ms: Vec<Media> = names
        .iter()
        .map(|r| wait_for_endlist(&server, &format!("/live/gst720/{r}/index.m3u8")))
        .collect();
    let named: Vec<(&str, &Media)> = names.iter().copied().zip(&ms).collect();
    // GStreamer's live frame times are 16 to 48 ms apart: a segment opens
    // with the first frame at or after its cut, up to 48 ms after it.
    let common = assert_one_timeline(&named, 0.048);
    assert!(common >= 10, "{common} segments in every rendition");
    for (name, m) in &named[..3] {
        assert_eq!(m.target_duration, 1.0, "{name}: {}", m.text);
    }
}
