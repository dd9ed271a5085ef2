//! A response body made of several `Bytes` sent one after another, with an
//! exact length (so hyper sends Content-Length): a segment is served as the
//! chain of its parts, the bytes the store already holds, without a copy.
//! (http-body-util's `Full` holds one buffer; its streaming bodies have no
//! exact length.) A segment still being written is sent as it grows: a
//! stream of its parts follows, with no length (chunked), and an error from
//! it aborts the response so no cache keeps a cut-short object.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use hyper::body::{Body, Frame, SizeHint};

#[derive(Default)]
pub struct Chunks {
    chunks: VecDeque<Bytes>,
    remaining: u64,
    /// What follows, as it comes (its length unknown).
    tail: Option<BoxStream<'static, std::io::Result<Bytes>>>,
}

impl fmt::Debug for Chunks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chunks")
            .field("remaining", &self.remaining)
            .field("tail", &self.tail.is_some())
            .finish()
    }
}

impl Chunks {
    pub fn new(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        let chunks: VecDeque<Bytes> = chunks.into_iter().filter(|c| !c.is_empty()).collect();
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        Chunks {
            chunks,
            remaining,
            tail: None,
        }
    }

    /// Bytes that come as they are made (no Content-Length).
    pub fn growing(tail: BoxStream<'static, std::io::Result<Bytes>>) -> Self {
        Chunks {
            tail: Some(tail),
            ..Chunks::default()
        }
    }

    /// The length known now (all of it unless it grows).
    pub fn len(&self) -> u64 {
        self.remaining
    }

    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }
}

impl From<Bytes> for Chunks {
    fn from(b: Bytes) -> Self {
        Chunks::new([b])
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(c) = self.chunks.pop_front() {
            self.remaining -= c.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(c))));
        }
        let Some(tail) = self.tail.as_mut() else {
            return Poll::Ready(None);
        };
        let next = futures::ready!(tail.poll_next_unpin(cx));
        if next.is_none() {
            self.tail = None;
        }
        Poll::Ready(next.map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && self.tail.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.tail.is_some() {
            let mut h = SizeHint::new();
            h.set_lower(self.remaining);
            return h;
        }
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn chunks_come_out_in_order_with_an_exact_length() {
        let body = Chunks::new([
            Bytes::from_static(b"ab"),
            Bytes::new(),
            Bytes::from_static(b"cde"),
        ]);
        assert_eq!(body.size_hint().exact(), Some(5));
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"abcde");
    }

    #[tokio::test]
    async fn a_growing_body_has_no_length_and_passes_its_error_on() {
        let parts =
            futures::stream::iter([Ok(Bytes::from_static(b"ab")), Ok(Bytes::from_static(b"c"))]);
        let body = Chunks::growing(parts.boxed());
        assert_eq!(body.size_hint().exact(), None);
        assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"abc");
        let cut = futures::stream::iter([
            Ok(Bytes::from_static(b"ab")),
            Err(std::io::Error::from(std::io::ErrorKind::TimedOut)),
        ]);
        assert!(Chunks::growing(cut.boxed()).collect().await.is_err());
    }
}
