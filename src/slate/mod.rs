//! The slate: what a stream shows while it has no input (its publisher
//! dropped and may come back within the reconnect grace, or froze), so
//! players keep playing instead of stalling at the live edge.
//!
//! [`clip`] encodes a short clip of the slate picture (an image from config
//! or the built-in [`card`]) and AAC silence in the shape of the source;
//! [`feed`] loops it on the wall clock. The pipeline decides when it runs
//! ([`crate::pipeline`]).

pub mod card;
pub mod clip;
pub mod feed;
pub mod silence;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

pub use clip::{Clip, Shape};
pub use feed::Feed;

#[derive(Debug, thiserror::Error)]
pub enum SlateError {
    #[error("slate image {0}: {1}")]
    Image(PathBuf, String),
    #[error("cannot encode the slate: {0}")]
    Encode(String),
}

/// The slate's rules, from `[slate]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SlateSettings {
    /// How long a stream's input may be silent before the slate runs.
    pub after: Duration,
    /// The picture; `None`: the built-in card.
    pub image: Option<PathBuf>,
}

/// Clips in use, by shape and picture: streams of one shape share one.
type Shared = Vec<((Shape, Option<PathBuf>), Weak<Clip>)>;
static SHARED: Mutex<Shared> = Mutex::new(Vec::new());

/// The clip for `shape` showing `image`: one a stream already holds, or
/// one encoded now (on a blocking thread).
pub async fn shared(shape: Shape, image: Option<PathBuf>) -> Result<Arc<Clip>, SlateError> {
    let key = (shape, image);
    let found = {
        let list = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        list.iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, w)| w.upgrade())
    };
    if let Some(clip) = found {
        return Ok(clip);
    }
    let (shape, image) = key.clone();
    let clip = tokio::task::spawn_blocking(move || Clip::build(shape, image.as_deref()))
        .await
        .map_err(|e| SlateError::Encode(e.to_string()))??;
    let clip = Arc::new(clip);
    let mut list = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    list.retain(|(_, w)| w.strong_count() > 0);
    list.push((key, Arc::downgrade(&clip)));
    Ok(clip)
}
