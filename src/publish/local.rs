//! One rendition served from this process: the one owner of its playlist
//! model. It takes the packager's [`Event`]s, keeps the media playlist
//! (window, preload hint, discontinuities), renders it once per change (full
//! and delta forms, each also gzip-compressed) so any number of viewers woken
//! by a part cost one rendering, applies the store's budgets to the DVR
//! window, and puts media and renderings in the store with one [`Update`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::{fill, Event, Publish};
use crate::media::aac::SAMPLES_PER_FRAME;
use crate::metrics::{Metrics, ReasonLabel, RenditionLabel};
use crate::package::multivariant::MultivariantWriter;
use crate::package::packager::PackagerConfig;
use crate::package::playlist::{
    self, Form, MediaPlaylist, PartEntry, RenditionReport, SegmentEntry,
};
use crate::package::segmenter::SegmentStart;
use crate::store::{Playlists, Rendition, SessionEntry, SnapshotKey, Store, Update};

/// One session served from this process's store: its entry and its
/// multivariant playlist, and a [`LocalRendition`] per rendition.
pub struct LocalSession {
    store: Arc<Store>,
    entry: Arc<SessionEntry>,
    writer: Arc<MultivariantWriter>,
    metrics: Arc<Metrics>,
}

impl LocalSession {
    /// Serve `entry` (just opened in `store`) with the renditions of `plan`.
    pub fn open(
        store: Arc<Store>,
        entry: Arc<SessionEntry>,
        plan: &super::SessionPlan,
        metrics: Arc<Metrics>,
    ) -> Self {
        let writer = Arc::new(MultivariantWriter::new(
            entry.clone(),
            plan.video.clone(),
            plan.audio.clone(),
        ));
        LocalSession {
            store,
            entry,
            writer,
            metrics,
        }
    }

    pub fn entry(&self) -> &Arc<SessionEntry> {
        &self.entry
    }

    pub fn rendition(&self, rendition: &str, cfg: PackagerConfig) -> LocalRendition {
        LocalRendition::new(cfg, self.entry.clone(), rendition, self.metrics.clone())
            .with_multivariant(self.writer.clone())
    }

    /// The session has ended: it is kept as VOD for `keep` (older VOD past
    /// the limit is evicted, counted and logged), then removed, unless
    /// `stop` comes first.
    pub async fn end(self, keep: Duration, stop: &tokio_util::sync::CancellationToken) {
        let LocalSession {
            store,
            entry,
            writer,
            metrics,
        } = self;
        let evicted = store.end_session(&entry).await;
        let name = entry.name().to_string();
        tracing::info!(stream = %name, ?keep, "stream ended; kept as VOD");
        for (old, epoch) in evicted {
            metrics
                .vod_evictions
                .get_or_create(&ReasonLabel {
                    reason: "max_vod_sessions".into(),
                })
                .inc();
            tracing::info!(stream = %old, %epoch, vod = store.vod_sessions(), "VOD limit reached: the oldest ended session is removed");
        }
        // Only the store holds the session now, so evicting it frees its media.
        let epoch = entry.epoch().to_string();
        drop((entry, writer));
        store.expire_after(&name, &epoch, keep, stop).await;
    }
}

pub struct LocalRendition {
    /// `castline_part_ready_seconds{rendition}`, this rendition's.
    part_ready: prometheus_client::metrics::histogram::Histogram,
    cfg: PackagerConfig,
    stream: Arc<SessionEntry>,
    rendition: Arc<Rendition>,
    playlist: MediaPlaylist,
    metrics: Arc<Metrics>,
    multivariant: Option<Arc<MultivariantWriter>>,
    segments_done: u64,
    /// Said once per rendition: a budget shortened the DVR window.
    told_budget: bool,
}

impl LocalRendition {
    pub fn new(
        cfg: PackagerConfig,
        stream: Arc<SessionEntry>,
        rendition: &str,
        metrics: Arc<Metrics>,
    ) -> Self {
        let part_ready = metrics
            .part_ready_seconds
            .get_or_create(&RenditionLabel {
                rendition: rendition.to_string(),
            })
            .clone();
        LocalRendition {
            part_ready,
            playlist: MediaPlaylist {
                addressing: cfg.part_addressing,
                ..MediaPlaylist::new(
                    stream.epoch().to_string(),
                    cfg.target_duration.max(1),
                    cfg.segmenter.part_target.as_secs_f64(),
                )
            },
            rendition: stream.rendition(rendition),
            stream,
            cfg,
            metrics,
            multivariant: None,
            segments_done: 0,
            told_budget: false,
        }
    }

    /// Refresh the stream's multivariant playlist as segments complete.
    pub fn with_multivariant(mut self, writer: Arc<MultivariantWriter>) -> Self {
        self.multivariant = Some(writer);
        self
    }

    pub fn rendition(&self) -> &Arc<Rendition> {
        &self.rendition
    }

    /// The first MSN the playlist lists.
    pub fn media_sequence(&self) -> u64 {
        self.playlist.media_sequence()
    }

    /// The segment being written ends with the parts it has (its packager
    /// was lost; another continues the session at `next`).
    pub fn close_open_segment(&mut self, next: (u64, u32)) {
        let Some(seg) = self.playlist.segments.back() else {
            return;
        };
        if seg.duration.is_some() || seg.parts.is_empty() {
            return;
        }
        let duration = seg.parts.iter().map(|p| p.duration).sum();
        self.segment_end(seg.msn, duration, None, next);
    }

    /// Where this rendition's timeline ends: its newest segment's date
    /// plus the parts it has.
    pub fn timeline_end(&self) -> Option<SystemTime> {
        let seg = self.playlist.segments.back()?;
        let have = seg
            .duration
            .unwrap_or_else(|| seg.parts.iter().map(|p| p.duration).sum());
        Some(seg.program_date_time + Duration::from_secs_f64(have.max(0.0)))
    }

    /// When each segment begins, by MSN.
    pub fn segment_starts(&self) -> BTreeMap<u64, SystemTime> {
        self.playlist
            .segments
            .iter()
            .map(|s| (s.msn, s.program_date_time))
            .collect()
    }

    /// Brings this audio rendition up to `end` with parts of AAC silence
    /// that continue its own fragments, cut into segments where `starts`
    /// (the lead rendition's segment dates) says. For a session whose
    /// ingest pod was lost with this rendition behind the video: see
    /// `receive`. Returns the seconds of silence added.
    pub fn fill_with_silence(
        &mut self,
        starts: &BTreeMap<u64, SystemTime>,
        end: SystemTime,
    ) -> Result<f64, fill::FillError> {
        let Some(seg) = self.playlist.segments.back() else {
            return Ok(0.0);
        };
        let (mut msn, mut date, init_id) = (seg.msn, seg.program_date_time, seg.init_id);
        let mut index = seg.parts.len() as u32;
        let mut complete = seg.duration.is_some();
        let mut have = seg
            .duration
            .unwrap_or_else(|| seg.parts.iter().map(|p| p.duration).sum());
        let last = match index.checked_sub(1) {
            Some(i) => self.rendition.parts_from(msn, i as usize),
            None => None,
        };
        let last = last
            .and_then(|(parts, _)| parts.into_iter().next())
            .ok_or(fill::FillError::Missing("last part"))?;
        let init = self
            .rendition
            .init(init_id)
            .ok_or(fill::FillError::Missing("init segment"))?;
        let track = fill::audio_track(&init)?;
        let silence =
            crate::slate::silence::shared_now(track.config.sample_rate, track.config.channels)?;
        let mut after = fill::fragment_end(&last)?;
        let frame = SAMPLES_PER_FRAME as f64 / track.timescale.max(1) as f64;
        let per_part = ((self.playlist.part_target / frame).floor() as usize).max(1);
        let mut added = 0.0;
        // The segment it is in, and at most the one the lead began after it.
        for _ in 0..2 {
            let next = starts.get(&(msn + 1)).copied().filter(|n| *n < end);
            let until = next.unwrap_or(end);
            let short = until
                .duration_since(date + Duration::from_secs_f64(have))
                .unwrap_or_default();
            let mut frames = (short.as_secs_f64() / frame).round() as usize;
            while !complete && frames > 0 {
                let n = frames.min(per_part);
                let (data, end_of) = fill::silence_part(&track, &silence, after, n)?;
                after = end_of;
                let duration = n as f64 * frame;
                self.part(
                    crate::package::segmenter::Part {
                        segment: SegmentStart {
                            msn,
                            discontinuity: false,
                            init_id,
                            program_date_time: date,
                        },
                        index,
                        duration,
                        independent: true,
                        data,
                        received: Instant::now(),
                    },
                    (msn, index + 1),
                );
                index += 1;
                have += duration;
                added += duration;
                frames -= n;
            }
            let Some(next) = next else { break };
            if !complete {
                self.segment_end(msn, have, None, (msn + 1, 0));
            }
            (msn, date, index, complete, have) = (msn + 1, next, 0, false, 0.0);
        }
        Ok(added)
    }

    fn part(&mut self, part: crate::package::segmenter::Part, next: (u64, u32)) {
        let msn = part.segment.msn;
        if self.playlist.segments.back().map(|s| s.msn) != Some(msn) {
            self.playlist.segments.push_back(SegmentEntry {
                msn,
                discontinuity: part.segment.discontinuity,
                init_id: part.segment.init_id,
                program_date_time: part.segment.program_date_time,
                parts: Vec::new(),
                duration: None,
            });
        }
        if let Some(seg) = self.playlist.segments.back_mut() {
            seg.parts.push(PartEntry {
                duration: part.duration,
                independent: part.independent,
                size: part.data.len() as u64,
            });
        }
        self.playlist.preload_hint = Some(next);
        let playlists = self.render(SnapshotKey::Part(msn, part.index));
        let ready = part.received.elapsed();
        self.rendition.apply(Update {
            part: Some((msn, part.index, part.data)),
            playlists,
            part_ready: Some(ready),
            ..self.base_update()
        });
        self.metrics.parts.inc();
        self.part_ready.observe(ready.as_secs_f64());
    }

    fn segment_end(
        &mut self,
        msn: u64,
        duration: f64,
        meta: Option<crate::store::RenditionMeta>,
        next: (u64, u32),
    ) {
        if let Some(seg) = self
            .playlist
            .segments
            .iter_mut()
            .rev()
            .find(|s| s.msn == msn)
        {
            seg.duration = Some(duration);
        }
        let td = self.playlist.target_duration;
        if duration.round() > td as f64 {
            self.metrics.segments_over_target.inc();
            // The schedule opens a segment at least every TARGETDURATION
            // (on the clock, or at `hls.max_segment_duration`), so a longer
            // one means this rendition never got the cut that should have
            // closed it: a bug to report, not the source's keyframes.
            tracing::warn!(
                stream = self.stream.name(),
                rendition = self.rendition.name(),
                msn,
                duration,
                td,
                "segment longer than TARGETDURATION: this rendition missed the cut that should have closed it"
            );
        }
        self.playlist.trim(self.cfg.dvr_window.as_secs_f64());
        self.enforce_budgets();
        self.playlist.preload_hint = Some(next);
        let playlists = self.render(SnapshotKey::Segment(msn));
        self.rendition.apply(Update {
            segment_complete: Some((msn, Duration::from_secs_f64(duration.max(0.0)))),
            playlists,
            meta,
            ..self.base_update()
        });
        self.metrics.segments.inc();
        self.segments_done += 1;
        if let Some(w) = &self.multivariant {
            // After a few segments, list whatever renditions are ready.
            w.refresh(self.segments_done >= 4);
        }
    }

    /// Past a memory budget the DVR window gives way: one segment more
    /// leaves the playlist at each segment end (so the window shrinks while
    /// the budget is exceeded and grows back below it); the store, which
    /// found the pressure, frees what is unlisted at once.
    fn enforce_budgets(&mut self) {
        if let Some((name, epoch)) = self.stream.disk_pressure() {
            self.metrics
                .vod_evictions
                .get_or_create(&ReasonLabel {
                    reason: "disk_budget".into(),
                })
                .inc();
            tracing::info!(stream = %name, %epoch, "disk budget reached: the oldest ended session is removed");
        }
        let (pressure, evicted) = self.stream.pressure();
        if let Some((name, epoch)) = evicted {
            self.metrics
                .vod_evictions
                .get_or_create(&ReasonLabel {
                    reason: "memory_budget".into(),
                })
                .inc();
            tracing::info!(stream = %name, %epoch, "memory budget reached: the oldest ended session is removed");
        }
        let Some(pressure) = pressure else {
            return;
        };
        if self.playlist.trim_oldest() {
            self.metrics
                .budget_trims
                .get_or_create(&ReasonLabel {
                    reason: pressure.reason().into(),
                })
                .inc();
            if !std::mem::replace(&mut self.told_budget, true) {
                tracing::warn!(
                    stream = self.stream.name(),
                    rendition = self.rendition.name(),
                    budget = pressure.reason(),
                    "memory budget reached: the DVR window is shortened"
                );
            }
        }
    }

    fn end(&mut self) {
        self.playlist.ended = true;
        self.playlist.preload_hint = None;
        let playlists = self.render(SnapshotKey::Other);
        self.rendition.apply(Update {
            playlists,
            ended: true,
            ..self.base_update()
        });
    }

    fn base_update(&self) -> Update {
        let target_duration = Duration::from_secs(self.playlist.target_duration as u64);
        Update {
            first_msn: self.playlist.media_sequence(),
            target_duration,
            ..Default::default()
        }
    }

    fn render(&self, key: SnapshotKey) -> Option<(SnapshotKey, Playlists)> {
        let reports: Vec<RenditionReport> = self
            .stream
            .renditions()
            .iter()
            .filter(|r| !Arc::ptr_eq(r, &self.rendition))
            .filter_map(|r| {
                let (last_msn, last_part) = r.progress().last_part?;
                Some(RenditionReport {
                    rendition: r.name().to_string(),
                    last_msn,
                    last_part: Some(last_part),
                })
            })
            .collect();
        let full = Bytes::from(playlist::render(&self.playlist, &reports, Form::Full));
        let delta = Bytes::from(playlist::render(&self.playlist, &reports, Form::Delta));
        // Compressed once per rendering, like the rendering itself.
        Some((
            key,
            Playlists {
                full_gzip: crate::gzip::gzip(&full),
                delta_gzip: crate::gzip::gzip(&delta),
                full,
                delta,
            },
        ))
    }
}

impl Publish for LocalRendition {
    fn publish(&mut self, event: Event) {
        match event {
            Event::Init { id, data } => self.rendition.apply(Update {
                init: Some((id, data)),
                ..self.base_update()
            }),
            Event::Part { part, next } => self.part(part, next),
            Event::SegmentEnd {
                msn,
                duration,
                meta,
                next,
            } => self.segment_end(msn, duration, meta, next),
            Event::End => self.end(),
        }
    }
}
