//! Conditional and partial GETs on immutable media (pure): ETag from the
//! object's identity, `If-None-Match` → 304, one `Range` → 206 or 416
//! (RFC 9110 13.1.2, 14). Several ranges are answered with the whole object,
//! as RFC 9110 allows.

/// What to send for a media object of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Full,
    NotModified,
    /// Bytes `start..end` (end exclusive).
    Partial {
        start: u64,
        end: u64,
    },
    Unsatisfiable,
}

/// A strong ETag for an immutable object: its path names its bytes for good
/// (epochs are new for every session), so the path is its identity.
pub fn etag(path: &str) -> String {
    let id: String = path
        .trim_start_matches("/live/")
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\')
        .collect();
    format!("\"{id}\"")
}

pub fn answer(etag: &str, len: u64, if_none_match: Option<&str>, range: Option<&str>) -> Answer {
    if let Some(inm) = if_none_match {
        let matches = inm.trim() == "*"
            || inm
                .split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == etag);
        if matches {
            return Answer::NotModified;
        }
    }
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else {
        return Answer::Full;
    };
    if spec.contains(',') {
        return Answer::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Answer::Full; // not a byte range we understand: ignore it
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => b
            .parse::<u64>()
            .ok()
            .map(|n| (len.saturating_sub(n), len, n > 0)),
        // bytes=A-: from A to the end.
        (false, true) => a.parse::<u64>().ok().map(|s| (s, len, true)),
        // bytes=A-B, inclusive.
        (false, false) => match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(s), Ok(e)) if e >= s => Some((s, e.saturating_add(1).min(len), true)),
            _ => None,
        },
        (true, true) => None,
    };
    match parsed {
        None => Answer::Full,
        Some((start, end, nonempty)) if nonempty && start < len && start < end => {
            Answer::Partial { start, end }
        }
        Some(_) => Answer::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: &str = "\"s/720p/mx1/3.m4s\"";

    #[test]
    fn etag_is_the_objects_identity() {
        assert_eq!(etag("/live/s/720p/mx1/3.m4s"), E);
    }

    #[test]
    fn conditional_and_ranges() {
        assert_eq!(answer(E, 100, Some(E), None), Answer::NotModified);
        assert_eq!(
            answer(E, 100, Some("\"x\", W/\"s/720p/mx1/3.m4s\""), None),
            Answer::NotModified
        );
        assert_eq!(answer(E, 100, Some("\"other\""), None), Answer::Full);
        assert_eq!(
            answer(E, 100, None, Some("bytes=0-9")),
            Answer::Partial { start: 0, end: 10 }
        );
        assert_eq!(
            answer(E, 100, None, Some("bytes=90-200")),
            Answer::Partial {
                start: 90,
                end: 100
            }
        );
        assert_eq!(
            answer(E, 100, None, Some("bytes=50-")),
            Answer::Partial {
                start: 50,
                end: 100
            }
        );
        assert_eq!(
            answer(E, 100, None, Some("bytes=-10")),
            Answer::Partial {
                start: 90,
                end: 100
            }
        );
        assert_eq!(
            answer(E, 100, None, Some("bytes=100-")),
            Answer::Unsatisfiable
        );
        assert_eq!(
            answer(E, 100, None, Some("bytes=-0")),
            Answer::Unsatisfiable
        );
        assert_eq!(answer(E, 100, None, Some("bytes=0-1,5-6")), Answer::Full);
        assert_eq!(answer(E, 100, None, Some("bytes=9-3")), Answer::Full);
        assert_eq!(answer(E, 100, None, Some("items=0-1")), Answer::Full);
    }
}
