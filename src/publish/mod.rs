//! The seam between packaging and serving: what one rendition's packager
//! says, in the order it happens, and nothing else. The packager never reads
//! back what it published.
//!
//! [`local::LocalRendition`] serves it from this process: it keeps the
//! rendition's playlist model, renders the playlists, applies the store's
//! budgets and puts everything in the store. The fleet's origin tier will
//! take the same events over HTTP.

pub mod local;

use bytes::Bytes;

use crate::package::segmenter::Part;
use crate::store::RenditionMeta;

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
