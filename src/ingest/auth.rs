//! Stream keys: which publishing key maps to which public stream name.

use std::collections::HashMap;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    #[error("unknown stream key")]
    UnknownKey,
    #[error("stream key {0:?} is not a valid stream name (use 1-64 of A-Z a-z 0-9 _ -)")]
    BadName(String),
}

/// Maps stream keys to stream names. With no keys configured, publishing is
/// open and the key itself is the stream name.
#[derive(Debug, Clone, Default)]
pub struct StreamKeys {
    keys: HashMap<String, String>,
}

impl StreamKeys {
    pub fn new(keys: HashMap<String, String>) -> Self {
        StreamKeys { keys }
    }

    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// The stream name a publisher with `key` may publish to.
    pub fn resolve(&self, key: &str) -> Result<String, AuthError> {
        // OBS and some encoders append a query (`key?param=...`) to the key.
        let key = key.split('?').next().unwrap_or_default();
        let name = if self.is_open() {
            key
        } else {
            self.keys.get(key).ok_or(AuthError::UnknownKey)?.as_str()
        };
        if !crate::stream_name::is_valid(name) {
            return Err(AuthError::BadName(name.to_string()));
        }
        Ok(name.to_string())
    }
}

/// Which input a stream key publishes: the backup when its query says
/// `backup=1` (or `backup=true`), as YouTube's backup ingest URL does;
/// else the primary.
pub fn input_of(key: &str) -> crate::hub::Input {
    let query = key.split_once('?').map_or("", |(_, q)| q);
    let backup = query
        .split('&')
        .any(|kv| matches!(kv, "backup=1" | "backup=true"));
    if backup {
        crate::hub::Input::Backup
    } else {
        crate::hub::Input::Primary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_with_backup_1_in_its_query_is_the_backup_input() {
        use crate::hub::Input;
        assert_eq!(input_of("match1"), Input::Primary);
        assert_eq!(input_of("match1?backup=1"), Input::Backup);
        assert_eq!(input_of("match1?obs=1&backup=true"), Input::Backup);
        assert_eq!(input_of("match1?backup=0"), Input::Primary);
        assert_eq!(input_of("match1?nobackup=1"), Input::Primary);
        // The key itself is checked as for the primary.
        let k = StreamKeys::default();
        assert_eq!(k.resolve("match1?backup=1"), Ok("match1".into()));
    }

    #[test]
    fn open_publishing_uses_key_as_name() {
        let k = StreamKeys::default();
        assert_eq!(k.resolve("match1"), Ok("match1".into()));
        assert_eq!(k.resolve("match1?obs=1"), Ok("match1".into()));
        assert!(matches!(k.resolve("../etc"), Err(AuthError::BadName(_))));
        assert!(matches!(k.resolve(""), Err(AuthError::BadName(_))));
    }

    #[test]
    fn configured_keys_map_to_names_and_unknown_is_refused() {
        let k = StreamKeys::new([("s3cret".to_string(), "final".to_string())].into());
        assert_eq!(k.resolve("s3cret"), Ok("final".into()));
        assert_eq!(k.resolve("final"), Err(AuthError::UnknownKey));
    }
}
