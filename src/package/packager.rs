//! Drives one rendition: its input (one track, with the stream's cuts) →
//! segmenter → playlist model → store.
//!
//! Each new part or segment is rendered once (full and delta forms) and put
//! in the store with its media, so any number of viewers woken by it cost one
//! rendering.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::multivariant::MultivariantWriter;
use super::playlist::{
    self, Form, MediaPlaylist, PartAddressing, PartEntry, RenditionReport, SegmentEntry,
};
use super::segmenter::{Output, SegmentCut, Segmenter, SegmenterConfig};
use crate::media::{AccessUnit, MediaInfo};
use crate::metrics::{Metrics, ReasonLabel, RenditionLabel};
use crate::store::{Playlists, Rendition, RenditionMeta, SnapshotKey, StreamEntry, Update};

#[derive(Debug, Clone, Copy)]
pub struct PackagerConfig {
    pub segmenter: SegmenterConfig,
    pub dvr_window: Duration,
    pub vod_keep: Duration,
    /// TARGETDURATION, fixed before the first frame by the stream's cut
    /// schedule (the segment duration rounded up with cuts on the clock,
    /// the longest a segment may get with keyframe cuts); it never changes.
    pub target_duration: u32,
    /// How the playlists name parts.
    pub part_addressing: PartAddressing,
}

/// What a rendition packager consumes, whoever produces it (the stream's
/// pipeline for passthrough and audio, a transcoder rung for the ladder).
#[derive(Debug)]
pub enum Input {
    /// The rendition's track from here on (one track per rendition).
    Tracks(Arc<MediaInfo>),
    /// A frame, and the segment it opens (MSN and date), if it opens one.
    Media(AccessUnit, Option<SegmentCut>),
    /// The next frame opens a segment (the schedule already knows the cut):
    /// the open part is complete now, not when that frame comes.
    CutFollows,
    /// Input was lost: close what is open, resume at the next cut behind a
    /// discontinuity.
    Gap,
    /// The stream ended for good.
    End,
}

/// One rendition's packaging state. Synchronous; [`run`] feeds it.
pub struct RenditionPackager {
    /// `castline_part_ready_seconds{rendition}`, this rendition's.
    part_ready: prometheus_client::metrics::histogram::Histogram,
    cfg: PackagerConfig,
    stream: Arc<StreamEntry>,
    rendition: Arc<Rendition>,
    segmenter: Segmenter,
    playlist: MediaPlaylist,
    info: Option<Arc<MediaInfo>>,
    stats: BitrateStats,
    metrics: Arc<Metrics>,
    multivariant: Option<Arc<MultivariantWriter>>,
    segments_done: u64,
    /// Said once per rendition: a budget shortened the DVR window.
    told_budget: bool,
    /// Test hook: panic while handling input number N (to test [`run`]'s guard).
    #[cfg(test)]
    panic_after: Option<u32>,
}

#[derive(Default)]
struct BitrateStats {
    bytes: u64,
    seconds: f64,
    peak_bps: u64,
    frames: u64,
    segment_bytes: u64,
}

impl RenditionPackager {
    pub fn new(
        cfg: PackagerConfig,
        stream: Arc<StreamEntry>,
        rendition: &str,
        metrics: Arc<Metrics>,
    ) -> Self {
        let part_target = cfg.segmenter.part_target.as_secs_f64();
        let part_ready = metrics
            .part_ready_seconds
            .get_or_create(&RenditionLabel {
                rendition: rendition.to_string(),
            })
            .clone();
        RenditionPackager {
            part_ready,
            segmenter: Segmenter::new(cfg.segmenter),
            playlist: MediaPlaylist {
                addressing: cfg.part_addressing,
                ..MediaPlaylist::new(
                    stream.epoch().to_string(),
                    cfg.target_duration.max(1),
                    part_target,
                )
            },
            rendition: stream.rendition(rendition),
            stream,
            cfg,
            info: None,
            stats: BitrateStats::default(),
            metrics,
            multivariant: None,
            segments_done: 0,
            told_budget: false,
            #[cfg(test)]
            panic_after: None,
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

    /// Handle one input. Returns false once the stream has ended.
    pub fn handle(&mut self, input: Input) -> bool {
        #[cfg(test)]
        if let Some(n) = self.panic_after.as_mut() {
            *n = n.saturating_sub(1);
            assert!(*n > 0, "injected packager panic");
        }
        let result = match input {
            Input::Tracks(info) => {
                self.info = Some(info.clone());
                self.segmenter.set_tracks(info)
            }
            Input::Media(au, cut) => self.segmenter.push_scheduled(au, cut),
            Input::CutFollows => self.segmenter.end_part(),
            Input::Gap => self.segmenter.gap(),
            Input::End => {
                let out = self.segmenter.finish();
                self.apply_outputs(out);
                self.end();
                return false;
            }
        };
        self.apply_outputs(result);
        true
    }

    fn apply_outputs(&mut self, result: Result<Vec<Output>, super::boxes::BoxError>) {
        match result {
            Ok(outputs) => {
                for o in outputs {
                    self.apply(o);
                }
            }
            Err(e) => {
                self.metrics.packaging_errors.inc();
                tracing::error!(stream = self.stream.name(), error = %e, "packaging failed")
            }
        }
    }

    fn apply(&mut self, output: Output) {
        match output {
            Output::Init { id, data } => {
                self.rendition.apply(Update {
                    init: Some((id, data)),
                    ..self.base_update()
                });
            }
            Output::Part(part) => {
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
                self.stats.segment_bytes += part.data.len() as u64;
                self.playlist.preload_hint = Some(self.segmenter.next_part());
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
            Output::SegmentEnd {
                msn,
                duration,
                frames,
            } => {
                if let Some(seg) = self
                    .playlist
                    .segments
                    .iter_mut()
                    .rev()
                    .find(|s| s.msn == msn)
                {
                    seg.duration = Some(duration);
                }
                self.segment_stats(duration, frames);
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
                self.playlist.preload_hint = Some(self.segmenter.next_part());
                let playlists = self.render(SnapshotKey::Segment(msn));
                self.rendition.apply(Update {
                    segment_complete: Some((msn, Duration::from_secs_f64(duration.max(0.0)))),
                    playlists,
                    meta: self.meta(),
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
            // The window can run one segment over before it is trimmed.
            playlist_duration: self.cfg.dvr_window + target_duration,
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

    fn segment_stats(&mut self, duration: f64, frames: u32) {
        let s = &mut self.stats;
        if duration > 0.0 {
            s.peak_bps = s
                .peak_bps
                .max((s.segment_bytes as f64 * 8.0 / duration) as u64);
        }
        s.bytes += s.segment_bytes;
        s.seconds += duration;
        s.frames += frames as u64;
        s.segment_bytes = 0;
    }

    fn meta(&self) -> Option<RenditionMeta> {
        let info = self.info.as_ref()?;
        let s = &self.stats;
        let average = if s.seconds > 0.0 {
            (s.bytes as f64 * 8.0 / s.seconds) as u64
        } else {
            0
        };
        let declared = info.declared_bitrate.unwrap_or(0);
        let measured_rate =
            (s.seconds > 0.0 && info.video.is_some()).then(|| s.frames as f64 / s.seconds);
        Some(RenditionMeta {
            bandwidth: s.peak_bps.max(declared).max(average),
            average_bandwidth: average,
            codecs: info.codecs(),
            resolution: info.video.as_ref().map(|v| (v.width, v.height)),
            frame_rate: info
                .video
                .as_ref()
                .and_then(|v| v.frame_rate)
                .or(measured_rate),
            channels: info.audio.as_ref().map(|a| a.channels as u32),
        })
    }
}

/// Package one rendition until its input ends. A packager that panics is
/// noticed here: counted, logged, its playlist ended (EXT-X-ENDLIST) as far
/// as its state allows, and its input closed, so the stream's pipeline ends
/// the stream instead of leaving one rendition silent.
pub async fn run(mut packager: RenditionPackager, mut rx: mpsc::Receiver<Input>) {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    while let Some(input) = rx.recv().await {
        match catch_unwind(AssertUnwindSafe(|| packager.handle(input))) {
            Ok(true) => {}
            Ok(false) => return,
            Err(_) => {
                packager.metrics.packager_panics.inc();
                tracing::error!(
                    stream = packager.stream.name(),
                    rendition = packager.rendition.name(),
                    "the packager failed; ending its rendition and the stream"
                );
                let _ = catch_unwind(AssertUnwindSafe(|| packager.end()));
                return;
            }
        }
    }
    // The producer went away without saying End: end the rendition anyway.
    packager.handle(Input::End);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::avc::tests::AVCC_320X240;
    use crate::media::{AccessUnit, AvcConfig, TrackKind};
    use crate::package::segmenter::SegmenterConfig;
    use crate::store::Store;

    fn cfg() -> PackagerConfig {
        PackagerConfig {
            segmenter: SegmenterConfig {
                segment_target: Duration::from_secs(1),
                part_target: Duration::from_millis(200),
            },
            dvr_window: Duration::from_secs(60),
            vod_keep: Duration::ZERO,
            target_duration: 1,
            part_addressing: PartAddressing::Files,
        }
    }

    fn frame(i: i64) -> Input {
        Input::Media(
            AccessUnit {
                track: TrackKind::Video,
                dts: i * 3000,
                pts: i * 3000,
                keyframe: i == 0,
                data: bytes::Bytes::from_static(&[0, 0, 0, 1, 0x65]),
                received: std::time::Instant::now(),
            },
            (i == 0).then(|| cut(0)),
        )
    }

    fn cut(msn: u64) -> SegmentCut {
        SegmentCut {
            msn,
            program_date_time: std::time::SystemTime::now(),
        }
    }

    fn video_info() -> Input {
        Input::Tracks(Arc::new(MediaInfo {
            video: Some(AvcConfig::parse(bytes::Bytes::from_static(AVCC_320X240)).unwrap()),
            audio: None,
            declared_bitrate: None,
        }))
    }

    /// Frame `i` of a 30 fps source with a keyframe and a cut every second,
    /// 1,000 bytes each.
    fn second_gop_frame(i: i64) -> Input {
        let key = i % 30 == 0;
        let mut data = vec![0u8; 1000];
        data[..5].copy_from_slice(&[0, 0, 3, 0xe4, if key { 0x65 } else { 0x41 }]);
        Input::Media(
            AccessUnit {
                track: TrackKind::Video,
                dts: i * 3000,
                pts: i * 3000,
                keyframe: key,
                data: bytes::Bytes::from(data),
                received: std::time::Instant::now(),
            },
            key.then(|| cut((i / 30) as u64)),
        )
    }

    #[test]
    fn past_its_budget_a_stream_lists_three_target_durations_and_frees_the_rest() {
        let budget = crate::store::Budget {
            total: usize::MAX,
            per_stream: 50_000,
        };
        let store = Store::with_limits(8, budget);
        let entry = store.open_stream("s");
        let metrics = Arc::new(Metrics::new());
        let mut p = RenditionPackager::new(cfg(), entry.clone(), "v", metrics.clone());
        p.handle(video_info());
        for i in 0..(20 * 30 + 1) {
            p.handle(second_gop_frame(i));
        }
        // 20 one-second segments of 30 kB each against a 60 s window: only
        // the 3 s RFC 8216 asks for stay listed, and only they are held;
        // every segment that left the playlist left it for the budget.
        assert_eq!(p.playlist.media_sequence(), 17);
        let held = entry.bytes();
        assert!(held < 4 * 30_000, "{held} bytes held");
        let text = metrics.encode();
        assert!(
            text.contains("castline_budget_trims_total{reason=\"stream_budget\"} 17"),
            "{text}"
        );
    }

    #[test]
    fn within_its_budget_a_stream_keeps_its_whole_window() {
        let store = Store::new();
        let entry = store.open_stream("s");
        let mut p = RenditionPackager::new(cfg(), entry, "v", Arc::new(Metrics::new()));
        p.handle(video_info());
        for i in 0..(20 * 30 + 1) {
            p.handle(second_gop_frame(i));
        }
        assert_eq!(p.playlist.media_sequence(), 0);
    }

    #[tokio::test]
    async fn a_panicking_packager_ends_its_playlist_and_closes_its_input() {
        let store = Store::new();
        let entry = store.open_stream("s");
        let metrics = Arc::new(Metrics::new());
        let mut p = RenditionPackager::new(cfg(), entry.clone(), "v", metrics.clone());
        p.panic_after = Some(8);
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(run(p, rx));
        let info = MediaInfo {
            video: Some(AvcConfig::parse(bytes::Bytes::from_static(AVCC_320X240)).unwrap()),
            audio: None,
            declared_bitrate: None,
        };
        tx.send(Input::Tracks(Arc::new(info))).await.unwrap();
        let mut refused = false;
        for i in 0..30 {
            if tx.send(frame(i)).await.is_err() {
                refused = true;
                break;
            }
            tokio::task::yield_now().await;
        }
        task.await.unwrap();
        assert!(
            refused || tx.send(frame(31)).await.is_err(),
            "input still open"
        );
        let r = entry.find_rendition("v").unwrap();
        let text = String::from_utf8(r.playlists(None).unwrap().full.to_vec()).unwrap();
        assert!(text.contains("#EXT-X-ENDLIST"), "{text}");
        assert!(metrics
            .encode()
            .contains("castline_packager_panics_total 1"));
    }
}
