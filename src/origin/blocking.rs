//! When a blocking request can be answered (draft-pantos-hls-rfc8216bis
//! 6.2.5.2 and 6.2.6), as pure functions of a rendition's [`Progress`].

use super::route::Directives;
use crate::store::Progress;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Readiness {
    /// Answer now.
    Ready,
    /// Hold the request until the rendition changes (or the deadline passes).
    Wait,
    /// "_HLS_msn greater than the last Media Sequence Number plus two": 400.
    TooFarAhead,
    /// The object will never exist (skipped, evicted, or the stream ended): 404.
    Gone,
}

fn last_msn(p: &Progress) -> u64 {
    p.last_part.map_or(0, |(m, _)| m)
}

/// A media playlist request with delivery directives.
pub fn playlist(p: &Progress, d: &Directives) -> Readiness {
    // "If the Playlist contains an EXT-X-ENDLIST tag, the server MUST ignore
    // the delivery directives": answer with what there is.
    let Some(msn) = d.msn.filter(|_| !p.ended) else {
        return Readiness::Ready;
    };
    if msn > last_msn(p).saturating_add(2) {
        return Readiness::TooFarAhead;
    }
    let ready = match d.part {
        // "_HLS_msn=M alone: hold until the Playlist contains Media Segment M or later."
        None => p.last_complete.is_some_and(|c| c >= msn),
        // "...until it contains Partial Segment N of Media Segment M or later."
        Some(part) => p.last_part.is_some_and(|last| last >= (msn, part)),
    };
    if ready {
        Readiness::Ready
    } else {
        Readiness::Wait
    }
}

/// A part request: the preload-hinted part blocks until it is complete.
pub fn part(p: &Progress, msn: u64, part: u32, exists: bool) -> Readiness {
    if exists {
        return Readiness::Ready;
    }
    let passed = p.last_part.is_some_and(|last| last >= (msn, part))
        || p.last_complete.is_some_and(|c| c >= msn);
    if p.ended || msn < p.first_msn || passed || msn > last_msn(p).saturating_add(2) {
        // A hint that segmentation made wrong is answered 404, as 6.2.6 says.
        return Readiness::Gone;
    }
    Readiness::Wait
}

/// A segment request: a segment still being built is worth waiting for.
pub fn segment(p: &Progress, msn: u64, exists: bool) -> Readiness {
    if exists {
        return Readiness::Ready;
    }
    let passed = p.last_complete.is_some_and(|c| c >= msn);
    if p.ended || msn < p.first_msn || passed || msn > last_msn(p).saturating_add(1) {
        return Readiness::Gone;
    }
    Readiness::Wait
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(last_part: (u64, u32), last_complete: Option<u64>) -> Progress {
        Progress {
            last_part: Some(last_part),
            last_complete,
            first_msn: 0,
            ended: false,
            ..Default::default()
        }
    }

    fn d(msn: Option<u64>, part: Option<u32>) -> Directives {
        Directives {
            msn,
            part,
            skip: false,
            skip_dateranges: false,
        }
    }

    #[test]
    fn playlist_blocking_rules() {
        let p = progress((5, 2), Some(4));
        assert_eq!(playlist(&p, &d(None, None)), Readiness::Ready);
        assert_eq!(playlist(&p, &d(Some(5), Some(2))), Readiness::Ready);
        assert_eq!(playlist(&p, &d(Some(5), Some(3))), Readiness::Wait);
        assert_eq!(playlist(&p, &d(Some(4), None)), Readiness::Ready);
        assert_eq!(playlist(&p, &d(Some(5), None)), Readiness::Wait);
        assert_eq!(playlist(&p, &d(Some(7), Some(0))), Readiness::Wait);
        assert_eq!(playlist(&p, &d(Some(8), None)), Readiness::TooFarAhead);
        let ended = Progress { ended: true, ..p };
        assert_eq!(playlist(&ended, &d(Some(99), Some(0))), Readiness::Ready);
    }

    #[test]
    fn a_complete_segment_with_fewer_parts_waits_for_the_next_segment() {
        let p = progress((5, 4), Some(5));
        assert_eq!(playlist(&p, &d(Some(5), Some(5))), Readiness::Wait);
        let p = progress((6, 0), Some(5));
        assert_eq!(playlist(&p, &d(Some(5), Some(5))), Readiness::Ready);
    }

    #[test]
    fn part_and_segment_requests() {
        let p = progress((5, 2), Some(4));
        assert_eq!(
            part(&p, 5, 3, false),
            Readiness::Wait,
            "the hinted part blocks"
        );
        assert_eq!(
            part(&p, 5, 1, false),
            Readiness::Gone,
            "evicted or never made"
        );
        assert_eq!(
            part(&p, 4, 9, false),
            Readiness::Gone,
            "segment 4 is complete without it"
        );
        assert_eq!(part(&p, 9, 0, false), Readiness::Gone);
        assert_eq!(part(&p, 5, 1, true), Readiness::Ready);
        assert_eq!(segment(&p, 5, false), Readiness::Wait);
        assert_eq!(segment(&p, 7, false), Readiness::Gone);
        assert_eq!(segment(&p, 3, false), Readiness::Gone);
        assert_eq!(
            part(&Progress { ended: true, ..p }, 5, 3, false),
            Readiness::Gone
        );
    }
}
