//! How long a segment outlives its listing (RFC 8216 6.2.2, kept in
//! draft-pantos-hls-rfc8216bis): "When the server removes a Media Segment URI
//! from the Playlist, the corresponding Media Segment MUST remain available
//! to clients for a period of time equal to the duration of the segment plus
//! the duration of the longest Playlist file distributed by the server
//! containing that segment." A player that loaded the playlist just before
//! the segment left it may still be working its way towards it.
//!
//! Its own policy, separate from the playlist window (which only decides
//! what is listed): the store measures the longest playlist itself, from the
//! segments each rendition's playlist lists (`Update::first_msn` on).

use std::time::{Duration, Instant};

/// Whether a segment unlisted at `unlisted_at`, lasting `segment`, in
/// playlists of up to `playlist`, may be freed at `now`.
pub fn expired(unlisted_at: Instant, segment: Duration, playlist: Duration, now: Instant) -> bool {
    now.saturating_duration_since(unlisted_at) >= segment + playlist
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_stays_for_its_duration_plus_the_playlists() {
        let t = Instant::now();
        let (seg, pl) = (Duration::from_secs(1), Duration::from_secs(300));
        assert!(!expired(t, seg, pl, t));
        assert!(!expired(t, seg, pl, t + Duration::from_millis(300_999)));
        assert!(expired(t, seg, pl, t + Duration::from_secs(301)));
        // A clock that never moves (or went back) keeps it.
        assert!(!expired(t + Duration::from_secs(5), seg, pl, t));
    }
}
