//! Memory stays within `hls.memory_budget_mb` under many real publishers.
//! Its own test binary: twenty ffmpeg encoders want the machine to themselves.

mod common;

use std::time::{Duration, Instant};

use common::*;

const PUBLISHERS: usize = 20;
const BUDGET_MIB: u64 = 6;
/// What castline may hold beyond its media budget with twenty streams: hub
/// queues, open parts, the playlist renderings kept for repeat answers,
/// tasks and the allocator's slack (17 to 38 MiB measured with the debug
/// build, flat once the budget is reached).
const OVERHEAD_MIB: u64 = 48;
/// How much castline may still grow at the budget, from the peak of the 10 s
/// after it settled to that of the last 10 s, 20 s later. The media alone
/// would grow by about 15 MiB in those 20 s without the bound; the
/// allocator's settling after the store reaches the budget takes about
/// 2.5 MiB over its first 20 s (debug build, measured), hence the settling
/// time before.
const DRIFT_MIB: u64 = 3;

#[test]
fn twenty_publishers_stay_within_the_memory_budget_and_the_next_is_refused() {
    let server = Server::start(&format!(
        // All twenty connect at once from one address: more than the
        // default 8 unpublished connections per address.
        "[ingest]\nreconnect_grace = 3.0\nmax_pending_per_address = 32\n[transcode]\nenabled = false\n\
         [hls]\nmemory_budget_mb = {BUDGET_MIB}\n"
    ));
    let idle = server.rss();
    let small = Publish {
        size: "160x120",
        preset: "ultrafast",
        bitrate: "150k",
        seconds: 90,
        ..Default::default()
    };
    let publishers: Vec<Publisher> = (0..PUBLISHERS)
        .map(|i| Publisher::start(&server.rtmp_url(&format!("s{i}")), small))
        .collect();
    for i in 0..PUBLISHERS {
        wait_segments(&server, &format!("s{i}"), 1, Duration::from_secs(30));
    }
    let budget = BUDGET_MIB * 1024 * 1024;
    let held = || server.metric("castline_store_bytes").unwrap_or(0.0) as u64;
    // About 27 kB/s each: the store reaches the budget in about 12 s.
    let start = Instant::now();
    while held() < budget * 9 / 10 {
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "the store never filled: {} bytes",
            held()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // The 21st is refused, with its reason, before it takes memory.
    let late = Publisher::start(
        &server.rtmp_url("late"),
        Publish {
            seconds: 5,
            ..small
        },
    );
    let (ok, err) = late.wait(Duration::from_secs(20));
    assert!(
        !ok,
        "a publisher past the memory budget must be refused: {err}"
    );
    assert!(
        server
            .metric("castline_rtmp_errors_total{reason=\"memory_budget\"}")
            .unwrap_or(0.0)
            >= 1.0,
        "refused for another reason"
    );
    assert_eq!(get(&server.url("/live/late/index.m3u8")).status, 404);

    // 40 s more at the budget (10 s to settle, then 30 s): the live windows
    // shorten instead of growing.
    let (mut max_held, mut rss) = (0, Vec::new());
    let at_budget = Instant::now();
    while at_budget.elapsed() < Duration::from_secs(40) {
        max_held = max_held.max(held());
        rss.push((at_budget.elapsed(), server.rss()));
        std::thread::sleep(Duration::from_millis(500));
    }
    // The highest RSS sampled within [from, to) seconds of the window.
    let peak = |from: u64, to: u64| {
        rss.iter()
            .filter(|(t, _)| (from..to).contains(&t.as_secs()))
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(0)
    };
    let (settled, last) = (peak(10, 20), peak(30, 41));
    assert!(
        last <= settled + DRIFT_MIB * 1024 * 1024,
        "castline kept growing at the budget: {settled} bytes 10-20 s in, {last} in the last 10 s"
    );
    let max_rss = peak(0, 41);
    // A stream gives way one segment (about 50 kB here) at a time.
    assert!(
        max_held <= budget + PUBLISHERS as u64 * 60_000,
        "{max_held} bytes held against a {budget}-byte budget"
    );
    let grown = max_rss.saturating_sub(idle);
    assert!(
        grown <= budget + OVERHEAD_MIB * 1024 * 1024,
        "castline grew by {grown} bytes (idle {idle}) against a {budget}-byte budget"
    );
    assert!(
        server
            .metric("castline_budget_trims_total{reason=\"memory_budget\"}")
            .unwrap_or(0.0)
            > 0.0,
        "the live windows never shortened"
    );
    // Every stream is still live and still listed.
    for i in 0..PUBLISHERS {
        let m = wait_segments(&server, &format!("s{i}"), 3, Duration::from_secs(5));
        assert!(!m.endlist && m.media_sequence > 0, "s{i}: {}", m.text);
    }
    drop(publishers);
}
