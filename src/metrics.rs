//! Prometheus metrics: every stage counts what it does.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabel {
    pub class: &'static str,
    pub status: u16,
    /// The CDN the request came through: a configured id, "other" or "none".
    pub cdn: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EgressLabel {
    pub class: &'static str,
    pub cdn: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierLabel {
    pub tier: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RenditionLabel {
    pub rendition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabel {
    pub stream: String,
}

/// A stream's input: `primary`, `backup` or `slate`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InputLabel {
    pub stream: String,
    pub input: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabel {
    pub protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabel {
    pub resource: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabel {
    pub backend: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FramePathLabel {
    pub path: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OriginLabel {
    pub origin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OriginReasonLabel {
    pub origin: String,
    pub reason: &'static str,
}

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
        registry.register(
            "rtmp_connections",
            "RTMP connections accepted",
            m.rtmp_connections.clone(),
        );
        registry.register(
            "rtmp_errors",
            "RTMP connections closed on an error, by reason",
            m.rtmp_errors.clone(),
        );
        registry.register(
            "rtmp_refusals",
            "RTMP connections refused at accept, by reason (pending pool full, per-address cap)",
            m.rtmp_refusals.clone(),
        );
        registry.register(
            "srt_connections",
            "SRT callers accepted",
            m.srt_connections.clone(),
        );
        registry.register(
            "srt_errors",
            "SRT connections closed on an error, by reason",
            m.srt_errors.clone(),
        );
        registry.register(
            "srt_refusals",
            "SRT callers refused at the handshake, by reason (stream id, key, passphrase, busy, limits)",
            m.srt_refusals.clone(),
        );
        registry.register(
            "srt_ts_continuity_errors",
            "MPEG-TS continuity-counter jumps from SRT publishers (each drops the PES it damaged)",
            m.srt_ts_continuity_errors.clone(),
        );
        registry.register(
            "srt_ts_dropped_pes",
            "MPEG-TS PES packets dropped: damaged, oversized, or with a broken header or payload",
            m.srt_ts_dropped_pes.clone(),
        );
        registry.register(
            "srt_ts_unfinished_pes",
            "PES an SRT stream ended inside, not known complete (its tail unrepaired when the caller closed): dropped rather than served as a damaged frame",
            m.srt_ts_unfinished_pes.clone(),
        );
        registry.register(
            "srt_ts_resync_bytes",
            "Bytes skipped between MPEG-TS packets looking for a sync byte",
            m.srt_ts_resync_bytes.clone(),
        );
        registry.register(
            "srt_rtt_seconds",
            "SRT link round-trip time measured in the handshake, per live stream (srt-tokio 0.4 reports no running RTT)",
            m.srt_rtt_seconds.clone(),
        );
        registry.register(
            "srt_packets_received",
            "SRT data packets received (retransmissions included), per live stream",
            m.srt_packets_received.clone(),
        );
        registry.register(
            "srt_loss_reports",
            "SRT loss reports (NAKs) sent to the caller: each asks again for packets the link lost, per live stream",
            m.srt_loss_reports.clone(),
        );
        registry.register(
            "srt_packets_retransmitted",
            "SRT packets received again after a loss report, per live stream",
            m.srt_packets_retransmitted.clone(),
        );
        registry.register(
            "srt_packets_dropped",
            "SRT packets dropped as too late to repair (holes in the stream), per live stream",
            m.srt_packets_dropped.clone(),
        );
        registry.register(
            "srt_receive_buffer_seconds",
            "Media time waiting in the SRT receive buffer (acknowledged, not yet delivered), per live stream",
            m.srt_receive_buffer_seconds.clone(),
        );
        registry.register(
            "ingest_frames",
            "Access units received from publishers",
            m.ingest_frames.clone(),
        );
        registry.register(
            "ingest_skipped_tags",
            "FLV tags that carry no media (video command frames), skipped",
            m.ingest_skipped_tags.clone(),
        );
        registry.register(
            "ingest_clock_resets",
            "Publisher clocks that jumped back or far forward (each starts a new timeline)",
            m.ingest_clock_resets.clone(),
        );
        registry.register(
            "ingest_timestamp_repairs",
            "Video frames whose decode time stood still or stepped back, repaired",
            m.ingest_timestamp_repairs.clone(),
        );
        registry.register(
            "hub_dropped_events",
            "Events a slow consumer lost",
            m.hub_dropped_events.clone(),
        );
        registry.register(
            "live_streams",
            "Streams with a packager running",
            m.live_streams.clone(),
        );
        registry.register(
            "store_bytes",
            "Media bytes held in memory (every rendition, live and VOD), against hls.memory_budget_mb",
            m.store_bytes.clone(),
        );
        registry.register(
            "disk_bytes",
            "Media bytes in the disk tier (segments past hls.memory_window and ended sessions)",
            m.disk_bytes.clone(),
        );
        registry.register(
            "disk_errors",
            "Disk tier writes and deletes that failed since start (what could not be written stays in memory)",
            m.disk_errors.clone(),
        );
        registry.register(
            "vod_sessions",
            "Ended sessions kept as VOD, against hls.max_vod_sessions",
            m.vod_sessions.clone(),
        );
        registry.register(
            "vod_evictions",
            "Ended sessions removed before their hls.vod_keep, by reason (max_vod_sessions, memory_budget)",
            m.vod_evictions.clone(),
        );
        registry.register(
            "budget_trims",
            "Segments a live stream unlisted ahead of its DVR window, by the budget reached (stream_budget, memory_budget)",
            m.budget_trims.clone(),
        );
        registry.register("parts", "LL-HLS parts made", m.parts.clone());
        registry.register("segments", "Segments completed", m.segments.clone());
        registry.register(
            "segments_over_target",
            "Segments longer than TARGETDURATION: a rendition missed a cut (should stay 0)",
            m.segments_over_target.clone(),
        );
        registry.register(
            "packaging_errors",
            "Parts or inits the box writers could not produce",
            m.packaging_errors.clone(),
        );
        registry.register(
            "packager_panics",
            "Rendition packagers that failed and ended their stream",
            m.packager_panics.clone(),
        );
        registry.register(
            "part_ready_seconds",
            "From the newest frame of a part leaving the ingest socket to the part being servable",
            m.part_ready_seconds.clone(),
        );
        registry.register(
            "http_requests",
            "Origin responses by object class, status and the CDN the request came through",
            m.http_requests.clone(),
        );
        registry.register(
            "http_response_bytes",
            "Body bytes the origin sent (GET), by object class and CDN: its egress behind the CDN",
            m.http_bytes.clone(),
        );
        registry.register(
            "storage_reads",
            "Media objects the origin read to answer a request, by the tier that held them (memory or disk); a 304, 416 or HEAD reads none",
            m.storage_reads.clone(),
        );
        registry.register(
            "storage_read_bytes",
            "Media bytes the origin read, by tier (a range request reads only its range)",
            m.storage_read_bytes.clone(),
        );
        registry.register(
            "encoder_backend",
            "1 for the video encoder backend the ladder runs on (x264 or nvenc)",
            m.encoder_backend.clone(),
        );
        registry.register(
            "transcode_frame_path",
            "1 for where the ladder's frames are decoded and scaled: cpu, or cuda (NVDEC, scale_cuda, NVENC from GPU memory)",
            m.frame_path.clone(),
        );
        registry.register(
            "encoder_sessions",
            "Video encoders open now, by backend (one per rung of every live stream)",
            m.encoder_sessions.clone(),
        );
        registry.register(
            "transcode_latency_seconds",
            "From a source frame leaving the ingest socket to its encoded frame, per rendition",
            m.transcode_latency.clone(),
        );
        registry.register(
            "transcode_encode_latency_seconds",
            "From a decoded source frame to its encoded frame, per rendition: scale, queue and encode, without the source's B-frame reorder delay",
            m.transcode_encode_latency.clone(),
        );
        registry.register(
            "transcode_errors",
            "Packets or frames the decoder, scaler or encoder refused",
            m.transcode_errors.clone(),
        );
        registry.register(
            "ladder_fallbacks",
            "Streams served as published because the ladder could not run, by reason",
            m.ladder_fallbacks.clone(),
        );
        registry.register(
            "segments_without_keyframe",
            "Passthrough segments cut between keyframes (the source's keyframe interval is longer than hls.max_segment_duration)",
            m.segments_without_keyframe.clone(),
        );
        registry.register(
            "publishes",
            "Streams that went live (a reconnect within the grace period is not a new one), by protocol",
            m.publishes.clone(),
        );
        registry.register(
            "reconnects",
            "Publishers that continued a stream (a reconnect within ingest.reconnect_grace, or a takeover of a silent one), by protocol",
            m.reconnects.clone(),
        );
        registry.register(
            "transcode_dropped_frames",
            "Decoded frames a rung did not encode (after its encoder restarted, until the next cut), by rendition; frame-rate caps not counted",
            m.transcode_dropped_frames.clone(),
        );
        registry.register(
            "ingest_bytes",
            "Media bytes received from publishers",
            m.ingest_bytes.clone(),
        );
        registry.register(
            "ingest_bytes_per_second",
            "Media bytes per second each live stream's publisher sends (last second; ×8 for its bit rate)",
            m.ingest_bytes_per_second.clone(),
        );
        registry.register(
            "ingest_frames_per_second",
            "Access units (video frames and audio frames) per second each live stream's publisher sends",
            m.ingest_frames_per_second.clone(),
        );
        registry.register(
            "blocked_requests",
            "LL-HLS requests held now, waiting for their part, segment or playlist",
            m.blocked_requests.clone(),
        );
        registry.register(
            "http_connections",
            "Origin connections open now (at most origin.max_connections)",
            m.http_connections.clone(),
        );
        registry.register(
            "http_refusals",
            "Origin connections closed at once, by reason: max_connections (the origin is full) or per_address (origin.max_connections_per_address)",
            m.http_refusals.clone(),
        );
        registry.register(
            "tcp_listen_overflows",
            "Connections the kernel dropped in their handshake since castline started, because a listener's accept queue was full (TcpExtListenOverflows of castline's network namespace): a join burst past origin.listen_backlog or net.core.somaxconn",
            m.tcp_listen_overflows.clone(),
        );
        registry.register(
            "capacity_utilization",
            "The highest of the capacity ratios: what to scale ingest pods on (1 = full; see README)",
            m.capacity_utilization.clone(),
        );
        registry.register(
            "capacity_ratio",
            "Each resource that can run out, used against its limit (cpu, streams, encoder_sessions, ingest_bitrate, egress, memory)",
            m.capacity_ratio.clone(),
        );
        registry.register(
            "desired_capacity",
            "Capacity utilization to plan for: the current one, raised ahead of scheduled events (limits.prewarm)",
            m.desired_capacity.clone(),
        );
        registry.register(
            "draining",
            "1 while the server drains (after SIGTERM)",
            m.draining.clone(),
        );
        registry.register(
            "pipeline_queue_events",
            "Events waiting in each live stream's hub queue for its pipeline (1,024 at most; past it the oldest are dropped)",
            m.pipeline_queue_events.clone(),
        );
        registry.register(
            "pipeline_speed",
            "Seconds of source video each live stream's pipeline (transcode included) takes in per second, over 5 s: below 1 it falls behind real time",
            m.pipeline_speed.clone(),
        );
        registry.register(
            "slate_seconds",
            "Seconds each stream showed the slate (its input silent or gone, within the reconnect grace)",
            m.slate_seconds.clone(),
        );
        registry.register(
            "input_active",
            "1 for the input each stream serves now: primary, backup (?backup=1) or slate (no input)",
            m.input_active.clone(),
        );
        registry.register(
            "input_switches",
            "Switches of a stream's input, by reason: input_lost (to the other input), failback (back to the primary), slate (no input left), input_back (from the slate)",
            m.input_switches.clone(),
        );
        registry.register(
            "viewers",
            "Distinct client addresses the origin answered for each stream over the last 1-2 minutes (behind a CDN: its edge servers, not people)",
            m.viewers.clone(),
        );
        registry.register(
            "push_latency_seconds",
            "Ingest: from an object made to its push answered by each origin (role ingest)",
            m.push_latency_seconds.clone(),
        );
        registry.register(
            "push_bytes",
            "Ingest: body bytes pushed to each origin",
            m.push_bytes.clone(),
        );
        registry.register(
            "push_objects",
            "Ingest: pushes each origin took (objects, segment ends, session events)",
            m.push_objects.clone(),
        );
        registry.register(
            "push_resyncs",
            "Ingest: times an origin was sent every live stream's window again (it appeared, fell a queue behind, or lost its connection)",
            m.push_resyncs.clone(),
        );
        registry.register(
            "push_refused",
            "Ingest: pushes an origin refused, by reason",
            m.push_refused.clone(),
        );
        registry.register(
            "push_origins",
            "Ingest: origins pushed to now (after discovery)",
            m.push_origins.clone(),
        );
        registry.register(
            "pushes_received",
            "Origin: pushes taken, stored or a duplicate of what is stored",
            m.pushes_received.clone(),
        );
        registry.register(
            "pushes_rejected",
            "Origin: pushes refused, by reason",
            m.pushes_rejected.clone(),
        );
        registry.register(
            "pushed_streams",
            "Origin: live sessions fed by pushes",
            m.pushed_streams.clone(),
        );
        registry.register(
            "push_last_timestamp_seconds",
            "Origin: when each live stream's last push was taken (Unix time; its age is time() minus this)",
            m.push_last_timestamp.clone(),
        );
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

/// The same samples in the Prometheus text format: a counter's HELP and TYPE
/// name its `_total` series (OpenMetrics names the family without it), and
/// there is no `# EOF` or `# UNIT`. prometheus-client writes OpenMetrics
/// only; this is the one difference we need, not a second encoder.
pub fn openmetrics_to_prometheus(text: &str) -> String {
    let counters: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((p, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let name = if counters.contains(name) {
                    format!("{name}_total")
                } else {
                    name.to_string()
                };
                out.push_str(&format!("{p}{name} {tail}"));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn openmetrics_counters_get_their_total_name_and_eof_goes() {
        let om = "# HELP castline_parts Parts.\n# TYPE castline_parts counter\ncastline_parts_total 3\n\
# HELP castline_live_streams Live.\n# TYPE castline_live_streams gauge\ncastline_live_streams 1\n# EOF\n";
        assert_eq!(
            super::openmetrics_to_prometheus(om),
            "# HELP castline_parts_total Parts.\n# TYPE castline_parts_total counter\ncastline_parts_total 3\n\
# HELP castline_live_streams Live.\n# TYPE castline_live_streams gauge\ncastline_live_streams 1\n"
        );
    }
}
