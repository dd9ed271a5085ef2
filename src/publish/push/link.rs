//! One origin's link: the task that connects to it and sends its queue in
//! order, and the question every origin is asked when a session starts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Item, Pusher, ASK_WITHIN, RETRY};
use crate::metrics::{OriginLabel, OriginReasonLabel};
use crate::publish::wire::{self, Resume};

/// A push not answered in this time counts as a broken connection.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

impl Pusher {
    /// What the origins say of `stream`'s live session: the answer that
    /// goes furthest, or none when no origin has one.
    pub(super) async fn ask_origins(&self, stream: &str) -> Option<Resume> {
        let addrs: Vec<SocketAddr> = self.state().links.keys().copied().collect();
        let path = wire::resume_path(stream);
        let asks = addrs.iter().map(|a| self.ask(*a, &path));
        futures::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .max_by_key(|r| r.next_msn)
    }

    async fn ask(&self, addr: SocketAddr, path: &str) -> Option<Resume> {
        let asked = async {
            let mut sender = connect(addr).await.ok()?;
            let req = http::Request::get(path)
                .header(http::header::HOST, addr.to_string())
                .header(
                    http::header::AUTHORIZATION,
                    format!("Bearer {}", self.secret),
                )
                .body(Full::new(Bytes::new()))
                .ok()?;
            let resp = sender.send_request(req).await.ok()?;
            if resp.status() != http::StatusCode::OK {
                return None;
            }
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .ok()?;
            serde_json::from_slice::<Resume>(&body.to_bytes()).ok()
        };
        tokio::time::timeout(ASK_WITHIN, asked).await.ok().flatten()
    }

    /// One origin's task: connect, push its queue in order, reconnect after
    /// a failure, until `stop`.
    pub(super) async fn work(
        self: Arc<Self>,
        addr: SocketAddr,
        wake: Arc<Notify>,
        stop: CancellationToken,
    ) {
        let label = OriginLabel {
            origin: addr.to_string(),
        };
        // Failures since the last push an origin took: each waits longer.
        let mut failures = 0usize;
        while !stop.is_cancelled() {
            if failures > 0 {
                let wait = RETRY[(failures - 1).min(RETRY.len() - 1)];
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            let mut sender = match connect(addr).await {
                Ok(s) => s,
                Err(e) => {
                    if failures == 0 {
                        tracing::warn!(origin = %addr, error = %e, "cannot connect to an origin; retrying");
                    }
                    self.lost(addr);
                    failures += 1;
                    continue;
                }
            };
            loop {
                let Some(item) = self.next(addr) else {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = wake.notified() => continue,
                    }
                };
                match self.push(&mut sender, addr, &item).await {
                    Ok(status) => {
                        if failures > 0 {
                            tracing::info!(origin = %addr, "the origin takes pushes again");
                        }
                        failures = 0;
                        self.answered(&label, &item, status);
                    }
                    Err(e) => {
                        if failures == 0 {
                            tracing::warn!(origin = %addr, error = %e, "a push failed; the origin is resynced");
                        }
                        self.lost(addr);
                        failures += 1;
                        break;
                    }
                }
            }
        }
    }

    async fn push(
        &self,
        sender: &mut http1::SendRequest<Full<Bytes>>,
        addr: SocketAddr,
        item: &Item,
    ) -> Result<http::StatusCode, PushError> {
        let r = &item.request;
        let mut req = http::Request::put(r.path.as_str())
            .header(http::header::HOST, addr.to_string())
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.secret),
            );
        if let Some(h) = &r.part_header {
            req = req.header(wire::PART_HEADER, h.as_str());
        }
        let req = req
            .body(Full::new(r.body.clone()))
            .map_err(|e| PushError::Request(e.to_string()))?;
        sender.ready().await.map_err(PushError::Http)?;
        let resp = tokio::time::timeout(ANSWER_WITHIN, sender.send_request(req))
            .await
            .map_err(|_| PushError::Timeout)?
            .map_err(PushError::Http)?;
        let status = resp.status();
        // Answers carry no body worth reading; drain it so the connection
        // stays usable.
        let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
        if status.is_server_error() || status == http::StatusCode::NOT_FOUND {
            // The origin lost the session (or fails): resync it.
            return Err(PushError::Status(status));
        }
        Ok(status)
    }

    fn answered(&self, label: &OriginLabel, item: &Item, status: http::StatusCode) {
        if status.is_success() {
            let m = &self.metrics;
            m.push_latency_seconds
                .get_or_create(label)
                .observe(item.made.elapsed().as_secs_f64());
            m.push_objects.get_or_create(label).inc();
            m.push_bytes
                .get_or_create(label)
                .inc_by(item.request.body.len() as u64);
            return;
        }
        let reason = match status.as_u16() {
            401 | 403 => "unauthorized",
            409 => "conflict",
            413 => "too_large",
            _ => "malformed",
        };
        self.metrics
            .push_refused
            .get_or_create(&OriginReasonLabel {
                origin: label.origin.clone(),
                reason,
            })
            .inc();
        tracing::warn!(origin = %label.origin, path = %item.request.path, %status, "an origin refused a push");
    }
}

#[derive(Debug, thiserror::Error)]
enum PushError {
    #[error("cannot build the request: {0}")]
    Request(String),
    #[error(transparent)]
    Http(hyper::Error),
    #[error("no answer within {ANSWER_WITHIN:?}")]
    Timeout,
    #[error("the origin answered {0}")]
    Status(http::StatusCode),
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
}

async fn connect(addr: SocketAddr) -> Result<http1::SendRequest<Full<Bytes>>, PushError> {
    let tcp = tokio::time::timeout(ANSWER_WITHIN, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| PushError::Timeout)?
        .map_err(PushError::Connect)?;
    let _ = tcp.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(PushError::Http)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "push connection closed");
        }
    });
    Ok(sender)
}
