//! The rule for stream names, shared by every side that meets one: ingest
//! (a publisher's key or mapped name), the origin (the name in a URL), the
//! store (a session directory on disk) and the config (names and routes).

/// Stream names appear in URLs and on disk: 1-64 of `A-Z a-z 0-9 _ -`, so
/// a name is never a path separator, a dot segment or a character a URL
/// would have to escape.
pub fn is_valid(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::is_valid;

    #[test]
    fn names_are_short_url_and_path_safe() {
        assert!(is_valid("match1"));
        assert!(is_valid("Final_2026-a"));
        assert!(is_valid(&"x".repeat(64)));
        assert!(!is_valid(&"x".repeat(65)));
        assert!(!is_valid(""));
        for bad in ["..", "a/b", "a.b", "a b", "a%2F", "caf\u{e9}", "a?b"] {
            assert!(!is_valid(bad), "{bad:?}");
        }
    }
}
