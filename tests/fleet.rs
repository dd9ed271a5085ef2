//! The signals a fleet runs on: metrics that move with the system, limits
//! that refuse publishers with their reason, readiness at capacity, and the
//! per-stream API.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn metrics(server: &Server) -> String {
    get(&format!("http://{}/metrics", server.admin)).text()
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Poll /metrics until `series` satisfies `ok`.
fn wait_metric(server: &Server, series: &str, ok: impl Fn(Option<f64>) -> bool) -> String {
    poll(Duration::from_secs(30), || {
        let text = metrics(server);
        if ok(value(&text, series)) {
            Ok(text)
        } else {
            Err(format!("{series} never got there: {text}"))
        }
    })
}

#[test]
fn metrics_move_with_a_publish_and_fall_back_when_it_ends() {
    let server = Server::start("[ingest]\nreconnect_grace = 1.0\n[transcode]\nenabled = false\n");
    let before = metrics(&server);
    assert_eq!(
        value(&before, "castline_live_streams"),
        Some(0.0),
        "{before}"
    );
    let publisher = Publisher::start(
        &server.rtmp_url("match"),
        Publish {
            seconds: 10,
            ..Default::default()
        },
    );
    // 30 video frames and ~47 AAC frames a second, once a whole second of
    // the publish has been measured (the first may hold part of one).
    let live = wait_metric(
        &server,
        "castline_ingest_frames_per_second{stream=\"match\"}",
        |v| v.is_some_and(|fps| (50.0..120.0).contains(&fps)),
    );
    let bytes = value(&live, "castline_ingest_bytes_per_second{stream=\"match\"}");
    assert!(bytes.is_some_and(|b| b > 12_500.0), "{live}");
    assert_eq!(value(&live, "castline_live_streams"), Some(1.0), "{live}");
    assert_eq!(
        value(&live, "castline_publishes_total{protocol=\"rtmp\"}"),
        Some(1.0),
        "{live}"
    );
    let u = value(&live, "castline_capacity_utilization").expect("utilization");
    assert!(u > 0.0 && u < 1.0, "{live}");
    assert!(
        value(&live, "castline_capacity_ratio{resource=\"cpu\"}").is_some(),
        "{live}"
    );
    assert!(
        value(&live, "castline_capacity_ratio{resource=\"memory\"}").is_some(),
        "{live}"
    );
    assert_eq!(value(&live, "castline_draining"), Some(0.0));

    // The pipeline keeps up with real time (a 5 s window).
    wait_metric(&server, "castline_pipeline_speed{stream=\"match\"}", |v| {
        v.is_some_and(|x| (0.8..1.25).contains(&x))
    });
    assert!(value(
        &metrics(&server),
        "castline_pipeline_queue_events{stream=\"match\"}"
    )
    .is_some());

    // Every request here comes from 127.0.0.1: one viewer.
    assert_eq!(
        get(&server.url("/live/match/source/index.m3u8")).status,
        200
    );
    wait_metric(&server, "castline_viewers{stream=\"match\"}", |v| {
        v == Some(1.0)
    });

    // The per-stream API says the same.
    let api: serde_json::Value =
        serde_json::from_slice(&get(&format!("http://{}/api/v1/streams/match", server.admin)).body)
            .expect("json");
    assert_eq!(api["state"], "live", "{api}");
    assert_eq!(api["viewers"], 1, "{api}");
    assert!(
        api["ingest"]["bits_per_second"].as_f64().unwrap_or(0.0) > 100_000.0,
        "{api}"
    );
    let renditions = api["renditions"].as_array().expect("renditions");
    assert!(
        renditions
            .iter()
            .any(|r| r["name"] == "source" && r["resolution"] == "320x240"),
        "{api}"
    );
    // Each rendition's newest part: its last frame's arrival to servable.
    assert!(
        renditions.iter().all(|r| r["part_ready_ms"]
            .as_f64()
            .is_some_and(|ms| (0.0..1000.0).contains(&ms))),
        "{api}"
    );
    let all: serde_json::Value =
        serde_json::from_slice(&get(&format!("http://{}/api/v1/streams", server.admin)).body)
            .expect("json");
    assert_eq!(all["streams"].as_array().map(|a| a.len()), Some(1), "{all}");
    assert_eq!(
        get(&format!("http://{}/api/v1/streams/nope", server.admin)).status,
        404
    );

    // Ended: the gauges fall back and the stream's series go away.
    let (_, _) = publisher.wait(Duration::from_secs(20));
    let after = wait_metric(&server, "castline_live_streams", |v| v == Some(0.0));
    let gone = wait_metric(
        &server,
        "castline_ingest_bytes_per_second{stream=\"match\"}",
        |v| v.is_none(),
    );
    // (Its VOD still has viewers: castline_viewers stays while it is served.)
    assert!(
        !gone.contains("castline_ingest_frames_per_second{stream=\"match\"}"),
        "{after}"
    );
}

/// With `limits` set and one stream live (plus `load`, what else fills the
/// resource), the pod turns not ready and a second publisher is refused,
/// told `full` ("streams at 100 %": the resource and its share), counted
/// under `capacity`, and never served.
fn a_full_resource_refuses_the_next_publisher(
    limits: &str,
    full: &str,
    load: impl FnOnce(&Server),
) {
    let server = Server::start(&format!(
        "[ingest]\nreconnect_grace = 3.0\n\
         [[transcode.rungs]]\nname = \"180p\"\nheight = 180\nbitrate_kbps = 200\n\
         [[transcode.rungs]]\nname = \"120p\"\nheight = 120\nbitrate_kbps = 120\n\
         [limits]\n{limits}"
    ));
    let _first = Publisher::start(&server.rtmp_url("one"), Publish::default());
    wait_rendition(&server, "one", "180p", 1, Duration::from_secs(30));
    load(&server);
    let readyz = format!("http://{}/readyz", server.admin);
    let r = poll(Duration::from_secs(15), || {
        let r = get(&readyz);
        if r.status == 503 {
            Ok(r)
        } else {
            Err(format!("{}: {}", r.status, r.text()))
        }
    });
    let told = format!("at capacity ({full}");
    assert!(r.text().contains(&told), "{}", r.text());
    let second = Publisher::start(
        &server.rtmp_url("two"),
        Publish {
            seconds: 5,
            ..Default::default()
        },
    );
    let (ok, log) = second.wait(Duration::from_secs(20));
    assert!(
        !ok,
        "a publisher past the limit ({full}) must be refused: {log}"
    );
    assert!(log.contains(&told), "the publisher is told why: {log}");
    assert_eq!(
        value(
            &metrics(&server),
            "castline_rtmp_errors_total{reason=\"capacity\"}"
        ),
        Some(1.0)
    );
    assert_eq!(get(&server.url("/live/two/index.m3u8")).status, 404);
}

#[test]
fn past_each_limit_a_publisher_is_refused_with_that_reason() {
    // Two rungs, two encoder sessions: the limit is reached.
    a_full_resource_refuses_the_next_publisher(
        "max_encoder_sessions = 2\n",
        "encoder_sessions at 100 %",
        |_| {},
    );
    // The 400 kbit/s + 64 kbit/s publisher is past 0.3 Mbit/s.
    a_full_resource_refuses_the_next_publisher(
        "max_ingest_mbps = 0.3\n",
        "ingest_bitrate at",
        |_| {},
    );
    // A viewer pulling segments in a loop sends more than 0.2 Mbit/s.
    a_full_resource_refuses_the_next_publisher(
        "egress_budget_mbps = 0.2\n",
        "egress at",
        |server| {
            let url = server.url("/live/one/180p/index.m3u8");
            let base = server.url("/live/one/180p/");
            let m = wait_media_at(&url, 1, Duration::from_secs(10));
            let segment = format!("{base}{}", m.segments[0].0);
            let stop = Instant::now() + Duration::from_secs(15);
            std::thread::spawn(move || {
                while Instant::now() < stop {
                    let _ = get(&segment);
                }
            });
        },
    );
}

#[test]
fn past_max_streams_a_publisher_is_refused_with_its_reason_and_the_pod_is_not_ready() {
    a_full_resource_refuses_the_next_publisher("max_streams = 1\n", "streams at 100 %", |_| {});
}

#[test]
fn a_scheduled_event_raises_the_desired_capacity_before_it_starts() {
    let server = Server::start(
        "[ingest]\nreconnect_grace = 3.0\n[limits]\n\
         [[limits.prewarm]]\nstart = \"2999-01-01T19:00:00Z\"\nend = \"2999-01-01T22:00:00Z\"\ncapacity = 0.9\n\
         [[limits.prewarm]]\nstart = \"2000-01-01T00:00:00Z\"\nend = \"2999-01-01T00:00:00Z\"\nlead = 0\ncapacity = 0.8\n",
    );
    // An idle server's utilization is near 0, so 0.8 comes from the event
    // under way (and the far one, whose lead has not begun, adds nothing:
    // with it the value would be 0.9). Waited for rather than read once: a
    // busy second on a loaded machine may measure more CPU than 0.8.
    wait_metric(&server, "castline_desired_capacity", |v| v == Some(0.8));

    // An operator announces another event through the admin API.
    let api = format!("http://{}/api/v1/prewarm", server.admin);
    let added = request(
        "POST",
        &format!("{api}?start=2000-01-01T00:00:00Z&end=2999-06-01T00:00:00Z&lead=0&capacity=0.95"),
    );
    assert_eq!(added.status, 200, "{}", added.text());
    let list: serde_json::Value = serde_json::from_slice(&get(&api).body).expect("json");
    assert_eq!(
        list["events"].as_array().map(|e| e.len()),
        Some(3),
        "{list}"
    );
    wait_metric(&server, "castline_desired_capacity", |v| v == Some(0.95));
    assert_eq!(
        request("POST", &format!("{api}?start=soon&end=later")).status,
        400
    );
    assert_eq!(request("POST", &api).status, 400);
}

#[test]
fn handshakes_dropped_past_the_listen_backlog_are_counted() {
    use socket2::{Domain, Socket, Type};
    let server = Server::start("[origin]\nlisten_backlog = 1\n");
    let series = "castline_tcp_listen_overflows_total";
    let before = value(&metrics(&server), series).expect("the series is there from the start");
    // Nobody accepts while castline is stopped: past the backlog's one (or
    // two) finished handshakes, the kernel drops the rest of this burst.
    server.signal("-STOP");
    let burst: Vec<Socket> = (0..20)
        .filter_map(|_| {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
            s.set_nonblocking(true).ok()?;
            let _ = s.connect(&server.http.into()); // EINPROGRESS
            Some(s)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    server.signal("-CONT");
    // At least the 17 over the backlog; other tests' sockets in this network
    // namespace can only add to it.
    wait_metric(&server, series, |v| v.is_some_and(|v| v >= before + 17.0));
    drop(burst);
    // The origin answers once it accepts again.
    assert_eq!(get(&server.url("/live/none/index.m3u8")).status, 404);
}

/// Every sample name a /metrics text carries (counters with `_total`,
/// histograms with `_bucket`/`_sum`/`_count`).
fn sample_names(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// Every `castline_*` name a file mentions.
fn names_in(path: &str) -> std::collections::BTreeSet<String> {
    let text =
        std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).expect(path);
    let mut out = std::collections::BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("castline_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        out.insert(name);
    }
    out
}

#[test]
fn metrics_pass_promtool_and_the_dashboard_and_alerts_use_only_what_castline_exports() {
    let server = Server::start("[ingest]\nreconnect_grace = 1.0\n[transcode]\nenabled = false\n");
    let _p = Publisher::start(&server.rtmp_url("dash"), Publish::default());
    wait_segments(&server, "dash", 2, Duration::from_secs(30));
    assert_eq!(get(&server.url("/live/dash/source/index.m3u8")).status, 200);
    let text = wait_metric(&server, "castline_viewers{stream=\"dash\"}", |v| {
        v == Some(1.0)
    });

    // promtool lints the exposition as Prometheus scrapes it.
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; make test installs it)");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = promtool.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The dashboard and the alerts ask only for series castline exports
    // (or would, with the traffic they watch: SRT, transcode, errors).
    let exported = sample_names(&text);
    let family = |n: &str| {
        ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .fold(n.to_string(), |n, s| {
                n.strip_suffix(s).map_or(n.clone(), str::to_string)
            })
    };
    let families: std::collections::BTreeSet<String> = text
        .lines()
        .filter_map(|l| {
            l.strip_prefix("# TYPE ")?
                .split(' ')
                .next()
                .map(str::to_string)
        })
        .collect();
    for file in [
        "docker/observability/grafana-dashboard.json",
        "docker/observability/alerts.yaml",
    ] {
        let used = names_in(file);
        assert!(used.len() > 10, "{file} uses {used:?}");
        for name in used {
            assert!(
                exported.contains(&name)
                    || families.contains(&name)
                    || families.contains(&family(&name)),
                "{file} uses {name}, which castline does not export"
            );
        }
    }
}

#[test]
fn the_kubernetes_manifests_rules_and_dashboard_pass_their_checks() {
    // kubernetes-validate --strict (PyPI, in a venv), promtool check/test
    // rules, the dashboard's JSON and PromQL, hadolint: docker/k8s/check.sh.
    let out = std::process::Command::new("bash")
        .arg("docker/k8s/check.sh")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "docker/k8s/check.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
