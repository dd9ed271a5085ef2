//! Typed configuration: TOML file, then command-line overrides, then
//! validation. Every knob has a default that works.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod cluster;
mod limits;
mod origin;
mod slate;

pub use cluster::{push_authority, ClusterConfig, Role};
pub use limits::{full, half_an_hour, LimitsConfig, PrewarmConfig};
pub use origin::{CdnConfig, OriginConfig};
pub use slate::SlateConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub ingest: IngestConfig,
    pub hls: HlsConfig,
    pub transcode: TranscodeConfig,
    pub srt: SrtConfig,
    pub origin: OriginConfig,
    pub limits: LimitsConfig,
    pub cluster: ClusterConfig,
    pub slate: SlateConfig,
}

impl HlsConfig {
    /// `max_segment_duration`, or twice the segment target when it is 0.
    pub fn max_segment(&self) -> f64 {
        if self.max_segment_duration > 0.0 {
            self.max_segment_duration
        } else {
            2.0 * self.segment_duration
        }
    }
}

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
pub struct ServerConfig {
    pub rtmp_listen: SocketAddr,
    pub srt_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub data_dir: PathBuf,
    /// On SIGTERM: seconds between turning not-ready and refusing new
    /// publishers, while the orchestrator takes this instance out of its
    /// endpoints (everything is still served meanwhile).
    pub drain_delay: f64,
    /// Then: seconds live publishers get to finish before they are
    /// disconnected and their playlists end.
    pub drain_timeout: f64,
    /// Base URL printed for playback, e.g. `https://cdn.example.com`. Empty:
    /// derived from `http_listen`.
    pub public_url: String,
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

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HlsConfig {
    /// Target segment duration in seconds: the ladder's cut interval; with
    /// passthrough, segments start at source IDRs.
    pub segment_duration: f64,
    /// Part target duration in seconds (PART-TARGET).
    pub part_duration: f64,
    /// The longest a passthrough segment may get, in seconds; past it a
    /// segment is cut between keyframes. 0: twice `segment_duration`.
    pub max_segment_duration: f64,
    /// Seconds of DVR window in the playlist.
    pub dvr_window: f64,
    /// Seconds an ended stream stays available as VOD.
    pub vod_keep: f64,
    /// Ended sessions kept as VOD at most; past it the oldest goes first.
    pub max_vod_sessions: usize,
    /// MiB of media the store may hold in all; near it new streams are
    /// refused, past it the oldest VOD goes, then live DVR windows shorten.
    pub memory_budget_mb: f64,
    /// MiB of media one stream (all its renditions) may hold; past it its
    /// DVR window shortens.
    pub stream_budget_mb: f64,
    /// Keep older segments and ended sessions on disk under
    /// `server.data_dir/sessions` (a restart serves the kept VODs again).
    /// false: everything in memory, nothing survives a restart.
    pub disk: bool,
    /// MiB of media the disk tier may hold; past it the oldest VOD goes,
    /// then live segments stay in memory.
    pub disk_budget_mb: f64,
    /// Seconds of the newest media of each rendition kept in memory; older
    /// segments of the DVR window are served from disk (with `disk`).
    pub memory_window: f64,
    /// How playlists name parts: "files" (each its own URL) or "byteranges"
    /// (byte ranges of the segment's URL; README, "Shaka Player").
    pub part_addressing: PartAddressing,
}

/// `hls.part_addressing`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PartAddressing {
    #[default]
    Files,
    ByteRanges,
}

/// Which video encoder the ladder uses.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EncoderChoice {
    /// NVENC when a GPU can open it at start, else libx264 (logged once).
    Auto,
    /// libx264 only.
    X264,
    /// NVENC only: castline refuses to start where it cannot open.
    Nvenc,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TranscodeConfig {
    /// false: every stream is served as published (passthrough only).
    pub enabled: bool,
    pub encoder: EncoderChoice,
    /// Also serve the source video as the top rung; segments then follow the
    /// source's keyframes on every rung (instead of `hls.segment_duration`).
    pub passthrough: bool,
    /// libx264 preset (ultrafast .. veryslow).
    pub x264_preset: String,
    /// NVENC preset (p1 fastest .. p7 best).
    pub nvenc_preset: String,
    /// The ladder, any order. A rung taller than the source is skipped.
    pub rungs: Vec<RungConfig>,
    /// Seconds between the rungs' IDRs within a segment (0: one per segment,
    /// at its start). A whole multiple of `hls.part_duration`: each part an
    /// IDR starts is INDEPENDENT (more places for players to start and switch).
    pub keyframe_interval: f64,
    /// With NVENC, keep frames on the GPU: NVDEC decodes, `scale_cuda`
    /// scales every rung in one graph, NVENC encodes from CUDA frames. Falls
    /// back to CPU decode and scale (logged) where CUDA cannot open.
    pub gpu_frames: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RungConfig {
    /// The rendition's name in URLs (`/live/STREAM/NAME/index.m3u8`).
    pub name: String,
    /// Output height in pixels; the width keeps the source's aspect ratio.
    pub height: u32,
    /// Target (CBR) bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// Highest frame rate of this rung (e.g. 30 for a 60 fps source); none: the source's.
    #[serde(default)]
    pub max_fps: Option<f64>,
}

impl Default for TranscodeConfig {
    fn default() -> Self {
        let rung = |name: &str, height, bitrate_kbps| RungConfig {
            name: name.into(),
            height,
            bitrate_kbps,
            max_fps: None,
        };
        TranscodeConfig {
            enabled: true,
            encoder: EncoderChoice::Auto,
            passthrough: false,
            x264_preset: "veryfast".into(),
            nvenc_preset: "p4".into(),
            keyframe_interval: 0.0,
            gpu_frames: true,
            rungs: vec![
                rung("1080p", 1080, 6000),
                rung("720p", 720, 3000),
                rung("480p", 480, 1200),
                rung("360p", 360, 700),
            ],
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            rtmp_listen: ([0, 0, 0, 0], 1935).into(),
            srt_listen: ([0, 0, 0, 0], 9000).into(),
            http_listen: ([0, 0, 0, 0], 8080).into(),
            admin_listen: ([0, 0, 0, 0], 8081).into(),
            data_dir: PathBuf::from("data"),
            drain_delay: 5.0,
            drain_timeout: 30.0,
            public_url: String::new(),
        }
    }
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

impl Default for HlsConfig {
    fn default() -> Self {
        HlsConfig {
            segment_duration: 1.0,
            part_duration: 0.2,
            max_segment_duration: 0.0,
            dvr_window: 300.0,
            vod_keep: 3600.0,
            max_vod_sessions: 64,
            memory_budget_mb: 8192.0,
            stream_budget_mb: 1024.0,
            disk: true,
            disk_budget_mb: 20480.0,
            memory_window: 60.0,
            part_addressing: PartAddressing::Files,
        }
    }
}

fn secs(key: &'static str, v: f64, min: f64, max: f64) -> Result<Duration, ConfigError> {
    if !v.is_finite() || v < min || v > max {
        return Err(ConfigError::Invalid {
            key,
            reason: format!("{v} is outside {min}..={max} seconds"),
        });
    }
    Ok(Duration::from_secs_f64(v))
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Config::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.into(),
                message,
            },
            other => other,
        })
    }

    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Every key in range, each section by itself, then what spans sections.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.hls.validate()?;
        self.ingest.validate()?;
        self.srt.validate()?;
        secs("server.drain_delay", self.server.drain_delay, 0.0, 600.0)?;
        secs(
            "server.drain_timeout",
            self.server.drain_timeout,
            0.0,
            3600.0,
        )?;
        self.origin.validate()?;
        self.limits.validate()?;
        self.transcode.validate()?;
        self.cluster.validate()?;
        self.slate.validate()?;
        self.keyframes_fit_parts()
    }

    /// `transcode.keyframe_interval`: 0, or a whole number of parts up to a segment.
    fn keyframes_fit_parts(&self) -> Result<(), ConfigError> {
        let ki = self.transcode.keyframe_interval;
        if ki != 0.0 {
            let parts = ki / self.hls.part_duration;
            if !ki.is_finite()
                || ki > self.hls.segment_duration
                || parts < 1.0 - 1e-6
                || (parts - parts.round()).abs() > 1e-6
            {
                return Err(ConfigError::Invalid {
                    key: "transcode.keyframe_interval",
                    reason: format!(
                        "{ki} must be 0 or a whole number of hls.part_duration ({}) up to hls.segment_duration ({})",
                        self.hls.part_duration, self.hls.segment_duration
                    ),
                });
            }
        }
        Ok(())
    }

    pub fn duration(v: f64) -> Duration {
        Duration::from_secs_f64(v.max(0.0))
    }
}

impl HlsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let seg = secs("hls.segment_duration", self.segment_duration, 0.5, 10.0)?;
        let part = secs("hls.part_duration", self.part_duration, 0.05, 2.0)?;
        if part > seg {
            return Err(ConfigError::Invalid {
                key: "hls.part_duration",
                reason: "must not be longer than hls.segment_duration".into(),
            });
        }
        if self.max_segment_duration != 0.0 {
            let max = secs(
                "hls.max_segment_duration",
                self.max_segment_duration,
                0.5,
                30.0,
            )?;
            if max < seg {
                return Err(ConfigError::Invalid {
                    key: "hls.max_segment_duration",
                    reason: "must not be shorter than hls.segment_duration".into(),
                });
            }
        }
        let dvr = secs("hls.dvr_window", self.dvr_window, 0.0, 24.0 * 3600.0)?;
        if dvr < seg * 3 {
            return Err(ConfigError::Invalid {
                key: "hls.dvr_window",
                reason: "must hold at least 3 segments".into(),
            });
        }
        secs("hls.vod_keep", self.vod_keep, 0.0, 7.0 * 24.0 * 3600.0)?;
        let memory = secs("hls.memory_window", self.memory_window, 0.0, 24.0 * 3600.0)?;
        if memory < seg * 3 {
            return Err(ConfigError::Invalid {
                key: "hls.memory_window",
                reason: "must hold at least 3 segments (the live edge is served from memory)"
                    .into(),
            });
        }
        for (key, mb) in [
            ("hls.memory_budget_mb", self.memory_budget_mb),
            ("hls.stream_budget_mb", self.stream_budget_mb),
            ("hls.disk_budget_mb", self.disk_budget_mb),
        ] {
            if !(mb.is_finite() && mb > 0.0) {
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!("{mb} must be a positive number of MiB"),
                });
            }
        }
        Ok(())
    }
}

impl IngestConfig {
    fn validate(&self) -> Result<(), ConfigError> {
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
    fn validate(&self) -> Result<(), ConfigError> {
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

const X264_PRESETS: [&str; 10] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

impl TranscodeConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: String| Err(ConfigError::Invalid { key, reason });
        if !X264_PRESETS.contains(&self.x264_preset.as_str()) {
            return invalid(
                "transcode.x264_preset",
                format!(
                    "{:?} is not one of {}",
                    self.x264_preset,
                    X264_PRESETS.join(", ")
                ),
            );
        }
        let p = self.nvenc_preset.as_bytes();
        if !(p.len() == 2 && p[0] == b'p' && (b'1'..=b'7').contains(&p[1])) {
            return invalid(
                "transcode.nvenc_preset",
                format!("{:?} is not one of p1 .. p7", self.nvenc_preset),
            );
        }
        if self.enabled && self.rungs.is_empty() && !self.passthrough {
            return invalid(
                "transcode.rungs",
                "an enabled ladder needs at least one rung (or passthrough = true)".into(),
            );
        }
        let mut names = std::collections::HashSet::new();
        for r in &self.rungs {
            let reserved = r.name == "source" || r.name == "audio";
            if !crate::stream_name::is_valid(&r.name) || reserved {
                return invalid(
                    "transcode.rungs.name",
                    format!(
                        "{:?}: use 1-64 of A-Z a-z 0-9 _ - (not \"source\" or \"audio\")",
                        r.name
                    ),
                );
            }
            if !names.insert(r.name.as_str()) {
                return invalid(
                    "transcode.rungs.name",
                    format!("{:?} appears twice", r.name),
                );
            }
            if !(64..=4320).contains(&r.height) {
                return invalid(
                    "transcode.rungs.height",
                    format!("{} is outside 64..=4320", r.height),
                );
            }
            if r.max_fps
                .is_some_and(|f| !(f.is_finite() && (1.0..=240.0).contains(&f)))
            {
                return invalid(
                    "transcode.rungs.max_fps",
                    format!("{:?} is outside 1..=240", r.max_fps),
                );
            }
            if !(50..=100_000).contains(&r.bitrate_kbps) {
                return invalid(
                    "transcode.rungs.bitrate_kbps",
                    format!("{} is outside 50..=100000", r.bitrate_kbps),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_default_file_equals_built_in_defaults() {
        let text = include_str!("../../config/castline.toml");
        assert_eq!(Config::from_toml(text).unwrap(), Config::default());
    }

    #[test]
    fn a_keyframe_interval_is_a_whole_number_of_parts_within_a_segment() {
        let with = |v: &str| Config::from_toml(&format!("[transcode]\nkeyframe_interval = {v}\n"));
        assert!(with("0.4").is_ok() && with("0.2").is_ok() && with("1.0").is_ok());
        for bad in ["0.5", "0.1", "1.2", "-0.4"] {
            let e = with(bad).unwrap_err().to_string();
            assert!(e.contains("transcode.keyframe_interval"), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = Config::from_toml("[hls]\npart_duration = 3.0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("hls.part_duration"), "{e}");
        let e = Config::from_toml("[hls]\nsegment_duration = 1.0\npart_duration = 1.5\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("hls.part_duration") && e.contains("segment_duration"),
            "{e}"
        );
        let e = Config::from_toml("[server]\nhttp_listen = \"nope\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("http_listen"), "{e}");
        let e = Config::from_toml("[origin]\nsigning_key = \"k\"\ncdn_checks_tokens = true\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("origin.cdn_checks_tokens"), "{e}");
        for bad in ["0", "70000"] {
            let e = Config::from_toml(&format!("[origin]\nlisten_backlog = {bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("origin.listen_backlog"), "{bad}: {e}");
        }
        let e = Config::from_toml("[hls]\nsegment_duraton = 1.0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("segment_duraton"), "{e}");
        let e = Config::from_toml("[transcode]\nencoder = \"quicksync\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("quicksync"), "{e}");
        let e = Config::from_toml(
            "[[transcode.rungs]]\nname = \"source\"\nheight = 360\nbitrate_kbps = 700\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("transcode.rungs.name"), "{e}");
        let e = Config::from_toml("[transcode]\nx264_preset = \"fastest\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("transcode.x264_preset"), "{e}");
    }

    #[test]
    fn cdns_are_checked_and_read() {
        let ok = Config::from_toml(
            "[origin]\n[[origin.cdn]]\nid = \"cf\"\nbase_url = \"https://d1.cloudfront.net/\"\n\
             [[origin.cdn]]\nid = \"fastly\"\nweight = 0\n",
        )
        .unwrap();
        assert_eq!(ok.origin.cdn.len(), 2);
        assert_eq!(ok.origin.cdn[0].weight, 1);
        assert_eq!(ok.origin.cdn[1].base_url, "");
        for (bad, key) in [
            ("[[origin.cdn]]\nid = \"a b\"\n", "origin.cdn.id"),
            (
                "[[origin.cdn]]\nid = \"a\"\n[[origin.cdn]]\nid = \"a\"\n",
                "origin.cdn.id",
            ),
            (
                "[[origin.cdn]]\nid = \"a\"\nbase_url = \"ftp://x\"\n",
                "origin.cdn.base_url",
            ),
            (
                "[[origin.cdn]]\nid = \"a\"\nbase_url = \"https://x/?q=1\"\n",
                "origin.cdn.base_url",
            ),
            ("[origin]\nsteering_ttl = 0\n", "origin.steering_ttl"),
            (
                "[origin]\ncdn_header = \"bad header\"\n",
                "origin.cdn_header",
            ),
        ] {
            let text = if bad.starts_with("[origin]") {
                bad.to_string()
            } else {
                format!("[origin]\n{bad}")
            };
            let e = Config::from_toml(&text).unwrap_err().to_string();
            assert!(e.contains(key), "{bad}: {e}");
        }
    }
}
