//! The stream's input or its slate: which one feeds the renditions.
//!
//! While the publisher sends, its events go through. When nothing has come
//! for `slate.after` (the publisher dropped and may reconnect within the
//! grace, or froze), the slate takes over as a new session: the renditions
//! carry on at the next MSN behind one discontinuity, showing the slate
//! picture and silence, so players keep playing. The input comes back at
//! its next keyframe (a new session again); the stream's end (the grace
//! over) ends the slate with it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::Renditions;
use crate::media::{AccessUnit, MediaInfo, TrackKind};
use crate::metrics::{Metrics, StreamLabel};
use crate::slate::{Clip, Feed, Shape, SlateError, SlateSettings};

/// The furthest back the slate starts (a pipeline stalled that long does
/// not get a burst of more).
const MAX_BACKDATE: Duration = Duration::from_secs(2);

pub(super) struct Standby {
    settings: Option<Arc<SlateSettings>>,
    /// The publisher's tracks, to announce again when it comes back.
    real: Arc<MediaInfo>,
    clip: Clips,
    state: State,
    metrics: Arc<Metrics>,
    label: StreamLabel,
}

enum State {
    /// The input feeds the stream; `last` it sent something (none yet:
    /// the slate waits for the first frame).
    Input { last: Option<Instant> },
    /// The slate feeds it until the input sends a keyframe.
    Slate(Feed),
}

/// The slate clip for the stream's current shape, encoded off the runtime.
struct Clips {
    shape: Shape,
    ready: Option<Arc<Clip>>,
    building: Option<JoinHandle<Result<Clip, SlateError>>>,
    /// Said once: this stream has no slate.
    failed: bool,
}

impl Standby {
    pub(super) fn new(
        settings: Option<Arc<SlateSettings>>,
        info: Arc<MediaInfo>,
        metrics: Arc<Metrics>,
        label: StreamLabel,
    ) -> Standby {
        let mut s = Standby {
            clip: Clips {
                shape: Shape::of(&info),
                ready: None,
                building: None,
                failed: false,
            },
            settings,
            real: info,
            state: State::Input { last: None },
            metrics,
            label,
        };
        s.prepare();
        s
    }

    /// When [`Standby::tick`] has work: the slate's start or its next frame.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let settings = self.settings.as_ref()?;
        match &self.state {
            State::Input { last } if !self.clip.failed => last.map(|t| t + settings.after),
            State::Input { .. } => None,
            State::Slate(feed) => Some(feed.next_due()),
        }
    }

    /// New tracks from the publisher (a reconnect, a changed config).
    pub(super) async fn tracks(&mut self, info: Arc<MediaInfo>, stream: &mut Renditions) -> bool {
        self.real = info.clone();
        self.prepare();
        match &mut self.state {
            State::Input { last } => {
                *last = Some(Instant::now());
                stream.tracks(info).await
            }
            // Announced when its first keyframe comes.
            State::Slate(_) => true,
        }
    }

    /// A frame from the publisher.
    pub(super) async fn media(&mut self, au: AccessUnit, stream: &mut Renditions) -> bool {
        let now = Instant::now();
        if let State::Slate(feed) = &self.state {
            let resumes = match self.real.video {
                Some(_) => au.track == TrackKind::Video && au.keyframe,
                None => true,
            };
            if !resumes {
                return true; // the slate goes on until the input's next keyframe
            }
            let shown = feed.shown(now);
            self.slate_off(shown);
            tracing::info!(stream = %self.label.stream, shown = ?shown, "the input is back; the slate ends");
            self.state = State::Input { last: Some(now) };
            if !stream.tracks(self.real.clone()).await {
                return false;
            }
        } else {
            self.state = State::Input { last: Some(now) };
        }
        stream.media(au).await
    }

    /// Whether the slate is on (a lost input's events are not a gap then).
    pub(super) fn on(&self) -> bool {
        matches!(self.state, State::Slate(_))
    }

    /// The deadline passed: start the slate, or hand on its frames now due.
    pub(super) async fn tick(&mut self, stream: &mut Renditions) -> bool {
        let now = Instant::now();
        if let State::Input { last } = self.state {
            let Some(clip) = self.clip().await else {
                return true;
            };
            // The slate starts where the input stopped, so the timeline has
            // no hole: what it owes since then is handed out at once.
            let earliest = now.checked_sub(MAX_BACKDATE).unwrap_or(now);
            let start = last.unwrap_or(now).max(earliest);
            tracing::warn!(stream = %self.label.stream, "no input: the slate runs until it comes back (or the reconnect grace ends)");
            self.metrics.slate_on.get_or_create(&self.label).set(1);
            if !stream.tracks(Arc::new(clip.info.clone())).await {
                return false;
            }
            self.state = State::Slate(Feed::new(clip, start));
        }
        let State::Slate(feed) = &mut self.state else {
            return true;
        };
        for au in feed.due(now) {
            if !stream.media(au).await {
                return false;
            }
        }
        true
    }

    /// The stream ends: count the slate it was showing.
    pub(super) fn end(&mut self) {
        if let State::Slate(feed) = &self.state {
            self.slate_off(feed.shown(Instant::now()));
        }
        self.metrics.slate_on.remove(&self.label);
        self.metrics.slate_seconds.remove(&self.label);
        if let Some(b) = self.clip.building.take() {
            b.abort();
        }
    }

    fn slate_off(&self, shown: Duration) {
        let m = &self.metrics;
        m.slate_seconds
            .get_or_create(&self.label)
            .inc_by(shown.as_secs_f64());
        m.slate_on.get_or_create(&self.label).set(0);
    }

    /// Start encoding the clip for the publisher's shape, if it is new.
    fn prepare(&mut self) {
        let Some(settings) = &self.settings else {
            return;
        };
        let shape = Shape::of(&self.real);
        if self.clip.ready.is_some() || self.clip.building.is_some() {
            if shape == self.clip.shape {
                return;
            }
            if let Some(b) = self.clip.building.take() {
                b.abort();
            }
            self.clip.ready = None;
        }
        self.clip.shape = shape;
        self.clip.failed = false;
        let image = settings.image.clone();
        self.clip.building = Some(tokio::task::spawn_blocking(move || {
            Clip::build(shape, image.as_deref())
        }));
    }

    /// The clip, once encoded (waited for if it is still being encoded).
    async fn clip(&mut self) -> Option<Arc<Clip>> {
        if let Some(b) = self.clip.building.take() {
            match b.await {
                Ok(Ok(clip)) => self.clip.ready = Some(Arc::new(clip)),
                Ok(Err(e)) => {
                    tracing::error!(stream = %self.label.stream, error = %e, "no slate for this stream");
                    self.clip.failed = true;
                }
                Err(e) => {
                    tracing::error!(stream = %self.label.stream, error = %e, "the slate encoder failed");
                    self.clip.failed = true;
                }
            }
        }
        self.clip.ready.clone()
    }
}
