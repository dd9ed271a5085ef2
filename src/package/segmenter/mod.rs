//! Cuts a stream's access units into CMAF parts and segments.
//!
//! Pure: access units of one track in (a rendition is one CMAF track),
//! [`Output`]s out. Segment cuts come from the stream's cut schedule
//! ([`Segmenter::push_scheduled`]: the frame that opens segment N is named
//! with its MSN and date, the same in every rendition); a part closes as soon
//! as the next frame could not fit in it (so a part is servable the moment
//! its last frame arrives, not a frame later), and no part is ever declared
//! longer than the part target.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

mod samples;
#[cfg(test)]
mod tests;

use samples::{to_samples, Pending};

use super::boxes::{self, BoxError, TrackRun};
use crate::media::aac::SAMPLES_PER_FRAME;
use crate::media::{AccessUnit, MediaInfo, TrackKind, VIDEO_TIMESCALE};

#[derive(Debug, Clone, Copy)]
pub struct SegmenterConfig {
    pub segment_target: Duration,
    pub part_target: Duration,
}

/// Where the stream's cut schedule opens a segment: its MSN and its
/// EXT-X-PROGRAM-DATE-TIME, the same in every rendition (derived from the
/// source's media time at the cut, not from when each rendition's output
/// happened to be ready).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentCut {
    pub msn: u64,
    pub program_date_time: SystemTime,
}

/// What a segment's playlist entry needs to know when its first part appears.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentStart {
    pub msn: u64,
    pub discontinuity: bool,
    pub init_id: u32,
    pub program_date_time: SystemTime,
}

#[derive(Debug, Clone)]
pub struct Part {
    pub segment: SegmentStart,
    pub index: u32,
    /// Seconds, at most the part target.
    pub duration: f64,
    pub independent: bool,
    pub data: Bytes,
    /// When the newest frame in this part was read from the network.
    pub received: Instant,
}

#[derive(Debug, Clone)]
pub enum Output {
    Init {
        id: u32,
        data: Bytes,
    },
    Part(Part),
    /// The segment `msn` is complete; `duration` is the sum of its parts.
    SegmentEnd {
        msn: u64,
        duration: f64,
        frames: u32,
    },
}

struct OpenSegment {
    start: SegmentStart,
    first_tick: i64,
    ticks: i64,
    parts: u32,
    frames: u32,
}

struct OpenPart {
    start: i64,
    independent: bool,
    frames: Vec<Pending>,
}

pub struct Segmenter {
    cfg: SegmenterConfig,
    info: Option<Arc<MediaInfo>>,
    /// The rendition's one track.
    track: TrackKind,
    scale: u32,
    init_id: u32,
    next_msn: u64,
    seq: u32,
    segment: Option<OpenSegment>,
    part: Option<OpenPart>,
    /// Ticks added so a new session continues the timeline.
    offset: i64,
    rebase: bool,
    /// End of the last part, in the track's ticks.
    end: i64,
    /// End of the last part while the timeline runs on (none after a start,
    /// a gap or new tracks): the next part starts there.
    timeline_end: Option<i64>,
    /// Highest presentation time of any sample so far (B-frames run ahead of DTS).
    max_pts: i64,
    frame_estimate: i64,
    last_segment_ticks: Option<i64>,
    discontinuity: bool,
    last_dts: Option<i64>,
    /// Told that the next frame opens a segment ([`Segmenter::end_part`]):
    /// the next part is that segment's first.
    cut_follows: bool,
    /// This rendition continues one another packager wrote (its ingest pod
    /// was lost): the first segment follows a discontinuity.
    continues: bool,
}

impl Segmenter {
    pub fn new(cfg: SegmenterConfig) -> Self {
        Segmenter {
            cfg,
            info: None,
            track: TrackKind::Video,
            scale: VIDEO_TIMESCALE,
            init_id: 0,
            next_msn: 0,
            seq: 0,
            segment: None,
            part: None,
            offset: 0,
            rebase: false,
            end: 0,
            timeline_end: None,
            max_pts: 0,
            frame_estimate: 3000,
            last_segment_ticks: None,
            discontinuity: false,
            last_dts: None,
            cut_follows: false,
            continues: false,
        }
    }

    /// Continue a rendition another packager wrote: the first init segment
    /// gets id `next_init` (at least 1), the first segment a discontinuity.
    pub fn continue_after(&mut self, next_init: u32) {
        self.init_id = next_init.max(1) - 1;
        self.continues = true;
    }

    fn ticks(&self, d: Duration) -> i64 {
        (d.as_nanos() as i128 * self.scale as i128 / 1_000_000_000) as i64
    }

    /// The track from here on: closes what is open, emits a new init segment
    /// when the codec configuration changed, and marks a discontinuity.
    pub fn set_tracks(&mut self, info: Arc<MediaInfo>) -> Result<Vec<Output>, BoxError> {
        let mut out = self.flush()?;
        let started = self.info.is_some();
        if self.info.as_deref() != Some(&*info) {
            self.init_id += 1;
            out.push(Output::Init {
                id: self.init_id,
                data: boxes::init_segment(&info)?,
            });
        }
        self.track = if info.video.is_some() {
            TrackKind::Video
        } else {
            TrackKind::Audio
        };
        self.scale = info.timescale(self.track);
        self.frame_estimate = match (&info.video, self.track) {
            (Some(v), TrackKind::Video) => v
                .frame_rate
                .map_or(3000, |f| (VIDEO_TIMESCALE as f64 / f) as i64)
                .max(1),
            _ => SAMPLES_PER_FRAME,
        };
        self.info = Some(info);
        self.timeline_end = None;
        self.last_dts = None;
        self.rebase = started;
        self.discontinuity = started || std::mem::take(&mut self.continues);
        Ok(out)
    }

    /// Input was lost (a consumer queue overflowed): close what is open and
    /// restart at the next cut behind a discontinuity.
    pub fn gap(&mut self) -> Result<Vec<Output>, BoxError> {
        let out = self.flush()?;
        self.timeline_end = None;
        self.discontinuity = true;
        Ok(out)
    }

    /// The open part is complete (the next frame opens a segment): close it
    /// now, ending one frame after its last. The segment closes with the
    /// next frame as usual; if that frame opens no segment after all, it
    /// simply starts the next part.
    pub fn end_part(&mut self) -> Result<Vec<Output>, BoxError> {
        self.cut_follows = true;
        let Some(part) = &self.part else {
            return Ok(Vec::new());
        };
        let end = part.frames.last().map_or(part.start, |l| l.dts) + self.frame_estimate;
        Ok(self.close_part(end)?.into_iter().collect())
    }

    /// End of stream: close the open part and segment.
    pub fn finish(&mut self) -> Result<Vec<Output>, BoxError> {
        self.flush()
    }

    /// The part that comes next, for EXT-X-PRELOAD-HINT: the open part, or a
    /// prediction of where the next frame will go.
    pub fn next_part(&self) -> (u64, u32) {
        match &self.segment {
            Some(_) if self.cut_follows && self.part.is_none() => (self.next_msn, 0),
            Some(seg) if self.part.is_some() => (seg.start.msn, seg.parts),
            Some(seg) => {
                let expected = self
                    .last_segment_ticks
                    .unwrap_or_else(|| self.ticks(self.cfg.segment_target));
                let due = self
                    .segment_due_at(seg.first_tick)
                    .max(seg.first_tick + expected - self.frame_estimate / 2);
                if seg.first_tick + seg.ticks >= due {
                    (self.next_msn, 0)
                } else {
                    (seg.start.msn, seg.parts)
                }
            }
            None => (self.next_msn, 0),
        }
    }

    /// An access unit of the rendition's track, and the segment it opens
    /// (its MSN and PROGRAM-DATE-TIME) if the stream's schedule says so.
    /// Frames before the first cut (or after a gap, until the next) are
    /// dropped, and so are frames of another track.
    pub fn push_scheduled(
        &mut self,
        au: AccessUnit,
        cut: Option<SegmentCut>,
    ) -> Result<Vec<Output>, BoxError> {
        if self.info.is_none() || au.track != self.track {
            return Ok(Vec::new());
        }
        self.cut_follows = false;
        if self.rebase {
            // Continue the timeline after the previous session: past its last
            // decode time and past its latest presentation time, so no picture
            // of the new session is presented at the same time as an old one.
            self.rebase = false;
            let resume = self.end.max(self.max_pts + self.frame_estimate);
            self.offset = resume - au.dts;
        }
        if cut.is_none() && self.segment.is_none() {
            return Ok(Vec::new());
        }
        let p = Pending {
            dts: au.dts + self.offset,
            pts: au.pts + self.offset,
            sync: au.keyframe,
            data: au.data,
            received: au.received,
        };
        if let Some(cut) = cut {
            self.next_msn = cut.msn;
        }
        self.max_pts = self.max_pts.max(p.pts);
        let mut out = Vec::new();
        let t = p.dts;
        let part_target = self.ticks(self.cfg.part_target);
        let tolerance = self.frame_estimate / 4;
        let seg_due = cut.is_some() && self.segment.is_some();

        if let Some(gap) = self.last_dts.map(|last| t - last) {
            if gap > 0 && gap < 10 * self.frame_estimate {
                self.frame_estimate = ((self.frame_estimate * 7 + gap) / 8).max(1);
            }
        }
        self.last_dts = Some(t);
        if let Some(part) = &self.part {
            if seg_due || t + self.frame_estimate - part.start > part_target + tolerance {
                out.extend(self.close_part(t)?);
            }
        }
        if seg_due {
            out.extend(self.close_segment());
        }
        if let (None, Some(cut)) = (&self.segment, cut) {
            self.segment = Some(OpenSegment {
                start: SegmentStart {
                    msn: self.next_msn,
                    discontinuity: std::mem::take(&mut self.discontinuity),
                    init_id: self.init_id,
                    program_date_time: cut.program_date_time,
                },
                first_tick: t,
                ticks: 0,
                parts: 0,
                frames: 0,
            });
            self.next_msn += 1;
        }
        if self.part.is_none() {
            // Gapless: a part starts where the previous one ended (its first
            // sample absorbs the difference, a fraction of a frame), so
            // tfdt + durations leave no hole whatever the timestamp rounding.
            let start = match self.timeline_end {
                Some(e) if (t - e).abs() < 2 * self.frame_estimate => e,
                _ => t,
            };
            self.part = Some(OpenPart {
                start,
                independent: p.sync,
                frames: Vec::new(),
            });
        }
        let part = self.part.as_mut().expect("part opened above");
        part.frames.push(p);
        // Close now if the next frame could not fit: the part is complete the
        // moment its last frame is here.
        if t + 2 * self.frame_estimate - part.start > part_target + tolerance {
            let end = t + self.frame_estimate;
            out.extend(self.close_part(end)?);
        }
        Ok(out)
    }

    fn segment_due_at(&self, first_tick: i64) -> i64 {
        let target = self.ticks(self.cfg.segment_target);
        first_tick + target - target / 10
    }

    fn flush(&mut self) -> Result<Vec<Output>, BoxError> {
        let mut out = Vec::new();
        out.extend(self.end_part()?);
        out.extend(self.close_segment());
        Ok(out)
    }

    fn close_segment(&mut self) -> Option<Output> {
        let seg = self.segment.take()?;
        if seg.parts == 0 {
            return None;
        }
        self.last_segment_ticks = Some(seg.ticks);
        Some(Output::SegmentEnd {
            msn: seg.start.msn,
            duration: seg.ticks as f64 / self.scale as f64,
            frames: seg.frames,
        })
    }

    /// Close the open part at `end` (the track's ticks), clamped so the part
    /// is never longer than the part target.
    fn close_part(&mut self, end: i64) -> Result<Option<Output>, BoxError> {
        let Some(part) = self.part.take() else {
            return Ok(None);
        };
        let Some(info) = self.info.clone() else {
            return Ok(None);
        };
        let Some(seg) = self.segment.as_mut() else {
            return Ok(None);
        };
        let end = end.min(
            part.start
                + (self.cfg.part_target.as_nanos() as i128 * self.scale as i128 / 1_000_000_000)
                    as i64,
        );
        let (samples, end) = to_samples(&part.frames, part.start, end);
        let received = part
            .frames
            .iter()
            .map(|p| p.received)
            .max()
            .unwrap_or_else(Instant::now);
        let runs = [TrackRun {
            track_id: boxes::track_id(&info, self.track),
            base_decode_time: part.start.max(0) as u64,
            samples: &samples,
            with_cts: self.track == TrackKind::Video,
        }];
        self.seq = self.seq.wrapping_add(1);
        let data = boxes::chunk(self.seq, &runs)?;
        let ticks = end - part.start;
        let index = seg.parts;
        seg.parts += 1;
        seg.ticks += ticks;
        seg.frames += samples.len() as u32;
        self.end = end;
        self.timeline_end = Some(end);
        Ok(Some(Output::Part(Part {
            segment: seg.start.clone(),
            index,
            duration: ticks as f64 / self.scale as f64,
            independent: part.independent,
            data,
            received,
        })))
    }
}
