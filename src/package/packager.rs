//! Drives one rendition: its input (one track, with the stream's cuts) →
//! segmenter → [`Event`]s through the [`Publish`] seam (in one process,
//! [`crate::publish::local::LocalRendition`] keeps the playlist and the
//! store). It measures the rendition's bit rate for the multivariant
//! playlist, and it reads nothing back.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::playlist::PartAddressing;
use super::segmenter::{Output, SegmentCut, Segmenter, SegmenterConfig};
use crate::media::{AccessUnit, MediaInfo};
use crate::metrics::Metrics;
use crate::publish::{Event, Publish};
use crate::store::RenditionMeta;

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
    /// For logs: the stream and rendition this is.
    stream: String,
    rendition: String,
    segmenter: Segmenter,
    /// Where what is made goes (this process's store, for now).
    publisher: Box<dyn Publish>,
    info: Option<Arc<MediaInfo>>,
    stats: BitrateStats,
    metrics: Arc<Metrics>,
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
        segmenter: SegmenterConfig,
        publisher: Box<dyn Publish>,
        stream: &str,
        rendition: &str,
        metrics: Arc<Metrics>,
    ) -> Self {
        RenditionPackager {
            stream: stream.to_string(),
            rendition: rendition.to_string(),
            segmenter: Segmenter::new(segmenter),
            publisher,
            info: None,
            stats: BitrateStats::default(),
            metrics,
            #[cfg(test)]
            panic_after: None,
        }
    }

    /// Continue a rendition another packager wrote (see
    /// [`Segmenter::continue_after`]).
    pub fn continuing(mut self, next_init: u32) -> Self {
        self.segmenter.continue_after(next_init);
        self
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
                self.publisher.publish(Event::End);
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
                tracing::error!(stream = %self.stream, error = %e, "packaging failed")
            }
        }
    }

    fn apply(&mut self, output: Output) {
        let event = match output {
            Output::Init { id, data } => Event::Init { id, data },
            Output::Part(part) => {
                self.stats.segment_bytes += part.data.len() as u64;
                Event::Part {
                    part,
                    next: self.segmenter.next_part(),
                }
            }
            Output::SegmentEnd {
                msn,
                duration,
                frames,
            } => {
                self.segment_stats(duration, frames);
                Event::SegmentEnd {
                    msn,
                    duration,
                    meta: self.meta(),
                    next: self.segmenter.next_part(),
                }
            }
        };
        self.publisher.publish(event);
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
/// noticed here: counted, logged, its rendition ended (EXT-X-ENDLIST) as far
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
                    stream = %packager.stream,
                    rendition = %packager.rendition,
                    "the packager failed; ending its rendition and the stream"
                );
                let _ = catch_unwind(AssertUnwindSafe(|| packager.publisher.publish(Event::End)));
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
    use crate::publish::local::LocalRendition;
    use crate::store::{SessionEntry, Store};

    /// A packager publishing to `entry` in this process.
    fn packager(entry: &Arc<SessionEntry>, metrics: &Arc<Metrics>) -> RenditionPackager {
        let local = LocalRendition::new(cfg(), entry.clone(), "v", metrics.clone());
        RenditionPackager::new(
            cfg().segmenter,
            Box::new(local),
            entry.name(),
            "v",
            metrics.clone(),
        )
    }

    fn first_msn(entry: &SessionEntry) -> u64 {
        entry.find_rendition("v").unwrap().progress().first_msn
    }

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
        let mut p = packager(&entry, &metrics);
        p.handle(video_info());
        for i in 0..(20 * 30 + 1) {
            p.handle(second_gop_frame(i));
        }
        // 20 one-second segments of 30 kB each against a 60 s window: only
        // the 3 s RFC 8216 asks for stay listed, and only they are held;
        // every segment that left the playlist left it for the budget.
        assert_eq!(first_msn(&entry), 17);
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
        let mut p = packager(&entry, &Arc::new(Metrics::new()));
        p.handle(video_info());
        for i in 0..(20 * 30 + 1) {
            p.handle(second_gop_frame(i));
        }
        assert_eq!(first_msn(&entry), 0);
    }

    #[tokio::test]
    async fn a_panicking_packager_ends_its_playlist_and_closes_its_input() {
        let store = Store::new();
        let entry = store.open_stream("s");
        let metrics = Arc::new(Metrics::new());
        let mut p = packager(&entry, &metrics);
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
