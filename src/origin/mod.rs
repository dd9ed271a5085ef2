//! The HTTP origin (hyper 1): routes requests to bytes already in the store,
//! holds LL-HLS blocking requests until the store says they can be answered,
//! and sets headers per object class. It renders nothing per request but the
//! small answers of content steering (`steering.rs`).

pub mod access;
pub mod blocking;
pub mod body;
pub mod cache;
pub mod conditional;
mod growing;
pub mod idle;
mod reply;
pub mod route;
pub mod signed;
pub mod slots;
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
use crate::store::object::InMemory;
use crate::store::{Rendition, SessionEntry, SnapshotKey, Store, Stored};
use steering::Cdns;

pub use access::Access;
use access::{signed_inner, unix_now};
use reply::{accepts_gzip, error, media, not_found, ok, surrogate_keys, MediaAsk};

pub struct Origin {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    access: Access,
    cdns: Arc<Cdns>,
    viewers: Arc<viewers::Viewers>,
    slots: Arc<slots::Slots>,
    /// A connection with no request in flight this long is closed.
    idle_timeout: Duration,
    /// Lines about refused connections, a few per period.
    refusal_log: crate::log_limit::LogLimiter,
}

pub(crate) type Reply = Response<Chunks>;

/// A request head not read by then closes the connection (hyper's deadline
/// between HTTP/1.1 requests; `idle` holds a first request to it too).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS handshake not done by then closes the connection.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// A multivariant request for a live session that has none yet (its
/// renditions each need a first segment: about a second with the ladder, up
/// to `hls.max_segment_duration` in passthrough) is held this long for it,
/// then answered 404; a session that ends meanwhile is answered at once.
const MULTIVARIANT_HOLD: Duration = Duration::from_secs(10);

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
        slots: Arc<slots::Slots>,
        idle_timeout: Duration,
    ) -> Arc<Origin> {
        Arc::new(Origin {
            store,
            metrics,
            access,
            cdns,
            viewers,
            slots,
            idle_timeout,
            refusal_log: crate::log_limit::LogLimiter::new(Duration::from_secs(10)),
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
        life.accept_loop(listener, "origin", |tcp, peer, close| {
            // Over a limit: dropped, so closed at once.
            let slot = match self.slots.admit(peer.ip()) {
                Ok(slot) => slot,
                Err(refusal) => {
                    self.refused(peer, refusal);
                    return None;
                }
            };
            let _ = tcp.set_nodelay(true);
            let origin = self.clone();
            let tls = tls.clone();
            Some(async move {
                let _slot = slot;
                let metrics = origin.metrics.clone();
                let _open = Held::new(&metrics.http_connections);
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
            })
        })
        .await;
    }

    fn refused(&self, peer: std::net::SocketAddr, refusal: slots::Refusal) {
        let reason = refusal.reason();
        self.metrics
            .http_refusals
            .get_or_create(&crate::metrics::ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
        if let Some(held_back) = self.refusal_log.allow(reason, std::time::Instant::now()) {
            tracing::warn!(%peer, held_back, "origin connection refused: {refusal}");
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
        let activity = Arc::new(idle::Activity::new(tokio::time::Instant::now()));
        let idle_timeout = self.idle_timeout;
        let busy = activity.clone();
        let service = service_fn(move |req| {
            let origin = self.clone();
            let busy = busy.clone();
            async move {
                let _busy = busy.begin();
                Ok::<_, Infallible>(origin.handle(req, peer.ip()).await)
            }
        });
        let mut builder = AutoBuilder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
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
            _ = idle::idle(&activity, idle_timeout, HEADER_TIMEOUT) => {
                // No request for origin.idle_timeout: its slot goes back (on
                // HTTP/2 with a GOAWAY). A body still being sent gets as long
                // again to finish; a client that stopped reading it is dropped.
                conn.as_mut().graceful_shutdown();
                match tokio::time::timeout(idle_timeout, conn).await {
                    Ok(r) => r,
                    Err(_) => Err("an idle connection did not finish its answer".into()),
                }
            }
        }
    }

    pub async fn handle(&self, req: Request<Incoming>, client: std::net::IpAddr) -> Reply {
        let is_get = req.method() == Method::GET;
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        // A token a CDN took off the path at its edge comes back in a header
        // with the edge's proof (only where the config says the CDN checks
        // tokens, and the request carries the CDN secret); it is checked as
        // if it led the path, with a little grace on its expiry (the edge
        // checked that already).
        let edge_token = self
            .access
            .signing_key
            .as_ref()
            .filter(|_| self.access.edge_tokens && self.access.allows(req.headers()))
            .filter(|_| !req.uri().path().starts_with("/s/"))
            .and_then(|key| signed::edge_token(key, header(signed::TOKEN_HEADER)?))
            .map(|token| format!("{token}{}", req.uri().path()));
        let path = edge_token.as_deref().unwrap_or(req.uri().path());
        let now = if edge_token.is_some() {
            unix_now().saturating_sub(signed::EDGE_GRACE_SECS)
        } else {
            unix_now()
        };
        let signed = match &self.access.signing_key {
            None => Ok(path),
            // OPTIONS (a CORS preflight) carries no credentials.
            Some(_) if req.method() == Method::OPTIONS => Ok(path),
            Some(key) => signed::verify(key, path, now).map_err(|e| e.to_string()),
        };
        // The path without a signed-URL prefix: what names the object.
        let identity = signed_inner(&self.access, path);
        let (class, mut reply) = match signed {
            _ if !self.access.allows(req.headers()) => (
                ObjectClass::Error,
                error(StatusCode::FORBIDDEN, "this origin answers its CDN only"),
            ),
            Err(why) => (ObjectClass::Error, error(StatusCode::FORBIDDEN, &why)),
            Ok(inner) => {
                let encoding = header("accept-encoding");
                let prefix = &path[..path.len() - inner.len()];
                let ask = MediaAsk {
                    path: identity,
                    headers: req.headers(),
                    head: req.method() == Method::HEAD,
                };
                self.route(
                    req.method(),
                    inner,
                    prefix,
                    req.uri().query(),
                    encoding,
                    &ask,
                )
                .await
            }
        };
        let path = identity;
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
        ask: &MediaAsk<'_>,
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
            Route::Multivariant { stream } => self.multivariant(&stream, signed_prefix).await,
            Route::Steering { stream } => self.steering(&stream, query),
            Route::Media {
                stream,
                rendition,
                directives,
            } => {
                self.media_playlist(&stream, &rendition, directives, accept_encoding)
                    .await
            }
            Route::Init {
                stream,
                rendition,
                epoch,
                id,
            } => {
                let init = self
                    .rendition(&stream, &rendition, Some(&epoch))
                    .and_then(|r| r.init(id))
                    .map(|b| Box::new(InMemory(vec![b])) as Stored);
                media(Readiness::Ready, init, ask, &self.metrics).await
            }
            Route::Part {
                stream,
                rendition,
                epoch,
                msn,
                part,
            } => self.part(&stream, &rendition, &epoch, msn, part, ask).await,
            Route::Segment {
                stream,
                rendition,
                epoch,
                msn,
            } => self.segment(&stream, &rendition, &epoch, msn, ask).await,
        }
    }

    /// The multivariant playlist: as rendered, or steered (rendered per
    /// player start with the pathway it is dealt).
    async fn multivariant(&self, stream: &str, signed_prefix: &str) -> (ObjectClass, Reply) {
        let Some(entry) = self.store.stream(stream) else {
            return not_found();
        };
        let first = match entry.multivariant_with_model() {
            Some(m) => Some(m),
            None => {
                let _held = Held::new(&self.metrics.blocked_requests);
                entry.multivariant_within(MULTIVARIANT_HOLD).await
            }
        };
        let Some((model, bytes)) = first else {
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

    /// The content steering manifest.
    fn steering(&self, stream: &str, query: Option<&str>) -> (ObjectClass, Reply) {
        let floor = self
            .store
            .stream(stream)
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

    /// A media playlist, held while its delivery directives ask (LL-HLS
    /// blocking reload).
    async fn media_playlist(
        &self,
        stream: &str,
        rendition: &str,
        directives: route::Directives,
        accept_encoding: Option<&str>,
    ) -> (ObjectClass, Reply) {
        let Some(r) = self.rendition(stream, rendition, None) else {
            return not_found();
        };
        let blocking = directives.msn.is_some();
        // A late player or edge (its part exists already) gets the
        // newest playlist at once, so it catches up in one round trip;
        // requests that had to wait share the rendering made when
        // their part arrived.
        let late = blocking && blocking::playlist(&r.progress(), &directives) == Readiness::Ready;
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

    /// A part, the preload-hinted one held until it is complete.
    async fn part(
        &self,
        stream: &str,
        rendition: &str,
        epoch: &str,
        msn: u64,
        part: u32,
        ask: &MediaAsk<'_>,
    ) -> (ObjectClass, Reply) {
        let Some(r) = self.rendition(stream, rendition, Some(epoch)) else {
            return not_found();
        };
        let held = Held::new(&self.metrics.blocked_requests);
        let state = wait(&r, |p| blocking::part(p, msn, part, r.has_part(msn, part))).await;
        drop(held);
        media(state, r.part(msn, part), ask, &self.metrics).await
    }

    /// A segment: held until it is begun; one still being written is sent
    /// as it grows.
    async fn segment(
        &self,
        stream: &str,
        rendition: &str,
        epoch: &str,
        msn: u64,
        ask: &MediaAsk<'_>,
    ) -> (ObjectClass, Reply) {
        let Some(r) = self.rendition(stream, rendition, Some(epoch)) else {
            return not_found();
        };
        // Held until the segment is begun: one still being written
        // (named by byte-range parts and their preload hint) is sent
        // as it grows.
        let held = Held::new(&self.metrics.blocked_requests);
        let begun = |p: &crate::store::Progress| {
            blocking::segment(p, msn, r.has_segment(msn) || r.has_part(msn, 0))
        };
        let state = wait(&r, begun).await;
        drop(held);
        if state == Readiness::Ready && !r.has_segment(msn) {
            return growing::answer(r, msn, ask, &self.metrics).await;
        }
        media(state, r.segment(msn), ask, &self.metrics).await
    }

    fn rendition(
        &self,
        stream: &str,
        rendition: &str,
        epoch: Option<&str>,
    ) -> Option<Arc<Rendition>> {
        let entry: Arc<SessionEntry> = match epoch {
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

/// The longest a request is held for a rendition to move: three target
/// durations (a blocking playlist request, a part, a growing segment).
fn hold_limit(r: &Rendition) -> Duration {
    3 * r.progress().target_duration.max(Duration::from_secs(1))
}

/// Hold until `check` stops saying Wait, for at most three target durations.
/// Every waiter on a rendition wakes on the same notification.
async fn wait(r: &Rendition, check: impl Fn(&crate::store::Progress) -> Readiness) -> Readiness {
    let mut rx = r.subscribe();
    let deadline = tokio::time::Instant::now() + hold_limit(r);
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
