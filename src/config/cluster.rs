//! `[cluster]`: which part of the fleet this process is. One process does
//! everything by default; an ingest pod packages and pushes to the origins,
//! an origin takes the pushes and serves players and CDNs.

use std::net::SocketAddr;

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Ingest, ladder, packaging and the HTTP origin in one process.
    #[default]
    All,
    /// RTMP/SRT ingest, the ladder and packaging; every object is pushed
    /// to `cluster.origins`. Serves no viewers.
    Ingest,
    /// Takes pushes on `cluster.listen` and serves players and CDNs; no
    /// RTMP or SRT.
    Origin,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    pub role: Role,
    /// Ingest: the origins' push addresses, `http://HOST:PORT`. A host name
    /// that resolves to several addresses (a headless Service) means each.
    pub origins: Vec<String>,
    /// Origin: where pushes are taken (not the viewers' port).
    pub listen: SocketAddr,
    /// Both: pushes carry it; an origin refuses a push without it.
    pub secret: String,
    /// Both: a file holding the secret instead (a mounted Kubernetes
    /// Secret); a trailing newline is not part of it.
    pub secret_file: Option<std::path::PathBuf>,
    /// Ingest: megabytes queued for one origin; past it that origin is
    /// resynced from the live window, so a slow origin never holds the
    /// others or the encoders back.
    pub queue_mb: f64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            role: Role::All,
            origins: Vec::new(),
            listen: SocketAddr::from(([0, 0, 0, 0], 8090)),
            secret: String::new(),
            secret_file: None,
            queue_mb: 64.0,
        }
    }
}

/// Shorter secrets are refused: a push is an origin's write access.
const MIN_SECRET: usize = 16;

impl ClusterConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: String| Err(ConfigError::Invalid { key, reason });
        if self.role == Role::All {
            return Ok(());
        }
        match (&self.secret_file, self.secret.len()) {
            (Some(_), 0) => {}
            (Some(_), _) => {
                return invalid("cluster.secret", "set cluster.secret or cluster.secret_file, not both".into())
            }
            (None, n) if n < MIN_SECRET => {
                return invalid(
                    "cluster.secret",
                    format!("roles ingest and origin need a shared secret of at least {MIN_SECRET} characters (or cluster.secret_file)"),
                )
            }
            (None, _) => {}
        }
        if !(self.queue_mb.is_finite() && (1.0..=4096.0).contains(&self.queue_mb)) {
            return invalid(
                "cluster.queue_mb",
                format!("{} is outside 1..=4096", self.queue_mb),
            );
        }
        if self.role == Role::Ingest {
            if self.origins.is_empty() {
                return invalid(
                    "cluster.origins",
                    "role ingest needs at least one origin to push to".into(),
                );
            }
            for o in &self.origins {
                if push_authority(o).is_none() {
                    return invalid("cluster.origins", format!("{o:?} is not http://HOST:PORT"));
                }
            }
        }
        Ok(())
    }
}

impl ClusterConfig {
    /// The push secret: `secret`, or read from `secret_file`.
    pub fn secret(&self) -> Result<String, ConfigError> {
        let Some(path) = &self.secret_file else {
            return Ok(self.secret.clone());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let secret = text.trim_end_matches(['\n', '\r']).to_string();
        if secret.len() < MIN_SECRET {
            return Err(ConfigError::Invalid {
                key: "cluster.secret_file",
                reason: format!(
                    "{} holds fewer than {MIN_SECRET} characters",
                    path.display()
                ),
            });
        }
        Ok(secret)
    }
}

/// `http://HOST:PORT` → `HOST:PORT`, the only form an origin is named in.
pub fn push_authority(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("http://")?.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':')?;
    let ok = !host.is_empty()
        && !rest.contains('/')
        && !rest.contains('@')
        && port.parse::<u16>().is_ok_and(|p| p > 0);
    ok.then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_named_as_http_host_and_port() {
        assert_eq!(push_authority("http://origin:8090"), Some("origin:8090"));
        assert_eq!(
            push_authority("http://10.0.0.7:8090/"),
            Some("10.0.0.7:8090")
        );
        assert_eq!(push_authority("https://origin:8090"), None);
        assert_eq!(push_authority("http://origin"), None);
        assert_eq!(push_authority("http://origin:0"), None);
        assert_eq!(push_authority("http://a@origin:8090"), None);
        assert_eq!(push_authority("http://origin:8090/push"), None);
    }

    #[test]
    fn a_role_beside_all_needs_a_secret_and_an_ingest_its_origins() {
        let mut c = ClusterConfig::default();
        assert!(c.validate().is_ok());
        c.role = Role::Origin;
        assert!(c.validate().is_err());
        c.secret = "0123456789abcdef".into();
        assert!(c.validate().is_ok());
        c.role = Role::Ingest;
        assert!(c.validate().is_err());
        c.origins = vec!["http://o:8090".into()];
        assert!(c.validate().is_ok());
        // Or the secret from a file (a mounted Kubernetes Secret).
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "from-a-mounted-secret\n").unwrap();
        c.secret_file = Some(file.clone());
        assert!(c.validate().is_err(), "both");
        c.secret.clear();
        assert!(c.validate().is_ok());
        assert_eq!(c.secret().unwrap(), "from-a-mounted-secret");
        std::fs::write(&file, "short\n").unwrap();
        assert!(c.secret().is_err());
    }
}
