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
mod splice;
mod standby;
mod watch;

pub use standby::InputRules;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::RungConfig;
use crate::hub::{HubEvent, HubStream};
use crate::media::aac::SAMPLES_PER_FRAME;
use crate::media::{rescale, AacConfig, AccessUnit, MediaInfo, TrackKind, VIDEO_TIMESCALE};
use crate::metrics::{Metrics, ReasonLabel, StreamLabel};
use crate::package::packager::{self, Input, PackagerConfig, RenditionPackager};
use crate::publish::{Session, SessionPlan, Target};
use crate::slate;
use crate::transcode::encoder::{Backend, Presets};
use crate::transcode::plan;
use crate::transcode::schedule::{Cut, CutMode, CutSchedule};
use crate::transcode::worker::{FramePath, Job, RungTarget, Transcoder};

/// The passthrough video rendition's name in URLs.
pub const SOURCE: &str = "source";
/// The audio rendition's name in URLs.
pub const AUDIO: &str = "audio";

/// Inputs waiting for one rendition's packager.
const PACKAGER_QUEUE: usize = 256;

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
            event = rx.recv() => event,
            _ = sleep_until(deadline) => {
                if !standby.tick(&mut stream).await {
                    tracing::error!(stream = %name, "a rendition stopped; ending the stream");
                    break;
                }
                continue;
            }
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

/// One session's renditions as the pipeline feeds them: the cut schedule
/// they share, the audio and passthrough packagers' queues, the transcoder
/// that feeds the rungs' packagers, and the packager tasks.
struct Renditions {
    name: String,
    schedule: CutSchedule,
    audio: Option<mpsc::Sender<Input>>,
    source: Option<mpsc::Sender<Input>>,
    transcoder: Option<Transcoder>,
    audio_rate: u32,
    packagers: JoinSet<()>,
    session: Session,
    metrics: Arc<Metrics>,
    /// Said once per stream: its keyframes are too far apart.
    told_long_gop: bool,
    /// Audio from a cut only the audio has reached (the publisher sends its
    /// audio ahead of its video): held until the video gets there, so the
    /// audio never lists a segment the video renditions will not have; dropped
    /// if the session ends first. At most [`HELD_AUDIO`] frames.
    held: VecDeque<HeldAudio>,
    /// Said once per stream: the video fell too far behind the audio.
    told_audio_ahead: bool,
    /// The audio track's config in this session (what silence must fit).
    audio_config: Option<AacConfig>,
    /// Where this session's next audio frame is presented (audio ticks).
    audio_next: Option<i64>,
    /// The latest presentation time of this session's video (90 kHz).
    video_end: Option<i64>,
}

/// An audio frame on its way to the audio rendition.
struct HeldAudio {
    au: AccessUnit,
    opens: Option<Cut>,
    /// The schedule already knows the next frame opens a segment.
    cut_follows: bool,
}

/// The most silence one session end may add to the audio (about 10 s at
/// 48 kHz): more is not a B-frame lead but a publisher that stopped its audio.
const MAX_SILENCE: usize = 470;

/// Audio frames held while the video catches up with a cut (about 5.5 s at
/// 48 kHz): past it the video is not coming, and the audio goes on alone.
const HELD_AUDIO: usize = 256;

impl Renditions {
    /// Plan the renditions for the first tracks and start them.
    async fn build(
        cfg: &PipelineConfig,
        target: &Target,
        name: &str,
        metrics: Arc<Metrics>,
        info: &Arc<MediaInfo>,
    ) -> Renditions {
        let name = name.to_string();
        let (transcoder, rungs) = match (&cfg.ladder, &info.video) {
            (Some(ladder), Some(video)) => start_ladder(ladder, &name, video, &metrics),
            _ => (None, Vec::new()),
        };
        let passthrough = info.video.is_some()
            && (transcoder.is_none() || cfg.ladder.as_ref().is_some_and(|l| l.passthrough));
        let mode = cut_mode(cfg, passthrough);
        let mut pcfg = cfg.packager;
        pcfg.target_duration = target_duration(cfg, mode);

        let mut video_names: Vec<String> = rungs.iter().map(|(n, _)| n.clone()).collect();
        if passthrough {
            video_names.insert(0, SOURCE.to_string());
        }
        let plan = SessionPlan {
            video: video_names,
            audio: info.audio.is_some().then(|| AUDIO.to_string()),
            target_duration: pcfg.target_duration,
            part_target: pcfg.segmenter.part_target,
            continues_at: None,
        };
        let (session, continuation) = target.open(&name, plan, cfg.takeover_after).await;
        let mut packagers = JoinSet::new();
        let mut spawn = |rendition: &str, rx: mpsc::Receiver<Input>| {
            let mut p = RenditionPackager::new(
                pcfg.segmenter,
                session.rendition(rendition, pcfg),
                &name,
                rendition,
                metrics.clone(),
            );
            if let Some(c) = continuation {
                p = p.continuing(c.next_init);
            }
            packagers.spawn(packager::run(p, rx));
        };
        let mut open = |rendition: &str, track: Option<MediaInfo>| {
            let track = track?;
            let (tx, rx) = mpsc::channel(PACKAGER_QUEUE);
            spawn(rendition, rx);
            // A fresh channel has room for this first input.
            let _ = tx.try_send(Input::Tracks(Arc::new(track)));
            Some(tx)
        };
        let audio = open(AUDIO, info.audio_only());
        let source = if passthrough {
            open(SOURCE, info.video_only())
        } else {
            None
        };
        for (rendition, rx) in rungs {
            spawn(&rendition, rx);
        }
        Renditions {
            name,
            schedule: CutSchedule::new(mode, info.video.is_some())
                .starting_at(continuation.map_or(0, |c| c.next_msn)),
            audio,
            source,
            transcoder,
            audio_rate: info.timescale(TrackKind::Audio),
            packagers,
            session,
            metrics,
            told_long_gop: false,
            held: VecDeque::new(),
            told_audio_ahead: false,
            audio_config: info.audio.clone(),
            audio_next: None,
            video_end: None,
        }
    }

    /// The schedule cut a passthrough segment between keyframes: count it,
    /// say it once, and stop promising independent segments.
    fn cut_without_keyframe(&mut self) {
        self.metrics.segments_without_keyframe.inc();
        self.session.mark_dependent();
        if !std::mem::replace(&mut self.told_long_gop, true) {
            tracing::warn!(
                stream = %self.name,
                "the source's keyframes are further apart than hls.max_segment_duration: segments are cut between keyframes (set the encoder's keyframe interval to 1-2 s)"
            );
        }
    }

    /// New tracks (a reconnect, or a new sequence header): timestamps start
    /// over, so the next frame opens a new segment behind a discontinuity.
    async fn tracks(&mut self, info: Arc<MediaInfo>) -> bool {
        let mut ok = self.owe_silence().await;
        let unused = self.drop_held_audio();
        self.schedule.new_session();
        if let Some(msn) = unused {
            self.schedule.take_back(msn);
        }
        self.audio_rate = info.timescale(TrackKind::Audio);
        self.audio_config = info.audio.clone();
        (self.audio_next, self.video_end) = (None, None);
        if let (Some(tx), Some(a)) = (&self.audio, info.audio_only()) {
            ok &= tx.send(Input::Tracks(Arc::new(a))).await.is_ok();
        }
        if let (Some(tx), Some(v)) = (&self.source, info.video_only()) {
            ok &= tx.send(Input::Tracks(Arc::new(v))).await.is_ok();
        }
        if self.audio.is_none() && info.audio.is_some() {
            tracing::warn!(stream = %self.name, "the publisher added audio after the start; it is not served until the stream restarts");
        }
        if let Some(t) = &self.transcoder {
            ok &= t.send(Job::Tracks(info)).await;
        }
        ok
    }

    async fn media(&mut self, au: AccessUnit) -> bool {
        // When the frame arrived from the network: what a new session's
        // PROGRAM-DATE-TIME is anchored at.
        let wall = SystemTime::now()
            .checked_sub(au.received.elapsed())
            .unwrap_or_else(SystemTime::now);
        match au.track {
            TrackKind::Video => {
                self.video_end = self.video_end.max(Some(au.pts));
                let cut = self.schedule.video(au.pts, au.keyframe, wall);
                // Only the passthrough rung serves source frames as they
                // are; transcoded rungs force an IDR at every cut.
                if cut.is_some() && !au.keyframe && self.source.is_some() {
                    self.cut_without_keyframe();
                }
                let mut ok = true;
                if let Some(tx) = &self.source {
                    let opens = cut.map(|c| c.segment());
                    ok &= tx.send(Input::Media(au.clone(), opens)).await.is_ok();
                }
                if let Some(t) = &self.transcoder {
                    ok &= t.send(Job::Packet(au, cut)).await;
                }
                // The video may have reached the cut the held audio waits for.
                while self
                    .held
                    .front()
                    .is_some_and(|f| f.opens.is_none_or(|c| self.schedule.video_reached(c.msn)))
                {
                    if let Some(f) = self.held.pop_front() {
                        ok &= self.send_audio(f).await;
                    }
                }
                ok
            }
            TrackKind::Audio => {
                let at = rescale(au.pts, self.audio_rate, VIDEO_TIMESCALE);
                let opens = self.schedule.audio(at, wall);
                if self.audio.is_none() {
                    return true;
                }
                self.audio_next = Some(au.pts + SAMPLES_PER_FRAME);
                // AAC frames are 1024 samples: where the next one is presented is known.
                let next = rescale(au.pts + SAMPLES_PER_FRAME, self.audio_rate, VIDEO_TIMESCALE);
                let frame = HeldAudio {
                    au,
                    opens,
                    cut_follows: self.schedule.audio_cut_before(next),
                };
                let ahead = opens.is_some_and(|c| !self.schedule.video_reached(c.msn));
                if !ahead && self.held.is_empty() {
                    return self.send_audio(frame).await;
                }
                let mut ok = true;
                if self.held.len() >= HELD_AUDIO {
                    if !std::mem::replace(&mut self.told_audio_ahead, true) {
                        tracing::warn!(stream = %self.name, "the video is more than 5 s behind the audio: the audio goes on alone (its segments may not match the video's)");
                    }
                    if let Some(f) = self.held.pop_front() {
                        ok &= self.send_audio(f).await;
                    }
                }
                self.held.push_back(frame);
                ok
            }
        }
    }

    /// Hand one audio frame to the audio rendition.
    async fn send_audio(&self, f: HeldAudio) -> bool {
        let Some(tx) = &self.audio else {
            return true;
        };
        let mut ok = tx
            .send(Input::Media(f.au, f.opens.map(|c| c.segment())))
            .await
            .is_ok();
        if f.cut_follows {
            ok &= tx.send(Input::CutFollows).await.is_ok();
        }
        ok
    }

    /// The session ends (new tracks, lost input, the end) with the video past
    /// a cut the audio has not reached (with B-frames the video goes out
    /// ahead of its presentation time): the audio gets silence from where it
    /// stopped to where the video did, so it lists every MSN the video
    /// renditions list, at the same instant. Only for AAC-LC, which FFmpeg's
    /// silence fits; other audio is left short (logged).
    async fn owe_silence(&mut self) -> bool {
        let (Some(tx), Some(config), Some(next), Some(video_end)) = (
            self.audio.clone(),
            self.audio_config.clone(),
            self.audio_next,
            self.video_end,
        ) else {
            return true;
        };
        if !self.held.is_empty() || !self.schedule.audio_owed() {
            return true;
        }
        let rate = self.audio_rate;
        let owed = rescale(video_end, VIDEO_TIMESCALE, rate) - next;
        if owed > MAX_SILENCE as i64 * SAMPLES_PER_FRAME {
            tracing::info!(stream = %self.name, seconds = owed / rate.max(1) as i64, "the audio stopped long before the video: its last segments are left short");
            return true;
        }
        let silence = match slate::silence::shared(config.sample_rate, config.channels).await {
            Ok(s) if s.fits(&config) => s,
            Ok(_) => {
                tracing::info!(stream = %self.name, object_type = config.object_type, "the audio stopped short of the video's last segment and is not AAC-LC: it is not filled with silence");
                return true;
            }
            Err(e) => {
                tracing::warn!(stream = %self.name, error = %e, "no silence to fill the audio's last segment");
                return true;
            }
        };
        let (wall, received) = (SystemTime::now(), std::time::Instant::now());
        let mut ok = true;
        let mut pts = next;
        for data in silence.frames.iter().cycle().take(MAX_SILENCE) {
            let at = rescale(pts, rate, VIDEO_TIMESCALE);
            let owed = self.schedule.audio_owed();
            if !owed && (at > video_end || self.schedule.audio_cut_before(at)) {
                break;
            }
            let opens = self.schedule.audio(at, wall);
            let au = AccessUnit::audio(pts, data.clone(), received);
            ok &= tx
                .send(Input::Media(au, opens.map(|c| c.segment())))
                .await
                .is_ok();
            pts += SAMPLES_PER_FRAME;
        }
        tracing::debug!(stream = %self.name, frames = (pts - next) / SAMPLES_PER_FRAME, "the audio's last segment is filled with silence up to the video's end");
        self.audio_next = Some(pts);
        ok
    }

    /// The session ended with audio held at a cut the video never reached:
    /// drop it. Returns the first such cut's MSN (no rendition used it).
    fn drop_held_audio(&mut self) -> Option<u64> {
        let unused = self
            .held
            .iter()
            .find_map(|f| f.opens.filter(|c| !self.schedule.video_reached(c.msn)))
            .map(|c| c.msn);
        if !self.held.is_empty() {
            tracing::debug!(stream = %self.name, frames = self.held.len(), "audio past the video's last cut is dropped");
        }
        self.held.clear();
        unused
    }

    /// Input was lost: every rendition closes what it has and resumes at the
    /// next cut, so MSN N still names the same instant everywhere.
    async fn gap(&mut self) -> bool {
        let mut ok = self.owe_silence().await;
        let unused = self.drop_held_audio();
        self.schedule.restart();
        if let Some(msn) = unused {
            self.schedule.take_back(msn);
        }
        for tx in self.audio.iter().chain(self.source.iter()) {
            ok &= tx.send(Input::Gap).await.is_ok();
        }
        if let Some(t) = &self.transcoder {
            ok &= t.send(Job::Gap).await;
        }
        ok
    }

    /// End every rendition, wait for their packagers, and hand back the
    /// session to end.
    async fn end(mut self) -> Session {
        self.owe_silence().await;
        self.drop_held_audio();
        for tx in self.audio.iter().chain(self.source.iter()) {
            let _ = tx.send(Input::End).await;
        }
        if let Some(t) = self.transcoder.take() {
            t.send(Job::End).await;
            // The threads finish what they hold, then end their rungs.
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        drop((self.audio.take(), self.source.take()));
        while let Some(r) = self.packagers.join_next().await {
            if let Err(e) = r {
                tracing::error!(stream = %self.name, error = %e, "a packager task failed");
            }
        }
        self.session
    }
}

/// Start the ladder for `video`: the transcoder and each rung's packager
/// queue, or none (counted, logged) when no rung fits the source or the
/// encoder cannot start; the stream is then served as published.
fn start_ladder(
    ladder: &LadderConfig,
    name: &str,
    video: &crate::media::AvcConfig,
    metrics: &Arc<Metrics>,
) -> (Option<Transcoder>, Vec<(String, mpsc::Receiver<Input>)>) {
    let fallback = |reason: &str| {
        metrics
            .ladder_fallbacks
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    };
    let plan = plan::plan(video.width, video.height, &ladder.rungs);
    if !plan.skipped.is_empty() {
        tracing::info!(stream = %name, source = %format!("{}x{}", video.width, video.height), skipped = ?plan.skipped, "rungs taller than the source are skipped, never upscaled");
    }
    if plan.rungs.is_empty() {
        tracing::info!(stream = %name, "the source is smaller than every rung: served as published");
        fallback("source_smaller_than_ladder");
        return (None, Vec::new());
    }
    let channels: Vec<_> = plan
        .rungs
        .iter()
        .map(|_| mpsc::channel(PACKAGER_QUEUE))
        .collect();
    let targets = plan
        .rungs
        .iter()
        .zip(&channels)
        .map(|(rung, (tx, _))| RungTarget {
            rung: rung.clone(),
            output: tx.clone(),
        })
        .collect();
    let started = Transcoder::start(
        name,
        ladder.backend,
        &ladder.presets,
        &ladder.frames,
        video,
        targets,
        // With passthrough the source's keyframes make the cuts, and the
        // source rung could not follow extra IDRs.
        ladder.keyframe_interval.filter(|_| !ladder.passthrough),
        metrics.clone(),
    );
    match started {
        Ok(t) => {
            let rungs = plan
                .rungs
                .into_iter()
                .zip(channels)
                .map(|(r, (_, rx))| (r.name, rx))
                .collect();
            (Some(t), rungs)
        }
        Err(e) => {
            tracing::error!(stream = %name, error = %e, "the ladder cannot start: served as published");
            fallback("encoder_failed");
            (None, Vec::new())
        }
    }
}

/// Transcoded rungs alone cut on the clock; a passthrough rung can only cut
/// at the source's keyframes; an audio-only stream cuts on the clock.
fn cut_mode(cfg: &PipelineConfig, passthrough: bool) -> CutMode {
    let segment = (cfg.segment_duration.as_secs_f64() * VIDEO_TIMESCALE as f64) as i64;
    if passthrough {
        CutMode::Keyframes {
            min: segment - segment / 10,
            max: (cfg.max_segment_duration.as_secs_f64() * VIDEO_TIMESCALE as f64) as i64,
        }
    } else {
        CutMode::Interval { every: segment }
    }
}

/// TARGETDURATION, known before the first frame either way, so the playlists
/// appear with the first part: the interval, or (keyframe cuts) the longest a
/// segment may get: a cut past it comes at most a frame late, and EXTINF
/// rounds to at most this.
fn target_duration(cfg: &PipelineConfig, mode: CutMode) -> u32 {
    match mode {
        CutMode::Interval { .. } => cfg.segment_duration.as_secs_f64().ceil().max(1.0) as u32,
        CutMode::Keyframes { .. } => cfg.max_segment_duration.as_secs_f64().round().max(1.0) as u32,
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
