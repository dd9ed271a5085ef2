//! One RTMP publisher's socket: the handshake, then bytes to and from its
//! [`Session`] (the sans-IO logic), with the handshake, publish and idle
//! timeouts and a takeover by a newer connection.
//!
//! Any protocol error closes this connection only, with a logged reason.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::demux::DemuxError;
use super::session::{Refused, Session};
use crate::hub::{HubError, Kick};
use crate::ingest::admission::{PendingSlot, Refusal};
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
    #[error("publish refused: another ingest pod already feeds this stream on the origins")]
    LiveElsewhere,
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
            RtmpError::Busy(HubError::StillSending(_)) => "still_sending",
            RtmpError::Busy(HubError::TakeoverPending(_)) => "takeover_pending",
            RtmpError::Busy(HubError::NoPrimary(_)) => "no_primary",
            RtmpError::Busy(_) => "already_live",
            RtmpError::Demux(_) => "media",
            RtmpError::ClosedEarly => "closed_early",
            RtmpError::PublishTimeout(_) => "publish_timeout",
            RtmpError::Admission(r) => r.reason(),
            RtmpError::TakenOver => "taken_over",
            RtmpError::Drained => "drained",
            RtmpError::LiveElsewhere => "live_elsewhere",
            RtmpError::AtCapacity(reason, _) => reason,
        }
    }
}

pub use crate::ingest::context::IngestContext;

const READ_BUF: usize = 64 * 1024;

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

    let (mut session, initial) = match Session::new(ctx.clone(), peer, slot) {
        Ok(s) => s,
        Err(refused) => return Err(send_refusal(&mut tcp, refused).await),
    };
    tcp.write_all(&initial).await?;
    let mut input = leftover;
    loop {
        if !input.is_empty() {
            match session.input(&input) {
                Ok(out) if out.is_empty() => {}
                Ok(out) => tcp.write_all(&out).await?,
                Err(refused) => return Err(send_refusal(&mut tcp, refused).await),
            }
        }
        let published = session.published();
        let n = if let Some(publisher) = session.publisher_mut() {
            tokio::select! {
                r = tokio::time::timeout(ctx.idle_timeout, tcp.read(&mut buf)) => match r {
                    Err(_) => return Err(RtmpError::Idle(ctx.idle_timeout)),
                    Ok(r) => r?,
                },
                // The new connection owns the stream now; dropping this
                // publisher leaves it alone (its session is stale).
                kick = publisher.taken_over() => return Err(match kick {
                    Kick::LiveElsewhere => RtmpError::LiveElsewhere,
                    Kick::Closed if ctx.hub.is_draining() => RtmpError::Drained,
                    Kick::Closed => RtmpError::TakenOver,
                }),
            }
        } else if published {
            match tokio::time::timeout(ctx.idle_timeout, tcp.read(&mut buf)).await {
                Err(_) => return Err(RtmpError::Idle(ctx.idle_timeout)),
                Ok(r) => r?,
            }
        } else if let Some(until) = session.held_until() {
            // A publish waits for the live publisher's takeover time.
            tokio::select! {
                r = tcp.read(&mut buf) => r?,
                _ = tokio::time::sleep_until(until.into()) => {
                    match session.take_held() {
                        Ok(out) => tcp.write_all(&out).await?,
                        Err(refused) => return Err(send_refusal(&mut tcp, refused).await),
                    }
                    input.clear();
                    continue;
                }
            }
        } else {
            match tokio::time::timeout_at(publish_deadline, tcp.read(&mut buf)).await {
                Err(_) => return Err(RtmpError::PublishTimeout(ctx.publish_timeout)),
                Ok(r) => r?,
            }
        };
        if n == 0 {
            // A drop, not an unpublish: the hub keeps the stream for the grace period.
            return if published {
                Ok(())
            } else {
                Err(RtmpError::ClosedEarly)
            };
        }
        input = buf[..n].to_vec();
    }
}

/// Send what the client should read of a refusal, then give its error.
async fn send_refusal(tcp: &mut TcpStream, refused: Refused) -> RtmpError {
    let _ = tcp.write_all(&refused.reply).await;
    let _ = tcp.flush().await;
    refused.error
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
