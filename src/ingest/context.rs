//! What every ingest front-end shares: the hub, the keys, admission, limits,
//! metrics and the log limiter. Built once by the composition root.

use std::sync::Arc;
use std::time::Duration;

use crate::hub::{Hub, HubError, Publisher};
use crate::ingest::admission::Admission;
use crate::ingest::auth::StreamKeys;
use crate::ingest::timeline::DemuxEvent;
use crate::log_limit::LogLimiter;
use crate::metrics::Metrics;
use crate::metrics::ReasonLabel;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

pub struct IngestContext {
    pub hub: Arc<Hub>,
    pub keys: StreamKeys,
    /// RTMP's application name (`rtmp://HOST/{app}/KEY`).
    pub app: String,
    pub metrics: Arc<Metrics>,
    pub handshake_timeout: Duration,
    /// From accept to an accepted publish: an unpublished connection holds a
    /// pending slot for at most this long.
    pub publish_timeout: Duration,
    pub idle_timeout: Duration,
    /// A forward step of the publisher's clock past this starts a new timeline.
    pub max_timestamp_jump: Duration,
    pub admission: Arc<Admission>,
    /// Why a new stream cannot be taken now, if so: (reason label, what the
    /// publisher is told). The memory budget and the limits (`capacity.rs`).
    pub capacity: Box<dyn Fn() -> Option<(&'static str, String)> + Send + Sync>,
    /// Keeps lines about refused or misbehaving clients to a few per period.
    pub log_limiter: LogLimiter,
    /// Printed when a stream goes live, e.g. `http://HOST:8080`.
    pub playback_base: String,
    /// Every ingest connection's task (RTMP and SRT): the `Lifecycle`'s one
    /// connection tracker, so shutdown waits for them with the HTTP ones.
    pub tasks: tokio_util::task::TaskTracker,
}

impl IngestContext {
    /// Say that a stream went live: a log line, and the playback URL on
    /// stdout for people and scripts (written off the async path: a blocked
    /// stdout must not stall ingest).
    pub fn announce_live(
        &self,
        peer: std::net::SocketAddr,
        publisher: &crate::hub::Publisher,
        protocol: &str,
    ) {
        let label = crate::metrics::ProtocolLabel {
            protocol: if protocol == "SRT" { "srt" } else { "rtmp" },
        };
        // A stream that goes on is not a new publish.
        if publisher.resumes() {
            self.metrics.reconnects.get_or_create(&label).inc();
        } else {
            self.metrics.publishes.get_or_create(&label).inc();
        }
        let stream = publisher.name();
        let url = format!("{}/live/{}/index.m3u8", self.playback_base, stream);
        tracing::info!(%peer, stream, protocol, "publishing; playback at {url}");
        let line = format!("live: {url}");
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let _ = writeln!(std::io::stdout(), "{line}");
        });
    }
}

impl IngestContext {
    /// Hand a demuxer's events to the stream's publisher.
    pub fn forward(
        &self,
        publisher: &mut Publisher,
        events: Vec<DemuxEvent>,
    ) -> Result<(), HubError> {
        for e in events {
            match e {
                DemuxEvent::Tracks(info) => {
                    tracing::info!(stream = publisher.name(), codecs = %info.codecs(), "tracks");
                    publisher.send_tracks(info)
                }
                DemuxEvent::Media(au) => {
                    self.metrics.ingest_frames.inc();
                    self.metrics.ingest_bytes.inc_by(au.data.len() as u64);
                    publisher.send_media(au)?;
                }
            }
        }
        Ok(())
    }

    /// Count the clock resets (each starts a new timeline) and repaired
    /// decode times a demuxer saw since it was last asked, and say so in the
    /// log (rate-limited).
    pub fn count_clock(&self, peer: std::net::SocketAddr, new_resets: u64, new_repairs: u64) {
        self.metrics.ingest_clock_resets.inc_by(new_resets);
        self.metrics.ingest_timestamp_repairs.inc_by(new_repairs);
        if new_resets > 0 {
            if let Some(held_back) = self
                .log_limiter
                .allow("clock_reset", std::time::Instant::now())
            {
                tracing::warn!(%peer, held_back, "the publisher's clock jumped; a new timeline starts (EXT-X-DISCONTINUITY)");
            }
        }
    }

    /// Count a refused or failed connection under its reason, and log it
    /// (rate-limited per reason: a client that retries in a loop cannot
    /// flood the log).
    pub fn count_failure(
        &self,
        counter: &Family<ReasonLabel, Counter>,
        reason: &'static str,
        peer: std::net::SocketAddr,
        error: &dyn std::fmt::Display,
        what: &str,
    ) {
        counter
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
        if let Some(held_back) = self.log_limiter.allow(reason, std::time::Instant::now()) {
            tracing::warn!(%peer, error = %error, held_back, "{what}");
        }
    }
}
