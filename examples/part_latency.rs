//! Part-ready latency under a real publish: runs the release `castline` and
//! an ffmpeg publisher (x264 with B-frames + AAC, 720p30) for N seconds over
//! RTMP or SRT, then reads castline's `castline_part_ready_seconds` histogram
//! from /metrics: the time from the newest frame of a part being read off the
//! socket (over SRT: its last TS packet, after SRT's own latency) to that part
//! being servable from the store.
//!
//! With `passthrough` (the default) the ladder is off, so the figure is the
//! ingest and packaging path alone; `ladder` adds the transcoding (x264's
//! encode time per rung).
//!
//! cargo build --release && cargo run --release --example part_latency [seconds] [rtmp|srt] [passthrough|ladder]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let protocol = std::env::args().nth(2).unwrap_or_else(|| "rtmp".into());
    let mode = std::env::args()
        .nth(3)
        .unwrap_or_else(|| "passthrough".into());
    let config =
        std::env::temp_dir().join(format!("castline-part-latency-{}.toml", std::process::id()));
    let ladder = mode == "ladder";
    std::fs::write(&config, format!("[transcode]\nenabled = {ladder}\n")).unwrap();
    let bin = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/castline");
    let mut server = Command::new(bin)
        .args(["serve", "--config"])
        .arg(&config)
        .args([
            "--rtmp-listen",
            "127.0.0.1:0",
            "--srt-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("run target/release/castline (cargo build --release first)");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let mut addr = || {
        lines
            .next()
            .unwrap()
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string()
    };
    let (rtmp, srt, _http, admin) = (addr(), addr(), addr(), addr());
    let (format, url) = match protocol.as_str() {
        "srt" => ("mpegts", format!("srt://{srt}?streamid=bench")),
        _ => ("flv", format!("rtmp://{rtmp}/live/bench")),
    };
    let status = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-bf",
            "2",
            "-g",
            "30",
            "-keyint_min",
            "30",
            "-sc_threshold",
            "0",
            "-b:v",
            "3000k",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
        ])
        .args(["-t", &seconds.to_string(), "-f", format, &url])
        .status()
        .expect("ffmpeg");
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(500));
    let mut tcp = TcpStream::connect(&admin).unwrap();
    std::io::Write::write_all(
        &mut tcp,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    let mut count = 0.0;
    let mut sum = 0.0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("castline_part_ready_seconds_bucket{le=\"") {
            let (le, v) = rest.split_once("\"} ").unwrap();
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            buckets.push((le, v.parse().unwrap()));
        } else if let Some(v) = line.strip_prefix("castline_part_ready_seconds_count ") {
            count = v.parse().unwrap();
        } else if let Some(v) = line.strip_prefix("castline_part_ready_seconds_sum ") {
            sum = v.parse().unwrap();
        }
    }
    let bound = |q: f64| {
        buckets
            .iter()
            .find(|(_, c)| *c >= q * count)
            .map(|(le, _)| *le * 1000.0)
            .unwrap_or(f64::NAN)
    };
    let _ = std::fs::remove_file(&config);
    println!("protocol: {protocol}, {mode}");
    println!("parts: {count}");
    println!("mean: {:.3} ms", sum / count * 1000.0);
    println!(
        "p50 <= {} ms, p99 <= {} ms, max bucket <= {} ms",
        bound(0.5),
        bound(0.99),
        bound(1.0)
    );
    for (le, c) in &buckets {
        println!("  le {:>8} ms: {c}", le * 1000.0);
    }
}
