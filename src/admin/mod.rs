//! Admin endpoints for operators and orchestrators: `/healthz`, `/readyz`,
//! `/metrics` (Prometheus text) and `/api/streams`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::hub::Hub;
use crate::metrics::Metrics;

pub struct Admin {
    pub metrics: Arc<Metrics>,
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
        loop {
            let (tcp, _) = tokio::select! {
                a = listener.accept() => match a { Ok(x) => x, Err(_) => continue },
                _ = shutdown.changed() => break,
            };
            let admin = self.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let admin = admin.clone();
                    async move { Ok::<_, Infallible>(admin.handle(req)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
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
