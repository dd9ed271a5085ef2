//! RTMP ingest: a tokio listener driving `rml_rtmp`'s sans-IO server session.
//!
//! - [`flv`]: FLV audio/video tag bodies → typed packets (pure).
//! - [`demux`]: packets + RTMP timestamps → access units and track announcements (pure).
//! - [`connection`]: one socket: handshake, session, publish authorisation, hub hand-off.
//! - [`close_stream`]: sees the bare `closeStream` rml_rtmp's session swallows (pure).
//! - [`listener`]: the accept loop.

pub mod close_stream;
pub mod connection;
pub mod demux;
pub mod flv;
pub mod listener;

pub use listener::RtmpListener;
