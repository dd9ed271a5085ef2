//! The HTTP origin (hyper 1): routes requests to bytes already in the store,
//! holds LL-HLS blocking requests until the store says they can be answered,
//! and sets headers per object class. It renders nothing per request but the
//! small answers of content steering (`steering.rs`).

pub mod blocking;
pub mod body;
pub mod cache;
pub mod conditional;
pub mod route;
pub mod signed;
pub mod steering;
pub mod tls;
pub mod viewers;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as AutoBuilder;
use tokio::net::TcpListener;

use blocking::Readiness;
use body::Chunks;
use cache::ObjectClass;
use route::{Route, RouteError};

use crate::lifecycle::Lifecycle;
use crate::metrics::{EgressLabel, HttpLabel, Metrics};
use crate::package::{multivariant, playlist};
use crate::store::{Rendition, SnapshotKey, Store, StreamEntry};
use steering::Cdns;

pub struct Origin {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    access: Access,
    cdns: Arc<Cdns>,
    viewers: Arc<viewers::Viewers>,
}

/// Who may reach the origin.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// (header, value) the CDN must send; None: anyone.
    pub cdn_secret: Option<(http::HeaderName, String)>,
    /// With a key, playback URLs must be signed (`signed.rs`).
    pub signing_key: Option<Vec<u8>>,
}

impl Access {
    fn allows(&self, headers: &http::HeaderMap) -> bool {
        let Some((name, secret)) = &self.cdn_secret else {
            return true;
        };
        headers
            .get(name)
            .is_some_and(|v| same_bytes(v.as_bytes(), secret.as_bytes()))
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The path without its signing prefix (for headers that name the object).
fn signed_inner<'a>(access: &Access, path: &'a str) -> &'a str {
    if access.signing_key.is_none() {
        return path;
    }
    path.strip_prefix("/s/")
        .and_then(|r| r.splitn(3, '/').nth(2))
        .map_or(path, |inner| &path[path.len() - inner.len() - 1..])
}

/// Equality that takes the same time wherever the first difference is (a
/// secret compared byte by byte would leak its prefix through timing).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

type Reply = Response<Chunks>;

/// A TLS handshake not done by then closes the connection.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// Requests one HTTP/2 connection may have open at once: a player has a
/// blocking playlist reload and a part or two per rendition in flight.
const H2_STREAMS: u32 = 100;

impl Origin {
    pub fn new(
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        access: Access,
        cdns: Arc<Cdns>,
        viewers: Arc<viewers::Viewers>,
    ) -> Arc<Origin> {
        Arc::new(Origin {
            store,
            metrics,
            access,
            cdns,
            viewers,
        })
    }

    /// Accept connections until `life.accept` is cancelled; over TLS when
    /// an acceptor is given (ALPN picks h2 or HTTP/1.1), else HTTP/1.1 and
    /// h2c. Every connection is a task of `life.tasks`; when `life.close` is
    /// cancelled it finishes the answers in flight and closes.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        life: Lifecycle,
    ) {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = life.accept.cancelled() => break,
            };
            let (tcp, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "origin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let origin = self.clone();
            let tls = tls.clone();
            let close = life.close.clone();
            life.tasks.spawn(async move {
                let result = match tls {
                    None => origin.connection(TokioIo::new(tcp), peer, close).await,
                    Some(acceptor) => {
                        let handshake = tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(tcp));
                        match handshake.await {
                            Ok(Ok(stream)) => {
                                origin.connection(TokioIo::new(stream), peer, close).await
                            }
                            Ok(Err(e)) => Err(e.into()),
                            Err(_) => Err("TLS handshake timed out".into()),
                        }
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "origin connection closed with an error");
                }
            });
        }
    }

    /// One connection: HTTP/1.1, and HTTP/2 with prior knowledge (h2c) or by
    /// ALPN, so one player's blocked requests share one connection.
    async fn connection<I>(
        self: Arc<Self>,
        io: I,
        peer: std::net::SocketAddr,
        close: tokio_util::sync::CancellationToken,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let service = service_fn(move |req| {
            let origin = self.clone();
            async move { Ok::<_, Infallible>(origin.handle(req, peer.ip()).await) }
        });
        let mut builder = AutoBuilder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .max_buf_size(64 * 1024);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(H2_STREAMS)
            .keep_alive_interval(Duration::from_secs(20));
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => r,
            _ = close.cancelled() => {
                // Answers in flight complete; idle keep-alive closes now.
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    }

    pub async fn handle(&self, req: Request<Incoming>, client: std::net::IpAddr) -> Reply {
        let path = req.uri().path();
        let is_get = req.method() == Method::GET;
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let signed = match &self.access.signing_key {
            None => Ok(path),
            // OPTIONS (a CORS preflight) carries no credentials.
            Some(_) if req.method() == Method::OPTIONS => Ok(path),
            Some(key) => signed::verify(key, path, unix_now()).map_err(|e| e.to_string()),
        };
        let (class, mut reply) = match signed {
            _ if !self.access.allows(req.headers()) => (
                ObjectClass::Error,
                error(StatusCode::FORBIDDEN, "this origin answers its CDN only"),
            ),
            Err(why) => (ObjectClass::Error, error(StatusCode::FORBIDDEN, &why)),
            Ok(inner) => {
                let encoding = header("accept-encoding");
                let prefix = &path[..path.len() - inner.len()];
                self.route(req.method(), inner, prefix, req.uri().query(), encoding)
                    .await
            }
        };
        let path = signed_inner(&self.access, path);
        if class == ObjectClass::Media && reply.status() == StatusCode::OK {
            reply = conditional_media(reply, path, header("if-none-match"), header("range"));
        }
        if matches!(reply.status().as_u16(), 200 | 206 | 304) {
            surrogate_keys(&mut reply, path);
            if let Some(stream) = path
                .strip_prefix("/live/")
                .and_then(|p| p.split('/').next())
            {
                let id = viewers::client_id(client);
                self.viewers.seen(stream, id, std::time::Instant::now());
            }
        }
        let cdn = self.cdns.label(req.headers());
        self.metrics
            .http_requests
            .get_or_create(&HttpLabel {
                class: class.label(),
                status: reply.status().as_u16(),
                cdn: cdn.to_string(),
            })
            .inc();
        if is_get {
            let sent = reply.body().len();
            self.metrics
                .egress_bytes
                .fetch_add(sent, std::sync::atomic::Ordering::Relaxed);
            self.metrics
                .http_bytes
                .get_or_create(&EgressLabel {
                    class: class.label(),
                    cdn: cdn.to_string(),
                })
                .inc_by(reply.body().len());
        }
        reply
    }

    async fn route(
        &self,
        method: &Method,
        path: &str,
        signed_prefix: &str,
        query: Option<&str>,
        accept_encoding: Option<&str>,
    ) -> (ObjectClass, Reply) {
        if method == Method::OPTIONS {
            return (ObjectClass::Error, error(StatusCode::NO_CONTENT, ""));
        }
        if method != Method::GET && method != Method::HEAD {
            return (
                ObjectClass::Error,
                error(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD"),
            );
        }
        let route = match route::parse(path, query) {
            Ok(r) => r,
            Err(RouteError::NotFound) => return not_found(),
            Err(RouteError::Bad(why)) => {
                return (ObjectClass::Error, error(StatusCode::BAD_REQUEST, why))
            }
        };
        match route {
            Route::Multivariant { stream } => {
                let Some((model, bytes)) = self
                    .store
                    .stream(&stream)
                    .and_then(|s| s.multivariant_with_model())
                else {
                    return not_found();
                };
                let pathways = self.cdns.pathways();
                if pathways.is_empty() {
                    let reply = ok(ObjectClass::Multivariant, bytes, Duration::ZERO);
                    return (ObjectClass::Multivariant, reply);
                }
                // Steered: rendered per request (a few lines, once per player
                // start) with the pathway this player starts on.
                let path = format!("{signed_prefix}/live/{stream}");
                let initial = self.cdns.deal();
                let text = multivariant::render_steered(&model, &pathways, &path, &initial);
                let mut reply = ok(ObjectClass::Multivariant, Bytes::from(text), Duration::ZERO);
                if !signed_prefix.is_empty() {
                    // Absolute URIs carry this viewer's token: no shared caches.
                    reply.headers_mut().insert(
                        "cache-control",
                        http::HeaderValue::from_static("private, no-store"),
                    );
                }
                (ObjectClass::Multivariant, reply)
            }
            Route::Steering { stream } => {
                let floor = self
                    .store
                    .stream(&stream)
                    .and_then(|s| s.multivariant_with_model());
                if self.cdns.pathways().is_empty() || floor.is_none() {
                    return not_found();
                }
                let floor = floor.map_or(0, |(m, _)| m.floor_bandwidth());
                let body = self.cdns.manifest(&steering::parse_query(query), floor);
                (
                    ObjectClass::Steering,
                    ok(ObjectClass::Steering, body, Duration::ZERO),
                )
            }
            Route::Media {
                stream,
                rendition,
                directives,
            } => {
                let Some(r) = self.rendition(&stream, &rendition, None) else {
                    return not_found();
                };
                let blocking = directives.msn.is_some();
                // A late player or edge (its part exists already) gets the
                // newest playlist at once, so it catches up in one round trip;
                // requests that had to wait share the rendering made when
                // their part arrived.
                let late =
                    blocking && blocking::playlist(&r.progress(), &directives) == Readiness::Ready;
                let held = Held::new(&self.metrics.blocked_requests);
                let state = wait(&r, |p| blocking::playlist(p, &directives)).await;
                drop(held);
                match state {
                    Readiness::Ready => {}
                    Readiness::TooFarAhead => {
                        return (
                            ObjectClass::Error,
                            error(
                                StatusCode::BAD_REQUEST,
                                "_HLS_msn is more than two past the last segment",
                            ),
                        )
                    }
                    Readiness::Wait => {
                        return (
                            ObjectClass::Error,
                            error(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "not available within 3 target durations",
                            ),
                        )
                    }
                    Readiness::Gone => return not_found(),
                }
                let progress = r.progress();
                let key = match (directives.msn, directives.part) {
                    (Some(m), Some(p)) => Some(SnapshotKey::Part(m, p)),
                    (Some(m), None) => Some(SnapshotKey::Segment(m)),
                    _ => None,
                };
                let Some(pls) = r.playlists(key.filter(|_| !progress.ended && !late)) else {
                    return not_found();
                };
                let class = if progress.ended {
                    ObjectClass::EndedPlaylist
                } else if blocking {
                    ObjectClass::BlockingPlaylist
                } else {
                    ObjectClass::LivePlaylist
                };
                let (plain, gz) = if directives.skip_dateranges {
                    // Rare (players skip DATERANGEs only where there are
                    // some): made from the YES form, sent uncompressed.
                    (playlist::delta_v2(&pls.delta), Bytes::new())
                } else if directives.skip {
                    (pls.delta, pls.delta_gzip)
                } else {
                    (pls.full, pls.full_gzip)
                };
                let gzip = !gz.is_empty() && accepts_gzip(accept_encoding);
                let mut reply = ok(
                    class,
                    if gzip { gz } else { plain },
                    progress.target_duration,
                );
                let h = reply.headers_mut();
                h.insert("vary", http::HeaderValue::from_static("Accept-Encoding"));
                if gzip {
                    h.insert("content-encoding", http::HeaderValue::from_static("gzip"));
                }
                (class, reply)
            }
            Route::Init {
                stream,
                rendition,
                epoch,
                id,
            } => {
                match self
                    .rendition(&stream, &rendition, Some(&epoch))
                    .and_then(|r| r.init(id))
                {
                    Some(b) => (
                        ObjectClass::Media,
                        ok(ObjectClass::Media, b, Duration::ZERO),
                    ),
                    None => not_found(),
                }
            }
            Route::Part {
                stream,
                rendition,
                epoch,
                msn,
                part,
            } => {
                let Some(r) = self.rendition(&stream, &rendition, Some(&epoch)) else {
                    return not_found();
                };
                let held = Held::new(&self.metrics.blocked_requests);
                let state = wait(&r, |p| {
                    blocking::part(p, msn, part, r.part(msn, part).is_some())
                })
                .await;
                drop(held);
                media(state, r.part(msn, part).map(Chunks::from))
            }
            Route::Segment {
                stream,
                rendition,
                epoch,
                msn,
            } => {
                let Some(r) = self.rendition(&stream, &rendition, Some(&epoch)) else {
                    return not_found();
                };
                let held = Held::new(&self.metrics.blocked_requests);
                let state = wait(&r, |p| blocking::segment(p, msn, r.segment(msn).is_some())).await;
                drop(held);
                media(state, r.segment(msn).map(Chunks::new))
            }
        }
    }

    fn rendition(
        &self,
        stream: &str,
        rendition: &str,
        epoch: Option<&str>,
    ) -> Option<Arc<Rendition>> {
        let entry: Arc<StreamEntry> = match epoch {
            // Media URLs name their session: a kept VOD stays servable after
            // the name went live again.
            Some(e) => self.store.session(stream, e)?,
            None => self.store.stream(stream)?,
        };
        entry.find_rendition(rendition)
    }
}

/// Counts a request held in an LL-HLS wait for as long as it lives.
struct Held<'a>(&'a prometheus_client::metrics::gauge::Gauge);

impl<'a> Held<'a> {
    fn new(g: &'a prometheus_client::metrics::gauge::Gauge) -> Self {
        g.inc();
        Held(g)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Hold until `check` stops saying Wait, for at most three target durations.
/// Every waiter on a rendition wakes on the same notification.
async fn wait(r: &Rendition, check: impl Fn(&crate::store::Progress) -> Readiness) -> Readiness {
    let mut rx = r.subscribe();
    let progress = r.progress();
    let limit = 3 * progress.target_duration.max(Duration::from_secs(1));
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let state = check(&r.progress());
        if state != Readiness::Wait {
            return state;
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => continue,
            _ => return Readiness::Wait,
        }
    }
}

/// Whether `Accept-Encoding` takes gzip (RFC 9110 12.5.3: `gzip` or `*`,
/// not with `q=0`).
fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|v| {
        v.split(',').any(|item| {
            let mut f = item.split(';');
            let coding = f.next().unwrap_or("").trim();
            let q_zero = f.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
        })
    })
}

/// ETag, 304 and byte ranges for immutable media.
fn conditional_media(
    mut reply: Reply,
    path: &str,
    if_none_match: Option<&str>,
    range: Option<&str>,
) -> Reply {
    use conditional::Answer;
    let etag = conditional::etag(path);
    let len = reply.body().len();
    let answer = conditional::answer(&etag, len, if_none_match, range);
    let h = reply.headers_mut();
    if let Ok(v) = http::HeaderValue::from_str(&etag) {
        h.insert("etag", v);
    }
    h.insert("accept-ranges", http::HeaderValue::from_static("bytes"));
    let content_range = |v: String| http::HeaderValue::from_str(&v).ok();
    match answer {
        Answer::Full => {}
        Answer::NotModified => {
            *reply.status_mut() = StatusCode::NOT_MODIFIED;
            *reply.body_mut() = Chunks::default();
        }
        Answer::Partial { start, end } => {
            let part = reply.body().slice(start, end);
            *reply.body_mut() = part;
            *reply.status_mut() = StatusCode::PARTIAL_CONTENT;
            if let Some(v) = content_range(format!("bytes {start}-{}/{len}", end - 1)) {
                reply.headers_mut().insert("content-range", v);
            }
        }
        Answer::Unsatisfiable => {
            *reply.body_mut() = Chunks::default();
            *reply.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            if let Some(v) = content_range(format!("bytes */{len}")) {
                reply.headers_mut().insert("content-range", v);
            }
        }
    }
    reply
}

/// `Surrogate-Key` for purging a stream, or one rendition of it, at the CDN:
/// `castline-STREAM` and `castline-STREAM-RENDITION`.
fn surrogate_keys(reply: &mut Reply, path: &str) {
    let mut parts = path.trim_start_matches("/live/").split('/');
    let (Some(stream), rest) = (parts.next(), parts.next()) else {
        return;
    };
    let mut keys = format!("castline-{stream}");
    if let Some(rendition) = rest.filter(|r| !r.ends_with(".m3u8")) {
        keys.push_str(&format!(" castline-{stream}-{rendition}"));
    }
    if let Ok(v) = http::HeaderValue::from_str(&keys) {
        reply.headers_mut().insert("surrogate-key", v);
    }
}

fn media(state: Readiness, bytes: Option<Chunks>) -> (ObjectClass, Reply) {
    match (state, bytes) {
        (Readiness::Ready, Some(b)) => (
            ObjectClass::Media,
            ok(ObjectClass::Media, b, Duration::ZERO),
        ),
        (Readiness::Wait, _) => (
            ObjectClass::Error,
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "not available within 3 target durations",
            ),
        ),
        _ => not_found(),
    }
}

fn ok(class: ObjectClass, body: impl Into<Chunks>, target_duration: Duration) -> Reply {
    let mut r = Response::new(body.into());
    let h = r.headers_mut();
    h.insert(
        "content-type",
        http::HeaderValue::from_static(class.content_type()),
    );
    if let Ok(v) = http::HeaderValue::from_str(&class.cache_control(target_duration)) {
        h.insert("cache-control", v);
    }
    h.insert(
        "access-control-allow-origin",
        http::HeaderValue::from_static("*"),
    );
    // What players read of a cross-origin answer (hls.js reads Age and Date
    // for live timing; ranges need Content-Range).
    h.insert(
        "access-control-expose-headers",
        http::HeaderValue::from_static("Content-Length, Content-Range, ETag, Age, Date"),
    );
    // Resource Timing for cross-origin players (QoE beacons, ABR tooling):
    // without it a browser hides protocol, sizes and phases of each fetch.
    h.insert("timing-allow-origin", http::HeaderValue::from_static("*"));
    r
}

fn error(status: StatusCode, why: &str) -> Reply {
    let mut r = ok(
        ObjectClass::Error,
        Bytes::from(format!("{why}\n")),
        Duration::ZERO,
    );
    if status == StatusCode::NO_CONTENT {
        *r.body_mut() = Chunks::default();
        let h = r.headers_mut();
        h.insert(
            "access-control-allow-methods",
            http::HeaderValue::from_static("GET, HEAD, OPTIONS"),
        );
        h.insert(
            "access-control-max-age",
            http::HeaderValue::from_static("86400"),
        );
        h.insert(
            "access-control-allow-headers",
            http::HeaderValue::from_static("Range, If-None-Match"),
        );
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        r.headers_mut().insert(
            "allow",
            http::HeaderValue::from_static("GET, HEAD, OPTIONS"),
        );
    }
    if status != StatusCode::NOT_FOUND {
        r.headers_mut()
            .insert("cache-control", http::HeaderValue::from_static("no-store"));
    }
    *r.status_mut() = status;
    r
}

fn not_found() -> (ObjectClass, Reply) {
    (
        ObjectClass::Error,
        error(StatusCode::NOT_FOUND, "not found"),
    )
}

#[cfg(test)]
mod tests {
    use super::accepts_gzip;

    #[test]
    fn the_cdn_secret_is_compared_whole() {
        let access = super::Access {
            cdn_secret: Some((http::HeaderName::from_static("x-s"), "s3cret".into())),
            signing_key: None,
        };
        let mut h = http::HeaderMap::new();
        assert!(!access.allows(&h));
        h.insert("x-s", http::HeaderValue::from_static("s3cre"));
        assert!(!access.allows(&h));
        h.insert("x-s", http::HeaderValue::from_static("s3cret"));
        assert!(access.allows(&h));
        assert!(super::Access::default().allows(&http::HeaderMap::new()));
    }

    #[test]
    fn accept_encoding_is_read_as_rfc_9110_says() {
        assert!(accepts_gzip(Some("gzip, deflate, br")));
        assert!(accepts_gzip(Some("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("br, identity")));
        assert!(!accepts_gzip(None));
    }
}
