//! The origin behind CDNs: content steering across two stand-in CDN edges
//! (`common::cdn_proxy`), requests and egress counted per CDN, the admin call
//! that marks a CDN down, and steering with signed URLs.

mod common;

use std::time::Duration;

use castline::origin::signed::{edge_header, sign};
use common::cache::Cache;
use common::cdn_proxy::CdnProxy;
use common::*;

fn metric(server: &Server, series: &str) -> f64 {
    let text = get(&format!("http://{}/metrics", server.admin)).text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn priority(server: &Server, stream: &str, query: &str) -> (Vec<String>, serde_json::Value) {
    let r = get(&server.url(&format!("/live/{stream}/steering.json?{query}")));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("steering JSON");
    let order = v["PATHWAY-PRIORITY"]
        .as_array()
        .expect("PATHWAY-PRIORITY")
        .iter()
        .map(|p| p.as_str().unwrap_or_default().to_string())
        .collect();
    (order, v)
}

/// (PATHWAY-ID, AUDIO group, URI) of every variant of a multivariant playlist.
fn variants(text: &str) -> Vec<(String, String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("#EXT-X-STREAM-INF:"))
        .map(|(i, l)| {
            let a = |name| {
                attr(l, name)
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_string()
            };
            (a("PATHWAY-ID"), a("AUDIO"), lines[i + 1].to_string())
        })
        .collect()
}

#[test]
fn content_steering_offers_every_cdn_counts_each_and_follows_a_cdn_marked_down() {
    let a = CdnProxy::start("edge-a");
    let b = CdnProxy::start("edge-b");
    let server = Server::start(
        &format!(
            "[ingest]\nreconnect_grace = 3.0\n[transcode]\nenabled = false\n[origin]\nsteering_ttl = 7\n\
             [[origin.cdn]]\nid = \"edge-a\"\nbase_url = \"{}\"\nweight = 3\n\
             [[origin.cdn]]\nid = \"edge-b\"\nbase_url = \"{}\"\nweight = 1\n",
            a.base_url(),
            b.base_url()
        ),
    );
    a.forward_to(server.http);
    b.forward_to(server.http);
    let _p = Publisher::start(&server.rtmp_url("final"), Publish::default());
    let mv = wait_for(
        &server.url("/live/final/index.m3u8"),
        Duration::from_secs(60),
    )
    .text();

    // One copy per CDN, each with its own audio group; the pathway a new
    // player starts on is dealt 3:1.
    let initial = |text: &str| {
        let tag = text
            .lines()
            .find(|l| l.starts_with("#EXT-X-CONTENT-STEERING:SERVER-URI=\"steering.json\","))
            .unwrap_or_else(|| panic!("no steering tag: {text}"));
        attr(tag, "PATHWAY-ID")
            .unwrap_or_default()
            .trim_matches('"')
            .to_string()
    };
    let starts: Vec<String> = (0..8)
        .map(|_| initial(&get(&server.url("/live/final/index.m3u8")).text()))
        .collect();
    assert_eq!(
        starts.iter().filter(|s| *s == "edge-a").count(),
        6,
        "{starts:?}"
    );
    let vs = variants(&mv);
    assert_eq!(vs.len(), 2, "{mv}");
    for (pathway, audio, uri) in &vs {
        let base = if pathway == "edge-a" {
            a.base_url()
        } else {
            b.base_url()
        };
        assert_eq!(uri, &format!("{base}/live/final/source/index.m3u8"), "{mv}");
        assert_eq!(audio, &format!("audio-{pathway}"), "{mv}");
        let group = format!("GROUP-ID=\"audio-{pathway}\"");
        let media = mv
            .lines()
            .find(|l| l.contains(&group))
            .expect("audio per pathway");
        assert!(
            media.contains(&format!("URI=\"{base}/live/final/audio/index.m3u8\"")),
            "{mv}"
        );
    }

    // Every pathway plays: its playlists and media, counted under its CDN.
    for (pathway, _, uri) in &vs {
        let m = wait_media_at(uri, 2, Duration::from_secs(60));
        let part = m.parts.last().expect("a part");
        let base = &uri[..uri.len() - "index.m3u8".len()];
        let r = get(&format!("{base}{}", part.0));
        assert_eq!(r.status, 200);
        let series = format!(
            "castline_http_requests_total{{class=\"media\",status=\"200\",cdn=\"{pathway}\"}}"
        );
        assert!(metric(&server, &series) >= 1.0, "no {series}");
        let bytes =
            format!("castline_http_response_bytes_total{{class=\"media\",cdn=\"{pathway}\"}}");
        assert!(metric(&server, &bytes) >= r.body.len() as f64, "{bytes}");
    }
    assert!(
        metric(
            &server,
            "castline_http_requests_total{class=\"multivariant\",status=\"200\",cdn=\"none\"}"
        ) >= 1.0
    );
    let stranger = request_with(
        "GET",
        &server.url("/live/final/index.m3u8"),
        &[("x-castline-cdn", "made-up")],
    );
    assert_eq!(stranger.status, 200);
    assert!(
        metric(
            &server,
            "castline_http_requests_total{class=\"multivariant\",status=\"200\",cdn=\"other\"}"
        ) >= 1.0
    );

    // The manifest: a player doing well keeps its pathway; new players are
    // dealt 3:1; TTL from the config.
    let (order, v) = priority(
        &server,
        "final",
        "_HLS_pathway=edge-b&_HLS_throughput=90000000",
    );
    assert_eq!(order, ["edge-b", "edge-a"]);
    assert_eq!(v["VERSION"], 1);
    assert_eq!(v["TTL"], 7);
    assert_eq!(v["RELOAD-URI"], "steering.json");
    let firsts: Vec<String> = (0..8)
        .map(|_| priority(&server, "final", "").0.remove(0))
        .collect();
    assert_eq!(
        firsts.iter().filter(|f| *f == "edge-a").count(),
        6,
        "{firsts:?}"
    );
    // Too slow for the lowest variant where it is: dealt again, never stuck.
    let slow: Vec<String> = (0..4)
        .map(|_| {
            priority(&server, "final", "_HLS_pathway=edge-b&_HLS_throughput=1000")
                .0
                .remove(0)
        })
        .collect();
    assert!(slow.contains(&"edge-a".to_string()), "{slow:?}");

    // Marking a CDN down takes it out of the next manifest, up brings it back.
    let admin = |path: &str| format!("http://{}{path}", server.admin);
    let down = request("POST", &admin("/api/v1/cdns/edge-a/down"));
    assert_eq!(down.status, 200, "{}", down.text());
    for q in ["_HLS_pathway=edge-a&_HLS_throughput=90000000", ""] {
        assert_eq!(priority(&server, "final", q).0, ["edge-b"]);
    }
    for _ in 0..4 {
        assert_eq!(
            initial(&get(&server.url("/live/final/index.m3u8")).text()),
            "edge-b"
        );
    }
    let list: serde_json::Value =
        serde_json::from_slice(&get(&admin("/api/v1/cdns")).body).expect("json");
    assert_eq!(list[0]["id"], "edge-a");
    assert_eq!(list[0]["up"], false);
    assert_eq!(list[1]["up"], true);
    assert_eq!(
        request("POST", &admin("/api/v1/cdns/edge-a/up")).status,
        200
    );
    assert_eq!(
        priority(
            &server,
            "final",
            "_HLS_pathway=edge-a&_HLS_throughput=90000000"
        )
        .0,
        ["edge-a", "edge-b"]
    );
    assert_eq!(
        request("POST", &admin("/api/v1/cdns/nope/down")).status,
        404
    );
    assert_eq!(get(&admin("/api/v1/cdns/edge-a/down")).status, 405);
    assert_eq!(get(&server.url("/live/nothing/steering.json")).status, 404);
}

#[test]
fn a_signed_steered_multivariant_carries_the_viewers_token_and_stays_out_of_shared_caches() {
    let server = Server::start(
        "[ingest]\nreconnect_grace = 3.0\n[transcode]\nenabled = false\n[origin]\n\
         signing_key = \"a-long-random-signing-key\"\n\
         [[origin.cdn]]\nid = \"cf\"\nbase_url = \"https://d1.example.net/\"\n\
         [[origin.cdn]]\nid = \"fastly\"\nbase_url = \"https://f.example.net\"\n",
    );
    let _p = Publisher::start(&server.rtmp_url("paid"), Publish::default());
    let url = server.signed_url("paid", "1h");
    let r = wait_for(&url, Duration::from_secs(60));
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    let prefix = &url[url.find("/s/").expect("signed")..url.find("/live/").expect("live")];
    let text = r.text();
    let vs = variants(&text);
    assert_eq!(vs.len(), 2, "{text}");
    for (_, _, uri) in &vs {
        assert!(
            uri == &format!("https://d1.example.net{prefix}/live/paid/source/index.m3u8")
                || uri == &format!("https://f.example.net{prefix}/live/paid/source/index.m3u8"),
            "{uri}"
        );
    }
    // The steering manifest inherits the signed prefix (SERVER-URI is relative).
    let steering = url.replace("index.m3u8", "steering.json");
    assert_eq!(get(&steering).status, 200);
    assert_eq!(get(&server.url("/live/paid/steering.json")).status, 403);
}

/// A cache from docker/cdn/ running in front of `origin` on a port of its
/// own; stopped when dropped.
/// castline's count of origin answers of `class` (status 200) through `cdn`.
fn origin_count(server: &Server, class: &str, cdn: &str) -> f64 {
    metric(
        server,
        &format!("castline_http_requests_total{{class=\"{class}\",status=\"200\",cdn=\"{cdn}\"}}"),
    )
}

/// 1,000 LL-HLS players (benches/llhls_load.rs) through `cache` for 10 s:
/// its JSON summary, and the origin's 200s by class during the run.
fn thousand_players(server: &Server, cache: &Cache, cdn: &str) -> (serde_json::Value, [f64; 3]) {
    let classes = ["media", "blocking_playlist", "playlist"];
    let before = classes.map(|c| origin_count(server, c, cdn));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_llhls-load"))
        .args([
            "--url",
            &format!("http://{}/live/herd/source/index.m3u8", cache.addr),
        ])
        .args(["--players", "1000", "--seconds", "10", "--ramp", "2"])
        .output()
        .expect("llhls-load");
    let text = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "llhls-load said {text:?} ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let after = classes.map(|c| origin_count(server, c, cdn));
    (summary, [0, 1, 2].map(|i| after[i] - before[i]))
}

#[test]
fn behind_varnish_and_nginx_a_thousand_players_collapse_to_one_origin_fetch_per_object() {
    let server = Server::start(
        "[ingest]\nreconnect_grace = 3.0\n[transcode]\nenabled = false\n\
         [[origin.cdn]]\nid = \"varnish\"\n[[origin.cdn]]\nid = \"nginx\"\n",
    );
    let _p = Publisher::start(&server.rtmp_url("herd"), Publish::default());
    wait_segments(&server, "herd", 2, Duration::from_secs(30));
    for (cdn, cache) in [
        ("varnish", Cache::varnish(server.http)),
        ("nginx", Cache::nginx(server.http)),
    ] {
        let (s, [media, blocking, plain]) = thousand_players(&server, &cache, cdn);
        let parts = s["spread_all_parts_ms"]["parts"].as_f64().unwrap_or(0.0);
        let requests =
            s["requests_per_second"].as_f64().unwrap_or(0.0) * s["seconds"].as_f64().unwrap_or(0.0);
        eprintln!("{cdn}: origin fetched {media} media, {blocking} blocking, {plain} plain for {parts} parts and {requests:.0} player requests: {s}");
        // Every player played, and no answer was an error: no 404 for a listed part.
        assert_eq!(s["non_200"], 0, "{cdn}: {s}");
        assert_eq!(s["transport_errors"], 0, "{cdn}: {s}");
        assert_eq!(s["players_without_a_part"], 0, "{cdn}: {s}");
        // Enough parts for the per-part counts below to mean something (a
        // CI run on a slow machine measured 29 of a possible ~60, all fine).
        assert!(parts >= 20.0, "{cdn}: {s}");
        // Collapse: about one origin fetch per part and per blocking reload
        // key, whatever the 1,000 players asked.
        assert!(
            media <= parts * 1.2 + 5.0,
            "{cdn}: {media} origin media fetches for {parts} parts: {s}"
        );
        assert!(
            blocking <= parts * 1.2 + 5.0,
            "{cdn}: {blocking} origin blocking reloads for {parts} parts: {s}"
        );
        assert!(plain <= 20.0, "{cdn}: {plain} plain playlist fetches: {s}");
        // ...and the counts are of this cache's fetches (the CDN label
        // works): each new part was fetched from the origin once.
        assert!(
            media >= parts * 0.8 && blocking > 0.0,
            "{cdn}: {media} media and {blocking} blocking origin fetches for {parts} parts: {s}"
        );
        assert!(
            media + blocking + plain < requests / 50.0,
            "{cdn}: origin {media}+{blocking}+{plain} of {requests}: {s}"
        );
        // Varnish says how old each answer is: none past its max-age.
        if cdn == "varnish" {
            assert_eq!(s["served_past_max_age"], 0, "{s}");
        }
        // nginx sends no Age: every plain playlist is judged by its content
        // instead (its newest part no older than max-age, a part and a
        // second for nginx's whole-second clock allow).
        assert!(
            s["plain_playlists_checked"].as_u64() >= Some(900),
            "{cdn}: {s}"
        );
        assert_eq!(s["plain_playlists_older_than_max_age"], 0, "{cdn}: {s}");
    }
}

/// What docker/cdn/cloudfront/signed-url-function.js (CloudFront Functions
/// JS 2.0) does with a viewer's GET of `uri` (sent with a token header of
/// the viewer's own, which must not survive), run in node with `key` in
/// place of CHANGE-ME: the request it forwards (its uri and
/// x-castline-token) or the status it answers itself.
fn cloudfront_function(key: &str, uri: &str) -> Result<(String, String), u64> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docker/cdn/cloudfront/signed-url-function.js"
    );
    let source = std::fs::read_to_string(path).expect("the shipped function");
    assert!(source.contains("'CHANGE-ME'"), "the key placeholder");
    let source = source.replace("'CHANGE-ME'", &format!("{key:?}"));
    let script = format!(
        "const handler = new Function('require', {src} + '\\nreturn handler;')(require);\n\
         const headers = {{ 'x-castline-token': {{ value: '/s/9999999999/forged' }} }};\n\
         const out = handler({{ request: {{ method: 'GET', uri: {uri:?}, querystring: {{}}, headers }} }});\n\
         console.log(JSON.stringify(out));",
        src = serde_json::Value::String(source),
    );
    let out = std::process::Command::new("node")
        .args(["-e", &script])
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    if let Some(status) = v["statusCode"].as_u64() {
        // CloudFront's form of a generated body.
        assert_eq!(v["body"]["encoding"], "text", "{v}");
        assert!(v["body"]["data"].is_string(), "{v}");
        return Err(status);
    }
    let token = v["headers"]["x-castline-token"]["value"]
        .as_str()
        .unwrap_or_default();
    Ok((
        v["uri"].as_str().unwrap_or_default().to_string(),
        token.to_string(),
    ))
}

#[test]
fn behind_cloudfront_a_signed_url_is_checked_at_the_edge_cached_without_its_token_and_checked_again_at_the_origin(
) {
    let key = "a-long-random-signing-key";
    let server = Server::start(&format!(
        "[ingest]\nreconnect_grace = 3.0\n[origin]\nsigning_key = \"{key}\"\n\
         cdn_secret = \"edge-only-7f3b\"\ncdn_checks_tokens = true\n"
    ));
    // CloudFront adds the secret to every origin request (an origin custom header).
    let secret = ("x-castline-cdn-secret", "edge-only-7f3b");
    let fetch = |url: &str, token: Option<&str>| match token {
        Some(t) => request_with("GET", url, &[secret, ("x-castline-token", t)]),
        None => request_with("GET", url, &[secret]),
    };
    let _p = Publisher::start(&server.rtmp_url("paid"), Publish::default());
    let signed = server.signed_url("paid", "1h");
    let base = signed.trim_end_matches("index.m3u8").to_string();
    let playlist = format!("{base}source/index.m3u8");
    let m = poll(Duration::from_secs(30), || {
        let r = fetch(&playlist, None);
        let m = parse_media(&if r.status == 200 {
            r.text()
        } else {
            String::new()
        });
        if m.segments.len() >= 2 {
            Ok(m)
        } else {
            Err(format!("no two segments at {playlist}"))
        }
    });
    let origin = format!("http://{}", server.http);
    let signed_path = |rest: &str| format!("{}{rest}", &base[origin.len()..]);
    let token = signed_path("").split("/live/").next().unwrap().to_string();
    let segment = format!("source/{}", m.segments[0].0);
    for rest in ["index.m3u8", "source/index.m3u8", segment.as_str()] {
        // At the edge: the token goes from the path (the cache key) to the
        // header, and the viewer's own header is gone.
        let (uri, edge_token) = cloudfront_function(key, &signed_path(rest)).expect("accepted");
        assert_eq!(uri, format!("/live/paid/{rest}"));
        assert_eq!(edge_token, edge_header(key.as_bytes(), &token));
        // At the origin: the forwarded request is answered as the signed URL is.
        let forwarded = fetch(&format!("{origin}{uri}"), Some(&edge_token));
        assert_eq!(forwarded.status, 200, "{rest}: {}", forwarded.text());
        if rest.ends_with(".m4s") {
            let direct = fetch(&format!("{base}{rest}"), None);
            assert_eq!(forwarded.body, direct.body, "the same bytes");
            assert_eq!(
                forwarded.header("etag"),
                direct.header("etag"),
                "one identity"
            );
        }
    }
    // The edge answers 403 itself for a tampered, expired, other-stream or
    // missing token.
    let seg = signed_path(&segment);
    let other_expiry = seg.replacen("/s/", "/s/1", 1);
    assert_eq!(cloudfront_function(key, &other_expiry), Err(403));
    let mut flipped = seg.clone().into_bytes();
    let at = seg.find("/live/").unwrap() - 1;
    flipped[at] = if flipped[at] == b'0' { b'1' } else { b'0' };
    assert_eq!(
        cloudfront_function(key, &String::from_utf8(flipped).unwrap()),
        Err(403)
    );
    let past = 1_000_000_000u64;
    let expired = format!("/s/{past}/{}", sign(key.as_bytes(), "paid", past));
    let expired_url = format!("{expired}/live/paid/index.m3u8");
    assert_eq!(cloudfront_function(key, &expired_url), Err(403));
    assert_eq!(cloudfront_function(key, "/live/paid/index.m3u8"), Err(403));
    assert_eq!(
        cloudfront_function(key, &seg.replace("/live/paid/", "/live/free/")),
        Err(403)
    );
    // The origin checks the header token and the edge's proof again: a
    // token without the proof (a viewer's own header), a wrong proof, a
    // wrong token, or a right one without the CDN secret are refused.
    let mv = format!("{origin}/live/paid/index.m3u8");
    let edge = |t: &str| edge_header(key.as_bytes(), t);
    assert_eq!(fetch(&mv, Some(&edge(&token))).status, 200);
    assert_eq!(fetch(&mv, Some(&token)).status, 403, "no proof");
    let forged = edge_header(b"not-the-key", &token);
    assert_eq!(
        fetch(&mv, Some(&forged)).status,
        403,
        "a proof without the key"
    );
    assert_eq!(
        request_with("GET", &mv, &[("x-castline-token", &edge(&token))]).status,
        403
    );
    let last = if token.ends_with('0') { "1" } else { "0" };
    let other = format!("{}{last}", &token[..token.len() - 1]);
    assert_eq!(fetch(&mv, Some(&edge(&other))).status, 403);
    let free = format!("{origin}/live/free/index.m3u8");
    assert_eq!(fetch(&free, Some(&edge(&token))).status, 403);
    assert_eq!(fetch(&mv, None).status, 403);
    // Expiry: the edge checked it, so the origin allows the seconds a miss
    // takes past it, and no more.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token_at = |expiry: u64| format!("/s/{expiry}/{}", sign(key.as_bytes(), "paid", expiry));
    assert_eq!(fetch(&mv, Some(&edge(&token_at(now - 5)))).status, 200);
    assert_eq!(fetch(&mv, Some(&edge(&token_at(past)))).status, 403);
    assert_eq!(
        fetch(
            &format!("{origin}{}/live/paid/index.m3u8", token_at(now - 5)),
            None
        )
        .status,
        403,
        "a path token gets no grace"
    );
}

/// `hls.part_addressing = "byteranges"` behind the shipped Varnish: each
/// part is a byte range of its segment, asked for while the segment is still
/// being written. Varnish answers such a range as soon as the origin has its
/// bytes (Content-Range `/*`: not the whole segment a second later), keeps
/// different ranges of one URL apart, collapses players asking for the same
/// range into one origin fetch, and streams the preload hint's open range as
/// the segment grows.
#[test]
fn behind_varnish_byte_range_parts_of_a_segment_being_written_come_as_they_are_made() {
    let server = Server::start(
        "[hls]\npart_addressing = \"byteranges\"\n[transcode]\nenabled = false\n\
         [[origin.cdn]]\nid = \"varnish\"\n",
    );
    // A 2 s GOP: 2 s segments of ten 0.2 s parts.
    let publish = Publish {
        gop_frames: 60,
        ..Default::default()
    };
    let _p = Publisher::start(&server.rtmp_url("ranged"), publish);
    wait_segments(&server, "ranged", 2, Duration::from_secs(30));
    let cache = Cache::varnish(server.http);
    let edge = format!("http://{}/live/ranged/source/", cache.addr);
    let origin = server.url("/live/ranged/source/");
    // The moment a segment opens: its hint starts at byte 0.
    let uri = poll_every(Duration::from_secs(20), Duration::from_millis(10), || {
        let text = get(&format!("{origin}index.m3u8")).text();
        let hint = text
            .lines()
            .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:"))
            .ok_or_else(|| "no hint".to_string())?
            .to_string();
        match attr(&hint, "BYTERANGE-START") {
            Some("0") => Ok(attr(&hint, "URI").unwrap_or_default().to_string()),
            _ => Err(format!("hint {hint}")),
        }
    });
    // (The hint moves on as the last part of a segment is listed, before
    // the segment's own EXTINF: the hint names the MSN to wait for.)
    let next = msn_of(&uri);
    // Players waiting on the hint: the rest of the segment from byte 0.
    let live = "bytes=0-9007199254740991";
    let waiting: Vec<_> = (0..8)
        .map(|_| {
            let url = format!("{edge}{uri}");
            std::thread::spawn(move || request_with("GET", &url, &[("Range", live)]))
        })
        .collect();
    // The segment's first part, once listed (a blocking reload through
    // Varnish), by its range.
    let listed = get(&format!("{edge}index.m3u8?_HLS_msn={next}&_HLS_part=0")).text();
    let part = listed
        .lines()
        .find(|l| l.starts_with("#EXT-X-PART:") && attr(l, "URI") == Some(uri.as_str()))
        .unwrap_or_else(|| panic!("{uri} part 0 not listed: {listed}"));
    let len: usize = attr(part, "BYTERANGE")
        .and_then(|r| r.strip_suffix("@0"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{part}"));
    let range = format!("bytes=0-{}", len - 1);
    let first = request_with("GET", &format!("{edge}{uri}"), &[("Range", &range)]);
    assert_eq!(first.status, 206, "{:?}", first.headers);
    // Answered from what existed, while the segment was being written: a
    // Varnish that fetched the whole segment for it answers only once the
    // segment is complete, with its length after the slash.
    assert_eq!(
        first.header("content-range"),
        Some(format!("bytes 0-{}/*", len - 1).as_str()),
        "the range came from the segment as it grew"
    );
    let again = request_with("GET", &format!("{edge}{uri}"), &[("Range", &range)]);
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert_eq!(again.body, first.body);
    let waiting: Vec<Reply> = waiting.into_iter().map(|t| t.join().unwrap()).collect();
    // The segment, complete, from the origin.
    let done = get(&format!("{origin}{uri}"));
    assert_eq!(done.status, 200);
    assert_eq!(first.body, &done.body[..len], "the part's bytes");
    for r in &waiting {
        assert_eq!(r.status, 206, "{}", r.text());
        assert_eq!(
            r.header("content-range"),
            Some("bytes 0-9007199254740991/*")
        );
        assert_eq!(r.body, done.body, "the hint's range is the whole segment");
    }
    let misses = waiting
        .iter()
        .filter(|r| r.header("x-cache") == Some("MISS"))
        .count();
    assert_eq!(misses, 1, "one origin fetch for eight players");
    // The whole segment through Varnish: its own object, not a range's.
    let whole = get(&format!("{edge}{uri}"));
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, done.body);
}
