//! One rendition served from this process: the one owner of its playlist
//! model. It takes the packager's [`Event`]s, keeps the media playlist
//! (window, preload hint, discontinuities), renders it once per change (full
//! and delta forms, each also gzip-compressed) so any number of viewers woken
//! by a part cost one rendering, applies the store's budgets to the DVR
//! window, and puts media and renderings in the store with one [`Update`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{Event, Publish};
use crate::metrics::{Metrics, ReasonLabel, RenditionLabel};
use crate::package::multivariant::MultivariantWriter;
use crate::package::packager::PackagerConfig;
use crate::package::playlist::{
    self, Form, MediaPlaylist, PartEntry, RenditionReport, SegmentEntry,
};
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
        let pressure = self.enforce_budgets();
        self.playlist.preload_hint = Some(next);
        let playlists = self.render(SnapshotKey::Segment(msn));
        self.rendition.apply(Update {
            segment_complete: Some((msn, Duration::from_secs_f64(duration.max(0.0)))),
            playlists,
            meta,
            free_unlisted: pressure,
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
    /// the budget is exceeded and grows back below it), and what is unlisted
    /// is freed at once. Returns whether a budget is exceeded.
    fn enforce_budgets(&mut self) -> bool {
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
            return false;
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
        true
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
