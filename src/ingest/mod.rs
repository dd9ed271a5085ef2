//! Ingest: protocol front-ends that turn a publisher's connection into
//! codec-neutral [`crate::media::AccessUnit`]s on a [`crate::hub`] stream.
//! Nothing after this module knows which protocol a stream came from.

pub mod admission;
pub mod auth;
pub mod context;
pub mod normalize;
pub mod rtmp;
pub mod srt;
pub mod timeline;
