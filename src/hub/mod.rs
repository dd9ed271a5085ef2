//! Registry of live streams and per-stream fan-out.
//!
//! A publisher [`Hub::claim`]s a stream name; every consumer (the packager
//! today, the transcoder's workers later) subscribes to the stream and gets
//! its own bounded queue. A consumer that falls behind loses the oldest events
//! (counted by the consumer) instead of making the publisher or the others wait.
//!
//! A publisher that drops without unpublishing leaves the stream open for a
//! grace period: reconnecting within it continues the same stream. A
//! publisher whose connection is still open but has sent nothing for the
//! takeover time (an encoder that moved network, a half-dead socket) is
//! taken over by a new claim of the same name, and told to close. A claim
//! that comes sooner is held ([`Hub::claim_or_hold`]) until the takeover
//! time has passed, then takes over, or is refused if the live publisher
//! spoke again meanwhile; one claim per stream may wait so.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};

use crate::media::{AccessUnit, MediaInfo};

mod hold;
mod publisher;

pub use hold::{Claimed, Hold};
pub use publisher::Publisher;

/// Events per consumer queue: about 10 s of 30 fps video with 48 kHz audio.
pub const QUEUE_EVENTS: usize = 1024;

/// Which of a stream's two inputs a publisher feeds: the primary, or a
/// backup (`?backup=1`) kept ready to take over when the primary fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Input {
    Primary,
    Backup,
}

impl Input {
    fn index(self) -> usize {
        self as usize
    }

    /// The other one.
    pub fn other(self) -> Input {
        match self {
            Input::Primary => Input::Backup,
            Input::Backup => Input::Primary,
        }
    }

    /// Its name in metrics, logs and the API.
    pub fn label(self) -> &'static str {
        match self {
            Input::Primary => "primary",
            Input::Backup => "backup",
        }
    }
}

#[derive(Debug, Clone)]
pub enum HubEvent {
    /// An input's tracks from here on. A new publishing session (a
    /// reconnect) or a changed sequence header; its timestamps may restart
    /// after it.
    Tracks(Input, Arc<MediaInfo>),
    Media(Input, AccessUnit),
    /// The stream ended for good.
    End,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HubError {
    #[error("stream {0:?} already has a live publisher")]
    AlreadyLive(String),
    #[error("stream {0:?} already has a live publisher, and it sent media again while this publish waited to take over")]
    StillSending(String),
    #[error(
        "stream {0:?} already has a live publisher, and another publish is waiting to take it over"
    )]
    TakeoverPending(String),
    #[error(
        "stream {0:?} has no primary publisher: a backup (?backup=1) joins a stream that is live"
    )]
    NoPrimary(String),
    #[error("the server is draining (shutting down): publish to another instance")]
    Draining,
    #[error("the publisher's last {events} frames hold {held} bytes, over the {limit}-byte queue budget")]
    QueueBytes {
        events: usize,
        held: usize,
        limit: usize,
    },
}

/// The hub's rules, from config.
#[derive(Debug, Clone, Copy)]
pub struct HubLimits {
    /// How long a dropped publisher may take to come back.
    pub grace: Duration,
    /// How long a live publisher may stay silent before a new claim of its
    /// name takes over.
    pub takeover_after: Duration,
    /// Bytes the last [`QUEUE_EVENTS`] frames of one publisher may hold: the
    /// most a stream's queue can hold, whatever its consumers do.
    pub max_queue_bytes: usize,
}

/// Called once for each new stream, before its publisher can send anything,
/// so consumers subscribed here see every event.
pub type OnNewStream = Box<dyn Fn(&Arc<HubStream>) + Send + Sync>;

pub struct Hub {
    streams: Mutex<HashMap<String, Arc<HubStream>>>,
    grace: Duration,
    takeover_after: Duration,
    max_queue_bytes: usize,
    on_new: OnNewStream,
    /// The clock `HubStream::last_input` counts from.
    time_base: Instant,
    /// Set by [`Hub::start_draining`]: no new publishers, no reconnect grace.
    draining: AtomicBool,
    /// Notified each time a stream ends (for [`Hub::all_closed`]).
    closed: tokio::sync::Notify,
}

pub struct HubStream {
    name: String,
    tx: broadcast::Sender<HubEvent>,
    state: Mutex<PublishState>,
    time_base: Instant,
    /// Milliseconds after `time_base` of each input's last frame (one
    /// atomic store per frame, no lock).
    last_input: [AtomicU64; 2],
    /// Media bytes and access units received, for the ingest rates.
    bytes: AtomicU64,
    frames: AtomicU64,
    started: Instant,
    /// The hub, to end the stream from its pipeline.
    hub: Weak<Hub>,
}

/// One open stream as operators see it (`/api/v1/streams`).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamState {
    pub name: String,
    /// A publisher is connected (else the stream waits for a reconnect).
    pub live: bool,
    /// A backup publisher is connected.
    pub backup_live: bool,
    pub uptime: Duration,
}

#[derive(Debug, Default)]
struct PublishState {
    /// The primary's and the backup's.
    inputs: [InputState; 2],
    ended: bool,
}

#[derive(Debug, Default)]
struct InputState {
    live: bool,
    /// Bumped on every claim so a stale grace timer knows it is stale.
    session: u64,
    /// When its publisher dropped (for the other input's grace timer).
    dropped: Option<Instant>,
    /// Tells the live session's connection to close, and why.
    kick: Option<watch::Sender<Option<Kick>>>,
    /// A claim is waiting for the takeover time ([`Hold`]).
    held: bool,
}

impl PublishState {
    fn any_live(&self) -> bool {
        self.inputs.iter().any(|i| i.live)
    }
}

/// Why a publisher's connection is told to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// Another connection took its input over, the stream ended (its
    /// primary unpublished), or the server drains.
    Closed,
    /// Another ingest pod already feeds the stream's session on the
    /// origins: this pod's publish of it is refused.
    LiveElsewhere,
}

impl Hub {
    pub fn new(limits: HubLimits, on_new: OnNewStream) -> Arc<Hub> {
        Arc::new(Hub {
            streams: Mutex::new(HashMap::new()),
            grace: limits.grace,
            takeover_after: limits.takeover_after,
            max_queue_bytes: limits.max_queue_bytes,
            on_new,
            time_base: Instant::now(),
            closed: tokio::sync::Notify::new(),
            draining: AtomicBool::new(false),
        })
    }

    /// The server is shutting down: refuse every new claim, end a stream at
    /// once when its publisher drops (it would reconnect elsewhere), and end
    /// now the streams already waiting for a reconnect.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
        let waiting: Vec<Arc<HubStream>> = {
            let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
            streams
                .values()
                .filter_map(|s| {
                    let st = s.state.lock().unwrap_or_else(|e| e.into_inner());
                    (!st.any_live()).then(|| s.clone())
                })
                .collect()
        };
        for stream in waiting {
            self.end_now(&stream);
        }
    }

    /// Close every live publisher's connection (its stream then ends at
    /// once, as [`Hub::start_draining`] arranged): the drain timeout passed.
    pub fn close_publishers(&self) {
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        for s in streams.values() {
            let mut st = s.state.lock().unwrap_or_else(|e| e.into_inner());
            for input in st.inputs.iter_mut() {
                if let Some(kick) = input.kick.take() {
                    tracing::info!(stream = %s.name, "draining: the publisher is disconnected");
                    let _ = kick.send(Some(Kick::Closed));
                }
            }
        }
    }

    /// (name, media bytes, access units) received so far, per open stream.
    pub fn ingest_counts(&self) -> Vec<(String, u64, u64)> {
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        streams
            .values()
            .map(|s| {
                let (b, f) = (&s.bytes, &s.frames);
                (
                    s.name.clone(),
                    b.load(Ordering::Relaxed),
                    f.load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// Every open stream, by name.
    pub fn states(&self) -> Vec<StreamState> {
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<StreamState> = streams
            .values()
            .map(|s| {
                let st = s.state.lock().unwrap_or_else(|e| e.into_inner());
                StreamState {
                    name: s.name.clone(),
                    live: st.inputs[Input::Primary.index()].live,
                    backup_live: st.inputs[Input::Backup.index()].live,
                    uptime: s.started.elapsed(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Streams with a publisher or waiting for one to reconnect.
    pub fn open_streams(&self) -> usize {
        self.streams.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Resolves once no stream is open (none published, none waiting for
    /// a reconnect).
    pub async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            if self.open_streams() == 0 {
                return;
            }
            closed.await;
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Become the publisher of `name`. Refused while another publisher is live
    /// and sending; a live publisher silent for the takeover time is taken
    /// over; within the grace period after a drop, continues the same stream.
    pub fn claim(self: &Arc<Self>, name: &str) -> Result<Publisher, HubError> {
        match self.claim_inner(name, Input::Primary, false)? {
            Claimed::Now(p) => Ok(p),
            Claimed::Held(_) => Err(HubError::AlreadyLive(name.to_string())),
        }
    }

    /// [`Hub::claim`], except that a claim refused only because the live
    /// publisher has not yet been silent for the takeover time is held
    /// until it has (one such claim per stream; a second is refused).
    /// The same rules apply to each input; a backup joins only a stream
    /// that is open (its primary live, or waiting for a reconnect).
    pub fn claim_or_hold(self: &Arc<Self>, name: &str, input: Input) -> Result<Claimed, HubError> {
        self.claim_inner(name, input, true)
    }

    fn claim_inner(
        self: &Arc<Self>,
        name: &str,
        input: Input,
        hold: bool,
    ) -> Result<Claimed, HubError> {
        if self.is_draining() {
            return Err(HubError::Draining);
        }
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(stream) = streams.get(name) {
            let mut guard = stream.state.lock().unwrap_or_else(|e| e.into_inner());
            let st = &mut guard.inputs[input.index()];
            if st.live {
                let silent = stream.silent_for(input);
                if silent < self.takeover_after {
                    if !hold {
                        return Err(HubError::AlreadyLive(name.to_string()));
                    }
                    if st.held {
                        return Err(HubError::TakeoverPending(name.to_string()));
                    }
                    st.held = true;
                    let wait = self.takeover_after - silent;
                    tracing::info!(
                        stream = name,
                        ?wait,
                        "a new publish waits for the live publisher's takeover time"
                    );
                    return Ok(Claimed::Held(Hold {
                        hub: self.clone(),
                        stream: stream.clone(),
                        input,
                        until: Instant::now() + wait,
                    }));
                }
                if let Some(kick) = st.kick.take() {
                    let _ = kick.send(Some(Kick::Closed));
                }
                tracing::warn!(stream = name, input = input.label(), silent = ?silent, "the live publisher sent nothing for too long; a new connection takes the stream over");
            } else if st.session > 0 {
                tracing::info!(
                    stream = name,
                    input = input.label(),
                    "publisher reconnected within the grace period; stream continues"
                );
            } else {
                tracing::info!(stream = name, "a backup input joins the stream");
            }
            st.live = true;
            st.session += 1;
            st.dropped = None;
            let (kick, kicked) = watch::channel(None);
            st.kick = Some(kick);
            stream.touch(input);
            return Ok(Claimed::Now(Publisher::new(
                self.clone(),
                stream.clone(),
                input,
                st.session,
                kicked,
            )));
        }
        if input == Input::Backup {
            return Err(HubError::NoPrimary(name.to_string()));
        }
        let (tx, _) = broadcast::channel(QUEUE_EVENTS);
        let (kick, kicked) = watch::channel(None);
        let mut state = PublishState::default();
        state.inputs[Input::Primary.index()] = InputState {
            live: true,
            session: 1,
            kick: Some(kick),
            ..Default::default()
        };
        let stream = Arc::new(HubStream {
            name: name.to_string(),
            tx,
            state: Mutex::new(state),
            time_base: self.time_base,
            last_input: [AtomicU64::new(0), AtomicU64::new(0)],
            bytes: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            started: Instant::now(),
            hub: Arc::downgrade(self),
        });
        stream.touch(Input::Primary);
        streams.insert(name.to_string(), stream.clone());
        (self.on_new)(&stream);
        Ok(Claimed::Now(Publisher::new(
            self.clone(),
            stream,
            Input::Primary,
            1,
            kicked,
        )))
    }

    /// Whether [`Hub::claim_or_hold`] of `name` would be refused now,
    /// without claiming: for a protocol that must answer before its caller
    /// is authenticated (SRT decides in the handshake, the passphrase after).
    pub fn check_claim(&self, name: &str, input: Input) -> Result<(), HubError> {
        if self.is_draining() {
            return Err(HubError::Draining);
        }
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        match streams.get(name) {
            Some(stream) => {
                let guard = stream.state.lock().unwrap_or_else(|e| e.into_inner());
                let st = &guard.inputs[input.index()];
                if st.live && st.held && stream.silent_for(input) < self.takeover_after {
                    return Err(HubError::TakeoverPending(name.to_string()));
                }
            }
            None if input == Input::Backup => return Err(HubError::NoPrimary(name.to_string())),
            None => {}
        }
        Ok(())
    }

    /// The names of the open streams (with a publisher, or waiting for one
    /// to reconnect), sorted.
    pub fn open_stream_names(&self) -> Vec<String> {
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = streams.keys().cloned().collect();
        names.sort();
        names
    }

    /// `input`'s session `session` dropped a grace period ago: end the
    /// stream, unless that input came back, or the other input carries it
    /// (or dropped more recently: its own timer decides).
    fn end_after_grace(&self, stream: &Arc<HubStream>, input: Input, session: u64) {
        {
            let st = stream.state.lock().unwrap_or_else(|e| e.into_inner());
            let this = &st.inputs[input.index()];
            let other = &st.inputs[input.other().index()];
            if this.session != session || this.live || st.ended {
                return; // it reconnected, or the stream already ended
            }
            let other_waits = other.dropped.is_some_and(|t| t.elapsed() < self.grace);
            if other.live || other_waits {
                return;
            }
        }
        self.end_now(stream);
    }

    /// End the stream now (its primary unpublished, or the server drains):
    /// every input still connected is told to close.
    fn end_now(&self, stream: &Arc<HubStream>) {
        self.end_with(stream, Kick::Closed);
    }

    /// End the stream now, telling every input still connected why.
    fn end_with(&self, stream: &Arc<HubStream>, why: Kick) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        {
            let mut st = stream.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.ended {
                return;
            }
            st.ended = true;
            for input in st.inputs.iter_mut() {
                input.live = false;
                if let Some(kick) = input.kick.take() {
                    let _ = kick.send(Some(why));
                }
            }
        }
        if streams
            .get(&stream.name)
            .is_some_and(|s| Arc::ptr_eq(s, stream))
        {
            streams.remove(&stream.name);
        }
        drop(streams);
        self.closed.notify_waiters();
        let _ = stream.tx.send(HubEvent::End);
        tracing::info!(stream = %stream.name, "stream ended");
    }
}

impl HubStream {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// End the stream now: its session is live on another ingest pod, so
    /// this pod's publish is refused. Its connections are told so
    /// ([`Kick::LiveElsewhere`]) and close; the encoder may try again.
    pub fn refuse_live_elsewhere(self: &Arc<Self>) {
        if let Some(hub) = self.hub.upgrade() {
            hub.end_with(self, Kick::LiveElsewhere);
        }
    }

    /// A new bounded queue of this stream's events.
    pub fn subscribe(&self) -> broadcast::Receiver<HubEvent> {
        self.tx.subscribe()
    }

    fn touch(&self, input: Input) {
        let ms = self.time_base.elapsed().as_millis() as u64;
        self.last_input[input.index()].store(ms, Ordering::Relaxed);
    }

    /// How long `input`'s publisher has sent nothing.
    fn silent_for(&self, input: Input) -> Duration {
        let last = self.last_input[input.index()].load(Ordering::Relaxed);
        self.time_base
            .elapsed()
            .saturating_sub(Duration::from_millis(last))
    }
}

#[cfg(test)]
mod tests;
