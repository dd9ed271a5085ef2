//! A segment still being written, served as it grows. With
//! `hls.part_addressing = "byteranges"` the playlist names parts as byte
//! ranges of their segment's URL and hints the rest of the open segment, so
//! players ask for a segment before it is complete: the whole of it (Shaka
//! Player reads it as one response, appending each part as it arrives), a
//! listed part's range, or the hint's range to 2^53-1 (RFC 8673). Parts are
//! only ever sent whole (draft-pantos-hls-rfc8216bis 6.2.6). A complete
//! segment is answered as any stored object ([`super::reply::media`]).

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::StatusCode;
use tokio::sync::watch;

use super::blocking::Readiness;
use super::body::Chunks;
use super::cache::ObjectClass;
use super::conditional::{self, Growing};
use super::reply::{error, media, not_found, ok, MediaAsk};
use super::{hold_limit, Reply};
use crate::metrics::Metrics;
use crate::store::Rendition;

/// Answer a request for segment `msn` of `r`, begun and maybe not complete.
pub(super) async fn answer(
    r: Arc<Rendition>,
    msn: u64,
    ask: &MediaAsk<'_>,
    metrics: &Metrics,
) -> (ObjectClass, Reply) {
    let header = |name| ask.headers.get(name).and_then(|v| v.to_str().ok());
    let etag = conditional::etag(ask.path);
    if conditional::not_modified(&etag, header("if-none-match")) && !r.has_segment(msn) {
        // Its URL names its bytes for good, complete or not (a complete
        // one's 304 comes from `media` below).
        let mut reply = ok(ObjectClass::Media, Chunks::default(), Duration::ZERO);
        *reply.status_mut() = StatusCode::NOT_MODIFIED;
        if let Ok(v) = http::HeaderValue::from_str(&etag) {
            reply.headers_mut().insert("etag", v);
        }
        return (ObjectClass::Media, reply);
    }
    let range = conditional::range_spec(header("range"));
    let limit = hold_limit(&r);
    let mut rx = r.subscribe();
    let decision = loop {
        rx.borrow_and_update();
        let Some((parts, complete)) = r.parts_from(msn, 0) else {
            return not_found();
        };
        if complete {
            return media(Readiness::Ready, r.segment(msn), ask, metrics).await;
        }
        let available: u64 = parts.iter().map(|p| p.len() as u64).sum();
        match conditional::growing(range, available) {
            Growing::Wait => {}
            Growing::Now { start, end } => break (parts, Growing::Now { start, end }),
            other => break (Vec::new(), other),
        }
        if !matches!(tokio::time::timeout(limit, rx.changed()).await, Ok(Ok(()))) {
            return (
                ObjectClass::Error,
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not available within 3 target durations",
                ),
            );
        }
    };
    let (status, content_range, body) = match decision {
        (parts, Growing::Now { start, end }) => (
            StatusCode::PARTIAL_CONTENT,
            format!("bytes {start}-{}/*", end - 1),
            Chunks::new(slice(parts, start, end)),
        ),
        (_, Growing::Live { start, last }) => (
            StatusCode::PARTIAL_CONTENT,
            format!("bytes {start}-{last}/*"),
            Chunks::growing(tail(r, msn, start, last.saturating_add(1), limit).boxed()),
        ),
        _ => (
            StatusCode::OK,
            String::new(),
            Chunks::growing(tail(r, msn, 0, u64::MAX, limit).boxed()),
        ),
    };
    let body = if ask.head {
        Chunks::growing(futures::stream::empty().boxed())
    } else {
        body
    };
    let mut reply = ok(ObjectClass::Media, body, Duration::ZERO);
    *reply.status_mut() = status;
    let h = reply.headers_mut();
    if let Ok(v) = http::HeaderValue::from_str(&etag) {
        h.insert("etag", v);
    }
    h.insert("accept-ranges", http::HeaderValue::from_static("bytes"));
    if let Ok(v) = http::HeaderValue::from_str(&content_range) {
        if !content_range.is_empty() {
            h.insert("content-range", v);
        }
    }
    (ObjectClass::Media, reply)
}

/// Bytes `start..end` of the chain `parts` (end exclusive).
fn slice(parts: Vec<Bytes>, start: u64, end: u64) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut at = 0u64;
    for p in parts {
        let len = p.len() as u64;
        let (from, to) = (start.max(at), end.min(at + len));
        if from < to {
            out.push(p.slice((from - at) as usize..(to - at) as usize));
        }
        at += len;
    }
    out
}

/// Where a growing answer is.
struct Tail {
    r: Arc<Rendition>,
    rx: watch::Receiver<u64>,
    msn: u64,
    /// The next part to send, and its offset in the segment.
    next: usize,
    at: u64,
    /// The bytes to send: `start..end` (end exclusive).
    start: u64,
    end: u64,
    ready: VecDeque<Bytes>,
    done: bool,
    limit: Duration,
}

/// Bytes `start..end` of segment `msn`, each part as soon as it is made;
/// the stream ends with the segment (or at `end`). It fails, so the
/// response is cut off rather than ended, if the segment goes or stops
/// growing for `limit`.
fn tail(
    r: Arc<Rendition>,
    msn: u64,
    start: u64,
    end: u64,
    limit: Duration,
) -> impl futures::Stream<Item = io::Result<Bytes>> + Send + 'static {
    let rx = r.subscribe();
    let state = Tail {
        r,
        rx,
        msn,
        next: 0,
        at: 0,
        start,
        end,
        ready: VecDeque::new(),
        done: false,
        limit,
    };
    futures::stream::unfold(state, |mut t| async move {
        loop {
            if let Some(b) = t.ready.pop_front() {
                return Some((Ok(b), t));
            }
            if t.done {
                return None;
            }
            t.rx.borrow_and_update();
            let Some((parts, complete)) = t.r.parts_from(t.msn, t.next) else {
                t.done = true;
                let gone = io::Error::new(io::ErrorKind::NotFound, "the segment is gone");
                return Some((Err(gone), t));
            };
            let made = parts.len();
            let lens: u64 = parts.iter().map(|p| p.len() as u64).sum();
            let from = t.at;
            t.ready.extend(slice(
                parts,
                t.start.saturating_sub(from),
                t.end.saturating_sub(from),
            ));
            t.next += made;
            t.at += lens;
            t.done = complete || t.at >= t.end;
            if !t.ready.is_empty() || t.done {
                continue;
            }
            if !matches!(
                tokio::time::timeout(t.limit, t.rx.changed()).await,
                Ok(Ok(()))
            ) {
                t.done = true;
                let stalled =
                    io::Error::new(io::ErrorKind::TimedOut, "the segment stopped growing");
                return Some((Err(stalled), t));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::slice;
    use bytes::Bytes;

    #[test]
    fn a_range_of_a_chain_of_parts() {
        let parts = || vec![Bytes::from_static(b"abc"), Bytes::from_static(b"defg")];
        let cat = |v: Vec<Bytes>| v.concat();
        assert_eq!(cat(slice(parts(), 0, 7)), b"abcdefg");
        assert_eq!(cat(slice(parts(), 2, 5)), b"cde");
        assert_eq!(cat(slice(parts(), 3, 7)), b"defg");
        assert_eq!(cat(slice(parts(), 5, u64::MAX)), b"fg");
        assert!(slice(parts(), 7, u64::MAX).is_empty());
    }
}
