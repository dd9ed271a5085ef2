//! The SRT listener: one UDP port, many callers. Each caller is decided in
//! the handshake (stream id, key, encryption, admission, whether its stream
//! is free), then publishes MPEG-TS to the hub exactly as an RTMP publisher
//! sends FLV: the same [`crate::hub::Publisher`], the same stream life
//! (reconnect within the grace period, takeover of a silent publisher, SRT
//! shutdown ends the stream).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use srt_protocol::settings::{KeySettings, Passphrase};
use srt_tokio::access::{RejectReason, ServerRejectReason};
use srt_tokio::options::KeySize;
use srt_tokio::{ConnectionRequest, SocketStatistics, SrtIncoming, SrtListener, SrtSocket};
use tokio_util::sync::CancellationToken;

use super::demux::{DemuxCounts, DemuxError, Demuxer};
use super::guard;
use super::stream_id::{self, StreamIdError};
use crate::hub::{Claimed, HubError, Input, Kick, Publisher};
use crate::ingest::admission::{PublisherSlot, Refusal};
use crate::ingest::auth::AuthError;
use crate::ingest::context::IngestContext;
use crate::metrics::StreamLabel;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// The SRT side of the configuration.
#[derive(Debug, Clone)]
pub struct SrtSettings {
    pub passphrase: Option<String>,
    pub latency: Duration,
    pub peer_idle_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SrtError {
    #[error("refused: {0}")]
    StreamId(#[from] StreamIdError),
    #[error("publish refused: {0}")]
    Auth(#[from] AuthError),
    #[error("publish refused: {0}")]
    Busy(#[from] HubError),
    #[error("publish refused: {0}")]
    Admission(Refusal),
    #[error("publish refused: {1}")]
    AtCapacity(&'static str, String),
    #[error("the caller asks for AES-{0} encryption; this server has no srt.passphrase")]
    UnwantedEncryption(usize),
    #[error("handshake failed (a wrong or missing passphrase?): {0}")]
    Handshake(io::Error),
    #[error("bad media from publisher: {0}")]
    Demux(#[from] DemuxError),
    #[error("no media for {0:?}")]
    Idle(Duration),
    #[error("another connection took the stream over after this one went silent")]
    TakenOver,
    #[error("the server is draining and the drain timeout passed: publish to another instance")]
    Drained,
    #[error("publish refused: another ingest pod already feeds this stream on the origins")]
    LiveElsewhere,
}

impl SrtError {
    pub fn reason(&self) -> &'static str {
        match self {
            SrtError::StreamId(StreamIdError::NotPublish(_)) => "playback",
            SrtError::StreamId(_) => "stream_id",
            SrtError::Auth(_) => "auth",
            SrtError::Busy(HubError::QueueBytes { .. }) => "queue_bytes",
            SrtError::Busy(HubError::Draining) => "draining",
            SrtError::Busy(HubError::StillSending(_)) => "still_sending",
            SrtError::Busy(HubError::TakeoverPending(_)) => "takeover_pending",
            SrtError::Busy(HubError::NoPrimary(_)) => "no_primary",
            SrtError::Busy(_) => "already_live",
            SrtError::Admission(r) => r.reason(),
            SrtError::AtCapacity(reason, _) => reason,
            SrtError::UnwantedEncryption(_) => "encryption",
            SrtError::Handshake(_) => "handshake",
            SrtError::Demux(_) => "media",
            SrtError::Idle(_) => "idle",
            SrtError::TakenOver => "taken_over",
            SrtError::LiveElsewhere => "live_elsewhere",
            SrtError::Drained => "drained",
        }
    }

    /// The code a refused caller is told (SRT's access-control reject codes).
    fn reject_reason(&self) -> RejectReason {
        RejectReason::Server(match self {
            SrtError::StreamId(StreamIdError::NotPublish(_)) => ServerRejectReason::BadMode,
            SrtError::Auth(AuthError::UnknownKey) => ServerRejectReason::Forbidden,
            SrtError::Busy(HubError::Draining) => ServerRejectReason::Down,
            SrtError::Busy(_) => ServerRejectReason::Conflict,
            SrtError::Admission(_) | SrtError::AtCapacity(..) => ServerRejectReason::Overload,
            SrtError::UnwantedEncryption(_) => ServerRejectReason::KeyNotSup,
            _ => ServerRejectReason::BadRequest,
        })
    }
}

pub struct SrtIngest {
    listener: SrtListener,
    incoming: SrtIncoming,
    pub local_addr: SocketAddr,
    ctx: Arc<IngestContext>,
    settings: Arc<SrtSettings>,
}

/// The UDP socket's receive buffer: a few hundred milliseconds of a
/// contribution feed, so a busy moment does not drop datagrams SRT must
/// then retransmit (the kernel caps it at `net.core.rmem_max`).
const UDP_RECEIVE_BUFFER: usize = 8 * 1024 * 1024;

impl SrtIngest {
    pub async fn bind(
        addr: SocketAddr,
        settings: SrtSettings,
        ctx: Arc<IngestContext>,
    ) -> io::Result<SrtIngest> {
        let domain = if addr.is_ipv4() {
            socket2::Domain::IPV4
        } else {
            socket2::Domain::IPV6
        };
        let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, None)?;
        socket.set_nonblocking(true)?;
        let _ = socket.set_recv_buffer_size(UDP_RECEIVE_BUFFER);
        socket.bind(&addr.into())?;
        guard::attach(&socket, settings.passphrase.is_some())?;
        let socket = tokio::net::UdpSocket::from_std(socket.into())?;
        let local_addr = socket.local_addr()?;
        let (latency, idle) = (settings.latency, settings.peer_idle_timeout);
        let (listener, incoming) = SrtListener::builder()
            .latency(latency)
            .set(|o| o.session.peer_idle_timeout = idle)
            .socket(socket)
            .bind(local_addr)
            .await?;
        Ok(SrtIngest {
            listener,
            incoming,
            local_addr,
            ctx,
            settings: Arc::new(settings),
        })
    }

    /// Take callers until `stop` (the [`crate::lifecycle::Lifecycle`]'s `accept`).
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            let request = tokio::select! {
                r = self.incoming.incoming().next() => r,
                _ = stop.cancelled() => break,
            };
            let Some(request) = request else {
                // srt-tokio's listener task ended (it panicked?): SRT ingest is down.
                tracing::error!("the SRT listener stopped; SRT callers are no longer taken");
                break;
            };
            let (ctx, settings) = (self.ctx.clone(), self.settings.clone());
            self.ctx.tasks.spawn(async move {
                let peer = request.remote();
                let result = serve(request, ctx.clone(), settings).await;
                report(&ctx, peer, result);
            });
        }
        self.listener.close().await;
    }
}

/// Decide a caller in its handshake; accept, then publish until it ends.
async fn serve(
    request: ConnectionRequest,
    ctx: Arc<IngestContext>,
    settings: Arc<SrtSettings>,
) -> Result<Outcome, SrtError> {
    let peer = request.remote();
    let decided = decide(&request, &ctx, &settings);
    let (name, input, _slot) = match decided {
        Ok(x) => x,
        Err(e) => {
            let refusals = &ctx.metrics.srt_refusals;
            ctx.count_failure(refusals, e.reason(), peer, &e, "SRT caller refused");
            let _ = request.reject(e.reject_reason()).await;
            return Ok(Outcome::Refused);
        }
    };
    // The caller's key length (pbkeylen) is taken as it asks: srt-protocol
    // panics when the two sides' differ.
    let keys = settings.passphrase.as_ref().map(|p| KeySettings {
        key_size: request.key_size(),
        passphrase: Passphrase::from(p.as_str()),
    });
    let socket = request.accept(keys).await.map_err(SrtError::Handshake)?;
    ctx.metrics.srt_connections.inc();
    // Claimed only now, after the passphrase has been checked: a caller that
    // fails it never touches the stream.
    // A claim that must wait for the live publisher's takeover time waits
    // here, connected, and is then taken over or refused.
    let publisher = match ctx.hub.claim_or_hold(&name, input)? {
        Claimed::Now(p) => p,
        Claimed::Held(hold) => hold.wait().await?,
    };
    ctx.announce_live(peer, &publisher, "SRT");
    let demuxer = Demuxer::with_max_jump(ctx.max_timestamp_jump.as_millis() as i64);
    Session {
        ctx,
        peer,
        settings,
        label: StreamLabel {
            stream: name.clone(),
        },
        demuxer,
        counted: DemuxCounts::default(),
        link: SocketStatistics::default(),
    }
    .run(socket, publisher)
    .await
    .map(|()| Outcome::Closed)
}

/// How a caller's connection went, when not on an error.
enum Outcome {
    /// Refused in the handshake (counted and logged there).
    Refused,
    Closed,
}

/// The stream a caller may publish to, and its publisher slot, or why not.
fn decide(
    request: &ConnectionRequest,
    ctx: &IngestContext,
    settings: &SrtSettings,
) -> Result<(String, Input, PublisherSlot), SrtError> {
    let pending = ctx
        .admission
        .admit(request.remote().ip())
        .map_err(SrtError::Admission)?;
    let id = request
        .stream_id()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let key = stream_id::publish_key(&id)?;
    let name = ctx.keys.resolve(&key)?;
    let input = crate::ingest::auth::input_of(&key);
    if settings.passphrase.is_none() && request.key_size() != KeySize::Unspecified {
        return Err(SrtError::UnwantedEncryption(
            request.key_size().as_usize() * 8,
        ));
    }
    let slot = pending
        .promote()
        .map_err(|(_, why)| SrtError::Admission(why))?;
    if !ctx.hub.open_stream_names().contains(&name) {
        if let Some(why) = (ctx.capacity)() {
            return Err(SrtError::AtCapacity(why.0, why.1));
        }
    }
    ctx.hub.check_claim(&name, input)?;
    Ok((name, input, slot))
}

struct Session {
    ctx: Arc<IngestContext>,
    peer: SocketAddr,
    settings: Arc<SrtSettings>,
    label: StreamLabel,
    demuxer: Demuxer,
    /// Demux counts already added to the metrics.
    counted: DemuxCounts,
    /// Link statistics already added to the metrics.
    link: SocketStatistics,
}

impl Session {
    async fn run(
        mut self,
        mut socket: SrtSocket,
        mut publisher: Publisher,
    ) -> Result<(), SrtError> {
        let idle = self.ctx.idle_timeout;
        let rtt = socket.settings().rtt.as_secs_f64();
        self.ctx
            .metrics
            .srt_rtt_seconds
            .get_or_create(&self.label)
            .set(rtt);
        let mut stats = socket.statistics().clone();
        let mut last_data = Instant::now();
        enum Next {
            Data(bytes::Bytes),
            Stats(Box<SocketStatistics>),
            Ended,
            Idle,
            Kicked(Kick),
        }
        let result = loop {
            let next = tokio::select! {
                msg = tokio::time::timeout(idle, socket.next()) => match msg {
                    Err(_) => Next::Idle,
                    Ok(Some(Ok((_, data)))) => Next::Data(data),
                    // The link failed or the caller shut it down.
                    Ok(Some(Err(_))) | Ok(None) => Next::Ended,
                },
                Some(s) = stats.next() => Next::Stats(Box::new(s)),
                kick = publisher.taken_over() => Next::Kicked(kick),
            };
            match next {
                Next::Data(data) => {
                    last_data = Instant::now();
                    let events = self.demuxer.push(&data, last_data);
                    self.count();
                    if let Err(e) = events
                        .map_err(SrtError::from)
                        .and_then(|ev| Ok(self.ctx.forward(&mut publisher, ev)?))
                    {
                        break Err(e);
                    }
                }
                Next::Stats(s) => self.on_statistics(&s),
                Next::Ended => break Ok(()),
                Next::Idle => break Err(SrtError::Idle(idle)),
                Next::Kicked(Kick::LiveElsewhere) => break Err(SrtError::LiveElsewhere),
                Next::Kicked(_) if self.ctx.hub.is_draining() => break Err(SrtError::Drained),
                Next::Kicked(_) => break Err(SrtError::TakenOver),
            }
        };
        let taken_over = matches!(result, Err(SrtError::TakenOver));
        if !taken_over {
            self.remove_link_metrics();
        }
        if result.is_ok() {
            let events = self.demuxer.finish();
            self.count();
            self.ctx.forward(&mut publisher, events)?;
            // srt-tokio ends the stream the same way on a shutdown and on a
            // link timeout; the timing tells them apart. A caller that shut
            // down sent data until just now; a lost one went silent for the
            // whole peer idle timeout.
            if last_data.elapsed() < self.settings.peer_idle_timeout / 2 {
                tracing::info!(
                    stream = publisher.name(),
                    "SRT caller shut down; the stream ends"
                );
                publisher.finish();
            } else {
                tracing::info!(
                    stream = publisher.name(),
                    "SRT link lost; waiting for a reconnect"
                );
            }
        }
        result
    }

    /// Add what the demuxer counted since last time to the metrics.
    fn count(&mut self) {
        let now = self.demuxer.counts();
        let before = std::mem::replace(&mut self.counted, now);
        let m = &self.ctx.metrics;
        m.srt_ts_continuity_errors
            .inc_by(now.ts.continuity_errors - before.ts.continuity_errors);
        m.srt_ts_dropped_pes
            .inc_by((now.ts.dropped_pes + now.bad_pes) - (before.ts.dropped_pes + before.bad_pes));
        m.srt_ts_resync_bytes
            .inc_by(now.ts.resync_bytes - before.ts.resync_bytes);
        m.srt_ts_unfinished_pes
            .inc_by(now.ts.unfinished_pes - before.ts.unfinished_pes);
        self.ctx.count_clock(
            self.peer,
            now.clock_resets - before.clock_resets,
            now.repaired_timestamps - before.repaired_timestamps,
        );
        if now.bad_pes > before.bad_pes {
            if let Some(held_back) = self.ctx.log_limiter.allow("srt_bad_pes", Instant::now()) {
                tracing::warn!(stream = %self.label.stream, error = ?self.demuxer.last_error, held_back, "dropped a PES the demuxer could not read");
            }
        }
    }

    fn on_statistics(&mut self, s: &SocketStatistics) {
        let m = &self.ctx.metrics;
        let l = &self.label;
        let was = &self.link;
        // srt-tokio reports totals for the connection; the counters add the step.
        let add = |c: &Family<StreamLabel, Counter>, now: u64, before: u64| {
            c.get_or_create(l).inc_by(now.saturating_sub(before));
        };
        add(&m.srt_packets_received, s.rx_data, was.rx_data);
        add(&m.srt_loss_reports, s.tx_nak, was.tx_nak);
        add(
            &m.srt_packets_retransmitted,
            s.rx_retransmit_data,
            was.rx_retransmit_data,
        );
        add(
            &m.srt_packets_dropped,
            s.rx_dropped_data,
            was.rx_dropped_data,
        );
        m.srt_receive_buffer_seconds
            .get_or_create(l)
            .set(s.rx_acknowledged_time.as_secs_f64());
        self.link = s.clone();
    }

    fn remove_link_metrics(&self) {
        let m = &self.ctx.metrics;
        m.srt_rtt_seconds.remove(&self.label);
        m.srt_packets_received.remove(&self.label);
        m.srt_loss_reports.remove(&self.label);
        m.srt_packets_retransmitted.remove(&self.label);
        m.srt_packets_dropped.remove(&self.label);
        m.srt_receive_buffer_seconds.remove(&self.label);
    }
}

/// Count and log a caller's end.
fn report(ctx: &IngestContext, peer: SocketAddr, result: Result<Outcome, SrtError>) {
    match result {
        Ok(Outcome::Refused) => {}
        Ok(Outcome::Closed) => tracing::info!(%peer, "SRT connection closed"),
        Err(e) => {
            let errors = &ctx.metrics.srt_errors;
            ctx.count_failure(errors, e.reason(), peer, &e, "SRT connection closed");
        }
    }
}
