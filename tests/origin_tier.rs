//! The origin tier: castline processes in their roles, each on its own
//! ports. An ingest node packages a real ffmpeg publish and pushes it over
//! HTTP to two origins; the origins serve the same bytes under the same URLs.

mod common;

use std::time::Duration;

use common::cache::{free_port, shipped, Cache};
use common::player::{assert_played, play, ONE_PLAYER};
use common::*;

const SECRET: &str = "a-push-secret-for-tests";

fn origin_config(listen: &str) -> String {
    format!("[cluster]\nrole = \"origin\"\nlisten = \"{listen}\"\nsecret = \"{SECRET}\"\n")
}

fn start_origin() -> Server {
    let o = Server::start(&origin_config("127.0.0.1:0"));
    assert!(o.push.is_some(), "an origin prints its push port");
    o
}

/// `[cluster]` for an ingest node pushing to `origins`, with `more` keys.
fn ingest_cluster(origins: &[&Server], more: &str) -> String {
    let list: Vec<String> = origins
        .iter()
        .map(|o| format!("\"http://{}\"", o.push.expect("push port")))
        .collect();
    format!(
        "[cluster]\nrole = \"ingest\"\norigins = [{}]\nsecret = \"{SECRET}\"\n{more}",
        list.join(", ")
    )
}

fn start_ingest(origins: &[&Server], extra: &str) -> Server {
    Server::start(&format!("{extra}{}", ingest_cluster(origins, "")))
}

/// `path` from both origins: the same status, bytes and ETag.
fn same_on_both(a: &Server, b: &Server, path: &str) -> Reply {
    let (ra, rb) = (get(&a.url(path)), get(&b.url(path)));
    assert_eq!(ra.status, 200, "{path} on origin A");
    assert_eq!(rb.status, 200, "{path} on origin B");
    assert!(
        ra.body == rb.body,
        "{path}: the origins serve different bytes:\n{}\n---\n{}",
        String::from_utf8_lossy(&ra.body[..ra.body.len().min(4000)]),
        String::from_utf8_lossy(&rb.body[..rb.body.len().min(4000)]),
    );
    assert_eq!(ra.header("etag"), rb.header("etag"), "{path}: ETag");
    ra
}

/// A blocking request for the part after origin A's newest, answered alike
/// by both origins once each has it.
fn next_part_alike(a: &Server, b: &Server, stream: &str) -> Reply {
    let path = format!("/live/{stream}/source/index.m3u8");
    let live = parse_media(&get(&a.url(&path)).text());
    let (msn, part) = part_of(&live.preload_hint.expect("preload hint"));
    same_on_both(a, b, &format!("{path}?_HLS_msn={msn}&_HLS_part={part}"))
}

/// The ingest node's `name{origin="…"}` for `origin`.
fn per_origin(ingest: &Server, name: &str, origin: &Server) -> Option<f64> {
    ingest.metric(&format!(
        "{name}{{origin=\"{}\"}}",
        origin.push.expect("push port")
    ))
}

fn push(origin: &Server, path: &str, headers: &[(&str, &str)]) -> Reply {
    request_with(
        "PUT",
        &format!("http://{}{path}", origin.push.expect("push port")),
        headers,
    )
}

#[test]
fn two_origins_fed_by_one_ingest_serve_the_same_bytes_under_the_same_urls() {
    let (a, b) = (start_origin(), start_origin());
    let ingest = start_ingest(&[&a, &b], "[transcode]\nenabled = false\n");
    let publisher = Publisher::start(
        &ingest.rtmp_url("tier"),
        Publish {
            seconds: 12,
            ..Default::default()
        },
    );
    let live = wait_segments(&a, "tier", 4, Duration::from_secs(40));
    // The ingest node serves no viewers: the stream is on the origins only.
    assert_eq!(get(&ingest.url("/live/tier/index.m3u8")).status, 404);

    // A blocking request for a part still to come is answered alike by
    // both origins, once each has it.
    let hint = live.preload_hint.clone().expect("preload hint");
    let (msn, part) = part_of(&hint);
    let q = format!("/live/tier/source/index.m3u8?_HLS_msn={msn}&_HLS_part={part}");
    let blocked = same_on_both(&a, &b, &q);
    assert!(blocked.text().contains(&hint), "{}", blocked.text());
    same_on_both(&a, &b, "/live/tier/index.m3u8");
    // The ingest node's journal (the live window, for origins that join
    // late) counts as media it holds, against its memory budget.
    let held = ingest.metric("castline_store_bytes");
    assert!(held.is_some_and(|b| b > 50_000.0), "{held:?}");

    let publisher_ok = publisher.wait(Duration::from_secs(40)).0;
    assert!(publisher_ok, "ffmpeg failed");
    let done = wait_for_endlist(&a, "/live/tier/source/index.m3u8");
    wait_for_endlist(&b, "/live/tier/source/index.m3u8");
    for rendition in ["source", "audio"] {
        let path = format!("/live/tier/{rendition}/index.m3u8");
        let text = same_on_both(&a, &b, &path).text();
        let m = parse_media(&text);
        let base = format!("/live/tier/{rendition}/");
        for uri in m
            .maps
            .iter()
            .chain(m.segments.iter().map(|(u, _)| u))
            .chain(m.parts.iter().map(|(u, _, _)| u))
        {
            same_on_both(&a, &b, &format!("{base}{uri}"));
        }
    }
    assert!(done.segments.len() >= 8, "{}", done.text);
    // The session over, its journal is let go.
    assert_eq!(ingest.metric("castline_store_bytes"), Some(0.0));
    assert_decodes(&a, "tier", "source", &done);

    for o in [&a, &b] {
        let pushed = per_origin(&ingest, "castline_push_objects_total", o);
        assert!(pushed.is_some_and(|n| n > 50.0), "{:?}: {pushed:?}", o.push);
    }
}

#[test]
fn an_ingest_node_with_no_origin_to_push_to_is_not_ready() {
    let ingest = Server::start(&format!(
        "[cluster]\nrole = \"ingest\"\norigins = [\"http://no-such-origin.invalid:8090\"]\nsecret = \"{SECRET}\"\n"
    ));
    let r = get(&format!("http://{}/readyz", ingest.admin));
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("no origin to push to"), "{}", r.text());
    // With an origin it is: named by a host name, resolved.
    let a = start_origin();
    let port = a.push.expect("push port").port();
    let ingest = Server::start(&format!(
        "[cluster]\nrole = \"ingest\"\norigins = [\"http://localhost:{port}\"]\nsecret = \"{SECRET}\"\n"
    ));
    poll(Duration::from_secs(10), || {
        let r = get(&format!("http://{}/readyz", ingest.admin));
        (r.status == 200).then_some(()).ok_or(r.text())
    });
    let found = ingest.metric("castline_push_origins");
    assert!(found.is_some_and(|n| n >= 1.0), "{found:?}");
}

#[test]
fn the_push_port_refuses_pushes_without_the_secret_and_hostile_names() {
    let a = start_origin();
    let auth = format!("Bearer {SECRET}");
    // No secret, a wrong one: 401, and nothing is stored.
    assert_eq!(push(&a, "/push/v1/x/e1/end", &[]).status, 401);
    assert_eq!(
        push(
            &a,
            "/push/v1/x/e1/end",
            &[("authorization", "Bearer wrong")]
        )
        .status,
        401
    );
    // Names that would escape or need escaping, and unknown objects: 400.
    for path in [
        "/push/v1/../e1/end",
        "/push/v1/a%2F..%2Fb/e1/end",
        "/push/v1/x/e1/r/..%2Fsecret/init/0",
        "/push/v1/x/e1/r/source/part/1/0",
        "/push/v1/x/e1/r/source/delete",
        "/live/x/index.m3u8",
    ] {
        let r = push(&a, path, &[("authorization", &auth)]);
        assert_eq!(r.status, 400, "{path}: {}", r.text());
    }
    // A body past 16 MB: 413, and the connection closes.
    let big = vec![0u8; 17 << 20];
    let agent = ureq::AgentBuilder::new().build();
    let r = agent
        .put(&format!(
            "http://{}/push/v1/x/e1/r/source/init/0",
            a.push.unwrap()
        ))
        .set("authorization", &auth)
        .send_bytes(&big);
    assert!(
        matches!(
            r,
            Err(ureq::Error::Status(413, _)) | Err(ureq::Error::Transport(_))
        ),
        "{r:?}"
    );
    // A part whose metadata does not parse: 400.
    let r = push(
        &a,
        "/push/v1/x/e1/r/source/part/0/0",
        &[
            ("authorization", &auth),
            ("castline-part", "{\"duration\":"),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    // A part for a session that never started here: 404 (the pusher resyncs).
    let r = push(
        &a,
        "/push/v1/x/e1/r/source/init/0",
        &[("authorization", &auth)],
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(get(&a.url("/live/x/index.m3u8")).status, 404);
    let metrics = get(&format!("http://{}/metrics", a.admin)).text();
    assert!(
        metrics.contains("castline_pushes_rejected_total{reason=\"unauthorized\"} 2"),
        "{metrics}"
    );
}

#[test]
fn an_origin_killed_and_restarted_is_resynced_and_serves_the_live_edge_again() {
    let a = start_origin();
    // B comes back on its push port, where the ingest node looks for it.
    let mut b = Server::start(&origin_config(&free_port().to_string()));
    let ingest = start_ingest(&[&a, &b], "[transcode]\nenabled = false\n");
    let mut publisher = Publisher::start(
        &ingest.rtmp_url("edge"),
        Publish {
            seconds: 40,
            ..Default::default()
        },
    );
    wait_segments(&b, "edge", 3, Duration::from_secs(40));
    // Origin B crashes; A serves on.
    b.restart_after("-KILL");
    let before = wait_segments(&a, "edge", 6, Duration::from_secs(20));
    // Restarted, B is sent the live window again and serves the live edge.
    let again = wait_segments(&b, "edge", 3, Duration::from_secs(10));
    let newest = |m: &Media| msn_of(&m.segments.last().expect("a segment").0);
    assert!(
        newest(&again) + 2 >= newest(&before),
        "B is behind the live edge after its restart: {} against {}",
        newest(&again),
        newest(&before)
    );
    // And from then on both origins answer the next part alike.
    next_part_alike(&a, &b, "edge");
    let resyncs = per_origin(&ingest, "castline_push_resyncs_total", &b);
    assert!(
        resyncs.is_some_and(|n| n >= 1.0),
        "resyncs of B: {resyncs:?}"
    );
    publisher.kill();
}

/// The shipped Varnish config with each of `origins` as a backend of its
/// round-robin director (health-probed, a failed fetch retried on the next).
fn varnish_over(origins: &[&Server]) -> Cache {
    let mut vcl = shipped("varnish/castline.vcl", &[]);
    let start = vcl.find("backend castline {").expect("the backend");
    let end = start + vcl[start..].find("\n}\n").expect("its end") + 3;
    let block = vcl[start..end].to_string();
    let (mut backends, mut added) = (String::new(), String::new());
    for (i, o) in origins.iter().enumerate() {
        backends += &block
            .replace("backend castline {", &format!("backend castline{i} {{"))
            .replace(
                ".port = \"8080\";",
                &format!(".port = \"{}\";", o.http.port()),
            );
        added += &format!("    origins.add_backend(castline{i});\n");
    }
    vcl.replace_range(start..end, &backends);
    let vcl = vcl.replacen("    origins.add_backend(castline);\n", &added, 1);
    Cache::varnish_with(&vcl)
}

#[test]
fn hlsjs_through_varnish_over_two_origins_plays_on_when_one_is_killed() {
    let _one = ONE_PLAYER.lock().unwrap_or_else(|e| e.into_inner());
    let (a, b) = (start_origin(), start_origin());
    let ingest = start_ingest(&[&a, &b], "[transcode]\nenabled = false\n");
    let _publisher = Publisher::start(&ingest.rtmp_url("final"), Publish::default());
    wait_segments(&a, "final", 2, Duration::from_secs(40));
    wait_segments(&b, "final", 2, Duration::from_secs(40));
    let cache = varnish_over(&[&a, &b]);
    let url = format!("http://{}/live/final/index.m3u8", cache.addr);
    wait_for(&url, Duration::from_secs(20));
    // Origin B dies 8 s into playback, with no warning.
    let (pid, b_metrics) = (b.pid(), format!("http://{}/metrics", b.admin));
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(8));
        let served = get(&b_metrics).text();
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        served
    });
    let (result, _) = play(&url, 25, None);
    // The director had spread the player's requests over both origins.
    for metrics in [
        killer.join().expect("killer"),
        get(&format!("http://{}/metrics", a.admin)).text(),
    ] {
        assert!(
            metrics.contains(
                "castline_http_requests_total{class=\"media\",status=\"200\",cdn=\"other\"}"
            ),
            "{metrics}"
        );
    }
    // It played on, 17 s of it after origin B was killed, with no fatal error.
    assert_played(&result, 18.0);
    eprintln!(
        "through Varnish over two origins, one killed: stalls {}, latency {}",
        result["stallsAfterStart"], result["latency"]
    );
}

#[test]
fn when_its_ingest_node_dies_the_stream_continues_from_another_under_the_same_urls() {
    let (a, b) = (start_origin(), start_origin());
    let first = start_ingest(&[&a, &b], "[transcode]\nenabled = false\n");
    let second = start_ingest(&[&a, &b], "[transcode]\nenabled = false\n");
    let mut publisher = Publisher::start(&first.rtmp_url("relay"), Publish::default());
    let before = wait_segments(&a, "relay", 4, Duration::from_secs(40));
    let epoch = |m: &Media| {
        m.segments[0]
            .0
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string()
    };
    // The first ingest node dies; the encoder reconnects to the second.
    first.signal("-KILL");
    publisher.kill();
    let mut publisher = Publisher::start(&second.rtmp_url("relay"), Publish::default());
    let last_before = msn_of(&before.segments.last().expect("a segment").0);
    let after = poll(Duration::from_secs(40), || {
        let m = parse_media(&get(&a.url("/live/relay/source/index.m3u8")).text());
        match m.discontinuity_msns.first() {
            Some(&d) if m.segments.iter().any(|(u, _)| msn_of(u) > d + 1) => Ok(m),
            _ => Err(format!("the stream did not continue: {}", m.text)),
        }
    });
    // Same playlist URL, same epoch in every URI, the MSNs go on after one
    // discontinuity, no ENDLIST.
    assert_eq!(epoch(&after), epoch(&before), "{}", after.text);
    assert!(
        after
            .segments
            .iter()
            .all(|(u, _)| u.starts_with(&epoch(&before))),
        "{}",
        after.text
    );
    assert_eq!(after.discontinuities, 1, "{}", after.text);
    assert!(!after.endlist, "{}", after.text);
    let resumed = after.discontinuity_msns[0];
    assert!(resumed > last_before, "{}", after.text);
    let msns: Vec<u64> = after.segments.iter().map(|(u, _)| msn_of(u)).collect();
    assert!(
        msns.windows(2).all(|w| w[1] == w[0] + 1),
        "MSNs skip or repeat: {msns:?}"
    );
    // One timeline across the takeover: the audio lists every MSN the video
    // does up to it, and its last segments end with the video's (the lost
    // pod's audio brought up to its video).
    let audio = parse_media(&get(&a.url("/live/relay/audio/index.m3u8")).text());
    assert_eq!(
        audio.discontinuity_msns, after.discontinuity_msns,
        "{}",
        audio.text
    );
    let until_resumed = |m: &Media| -> (Vec<u64>, f64) {
        let listed = m.segments.iter().filter(|(u, _)| msn_of(u) < resumed);
        (
            listed.clone().map(|(u, _)| msn_of(u)).collect(),
            listed.map(|s| s.1).sum(),
        )
    };
    let (video_until, audio_until) = (until_resumed(&after), until_resumed(&audio));
    assert_eq!(
        video_until.0, audio_until.0,
        "{}\n---\n{}",
        after.text, audio.text
    );
    assert!(
        (video_until.1 - audio_until.1).abs() < 0.05,
        "the video lasts {} s up to the takeover, the audio {} s",
        video_until.1,
        audio_until.1
    );
    // The origins agree on all of it.
    let both = next_part_alike(&a, &b, "relay");
    same_on_both(&a, &b, "/live/relay/index.m3u8");
    let m = parse_media(&both.text());
    for uri in m.maps.iter().chain(m.segments.iter().map(|(u, _)| u)) {
        same_on_both(&a, &b, &format!("/live/relay/source/{uri}"));
    }
    publisher.kill();
}

#[test]
fn a_stalled_origin_never_holds_the_other_back_and_is_resynced_when_it_wakes() {
    let (a, b) = (start_origin(), start_origin());
    let ingest = Server::start(&format!(
        "[transcode]\nenabled = false\n{}",
        ingest_cluster(&[&a, &b], "queue_mb = 1.0\n")
    ));
    let mut publisher = Publisher::start(
        &ingest.rtmp_url("stall"),
        Publish {
            bitrate: "2500k",
            ..Default::default()
        },
    );
    wait_segments(&b, "stall", 2, Duration::from_secs(40));
    // Origin B stops answering (SIGSTOP: its sockets stay open, nothing reads).
    b.signal("-STOP");
    let newest = |s: &Server| {
        let r = get(&s.url("/live/stall/source/index.m3u8"));
        let m = parse_media(&if r.status == 200 {
            r.text()
        } else {
            String::new()
        });
        m.segments.last().map_or(0, |(u, _)| msn_of(u))
    };
    let stopped_at = newest(&a);
    // A serves on: 8 more segments while B is stalled.
    poll(Duration::from_secs(30), || {
        let n = newest(&a);
        (n >= stopped_at + 8)
            .then_some(())
            .ok_or(format!("origin A stopped at {n} (from {stopped_at})"))
    });
    b.signal("-CONT");
    // B is resynced and serves the live edge again.
    poll(Duration::from_secs(20), || {
        let (na, nb) = (newest(&a), newest(&b));
        (nb + 1 >= na)
            .then_some(())
            .ok_or(format!("origin B at {nb}, A at {na}"))
    });
    next_part_alike(&a, &b, "stall");
    let resyncs = per_origin(&ingest, "castline_push_resyncs_total", &b);
    assert!(
        resyncs.is_some_and(|n| n >= 1.0),
        "resyncs of B: {resyncs:?}"
    );
    publisher.kill();
}

#[test]
fn a_second_ingest_node_with_the_same_live_stream_is_refused_and_the_first_keeps_it() {
    let (a, b) = (start_origin(), start_origin());
    let first = start_ingest(&[&a, &b], "[transcode]\nenabled = false\n");
    let second = start_ingest(&[&a, &b], "[transcode]\nenabled = false\n");
    let mut one = Publisher::start(&first.rtmp_url("twice"), Publish::default());
    let before = wait_segments(&a, "twice", 2, Duration::from_secs(40));
    let two = Publisher::start(&second.rtmp_url("twice"), Publish::default());
    // The second node waits for the session to fall silent, then gives up.
    poll(Duration::from_secs(20), || {
        let refused =
            second.metric("castline_push_refused_total{origin=\"all\",reason=\"live_elsewhere\"}");
        (refused == Some(1.0))
            .then_some(())
            .ok_or(format!("not refused: {refused:?}"))
    });
    // The first node's session goes on, untouched, on both origins.
    let after = wait_segments(
        &a,
        "twice",
        before.segments.len() + 3,
        Duration::from_secs(20),
    );
    assert_eq!(after.discontinuities, 0, "{}", after.text);
    assert_eq!(after.maps, before.maps, "{}", after.text);
    next_part_alike(&a, &b, "twice");
    // Its encoder is told, not left sending to a node that serves nothing
    // of it: the second node closes its connection (ffmpeg then fails).
    let (ok, err) = two.wait(Duration::from_secs(20));
    assert!(
        !ok && err != "timed out",
        "the refused encoder stayed connected: {err}"
    );
    assert_eq!(
        second.metric("castline_rtmp_errors_total{reason=\"live_elsewhere\"}"),
        Some(1.0)
    );
    one.kill();
}

#[test]
fn hlsjs_through_varnish_plays_on_when_the_ingest_node_dies_and_the_encoder_moves() {
    let _one = ONE_PLAYER.lock().unwrap_or_else(|e| e.into_inner());
    let (a, b) = (start_origin(), start_origin());
    let first = start_ingest(&[&a, &b], "[transcode]\nenabled = false\n");
    let second = start_ingest(&[&a, &b], "[transcode]\nenabled = false\n");
    let mut publisher = Publisher::start(&first.rtmp_url("move"), Publish::default());
    wait_segments(&a, "move", 2, Duration::from_secs(40));
    let before = wait_segments(&b, "move", 2, Duration::from_secs(40));
    let cache = varnish_over(&[&a, &b]);
    let url = format!("http://{}/live/move/index.m3u8", cache.addr);
    wait_for(&url, Duration::from_secs(20));
    // 8 s into playback the ingest node dies; the encoder reconnects to the
    // other one at once (as OBS does through the RTMP Service).
    let (pid, to) = (first.pid(), second.rtmp_url("move"));
    let mover = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(8));
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        publisher.kill();
        Publisher::start(&to, Publish::default())
    });
    let (result, _) = play(&url, 30, None);
    let mut moved = mover.join().expect("mover");
    // It played on: 30 s less the failover's stall and the start.
    assert_played(&result, 20.0);
    eprintln!(
        "hls.js through an ingest failover: stalls {}, latency {}",
        result["stallsAfterStart"], result["latency"]
    );
    // Under the same URLs: one discontinuity, the same epoch, no ENDLIST.
    let after = parse_media(&get(&a.url("/live/move/source/index.m3u8")).text());
    assert_eq!(after.discontinuities, 1, "{}", after.text);
    assert!(!after.endlist, "{}", after.text);
    assert_eq!(
        after.maps[0].split('/').next(),
        before.maps[0].split('/').next()
    );
    // The lost pod's last segment ends at the same time in the video and
    // the audio (to within an audio frame), so no player meets a hole in
    // one of them where the next pod's media begins.
    let until_the_move = |rendition: &str| {
        let m = parse_media(&get(&a.url(&format!("/live/move/{rendition}/index.m3u8"))).text());
        let cut = (m.discontinuity_msns[0] - m.media_sequence) as usize;
        let total: f64 = m.segments[..cut].iter().map(|s| s.1).sum();
        let last = format!("/live/move/{rendition}/{}", m.segments[cut - 1].0);
        (m.media_sequence, total, m.text, last)
    };
    let (video, audio) = (until_the_move("source"), until_the_move("audio"));
    assert_eq!(video.0, audio.0, "both list from the same MSN");
    assert!(
        (video.1 - audio.1).abs() < 0.05,
        "the video lasts {} s up to the move, the audio {} s:\n{}\n---\n{}",
        video.1,
        audio.1,
        video.2,
        audio.2
    );
    // Both origins end it alike (silence included, where the audio was
    // brought up to the video).
    same_on_both(&a, &b, &audio.3);
    moved.kill();
}

#[test]
fn a_draining_origin_ends_no_stream() {
    let (a, mut b) = (start_origin(), start_origin());
    let ingest = start_ingest(&[&a, &b], "[transcode]\nenabled = false\n");
    let mut publisher = Publisher::start(&ingest.rtmp_url("drain"), Publish::default());
    wait_segments(&b, "drain", 2, Duration::from_secs(40));
    // SIGTERM, as Kubernetes scales the origin tier in.
    b.signal("-TERM");
    let ready = format!("http://{}/readyz", b.admin);
    poll(Duration::from_secs(5), || {
        let r = get(&ready);
        (r.status == 503).then_some(()).ok_or(r.text())
    });
    // Until it exits, what it answers never ends the stream: the other
    // origin serves on, and a player told ENDLIST would stop.
    let playlist = b.url("/live/drain/source/index.m3u8");
    let mut answers = 0;
    while b.still_running() {
        if let Ok(r) = ureq::get(&playlist).call() {
            let text = r.into_string().unwrap_or_default();
            assert!(!text.contains("#EXT-X-ENDLIST"), "{text}");
            answers += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(answers > 0, "the draining origin answered nothing");
    let m = wait_segments(&a, "drain", 4, Duration::from_secs(20));
    assert!(!m.endlist, "{}", m.text);
    publisher.kill();
}
