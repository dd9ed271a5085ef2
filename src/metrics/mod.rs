//! Prometheus metrics: every stage counts what it does.

mod labels;
mod register;
mod text;

pub use labels::*;
pub use text::openmetrics_to_prometheus;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn transcode_latency_histogram() -> Histogram {
    // 1 ms .. 2 s, fine where x264 at 720p lands (10-100 ms)
    Histogram::new([
        0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.5, 1.0,
        2.0,
    ])
}

fn part_ready_histogram() -> Histogram {
    // 0.1 ms .. ~1.6 s
    Histogram::new([
        0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0,
    ])
}

pub struct Metrics {
    registry: Registry,
    pub rtmp_connections: Counter,
    pub rtmp_errors: Family<ReasonLabel, Counter>,
    pub rtmp_refusals: Family<ReasonLabel, Counter>,
    pub srt_connections: Counter,
    pub srt_errors: Family<ReasonLabel, Counter>,
    pub srt_refusals: Family<ReasonLabel, Counter>,
    pub srt_ts_continuity_errors: Counter,
    pub srt_ts_dropped_pes: Counter,
    pub srt_ts_unfinished_pes: Counter,
    pub srt_ts_resync_bytes: Counter,
    pub srt_rtt_seconds: Family<StreamLabel, Gauge<f64, AtomicU64>>,
    pub srt_packets_received: Family<StreamLabel, Counter>,
    pub srt_loss_reports: Family<StreamLabel, Counter>,
    pub srt_packets_retransmitted: Family<StreamLabel, Counter>,
    pub srt_packets_dropped: Family<StreamLabel, Counter>,
    pub srt_receive_buffer_seconds: Family<StreamLabel, Gauge<f64, AtomicU64>>,
    pub ingest_frames: Counter,
    pub ingest_skipped_tags: Counter,
    pub ingest_clock_resets: Counter,
    pub ingest_timestamp_repairs: Counter,
    pub hub_dropped_events: Counter,
    pub live_streams: Gauge,
    pub store_bytes: Gauge,
    pub vod_sessions: Gauge,
    pub disk_bytes: Gauge,
    pub disk_errors: Gauge,
    pub vod_evictions: Family<ReasonLabel, Counter>,
    pub budget_trims: Family<ReasonLabel, Counter>,
    pub parts: Counter,
    pub segments: Counter,
    pub segments_over_target: Counter,
    pub segments_without_keyframe: Counter,
    pub packaging_errors: Counter,
    pub packager_panics: Counter,
    pub part_ready_seconds: HistogramFamily<RenditionLabel>,
    pub http_requests: Family<HttpLabel, Counter>,
    pub http_bytes: Family<EgressLabel, Counter>,
    pub storage_reads: Family<TierLabel, Counter>,
    pub storage_read_bytes: Family<TierLabel, Counter>,
    pub encoder_backend: Family<BackendLabel, Gauge>,
    pub frame_path: Family<FramePathLabel, Gauge>,
    pub encoder_sessions: Family<BackendLabel, Gauge>,
    pub transcode_latency: HistogramFamily<RenditionLabel>,
    pub transcode_encode_latency: HistogramFamily<RenditionLabel>,
    pub transcode_errors: Counter,
    pub ladder_fallbacks: Family<ReasonLabel, Counter>,
    pub publishes: Family<ProtocolLabel, Counter>,
    pub reconnects: Family<ProtocolLabel, Counter>,
    pub transcode_dropped_frames: Family<RenditionLabel, Counter>,
    pub ingest_bytes: Counter,
    pub ingest_bytes_per_second: Family<StreamLabel, Gauge<f64, AtomicU64>>,
    pub ingest_frames_per_second: Family<StreamLabel, Gauge<f64, AtomicU64>>,
    pub blocked_requests: Gauge,
    pub http_connections: Gauge,
    pub http_refusals: Family<ReasonLabel, Counter>,
    /// Handshakes the kernel dropped for a full accept queue, since start.
    pub tcp_listen_overflows: Counter,
    pub capacity_utilization: Gauge<f64, AtomicU64>,
    pub capacity_ratio: Family<ResourceLabel, Gauge<f64, AtomicU64>>,
    pub desired_capacity: Gauge<f64, AtomicU64>,
    pub draining: Gauge,
    pub viewers: Family<StreamLabel, Gauge>,
    pub pipeline_queue_events: Family<StreamLabel, Gauge>,
    pub pipeline_speed: Family<StreamLabel, Gauge<f64, AtomicU64>>,
    pub slate_seconds: Family<StreamLabel, Counter<f64, AtomicU64>>,
    pub input_active: Family<InputLabel, Gauge>,
    pub input_switches: Family<ReasonLabel, Counter>,
    pub push_latency_seconds: HistogramFamily<OriginLabel>,
    pub push_bytes: Family<OriginLabel, Counter>,
    pub push_objects: Family<OriginLabel, Counter>,
    pub push_resyncs: Family<OriginLabel, Counter>,
    pub push_refused: Family<OriginReasonLabel, Counter>,
    pub push_origins: Gauge,
    pub pushes_received: Family<ReasonLabel, Counter>,
    pub pushes_rejected: Family<ReasonLabel, Counter>,
    pub pushed_streams: Gauge,
    pub push_last_timestamp: Family<StreamLabel, Gauge<f64, AtomicU64>>,
    /// Body bytes the origin sent, all classes (for the egress rate; not
    /// exported: `http_response_bytes` has them by class).
    pub egress_bytes: std::sync::atomic::AtomicU64,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("castline");
        let m = Metrics {
            rtmp_connections: Counter::default(),
            rtmp_errors: Family::default(),
            rtmp_refusals: Family::default(),
            srt_connections: Counter::default(),
            srt_errors: Family::default(),
            srt_refusals: Family::default(),
            srt_ts_continuity_errors: Counter::default(),
            srt_ts_dropped_pes: Counter::default(),
            srt_ts_unfinished_pes: Counter::default(),
            srt_ts_resync_bytes: Counter::default(),
            srt_rtt_seconds: Family::default(),
            srt_packets_received: Family::default(),
            srt_loss_reports: Family::default(),
            srt_packets_retransmitted: Family::default(),
            srt_packets_dropped: Family::default(),
            srt_receive_buffer_seconds: Family::default(),
            ingest_frames: Counter::default(),
            ingest_skipped_tags: Counter::default(),
            ingest_clock_resets: Counter::default(),
            ingest_timestamp_repairs: Counter::default(),
            hub_dropped_events: Counter::default(),
            live_streams: Gauge::default(),
            store_bytes: Gauge::default(),
            vod_sessions: Gauge::default(),
            disk_bytes: Gauge::default(),
            disk_errors: Gauge::default(),
            vod_evictions: Family::default(),
            budget_trims: Family::default(),
            parts: Counter::default(),
            segments: Counter::default(),
            segments_over_target: Counter::default(),
            segments_without_keyframe: Counter::default(),
            packaging_errors: Counter::default(),
            packager_panics: Counter::default(),
            // 0.1 ms .. ~1.6 s
            part_ready_seconds: Family::new_with_constructor(part_ready_histogram),
            push_latency_seconds: Family::new_with_constructor(part_ready_histogram),
            push_bytes: Family::default(),
            push_objects: Family::default(),
            push_resyncs: Family::default(),
            push_refused: Family::default(),
            push_origins: Gauge::default(),
            pushes_received: Family::default(),
            pushes_rejected: Family::default(),
            pushed_streams: Gauge::default(),
            push_last_timestamp: Family::default(),
            http_requests: Family::default(),
            http_bytes: Family::default(),
            storage_reads: Family::default(),
            storage_read_bytes: Family::default(),
            encoder_backend: Family::default(),
            frame_path: Family::default(),
            encoder_sessions: Family::default(),
            transcode_latency: Family::new_with_constructor(transcode_latency_histogram),
            transcode_encode_latency: Family::new_with_constructor(transcode_latency_histogram),
            transcode_errors: Counter::default(),
            ladder_fallbacks: Family::default(),
            reconnects: Family::default(),
            transcode_dropped_frames: Family::default(),
            publishes: Family::default(),
            ingest_bytes: Counter::default(),
            ingest_bytes_per_second: Family::default(),
            ingest_frames_per_second: Family::default(),
            blocked_requests: Gauge::default(),
            http_connections: Gauge::default(),
            http_refusals: Family::default(),
            tcp_listen_overflows: Counter::default(),
            capacity_utilization: Gauge::default(),
            capacity_ratio: Family::default(),
            desired_capacity: Gauge::default(),
            draining: Gauge::default(),
            viewers: Family::default(),
            pipeline_queue_events: Family::default(),
            pipeline_speed: Family::default(),
            slate_seconds: Family::default(),
            input_active: Family::default(),
            input_switches: Family::default(),
            egress_bytes: std::sync::atomic::AtomicU64::new(0),
            registry: Registry::default(),
        };
        register::ingest(&mut registry, &m);
        register::store(&mut registry, &m);
        register::origin(&mut registry, &m);
        register::pipeline(&mut registry, &m);
        register::capacity(&mut registry, &m);
        register::push(&mut registry, &m);
        Metrics { registry, ..m }
    }

    /// OpenMetrics text (what `prometheus-client` writes).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The Prometheus text format (0.0.4), for scrapers and tools that do
    /// not ask for OpenMetrics (`promtool check metrics`, older agents).
    pub fn encode_prometheus(&self) -> String {
        openmetrics_to_prometheus(&self.encode())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
