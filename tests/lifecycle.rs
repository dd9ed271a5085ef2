//! castline's lifecycle: a SIGTERM drains (a Kubernetes scale-in) without
//! dropping anyone.

mod common;

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// What one viewer thread saw.
#[derive(Default, Debug)]
struct Seen {
    complete: usize,
    /// Answers cut short (fewer body bytes than their Content-Length).
    truncated: usize,
    /// Answers other than 200.
    errors: Vec<u16>,
    ended: bool,
}

/// GET `url` on `agent`: Err(()) when the server is gone (no connection),
/// else (status, body, whether the body was complete).
fn fetch(agent: &ureq::Agent, url: &str) -> Result<(u16, Vec<u8>, bool), ()> {
    let resp = match agent.get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(_)) => return Err(()),
    };
    let status = resp.status();
    let declared: Option<usize> = resp.header("content-length").and_then(|v| v.parse().ok());
    let mut body = Vec::new();
    let read = resp.into_reader().take(64 << 20).read_to_end(&mut body);
    let complete = read.is_ok() && declared.is_none_or(|n| n == body.len());
    Ok((status, body, complete))
}

#[test]
fn sigterm_drains_answers_every_viewer_ends_the_playlists_and_exits_0() {
    let mut server = Server::start(
        "[ingest]\nreconnect_grace = 3.0\n[server]\ndrain_delay = 3.0\ndrain_timeout = 3.0\n",
    );
    let _p = Publisher::start(&server.rtmp_url("final"), Publish::default());
    let m = wait_segments(&server, "final", 3, Duration::from_secs(30));
    let playlist = server.url("/live/final/source/index.m3u8");
    let segment = server.url(&format!("/live/final/source/{}", m.segments[0].0));
    let held = Arc::new(AtomicUsize::new(0));

    // 50 viewers downloading a segment again and again on keep-alive
    // connections, and 50 holding a blocking reload for a part two segments
    // ahead (held for up to 3 s each time, so some are held at every moment).
    let mut viewers = Vec::new();
    for i in 0..100 {
        let (playlist, segment, held) = (playlist.clone(), segment.clone(), held.clone());
        viewers.push(std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build();
            let mut seen = Seen::default();
            loop {
                let url = if i % 2 == 0 {
                    segment.clone()
                } else {
                    let Ok((_, body, _)) = fetch(&agent, &playlist) else {
                        break;
                    };
                    let m = parse_media(&String::from_utf8_lossy(&body));
                    if m.endlist {
                        seen.ended = true;
                        break;
                    }
                    let next = m.parts.last().map_or(0, |(u, _, _)| msn_of(u)) + 2;
                    format!("{playlist}?_HLS_msn={next}&_HLS_part=0")
                };
                held.fetch_add(1, Ordering::Relaxed);
                let got = fetch(&agent, &url);
                held.fetch_sub(1, Ordering::Relaxed);
                let Ok((status, body, complete)) = got else {
                    break;
                };
                if !complete {
                    seen.truncated += 1;
                } else if status != 200 {
                    seen.errors.push(status);
                } else {
                    seen.complete += 1;
                    if String::from_utf8_lossy(&body).contains("#EXT-X-ENDLIST") {
                        seen.ended = true;
                        break;
                    }
                }
                if i % 2 == 0 {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            seen
        }));
    }
    std::thread::sleep(Duration::from_secs(2));
    let held_at_signal = held.load(Ordering::Relaxed);
    server.signal("-TERM");
    let t0 = Instant::now();

    // Not ready at once, while everything is still served.
    let readyz = format!("http://{}/readyz", server.admin);
    let mut ready = 200;
    while t0.elapsed() < Duration::from_millis(2500) {
        ready = get(&readyz).status;
        if ready == 503 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        ready,
        503,
        "/readyz still ready {:?} after SIGTERM",
        t0.elapsed()
    );
    assert_eq!(
        get(&playlist).status,
        200,
        "still serving while endpoints are removed"
    );

    // After the delay, a new publisher is refused; the live one carries on.
    std::thread::sleep(Duration::from_millis(3500).saturating_sub(t0.elapsed()));
    let late = Publisher::start(&server.rtmp_url("late"), Publish::default());
    let (ok, log) = late.wait(Duration::from_secs(10));
    assert!(!ok, "a publisher was accepted while draining: {log}");

    // Exit 0 within delay + timeout + a few seconds.
    let status = loop {
        if let Ok(Some(s)) = server.child_mut().try_wait() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "castline did not exit after its drain"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "castline exited with {status}");

    let seen: Vec<Seen> = viewers
        .into_iter()
        .map(|v| v.join().expect("viewer"))
        .collect();
    assert!(held_at_signal > 0, "no request was in flight at the signal");
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(s.truncated, 0, "viewer {i} got an answer cut short: {s:?}");
        assert!(s.errors.iter().all(|&e| e == 503), "viewer {i}: {s:?}");
        assert!(s.complete > 0, "viewer {i} got nothing: {s:?}");
        if i % 2 == 1 {
            assert!(s.ended, "viewer {i} never saw the playlist end: {s:?}");
        }
    }
}
