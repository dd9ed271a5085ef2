//! SRT ingest end to end: the real ffmpeg CLI publishes MPEG-TS over SRT
//! (x264 with B-frames, AAC) to a real castline; playlists are read over
//! HTTP and what is served is decoded with ffmpeg.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

const ONE_RUNG: &str = "[[transcode.rungs]]\nname = \"240p\"\nheight = 240\nbitrate_kbps = 300\n";

fn metrics(server: &Server) -> String {
    get(&format!("http://{}/metrics", server.admin)).text()
}

/// The value of one metric line (`name{labels}`), if present.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// An SRT publisher that is not expected to get in: ffmpeg exits with an
/// error (it gets no further than the handshake).
fn refused(url: &str) -> bool {
    let short = Publish {
        seconds: 3,
        ..Default::default()
    };
    let (ok, _) = Publisher::start(url, short).wait(Duration::from_secs(20));
    !ok
}

#[test]
fn srt_with_b_frames_becomes_ll_hls_through_the_ladder_and_decodes() {
    let server = Server::start(ONE_RUNG);
    let _p = Publisher::start(
        &server.srt_url("#!::r=field,m=publish", ""),
        Publish {
            size: "640x360",
            seconds: 40,
            ..Default::default()
        },
    );
    let mv = wait_for(
        &server.url("/live/field/index.m3u8"),
        Duration::from_secs(20),
    );
    let Ok((_, m3u8_rs::Playlist::MasterPlaylist(master))) = m3u8_rs::parse_playlist(&mv.body)
    else {
        panic!("not a multivariant playlist: {}", mv.text())
    };
    let v = &master.variants[0];
    assert_eq!(v.uri, "240p/index.m3u8", "the ladder's rung: {}", mv.text());
    assert_eq!(v.resolution.map(|r| (r.width, r.height)), Some((426, 240)));
    assert!(v.codecs.as_deref().unwrap().contains("mp4a.40.2"));

    let m = wait_rendition(&server, "field", "240p", 5, Duration::from_secs(40));
    assert_eq!(m.discontinuities, 0);
    let video = assert_decodes(&server, "field", "240p", &m);
    let am = wait_rendition(&server, "field", "audio", 5, Duration::from_secs(10));
    let audio = assert_decodes(&server, "field", "audio", &am);
    let v = probe_streams(&video.to_path_buf());
    let a = probe_streams(&audio.to_path_buf());
    let (v, a) = (&v[0], &a[0]);
    assert_eq!((v.0.as_str(), a.0.as_str()), ("video", "audio"));
    assert!(
        (v.1 - a.1).abs() < 0.050,
        "video starts at {} s, audio at {} s",
        v.1,
        a.1
    );

    let text = metrics(&server);
    assert_eq!(metric(&text, "castline_srt_connections_total"), Some(1.0));
    assert_eq!(
        metric(&text, "castline_srt_ts_continuity_errors_total"),
        Some(0.0)
    );
    assert!(
        metric(
            &text,
            "castline_srt_packets_received_total{stream=\"field\"}"
        )
        .unwrap()
            > 100.0
    );
    assert!(metric(&text, "castline_srt_rtt_seconds{stream=\"field\"}").is_some());
}

#[test]
fn every_stream_id_form_publishes_and_playback_or_unknown_keys_are_refused() {
    let server = Server::start(
        "[ingest]\nreconnect_grace = 3.0\n[ingest.keys]\nk1 = \"one\"\nk2 = \"two\"\nk3 = \"three\"\nk4 = \"four\"\n",
    );
    let forms = [
        ("#!::u=alice,r=k1,m=publish", "one"),
        ("publish:k2", "two"),
        ("live/k3", "three"),
        ("k4", "four"),
    ];
    let _publishers: Vec<Publisher> = forms
        .iter()
        .map(|(id, _)| Publisher::start(&server.srt_url(id, ""), Publish::default()))
        .collect();
    for (id, name) in forms {
        let m = wait_segments(&server, name, 2, Duration::from_secs(30));
        assert!(!m.segments.is_empty(), "{id} publishes to {name}");
    }
    // The key is not the name: publishing to a name, or an unknown key, is refused.
    assert!(refused(&server.srt_url("one", "")));
    assert!(refused(&server.srt_url("#!::r=nope,m=publish", "")));
    // A playback caller (m=request) is refused with a reason, not served.
    let play = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(server.srt_url("#!::r=k1,m=request", ""))
        .args(["-t", "1", "-f", "null", "-"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("ffmpeg");
    assert!(!play.success());
    let text = metrics(&server);
    assert_eq!(
        metric(&text, "castline_srt_refusals_total{reason=\"auth\"}"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "castline_srt_refusals_total{reason=\"playback\"}"),
        Some(1.0)
    );
    // The four streams are live and untouched.
    for (_, name) in forms {
        let m = parse_media(&get(&server.url(&format!("/live/{name}/source/index.m3u8"))).text());
        assert!(!m.endlist && m.discontinuities == 0, "{name}");
    }
}

#[test]
fn a_passphrase_is_required_and_checked() {
    let server = Server::start(
        "[ingest]\nreconnect_grace = 3.0\n[srt]\npassphrase = \"correct-horse-battery\"\n",
    );
    let _aes128 = Publisher::start(
        &server.srt_url("right", "&passphrase=correct-horse-battery"),
        Publish::default(),
    );
    let _aes256 = Publisher::start(
        &server.srt_url("right256", "&passphrase=correct-horse-battery&pbkeylen=32"),
        Publish::default(),
    );
    let m = wait_segments(&server, "right", 3, Duration::from_secs(30));
    assert_decodes(&server, "right", "source", &m);
    let m = wait_segments(&server, "right256", 3, Duration::from_secs(30));
    assert_decodes(&server, "right256", "source", &m);
    assert!(refused(
        &server.srt_url("wrong", "&passphrase=incorrect-horse")
    ));
    assert!(refused(&server.srt_url("none", "")));
    for name in ["wrong", "none"] {
        let r = get(&server.url(&format!("/live/{name}/index.m3u8")));
        assert_eq!(r.status, 404, "{name} never became a stream");
    }
    let text = metrics(&server);
    assert_eq!(
        metric(&text, "castline_srt_errors_total{reason=\"handshake\"}"),
        Some(2.0),
        "{text}"
    );
}

/// A UDP relay between an SRT caller and castline that drops `percent` of
/// the caller's data packets (control packets pass: the handshake and the
/// loss reports).
struct LossyRelay {
    addr: SocketAddr,
    dropped: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl LossyRelay {
    fn start(server: SocketAddr, percent: u32) -> LossyRelay {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        back.connect(server).unwrap();
        for s in [&front, &back] {
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
        }
        let addr = front.local_addr().unwrap();
        let (dropped, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let caller = Arc::new(std::sync::Mutex::new(None::<SocketAddr>));
        {
            let (front, back) = (front.try_clone().unwrap(), back.try_clone().unwrap());
            let (dropped, stop, caller) = (dropped.clone(), stop.clone(), caller.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                let mut seed = 0x9e37_79b9u32;
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = front.recv_from(&mut buf) else {
                        continue;
                    };
                    *caller.lock().unwrap() = Some(from);
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    let data = buf[0] & 0x80 == 0;
                    if data && seed % 100 < percent {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let _ = back.send(&buf[..n]);
                }
            });
        }
        {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(n) = back.recv(&mut buf) else { continue };
                    if let Some(to) = *caller.lock().unwrap() {
                        let _ = front.send_to(&buf[..n], to);
                    }
                }
            });
        }
        LossyRelay {
            addr,
            dropped,
            stop,
        }
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn two_percent_packet_loss_is_repaired_by_srt_with_no_gap() {
    let server = Server::start("");
    let relay = LossyRelay::start(server.srt.unwrap(), 2);
    let p = Publisher::start(
        &format!("srt://{}?streamid=lossy&latency=200000", relay.addr),
        Publish {
            seconds: 12,
            bitrate: "1500k",
            ..Default::default()
        },
    );
    // While live, the link's figures show the repair.
    wait_segments(&server, "lossy", 3, Duration::from_secs(20));
    let start = Instant::now();
    let retransmitted = loop {
        let r = metric(
            &metrics(&server),
            "castline_srt_packets_retransmitted_total{stream=\"lossy\"}",
        )
        .unwrap_or(0.0);
        if r >= 10.0 || start.elapsed() > Duration::from_secs(8) {
            break r;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(retransmitted >= 10.0, "retransmitted {retransmitted}");
    let (ok, err) = p.wait(Duration::from_secs(40));
    assert!(ok, "ffmpeg: {err}");
    let m = wait_segments(&server, "lossy", 100, Duration::from_secs(20));
    assert!(m.endlist, "the caller's shutdown ended the stream");
    assert_eq!(m.discontinuities, 0);
    let dropped = relay.dropped.load(Ordering::Relaxed);
    assert!(dropped > 20, "the relay dropped {dropped} data packets");

    // Every frame is there: 12 s of 30 fps video, audio without a hole.
    let video = assert_decodes(&server, "lossy", "source", &m);
    let frames = packets(&video, "v").len();
    assert!((350..=361).contains(&frames), "{frames} video frames");
    let am = wait_rendition(&server, "lossy", "audio", 100, Duration::from_secs(5));
    let audio = assert_decodes(&server, "lossy", "audio", &am);
    let a = packets(&audio, "a");
    let holes = a
        .windows(2)
        .filter(|w| w[0].1.is_some_and(|d| w[1].0 != w[0].0 + d))
        .count();
    assert_eq!(holes, 0, "audio is gapless");
    // Nothing reached the demuxer damaged.
    let text = metrics(&server);
    assert_eq!(
        metric(&text, "castline_srt_ts_continuity_errors_total"),
        Some(0.0)
    );
    assert_eq!(
        metric(&text, "castline_srt_ts_dropped_pes_total"),
        Some(0.0)
    );
}
