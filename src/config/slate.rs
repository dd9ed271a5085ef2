//! `[slate]`: what a stream shows while its input is gone.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::{secs, ConfigError};
use crate::slate::SlateSettings;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SlateConfig {
    /// false: a stream with no input stands still until it comes back or
    /// its reconnect grace ends.
    pub enabled: bool,
    /// A picture (PNG, JPEG, anything FFmpeg reads), scaled to each
    /// stream's size. None: the built-in card (colour bars).
    pub image: Option<PathBuf>,
    /// Seconds without input before the slate runs. A hiccup shorter than
    /// this (a TCP retransmission, a starved encoder) shows no slate; longer
    /// than about a second and hls.js at its usual latency stalls before
    /// the slate's first part.
    pub after: f64,
}

impl Default for SlateConfig {
    fn default() -> Self {
        SlateConfig {
            enabled: true,
            image: None,
            after: 0.5,
        }
    }
}

impl SlateConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        secs("slate.after", self.after, 0.05, 60.0)?;
        if let Some(image) = &self.image {
            if !image.is_file() {
                return Err(ConfigError::Invalid {
                    key: "slate.image",
                    reason: format!("{} is not a file", image.display()),
                });
            }
        }
        Ok(())
    }

    /// The pipeline's settings; `None` when the slate is off.
    pub fn settings(&self) -> Option<Arc<SlateSettings>> {
        self.enabled.then(|| {
            Arc::new(SlateSettings {
                after: super::Config::duration(self.after),
                image: self.image.clone(),
            })
        })
    }
}
