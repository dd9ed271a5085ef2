//! Response headers per object class, for CDNs in front of the origin.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectClass {
    Multivariant,
    /// A media playlist asked for without delivery directives.
    LivePlaylist,
    /// A media playlist answering `_HLS_msn` (a fixed future state).
    BlockingPlaylist,
    EndedPlaylist,
    /// Init segments, segments and parts: a URL always names the same bytes.
    Media,
    /// A content steering manifest: an answer for one player.
    Steering,
    Error,
}

impl ObjectClass {
    pub fn label(self) -> &'static str {
        match self {
            ObjectClass::Multivariant => "multivariant",
            ObjectClass::LivePlaylist => "playlist",
            ObjectClass::BlockingPlaylist => "blocking_playlist",
            ObjectClass::EndedPlaylist => "ended_playlist",
            ObjectClass::Media => "media",
            ObjectClass::Steering => "steering",
            ObjectClass::Error => "error",
        }
    }

    pub fn cache_control(self, target_duration: Duration) -> String {
        match self {
            ObjectClass::Multivariant => "public, max-age=2".into(),
            ObjectClass::LivePlaylist => "public, max-age=1".into(),
            // Appendix B.1 of the draft: blocking responses may be cached for 6 target durations.
            ObjectClass::BlockingPlaylist => {
                format!("public, max-age={}", 6 * target_duration.as_secs().max(1))
            }
            ObjectClass::EndedPlaylist => "public, max-age=10".into(),
            ObjectClass::Media => "public, max-age=31536000, immutable".into(),
            ObjectClass::Steering => "private, no-store".into(),
            ObjectClass::Error => "no-cache".into(),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ObjectClass::Media => "video/mp4",
            ObjectClass::Steering => "application/json",
            ObjectClass::Error => "text/plain; charset=utf-8",
            _ => "application/vnd.apple.mpegurl",
        }
    }
}
