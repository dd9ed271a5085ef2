//! Request paths and LL-HLS delivery directives, parsed strictly and purely.

use crate::stream_name;

#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    Multivariant {
        stream: String,
    },
    /// The content steering manifest (`steering.json`).
    Steering {
        stream: String,
    },
    Media {
        stream: String,
        rendition: String,
        directives: Directives,
    },
    Init {
        stream: String,
        rendition: String,
        epoch: String,
        id: u32,
    },
    Segment {
        stream: String,
        rendition: String,
        epoch: String,
        msn: u64,
    },
    Part {
        stream: String,
        rendition: String,
        epoch: String,
        msn: u64,
        part: u32,
    },
}

/// `_HLS_msn`, `_HLS_part`, `_HLS_skip` (draft-pantos-hls-rfc8216bis 6.2.5).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Directives {
    pub msn: Option<u64>,
    pub part: Option<u32>,
    pub skip: bool,
    /// `_HLS_skip=v2`: EXT-X-DATERANGE tags may be skipped too, and the
    /// answer must say which were removed (RECENTLY-REMOVED-DATERANGES).
    pub skip_dateranges: bool,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RouteError {
    /// 404: no such object can exist.
    #[error("not found")]
    NotFound,
    /// 400: the request is malformed.
    #[error("bad request: {0}")]
    Bad(&'static str),
}

fn name(s: &str) -> Result<String, RouteError> {
    if stream_name::is_valid(s) {
        Ok(s.to_string())
    } else {
        Err(RouteError::NotFound)
    }
}

/// Decimal digits only, at most 19 of them (so they always fit u64/u32).
fn number<T: std::str::FromStr>(s: &str) -> Result<T, RouteError> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RouteError::NotFound);
    }
    s.parse().map_err(|_| RouteError::NotFound)
}

pub fn parse(path: &str, query: Option<&str>) -> Result<Route, RouteError> {
    if path.len() > 512 {
        return Err(RouteError::Bad("path too long"));
    }
    if path.contains("..") || path.contains('%') || path.contains("//") || path.contains('\\') {
        return Err(RouteError::Bad("path is not canonical"));
    }
    let segs: Vec<&str> = path
        .strip_prefix("/live/")
        .ok_or(RouteError::NotFound)?
        .split('/')
        .collect();
    match segs.as_slice() {
        [stream, "index.m3u8"] => Ok(Route::Multivariant {
            stream: name(stream)?,
        }),
        [stream, "steering.json"] => Ok(Route::Steering {
            stream: name(stream)?,
        }),
        [stream, rendition, "index.m3u8"] => Ok(Route::Media {
            stream: name(stream)?,
            rendition: name(rendition)?,
            directives: directives(query)?,
        }),
        [stream, rendition, epoch, file] => {
            let (stream, rendition, epoch) = (name(stream)?, name(rendition)?, name(epoch)?);
            if let Some(id) = file
                .strip_prefix("init")
                .and_then(|f| f.strip_suffix(".mp4"))
            {
                return Ok(Route::Init {
                    stream,
                    rendition,
                    epoch,
                    id: number(id)?,
                });
            }
            let stem = file.strip_suffix(".m4s").ok_or(RouteError::NotFound)?;
            match stem.split_once('.') {
                None => Ok(Route::Segment {
                    stream,
                    rendition,
                    epoch,
                    msn: number(stem)?,
                }),
                Some((msn, part)) => Ok(Route::Part {
                    stream,
                    rendition,
                    epoch,
                    msn: number(msn)?,
                    part: number(part)?,
                }),
            }
        }
        _ => Err(RouteError::NotFound),
    }
}

/// Unknown query parameters are ignored (CDNs and players add their own);
/// ours must be well-formed, given once, and `_HLS_part` needs `_HLS_msn`.
pub fn directives(query: Option<&str>) -> Result<Directives, RouteError> {
    let mut d = Directives::default();
    let mut seen_msn = false;
    let mut seen_part = false;
    let mut seen_skip = false;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let bad_number = |_| RouteError::Bad("directive is not a number in range");
        match k {
            "_HLS_msn" => {
                if std::mem::replace(&mut seen_msn, true) {
                    return Err(RouteError::Bad("_HLS_msn given twice"));
                }
                d.msn = Some(number(v).map_err(bad_number)?);
            }
            "_HLS_part" => {
                if std::mem::replace(&mut seen_part, true) {
                    return Err(RouteError::Bad("_HLS_part given twice"));
                }
                d.part = Some(number(v).map_err(bad_number)?);
            }
            "_HLS_skip" => {
                if std::mem::replace(&mut seen_skip, true) {
                    return Err(RouteError::Bad("_HLS_skip given twice"));
                }
                // An unknown value asks for nothing we offer: the full playlist.
                d.skip = matches!(v, "YES" | "v2");
                d.skip_dateranges = v == "v2";
            }
            _ => {}
        }
    }
    if d.part.is_some() && d.msn.is_none() {
        return Err(RouteError::Bad("_HLS_part without _HLS_msn"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_object() {
        assert_eq!(
            parse("/live/a/index.m3u8", None),
            Ok(Route::Multivariant { stream: "a".into() })
        );
        assert_eq!(
            parse(
                "/live/a/source/index.m3u8",
                Some("_HLS_msn=5&_HLS_part=2&_HLS_skip=YES")
            ),
            Ok(Route::Media {
                stream: "a".into(),
                rendition: "source".into(),
                directives: Directives {
                    msn: Some(5),
                    part: Some(2),
                    skip: true,
                    skip_dateranges: false,
                }
            })
        );
        assert_eq!(
            parse("/live/a/source/k1/init1.mp4", None),
            Ok(Route::Init {
                stream: "a".into(),
                rendition: "source".into(),
                epoch: "k1".into(),
                id: 1
            })
        );
        assert_eq!(
            parse("/live/a/source/k1/42.m4s", None),
            Ok(Route::Segment {
                stream: "a".into(),
                rendition: "source".into(),
                epoch: "k1".into(),
                msn: 42
            })
        );
        assert_eq!(
            parse("/live/a/source/k1/42.3.m4s", None),
            Ok(Route::Part {
                stream: "a".into(),
                rendition: "source".into(),
                epoch: "k1".into(),
                msn: 42,
                part: 3
            })
        );
    }

    #[test]
    fn hostile_paths_are_refused() {
        assert_eq!(
            parse("/live/../etc/passwd", None),
            Err(RouteError::Bad("path is not canonical"))
        );
        assert_eq!(
            parse("/live/a/%2e%2e/index.m3u8", None),
            Err(RouteError::Bad("path is not canonical"))
        );
        assert_eq!(
            parse("/live/a/source/k1/99999999999999999999999.m4s", None),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            parse("/live/a/source/k1/1.99999999999.m4s", None),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            parse("/live/a/source/k1/-1.m4s", None),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            parse("/live/a/source/k1/1.2.3.m4s", None),
            Err(RouteError::NotFound)
        );
        assert_eq!(parse("/etc/passwd", None), Err(RouteError::NotFound));
        assert_eq!(
            parse(&format!("/live/{}/index.m3u8", "a".repeat(600)), None),
            Err(RouteError::Bad("path too long"))
        );
    }

    #[test]
    fn directive_errors() {
        assert_eq!(
            directives(Some("_HLS_part=1")),
            Err(RouteError::Bad("_HLS_part without _HLS_msn"))
        );
        assert_eq!(
            directives(Some("_HLS_msn=x")),
            Err(RouteError::Bad("directive is not a number in range"))
        );
        assert_eq!(
            directives(Some("_HLS_msn=99999999999999999999999")),
            Err(RouteError::Bad("directive is not a number in range"))
        );
        assert_eq!(
            directives(Some("_HLS_msn=1&_HLS_msn=2")),
            Err(RouteError::Bad("_HLS_msn given twice"))
        );
        assert_eq!(directives(Some("_HLS_skip=NO")), Ok(Directives::default()));
        assert_eq!(
            directives(Some("_HLS_skip=v2")).map(|d| (d.skip, d.skip_dateranges)),
            Ok((true, true))
        );
        assert_eq!(
            directives(Some("_HLS_skip=YES")).map(|d| d.skip_dateranges),
            Ok(false)
        );
        assert_eq!(directives(Some("cb=123&foo")), Ok(Directives::default()));
    }
}
