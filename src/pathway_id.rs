//! The rule for content-steering Pathway IDs, shared by the config (which
//! validates the configured CDNs) and the origin (which steers by them).

/// A legal Pathway ID (the spec: characters `[a-zA-Z0-9]`, `.`, `-`, `_`),
/// at most 32 of them so it can be a metric label.
pub fn is_valid(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}
