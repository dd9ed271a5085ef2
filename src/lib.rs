//! castline: RTMP in, CMAF Low-Latency HLS out. See ARCHITECTURE.md for the map.

pub mod admin;
pub mod app;
pub mod capacity;
pub mod config;
pub mod gzip;
pub mod hub;
pub mod ingest;
pub mod lifecycle;
pub mod listen;
pub mod log_limit;
pub mod media;
pub mod metrics;
pub mod origin;
pub mod package;
pub mod pathway_id;
pub mod per_address;
pub mod pipeline;
pub mod publish;
pub mod slate;
pub mod store;
pub mod stream_name;
pub mod transcode;
