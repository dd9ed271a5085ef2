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

/// One byte range as a request asks it (RFC 9110 14.1.2), before any
/// length is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spec {
    /// `bytes=A-`
    From(u64),
    /// `bytes=A-B` (B inclusive, B >= A)
    Closed(u64, u64),
    /// `bytes=-N`: the last N bytes.
    Suffix(u64),
}

/// The one byte range a `Range` header asks, or None where it is to be
/// ignored (absent, several ranges, another unit, malformed).
pub fn range_spec(range: Option<&str>) -> Option<Spec> {
    let spec = range?.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.trim().split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    match (a.is_empty(), b.is_empty()) {
        (true, false) => b.parse().ok().map(Spec::Suffix),
        (false, true) => a.parse().ok().map(Spec::From),
        (false, false) => match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(s), Ok(e)) if e >= s => Some(Spec::Closed(s, e)),
            _ => None,
        },
        (true, true) => None,
    }
}

pub fn answer(etag: &str, len: u64, if_none_match: Option<&str>, range: Option<&str>) -> Answer {
    if not_modified(etag, if_none_match) {
        return Answer::NotModified;
    }
    let Some(spec) = range_spec(range) else {
        return Answer::Full;
    };
    let (start, end, nonempty) = match spec {
        Spec::Suffix(n) => (len.saturating_sub(n), len, n > 0),
        Spec::From(s) => (s, len, true),
        Spec::Closed(s, e) => (s, e.saturating_add(1).min(len), true),
    };
    if nonempty && start < len && start < end {
        Answer::Partial { start, end }
    } else {
        Answer::Unsatisfiable
    }
}

/// `If-None-Match` names this ETag (or `*`).
pub fn not_modified(etag: &str, if_none_match: Option<&str>) -> bool {
    if_none_match.is_some_and(|inm| {
        inm.trim() == "*"
            || inm
                .split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == etag)
    })
}

/// What to send for a segment still being written, `available` bytes of
/// it made so far (its parts are only ever sent whole). A range that ends
/// past what exists is answered live, as RFC 8673 says: 206 with
/// `Content-Range: bytes A-B/*`, the bytes sent as they are made, up to B
/// or the segment's end (draft-pantos-hls-rfc8216bis 4.4.5.3 has players
/// ask a preload hint so, with B = 2^53-1).
#[derive(Debug, PartialEq, Eq)]
pub enum Growing {
    /// Nothing of the range is made yet: hold the request.
    Wait,
    /// 200: the whole segment, sent as it grows.
    Whole,
    /// 206 of bytes `start..end` (end exclusive), all made already.
    Now { start: u64, end: u64 },
    /// 206 from `start` as it grows, up to `last` (inclusive) or the end.
    Live { start: u64, last: u64 },
}

pub fn growing(range: Option<Spec>, available: u64) -> Growing {
    match range {
        // A suffix needs the length: not known until the end, so the whole.
        None | Some(Spec::Suffix(_)) => Growing::Whole,
        Some(Spec::From(a) | Spec::Closed(a, _)) if a >= available => Growing::Wait,
        Some(Spec::Closed(a, b)) if b < available => Growing::Now {
            start: a,
            end: b + 1,
        },
        Some(Spec::Closed(a, b)) => Growing::Live { start: a, last: b },
        // `bytes=A-` is what exists now (RFC 8673 3).
        Some(Spec::From(a)) => Growing::Now {
            start: a,
            end: available,
        },
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

    #[test]
    fn a_growing_segment_answers_ranges_live() {
        let live = range_spec(Some("bytes=2001-9007199254740991"));
        assert_eq!(live, Some(Spec::Closed(2001, 9007199254740991)));
        assert_eq!(growing(live, 2001), Growing::Wait);
        assert_eq!(
            growing(live, 3000),
            Growing::Live {
                start: 2001,
                last: 9007199254740991
            }
        );
        // A listed part: all of it is there.
        assert_eq!(
            growing(range_spec(Some("bytes=1000-2000")), 3000),
            Growing::Now {
                start: 1000,
                end: 2001
            }
        );
        assert_eq!(
            growing(range_spec(Some("bytes=1000-")), 3000),
            Growing::Now {
                start: 1000,
                end: 3000
            }
        );
        assert_eq!(growing(None, 0), Growing::Whole);
        assert_eq!(growing(range_spec(Some("bytes=-10")), 3000), Growing::Whole);
        assert_eq!(
            growing(range_spec(Some("bytes=0-1,5-6")), 3000),
            Growing::Whole
        );
    }
}
