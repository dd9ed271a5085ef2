//! Each metric's name and help, registered by area (names are an API:
//! dashboards and alerts use them; do not rename).

use prometheus_client::registry::Registry;

use super::Metrics;

/// RTMP and SRT connections, the demuxers, the hub.
pub(super) fn ingest(r: &mut Registry, m: &Metrics) {
    r.register(
        "rtmp_connections",
        "RTMP connections accepted",
        m.rtmp_connections.clone(),
    );
    r.register(
        "rtmp_errors",
        "RTMP connections closed on an error, by reason",
        m.rtmp_errors.clone(),
    );
    r.register(
        "rtmp_refusals",
        "RTMP connections refused at accept, by reason (pending pool full, per-address cap)",
        m.rtmp_refusals.clone(),
    );
    r.register(
        "srt_connections",
        "SRT callers accepted",
        m.srt_connections.clone(),
    );
    r.register(
        "srt_errors",
        "SRT connections closed on an error, by reason",
        m.srt_errors.clone(),
    );
    r.register(
        "srt_refusals",
        "SRT callers refused at the handshake, by reason (stream id, key, passphrase, busy, limits)",
        m.srt_refusals.clone(),
    );
    r.register(
        "srt_ts_continuity_errors",
        "MPEG-TS continuity-counter jumps from SRT publishers (each drops the PES it damaged)",
        m.srt_ts_continuity_errors.clone(),
    );
    r.register(
        "srt_ts_dropped_pes",
        "MPEG-TS PES packets dropped: damaged, oversized, or with a broken header or payload",
        m.srt_ts_dropped_pes.clone(),
    );
    r.register(
        "srt_ts_unfinished_pes",
        "PES an SRT stream ended inside, not known complete (its tail unrepaired when the caller closed): dropped rather than served as a damaged frame",
        m.srt_ts_unfinished_pes.clone(),
    );
    r.register(
        "srt_ts_resync_bytes",
        "Bytes skipped between MPEG-TS packets looking for a sync byte",
        m.srt_ts_resync_bytes.clone(),
    );
    r.register(
        "srt_rtt_seconds",
        "SRT link round-trip time measured in the handshake, per live stream (srt-tokio 0.4 reports no running RTT)",
        m.srt_rtt_seconds.clone(),
    );
    r.register(
        "srt_packets_received",
        "SRT data packets received (retransmissions included), per live stream",
        m.srt_packets_received.clone(),
    );
    r.register(
        "srt_loss_reports",
        "SRT loss reports (NAKs) sent to the caller: each asks again for packets the link lost, per live stream",
        m.srt_loss_reports.clone(),
    );
    r.register(
        "srt_packets_retransmitted",
        "SRT packets received again after a loss report, per live stream",
        m.srt_packets_retransmitted.clone(),
    );
    r.register(
        "srt_packets_dropped",
        "SRT packets dropped as too late to repair (holes in the stream), per live stream",
        m.srt_packets_dropped.clone(),
    );
    r.register(
        "srt_receive_buffer_seconds",
        "Media time waiting in the SRT receive buffer (acknowledged, not yet delivered), per live stream",
        m.srt_receive_buffer_seconds.clone(),
    );
    r.register(
        "ingest_frames",
        "Access units received from publishers",
        m.ingest_frames.clone(),
    );
    r.register(
        "ingest_skipped_tags",
        "FLV tags that carry no media (video command frames), skipped",
        m.ingest_skipped_tags.clone(),
    );
    r.register(
        "ingest_clock_resets",
        "Publisher clocks that jumped back or far forward (each starts a new timeline)",
        m.ingest_clock_resets.clone(),
    );
    r.register(
        "ingest_timestamp_repairs",
        "Video frames whose decode time stood still or stepped back, repaired",
        m.ingest_timestamp_repairs.clone(),
    );
    r.register(
        "hub_dropped_events",
        "Events a slow consumer lost",
        m.hub_dropped_events.clone(),
    );
    r.register(
        "publishes",
        "Streams that went live (a reconnect within the grace period is not a new one), by protocol",
        m.publishes.clone(),
    );
    r.register(
        "reconnects",
        "Publishers that continued a stream (a reconnect within ingest.reconnect_grace, or a takeover of a silent one), by protocol",
        m.reconnects.clone(),
    );
    r.register(
        "ingest_bytes",
        "Media bytes received from publishers",
        m.ingest_bytes.clone(),
    );
    r.register(
        "ingest_bytes_per_second",
        "Media bytes per second each live stream's publisher sends (last second; ×8 for its bit rate)",
        m.ingest_bytes_per_second.clone(),
    );
    r.register(
        "ingest_frames_per_second",
        "Access units (video frames and audio frames) per second each live stream's publisher sends",
        m.ingest_frames_per_second.clone(),
    );
}

/// Packaging and the store: parts, segments, memory and disk.
pub(super) fn store(r: &mut Registry, m: &Metrics) {
    r.register(
        "store_bytes",
        "Media bytes held in memory (every rendition, live and VOD), against hls.memory_budget_mb",
        m.store_bytes.clone(),
    );
    r.register(
        "disk_bytes",
        "Media bytes in the disk tier (segments past hls.memory_window and ended sessions)",
        m.disk_bytes.clone(),
    );
    r.register(
        "disk_errors",
        "Disk tier writes and deletes that failed since start (what could not be written stays in memory)",
        m.disk_errors.clone(),
    );
    r.register(
        "vod_sessions",
        "Ended sessions kept as VOD, against hls.max_vod_sessions",
        m.vod_sessions.clone(),
    );
    r.register(
        "vod_evictions",
        "Ended sessions removed before their hls.vod_keep, by reason (max_vod_sessions, memory_budget)",
        m.vod_evictions.clone(),
    );
    r.register(
        "budget_trims",
        "Segments a live stream unlisted ahead of its DVR window, by the budget reached (stream_budget, memory_budget)",
        m.budget_trims.clone(),
    );
    r.register("parts", "LL-HLS parts made", m.parts.clone());
    r.register("segments", "Segments completed", m.segments.clone());
    r.register(
        "segments_over_target",
        "Segments longer than TARGETDURATION: a rendition missed a cut (should stay 0)",
        m.segments_over_target.clone(),
    );
    r.register(
        "packaging_errors",
        "Parts or inits the box writers could not produce",
        m.packaging_errors.clone(),
    );
    r.register(
        "packager_panics",
        "Rendition packagers that failed and ended their stream",
        m.packager_panics.clone(),
    );
    r.register(
        "part_ready_seconds",
        "From the newest frame of a part leaving the ingest socket to the part being servable",
        m.part_ready_seconds.clone(),
    );
    r.register(
        "segments_without_keyframe",
        "Passthrough segments cut between keyframes (the source's keyframe interval is longer than hls.max_segment_duration)",
        m.segments_without_keyframe.clone(),
    );
}

/// The HTTP origin: requests, bytes, connections, viewers.
pub(super) fn origin(r: &mut Registry, m: &Metrics) {
    r.register(
        "http_requests",
        "Origin responses by object class, status and the CDN the request came through",
        m.http_requests.clone(),
    );
    r.register(
        "http_response_bytes",
        "Body bytes the origin sent (GET), by object class and CDN: its egress behind the CDN",
        m.http_bytes.clone(),
    );
    r.register(
        "storage_reads",
        "Media objects the origin read to answer a request, by the tier that held them (memory or disk); a 304, 416 or HEAD reads none",
        m.storage_reads.clone(),
    );
    r.register(
        "storage_read_bytes",
        "Media bytes the origin read, by tier (a range request reads only its range)",
        m.storage_read_bytes.clone(),
    );
    r.register(
        "blocked_requests",
        "LL-HLS requests held now, waiting for their part, segment or playlist",
        m.blocked_requests.clone(),
    );
    r.register(
        "http_connections",
        "Origin connections open now (at most origin.max_connections)",
        m.http_connections.clone(),
    );
    r.register(
        "http_refusals",
        "Origin connections closed at once, by reason: max_connections (the origin is full) or per_address (origin.max_connections_per_address)",
        m.http_refusals.clone(),
    );
    r.register(
        "tcp_listen_overflows",
        "Connections the kernel dropped in their handshake since castline started, because a listener's accept queue was full (TcpExtListenOverflows of castline's network namespace): a join burst past origin.listen_backlog or net.core.somaxconn",
        m.tcp_listen_overflows.clone(),
    );
    r.register(
        "viewers",
        "Distinct client addresses the origin answered for each stream over the last 1-2 minutes (behind a CDN: its edge servers, not people)",
        m.viewers.clone(),
    );
}

/// The ladder, the pipeline, a stream's inputs and slate.
pub(super) fn pipeline(r: &mut Registry, m: &Metrics) {
    r.register(
        "encoder_backend",
        "1 for the video encoder backend the ladder runs on (x264 or nvenc)",
        m.encoder_backend.clone(),
    );
    r.register(
        "transcode_frame_path",
        "1 for where the ladder's frames are decoded and scaled: cpu, or cuda (NVDEC, scale_cuda, NVENC from GPU memory)",
        m.frame_path.clone(),
    );
    r.register(
        "encoder_sessions",
        "Video encoders open now, by backend (one per rung of every live stream)",
        m.encoder_sessions.clone(),
    );
    r.register(
        "transcode_latency_seconds",
        "From a source frame leaving the ingest socket to its encoded frame, per rendition",
        m.transcode_latency.clone(),
    );
    r.register(
        "transcode_encode_latency_seconds",
        "From a decoded source frame to its encoded frame, per rendition: scale, queue and encode, without the source's B-frame reorder delay",
        m.transcode_encode_latency.clone(),
    );
    r.register(
        "transcode_errors",
        "Packets or frames the decoder, scaler or encoder refused",
        m.transcode_errors.clone(),
    );
    r.register(
        "ladder_fallbacks",
        "Streams served as published because the ladder could not run, by reason",
        m.ladder_fallbacks.clone(),
    );
    r.register(
        "transcode_dropped_frames",
        "Decoded frames a rung did not encode (after its encoder restarted, until the next cut), by rendition; frame-rate caps not counted",
        m.transcode_dropped_frames.clone(),
    );
    r.register(
        "pipeline_queue_events",
        "Events waiting in each live stream's hub queue for its pipeline (1,024 at most; past it the oldest are dropped)",
        m.pipeline_queue_events.clone(),
    );
    r.register(
        "pipeline_speed",
        "Seconds of source video each live stream's pipeline (transcode included) takes in per second, over 5 s: below 1 it falls behind real time",
        m.pipeline_speed.clone(),
    );
    r.register(
        "slate_seconds",
        "Seconds each stream showed the slate (its input silent or gone, within the reconnect grace)",
        m.slate_seconds.clone(),
    );
    r.register(
        "input_active",
        "1 for the input each stream serves now: primary, backup (?backup=1) or slate (no input)",
        m.input_active.clone(),
    );
    r.register(
        "input_switches",
        "Switches of a stream's input, by reason: input_lost (to the other input), failback (back to the primary), slate (no input left), input_back (from the slate)",
        m.input_switches.clone(),
    );
}

/// Load against limits, for the autoscaler.
pub(super) fn capacity(r: &mut Registry, m: &Metrics) {
    r.register(
        "live_streams",
        "Streams with a packager running",
        m.live_streams.clone(),
    );
    r.register(
        "capacity_utilization",
        "The highest of the capacity ratios: what to scale ingest pods on (1 = full; see README)",
        m.capacity_utilization.clone(),
    );
    r.register(
        "capacity_ratio",
        "Each resource that can run out, used against its limit (cpu, streams, encoder_sessions, ingest_bitrate, egress, memory)",
        m.capacity_ratio.clone(),
    );
    r.register(
        "desired_capacity",
        "Capacity utilization to plan for: the current one, raised ahead of scheduled events (limits.prewarm)",
        m.desired_capacity.clone(),
    );
    r.register(
        "draining",
        "1 while the server drains (after SIGTERM)",
        m.draining.clone(),
    );
}

/// The origin tier: pushes sent (ingest pods) and taken (origins).
pub(super) fn push(r: &mut Registry, m: &Metrics) {
    r.register(
        "push_latency_seconds",
        "Ingest: from an object made to its push answered by each origin (role ingest)",
        m.push_latency_seconds.clone(),
    );
    r.register(
        "push_bytes",
        "Ingest: body bytes pushed to each origin",
        m.push_bytes.clone(),
    );
    r.register(
        "push_objects",
        "Ingest: pushes each origin took (objects, segment ends, session events)",
        m.push_objects.clone(),
    );
    r.register(
        "push_resyncs",
        "Ingest: times an origin was sent every live stream's window again (it appeared, fell a queue behind, or lost its connection)",
        m.push_resyncs.clone(),
    );
    r.register(
        "push_refused",
        "Ingest: pushes an origin refused, by reason",
        m.push_refused.clone(),
    );
    r.register(
        "push_origins",
        "Ingest: origins pushed to now (after discovery)",
        m.push_origins.clone(),
    );
    r.register(
        "pushes_received",
        "Origin: pushes taken, stored or a duplicate of what is stored",
        m.pushes_received.clone(),
    );
    r.register(
        "pushes_rejected",
        "Origin: pushes refused, by reason",
        m.pushes_rejected.clone(),
    );
    r.register(
        "pushed_streams",
        "Origin: live sessions fed by pushes",
        m.pushed_streams.clone(),
    );
    r.register(
        "push_last_timestamp_seconds",
        "Origin: when each live stream's last push was taken (Unix time; its age is time() minus this)",
        m.push_last_timestamp.clone(),
    );
}
