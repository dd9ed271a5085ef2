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
    // Per rendition and over all of them: (le, cumulative count), count, sum.
    #[derive(Default)]
    struct Hist {
        buckets: Vec<(f64, f64)>,
        count: f64,
        sum: f64,
    }
    let mut per: std::collections::BTreeMap<String, Hist> = Default::default();
    let label = |labels: &str, name: &str| -> Option<String> {
        labels
            .split(',')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
            .map(|v| v.trim_end_matches('"').to_string())
    };
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("castline_part_ready_seconds_") else {
            continue;
        };
        let Some((kind, rest)) = rest.split_once('{') else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let value: f64 = value.parse().unwrap();
        let Some(rendition) = label(labels, "rendition") else {
            continue;
        };
        let h = per.entry(rendition).or_default();
        match kind {
            "bucket" => {
                let le = label(labels, "le").unwrap();
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                h.buckets.push((le, value));
            }
            "count" => h.count = value,
            "sum" => h.sum = value,
            _ => {}
        }
    }
    let mut all = Hist::default();
    for h in per.values() {
        all.count += h.count;
        all.sum += h.sum;
        for (i, &(le, c)) in h.buckets.iter().enumerate() {
            match all.buckets.get_mut(i) {
                Some(b) => b.1 += c,
                None => all.buckets.push((le, c)),
            }
        }
    }
    let _ = std::fs::remove_file(&config);
    println!("protocol: {protocol}, {mode}");
    let show = |name: &str, h: &Hist| {
        let bound = |q: f64| {
            h.buckets
                .iter()
                .find(|(_, c)| *c >= q * h.count)
                .map(|(le, _)| *le * 1000.0)
                .unwrap_or(f64::NAN)
        };
        println!(
            "{name}: parts {}, mean {:.3} ms, p50 <= {} ms, p99 <= {} ms, max bucket <= {} ms",
            h.count,
            h.sum / h.count * 1000.0,
            bound(0.5),
            bound(0.99),
            bound(1.0)
        );
        let within: Vec<String> = h
            .buckets
            .iter()
            .map(|(le, c)| format!("{}:{c}", le * 1000.0))
            .collect();
        println!("  cumulative by bucket (ms:parts) {}", within.join(" "));
    };
    show("all", &all);
    for (name, h) in &per {
        show(name, h);
    }
}
