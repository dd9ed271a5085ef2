//! SRT ingest (the sibling of [`crate::ingest::rtmp`]): an `srt-tokio`
//! listener taking many callers on one UDP port, each publishing MPEG-TS.
//!
//! - [`stream_id`]: the caller's stream id → a publishing key (pure).
//! - [`ts`]: MPEG-TS packets → PES packets (pure).
//! - [`demux`]: PES → access units and track announcements (pure).
//! - [`guard`]: a socket filter that keeps datagrams `srt-protocol` would
//!   panic on away from it.
//! - [`listener`]: the accept loop and one task per caller.

pub mod demux;
pub mod guard;
pub mod listener;
pub mod stream_id;
pub mod ts;
