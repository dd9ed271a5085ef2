//! Typed configuration: TOML file, then command-line overrides, then
//! validation. Every knob has a default that works.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod cluster;
mod hls;
mod ingest;
mod limits;
mod origin;
mod slate;
mod transcode;

pub use cluster::{push_authority, ClusterConfig, Role};
pub use hls::{HlsConfig, PartAddressing};
pub use ingest::{IngestConfig, SrtConfig};
pub use limits::{full, half_an_hour, LimitsConfig, PrewarmConfig};
pub use origin::{CdnConfig, OriginConfig};
pub use slate::SlateConfig;
pub use transcode::{EncoderChoice, RungConfig, TranscodeConfig};

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
