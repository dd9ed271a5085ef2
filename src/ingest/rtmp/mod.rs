//! RTMP ingest: a tokio listener driving `rml_rtmp`'s sans-IO server session.
//!
//! - [`flv`]: FLV audio/video tag bodies → typed packets (pure).
//! - [`demux`]: packets + RTMP timestamps → access units and track announcements (pure).
//! - [`session`]: one connection after its handshake, sans-IO: bytes in, replies out,
//!   publish authorisation, admission, capacity, hub hand-off (tested without a socket).
//! - [`connection`]: one socket: handshake, timeouts, takeover; bytes to and from its session.
//! - [`close_stream`]: sees the bare `closeStream` rml_rtmp's session swallows (pure).
//! - [`listener`]: the accept loop.

pub mod close_stream;
pub mod connection;
pub mod demux;
pub mod flv;
pub mod listener;
pub mod session;

pub use listener::RtmpListener;
