//! The owner of one live stream's pipeline, from the hub to the store.
//!
//! It reads the stream's hub queue, runs the stream's one [`CutSchedule`]
//! (every segment boundary and MSN, for every rendition), and feeds the
//! renditions: the audio rendition and the passthrough rung directly, the
//! transcoded rungs through the [`Transcoder`]. It plans the ladder when the
//! tracks are known, falls back to serving the source as published when the
//! ladder cannot run (logged and counted), owns every task and thread of the
//! stream (nothing is detached), and removes the stream from the store once
//! its VOD time is over.

mod lag;
mod renditions;
mod splice;
mod standby;
mod watch;

pub use standby::InputRules;

use renditions::Renditions;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError};

use crate::config::RungConfig;
use crate::hub::{HubEvent, HubStream};
use crate::media::{TrackKind, VIDEO_TIMESCALE};
use crate::metrics::{Metrics, StreamLabel};
use crate::package::packager::PackagerConfig;
use crate::publish::Target;
use crate::transcode::encoder::{Backend, Presets};
use crate::transcode::worker::FramePath;

/// The passthrough video rendition's name in URLs.
pub const SOURCE: &str = "source";
/// The audio rendition's name in URLs.
pub const AUDIO: &str = "audio";

/// How the ladder runs, when it runs.
#[derive(Debug, Clone)]
pub struct LadderConfig {
    pub backend: Backend,
    pub presets: Presets,
    /// Where frames are decoded and scaled (the GPU frame path or the CPU).
    pub frames: FramePath,
    pub rungs: Vec<RungConfig>,
    /// Also serve the source video as a rung (cuts then follow its keyframes).
    pub passthrough: bool,
    /// IDRs between cuts (`transcode.keyframe_interval`); none: one per segment.
    pub keyframe_interval: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub packager: PackagerConfig,
    pub segment_duration: Duration,
    /// The longest a passthrough segment may get (`hls.max_segment_duration`).
    pub max_segment_duration: Duration,
    /// `None`: every stream is served as published.
    pub ladder: Option<LadderConfig>,
    /// `ingest.takeover_after`: how long another ingest pod's session of
    /// the same name must be silent before this one continues it.
    pub takeover_after: Duration,
    /// Failover between a stream's inputs, and the slate when it has none.
    pub inputs: InputRules,
}

/// Run the pipeline of the hub's stream `hub_stream` (read from `rx`)
/// until it ends, publishing to `target`; then its session ends there (kept
/// as VOD for `vod_keep`, or until `stop_vod` is cancelled: the process
/// leaves).
pub async fn run(
    cfg: Arc<PipelineConfig>,
    target: Arc<Target>,
    metrics: Arc<Metrics>,
    hub_stream: Arc<HubStream>,
    mut rx: broadcast::Receiver<HubEvent>,
    stop_vod: tokio_util::sync::CancellationToken,
) {
    let name = hub_stream.name().to_string();
    let info = loop {
        match rx.recv().await {
            Ok(HubEvent::Tracks(_, info)) => break info,
            Ok(HubEvent::Media(..)) | Err(RecvError::Lagged(_)) => continue,
            Ok(HubEvent::End) | Err(RecvError::Closed) => return,
        }
    };
    let mut stream = Renditions::build(&cfg, &target, &name, metrics.clone(), &info).await;
    if stream.session.refused() {
        // Its encoder is told, by a closed connection, rather than left
        // sending to a pod that serves nothing of it.
        hub_stream.refuse_live_elsewhere();
    }
    let label = StreamLabel {
        stream: name.clone(),
    };
    let mut standby =
        standby::Standby::new(cfg.inputs.clone(), info, metrics.clone(), label.clone());
    let mut pace = Pace::default();
    let mut behind = lag::Episodes::default();
    loop {
        let deadline = standby.deadline();
        let event = tokio::select! {
            biased;
            event = rx.recv() => Some(event),
            _ = sleep_until(deadline) => None,
        };
        let Some(event) = event else {
            if !standby.tick(&mut stream, || !rx.is_empty()).await {
                tracing::error!(stream = %name, "a rendition stopped; ending the stream");
                break;
            }
            continue;
        };
        let now = std::time::Instant::now();
        if let Some(e) = behind.ended(now) {
            tracing::info!(stream = %name, dropped_events = e.dropped, lags = e.lags, lasted = ?e.last.duration_since(e.started), "pipeline caught up");
        }
        metrics
            .pipeline_queue_events
            .get_or_create(&label)
            .set(rx.len() as i64);
        if let Ok(HubEvent::Media(input, au)) = &event {
            // The input served: the other runs on a clock of its own.
            if au.track == TrackKind::Video && standby.serves(*input) {
                if let Some(speed) = pace.video(au.pts, now) {
                    metrics.pipeline_speed.get_or_create(&label).set(speed);
                }
            }
        }
        let ok = match event {
            Ok(HubEvent::Tracks(input, info)) => standby.tracks(input, info, &mut stream).await,
            Ok(HubEvent::Media(input, au)) => standby.media(input, au, &mut stream).await,
            Ok(HubEvent::End) | Err(RecvError::Closed) => break,
            Err(RecvError::Lagged(n)) => {
                metrics.hub_dropped_events.inc_by(n);
                if behind.lag(n, now) {
                    tracing::warn!(stream = %name, events = n, "pipeline fell behind; every rendition resumes at the next cut (further drops are counted, and logged when it catches up)");
                }
                // On the slate the input's lost events were not served anyway.
                standby.on_slate() || stream.gap().await
            }
        };
        if !ok {
            tracing::error!(stream = %name, "a rendition stopped; ending the stream");
            break;
        }
    }
    if let Some(e) = behind.take() {
        tracing::info!(stream = %name, dropped_events = e.dropped, lags = e.lags, "the stream ended while its pipeline was behind");
    }
    standby.end();
    let session = stream.end().await;
    metrics.pipeline_queue_events.remove(&label);
    metrics.pipeline_speed.remove(&label);
    session.end(cfg.packager.vod_keep, &stop_vod).await;
}

/// Sleep until `deadline`; never, without one.
async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// How fast the pipeline takes in the source: seconds of video (by PTS)
/// per second of wall time, over windows of [`Pace::WINDOW`]. 1 is real
/// time; below 1 the transcode cannot keep up (its bounded queues hold the
/// pipeline back until the hub drops events).
#[derive(Default)]
struct Pace {
    start: Option<(i64, std::time::Instant)>,
}

impl Pace {
    const WINDOW: Duration = Duration::from_secs(5);

    /// A video frame presented at `pts` (90 kHz) taken in at `now`: the
    /// speed of the window it closes, if it closes one.
    fn video(&mut self, pts: i64, now: std::time::Instant) -> Option<f64> {
        let Some((pts0, t0)) = self.start else {
            self.start = Some((pts, now));
            return None;
        };
        let wall = now.saturating_duration_since(t0);
        if wall < Self::WINDOW {
            return None;
        }
        self.start = Some((pts, now));
        let media = (pts - pts0) as f64 / VIDEO_TIMESCALE as f64;
        // A clock reset (negative media time) says nothing about speed.
        (media >= 0.0).then(|| media / wall.as_secs_f64())
    }
}

#[cfg(test)]
mod pace_tests {
    use std::time::Duration;

    #[test]
    fn pace_is_media_time_per_wall_time_over_five_seconds() {
        let mut p = super::Pace::default();
        let t = std::time::Instant::now();
        let s = |secs: f64| t + Duration::from_secs_f64(secs);
        assert_eq!(p.video(0, t), None);
        assert_eq!(p.video(90_000 * 4, s(4.0)), None);
        // 5 s of video in 5 s: real time.
        assert_eq!(p.video(90_000 * 5, s(5.0)), Some(1.0));
        // The next 5 s of wall time carried only 2.5 s of video.
        assert_eq!(p.video(90_000 * 15 / 2, s(10.0)), Some(0.5));
    }
}
