//! `[origin]`: access (CDN secret, signed URLs, TLS) and the CDNs in front.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OriginConfig {
    /// A secret the CDN adds to every request it sends to the origin, in
    /// `cdn_secret_header`; requests without it get 403, so nobody reaches
    /// the origin around the CDN. Empty: off.
    pub cdn_secret: String,
    pub cdn_secret_header: String,
    /// PEM certificate chain and private key: with both, the HTTP origin
    /// serves TLS (ALPN h2 and http/1.1) on `server.http_listen`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Non-empty: playback URLs must be signed with this key
    /// (`castline sign --stream NAME --ttl 1h`); others get 403.
    pub signing_key: String,
    /// The CDN checks signed URLs at its edge and passes the token on in
    /// the `x-castline-token` header with its proof (CloudFront with
    /// docker/cdn/cloudfront/signed-url-function.js). Only then does the
    /// origin take a token from that header, only with `cdn_secret` set and
    /// sent, and only with the proof: a viewer's own header must never get
    /// an unsigned path into a cache.
    pub cdn_checks_tokens: bool,
    /// The header by which a CDN names itself to the origin (each CDN is set
    /// up to add it with its `id`): requests and egress are counted per CDN.
    pub cdn_header: String,
    /// Seconds a player keeps a content steering manifest (its TTL).
    pub steering_ttl: u64,
    /// Origin connections open at once; past it a new one is closed at
    /// once. 0: the open-files limit less what ingest, disk and admin keep
    /// (`origin::slots::reserved_descriptors`), at least 64.
    pub max_connections: usize,
    /// Origin connections one address may hold. 0: no cap (behind a CDN a
    /// few edge addresses carry every viewer); set it (e.g. 64) when players
    /// reach the origin directly.
    pub max_connections_per_address: usize,
    /// Seconds an HTTP/2 connection with no request in flight stays open (a
    /// client that only answers pings gives its slot back). One that sends
    /// no first request, and HTTP/1.1 between requests, close after 10 s.
    pub idle_timeout: f64,
    /// Finished TCP handshakes the kernel holds for `accept` on
    /// `server.http_listen`: a join burst larger than this is dropped and
    /// retried by clients only after a second or more. Linux caps it at
    /// `net.core.somaxconn` (4096 by default; castline says so at start).
    pub listen_backlog: u32,
    /// The CDNs in front of this origin. With one or more that have a
    /// `base_url`, the multivariant playlist offers one pathway per CDN (HLS
    /// Content Steering) and `/live/NAME/steering.json` says which to use.
    pub cdn: Vec<CdnConfig>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CdnConfig {
    /// The pathway id and the value of `origin.cdn_header` this CDN sends.
    pub id: String,
    /// Where players reach this CDN, e.g. `https://d111111abcdef8.cloudfront.net`.
    #[serde(default)]
    pub base_url: String,
    /// Share of new players steered to this CDN; 0 keeps it as a standby.
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

impl Default for OriginConfig {
    fn default() -> Self {
        OriginConfig {
            cdn_secret: String::new(),
            cdn_secret_header: "x-castline-cdn-secret".into(),
            signing_key: String::new(),
            cdn_checks_tokens: false,
            tls_cert: None,
            tls_key: None,
            cdn_header: "x-castline-cdn".into(),
            steering_ttl: 300,
            max_connections: 0,
            max_connections_per_address: 0,
            idle_timeout: 60.0,
            listen_backlog: 4096,
            cdn: Vec::new(),
        }
    }
}

impl OriginConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Invalid {
                key: "origin.tls_cert",
                reason: "origin.tls_cert and origin.tls_key go together".into(),
            });
        }
        if http::HeaderName::from_bytes(self.cdn_secret_header.as_bytes()).is_err() {
            return Err(ConfigError::Invalid {
                key: "origin.cdn_secret_header",
                reason: format!("{:?} is not an HTTP header name", self.cdn_secret_header),
            });
        }
        if !self.cdn_secret.is_empty() && http::HeaderValue::from_str(&self.cdn_secret).is_err() {
            return Err(ConfigError::Invalid {
                key: "origin.cdn_secret",
                reason: "must be printable ASCII (it travels in a header)".into(),
            });
        }
        if !(self.idle_timeout.is_finite() && (1.0..=3_600.0).contains(&self.idle_timeout)) {
            return Err(ConfigError::Invalid {
                key: "origin.idle_timeout",
                reason: "use 1 to 3600 seconds".into(),
            });
        }
        if self.cdn_checks_tokens && (self.signing_key.is_empty() || self.cdn_secret.is_empty()) {
            return Err(ConfigError::Invalid {
                key: "origin.cdn_checks_tokens",
                reason: "needs origin.signing_key and origin.cdn_secret (only the CDN may pass a token in a header)".into(),
            });
        }
        if !(1..=65_535).contains(&self.listen_backlog) {
            return Err(ConfigError::Invalid {
                key: "origin.listen_backlog",
                reason: "use 1 to 65535".into(),
            });
        }
        self.validate_cdns()
    }

    fn validate_cdns(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: String| Err(ConfigError::Invalid { key, reason });
        if http::HeaderName::from_bytes(self.cdn_header.as_bytes()).is_err() {
            return invalid(
                "origin.cdn_header",
                format!("{:?} is not an HTTP header name", self.cdn_header),
            );
        }
        if !(1..=86_400).contains(&self.steering_ttl) {
            return invalid("origin.steering_ttl", "use 1 to 86400 seconds".into());
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.cdn {
            if !crate::pathway_id::is_valid(&c.id) {
                return invalid(
                    "origin.cdn.id",
                    format!("{:?}: use 1-32 of A-Z a-z 0-9 . - _", c.id),
                );
            }
            if !seen.insert(c.id.as_str()) {
                return invalid("origin.cdn.id", format!("{:?} is listed twice", c.id));
            }
            let url = c.base_url.trim_end_matches('/');
            let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
            if !c.base_url.is_empty()
                && (!scheme_ok || url.contains(['?', '#', '"', ' ']) || url.ends_with(':'))
            {
                return invalid(
                    "origin.cdn.base_url",
                    format!("{:?}: an http(s) URL without query or fragment", c.base_url),
                );
            }
        }
        if self.cdn.len() > 16 {
            return invalid("origin.cdn", "at most 16 CDNs".into());
        }
        Ok(())
    }
}
