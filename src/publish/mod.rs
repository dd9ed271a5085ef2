//! The seam between packaging and serving: what one rendition's packager
//! says, in the order it happens, and nothing else. The packager never reads
//! back what it published.
//!
//! [`local::LocalRendition`] serves it from this process: it keeps the
//! rendition's playlist model, renders the playlists, applies the store's
//! budgets and puts everything in the store. In role `ingest`,
//! [`push::Pusher`] sends the same events to every origin over HTTP
//! ([`wire`]), and each origin's [`receive::Receiver`] applies them to a
//! `LocalRendition` of its own: one code path builds every playlist.

pub mod fill;
pub mod listener;
pub mod local;
pub mod push;
pub mod receive;
pub mod wire;

use std::sync::Arc;

use bytes::Bytes;

use crate::metrics::Metrics;
use crate::package::packager::PackagerConfig;
use crate::package::segmenter::Part;
use crate::store::{RenditionMeta, Store};
pub use wire::SessionPlan;

/// One thing a rendition's packager made.
#[derive(Debug, Clone)]
pub enum Event {
    /// Init segment `id` (a new one follows a change of the track).
    Init { id: u32, data: Bytes },
    /// A part is complete; `next` is the part that comes after it (msn,
    /// index), for the preload hint.
    Part { part: Part, next: (u64, u32) },
    /// Segment `msn` is complete (`duration` seconds); `meta` describes the
    /// rendition so far (bandwidth, codecs, resolution).
    SegmentEnd {
        msn: u64,
        duration: f64,
        meta: Option<RenditionMeta>,
        next: (u64, u32),
    },
    /// The rendition ended for good: nothing follows.
    End,
}

/// Where a rendition's packager sends what it makes.
pub trait Publish: Send {
    fn publish(&mut self, event: Event);
}

/// Where a process's sessions are published: its own store (role `all`)
/// or the origins (role `ingest`).
pub enum Target {
    Local {
        store: Arc<Store>,
        metrics: Arc<Metrics>,
    },
    Push(Arc<push::Pusher>),
}

impl Target {
    /// A session of `stream` starts with the renditions and timing of `plan`;
    /// with the origins, it may continue one another ingest pod began
    /// ([`push::Pusher::open`]).
    pub async fn open(
        &self,
        stream: &str,
        plan: SessionPlan,
        takeover_after: std::time::Duration,
    ) -> (Session, Option<push::Continuation>) {
        match self {
            Target::Local { store, metrics } => {
                let entry = store.open_stream(stream);
                let s = local::LocalSession::open(store.clone(), entry, &plan, metrics.clone());
                (Session::Local(s), None)
            }
            Target::Push(p) => {
                let (s, c) = p.open(stream, plan, takeover_after).await;
                (Session::Push(s), c)
            }
        }
    }
}

/// One publishing session, as its pipeline sees it.
pub enum Session {
    Local(local::LocalSession),
    Push(push::PushSession),
}

impl Session {
    /// The session's name in URLs.
    pub fn epoch(&self) -> &str {
        match self {
            Session::Local(s) => s.entry().epoch(),
            Session::Push(s) => s.epoch(),
        }
    }

    /// Another ingest pod feeds this stream's session on the origins: nothing
    /// of this one is published.
    pub fn refused(&self) -> bool {
        match self {
            Session::Local(_) => false,
            Session::Push(s) => s.refused(),
        }
    }

    /// Where `rendition`'s packager sends what it makes.
    pub fn rendition(&self, rendition: &str, cfg: PackagerConfig) -> Box<dyn Publish> {
        match self {
            Session::Local(s) => Box::new(s.rendition(rendition, cfg)),
            Session::Push(s) => Box::new(s.rendition(rendition)),
        }
    }

    /// Segments may start without a keyframe from now on.
    pub fn mark_dependent(&self) {
        match self {
            Session::Local(s) => s.entry().mark_dependent(),
            Session::Push(s) => s.mark_dependent(),
        }
    }

    /// Every rendition has ended: the session ends (kept as VOD for
    /// `vod_keep` where it is served, unless `stop_vod` comes first).
    pub async fn end(
        self,
        vod_keep: std::time::Duration,
        stop_vod: &tokio_util::sync::CancellationToken,
    ) {
        match self {
            Session::Local(s) => s.end(vod_keep, stop_vod).await,
            Session::Push(s) => s.end(),
        }
    }
}
