//! The LL-HLS media playlist: a model the packager updates, and a pure
//! renderer to text (draft-pantos-hls-rfc8216bis, Apple's HLS authoring spec).
//!
//! URIs are relative to the media playlist and carry the stream's epoch, so a
//! URL never names two different contents, even across republishes.

use std::collections::VecDeque;
use std::fmt::Write;

use bytes::Bytes;
use std::time::SystemTime;

#[derive(Debug, Clone, PartialEq)]
pub struct PartEntry {
    pub duration: f64,
    pub independent: bool,
    /// Its length in bytes: its byte range in the segment, with
    /// [`PartAddressing::ByteRanges`].
    pub size: u64,
}

/// How a playlist names its parts (draft-pantos-hls-rfc8216bis 4.4.4.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PartAddressing {
    /// Each part its own URL (`N.P.m4s`).
    #[default]
    Files,
    /// Each part a byte range of its segment's URL (`N.m4s`), and the
    /// preload hint the rest of the open segment from where its listed
    /// parts end: a player can read the open segment as one growing
    /// response. Shaka Player appends such a response as chunks, which
    /// keeps it clear of a bug of its own with separate part files
    /// (README, "Shaka Player").
    ByteRanges,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SegmentEntry {
    pub msn: u64,
    pub discontinuity: bool,
    pub init_id: u32,
    pub program_date_time: SystemTime,
    pub parts: Vec<PartEntry>,
    /// Set when the segment is complete.
    pub duration: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RenditionReport {
    pub rendition: String,
    pub last_msn: u64,
    pub last_part: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct MediaPlaylist {
    pub epoch: String,
    pub target_duration: u32,
    pub part_target: f64,
    pub segments: VecDeque<SegmentEntry>,
    pub discontinuity_sequence: u64,
    pub preload_hint: Option<(u64, u32)>,
    pub ended: bool,
    pub addressing: PartAddressing,
}

/// Which form of the playlist to render.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Form {
    Full,
    /// A delta update (`_HLS_skip=YES`): older segments replaced by EXT-X-SKIP.
    Delta,
}

impl MediaPlaylist {
    pub fn new(epoch: String, target_duration: u32, part_target: f64) -> Self {
        MediaPlaylist {
            epoch,
            target_duration,
            part_target,
            segments: VecDeque::new(),
            discontinuity_sequence: 0,
            preload_hint: None,
            ended: false,
            addressing: PartAddressing::Files,
        }
    }

    pub fn media_sequence(&self) -> u64 {
        self.segments.front().map_or(0, |s| s.msn)
    }

    /// The last part listed: (msn, part index), for rendition reports and blocking.
    pub fn last_part(&self) -> Option<(u64, u32)> {
        let seg = self.segments.iter().rev().find(|s| !s.parts.is_empty())?;
        Some((seg.msn, seg.parts.len() as u32 - 1))
    }

    /// Skip boundary: segments may be skipped only when they are older than
    /// this many seconds from the end (CAN-SKIP-UNTIL = 6 × target duration).
    pub fn can_skip_until(&self) -> f64 {
        6.0 * self.target_duration as f64
    }

    /// Drop the oldest complete segments beyond `window` seconds. Returns the
    /// lowest msn still listed.
    pub fn trim(&mut self, window: f64) -> u64 {
        let mut total: f64 = self.segments.iter().filter_map(|s| s.duration).sum();
        while total > window && self.segments.len() > 1 {
            let Some(d) = self.pop_oldest() else {
                break;
            };
            total -= d;
        }
        self.media_sequence()
    }

    /// Drop the oldest complete segment ahead of the window (a memory budget
    /// is reached), unless what stays would last less than three target
    /// durations (RFC 8216 6.2.2). Returns whether one was dropped.
    pub fn trim_oldest(&mut self) -> bool {
        let total: f64 = self.segments.iter().filter_map(|s| s.duration).sum();
        let first = self.segments.front().and_then(|s| s.duration);
        match first {
            Some(d) if total - d >= 3.0 * self.target_duration as f64 - 1e-6 => {
                self.pop_oldest().is_some()
            }
            _ => false,
        }
    }

    /// Remove the oldest segment if it is complete; returns its duration.
    fn pop_oldest(&mut self) -> Option<f64> {
        let d = self.segments.front().and_then(|s| s.duration)?;
        self.segments.pop_front();
        if self.segments.front().is_some_and(|s| s.discontinuity) {
            self.discontinuity_sequence += 1;
        }
        Some(d)
    }

    /// Parts are listed only for segments that end within the last three
    /// target durations (the draft lets a server drop a part once it is
    /// further than that from the playlist's end: here a segment's parts go
    /// together, once its last one is); this is the first msn whose parts are
    /// listed. A player up to three target durations behind the edge can
    /// still load every part of the segment it is in: hls.js that fell that
    /// far behind while it started lost the last part of its first segment
    /// when the segment's parts went as soon as its first one was that far.
    pub fn first_msn_with_parts(&self) -> u64 {
        let limit = 3.0 * self.target_duration as f64 + 1e-6;
        let mut from_end = 0.0;
        let mut first = self.segments.back().map_or(0, |s| s.msn);
        for s in self.segments.iter().rev() {
            // How far this segment's end is from the playlist's end.
            if from_end > limit {
                break;
            }
            first = s.msn;
            from_end += seg_duration(s);
        }
        first
    }

    pub fn init_uri(&self, id: u32) -> String {
        format!("{}/init{id}.mp4", self.epoch)
    }
    pub fn segment_uri(&self, msn: u64) -> String {
        format!("{}/{msn}.m4s", self.epoch)
    }
    pub fn part_uri(&self, msn: u64, part: u32) -> String {
        format!("{}/{msn}.{part}.m4s", self.epoch)
    }
}

fn secs(d: f64) -> String {
    format!("{d:.5}")
}

fn date(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Render the playlist. `reports` are the other renditions of the stream.
pub fn render(pl: &MediaPlaylist, reports: &[RenditionReport], form: Form) -> String {
    let mut o = String::with_capacity(2048 + pl.segments.len() * 64);
    let td = pl.target_duration as f64;
    // Segments older than this (seconds before the end) are skipped in a delta update.
    let total: f64 = pl.segments.iter().map(seg_duration).sum();
    let skip_before = total - pl.can_skip_until();
    let mut skipped = 0usize;
    if form == Form::Delta && !pl.ended {
        let mut start = 0.0;
        for s in &pl.segments {
            let end = start + seg_duration(s);
            if s.duration.is_none() || end > skip_before {
                break;
            }
            skipped += 1;
            start = end;
        }
    }
    let version = if skipped > 0 { 9 } else { 6 };
    let _ = writeln!(o, "#EXTM3U");
    let _ = writeln!(o, "#EXT-X-VERSION:{version}");
    let _ = writeln!(o, "#EXT-X-TARGETDURATION:{}", pl.target_duration);
    if !pl.ended {
        let _ = writeln!(
            o,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={},PART-HOLD-BACK={},HOLD-BACK={}",
            secs(pl.can_skip_until()),
            secs(3.0 * pl.part_target),
            secs(3.0 * td)
        );
    }
    // PART-HOLD-BACK (in SERVER-CONTROL) is required wherever PART-INF is;
    // an ended playlist lists no parts, so it carries neither.
    if !pl.ended {
        let _ = writeln!(o, "#EXT-X-PART-INF:PART-TARGET={}", secs(pl.part_target));
    }
    let _ = writeln!(o, "#EXT-X-MEDIA-SEQUENCE:{}", pl.media_sequence());
    if pl.discontinuity_sequence > 0 {
        let _ = writeln!(
            o,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            pl.discontinuity_sequence
        );
    }
    if skipped > 0 {
        let _ = writeln!(o, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
    }
    let parts_from = pl.first_msn_with_parts();
    let mut map: Option<u32> = None;
    for (i, s) in pl.segments.iter().enumerate() {
        let list_parts = !pl.ended && s.msn >= parts_from;
        if i < skipped {
            continue;
        }
        if s.discontinuity && i > 0 {
            let _ = writeln!(o, "#EXT-X-DISCONTINUITY");
        }
        if map != Some(s.init_id) {
            let _ = writeln!(o, "#EXT-X-MAP:URI=\"{}\"", pl.init_uri(s.init_id));
            map = Some(s.init_id);
        }
        if i == skipped || s.discontinuity {
            let _ = writeln!(o, "#EXT-X-PROGRAM-DATE-TIME:{}", date(s.program_date_time));
        }
        if list_parts {
            let mut offset = 0;
            for (n, p) in s.parts.iter().enumerate() {
                let _ = write!(o, "#EXT-X-PART:DURATION={},URI=", secs(p.duration));
                match pl.addressing {
                    PartAddressing::Files => {
                        let _ = write!(o, "\"{}\"", pl.part_uri(s.msn, n as u32));
                    }
                    PartAddressing::ByteRanges => {
                        let _ = write!(
                            o,
                            "\"{}\",BYTERANGE=\"{}@{offset}\"",
                            pl.segment_uri(s.msn),
                            p.size
                        );
                        offset += p.size;
                    }
                }
                if p.independent {
                    o.push_str(",INDEPENDENT=YES");
                }
                o.push('\n');
            }
        }
        if let Some(d) = s.duration {
            let _ = writeln!(o, "#EXTINF:{},\n{}", secs(d), pl.segment_uri(s.msn));
        }
    }
    if pl.ended {
        let _ = writeln!(o, "#EXT-X-ENDLIST");
        return o;
    }
    if let Some((msn, part)) = pl.preload_hint {
        match pl.addressing {
            PartAddressing::Files => {
                let _ = writeln!(
                    o,
                    "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
                    pl.part_uri(msn, part)
                );
            }
            PartAddressing::ByteRanges => {
                // The rest of segment `msn` from where its listed parts end
                // (no BYTERANGE-LENGTH: to the segment's end).
                let start: u64 = pl
                    .segments
                    .iter()
                    .rev()
                    .find(|s| s.msn == msn)
                    .map_or(0, |s| s.parts.iter().map(|p| p.size).sum());
                let _ = writeln!(
                    o,
                    "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\",BYTERANGE-START={start}",
                    pl.segment_uri(msn)
                );
            }
        }
    }
    for r in reports {
        let _ = write!(
            o,
            "#EXT-X-RENDITION-REPORT:URI=\"../{}/index.m3u8\",LAST-MSN={}",
            r.rendition, r.last_msn
        );
        if let Some(p) = r.last_part {
            let _ = write!(o, ",LAST-PART={p}");
        }
        o.push('\n');
    }
    o
}

fn seg_duration(s: &SegmentEntry) -> f64 {
    s.duration
        .unwrap_or_else(|| s.parts.iter().map(|p| p.duration).sum())
}

/// A delta update for `_HLS_skip=v2` from the `YES` one: castline writes no
/// EXT-X-DATERANGE tags, so none was ever removed and the two differ only by
/// an empty RECENTLY-REMOVED-DATERANGES on EXT-X-SKIP (required for v2 by
/// draft-pantos-hls-rfc8216bis 4.4.5.2). A playlist without EXT-X-SKIP (it
/// skipped nothing) is the same for both.
pub fn delta_v2(delta: &[u8]) -> Bytes {
    const TAG: &[u8] = b"#EXT-X-SKIP:SKIPPED-SEGMENTS=";
    let Some(start) = delta.windows(TAG.len()).position(|w| w == TAG) else {
        return Bytes::copy_from_slice(delta);
    };
    let end = delta[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(delta.len(), |i| start + i);
    let mut out = Vec::with_capacity(delta.len() + 32);
    out.extend_from_slice(&delta[..end]);
    out.extend_from_slice(b",RECENTLY-REMOVED-DATERANGES=\"\"");
    out.extend_from_slice(&delta[end..]);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn seg(msn: u64, parts: usize, complete: bool) -> SegmentEntry {
        SegmentEntry {
            msn,
            discontinuity: false,
            init_id: 1,
            program_date_time: UNIX_EPOCH + Duration::from_secs(1_800_000_000 + msn),
            parts: (0..parts)
                .map(|i| PartEntry {
                    duration: 0.2,
                    independent: i == 0,
                    size: 1000 + i as u64,
                })
                .collect(),
            duration: complete.then_some(parts as f64 * 0.2),
        }
    }

    fn playlist(complete: u64, open_parts: usize) -> MediaPlaylist {
        let mut pl = MediaPlaylist::new("e1".into(), 1, 0.2);
        for m in 0..complete {
            pl.segments.push_back(seg(m, 5, true));
        }
        pl.segments.push_back(seg(complete, open_parts, false));
        pl.preload_hint = Some((complete, open_parts as u32));
        pl
    }

    #[test]
    fn renders_the_live_edge_exactly() {
        // The playlist ends 4.4 s in: segment 1 ends 2.4 s from there, within
        // three target durations, so its parts are listed; segment 0's end
        // is 3.4 s away.
        let pl = playlist(4, 2);
        let reports = [RenditionReport {
            rendition: "720p".into(),
            last_msn: 4,
            last_part: Some(1),
        }];
        let want = "\
#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.00000,PART-HOLD-BACK=0.60000,HOLD-BACK=3.00000
#EXT-X-PART-INF:PART-TARGET=0.20000
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-MAP:URI=\"e1/init1.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:00.000Z
#EXTINF:1.00000,
e1/0.m4s
#EXT-X-PART:DURATION=0.20000,URI=\"e1/1.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI=\"e1/1.1.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"e1/1.2.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"e1/1.3.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"e1/1.4.m4s\"
#EXTINF:1.00000,
e1/1.m4s
#EXT-X-PART:DURATION=0.20000,URI=\"e1/2.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI=\"e1/2.1.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"e1/2.2.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"e1/2.3.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"e1/2.4.m4s\"
#EXTINF:1.00000,
e1/2.m4s
#EXT-X-PART:DURATION=0.20000,URI=\"e1/3.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI=\"e1/3.1.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"e1/3.2.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"e1/3.3.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"e1/3.4.m4s\"
#EXTINF:1.00000,
e1/3.m4s
#EXT-X-PART:DURATION=0.20000,URI=\"e1/4.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI=\"e1/4.1.m4s\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"e1/4.2.m4s\"
#EXT-X-RENDITION-REPORT:URI=\"../720p/index.m3u8\",LAST-MSN=4,LAST-PART=1
";
        assert_eq!(render(&pl, &reports, Form::Full), want);
        assert_eq!(pl.last_part(), Some((4, 1)));
    }

    #[test]
    fn byte_range_parts_address_their_segment() {
        let mut pl = playlist(4, 2);
        pl.addressing = PartAddressing::ByteRanges;
        let text = render(&pl, &[], Form::Full);
        let tail = "\
#EXT-X-PART:DURATION=0.20000,URI=\"e1/3.m4s\",BYTERANGE=\"1000@0\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI=\"e1/3.m4s\",BYTERANGE=\"1001@1000\"
#EXT-X-PART:DURATION=0.20000,URI=\"e1/3.m4s\",BYTERANGE=\"1002@2001\"
#EXT-X-PART:DURATION=0.20000,URI=\"e1/3.m4s\",BYTERANGE=\"1003@3003\"
#EXT-X-PART:DURATION=0.20000,URI=\"e1/3.m4s\",BYTERANGE=\"1004@4006\"
#EXTINF:1.00000,
e1/3.m4s
#EXT-X-PART:DURATION=0.20000,URI=\"e1/4.m4s\",BYTERANGE=\"1000@0\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI=\"e1/4.m4s\",BYTERANGE=\"1001@1000\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"e1/4.m4s\",BYTERANGE-START=2001
";
        assert!(text.ends_with(tail), "{text}");
        // The next part opens a segment: the hint is that segment from its start.
        let mut pl = playlist(5, 0);
        pl.addressing = PartAddressing::ByteRanges;
        let text = render(&pl, &[], Form::Full);
        assert!(
            text.ends_with(
                "e1/4.m4s\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"e1/5.m4s\",BYTERANGE-START=0\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn delta_update_skips_segments_older_than_can_skip_until() {
        let pl = playlist(10, 1);
        let text = render(&pl, &[], Form::Delta);
        // 10.2 s listed, CAN-SKIP-UNTIL 6 s: segments ending at or before 4.2 s go.
        assert!(text.contains("#EXT-X-VERSION:9\n"));
        assert!(text.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n"));
        assert!(!text.contains("e1/3.m4s\n"));
        assert!(text.contains("#EXT-X-MAP:URI=\"e1/init1.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:04.000Z\n#EXTINF:1.00000,\ne1/4.m4s"));
    }

    #[test]
    fn ended_playlist_is_vod_shaped() {
        let mut pl = playlist(2, 0);
        pl.segments.pop_back();
        pl.ended = true;
        let text = render(&pl, &[], Form::Full);
        assert!(text.ends_with("e1/1.m4s\n#EXT-X-ENDLIST\n"));
        assert!(!text.contains("EXT-X-PART:"));
        assert!(!text.contains("PRELOAD-HINT"));
        assert!(!text.contains("SERVER-CONTROL"));
        assert!(!text.contains("PART-INF"));
    }

    #[test]
    fn a_budget_trim_keeps_three_target_durations_and_counts_discontinuities() {
        // Five complete 1 s segments, the third after a discontinuity.
        let mut pl = playlist(5, 2);
        pl.segments[2].discontinuity = true;
        assert!(pl.trim_oldest());
        assert!(pl.trim_oldest());
        assert_eq!((pl.media_sequence(), pl.discontinuity_sequence), (2, 1));
        // 3 s stay listed: no further trim below three target durations.
        assert!(!pl.trim_oldest());
        assert_eq!(pl.media_sequence(), 2);
    }

    #[test]
    fn discontinuity_and_trim() {
        let mut pl = playlist(5, 0);
        pl.segments[3].discontinuity = true;
        pl.segments[3].init_id = 2;
        let text = render(&pl, &[], Form::Full);
        assert!(text.contains("e1/2.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"e1/init2.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:"));
        assert_eq!(pl.trim(2.0), 3);
        assert_eq!(pl.discontinuity_sequence, 1);
        let text = render(&pl, &[], Form::Full);
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n#EXT-X-MAP:URI=\"e1/init2.mp4\"\n"));
    }

    #[test]
    fn a_v2_delta_says_no_daterange_was_removed() {
        let yes = b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n#EXTINF:1.00000,\ne1/4.m4s\n";
        assert_eq!(
            &delta_v2(yes)[..],
            &b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-SKIP:SKIPPED-SEGMENTS=4,RECENTLY-REMOVED-DATERANGES=\"\"\n#EXTINF:1.00000,\ne1/4.m4s\n"[..]
        );
        let short = b"#EXTM3U\n#EXTINF:1.00000,\ne1/0.m4s\n";
        assert_eq!(&delta_v2(short)[..], &short[..]);
    }
}
