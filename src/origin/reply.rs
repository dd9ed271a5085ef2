//! Building answers: headers per object class, ETag/304/Range on media,
//! Surrogate-Key, and the error answers.

use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};

use super::blocking::Readiness;
use super::body::Chunks;
use super::cache::ObjectClass;
use super::conditional;
use super::Reply;
use crate::metrics::{Metrics, TierLabel};
use crate::store::Stored;

/// Whether `Accept-Encoding` takes gzip (RFC 9110 12.5.3: `gzip` or `*`,
/// not with `q=0`).
pub(super) fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
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

/// What a media request asks beside its route: the path its ETag is made
/// from (the object's identity), its headers (for `If-None-Match` and
/// `Range`, looked up only for media), and whether it is a HEAD (answered
/// with the length, nothing read).
pub(super) struct MediaAsk<'a> {
    pub path: &'a str,
    pub headers: &'a http::HeaderMap,
    pub head: bool,
}

/// A media answer, decided from the object's identity and length (200, 304,
/// 206, 416) before anything is read; then only the bytes sent are read
/// from the object's tier (a revalidation or a HEAD reads nothing). So a
/// 304, 416 or HEAD is answered from the store's index: for an object on
/// disk whose file expired a moment ago it still answers as if it were
/// there (its URL named those bytes for good); a read of it is a 404.
pub(super) async fn media(
    state: Readiness,
    object: Option<Stored>,
    ask: &MediaAsk<'_>,
    metrics: &Metrics,
) -> (ObjectClass, Reply) {
    use conditional::Answer;
    let object = match (state, object) {
        (Readiness::Ready, Some(o)) => o,
        (Readiness::Wait, _) => {
            return (
                ObjectClass::Error,
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not available within 3 target durations",
                ),
            )
        }
        _ => return not_found(),
    };
    let etag = conditional::etag(ask.path);
    let len = object.len();
    let header = |name| ask.headers.get(name).and_then(|v| v.to_str().ok());
    let (status, range) =
        match conditional::answer(&etag, len, header("if-none-match"), header("range")) {
            Answer::Full => (StatusCode::OK, Some((0, len))),
            Answer::NotModified => (StatusCode::NOT_MODIFIED, None),
            Answer::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, Some((start, end))),
            Answer::Unsatisfiable => (StatusCode::RANGE_NOT_SATISFIABLE, None),
        };
    let body = match range {
        None => Chunks::default(),
        // hyper sends a HEAD answer's own Content-Length and no body.
        Some(_) if ask.head => Chunks::default(),
        Some((start, end)) => match object.read(start, end).await {
            Ok(chunks) => {
                let body = Chunks::new(chunks);
                let tier = TierLabel {
                    tier: object.tier().label(),
                };
                metrics.storage_reads.get_or_create(&tier).inc();
                metrics
                    .storage_read_bytes
                    .get_or_create(&tier)
                    .inc_by(body.len());
                body
            }
            // Removed from disk meanwhile: it expired.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return not_found(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a media object");
                return not_found();
            }
        },
    };
    let mut reply = ok(ObjectClass::Media, body, Duration::ZERO);
    *reply.status_mut() = status;
    let h = reply.headers_mut();
    if let Ok(v) = http::HeaderValue::from_str(&etag) {
        h.insert("etag", v);
    }
    h.insert("accept-ranges", http::HeaderValue::from_static("bytes"));
    let content_range = match (status, range) {
        (StatusCode::PARTIAL_CONTENT, Some((start, end))) => {
            Some(format!("bytes {start}-{}/{len}", end - 1))
        }
        (StatusCode::RANGE_NOT_SATISFIABLE, _) => Some(format!("bytes */{len}")),
        _ => None,
    };
    if let Some(v) = content_range.and_then(|v| http::HeaderValue::from_str(&v).ok()) {
        h.insert("content-range", v);
    }
    if let (true, Some((start, end))) = (ask.head, range) {
        h.insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from(end - start),
        );
    }
    (ObjectClass::Media, reply)
}

/// `Surrogate-Key` for purging a stream, or one rendition of it, at the CDN:
/// `castline-STREAM` and `castline-STREAM-RENDITION`.
pub(super) fn surrogate_keys(reply: &mut Reply, path: &str) {
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

pub(super) fn ok(class: ObjectClass, body: impl Into<Chunks>, target_duration: Duration) -> Reply {
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

pub(super) fn error(status: StatusCode, why: &str) -> Reply {
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

pub(super) fn not_found() -> (ObjectClass, Reply) {
    (
        ObjectClass::Error,
        error(StatusCode::NOT_FOUND, "not found"),
    )
}

#[cfg(test)]
mod tests {
    use super::accepts_gzip;

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
