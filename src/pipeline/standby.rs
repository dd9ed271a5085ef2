//! Which input feeds the renditions: the primary, the backup, or the slate.
//!
//! Only the active input's events go through; the other input is kept
//! ready (its last two GOPs held, bounded: [`super::watch`]). When the
//! active input has sent nothing for `ingest.failover_after` and the other
//! is delivering, the stream switches to it, starting at its last keyframe;
//! when there is none to switch to and nothing has come for `slate.after`,
//! the slate takes over. A switch between two inputs carrying one encoder's
//! frames (its outputs to both URLs) continues the timeline with no
//! discontinuity ([`super::splice`]); any other switch is a new session for
//! the renditions (the schedule opens the next MSN behind a discontinuity,
//! as for a reconnect), so every rendition switches at the same MSN. An input comes
//! back from the slate at its next keyframe; the stream returns from the
//! backup to the primary once the primary has delivered for
//! `ingest.failback_after` (if set). The slate starts where the input
//! stopped, so the timeline has no hole.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::splice::{Served, Splice};
use super::watch::Watch;
use super::Renditions;
use crate::hub::Input;
use crate::media::{AccessUnit, MediaInfo};
use crate::metrics::{InputLabel, Metrics, ReasonLabel, StreamLabel};
use crate::slate::{Clip, Feed, Shape, SlateSettings};

/// The furthest back the slate starts (a pipeline stalled that long does
/// not get a burst of more).
const MAX_BACKDATE: Duration = Duration::from_secs(2);

/// The rules, from config.
#[derive(Debug, Clone)]
pub struct InputRules {
    /// `ingest.failover_after`.
    pub failover_after: Duration,
    /// `ingest.failback_after`; `None`: stay on the backup.
    pub failback_after: Option<Duration>,
    pub slate: Option<Arc<SlateSettings>>,
}

pub(super) struct Standby {
    rules: InputRules,
    inputs: [Watch; 2],
    active: Active,
    clip: Clips,
    /// The frames last served from an input, to splice the other onto.
    served: Served,
    /// A failback found no splice at the primary's keyframe: at its next
    /// one it switches anyway, behind a discontinuity.
    failback_waited: bool,
    metrics: Arc<Metrics>,
    label: StreamLabel,
}

enum Active {
    Input(Input),
    Slate(Feed),
}

/// The slate clip for the stream's current shape: encoded off the runtime
/// when the slate is first needed (a healthy stream never pays for it), and
/// shared by every stream of the same shape ([`crate::slate::shared`]).
struct Clips {
    shape: Option<Shape>,
    ready: Option<Arc<Clip>>,
    /// Said once per shape: this stream has no slate.
    failed: bool,
}

impl Standby {
    pub(super) fn new(
        rules: InputRules,
        info: Arc<MediaInfo>,
        metrics: Arc<Metrics>,
        label: StreamLabel,
    ) -> Standby {
        let mut inputs: [Watch; 2] = Default::default();
        inputs[0].info = Some(info);
        let s = Standby {
            rules,
            inputs,
            active: Active::Input(Input::Primary),
            clip: Clips {
                shape: None,
                ready: None,
                failed: false,
            },
            served: Served::default(),
            failback_waited: false,
            metrics,
            label,
        };
        s.show_active();
        s
    }

    fn watch(&mut self, input: Input) -> &mut Watch {
        &mut self.inputs[input as usize]
    }

    /// When [`Standby::tick`] has work: a failover, the slate's start, or
    /// the slate's next frame.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let now = Instant::now();
        match &self.active {
            Active::Slate(feed) => Some(feed.next_due()),
            Active::Input(input) => {
                let last = self.inputs[*input as usize].last?;
                let other = &self.inputs[input.other() as usize];
                let failover = other
                    .ready(now, self.rules.failover_after)
                    .then(|| last + self.rules.failover_after);
                let slate = self
                    .rules
                    .slate
                    .as_ref()
                    .filter(|_| !self.clip.failed)
                    .map(|s| last + s.after);
                failover.into_iter().chain(slate).min()
            }
        }
    }

    /// New tracks from an input (a reconnect, a changed config).
    pub(super) async fn tracks(
        &mut self,
        input: Input,
        info: Arc<MediaInfo>,
        stream: &mut Renditions,
    ) -> bool {
        let (now, after) = (Instant::now(), self.rules.failover_after);
        let w = self.watch(input);
        w.info = Some(info.clone());
        w.clear();
        w.splice = None;
        w.heard(now, after);
        if input == Input::Primary {
            self.failback_waited = false;
        }
        match self.active {
            Active::Input(a) if a == input => {
                self.served.clear();
                stream.tracks(info).await
            }
            // Announced when the input is cut in, at a keyframe.
            _ => true,
        }
    }

    /// A frame from an input.
    pub(super) async fn media(
        &mut self,
        input: Input,
        au: AccessUnit,
        stream: &mut Renditions,
    ) -> bool {
        let (now, after) = (Instant::now(), self.rules.failover_after);
        self.watch(input).heard(now, after);
        if matches!(self.active, Active::Input(a) if a == input) {
            return self.serve(input, au, stream).await;
        }
        self.watch(input).hold(au);
        if self.watch(input).held().is_empty() {
            return true;
        }
        // Why to switch now, and how the input continues the timeline.
        let switch = match &self.active {
            Active::Slate(_) => Some(("input_back", None)),
            Active::Input(Input::Backup) if input == Input::Primary => {
                let w = &self.inputs[0];
                let healthy = w.since.map(|t| now.duration_since(t));
                let due = self.rules.failback_after;
                if healthy.zip(due).is_none_or(|(h, d)| h < d) {
                    None
                } else if let Some(splice) = self.splice_of(Input::Primary) {
                    Some(("failback", Some(splice)))
                } else if w.at_keyframe() {
                    // At a keyframe with no splice (the primary may be a
                    // frame ahead of the backup): wait one GOP for one.
                    std::mem::replace(&mut self.failback_waited, true).then_some(("failback", None))
                } else {
                    None
                }
            }
            Active::Input(_) => None,
        };
        match switch {
            Some((reason, splice)) => self.switch_to(input, reason, splice, stream).await,
            None => true,
        }
    }

    /// Hand a frame of the active `input` to the renditions (moved onto
    /// the served clock after a seamless switch; skipped if served already).
    async fn serve(&mut self, input: Input, au: AccessUnit, stream: &mut Renditions) -> bool {
        let au = match &self.inputs[input as usize].splice {
            Some(s) => match s.map(au) {
                Some(au) => au,
                None => return true,
            },
            None => au,
        };
        self.served.note(&au);
        stream.media(au).await
    }

    /// How `input`'s held frames would continue what is served: only from
    /// another input with the same tracks whose frames match the bytes
    /// served (one encoder's two outputs).
    fn splice_of(&self, input: Input) -> Option<Splice> {
        let Active::Input(active) = self.active else {
            return None;
        };
        let (from, to) = (
            self.inputs[active as usize].info.as_deref()?,
            &self.inputs[input as usize],
        );
        let info = to.info.as_deref()?;
        if (&from.video, &from.audio) != (&info.video, &info.audio) {
            return None;
        }
        let rate = info.audio.as_ref().map(|a| a.sample_rate);
        self.served.splice(to.held(), rate)
    }

    /// Whether `input` is the one served now.
    pub(super) fn serves(&self, input: Input) -> bool {
        matches!(self.active, Active::Input(a) if a == input)
    }

    /// Whether the slate is on (a lost input's events are not a gap then).
    pub(super) fn on_slate(&self) -> bool {
        matches!(self.active, Active::Slate(_))
    }

    /// The deadline passed: fail over, start the slate, or hand on the
    /// slate's frames now due. `pending`: whether events wait in the
    /// stream's queue.
    pub(super) async fn tick(
        &mut self,
        stream: &mut Renditions,
        pending: impl Fn() -> bool,
    ) -> bool {
        let now = Instant::now();
        if let Active::Input(input) = self.active {
            let Some(last) = self.inputs[input as usize].last else {
                return true;
            };
            let silent = now.duration_since(last);
            let other = input.other();
            if silent >= self.rules.failover_after
                && self.inputs[other as usize].ready(now, self.rules.failover_after)
            {
                let splice = self.splice_of(other);
                return self.switch_to(other, "input_lost", splice, stream).await;
            }
            let slate_after = self.rules.slate.as_ref().map(|s| s.after);
            if slate_after.is_none_or(|a| silent < a) {
                return true;
            }
            let Some(clip) = self.clip(input).await else {
                return true;
            };
            // The slate's first clip is encoded on the spot (a healthy
            // stream never pays for it): events that came meanwhile are
            // read first, and if they are the input's, it was never gone
            // (a process starved of CPU for a moment, not a lost input; a
            // slate cut in there would put two discontinuities in the
            // stream for nothing).
            if pending() {
                return true;
            }
            tracing::warn!(stream = %self.label.stream, "no input: the slate runs until one comes back (or the reconnect grace ends)");
            self.count_switch("slate");
            self.served.clear();
            if !stream.tracks(Arc::new(clip.info.clone())).await {
                return false;
            }
            // The slate starts where the input stopped, so the timeline has
            // no hole: what it owes since then is handed out at once.
            let earliest = now.checked_sub(MAX_BACKDATE).unwrap_or(now);
            self.active = Active::Slate(Feed::new(clip, last.max(earliest)));
            self.show_active();
        }
        let Active::Slate(feed) = &mut self.active else {
            return true;
        };
        for au in feed.due(now) {
            if !stream.media(au).await {
                return false;
            }
        }
        true
    }

    /// Cut `input` in: with a `splice` ([`Standby::splice_of`]: its held
    /// frames carry what was served) they continue the timeline; otherwise
    /// its tracks start a new session and its held frames follow from the
    /// keyframe.
    async fn switch_to(
        &mut self,
        input: Input,
        reason: &'static str,
        splice: Option<Splice>,
        stream: &mut Renditions,
    ) -> bool {
        let now = Instant::now();
        if let Active::Slate(feed) = &self.active {
            let shown = feed.shown(now).as_secs_f64();
            self.metrics
                .slate_seconds
                .get_or_create(&self.label)
                .inc_by(shown);
        }
        let w = self.watch(input);
        let Some(info) = w.info.clone() else {
            return true;
        };
        let held = w.take(splice.is_none());
        w.splice = splice;
        let seamless = splice.is_some();
        tracing::info!(stream = %self.label.stream, input = input.label(), reason, seamless, "the stream switches input");
        self.active = Active::Input(input);
        self.failback_waited = false;
        self.count_switch(reason);
        self.show_active();
        if !seamless {
            self.served.clear();
            if !stream.tracks(info).await {
                return false;
            }
        }
        for au in held {
            if !self.serve(input, au, stream).await {
                return false;
            }
        }
        true
    }

    /// The stream ends: count the slate it was showing, drop its series.
    pub(super) fn end(&mut self) {
        if let Active::Slate(feed) = &self.active {
            let shown = feed.shown(Instant::now()).as_secs_f64();
            self.metrics
                .slate_seconds
                .get_or_create(&self.label)
                .inc_by(shown);
        }
        self.metrics.slate_seconds.remove(&self.label);
        for input in ["primary", "backup", "slate"] {
            self.metrics.input_active.remove(&self.input_label(input));
        }
    }

    fn input_label(&self, input: &str) -> InputLabel {
        InputLabel {
            stream: self.label.stream.clone(),
            input: input.to_string(),
        }
    }

    /// `castline_input_active{stream,input}`: 1 for the active one.
    fn show_active(&self) {
        let active = match &self.active {
            Active::Input(i) => i.label(),
            Active::Slate(_) => "slate",
        };
        for input in ["primary", "backup", "slate"] {
            let on = i64::from(input == active);
            self.metrics
                .input_active
                .get_or_create(&self.input_label(input))
                .set(on);
        }
    }

    fn count_switch(&self, reason: &'static str) {
        self.metrics
            .input_switches
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// The slate clip in the shape of `input`'s tracks (encoded now if no
    /// stream has it).
    async fn clip(&mut self, input: Input) -> Option<Arc<Clip>> {
        let settings = self.rules.slate.clone()?;
        let shape = Shape::of(self.inputs[input as usize].info.as_ref()?);
        if self.clip.shape != Some(shape) {
            self.clip = Clips {
                shape: Some(shape),
                ready: None,
                failed: false,
            };
        }
        if self.clip.ready.is_none() && !self.clip.failed {
            match crate::slate::shared(shape, settings.image.clone()).await {
                Ok(clip) => self.clip.ready = Some(clip),
                Err(e) => {
                    tracing::error!(stream = %self.label.stream, error = %e, "no slate for this stream");
                    self.clip.failed = true;
                }
            }
        }
        self.clip.ready.clone()
    }
}
