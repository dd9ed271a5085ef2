//! Packaging: access units → CMAF init segments, parts and segments, and the
//! LL-HLS playlists that describe them.
//!
//! - [`boxes`]: pure ISO-BMFF writers (init segment, moof+mdat chunk).
//! - [`segmenter`]: pure state machine cutting parts and segments at aligned IDRs.
//! - [`playlist`]: the media-playlist model and its pure text renderer.
//! - [`multivariant`]: the multivariant playlist renderer (pure).
//! - [`packager`]: the task that drives one rendition from its queue into the
//!   [`crate::publish`] seam.

pub mod boxes;
pub mod multivariant;
pub mod packager;
pub mod playlist;
pub mod segmenter;
