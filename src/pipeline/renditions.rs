//! One session's renditions as the pipeline feeds them: the stream's cut
//! schedule, the audio and passthrough packagers' queues, the transcoder
//! that feeds the rungs' packagers, and what keeps every rendition on one
//! timeline (audio held until the video reaches its cut, silence owed to
//! the audio when a session ends with the video ahead).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{LadderConfig, PipelineConfig, AUDIO, SOURCE};
use crate::media::aac::SAMPLES_PER_FRAME;
use crate::media::{rescale, AacConfig, AccessUnit, MediaInfo, TrackKind, VIDEO_TIMESCALE};
use crate::metrics::{Metrics, ReasonLabel};
use crate::package::packager::{self, Input, RenditionPackager};
use crate::publish::{Session, SessionPlan, Target};
use crate::slate;
use crate::slate::silence::Silence;
use crate::transcode::plan;
use crate::transcode::schedule::{Cut, CutMode, CutSchedule};
use crate::transcode::worker::{Job, RungTarget, Transcoder};

/// Inputs waiting for one rendition's packager.
const PACKAGER_QUEUE: usize = 256;

/// One session's renditions as the pipeline feeds them: the cut schedule
/// they share, the audio and passthrough packagers' queues, the transcoder
/// that feeds the rungs' packagers, and the packager tasks.
pub(super) struct Renditions {
    name: String,
    schedule: CutSchedule,
    audio: Option<mpsc::Sender<Input>>,
    source: Option<mpsc::Sender<Input>>,
    transcoder: Option<Transcoder>,
    audio_rate: u32,
    packagers: JoinSet<()>,
    pub(super) session: Session,
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
    /// The audio rendition's track (its init): what silence must fit.
    served_audio: Option<AacConfig>,
    /// This session's input has no audio (a backup without it): the audio
    /// rendition carries silence on the video's clock instead of stalling.
    silent: Option<Arc<Silence>>,
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
    pub(super) async fn build(
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
            served_audio: info.audio.clone(),
            silent: None,
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
    pub(super) async fn tracks(&mut self, info: Arc<MediaInfo>) -> bool {
        let mut ok = self.owe_silence().await;
        let unused = self.drop_held_audio();
        self.schedule.new_session();
        if let Some(msn) = unused {
            self.schedule.take_back(msn);
        }
        self.audio_rate = info.timescale(TrackKind::Audio);
        self.audio_config = info.audio.clone();
        (self.audio_next, self.video_end) = (None, None);
        self.silent = None;
        if let (Some(tx), Some(a)) = (&self.audio, info.audio_only()) {
            self.served_audio = a.audio.clone();
            ok &= tx.send(Input::Tracks(Arc::new(a))).await.is_ok();
        } else if info.audio.is_none() && info.video.is_some() {
            ok &= self.silence_for_missing_audio().await;
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

    pub(super) async fn media(&mut self, au: AccessUnit) -> bool {
        // When the frame arrived from the network: what a new session's
        // PROGRAM-DATE-TIME is anchored at.
        let wall = SystemTime::now()
            .checked_sub(au.received.elapsed())
            .unwrap_or_else(SystemTime::now);
        match au.track {
            TrackKind::Video => {
                self.video_end = self.video_end.max(Some(au.pts));
                if self.silent.is_some() {
                    // The audio gets its silence up to this frame first.
                    if !self.silence_up_to(au.pts, au.received).await {
                        return false;
                    }
                }
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

    /// The new session's input has no audio but the stream has an audio
    /// rendition (a backup without audio): that rendition starts a new
    /// session of its own track and carries AAC silence on the video's
    /// clock, so it goes on listing every MSN instead of stalling. Only
    /// where FFmpeg's AAC-LC silence fits its track; else it stalls (logged).
    async fn silence_for_missing_audio(&mut self) -> bool {
        let (Some(tx), Some(track)) = (self.audio.clone(), self.served_audio.clone()) else {
            return true;
        };
        match slate::silence::shared(track.sample_rate, track.channels).await {
            Ok(s) if s.fits(&track) => {
                tracing::info!(stream = %self.name, "this input has no audio: the audio rendition carries silence");
                self.audio_rate = track.sample_rate;
                self.audio_config = Some(track.clone());
                self.silent = Some(s);
                let info = MediaInfo {
                    video: None,
                    audio: Some(track),
                    declared_bitrate: None,
                };
                tx.send(Input::Tracks(Arc::new(info))).await.is_ok()
            }
            Ok(_) => {
                tracing::warn!(stream = %self.name, "this input has no audio and the audio rendition is not AAC-LC: it stalls until an input with audio comes back");
                true
            }
            Err(e) => {
                tracing::warn!(stream = %self.name, error = %e, "this input has no audio and no silence could be made: the audio rendition stalls");
                true
            }
        }
    }

    /// Silence for the audio rendition up to the video frame presented at
    /// `pts` (90 kHz), from where the last silence ended (or from that
    /// frame, for the session's first).
    async fn silence_up_to(&mut self, pts: i64, received: std::time::Instant) -> bool {
        let Some(silence) = self.silent.clone() else {
            return true;
        };
        let from = self
            .audio_next
            .unwrap_or_else(|| rescale(pts, VIDEO_TIMESCALE, self.audio_rate));
        self.feed_silence(&silence, from, received, |_, at| at <= pts)
            .await
    }

    /// Hand `silence` to the audio rendition as audio frames from `from`
    /// (audio ticks) on, through the schedule like any audio frame, while
    /// `more(schedule, at)` says the next frame (presented at `at`, 90 kHz)
    /// is wanted; at most [`MAX_SILENCE`] frames (a clock leap is a new
    /// timeline, not silence).
    async fn feed_silence(
        &mut self,
        silence: &Silence,
        from: i64,
        received: std::time::Instant,
        more: impl Fn(&CutSchedule, i64) -> bool,
    ) -> bool {
        let mut ok = true;
        let mut pts = from;
        for data in silence.frames.iter().cycle().take(MAX_SILENCE) {
            if !more(
                &self.schedule,
                rescale(pts, self.audio_rate, VIDEO_TIMESCALE),
            ) {
                break;
            }
            ok &= Box::pin(self.media(AccessUnit::audio(pts, data.clone(), received))).await;
            pts += SAMPLES_PER_FRAME;
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
        let (Some(config), Some(next), Some(video_end)) =
            (self.audio_config.clone(), self.audio_next, self.video_end)
        else {
            return true;
        };
        if self.audio.is_none() || !self.held.is_empty() || !self.schedule.audio_owed() {
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
        // Until it has opened every cut the video did, then up to the video's
        // last frame without opening one the video never reached.
        let more = |schedule: &CutSchedule, at: i64| {
            schedule.audio_owed() || (at <= video_end && !schedule.audio_cut_before(at))
        };
        let ok = self
            .feed_silence(&silence, next, std::time::Instant::now(), more)
            .await;
        tracing::debug!(stream = %self.name, "the audio's last segment is filled with silence up to the video's end");
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
    pub(super) async fn gap(&mut self) -> bool {
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
    pub(super) async fn end(mut self) -> Session {
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
