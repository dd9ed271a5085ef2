//! Admin endpoints for operators and orchestrators: `/healthz`, `/readyz`,
//! `/metrics` (Prometheus text), `/api/streams`, and the CDNs of content
//! steering: `GET /api/v1/cdns`, `POST /api/v1/cdns/{id}/down` and `/up`.

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

use crate::lifecycle::Lifecycle;

use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::origin::steering::Cdns;

/// Concurrent admin connections.
const ADMIN_CONNECTIONS: usize = 64;
/// A request's headers must arrive within this (idle keep-alive connections too).
const ADMIN_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// No admin connection lives longer than this.
const ADMIN_CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

pub struct Admin {
    /// At capacity: not ready (new publishers go elsewhere).
    pub gauge: Arc<crate::capacity::Gauge>,
    pub metrics: Arc<Metrics>,
    pub store: Arc<crate::store::Store>,
    pub hub: Arc<Hub>,
    pub cdns: Arc<Cdns>,
    /// How long an ended session is kept (`hls.vod_keep`).
    pub vod_keep: std::time::Duration,
    /// False while starting or draining.
    pub ready: AtomicBool,
    /// The kernel's dropped-handshake counter, read at each scrape.
    pub overflows: crate::listen::Overflows,
    /// Role `ingest`: not ready while there is no origin to push to.
    pub pusher: Option<Arc<crate::publish::push::Pusher>>,
}

impl Admin {
    /// Accept until `life.accept` is cancelled; every connection is a task
    /// of `life.tasks` and closes gracefully when `life.close` is cancelled
    /// (the same lifecycle as the origin's).
    pub async fn serve(self: Arc<Self>, listener: TcpListener, life: Lifecycle) {
        // Scrapers and probes need few connections; a flood of them gets no more.
        let slots = Arc::new(tokio::sync::Semaphore::new(ADMIN_CONNECTIONS));
        life.accept_loop(listener, "admin", |tcp, _peer, close| {
            // None: the connection is dropped, so closed at once.
            let slot = slots.clone().try_acquire_owned().ok()?;
            let admin = self.clone();
            Some(async move {
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
                tokio::pin!(conn);
                let served = async {
                    tokio::select! {
                        r = conn.as_mut() => r,
                        _ = close.cancelled() => {
                            conn.as_mut().graceful_shutdown();
                            conn.as_mut().await
                        }
                    }
                };
                // A slow reader of /metrics cannot hold its slot for ever either.
                let _ = tokio::time::timeout(ADMIN_CONNECTION_LIFETIME, served).await;
            })
        })
        .await;
    }

    fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>> {
        let path = req.uri().path();
        // Prometheus asks for OpenMetrics; promtool and older agents do not.
        let openmetrics = req
            .headers()
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/openmetrics-text"));
        if let Some(rest) = path.strip_prefix("/api/v1/cdns") {
            return self.cdns_api(req.method(), rest);
        }
        if let Some(rest) = path.strip_prefix("/api/v1/streams") {
            return self.streams_api(rest);
        }
        if path == "/api/v1/vod" {
            return self.vod_api();
        }
        if path == "/api/v1/prewarm" {
            return self.prewarm_api(req.method(), req.uri().query());
        }
        let (status, ctype, body) = match path {
            "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
            "/readyz" => match (self.ready.load(Ordering::Relaxed), self.gauge.full()) {
                (true, _) if self.pusher.as_ref().is_some_and(|p| p.origins() == 0) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "no origin to push to (cluster.origins resolves to no address)\n".to_string(),
                ),
                (true, None) => (StatusCode::OK, "text/plain", "ready\n".to_string()),
                (true, Some(why)) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("{why}\n"),
                ),
                (false, _) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "not ready (starting or draining)\n".to_string(),
                ),
            },
            "/metrics" => {
                self.metrics
                    .live_streams
                    .set(self.hub.open_stream_names().len() as i64);
                self.metrics.store_bytes.set(self.store.bytes() as i64);
                if let Some(d) = self.store.disk() {
                    self.metrics.disk_bytes.set(d.bytes() as i64);
                    self.metrics.disk_errors.set(d.errors() as i64);
                }
                self.metrics
                    .vod_sessions
                    .set(self.store.vod_sessions() as i64);
                if let Some(reading) = crate::listen::listen_overflows() {
                    let rise = self.overflows.rise(reading);
                    self.metrics.tcp_listen_overflows.inc_by(rise);
                }
                if openmetrics {
                    (
                        StatusCode::OK,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        self.metrics.encode(),
                    )
                } else {
                    (
                        StatusCode::OK,
                        "text/plain; version=0.0.4; charset=utf-8",
                        self.metrics.encode_prometheus(),
                    )
                }
            }
            "/api/streams" => {
                let names = self.hub.open_stream_names();
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
        reply(status, ctype, body)
    }

    /// `GET /api/v1/streams` (every open stream) and `/api/v1/streams/NAME`.
    fn streams_api(&self, rest: &str) -> Response<Full<Bytes>> {
        let json = |status, v: serde_json::Value| reply(status, "application/json", v.to_string());
        let one = rest.strip_prefix('/').filter(|n| !n.is_empty());
        let states: Vec<serde_json::Value> = self
            .hub
            .states()
            .into_iter()
            .filter(|s| one.is_none_or(|n| n == s.name))
            .map(|s| self.stream_json(&s))
            .collect();
        match (one, states.len()) {
            (None, _) => json(StatusCode::OK, serde_json::json!({ "streams": states })),
            (Some(_), 1) => json(StatusCode::OK, states[0].clone()),
            (Some(n), _) => json(
                StatusCode::NOT_FOUND,
                serde_json::json!({ "error": format!("no open stream {n:?}") }),
            ),
        }
    }

    fn stream_json(&self, s: &crate::hub::StreamState) -> serde_json::Value {
        let label = crate::metrics::StreamLabel {
            stream: s.name.clone(),
        };
        type Rate = prometheus_client::metrics::family::Family<
            crate::metrics::StreamLabel,
            prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
        >;
        // Read only: a stream the sampler has not seen yet reads 0.
        let rate = |f: &Rate| -> f64 { f.get(&label).map_or(0.0, |g| g.get()) };
        let renditions: Vec<serde_json::Value> = self
            .store
            .stream(&s.name)
            .map(|e| e.renditions())
            .unwrap_or_default()
            .iter()
            .map(|r| {
                let meta = r.meta().unwrap_or_default();
                let p = r.progress();
                serde_json::json!({
                    "name": r.name(),
                    "codecs": meta.codecs,
                    "resolution": meta.resolution.map(|(w, h)| format!("{w}x{h}")),
                    "frame_rate": meta.frame_rate,
                    "bandwidth": meta.bandwidth,
                    "average_bandwidth": meta.average_bandwidth,
                    "last_part": p.last_part.map(|(m, i)| format!("{m}.{i}")),
                    // Its last frame's arrival to the part being servable.
                    "part_ready_ms": r.part_ready().map(|d| d.as_secs_f64() * 1000.0),
                    "bytes_held": r.bytes(),
                })
            })
            .collect();
        // The input served now, as the pipeline last said.
        let active = ["primary", "backup", "slate"].into_iter().find(|i| {
            let l = crate::metrics::InputLabel {
                stream: s.name.clone(),
                input: i.to_string(),
            };
            self.metrics
                .input_active
                .get(&l)
                .is_some_and(|g| g.get() == 1)
        });
        serde_json::json!({
            "name": s.name,
            "state": if s.live || s.backup_live { "live" } else { "waiting_for_reconnect" },
            "inputs": {
                "primary": if s.live { "connected" } else { "absent" },
                "backup": if s.backup_live { "connected" } else { "absent" },
                "active": active,
            },
            // Its multivariant playlist exists: a player can start now.
            "playable": self.store.stream(&s.name).is_some_and(|e| e.multivariant().is_some()),
            "uptime_seconds": s.uptime.as_secs_f64(),
            "ingest": {
                "bits_per_second": 8.0 * rate(&self.metrics.ingest_bytes_per_second),
                "frames_per_second": rate(&self.metrics.ingest_frames_per_second),
            },
            // Distinct client addresses over the last 1-2 minutes (behind a
            // CDN: its edge servers).
            "viewers": self.metrics.viewers.get(&label).map_or(0, |g| g.get()),
            "renditions": renditions,
        })
    }

    /// `GET /api/v1/vod`: the ended sessions kept, oldest first, with the
    /// path their media lives under (servable until `expires`).
    fn vod_api(&self) -> Response<Full<Bytes>> {
        let unix = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        };
        let sessions: Vec<serde_json::Value> = self
            .store
            .vod()
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name(),
                    "epoch": s.epoch(),
                    "ended_at": s.ended_at().map(unix),
                    "expires": s.ended_at().map(|t| unix(t + self.vod_keep)),
                    "on_disk": s.persisted(),
                    "renditions": s.renditions().iter().map(|r| r.name().to_string()).collect::<Vec<_>>(),
                    "bytes_in_memory": s.bytes(),
                })
            })
            .collect();
        reply(
            StatusCode::OK,
            "application/json",
            serde_json::json!({ "sessions": sessions }).to_string(),
        )
    }

    /// `GET /api/v1/prewarm` lists the scheduled events; `POST
    /// /api/v1/prewarm?start=RFC3339&end=RFC3339[&lead=S][&capacity=C]`
    /// schedules one: `castline_desired_capacity` is at least `capacity`
    /// from `lead` seconds before `start` until `end`.
    fn prewarm_api(&self, method: &http::Method, query: Option<&str>) -> Response<Full<Bytes>> {
        let json = |status, v: serde_json::Value| reply(status, "application/json", v.to_string());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let list = |g: &crate::capacity::Gauge| {
            let events: Vec<serde_json::Value> = g
                .prewarm(now)
                .into_iter()
                .map(|(from, until, c)| serde_json::json!({ "from": from, "until": until, "capacity": c }))
                .collect();
            serde_json::json!({ "events": events })
        };
        match *method {
            http::Method::GET => json(StatusCode::OK, list(&self.gauge)),
            http::Method::POST => {
                let get = |k: &str| {
                    query?
                        .split('&')
                        .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                        .map(str::to_string)
                };
                let number =
                    |k: &str, default: f64| get(k).map_or(Some(default), |v| v.parse().ok());
                let event = match (
                    get("start"),
                    get("end"),
                    number("lead", crate::config::half_an_hour()),
                    number("capacity", crate::config::full()),
                ) {
                    (Some(start), Some(end), Some(lead), Some(capacity)) => {
                        crate::config::PrewarmConfig {
                            start,
                            end,
                            lead,
                            capacity,
                        }
                    }
                    _ => {
                        let why = "POST /api/v1/prewarm?start=RFC3339&end=RFC3339[&lead=SECONDS][&capacity=0-10]";
                        return json(StatusCode::BAD_REQUEST, serde_json::json!({ "error": why }));
                    }
                };
                match event.window() {
                    Ok(w) if self.gauge.add_prewarm(w) => {
                        tracing::info!(start = %event.start, end = %event.end, capacity = event.capacity, "prewarm scheduled");
                        json(StatusCode::OK, list(&self.gauge))
                    }
                    Ok(_) => json(
                        StatusCode::TOO_MANY_REQUESTS,
                        serde_json::json!({ "error": "too many scheduled events" }),
                    ),
                    Err(e) => json(
                        StatusCode::BAD_REQUEST,
                        serde_json::json!({ "error": e.to_string() }),
                    ),
                }
            }
            _ => json(
                StatusCode::METHOD_NOT_ALLOWED,
                serde_json::json!({ "error": "GET the list, POST an event" }),
            ),
        }
    }

    /// `GET /api/v1/cdns`; `POST /api/v1/cdns/{id}/down` or `/up` marks a
    /// CDN for content steering (the next steering manifest reflects it).
    fn cdns_api(&self, method: &http::Method, rest: &str) -> Response<Full<Bytes>> {
        let json = |status, v: serde_json::Value| reply(status, "application/json", v.to_string());
        let error = |status, why: String| json(status, serde_json::json!({ "error": why }));
        match (method, rest.trim_end_matches('/')) {
            (&http::Method::GET, "") => json(StatusCode::OK, self.cdns.status()),
            (&http::Method::POST, action) => {
                let mut it = action.trim_start_matches('/').split('/');
                let (id, up) = match (it.next(), it.next(), it.next()) {
                    (Some(id), Some("down"), None) => (id, false),
                    (Some(id), Some("up"), None) => (id, true),
                    _ => {
                        return error(
                            StatusCode::NOT_FOUND,
                            "POST /api/v1/cdns/{id}/down or /up".into(),
                        )
                    }
                };
                match self.cdns.set_up(id, up) {
                    Ok(()) => json(StatusCode::OK, self.cdns.status()),
                    Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
                }
            }
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "GET the list, POST a change".into(),
            ),
        }
    }
}

fn reply(status: StatusCode, ctype: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(ctype) {
        r.headers_mut().insert("content-type", v);
    }
    r
}
