//! `[limits]`: what one instance takes, and announced events to prewarm for.

use serde::Deserialize;

use super::ConfigError;

/// What one instance takes before it refuses new publishers, and the
/// capacity ratios it reports (`castline_capacity_ratio`). 0: no limit.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_streams: usize,
    pub max_encoder_sessions: usize,
    /// Total media bitrate publishers may send, in Mbit/s.
    pub max_ingest_mbps: f64,
    /// What the origin may send, in Mbit/s (its share of the node's link).
    pub egress_budget_mbps: f64,
    /// Share of the machine's cores castline may keep busy; below 1 it also
    /// refuses publishers past it.
    pub max_cpu: f64,
    /// Announced events: `desired_capacity` is raised ahead of them.
    pub prewarm: Vec<PrewarmConfig>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_streams: 0,
            max_encoder_sessions: 0,
            max_ingest_mbps: 0.0,
            egress_budget_mbps: 0.0,
            max_cpu: 1.0,
            prewarm: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrewarmConfig {
    /// RFC 3339, e.g. "2026-12-20T19:00:00Z".
    pub start: String,
    pub end: String,
    /// Seconds before the start from which the capacity is raised.
    #[serde(default = "half_an_hour")]
    pub lead: f64,
    /// The capacity utilization to plan for meanwhile.
    #[serde(default = "full")]
    pub capacity: f64,
}

pub fn half_an_hour() -> f64 {
    1800.0
}

pub fn full() -> f64 {
    1.0
}

impl PrewarmConfig {
    /// (from, until, capacity) in Unix seconds, `from` being `lead` before
    /// the start.
    pub fn window(&self) -> Result<(u64, u64, f64), ConfigError> {
        let unix = |key: &'static str, v: &str| -> Result<u64, ConfigError> {
            humantime::parse_rfc3339(v)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
                .ok_or_else(|| ConfigError::Invalid {
                    key,
                    reason: format!("{v:?} is not an RFC 3339 time (e.g. 2026-12-20T19:00:00Z)"),
                })
        };
        let (start, end) = (
            unix("limits.prewarm.start", &self.start)?,
            unix("limits.prewarm.end", &self.end)?,
        );
        if end <= start
            || !(0.0..=86_400.0).contains(&self.lead)
            || !(0.0..=10.0).contains(&self.capacity)
        {
            return Err(ConfigError::Invalid {
                key: "limits.prewarm",
                reason: "end after start, lead 0-86400 s, capacity 0-10".into(),
            });
        }
        Ok((start.saturating_sub(self.lead as u64), end, self.capacity))
    }
}

impl LimitsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.prewarm_windows()?;
        let l = self;
        let rate_ok = |v: f64| v.is_finite() && v >= 0.0;
        let ok = (0.05..=1.0).contains(&l.max_cpu)
            && rate_ok(l.max_ingest_mbps)
            && rate_ok(l.egress_budget_mbps);
        if !ok {
            return Err(ConfigError::Invalid {
                key: "limits",
                reason: "max_cpu is a share of the cores (0.05-1); bitrates are Mbit/s >= 0".into(),
            });
        }
        Ok(())
    }

    /// The prewarm windows as (from, until, capacity) in Unix seconds.
    pub fn prewarm_windows(&self) -> Result<Vec<(u64, u64, f64)>, ConfigError> {
        self.prewarm.iter().map(PrewarmConfig::window).collect()
    }
}
