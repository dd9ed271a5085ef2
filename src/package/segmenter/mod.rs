//! Cuts a stream's access units into CMAF parts and segments.
//!
//! Pure: access units in, [`Output`]s out. Segment cuts come either from the
//! stream's cut schedule ([`Segmenter::push_scheduled`]: the frame that opens
//! segment N is named with its MSN, the same in every rendition), or, with
//! [`Segmenter::push`], from the *lead* track (video when there is video,
//! else audio):
//! - a segment starts at a lead IDR once the open segment has reached its
//!   target duration, so every rendition cut from the same source keyframes
//!   has the same boundaries;
//! - a part closes as soon as the next lead frame could not fit in it (so a
//!   part is servable the moment its last frame arrives, not a frame later),
//!   and no part is ever declared longer than the part target.
//!
//! Audio rides along: each part takes the audio that starts before its end.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

mod samples;
#[cfg(test)]
mod tests;

use samples::{audio_run, to_samples, Pending};

use super::boxes::{self, BoxError, TrackRun};
use crate::media::aac::SAMPLES_PER_FRAME;
use crate::media::{rescale, AccessUnit, MediaInfo, TrackKind, VIDEO_TIMESCALE};

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
    lead: Vec<Pending>,
}

pub struct Segmenter {
    cfg: SegmenterConfig,
    info: Option<Arc<MediaInfo>>,
    lead: TrackKind,
    lead_scale: u32,
    audio_scale: u32,
    init_id: u32,
    next_msn: u64,
    seq: u32,
    segment: Option<OpenSegment>,
    part: Option<OpenPart>,
    /// Audio waiting for the part it belongs to (when video leads).
    audio: VecDeque<Pending>,
    /// Ticks added to each track so a new session continues the timeline.
    lead_offset: i64,
    audio_offset: i64,
    rebase: bool,
    /// End of the last part, in lead ticks.
    end: i64,
    /// End of the last part while the timeline runs on (none after a start,
    /// a gap or new tracks): the next part starts there.
    timeline_end: Option<i64>,
    /// Highest presentation time of any lead sample so far (B-frames run ahead of DTS).
    max_pts: i64,
    frame_estimate: i64,
    last_segment_ticks: Option<i64>,
    wait_keyframe: bool,
    discontinuity: bool,
    last_lead_dts: Option<i64>,
    clock_anchor: Option<(SystemTime, i64)>,
    /// Told that the next frame opens a segment ([`Segmenter::end_part`]):
    /// the next part is that segment's first.
    cut_follows: bool,
}

/// Who decides where segments start.
#[derive(Clone, Copy)]
enum Cuts {
    /// The lead track's IDRs, once the segment reached its target.
    Own,
    /// The stream's cut schedule: `Some(cut)` opens segment `cut.msn` at this frame.
    Scheduled(Option<SegmentCut>),
}

/// Audio held while waiting for video, at most (about 20 s at 48 kHz).
const MAX_QUEUED_AUDIO: usize = 1000;

impl Segmenter {
    pub fn new(cfg: SegmenterConfig) -> Self {
        Segmenter {
            cfg,
            info: None,
            lead: TrackKind::Video,
            lead_scale: VIDEO_TIMESCALE,
            audio_scale: 48_000,
            init_id: 0,
            next_msn: 0,
            seq: 0,
            segment: None,
            part: None,
            audio: VecDeque::new(),
            lead_offset: 0,
            audio_offset: 0,
            rebase: false,
            end: 0,
            timeline_end: None,
            max_pts: 0,
            frame_estimate: 3000,
            last_segment_ticks: None,
            wait_keyframe: true,
            discontinuity: false,
            last_lead_dts: None,
            clock_anchor: None,
            cut_follows: false,
        }
    }

    fn ticks(&self, d: Duration) -> i64 {
        (d.as_nanos() as i128 * self.lead_scale as i128 / 1_000_000_000) as i64
    }

    /// The tracks from here on: closes what is open, emits a new init segment
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
        self.lead = if info.video.is_some() {
            TrackKind::Video
        } else {
            TrackKind::Audio
        };
        self.audio_scale = info.timescale(TrackKind::Audio);
        self.lead_scale = info.timescale(self.lead);
        self.frame_estimate = match (&info.video, self.lead) {
            (Some(v), TrackKind::Video) => v
                .frame_rate
                .map_or(3000, |f| (VIDEO_TIMESCALE as f64 / f) as i64)
                .max(1),
            _ => SAMPLES_PER_FRAME,
        };
        self.info = Some(info);
        self.audio.clear();
        self.timeline_end = None;
        self.wait_keyframe = true;
        self.last_lead_dts = None;
        self.rebase = started;
        self.discontinuity = started;
        self.clock_anchor = None;
        Ok(out)
    }

    /// Input was lost (a consumer queue overflowed): close what is open and
    /// restart at the next keyframe behind a discontinuity.
    pub fn gap(&mut self) -> Result<Vec<Output>, BoxError> {
        let out = self.flush()?;
        self.audio.clear();
        self.timeline_end = None;
        self.wait_keyframe = true;
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
        let end = part.lead.last().map_or(part.start, |l| l.dts) + self.frame_estimate;
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

    /// An access unit; the segmenter decides the cuts from the lead track's IDRs.
    pub fn push(&mut self, au: AccessUnit) -> Result<Vec<Output>, BoxError> {
        self.push_with(au, Cuts::Own)
    }

    /// An access unit of a single-track rendition whose cuts come from the
    /// stream's schedule: `cut` names the segment this frame opens (its MSN
    /// and PROGRAM-DATE-TIME). Frames before the first cut (or after a gap,
    /// until the next) are dropped.
    pub fn push_scheduled(
        &mut self,
        au: AccessUnit,
        cut: Option<SegmentCut>,
    ) -> Result<Vec<Output>, BoxError> {
        self.push_with(au, Cuts::Scheduled(cut))
    }

    fn push_with(&mut self, au: AccessUnit, cuts: Cuts) -> Result<Vec<Output>, BoxError> {
        let Some(info) = self.info.clone() else {
            return Ok(Vec::new());
        };
        let scale = info.timescale(au.track);
        if au.track == self.lead {
            self.cut_follows = false;
        }
        if self.rebase {
            // Continue the timeline after the previous session: past its last
            // decode time and past its latest presentation time, so no picture
            // of the new session is presented at the same time as an old one.
            self.rebase = false;
            let at = rescale(au.dts, scale, self.lead_scale);
            let resume = self.end.max(self.max_pts + self.frame_estimate);
            self.lead_offset = resume - at;
            self.audio_offset = rescale(self.lead_offset, self.lead_scale, self.audio_scale);
        }
        let offset = if au.track == self.lead {
            self.lead_offset
        } else {
            self.audio_offset
        };
        let p = Pending {
            dts: au.dts + offset,
            pts: au.pts + offset,
            sync: au.keyframe,
            data: au.data,
            received: au.received,
        };
        if au.track != self.lead {
            if self.audio.len() >= MAX_QUEUED_AUDIO {
                self.audio.pop_front();
            }
            self.audio.push_back(p);
            return Ok(Vec::new());
        }
        let scheduled_cut = match cuts {
            Cuts::Own if self.wait_keyframe && !p.sync => return Ok(Vec::new()),
            Cuts::Own => None,
            Cuts::Scheduled(None) if self.segment.is_none() => return Ok(Vec::new()),
            Cuts::Scheduled(cut) => cut,
        };
        if let Some(cut) = scheduled_cut {
            self.next_msn = cut.msn;
        }
        self.max_pts = self.max_pts.max(p.pts);
        self.wait_keyframe = false;
        let mut out = Vec::new();
        let t = p.dts;
        let part_target = self.ticks(self.cfg.part_target);
        let tolerance = self.frame_estimate / 4;
        let seg_due = match cuts {
            Cuts::Own => self
                .segment
                .as_ref()
                .is_some_and(|s| p.sync && t >= self.segment_due_at(s.first_tick)),
            Cuts::Scheduled(cut) => cut.is_some() && self.segment.is_some(),
        };

        if let Some(gap) = self.last_lead_dts.map(|last| t - last) {
            if gap > 0 && gap < 10 * self.frame_estimate {
                self.frame_estimate = ((self.frame_estimate * 7 + gap) / 8).max(1);
            }
        }
        self.last_lead_dts = Some(t);
        if let Some(part) = &self.part {
            if seg_due || t + self.frame_estimate - part.start > part_target + tolerance {
                out.extend(self.close_part(t)?);
            }
        }
        if seg_due {
            out.extend(self.close_segment());
        }
        if self.segment.is_none() {
            // Scheduled: the schedule's date, the same in every rendition.
            // Own cuts: the wall clock at this track's first frame, on by media time.
            let program_date_time = match scheduled_cut {
                Some(cut) => cut.program_date_time,
                None => {
                    let (wall, tick) = *self.clock_anchor.get_or_insert((SystemTime::now(), t));
                    wall + Duration::from_nanos(
                        ((t - tick).max(0) as i128 * 1_000_000_000 / self.lead_scale as i128)
                            as u64,
                    )
                }
            };
            self.segment = Some(OpenSegment {
                start: SegmentStart {
                    msn: self.next_msn,
                    discontinuity: std::mem::take(&mut self.discontinuity),
                    init_id: self.init_id,
                    program_date_time,
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
                lead: Vec::new(),
            });
        }
        let part = self.part.as_mut().expect("part opened above");
        part.lead.push(p);
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
            duration: seg.ticks as f64 / self.lead_scale as f64,
            frames: seg.frames,
        })
    }

    /// Close the open part at `end` (lead ticks), clamped so the part is never
    /// longer than the part target.
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
                + (self.cfg.part_target.as_nanos() as i128 * self.lead_scale as i128
                    / 1_000_000_000) as i64,
        );
        let (lead, end) = to_samples(&part.lead, part.start, end);
        let received = part
            .lead
            .iter()
            .map(|p| p.received)
            .max()
            .unwrap_or_else(Instant::now);
        let lead_id = boxes::track_id(&info, self.lead);
        let mut runs = vec![TrackRun {
            track_id: lead_id,
            base_decode_time: part.start.max(0) as u64,
            samples: &lead,
            with_cts: self.lead == TrackKind::Video,
        }];
        // Audio that starts before this part's end belongs to it.
        let audio_end = rescale(end, self.lead_scale, self.audio_scale);
        let mut taken = Vec::new();
        while self.audio.front().is_some_and(|a| a.dts < audio_end) {
            taken.extend(self.audio.pop_front());
        }
        let seg_start_audio = rescale(seg.first_tick, self.lead_scale, self.audio_scale);
        taken.retain(|a| a.dts + SAMPLES_PER_FRAME > seg_start_audio || seg.parts > 0);
        let audio_samples = audio_run(&taken, self.audio.front().map(|a| a.dts));
        if let (Some(first), false) = (taken.first(), audio_samples.is_empty()) {
            runs.push(TrackRun {
                track_id: boxes::track_id(&info, TrackKind::Audio),
                base_decode_time: first.dts.max(0) as u64,
                samples: &audio_samples,
                with_cts: false,
            });
        }
        self.seq = self.seq.wrapping_add(1);
        let data = boxes::chunk(self.seq, &runs)?;
        let ticks = end - part.start;
        let index = seg.parts;
        seg.parts += 1;
        seg.ticks += ticks;
        seg.frames += lead.len() as u32;
        self.end = end;
        self.timeline_end = Some(end);
        Ok(Some(Output::Part(Part {
            segment: seg.start.clone(),
            index,
            duration: ticks as f64 / self.lead_scale as f64,
            independent: part.independent,
            data,
            received,
        })))
    }
}
