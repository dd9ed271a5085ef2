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

use std::path::PathBuf;
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
