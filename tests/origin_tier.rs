//! The origin tier: castline processes in their roles, each on its own
//! ports. An ingest node packages a real ffmpeg publish and pushes it over
//! HTTP to two origins; the origins serve the same bytes under the same URLs.

mod common;

use std::time::Duration;

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

fn start_ingest(origins: &[&Server], extra: &str) -> Server {
    let list: Vec<String> = origins
        .iter()
        .map(|o| format!("\"http://{}\"", o.push.expect("push port")))
        .collect();
    Server::start(&format!(
        "{extra}[cluster]\nrole = \"ingest\"\norigins = [{}]\nsecret = \"{SECRET}\"\n",
        list.join(", ")
    ))
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
    assert_decodes(&a, "tier", "source", &done);

    let ingest_metrics = get(&format!("http://{}/metrics", ingest.admin)).text();
    for o in [&a, &b] {
        let series = format!(
            "castline_push_objects_total{{origin=\"{}\"}}",
            o.push.unwrap()
        );
        let pushed = ingest_metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series)?.trim().parse::<f64>().ok());
        assert!(
            pushed.is_some_and(|n| n > 50.0),
            "{series}: {ingest_metrics}"
        );
    }
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

/// A port free now on 127.0.0.1, for a process that must come back on it.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn an_origin_killed_and_restarted_is_resynced_and_serves_the_live_edge_again() {
    let a = start_origin();
    let mut b = Server::start(&origin_config(&format!("127.0.0.1:{}", free_port())));
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
    let live = parse_media(&get(&a.url("/live/edge/source/index.m3u8")).text());
    let (msn, part) = part_of(&live.preload_hint.expect("preload hint"));
    let q = format!("/live/edge/source/index.m3u8?_HLS_msn={msn}&_HLS_part={part}");
    same_on_both(&a, &b, &q);
    let ingest_metrics = get(&format!("http://{}/metrics", ingest.admin)).text();
    let series = format!(
        "castline_push_resyncs_total{{origin=\"{}\"}}",
        b.push.unwrap()
    );
    let resyncs = ingest_metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series)?.trim().parse::<f64>().ok());
    assert!(
        resyncs.is_some_and(|n| n >= 1.0),
        "{series}: {ingest_metrics}"
    );
    publisher.kill();
}
