//! Role `origin`: the push port (`cluster.listen`). An attack surface, so
//! every request is checked before anything is stored: the secret (in
//! constant time), the method, the size of the body and the time it takes
//! to arrive, then the name ([`super::wire::decode`]). A refused push gets
//! its status and reason and changes nothing; an unauthenticated one also
//! loses its connection. Log lines about refusals are bounded.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use super::receive::{Receiver, Refused};
use super::wire::{self, WireError};
use crate::lifecycle::Lifecycle;
use crate::log_limit::LogLimiter;

/// Connections the push port holds at once (ingest pods keep one each per
/// origin address).
const CONNECTIONS: usize = 256;
/// The largest object pushed (an init, a part, a segment end).
const MAX_BODY: usize = 16 * 1024 * 1024;
/// A request's headers, and then its body, must arrive within this.
const ARRIVE_WITHIN: Duration = Duration::from_secs(10);

pub struct PushPort {
    pub receiver: Arc<Receiver>,
    pub secret: String,
    log: LogLimiter,
}

impl PushPort {
    pub fn new(receiver: Arc<Receiver>, secret: String) -> Arc<PushPort> {
        Arc::new(PushPort {
            receiver,
            secret,
            log: LogLimiter::new(Duration::from_secs(10)),
        })
    }

    pub async fn serve(self: Arc<Self>, listener: TcpListener, life: Lifecycle) {
        let slots = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS));
        life.accept_loop(listener, "push", |tcp, _peer, close| {
            let slot = slots.clone().try_acquire_owned().ok()?;
            let _ = tcp.set_nodelay(true);
            let port = self.clone();
            Some(async move {
                let _slot = slot;
                let svc = service_fn(move |req| {
                    let port = port.clone();
                    async move { Ok::<_, Infallible>(port.handle(req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(ARRIVE_WITHIN)
                    .serve_connection(TokioIo::new(tcp), svc);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    _ = close.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.as_mut().await;
                    }
                }
            })
        })
        .await;
    }

    fn authorized(&self, req: &Request<Incoming>) -> bool {
        let given = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .unwrap_or_default();
        bool::from(given.ct_eq(self.secret.as_bytes()))
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if !self.authorized(&req) {
            return self.refuse(StatusCode::UNAUTHORIZED, "unauthorized", None, true);
        }
        let path = req.uri().path().to_string();
        if req.method() == http::Method::GET {
            return self.resume(&path);
        }
        if req.method() != http::Method::PUT {
            return self.refuse(StatusCode::METHOD_NOT_ALLOWED, "method", None, false);
        }
        let part_header = req
            .headers()
            .get(wire::PART_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let started = Instant::now();
        let body = Limited::new(req.into_body(), MAX_BODY);
        let body = match tokio::time::timeout(ARRIVE_WITHIN, body.collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                return self.refuse(StatusCode::PAYLOAD_TOO_LARGE, "too_large", None, true)
            }
            Ok(Err(_)) => return self.refuse(StatusCode::BAD_REQUEST, "body", None, true),
            Err(_) => return self.refuse(StatusCode::REQUEST_TIMEOUT, "slow_body", None, true),
        };
        let (key, message) = match wire::decode(&path, part_header.as_deref(), body) {
            Ok(d) => d,
            Err(e) => {
                let reason = match e {
                    WireError::Path | WireError::Name => "bad_name",
                    _ => "malformed",
                };
                return self.refuse(StatusCode::BAD_REQUEST, reason, Some(&e), false);
            }
        };
        match self.receiver.take(key, message) {
            Ok(taken) => {
                self.receiver.count_taken(taken);
                tracing::trace!(%path, ?taken, took = ?started.elapsed(), "push taken");
                Response::new(Full::default())
            }
            Err(e) => {
                let status = match e {
                    Refused::UnknownSession => StatusCode::NOT_FOUND,
                    Refused::Conflict | Refused::PlanConflict | Refused::Superseded => {
                        StatusCode::CONFLICT
                    }
                    Refused::UnknownRendition(_) | Refused::Plan(_) => StatusCode::BAD_REQUEST,
                };
                self.refuse(status, e.reason(), Some(&e), false)
            }
        }
    }

    /// Where a live stream continues (`GET /push/v1/STREAM`): its
    /// [`wire::Resume`] as JSON, or 404 when it has no live session here.
    fn resume(&self, path: &str) -> Response<Full<Bytes>> {
        let stream = match wire::resume_stream(path) {
            Ok(s) => s,
            Err(e) => return self.refuse(StatusCode::BAD_REQUEST, "bad_name", Some(&e), false),
        };
        match self.receiver.resume(stream) {
            Some(r) => Response::new(Full::new(Bytes::from(
                serde_json::to_string(&r).unwrap_or_default(),
            ))),
            None => {
                let mut resp = Response::new(Full::default());
                *resp.status_mut() = StatusCode::NOT_FOUND;
                resp
            }
        }
    }

    /// Refuse a push: counted, logged at most once per reason per 10 s,
    /// answered with the reason; `close`: the connection goes too.
    fn refuse(
        &self,
        status: StatusCode,
        reason: &'static str,
        detail: Option<&dyn std::fmt::Display>,
        close: bool,
    ) -> Response<Full<Bytes>> {
        self.receiver.count_refused(reason);
        if let Some(suppressed) = self.log.allow(reason, Instant::now()) {
            let detail = detail.map(|d| d.to_string()).unwrap_or_default();
            tracing::warn!(reason, %detail, suppressed, "a push was refused");
        }
        let mut resp = Response::new(Full::new(Bytes::from(format!("{reason}\n"))));
        *resp.status_mut() = status;
        if close {
            resp.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        resp
    }
}
