//! One RTMP publisher connection: handshake, `rml_rtmp` server session,
//! publish authorisation, and hand-off of demuxed media to the hub.
//!
//! Any protocol error closes this connection only, with a logged reason.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::close_stream::CloseStreamWatch;
use super::demux::{DemuxError, DemuxEvent, Demuxer};
use crate::hub::{HubError, Publisher};
use crate::ingest::admission::{PendingSlot, PublisherSlot, Refusal};
use crate::ingest::auth::AuthError;

#[derive(Debug, thiserror::Error)]
pub enum RtmpError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("handshake failed: {0}")]
    Handshake(String),
    #[error("handshake not completed within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("no data for {0:?}")]
    Idle(Duration),
    #[error("RTMP protocol error: {0}")]
    Session(String),
    #[error("application {0:?} is not served (use rtmp://HOST/{1}/KEY)")]
    WrongApp(String, String),
    #[error("publish refused: {0}")]
    Auth(#[from] AuthError),
    #[error("publish refused: {0}")]
    Busy(#[from] HubError),
    #[error("bad media from publisher: {0}")]
    Demux(#[from] DemuxError),
    #[error("client closed before publishing")]
    ClosedEarly,
    #[error("did not publish within {0:?}")]
    PublishTimeout(Duration),
    #[error("publish refused: {0}")]
    Admission(Refusal),
    #[error("another connection took the stream over after this one went silent")]
    TakenOver,
    #[error("the server is draining and the drain timeout passed: publish to another instance")]
    Drained,
    #[error("publish refused: {1}")]
    AtCapacity(&'static str, String),
}

impl RtmpError {
    pub fn reason(&self) -> &'static str {
        match self {
            RtmpError::Io(_) => "io",
            RtmpError::Handshake(_) | RtmpError::HandshakeTimeout(_) => "handshake",
            RtmpError::Idle(_) => "idle",
            RtmpError::Session(_) => "protocol",
            RtmpError::WrongApp(..) => "app",
            RtmpError::Auth(_) => "auth",
            RtmpError::Busy(HubError::QueueBytes { .. }) => "queue_bytes",
            RtmpError::Busy(HubError::Draining) => "draining",
            RtmpError::Busy(_) => "already_live",
            RtmpError::Demux(_) => "media",
            RtmpError::ClosedEarly => "closed_early",
            RtmpError::PublishTimeout(_) => "publish_timeout",
            RtmpError::Admission(r) => r.reason(),
            RtmpError::TakenOver => "taken_over",
            RtmpError::Drained => "drained",
            RtmpError::AtCapacity(reason, _) => reason,
        }
    }
}

pub use crate::ingest::context::IngestContext;

const READ_BUF: usize = 64 * 1024;

fn ctx_jump(ctx: &IngestContext) -> i64 {
    ctx.max_timestamp_jump.as_millis() as i64
}

pub async fn serve(
    mut tcp: TcpStream,
    peer: SocketAddr,
    ctx: Arc<IngestContext>,
    slot: PendingSlot,
) -> Result<(), RtmpError> {
    let _ = tcp.set_nodelay(true);
    let publish_deadline = tokio::time::Instant::now() + ctx.publish_timeout;
    let mut buf = vec![0u8; READ_BUF];
    let handshake_limit = ctx.handshake_timeout.min(ctx.publish_timeout);
    let leftover = tokio::time::timeout(handshake_limit, handshake(&mut tcp, &mut buf))
        .await
        .map_err(|_| RtmpError::HandshakeTimeout(handshake_limit))??;

    let (mut session, initial) = ServerSession::new(ServerSessionConfig::new())
        .map_err(|e| RtmpError::Session(e.to_string()))?;
    let mut conn = Connection {
        ctx: ctx.clone(),
        peer,
        publisher: None,
        published: false,
        publish_key: None,
        demuxer: Demuxer::with_max_jump(ctx_jump(&ctx)),
        slot: Slot::Pending(Some(slot)),
        close_watch: CloseStreamWatch::default(),
    };
    conn.handle_results(&mut tcp, &mut session, initial).await?;
    let mut input = leftover;
    loop {
        if !input.is_empty() {
            let results = session
                .handle_input(&input)
                .map_err(|e| RtmpError::Session(e.to_string()))?;
            conn.handle_results(&mut tcp, &mut session, results).await?;
            if conn.close_watch.push(&input) && conn.publisher.is_some() {
                conn.unpublish("closeStream")?;
            }
        }
        let n = if let Some(publisher) = conn.publisher.as_mut() {
            tokio::select! {
                r = tokio::time::timeout(ctx.idle_timeout, tcp.read(&mut buf)) => match r {
                    Err(_) => return Err(RtmpError::Idle(ctx.idle_timeout)),
                    Ok(r) => r?,
                },
                // The new connection owns the stream now; dropping this
                // publisher leaves it alone (its session is stale).
                _ = publisher.taken_over() => return Err(if ctx.hub.is_draining() {
                    RtmpError::Drained
                } else {
                    RtmpError::TakenOver
                }),
            }
        } else if conn.published {
            match tokio::time::timeout(ctx.idle_timeout, tcp.read(&mut buf)).await {
                Err(_) => return Err(RtmpError::Idle(ctx.idle_timeout)),
                Ok(r) => r?,
            }
        } else {
            match tokio::time::timeout_at(publish_deadline, tcp.read(&mut buf)).await {
                Err(_) => return Err(RtmpError::PublishTimeout(ctx.publish_timeout)),
                Ok(r) => r?,
            }
        };
        if n == 0 {
            // A drop, not an unpublish: the hub keeps the stream for the grace period.
            return if conn.published {
                Ok(())
            } else {
                Err(RtmpError::ClosedEarly)
            };
        }
        input = buf[..n].to_vec();
    }
}

async fn handshake(tcp: &mut TcpStream, buf: &mut [u8]) -> Result<Vec<u8>, RtmpError> {
    let mut hs = Handshake::new(PeerType::Server);
    loop {
        let n = tcp.read(buf).await?;
        if n == 0 {
            return Err(RtmpError::Handshake(
                "client closed during handshake".into(),
            ));
        }
        match hs
            .process_bytes(&buf[..n])
            .map_err(|e| RtmpError::Handshake(format!("{e:?}")))?
        {
            HandshakeProcessResult::InProgress { response_bytes } => {
                tcp.write_all(&response_bytes).await?
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                tcp.write_all(&response_bytes).await?;
                return Ok(remaining_bytes);
            }
        }
    }
}

/// The admission slot a connection holds: pending until its publish is
/// accepted, then a publisher's.
enum Slot {
    Pending(Option<PendingSlot>),
    Publisher(#[allow(dead_code)] PublisherSlot),
}

struct Connection {
    slot: Slot,
    ctx: Arc<IngestContext>,
    peer: SocketAddr,
    publisher: Option<Publisher>,
    /// Whether this connection ever got to publish (for the close reason).
    published: bool,
    /// The stream key of the current publish (an `FCUnpublish` names it).
    publish_key: Option<String>,
    /// Sees the `closeStream` rml_rtmp's session swallows.
    close_watch: CloseStreamWatch,
    demuxer: Demuxer,
}

impl Connection {
    async fn handle_results(
        &mut self,
        tcp: &mut TcpStream,
        session: &mut ServerSession,
        results: Vec<ServerSessionResult>,
    ) -> Result<(), RtmpError> {
        let mut queue: std::collections::VecDeque<ServerSessionResult> = results.into();
        while let Some(r) = queue.pop_front() {
            match r {
                ServerSessionResult::OutboundResponse(packet) => {
                    tcp.write_all(&packet.bytes).await?
                }
                ServerSessionResult::RaisedEvent(ev) => {
                    match self.on_event(session, ev) {
                        Ok(more) => queue.extend(more),
                        Err((more, err)) => {
                            // Tell the client why before closing.
                            for r in more {
                                if let ServerSessionResult::OutboundResponse(p) = r {
                                    let _ = tcp.write_all(&p.bytes).await;
                                }
                            }
                            let _ = tcp.flush().await;
                            return Err(err);
                        }
                    }
                }
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    /// (skipped tags, clock resets, repaired timestamps) so far.
    fn demuxer_counts(&self) -> (u64, u64, u64) {
        let d = &self.demuxer;
        (d.skipped_tags, d.clock_resets(), d.repaired_timestamps())
    }

    /// Count what the demuxer skipped or repaired since `before`.
    fn count(&self, before: (u64, u64, u64)) {
        let (skipped, resets, repaired) = self.demuxer_counts();
        self.ctx
            .metrics
            .ingest_skipped_tags
            .inc_by(skipped - before.0);
        self.ctx
            .count_clock(self.peer, resets - before.1, repaired - before.2);
    }

    /// Trade the pending slot for a publisher's (once per connection).
    fn promote(&mut self) -> Result<(), RtmpError> {
        let Slot::Pending(pending) = &mut self.slot else {
            return Ok(());
        };
        let Some(p) = pending.take() else {
            return Ok(());
        };
        match p.promote() {
            Ok(publisher) => {
                self.slot = Slot::Publisher(publisher);
                Ok(())
            }
            Err((p, why)) => {
                *pending = Some(p);
                Err(RtmpError::Admission(why))
            }
        }
    }

    #[allow(clippy::result_large_err)]
    fn on_event(
        &mut self,
        session: &mut ServerSession,
        ev: ServerSessionEvent,
    ) -> Result<Vec<ServerSessionResult>, (Vec<ServerSessionResult>, RtmpError)> {
        let session_err = |e: rml_rtmp::sessions::ServerSessionError| {
            (Vec::new(), RtmpError::Session(e.to_string()))
        };
        let received = Instant::now();
        match ev {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                if app_name.trim_end_matches('/') != self.ctx.app {
                    let out = session
                        .reject_request(
                            request_id,
                            "NetConnection.Connect.Rejected",
                            "unknown application",
                        )
                        .unwrap_or_default();
                    return Err((out, RtmpError::WrongApp(app_name, self.ctx.app.clone())));
                }
                session.accept_request(request_id).map_err(session_err)
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                stream_key,
                ..
            } => {
                let claim = self
                    .ctx
                    .keys
                    .resolve(&stream_key)
                    .map_err(RtmpError::from)
                    .and_then(|name| {
                        self.promote()?;
                        // A new stream takes memory; a reconnect or takeover
                        // of one the hub already holds does not.
                        if !self.ctx.hub.open_stream_names().contains(&name) {
                            if let Some(why) = (self.ctx.capacity)() {
                                return Err(RtmpError::AtCapacity(why.0, why.1));
                            }
                        }
                        Ok(self.ctx.hub.claim(&name)?)
                    });
                match claim {
                    Ok(publisher) => {
                        self.ctx.announce_live(self.peer, &publisher, "RTMP");
                        // A publish (a republish on this connection too) starts a
                        // fresh demux session: its tracks are announced anew.
                        self.demuxer = Demuxer::with_max_jump(ctx_jump(&self.ctx));
                        self.publisher = Some(publisher);
                        self.publish_key = Some(stream_key);
                        self.published = true;
                        session.accept_request(request_id).map_err(session_err)
                    }
                    Err(e) => {
                        let code = match e {
                            RtmpError::Busy(HubError::Draining) => "NetStream.Publish.Rejected",
                            RtmpError::Auth(_) | RtmpError::Busy(_) => "NetStream.Publish.BadName",
                            _ => "NetStream.Publish.Rejected",
                        };
                        let out = session
                            .reject_request(request_id, code, &e.to_string())
                            .unwrap_or_default();
                        Err((out, e))
                    }
                }
            }
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                self.demuxer.on_metadata(&metadata);
                Ok(Vec::new())
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => {
                let before = self.demuxer_counts();
                let events = self
                    .demuxer
                    .on_video(timestamp.value, &data, received)
                    .map_err(|e| (Vec::new(), e.into()))?;
                self.count(before);
                self.forward(events).map_err(|e| (Vec::new(), e))?;
                Ok(Vec::new())
            }
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => {
                let before = self.demuxer_counts();
                let events = self
                    .demuxer
                    .on_audio(timestamp.value, &data, received)
                    .map_err(|e| (Vec::new(), e.into()))?;
                self.count(before);
                self.forward(events).map_err(|e| (Vec::new(), e))?;
                Ok(Vec::new())
            }
            ServerSessionEvent::PublishStreamFinished { .. } => {
                self.unpublish("deleteStream")
                    .map_err(|e| (Vec::new(), e))?;
                Ok(Vec::new())
            }
            // rml_rtmp leaves FCUnpublish to us. GStreamer's rtmp2sink sends
            // it and closes the socket before its deleteStream is seen, so it
            // is an unpublish of its own (if it names this publish's key).
            ServerSessionEvent::UnhandleableAmf0Command {
                command_name,
                additional_values,
                ..
            } if command_name == "FCUnpublish" => {
                let named = additional_values.iter().find_map(|v| match v {
                    rml_rtmp::rml_amf0::Amf0Value::Utf8String(k) => Some(k.as_str()),
                    _ => None,
                });
                if named.is_none_or(|k| Some(k) == self.publish_key.as_deref()) {
                    self.unpublish("FCUnpublish").map_err(|e| (Vec::new(), e))?;
                }
                Ok(Vec::new())
            }
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                let out = session
                    .reject_request(
                        request_id,
                        "NetStream.Play.Failed",
                        "castline serves playback over HLS",
                    )
                    .unwrap_or_default();
                Err((
                    out,
                    RtmpError::Session("RTMP playback is not offered".into()),
                ))
            }
            ServerSessionEvent::UnhandleableAmf0Command {
                command_name,
                additional_values,
                ..
            } => {
                tracing::debug!(peer = %self.peer, command = %command_name, args = ?additional_values, "RTMP command");
                Ok(Vec::new())
            }
            _ => Ok(Vec::new()),
        }
    }

    /// The publisher said it is done: what the demuxer holds goes out, then
    /// the stream ends at once (no reconnect grace).
    fn unpublish(&mut self, how: &'static str) -> Result<(), RtmpError> {
        let events = self.demuxer.finish();
        self.forward(events)?;
        self.publish_key = None;
        if let Some(p) = self.publisher.take() {
            tracing::info!(peer = %self.peer, stream = p.name(), command = how, "publisher unpublished");
            p.finish();
        }
        Ok(())
    }

    fn forward(&mut self, events: Vec<DemuxEvent>) -> Result<(), RtmpError> {
        match &mut self.publisher {
            Some(p) => Ok(self.ctx.forward(p, events)?),
            None => Ok(()),
        }
    }
}

/// Count and log a connection's end.
pub fn report(ctx: &IngestContext, peer: SocketAddr, result: Result<(), RtmpError>) {
    match result {
        Ok(()) => tracing::info!(%peer, "RTMP connection closed"),
        Err(e) => {
            let errors = &ctx.metrics.rtmp_errors;
            ctx.count_failure(errors, e.reason(), peer, &e, "RTMP connection closed");
        }
    }
}
