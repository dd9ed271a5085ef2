//! The push between tiers, as HTTP requests (pure: no sockets). Modelled on
//! DASH-IF Live Media Ingest: every object is a `PUT` under a name that
//! says what it is, the receiver builds the playlists, and a name sent again
//! with the same bytes is the same object.
//!
//! ```text
//! PUT /push/v1/STREAM/EPOCH/session          JSON SessionPlan: the session starts
//! PUT /push/v1/STREAM/EPOCH/dependent        segments may start without a keyframe
//! PUT /push/v1/STREAM/EPOCH/end              the session ended
//! PUT /push/v1/STREAM/EPOCH/r/REND/init/ID   an init segment
//! PUT /push/v1/STREAM/EPOCH/r/REND/part/MSN/INDEX   a part; castline-part: JSON PartMeta
//! PUT /push/v1/STREAM/EPOCH/r/REND/segment/MSN      JSON SegmentMeta: segment MSN is complete
//! PUT /push/v1/STREAM/EPOCH/r/REND/end       the rendition ended
//! ```
//!
//! Every name is checked with the stream-name rule, so none can escape a
//! path or need escaping; every number must parse; a part's metadata must
//! name the part its path names.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::store::RenditionMeta;
use crate::stream_name;

pub const PREFIX: &str = "/push/v1/";
/// The header that carries a part's metadata.
pub const PART_HEADER: &str = "castline-part";

/// What starts a session on an origin: its renditions and its timing, as
/// the packager fixed them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionPlan {
    pub video: Vec<String>,
    pub audio: Option<String>,
    pub target_duration: u32,
    pub part_target: Duration,
    /// The session continues one whose ingest pod was lost, at this MSN
    /// (see [`Resume`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continues_at: Option<u64>,
}

/// An origin's answer to `GET /push/v1/STREAM`: where the stream's live
/// session would continue, for an ingest pod that takes it over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resume {
    pub epoch: String,
    /// One past the newest MSN any rendition has begun.
    pub next_msn: u64,
    /// One past the highest init segment id any rendition has.
    pub next_init: u32,
    /// Milliseconds since the session's last push.
    pub silent_ms: u64,
}

/// The path an ingest pod asks where `stream` continues.
pub fn resume_path(stream: &str) -> String {
    format!("{PREFIX}{stream}")
}

/// The stream a `GET` of [`resume_path`] asks about.
pub fn resume_stream(path: &str) -> Result<&str, WireError> {
    let stream = path.strip_prefix(PREFIX).ok_or(WireError::Path)?;
    if stream_name::is_valid(stream) {
        Ok(stream)
    } else {
        Err(WireError::Name)
    }
}

/// A part's place and description (its bytes are the body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartMeta {
    pub discontinuity: bool,
    pub init_id: u32,
    /// EXT-X-PROGRAM-DATE-TIME of its segment, nanoseconds since 1970.
    pub date_ns: u64,
    pub duration: f64,
    pub independent: bool,
    /// The part after it (msn, index), for the preload hint.
    pub next: (u64, u32),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentMeta {
    pub duration: f64,
    pub meta: Option<RenditionMeta>,
    pub next: (u64, u32),
}

/// One push, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Start(SessionPlan),
    Dependent,
    End,
    Init {
        rendition: String,
        id: u32,
        data: Bytes,
    },
    Part {
        rendition: String,
        msn: u64,
        index: u32,
        meta: PartMeta,
        data: Bytes,
    },
    SegmentEnd {
        rendition: String,
        msn: u64,
        meta: SegmentMeta,
    },
    RenditionEnd {
        rendition: String,
    },
}

/// The session a push belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    pub stream: String,
    pub epoch: String,
}

/// A push as the pusher sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub path: String,
    pub part_header: Option<String>,
    pub body: Bytes,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WireError {
    #[error("not a push path")]
    Path,
    #[error("a name in the path breaks the stream-name rule")]
    Name,
    #[error("a number in the path does not parse")]
    Number,
    #[error("malformed metadata: {0}")]
    Meta(String),
    #[error("the part's metadata is missing")]
    MissingMeta,
}

pub fn date_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(u64::MAX as u128) as u64)
}

pub fn date(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

fn json<T: Serialize>(v: &T) -> String {
    // Plain structs of numbers, booleans and checked names: cannot fail.
    serde_json::to_string(v).unwrap_or_default()
}

/// The request that carries `m` for session `key`.
pub fn encode(key: &SessionKey, m: &Message) -> Request {
    let base = format!("{PREFIX}{}/{}", key.stream, key.epoch);
    let (path, part_header, body) = match m {
        Message::Start(plan) => (format!("{base}/session"), None, Bytes::from(json(plan))),
        Message::Dependent => (format!("{base}/dependent"), None, Bytes::new()),
        Message::End => (format!("{base}/end"), None, Bytes::new()),
        Message::Init {
            rendition,
            id,
            data,
        } => (
            format!("{base}/r/{rendition}/init/{id}"),
            None,
            data.clone(),
        ),
        Message::Part {
            rendition,
            msn,
            index,
            meta,
            data,
        } => (
            format!("{base}/r/{rendition}/part/{msn}/{index}"),
            Some(json(meta)),
            data.clone(),
        ),
        Message::SegmentEnd {
            rendition,
            msn,
            meta,
        } => (
            format!("{base}/r/{rendition}/segment/{msn}"),
            None,
            Bytes::from(json(meta)),
        ),
        Message::RenditionEnd { rendition } => {
            (format!("{base}/r/{rendition}/end"), None, Bytes::new())
        }
    };
    Request {
        path,
        part_header,
        body,
    }
}

/// The message a `PUT` to `path` carries.
pub fn decode(
    path: &str,
    part_header: Option<&str>,
    body: Bytes,
) -> Result<(SessionKey, Message), WireError> {
    let rest = path.strip_prefix(PREFIX).ok_or(WireError::Path)?;
    let segs: Vec<&str> = rest.split('/').collect();
    let name = |s: &str| {
        stream_name::is_valid(s)
            .then(|| s.to_string())
            .ok_or(WireError::Name)
    };
    let (stream, epoch) = match segs.as_slice() {
        [s, e, ..] => (name(s)?, name(e)?),
        _ => return Err(WireError::Path),
    };
    let num = |s: &str| s.parse::<u64>().map_err(|_| WireError::Number);
    let small = |s: &str| s.parse::<u32>().map_err(|_| WireError::Number);
    let m = match segs[2..] {
        ["session"] => Message::Start(meta(&body)?),
        ["dependent"] => Message::Dependent,
        ["end"] => Message::End,
        ["r", r, "init", id] => Message::Init {
            rendition: name(r)?,
            id: small(id)?,
            data: body,
        },
        ["r", r, "part", msn, index] => {
            let header = part_header.ok_or(WireError::MissingMeta)?;
            Message::Part {
                rendition: name(r)?,
                msn: num(msn)?,
                index: small(index)?,
                meta: meta(header.as_bytes())?,
                data: body,
            }
        }
        ["r", r, "segment", msn] => Message::SegmentEnd {
            rendition: name(r)?,
            msn: num(msn)?,
            meta: meta(&body)?,
        },
        ["r", r, "end"] => Message::RenditionEnd {
            rendition: name(r)?,
        },
        _ => return Err(WireError::Path),
    };
    Ok((SessionKey { stream, epoch }, m))
}

fn meta<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, WireError> {
    serde_json::from_slice(b).map_err(|e| WireError::Meta(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SessionKey {
        SessionKey {
            stream: "final".into(),
            epoch: "mj3k2a".into(),
        }
    }

    fn roundtrip(m: Message) -> Request {
        let r = encode(&key(), &m);
        let back = decode(&r.path, r.part_header.as_deref(), r.body.clone()).unwrap();
        assert_eq!(back, (key(), m));
        r
    }

    #[test]
    fn every_message_is_a_named_put_that_decodes_to_itself() {
        let plan = SessionPlan {
            video: vec!["720p".into(), "360p".into()],
            audio: Some("audio".into()),
            target_duration: 1,
            part_target: Duration::from_millis(333),
            continues_at: None,
        };
        let r = roundtrip(Message::Start(plan.clone()));
        assert_eq!(r.path, "/push/v1/final/mj3k2a/session");
        assert_eq!(
            std::str::from_utf8(&r.body).unwrap(),
            r#"{"video":["720p","360p"],"audio":"audio","target_duration":1,"part_target":{"secs":0,"nanos":333000000}}"#
        );
        let taken_over = SessionPlan {
            continues_at: Some(57),
            ..plan
        };
        let r = roundtrip(Message::Start(taken_over));
        assert!(r.body.ends_with(br#","continues_at":57}"#));
        assert_eq!(resume_path("final"), "/push/v1/final");
        assert_eq!(resume_stream("/push/v1/final"), Ok("final"));
        assert_eq!(resume_stream("/push/v1/fi%2Fnal"), Err(WireError::Name));
        let part = Message::Part {
            rendition: "720p".into(),
            msn: 41,
            index: 2,
            meta: PartMeta {
                discontinuity: false,
                init_id: 0,
                date_ns: 1_796_000_000_123_456_789,
                duration: 0.33333,
                independent: true,
                next: (42, 0),
            },
            data: Bytes::from_static(b"moof"),
        };
        let r = roundtrip(part);
        assert_eq!(r.path, "/push/v1/final/mj3k2a/r/720p/part/41/2");
        assert_eq!(
            r.part_header.as_deref(),
            Some(
                r#"{"discontinuity":false,"init_id":0,"date_ns":1796000000123456789,"duration":0.33333,"independent":true,"next":[42,0]}"#
            )
        );
        let r = roundtrip(Message::Init {
            rendition: "audio".into(),
            id: 1,
            data: Bytes::from_static(b"ftyp"),
        });
        assert_eq!(r.path, "/push/v1/final/mj3k2a/r/audio/init/1");
        let r = roundtrip(Message::SegmentEnd {
            rendition: "audio".into(),
            msn: 41,
            meta: SegmentMeta {
                duration: 1.002667,
                meta: None,
                next: (42, 0),
            },
        });
        assert_eq!(r.path, "/push/v1/final/mj3k2a/r/audio/segment/41");
        assert_eq!(
            roundtrip(Message::RenditionEnd {
                rendition: "audio".into()
            })
            .path,
            "/push/v1/final/mj3k2a/r/audio/end"
        );
        assert_eq!(
            roundtrip(Message::Dependent).path,
            "/push/v1/final/mj3k2a/dependent"
        );
        assert_eq!(roundtrip(Message::End).path, "/push/v1/final/mj3k2a/end");
    }

    #[test]
    fn hostile_or_malformed_pushes_are_refused_with_their_reason() {
        let d = |p: &str, h: Option<&str>| decode(p, h, Bytes::new()).map(|_| ());
        assert_eq!(d("/live/final/index.m3u8", None), Err(WireError::Path));
        assert_eq!(d("/push/v1/../etc/end", None), Err(WireError::Name));
        assert_eq!(d("/push/v1/a%2F..%2Fb/e/end", None), Err(WireError::Name));
        assert_eq!(
            d("/push/v1/final/e/r/..%2F/init/0", None),
            Err(WireError::Name)
        );
        assert_eq!(
            d("/push/v1/final/e/r/720p/init/-1", None),
            Err(WireError::Number)
        );
        assert_eq!(
            d("/push/v1/final/e/r/720p/part/1/99999999999", Some("{}")),
            Err(WireError::Number)
        );
        assert_eq!(
            d("/push/v1/final/e/r/720p/part/1/0", None),
            Err(WireError::MissingMeta)
        );
        assert!(matches!(
            d("/push/v1/final/e/r/720p/part/1/0", Some("{")),
            Err(WireError::Meta(_))
        ));
        assert!(matches!(
            d("/push/v1/final/e/session", None),
            Err(WireError::Meta(_))
        ));
        assert_eq!(
            d("/push/v1/final/e/r/720p/delete", None),
            Err(WireError::Path)
        );
        assert_eq!(d("/push/v1/final", None), Err(WireError::Path));
        assert_eq!(d("/push/v1/final/e/end/extra", None), Err(WireError::Path));
    }
}
