//! How full this instance is, as one number to scale on, and the limits past
//! which it refuses new publishers.
//!
//! `castline_capacity_utilization` is the highest of the ratios that can run
//! out, each "used ÷ what there is" (1 = full):
//! - `cpu`: the process's CPU time per second over the cores it may use
//!   (`limits.max_cpu` × cores; by default all of them). On a CPU node the
//!   ladder's decode, scale and encode are nearly all of it, so this is the
//!   encoder load against real time: at 1 the encoders fall behind;
//! - `streams`: open streams ÷ `limits.max_streams`;
//! - `encoder_sessions`: open video encoders ÷ `limits.max_encoder_sessions`
//!   (an NVENC card runs a fixed number of sessions);
//! - `ingest_bitrate`: what publishers send ÷ `limits.max_ingest_mbps`;
//! - `egress`: what the origin sends ÷ `limits.egress_budget_mbps`;
//! - `memory`: media bytes held ÷ `hls.memory_budget_mb`;
//! - `connections`: open origin connections ÷ `origin.max_connections`
//!   (viewers or CDN edges connected straight to this instance).
//!
//! A ratio whose limit is not set is left out (cpu, memory and connections
//! always count).
//! Rates are measured over the last second by [`run`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::LimitsConfig;
use crate::hub::Hub;
use crate::metrics::{Metrics, ResourceLabel, StreamLabel};
use crate::store::Store;

/// What is in use now.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Load {
    /// CPU seconds per second (2.0 = two cores busy).
    pub cpu: f64,
    pub streams: usize,
    pub encoder_sessions: usize,
    pub ingest_bps: f64,
    pub egress_bps: f64,
    pub memory_bytes: usize,
    /// Origin connections open.
    pub connections: usize,
}

/// What there is (0 or `None`: no limit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    /// Cores this process may use (its share of the machine).
    pub cores: f64,
    pub max_streams: usize,
    pub max_encoder_sessions: usize,
    pub max_ingest_bps: f64,
    pub egress_budget_bps: f64,
    pub memory_budget: usize,
    /// `origin.max_connections` as resolved at start.
    pub max_connections: usize,
}

impl Capacity {
    pub fn from_config(
        limits: &LimitsConfig,
        memory_budget: usize,
        max_connections: usize,
    ) -> Capacity {
        let machine = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
        Capacity {
            cores: machine * limits.max_cpu,
            max_streams: limits.max_streams,
            max_encoder_sessions: limits.max_encoder_sessions,
            max_ingest_bps: limits.max_ingest_mbps * 1e6,
            egress_budget_bps: limits.egress_budget_mbps * 1e6,
            memory_budget,
            max_connections,
        }
    }
}

/// Each resource's ratio (see the module comment), in a fixed order.
pub fn ratios(load: &Load, cap: &Capacity) -> Vec<(&'static str, f64)> {
    let ratio = |used: f64, limit: f64| (limit > 0.0).then(|| used / limit);
    [
        ("cpu", ratio(load.cpu, cap.cores)),
        (
            "streams",
            ratio(load.streams as f64, cap.max_streams as f64),
        ),
        (
            "encoder_sessions",
            ratio(
                load.encoder_sessions as f64,
                cap.max_encoder_sessions as f64,
            ),
        ),
        ("ingest_bitrate", ratio(load.ingest_bps, cap.max_ingest_bps)),
        ("egress", ratio(load.egress_bps, cap.egress_budget_bps)),
        (
            "memory",
            ratio(load.memory_bytes as f64, cap.memory_budget as f64),
        ),
        (
            "connections",
            ratio(load.connections as f64, cap.max_connections as f64),
        ),
    ]
    .into_iter()
    .filter_map(|(name, r)| Some((name, r?)))
    .collect()
}

/// The one number to scale on: the highest ratio (0 with none).
pub fn utilization(ratios: &[(&'static str, f64)]) -> f64 {
    ratios.iter().map(|(_, r)| *r).fold(0.0, f64::max)
}

/// Why a new publisher cannot be taken now: the first resource that is
/// full, with a sentence for the publisher. CPU counts only when
/// `limits.max_cpu` is below 1 (at 1 the ratio is for scaling, not for
/// refusing: a busy machine still takes a stream rather than none).
/// Connections never refuse: a publisher needs none of the origin's, and
/// the origin turns away the connections over its limit itself.
pub fn refusal(ratios: &[(&'static str, f64)], cpu_limited: bool) -> Option<String> {
    ratios
        .iter()
        .filter(|(name, _)| match *name {
            "cpu" => cpu_limited,
            "connections" => false,
            _ => true,
        })
        .find(|(_, r)| *r >= 1.0)
        .map(|(name, r)| {
            format!(
                "the server is at capacity ({name} at {:.0} % of its limit)",
                r * 100.0
            )
        })
}

/// Scheduled events (`limits.prewarm`): the capacity to plan for now is at
/// least each event's from its `lead` before its start to its end.
pub fn desired(utilization: f64, now_unix: u64, events: &[(u64, u64, f64)]) -> f64 {
    events
        .iter()
        .filter(|(from, until, _)| (*from..*until).contains(&now_unix))
        .map(|(_, _, c)| *c)
        .fold(utilization, f64::max)
}

/// The process's CPU seconds so far (Linux `/proc/self/stat`; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) end with ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    (ticks(11) + ticks(12)) / 100.0
}

/// What the capacity checks read, shared with the ingest (refusals) and the
/// admin port (readiness).
pub struct Gauge {
    pub capacity: Capacity,
    pub cpu_limited: bool,
    /// The newest ratios (updated every second by [`run`]).
    latest: std::sync::RwLock<Vec<(&'static str, f64)>>,
    /// Scheduled events: (from, until, capacity) in Unix seconds, from the
    /// config and the admin API.
    prewarm: std::sync::RwLock<Vec<(u64, u64, f64)>>,
}

/// Scheduled events kept at most (config and admin calls together).
pub const MAX_PREWARM: usize = 64;

impl Gauge {
    pub fn new(capacity: Capacity, cpu_limited: bool, prewarm: Vec<(u64, u64, f64)>) -> Arc<Gauge> {
        Arc::new(Gauge {
            capacity,
            cpu_limited,
            latest: std::sync::RwLock::new(Vec::new()),
            prewarm: std::sync::RwLock::new(prewarm),
        })
    }

    /// The scheduled events not yet over at `now_unix`.
    pub fn prewarm(&self, now_unix: u64) -> Vec<(u64, u64, f64)> {
        let mut p = self.prewarm.write().unwrap_or_else(|e| e.into_inner());
        p.retain(|(_, until, _)| *until > now_unix);
        p.clone()
    }

    /// Schedule an event; refused past [`MAX_PREWARM`].
    pub fn add_prewarm(&self, window: (u64, u64, f64)) -> bool {
        let mut p = self.prewarm.write().unwrap_or_else(|e| e.into_inner());
        if p.len() >= MAX_PREWARM {
            return false;
        }
        p.push(window);
        true
    }

    pub fn ratios(&self) -> Vec<(&'static str, f64)> {
        self.latest
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// At capacity: some limited resource is full.
    pub fn full(&self) -> Option<String> {
        refusal(&self.ratios(), self.cpu_limited)
    }
}

/// A CPU rate measured over less than this (seconds) is not published.
const MIN_RATE_WINDOW: f64 = 0.5;

/// Every second: measure the load, publish the ratios and the per-stream
/// ingest rates. Runs until the process ends.
pub async fn run(
    gauge: Arc<Gauge>,
    hub: Arc<Hub>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    viewers: Arc<crate::origin::viewers::Viewers>,
) {
    let mut last = Instant::now();
    let mut last_cpu = cpu_seconds();
    let mut last_egress = metrics.egress_bytes.load(Ordering::Relaxed);
    let mut last_ingest: std::collections::HashMap<String, (u64, u64)> = Default::default();
    let mut viewer_streams: Vec<String> = Vec::new();
    // The first tick is immediate, so the counts (streams, encoder sessions,
    // memory) guard admissions from the start, e.g. when every publisher
    // reconnects after a restart. Its CPU rate is left at 0: over ~0 s the
    // 10 ms ticks of /proc would read as several cores busy.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = Instant::now();
        let dt = now.duration_since(last).as_secs_f64().max(1e-3);
        last = now;
        let cpu = cpu_seconds();
        let egress = metrics.egress_bytes.load(Ordering::Relaxed);
        let mut ingest_bps = 0.0;
        let mut seen = std::collections::HashMap::new();
        for (name, bytes, frames) in hub.ingest_counts() {
            let (b0, f0) = last_ingest.get(&name).copied().unwrap_or((bytes, frames));
            let bps = bytes.saturating_sub(b0) as f64 * 8.0 / dt;
            let fps = frames.saturating_sub(f0) as f64 / dt;
            ingest_bps += bps;
            let label = StreamLabel {
                stream: name.clone(),
            };
            metrics
                .ingest_bytes_per_second
                .get_or_create(&label)
                .set(bps / 8.0);
            metrics
                .ingest_frames_per_second
                .get_or_create(&label)
                .set(fps);
            seen.insert(name, (bytes, frames));
        }
        for gone in last_ingest.keys().filter(|n| !seen.contains_key(*n)) {
            let label = StreamLabel {
                stream: gone.clone(),
            };
            metrics.ingest_bytes_per_second.remove(&label);
            metrics.ingest_frames_per_second.remove(&label);
        }
        last_ingest = seen;
        let sessions: i64 = ["x264", "nvenc"]
            .iter()
            .map(|b| {
                metrics
                    .encoder_sessions
                    .get_or_create(&crate::metrics::BackendLabel { backend: b })
                    .get()
            })
            .sum();
        let load = Load {
            cpu: if dt >= MIN_RATE_WINDOW {
                (cpu - last_cpu).max(0.0) / dt
            } else {
                0.0
            },
            streams: hub.open_streams(),
            encoder_sessions: sessions.max(0) as usize,
            ingest_bps,
            egress_bps: egress.saturating_sub(last_egress) as f64 * 8.0 / dt,
            memory_bytes: store.bytes(),
            connections: metrics.http_connections.get().max(0) as usize,
        };
        last_cpu = cpu;
        last_egress = egress;
        let r = ratios(&load, &gauge.capacity);
        for (name, v) in &r {
            metrics
                .capacity_ratio
                .get_or_create(&ResourceLabel { resource: name })
                .set(*v);
        }
        let u = utilization(&r);
        metrics.capacity_utilization.set(u);
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        metrics
            .desired_capacity
            .set(desired(u, unix, &gauge.prewarm(unix)));
        metrics
            .live_streams
            .set(hub.open_stream_names().len() as i64);
        let known = |name: &str| store.stream(name).is_some();
        let counts = viewers.estimate(now, known);
        for (name, n) in &counts {
            let label = StreamLabel {
                stream: name.clone(),
            };
            metrics.viewers.get_or_create(&label).set(*n as i64);
        }
        for gone in viewer_streams
            .iter()
            .filter(|n| !counts.iter().any(|(c, _)| c == *n))
        {
            metrics.viewers.remove(&StreamLabel {
                stream: gone.clone(),
            });
        }
        viewer_streams = counts.into_iter().map(|(n, _)| n).collect();
        metrics.store_bytes.set(store.bytes() as i64);
        *gauge.latest.write().unwrap_or_else(|e| e.into_inner()) = r;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap() -> Capacity {
        Capacity {
            cores: 2.0,
            max_streams: 10,
            max_encoder_sessions: 0,
            max_ingest_bps: 0.0,
            egress_budget_bps: 1e9,
            memory_budget: 1000,
            max_connections: 100,
        }
    }

    #[test]
    fn utilization_is_the_fullest_resource_and_unset_limits_are_left_out() {
        let load = Load {
            cpu: 1.0,
            streams: 8,
            encoder_sessions: 30,
            ingest_bps: 5e8,
            egress_bps: 2e8,
            memory_bytes: 100,
            connections: 25,
        };
        let r = ratios(&load, &cap());
        assert_eq!(
            r,
            [
                ("cpu", 0.5),
                ("streams", 0.8),
                ("egress", 0.2),
                ("memory", 0.1),
                ("connections", 0.25)
            ]
        );
        assert_eq!(utilization(&r), 0.8);
        assert_eq!(refusal(&r, true), None);
    }

    #[test]
    fn a_full_resource_refuses_new_publishers_and_cpu_only_when_limited() {
        let load = Load {
            cpu: 2.1,
            streams: 10,
            ..Load::default()
        };
        let r = ratios(&load, &cap());
        let why = refusal(&r, false).expect("streams are full");
        assert!(why.contains("streams at 100 %"), "{why}");
        let only_cpu = ratios(
            &Load {
                cpu: 2.1,
                ..Load::default()
            },
            &cap(),
        );
        assert_eq!(
            refusal(&only_cpu, false),
            None,
            "cpu alone scales, it does not refuse"
        );
        assert!(refusal(&only_cpu, true).is_some_and(|w| w.contains("cpu")));
        let connections = ratios(
            &Load {
                connections: 100,
                ..Load::default()
            },
            &cap(),
        );
        assert_eq!(utilization(&connections), 1.0, "full connections scale out");
        assert_eq!(refusal(&connections, true), None, "but refuse no publisher");
    }

    #[test]
    fn a_scheduled_event_raises_the_desired_capacity_from_its_lead_to_its_end() {
        let events = [(1000, 2000, 0.9)];
        assert_eq!(desired(0.2, 999, &events), 0.2);
        assert_eq!(desired(0.2, 1000, &events), 0.9);
        assert_eq!(desired(0.95, 1500, &events), 0.95);
        assert_eq!(desired(0.2, 2000, &events), 0.2);
    }

    #[test]
    fn this_process_has_spent_some_cpu() {
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_millis(30) {}
        assert!(cpu_seconds() > 0.0);
    }
}
