//! `[transcode]`: the ladder, its encoder and presets.

use serde::Deserialize;

use super::ConfigError;

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
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
