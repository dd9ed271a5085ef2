//! Admin endpoints for operators and orchestrators: `/healthz`, `/readyz`,
//! `/metrics` (Prometheus text) and `/api/streams`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::hub::Hub;
use crate::metrics::Metrics;

/// Concurrent admin connections.
const ADMIN_CONNECTIONS: usize = 64;
/// A request's headers must arrive within this (idle keep-alive connections too).
const ADMIN_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// No admin connection lives longer than this.
const ADMIN_CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

pub struct Admin {
    pub metrics: Arc<Metrics>,
    pub store: Arc<crate::store::Store>,
    pub hub: Arc<Hub>,
    /// False while starting or draining.
    pub ready: AtomicBool,
}

impl Admin {
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) {
        // Scrapers and probes need few connections; a flood of them gets no more.
        let slots = Arc::new(tokio::sync::Semaphore::new(ADMIN_CONNECTIONS));
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.changed() => break,
            };
            let tcp = match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                continue; // dropped: closed at once
            };
            let admin = self.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let svc = service_fn(move |req| {
                    let admin = admin.clone();
                    async move { Ok::<_, Infallible>(admin.handle(req)) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(ADMIN_HEADER_TIMEOUT)
                    .max_buf_size(16 * 1024)
                    .serve_connection(TokioIo::new(tcp), svc);
                // A slow reader of /metrics cannot hold its slot for ever either.
                let _ = tokio::time::timeout(ADMIN_CONNECTION_LIFETIME, conn).await;
            });
        }
    }

    fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>> {
        let (status, ctype, body) = match req.uri().path() {
            "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
            "/readyz" if self.ready.load(Ordering::Relaxed) => {
                (StatusCode::OK, "text/plain", "ready\n".to_string())
            }
            "/readyz" => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "not ready\n".to_string(),
            ),
            "/metrics" => {
                self.metrics
                    .live_streams
                    .set(self.hub.live_streams().len() as i64);
                self.metrics.store_bytes.set(self.store.bytes() as i64);
                self.metrics
                    .vod_sessions
                    .set(self.store.vod_sessions() as i64);
                (
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    self.metrics.encode(),
                )
            }
            "/api/streams" => {
                let names = self.hub.live_streams();
                (
                    StatusCode::OK,
                    "application/json",
                    serde_json::json!({ "streams": names }).to_string(),
                )
            }
            _ => (
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found\n".to_string(),
            ),
        };
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        if let Ok(v) = http::HeaderValue::from_str(ctype) {
            r.headers_mut().insert("content-type", v);
        }
        r
    }
}
