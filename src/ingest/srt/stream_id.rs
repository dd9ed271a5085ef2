//! The SRT stream id a caller sends, as a publish request (pure).
//!
//! Accepted forms (the first is SRT's access-control syntax, see Haivision's
//! `docs/features/access-control.md`):
//! - `#!::r=KEY,m=publish` (`m` defaults to publish; `backup=1` makes it
//!   the stream's backup input; `u=`, `s=`, `h=`, `t=` and unknown keys
//!   are ignored);
//! - `publish:KEY` (MediaMTX's form);
//! - `live/KEY`;
//! - `KEY`.
//!
//! The key then goes through [`crate::ingest::auth::StreamKeys`] as an RTMP
//! stream key does.

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StreamIdError {
    #[error("no stream id: use srt://HOST:PORT?streamid=KEY (or #!::r=KEY,m=publish)")]
    Empty,
    #[error("stream id asks for playback (mode {0:?}); castline takes publishers over SRT and serves playback over HLS")]
    NotPublish(String),
    #[error("stream id {0:?} has no resource (r=KEY)")]
    NoResource(String),
    #[error("stream id entry {0:?} is not key=value")]
    Malformed(String),
}

/// The publishing key a stream id names.
pub fn publish_key(id: &str) -> Result<String, StreamIdError> {
    // Some callers percent-encode the id (`%23%21%3A%3Ar%3D...`); ffmpeg sends it as written.
    let decoded = percent_decode(id);
    let id = decoded.trim();
    if id.is_empty() {
        return Err(StreamIdError::Empty);
    }
    if let Some(list) = id.strip_prefix("#!::") {
        let (mut resource, mut backup) = (None, false);
        for entry in list.split(',').filter(|e| !e.is_empty()) {
            let (k, v) = entry
                .split_once('=')
                .ok_or_else(|| StreamIdError::Malformed(entry.to_string()))?;
            match k.trim() {
                "r" => resource = Some(v.trim()),
                "m" if v.trim() != "publish" => {
                    return Err(StreamIdError::NotPublish(v.trim().to_string()))
                }
                "backup" => backup = matches!(v.trim(), "1" | "true"),
                _ => {}
            }
        }
        let r = resource
            .filter(|r| !r.is_empty())
            .ok_or_else(|| StreamIdError::NoResource(id.to_string()))?;
        let key = strip_app(r).to_string();
        // The backup input is named as in an RTMP key's query.
        return Ok(if backup {
            format!("{key}?backup=1")
        } else {
            key
        });
    }
    if let Some((mode, key)) = id.split_once(':') {
        return match mode {
            "publish" => Ok(strip_app(key).to_string()),
            other => Err(StreamIdError::NotPublish(other.to_string())),
        };
    }
    Ok(strip_app(id).to_string())
}

/// `%XX` escapes decoded; anything else (and a broken escape) kept as is.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).and_then(|&c| hex(c)),
            b.get(i + 2).and_then(|&c| hex(c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `live/KEY` names KEY, as `rtmp://HOST/live/KEY` does.
fn strip_app(key: &str) -> &str {
    key.strip_prefix("live/").unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_names_the_key() {
        for id in [
            "#!::r=cam1,m=publish",
            "#!::m=publish,r=cam1",
            "#!::r=cam1",
            "#!::u=alice,r=cam1,m=publish,t=stream",
            "#!::r=live/cam1,m=publish",
            "publish:cam1",
            "publish:live/cam1",
            "live/cam1",
            "cam1",
            "%23%21%3A%3Ar%3Dcam1%2Cm%3Dpublish",
            "live%2Fcam1",
        ] {
            assert_eq!(publish_key(id), Ok("cam1".to_string()), "{id}");
        }
    }

    #[test]
    fn a_backup_entry_names_the_backup_input() {
        assert_eq!(
            publish_key("#!::r=cam1,m=publish,backup=1"),
            Ok("cam1?backup=1".into())
        );
        assert_eq!(publish_key("#!::r=cam1,backup=0"), Ok("cam1".into()));
        assert_eq!(publish_key("cam1?backup=1"), Ok("cam1?backup=1".into()));
    }

    #[test]
    fn playback_and_broken_ids_are_refused_with_a_reason() {
        assert_eq!(
            publish_key("#!::r=cam1,m=request"),
            Err(StreamIdError::NotPublish("request".into()))
        );
        assert_eq!(
            publish_key("read:cam1"),
            Err(StreamIdError::NotPublish("read".into()))
        );
        assert_eq!(publish_key(""), Err(StreamIdError::Empty));
        assert_eq!(
            publish_key("%zz"),
            Ok("%zz".to_string()),
            "a broken escape is kept"
        );
        assert!(matches!(
            publish_key("#!::m=publish"),
            Err(StreamIdError::NoResource(_))
        ));
        assert!(matches!(
            publish_key("#!::r"),
            Err(StreamIdError::Malformed(_))
        ));
    }
}
