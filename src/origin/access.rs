//! Who may reach the origin: the CDN secret, and the signed-URL prefix.

/// Who may reach the origin.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// (header, value) the CDN must send; None: anyone.
    pub cdn_secret: Option<(http::HeaderName, String)>,
    /// With a key, playback URLs must be signed (`signed.rs`).
    pub signing_key: Option<Vec<u8>>,
    /// A token may come in `signed::TOKEN_HEADER` (`origin.cdn_checks_tokens`:
    /// the CDN checked it at its edge; the config demands the CDN secret).
    pub edge_tokens: bool,
}

impl Access {
    pub(super) fn allows(&self, headers: &http::HeaderMap) -> bool {
        let Some((name, secret)) = &self.cdn_secret else {
            return true;
        };
        headers
            .get(name)
            .is_some_and(|v| same_bytes(v.as_bytes(), secret.as_bytes()))
    }
}

pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The path without its signing prefix (for headers that name the object).
pub(super) fn signed_inner<'a>(access: &Access, path: &'a str) -> &'a str {
    if access.signing_key.is_none() {
        return path;
    }
    path.strip_prefix("/s/")
        .and_then(|r| r.splitn(3, '/').nth(2))
        .map_or(path, |inner| &path[path.len() - inner.len() - 1..])
}

/// Equality that takes the same time wherever the first difference is (a
/// secret compared byte by byte would leak its prefix through timing).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cdn_secret_is_compared_whole() {
        let access = super::Access {
            cdn_secret: Some((http::HeaderName::from_static("x-s"), "s3cret".into())),
            signing_key: None,
            edge_tokens: false,
        };
        let mut h = http::HeaderMap::new();
        assert!(!access.allows(&h));
        h.insert("x-s", http::HeaderValue::from_static("s3cre"));
        assert!(!access.allows(&h));
        h.insert("x-s", http::HeaderValue::from_static("s3cret"));
        assert!(access.allows(&h));
        assert!(super::Access::default().allows(&http::HeaderMap::new()));
    }
}
