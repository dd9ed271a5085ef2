//! `[hls]`: segments, parts, the DVR window, VOD, the store's budgets and
//! disk tier, and how playlists name parts.

use serde::Deserialize;

use super::{secs, ConfigError};

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

impl HlsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
