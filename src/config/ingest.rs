//! `[ingest]` (RTMP and what every ingest shares: grace, takeover,
//! failover, admission, keys) and `[srt]`.

use std::collections::HashMap;

use serde::Deserialize;

use super::{secs, ConfigError};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SrtConfig {
    /// false: no SRT listener.
    pub enabled: bool,
    /// Empty: unencrypted. Otherwise 10-79 characters; every caller must
    /// use it (AES-128, -192 or -256, as the caller chooses with `pbkeylen`).
    pub passphrase: String,
    /// Seconds of SRT receive latency (the time SRT has to repair losses);
    /// the larger of this and the caller's is used.
    pub latency: f64,
    /// Seconds without a packet from a caller before its link counts as lost.
    pub peer_idle_timeout: f64,
}

impl Default for SrtConfig {
    fn default() -> Self {
        SrtConfig {
            enabled: true,
            passphrase: String::new(),
            latency: 0.12,
            peer_idle_timeout: 5.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// RTMP application name: publishers use `rtmp://HOST/{app}/{key}`.
    pub app: String,
    /// Seconds a dropped publisher has to reconnect and continue the stream.
    pub reconnect_grace: f64,
    /// Seconds without media after which a live publisher can be taken over
    /// by a new connection publishing the same stream.
    pub takeover_after: f64,
    /// Seconds the active input (primary or backup) may send nothing
    /// before the stream switches to the other one, if it is delivering.
    pub failover_after: f64,
    /// Seconds the primary must have delivered before the stream returns
    /// to it from the backup; 0: stay on the backup.
    pub failback_after: f64,
    /// MiB a stream's hub queue (its publisher's last 1024 frames) may hold.
    pub max_queue_mb: f64,
    /// Publishing connections at once.
    pub max_connections: usize,
    /// Connections that have not published yet, at once (their own pool).
    pub max_pending: usize,
    /// Of those, from one remote address.
    pub max_pending_per_address: usize,
    pub handshake_timeout: f64,
    /// Seconds from connect to an accepted publish.
    pub publish_timeout: f64,
    /// Seconds: a publisher clock that leaps further forward (or goes back
    /// more than a second) starts a new timeline, as a reconnect does.
    pub max_timestamp_jump: f64,
    pub idle_timeout: f64,
    /// Stream key → stream name. Empty: publishing is open, key = name.
    pub keys: HashMap<String, String>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            app: "live".into(),
            reconnect_grace: 10.0,
            takeover_after: 2.0,
            failover_after: 0.5,
            failback_after: 10.0,
            max_queue_mb: 256.0,
            max_connections: 256,
            max_pending: 64,
            max_pending_per_address: 8,
            handshake_timeout: 10.0,
            publish_timeout: 5.0,
            max_timestamp_jump: 10.0,
            idle_timeout: 30.0,
            keys: HashMap::new(),
        }
    }
}

impl IngestConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        secs("ingest.reconnect_grace", self.reconnect_grace, 0.0, 600.0)?;
        secs(
            "ingest.handshake_timeout",
            self.handshake_timeout,
            0.1,
            120.0,
        )?;
        secs("ingest.idle_timeout", self.idle_timeout, 1.0, 600.0)?;
        secs(
            "ingest.max_timestamp_jump",
            self.max_timestamp_jump,
            1.0,
            3600.0,
        )?;
        secs("ingest.takeover_after", self.takeover_after, 0.5, 600.0)?;
        secs("ingest.failover_after", self.failover_after, 0.05, 60.0)?;
        if self.failback_after != 0.0 {
            secs("ingest.failback_after", self.failback_after, 1.0, 3600.0)?;
        }
        secs("ingest.publish_timeout", self.publish_timeout, 0.5, 120.0)?;
        let q = self.max_queue_mb;
        if !(q.is_finite() && q >= 1.0) {
            return Err(ConfigError::Invalid {
                key: "ingest.max_queue_mb",
                reason: format!("{q} must be at least 1 MiB"),
            });
        }
        if self.max_pending == 0 || self.max_pending_per_address == 0 {
            return Err(ConfigError::Invalid {
                key: "ingest.max_pending",
                reason: "max_pending and max_pending_per_address must be at least 1".into(),
            });
        }
        if !crate::stream_name::is_valid(&self.app) {
            return Err(ConfigError::Invalid {
                key: "ingest.app",
                reason: "use 1-64 of A-Z a-z 0-9 _ -".into(),
            });
        }
        if self.max_connections == 0 {
            return Err(ConfigError::Invalid {
                key: "ingest.max_connections",
                reason: "must be at least 1".into(),
            });
        }
        for (key, name) in &self.keys {
            if key.is_empty() || !crate::stream_name::is_valid(name) {
                return Err(ConfigError::Invalid { key: "ingest.keys", reason: format!("{key:?} = {name:?}: keys must be non-empty and names 1-64 of A-Z a-z 0-9 _ -") });
            }
        }
        Ok(())
    }
}

impl SrtConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        secs("srt.latency", self.latency, 0.02, 8.0)?;
        secs("srt.peer_idle_timeout", self.peer_idle_timeout, 1.0, 60.0)?;
        let pass = self.passphrase.chars().count();
        if pass != 0 && !(10..=79).contains(&pass) {
            return Err(ConfigError::Invalid {
                key: "srt.passphrase",
                reason: format!("{pass} characters; SRT takes 10 to 79 (or empty for none)"),
            });
        }
        Ok(())
    }
}
