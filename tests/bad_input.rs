//! Hostile and broken input: each bad client gets an error and a closed
//! connection, while a good stream publishing at the same time carries on.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::rtmp_client::*;
use common::*;
use rml_rtmp::sessions::ClientSessionResult;
use rml_rtmp::time::RtmpTimestamp;

fn good_stream_still_advances(server: &Server, before: &Media) {
    let after = wait_segments(
        server,
        "good",
        before.segments.len() + 2,
        Duration::from_secs(20),
    );
    assert!(msn_of(&after.segments.last().unwrap().0) > msn_of(&before.segments.last().unwrap().0));
    assert_eq!(after.discontinuities, 0, "the good stream was disturbed");
}

#[test]
fn broken_rtmp_input_closes_only_that_client() {
    let mut server = Server::start("");
    let mut good = Publisher::start(&server.rtmp_url("good"), Publish::default());
    let before = wait_segments(&server, "good", 2, Duration::from_secs(30));

    // Garbage instead of a handshake (wrong version byte, random bytes).
    let mut tcp = connect(server.rtmp);
    let garbage: Vec<u8> = (0..3000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let _ = tcp.write_all(&[0x42]);
    let _ = tcp.write_all(&garbage);
    assert!(
        closed_by_server(&mut tcp, Duration::from_secs(5)),
        "garbage handshake was not closed"
    );

    // A truncated handshake: C0 and half of C1, then silence. The server gives up
    // after its handshake timeout (10 s by default); the connection must not be
    // left open forever.
    let mut tcp = connect(server.rtmp);
    tcp.write_all(&[0x03]).unwrap();
    tcp.write_all(&[0u8; 700]).unwrap();
    assert!(
        closed_by_server(&mut tcp, Duration::from_secs(15)),
        "truncated handshake was never closed"
    );

    // An absurd chunk size (SetChunkSize 0xFFFFFFFF) right after a valid handshake.
    let mut tcp = connect(server.rtmp);
    handshake(&mut tcp);
    #[rustfmt::skip]
    let set_chunk_size = [0x02, 0, 0, 0, 0, 0, 4, 0x01, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
    tcp.write_all(&set_chunk_size).unwrap();
    assert!(
        closed_by_server(&mut tcp, Duration::from_secs(5)),
        "absurd chunk size was accepted"
    );

    // A broken FLV tag from an accepted publisher: AVC NAL length past the end.
    let (mut tcp, mut session) = publish(server.rtmp, "broken");
    let seq = Bytes::from_static(&[
        0x17, 0, 0, 0, 0, 0x01, 0x64, 0x00, 0x0d, 0xff, 0xe1, 0x00, 0x02, 0x67, 0x64, 0x01, 0x00,
        0x01, 0x68,
    ]);
    let r = session
        .publish_video_data(seq, RtmpTimestamp::new(0), false)
        .unwrap();
    send(&mut tcp, vec![r]);
    let broken = Bytes::from_static(&[0x17, 1, 0, 0, 0, 0x00, 0x00, 0xff, 0xff, 0x65, 0x88]);
    if let Ok(r) = session.publish_video_data(broken, RtmpTimestamp::new(33), false) {
        let _ = tcp.write_all(match &r {
            ClientSessionResult::OutboundResponse(p) => &p.bytes,
            _ => &[][..],
        });
    }
    assert!(
        closed_by_server(&mut tcp, Duration::from_secs(5)),
        "broken FLV tag did not close the publisher"
    );

    // A valid-looking publisher whose first tag is a truncated AVC header.
    let (mut tcp, mut session) = publish(server.rtmp, "broken2");
    let r = session
        .publish_video_data(Bytes::from_static(&[0x17, 1]), RtmpTimestamp::new(0), false)
        .unwrap();
    send(&mut tcp, vec![r]);
    assert!(
        closed_by_server(&mut tcp, Duration::from_secs(5)),
        "truncated FLV tag did not close the publisher"
    );

    assert!(server.still_running(), "the server died");
    assert!(good.is_running(), "the good publisher was disconnected");
    good_stream_still_advances(&server, &before);
    let metrics = get(&format!("http://{}/metrics", server.admin)).text();
    assert!(
        metrics.contains("castline_rtmp_errors_total{reason=\"media\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("castline_rtmp_errors_total{reason=\"handshake\"}"),
        "{metrics}"
    );
}

#[test]
fn hostile_urls_get_clear_errors_and_viewers_carry_on() {
    let server = Server::start("");
    let _good = Publisher::start(&server.rtmp_url("good"), Publish::default());
    let before = wait_segments(&server, "good", 2, Duration::from_secs(30));
    let epoch = before.segments[0].0.split('/').next().unwrap().to_string();

    let cases: &[(&str, u16)] = &[
        ("/live/good/source/..%2f..%2fetc/passwd", 400),
        (
            "/live/good/source/index.m3u8?_HLS_msn=99999999999999999999999999",
            400,
        ),
        ("/live/good/source/index.m3u8?_HLS_msn=-1", 400),
        ("/live/good/source/index.m3u8?_HLS_part=3", 400),
        // An unknown _HLS_skip value is ignored (the full playlist).
        ("/live/good/source/index.m3u8?_HLS_skip=maybe", 200),
        (
            "/live/good/source/index.m3u8?_HLS_msn=18446744073709551615&_HLS_part=0",
            400,
        ),
        ("/live/nope/index.m3u8", 404),
        ("/live/good/other/index.m3u8", 404),
        ("/etc/passwd", 404),
        ("/", 404),
    ];
    for (path, status) in cases {
        let r = get(&server.url(path));
        assert_eq!(r.status, *status, "{path}: {}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{path}");
    }
    // Dot segments, sent raw (HTTP client libraries would normalise them away).
    for path in [
        "/live/../../etc/passwd",
        "/live/good/../good/index.m3u8",
        "/live/good/source/./index.m3u8/..",
    ] {
        let mut tcp = connect(server.http);
        write!(
            tcp,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut reply = String::new();
        let _ = tcp.read_to_string(&mut reply);
        assert!(reply.starts_with("HTTP/1.1 400"), "{path}: {reply}");
    }
    let huge = format!("/live/good/source/{epoch}/99999999999999999999.m4s");
    assert_eq!(get(&server.url(&huge)).status, 404);
    let huge_part = format!("/live/good/source/{epoch}/1.4294967296.m4s");
    assert_eq!(get(&server.url(&huge_part)).status, 404);
    let far = format!("/live/good/source/{epoch}/999999.0.m4s");
    let r = get(&server.url(&far));
    assert_eq!(r.status, 404, "a part far in the future is not held");
    assert!(r.elapsed < Duration::from_secs(1));
    assert_eq!(
        get(&server.url("/live/good/source/oldepoch/1.m4s")).status,
        404
    );
    // Unknown query parameters are ignored: same bytes as without them (an
    // immutable object: the multivariant's measured bandwidths move each second).
    let seg = format!("/live/good/source/{}", before.segments[0].0);
    let plain = get(&server.url(&seg));
    let with_junk = get(&server.url(&format!("{seg}?cb=123&utm=x&&=&_HLS=1")));
    assert_eq!((plain.status, with_junk.status), (200, 200));
    assert_eq!(plain.body, with_junk.body);
    let mv = get(&server.url("/live/good/index.m3u8?cb=123&utm=x&&=&_HLS=1"));
    assert_eq!(mv.status, 200);
    assert!(mv.text().starts_with("#EXTM3U"));
    assert_eq!(
        request("DELETE", &server.url("/live/good/index.m3u8")).status,
        405
    );
    // A raw request that is not HTTP at all is closed; the origin keeps serving.
    let mut tcp = connect(server.http);
    tcp.write_all(b"\x16\x03\x01garbage garbage\r\n\r\n")
        .unwrap();
    assert!(closed_by_server(&mut tcp, Duration::from_secs(5)));
    good_stream_still_advances(&server, &before);
}

#[test]
fn idle_admin_connections_are_closed_and_probes_still_answer() {
    let server = Server::start("");
    let mut idle: Vec<TcpStream> = (0..80)
        .map(|_| std::net::TcpStream::connect(server.admin).unwrap())
        .collect();
    // With every slot held by a silent client, a probe is still answered
    // once the silent ones are closed (header deadline: 5 s).
    let started = Instant::now();
    let mut closed = 0;
    for c in idle.iter_mut() {
        closed += closed_by_server(c, Duration::from_secs(8)) as usize;
    }
    assert_eq!(closed, 80, "idle admin connections were kept open");
    assert!(started.elapsed() < Duration::from_secs(12));
    assert_eq!(get(&format!("http://{}/healthz", server.admin)).status, 200);
}

/// Keeps `n` idle TCP connections from `from` to `to` open, reopening each as
/// soon as the server closes it, until `stop`. Returns how many it opened.
fn idle_flood(
    from: std::net::IpAddr,
    to: std::net::SocketAddr,
    n: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    use socket2::{Domain, Socket, Type};
    std::thread::spawn(move || {
        let open = || -> Option<Socket> {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
            s.bind(&std::net::SocketAddr::new(from, 0).into()).ok()?;
            s.connect_timeout(&to.into(), Duration::from_secs(1)).ok()?;
            s.set_nonblocking(true).ok()?;
            Some(s)
        };
        let mut opened = 0;
        let mut conns: Vec<Option<Socket>> = (0..n).map(|_| None).collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
            for c in conns.iter_mut() {
                let closed = match c {
                    None => true,
                    Some(s) => {
                        let mut b = [std::mem::MaybeUninit::<u8>::uninit(); 64];
                        match s.recv(&mut b) {
                            Ok(0) => true,
                            Ok(_) => false,
                            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                        }
                    }
                };
                if closed {
                    *c = open();
                    opened += c.is_some() as usize;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        opened
    })
}

#[test]
fn an_idle_connection_flood_from_one_address_cannot_lock_publishers_out() {
    let server = Server::start_logged("");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = idle_flood([127, 0, 0, 2].into(), server.rtmp, 400, stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    // A publisher from another address, while 400 idle sockets are held and
    // reopened as fast as they are closed.
    let started = Instant::now();
    let _p = Publisher::start(&server.rtmp_url("flooded"), Publish::default());
    let live = poll_every(Duration::from_secs(10), Duration::from_millis(50), || {
        let streams = get(&format!("http://{}/api/streams", server.admin)).text();
        if streams.contains("flooded") {
            Ok(started.elapsed())
        } else {
            Err(format!("the publisher never went live: {streams}"))
        }
    });
    assert!(live < Duration::from_secs(3), "live after {live:?}");
    let m = wait_segments(&server, "flooded", 3, Duration::from_secs(60));
    assert_eq!(m.discontinuities, 0);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let opened = flood.join().unwrap();
    assert!(
        opened > 400,
        "the flood kept reopening ({opened} connections)"
    );
    let metrics = get(&format!("http://{}/metrics", server.admin)).text();
    assert!(
        metrics.contains("castline_rtmp_refusals_total{reason=\"per_address\"}"),
        "{metrics}"
    );
    // The log says so, a few lines per ten seconds, not a line per refusal.
    let log = server.log();
    let lines = log
        .lines()
        .filter(|l| l.contains("RTMP connection refused") || l.contains("RTMP connection closed"))
        .count();
    assert!(lines <= 12, "{lines} log lines about the flood:\n{log}");
}

#[test]
fn an_idle_flood_of_the_origin_from_one_address_holds_only_its_share() {
    let server = Server::start_logged("[origin]\nmax_connections_per_address = 50\n");
    let _p = Publisher::start(&server.rtmp_url("watched"), Publish::default());
    wait_segments(&server, "watched", 2, Duration::from_secs(60));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = idle_flood([127, 0, 0, 2].into(), server.http, 300, stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    // A viewer from another address is served all along, and the flood
    // holds its 50 connections and no more.
    let playlist = server.url("/live/watched/source/index.m3u8");
    let mut most_open = 0.0f64;
    for _ in 0..20 {
        assert_eq!(get(&playlist).status, 200, "the viewer was refused");
        most_open = most_open.max(server.metric("castline_http_connections").unwrap_or(0.0));
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let opened = flood.join().unwrap();
    assert!(
        opened > 300,
        "the flood kept reopening ({opened} connections)"
    );
    assert!(
        (50.0..=55.0).contains(&most_open),
        "{most_open} origin connections open (50 for the flood, the viewer's own)"
    );
    let refused = server
        .metric(r#"castline_http_refusals_total{reason="per_address"}"#)
        .unwrap_or(0.0);
    assert!(refused >= 250.0, "{refused} refusals counted");
    // The log says so, a few lines per ten seconds, not a line per refusal.
    let lines = server
        .log()
        .lines()
        .filter(|l| l.contains("origin connection refused"))
        .count();
    assert!(
        (1..=3).contains(&lines),
        "{lines} log lines about the flood"
    );
}

#[test]
fn past_origin_max_connections_a_new_connection_is_closed_and_ingest_carries_on() {
    let server = Server::start("[origin]\nmax_connections = 20\n");
    let mut idle: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(server.http).unwrap())
        .collect();
    let started = Instant::now();
    while server.metric("castline_http_connections") != Some(20.0) {
        assert!(started.elapsed() < Duration::from_secs(5), "20 never open");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut over = TcpStream::connect(server.http).unwrap();
    assert!(
        closed_by_server(&mut over, Duration::from_secs(2)),
        "the 21st connection was kept open"
    );
    assert!(
        server
            .metric(r#"castline_http_refusals_total{reason="max_connections"}"#)
            .is_some_and(|n| n >= 1.0),
        "the refusal was not counted"
    );
    // The fleet sees the instance as full (the capacity sampler runs every
    // second), so an autoscaler adds one.
    while server.metric(r#"castline_capacity_ratio{resource="connections"}"#) != Some(1.0) {
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "the connections ratio never reached 1"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(server.metric("castline_capacity_utilization"), Some(1.0));
    // Ingest has descriptors and slots of its own: a publisher goes live
    // while the origin is full.
    let _p = Publisher::start(&server.rtmp_url("full"), Publish::default());
    let live = Instant::now();
    while !get(&format!("http://{}/api/streams", server.admin))
        .text()
        .contains("full")
    {
        assert!(live.elapsed() < Duration::from_secs(8), "never went live");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Unless this machine took 10 s to get here (the first-request deadline
    // then closed the 20 silent ones), the origin was full all the while.
    if started.elapsed() < Duration::from_secs(9) {
        assert_eq!(server.metric("castline_http_connections"), Some(20.0));
    }
    // A slot that frees is taken by the next viewer (once castline has
    // seen the idle ones close).
    idle.truncate(0);
    let freed = Instant::now();
    while server.metric("castline_http_connections") != Some(0.0) {
        assert!(freed.elapsed() < Duration::from_secs(5), "slots not freed");
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_segments(&server, "full", 1, Duration::from_secs(30));
}

/// Opens an h2c connection that answers SETTINGS and PINGs as a real client
/// would and opens no stream; returns how long until the server closed it
/// (GOAWAY or EOF), or None if it was still open after `limit`.
fn idle_h2c_lifetime(addr: std::net::SocketAddr, limit: Duration) -> Option<Duration> {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // The preface and an empty SETTINGS frame.
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .unwrap();
    let started = Instant::now();
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    while started.elapsed() < limit {
        match tcp.read(&mut chunk) {
            Ok(0) => return Some(started.elapsed()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return Some(started.elapsed()),
        }
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            let (kind, flags) = (buf[3], buf[4]);
            let payload = buf[9..9 + len].to_vec();
            buf.drain(..9 + len);
            match (kind, flags & 1) {
                (4, 0) => tcp.write_all(&[0, 0, 0, 4, 1, 0, 0, 0, 0]).unwrap(),
                (6, 0) => {
                    let mut ack = vec![0, 0, 8, 6, 1, 0, 0, 0, 0];
                    ack.extend_from_slice(&payload);
                    tcp.write_all(&ack).unwrap();
                }
                (7, _) => return Some(started.elapsed()),
                _ => {}
            }
        }
    }
    None
}

#[test]
fn an_idle_http2_connection_that_answers_pings_gives_its_slot_back() {
    let server = Server::start("[origin]\nidle_timeout = 2.0\n");
    // A client that connects and never sends a byte is closed too (before,
    // hyper's header deadline never started for it).
    let mut silent = TcpStream::connect(server.http).unwrap();
    let lifetime = idle_h2c_lifetime(server.http, Duration::from_secs(15))
        .expect("the idle h2 connection was kept open for 15 s");
    assert!(
        lifetime >= Duration::from_millis(1500),
        "closed after {lifetime:?}, before origin.idle_timeout"
    );
    assert!(
        closed_by_server(&mut silent, Duration::from_secs(10)),
        "a silent connection was kept open"
    );
    let started = Instant::now();
    while server.metric("castline_http_connections") != Some(0.0) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "its slot was not freed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
