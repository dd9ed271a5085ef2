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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};

use crate::media::{AccessUnit, MediaInfo};

/// Events per consumer queue: about 10 s of 30 fps video with 48 kHz audio.
pub const QUEUE_EVENTS: usize = 1024;

#[derive(Debug, Clone)]
pub enum HubEvent {
    /// The tracks from here on. A new publishing session (a reconnect) or a
    /// changed sequence header; timestamps may restart after it.
    Tracks(Arc<MediaInfo>),
    Media(AccessUnit),
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
    /// Milliseconds after `time_base` of the publisher's last input (one atomic
    /// store per frame, no lock).
    last_input: AtomicU64,
    /// Media bytes and access units received, for the ingest rates.
    bytes: AtomicU64,
    frames: AtomicU64,
    started: Instant,
}

/// One open stream as operators see it (`/api/v1/streams`).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamState {
    pub name: String,
    /// A publisher is connected (else the stream waits for a reconnect).
    pub live: bool,
    pub uptime: Duration,
}

#[derive(Debug, Default)]
struct PublishState {
    live: bool,
    /// Bumped on every claim so a stale grace timer knows it is stale.
    session: u64,
    ended: bool,
    /// Tells the live session's connection it was taken over.
    kick: Option<watch::Sender<bool>>,
    /// A claim is waiting for the takeover time ([`Hold`]).
    held: bool,
}

/// What [`Hub::claim_or_hold`] gives.
pub enum Claimed {
    Now(Publisher),
    /// Ask again with [`Hold::take`] at [`Hold::until`].
    Held(Hold),
}

/// A claim waiting for the live publisher's takeover time to pass. It holds
/// the stream's one waiting place until taken or dropped.
pub struct Hold {
    hub: Arc<Hub>,
    stream: Arc<HubStream>,
    until: Instant,
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
        let waiting: Vec<(Arc<HubStream>, u64)> = {
            let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
            streams
                .values()
                .filter_map(|s| {
                    let st = s.state.lock().unwrap_or_else(|e| e.into_inner());
                    (!st.live).then(|| (s.clone(), st.session))
                })
                .collect()
        };
        for (stream, session) in waiting {
            self.end(&stream, session);
        }
    }

    /// Close every live publisher's connection (its stream then ends at
    /// once, as [`Hub::start_draining`] arranged): the drain timeout passed.
    pub fn close_publishers(&self) {
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        for s in streams.values() {
            let mut st = s.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(kick) = st.kick.take() {
                tracing::info!(stream = %s.name, "draining: the publisher is disconnected");
                let _ = kick.send(true);
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
            .map(|s| StreamState {
                name: s.name.clone(),
                live: s.state.lock().unwrap_or_else(|e| e.into_inner()).live,
                uptime: s.started.elapsed(),
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
        match self.claim_inner(name, false)? {
            Claimed::Now(p) => Ok(p),
            Claimed::Held(_) => Err(HubError::AlreadyLive(name.to_string())),
        }
    }

    /// [`Hub::claim`], except that a claim refused only because the live
    /// publisher has not yet been silent for the takeover time is held
    /// until it has (one such claim per stream; a second is refused).
    pub fn claim_or_hold(self: &Arc<Self>, name: &str) -> Result<Claimed, HubError> {
        self.claim_inner(name, true)
    }

    fn claim_inner(self: &Arc<Self>, name: &str, hold: bool) -> Result<Claimed, HubError> {
        if self.is_draining() {
            return Err(HubError::Draining);
        }
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(stream) = streams.get(name) {
            let mut st = stream.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.live {
                let silent = stream.silent_for();
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
                        until: Instant::now() + wait,
                    }));
                }
                if let Some(kick) = st.kick.take() {
                    let _ = kick.send(true);
                }
                tracing::warn!(stream = name, silent = ?silent, "the live publisher sent nothing for too long; a new connection takes the stream over");
            } else {
                tracing::info!(
                    stream = name,
                    "publisher reconnected within the grace period; stream continues"
                );
            }
            st.live = true;
            st.session += 1;
            let (kick, kicked) = watch::channel(false);
            st.kick = Some(kick);
            stream.touch();
            return Ok(Claimed::Now(Publisher {
                hub: self.clone(),
                stream: stream.clone(),
                session: st.session,
                finished: false,
                kicked,
                window: QueueWindow::default(),
            }));
        }
        let (tx, _) = broadcast::channel(QUEUE_EVENTS);
        let (kick, kicked) = watch::channel(false);
        let stream = Arc::new(HubStream {
            name: name.to_string(),
            tx,
            state: Mutex::new(PublishState {
                live: true,
                session: 1,
                ended: false,
                kick: Some(kick),
                held: false,
            }),
            time_base: self.time_base,
            last_input: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            started: Instant::now(),
        });
        stream.touch();
        streams.insert(name.to_string(), stream.clone());
        (self.on_new)(&stream);
        Ok(Claimed::Now(Publisher {
            hub: self.clone(),
            stream,
            session: 1,
            finished: false,
            kicked,
            window: QueueWindow::default(),
        }))
    }

    /// Whether [`Hub::claim_or_hold`] of `name` would be refused now,
    /// without claiming: for a protocol that must answer before its caller
    /// is authenticated (SRT decides in the handshake, the passphrase after).
    pub fn check_claim(&self, name: &str) -> Result<(), HubError> {
        if self.is_draining() {
            return Err(HubError::Draining);
        }
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(stream) = streams.get(name) {
            let st = stream.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.live && st.held && stream.silent_for() < self.takeover_after {
                return Err(HubError::TakeoverPending(name.to_string()));
            }
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

    fn end(&self, stream: &Arc<HubStream>, session: u64) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        {
            let mut st = stream.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.session != session || st.live || st.ended {
                return; // someone reconnected, or it already ended
            }
            st.ended = true;
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

impl Hold {
    /// When to [`Hold::take`].
    pub fn until(&self) -> Instant {
        self.until
    }

    /// Claim again: taken over if the live publisher stayed silent for the
    /// takeover time, refused if it spoke again (or the server drains).
    pub fn take(self) -> Result<Publisher, HubError> {
        let (hub, name) = (self.hub.clone(), self.stream.name.clone());
        drop(self); // frees the stream's waiting place
        match hub.claim_inner(&name, false) {
            Ok(Claimed::Now(p)) => Ok(p),
            Ok(Claimed::Held(_)) | Err(HubError::AlreadyLive(_)) => {
                Err(HubError::StillSending(name))
            }
            Err(e) => Err(e),
        }
    }

    /// Wait for [`Hold::until`], then [`Hold::take`].
    pub async fn wait(self) -> Result<Publisher, HubError> {
        tokio::time::sleep_until(self.until.into()).await;
        self.take()
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut st = self.stream.state.lock().unwrap_or_else(|e| e.into_inner());
        st.held = false;
    }
}

impl HubStream {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new bounded queue of this stream's events.
    pub fn subscribe(&self) -> broadcast::Receiver<HubEvent> {
        self.tx.subscribe()
    }

    fn touch(&self) {
        let ms = self.time_base.elapsed().as_millis() as u64;
        self.last_input.store(ms, Ordering::Relaxed);
    }

    /// How long the publisher has sent nothing.
    fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_input.load(Ordering::Relaxed));
        self.time_base.elapsed().saturating_sub(last)
    }
}

/// The right to publish one stream. Dropping it without [`Publisher::finish`]
/// is a network drop: the stream waits for a reconnect during the grace period.
pub struct Publisher {
    hub: Arc<Hub>,
    stream: Arc<HubStream>,
    session: u64,
    finished: bool,
    kicked: watch::Receiver<bool>,
    window: QueueWindow,
}

/// The sizes of a publisher's last [`QUEUE_EVENTS`] frames: what its
/// stream's ring can hold at most.
#[derive(Debug, Default)]
struct QueueWindow {
    sizes: std::collections::VecDeque<usize>,
    bytes: usize,
}

impl QueueWindow {
    fn push(&mut self, size: usize) -> usize {
        self.sizes.push_back(size);
        self.bytes += size;
        if self.sizes.len() > QUEUE_EVENTS {
            self.bytes -= self.sizes.pop_front().unwrap_or(0);
        }
        self.bytes
    }
}

impl Publisher {
    /// This publisher continues a stream the hub already held: a reconnect
    /// within the grace period, or a takeover of a silent publisher.
    pub fn resumes(&self) -> bool {
        self.session > 1
    }

    pub fn name(&self) -> &str {
        &self.stream.name
    }

    pub fn send_tracks(&self, info: MediaInfo) {
        self.stream.touch();
        let _ = self.stream.tx.send(HubEvent::Tracks(Arc::new(info)));
    }

    /// Never blocks: a consumer that is a full queue behind loses its oldest
    /// event. Refused when the publisher's recent frames would make the
    /// stream's queue hold more than the byte budget (absurdly large frames).
    pub fn send_media(&mut self, au: AccessUnit) -> Result<(), HubError> {
        let held = self.window.push(au.data.len());
        if held > self.hub.max_queue_bytes {
            return Err(HubError::QueueBytes {
                events: self.window.sizes.len(),
                held,
                limit: self.hub.max_queue_bytes,
            });
        }
        self.stream.touch();
        let len = au.data.len() as u64;
        self.stream.bytes.fetch_add(len, Ordering::Relaxed);
        self.stream.frames.fetch_add(1, Ordering::Relaxed);
        let _ = self.stream.tx.send(HubEvent::Media(au));
        Ok(())
    }

    /// Resolves when a new connection has taken this stream over: the
    /// connection holding this publisher should then close.
    pub async fn taken_over(&mut self) {
        let _ = self.kicked.wait_for(|k| *k).await;
    }

    /// The publisher unpublished deliberately: end the stream now.
    pub fn finish(mut self) {
        self.finished = true;
        self.release();
        self.hub.end(&self.stream, self.session);
    }

    fn release(&self) {
        let mut st = self.stream.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.session == self.session {
            st.live = false;
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.release();
        let (hub, stream, session) = (self.hub.clone(), self.stream.clone(), self.session);
        if hub.is_draining() {
            // Its reconnect goes to another instance: end the stream now.
            hub.end(&stream, session);
            return;
        }
        tracing::info!(stream = %stream.name, grace = ?hub.grace, "publisher dropped; waiting for a reconnect");
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    tokio::time::sleep(hub.grace).await;
                    hub.end(&stream, session);
                });
            }
            Err(_) => hub.end(&stream, session),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Subscribers = Arc<Mutex<Vec<broadcast::Receiver<HubEvent>>>>;

    fn hub(grace_ms: u64) -> (Arc<Hub>, Subscribers) {
        let subs = Arc::new(Mutex::new(Vec::new()));
        let s2 = subs.clone();
        let hub = Hub::new(
            HubLimits {
                grace: Duration::from_millis(grace_ms),
                takeover_after: Duration::from_millis(100),
                max_queue_bytes: 10_000,
            },
            Box::new(move |s| s2.lock().unwrap().push(s.subscribe())),
        );
        (hub, subs)
    }

    #[tokio::test]
    async fn second_publisher_is_refused_and_first_is_untouched() {
        let (hub, subs) = hub(50);
        assert_eq!(hub.check_claim("a"), Ok(()));
        let p1 = hub.claim("a").unwrap();
        assert_eq!(
            hub.check_claim("a"),
            Ok(()),
            "may wait for the takeover time"
        );
        assert_eq!(
            hub.claim("a").err(),
            Some(HubError::AlreadyLive("a".into()))
        );
        p1.send_tracks(MediaInfo {
            video: None,
            audio: None,
            declared_bitrate: None,
        });
        let mut rx = subs.lock().unwrap().pop().unwrap();
        assert!(matches!(rx.recv().await, Ok(HubEvent::Tracks(_))));
        assert_eq!(hub.open_stream_names(), vec!["a".to_string()]);
    }

    #[tokio::test]
    async fn reconnect_within_grace_continues_the_same_stream() {
        let (hub, subs) = hub(200);
        let p1 = hub.claim("a").unwrap();
        drop(p1);
        let p2 = hub.claim("a").unwrap();
        assert_eq!(subs.lock().unwrap().len(), 1, "no new stream was created");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            hub.open_stream_names(),
            vec!["a".to_string()],
            "stale grace timer must not end it"
        );
        p2.finish();
        let mut rx = subs.lock().unwrap().pop().unwrap();
        assert!(matches!(rx.recv().await, Ok(HubEvent::End)));
        assert!(hub.open_stream_names().is_empty());
    }

    #[tokio::test]
    async fn drop_without_reconnect_ends_after_grace() {
        let (hub, subs) = hub(50);
        drop(hub.claim("a").unwrap());
        let mut rx = subs.lock().unwrap().pop().unwrap();
        let ev = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .unwrap();
        assert!(matches!(ev, Ok(HubEvent::End)));
        // A new publish after the end is a new stream.
        let _p = hub.claim("a").unwrap();
        assert_eq!(subs.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_silent_live_publisher_is_taken_over_and_told_so() {
        let (hub, subs) = hub(5000);
        let mut p1 = hub.claim("a").unwrap();
        // Still sending: protected.
        p1.send_tracks(MediaInfo {
            video: None,
            audio: None,
            declared_bitrate: None,
        });
        assert!(hub.claim("a").is_err());
        // Silent past the takeover time (100 ms here): taken over.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let p2 = hub.claim("a").unwrap();
        tokio::time::timeout(Duration::from_secs(1), p1.taken_over())
            .await
            .expect("the old publisher is told");
        assert_eq!(subs.lock().unwrap().len(), 1, "the same stream continues");
        // The old publisher going away does not end or free the stream.
        drop(p1);
        assert!(hub.claim("a").is_err(), "p2 is live");
        p2.finish();
    }

    #[tokio::test]
    async fn a_held_claim_takes_over_once_the_live_publisher_stayed_silent() {
        let (hub, subs) = hub(5000);
        let mut p1 = hub.claim("a").unwrap();
        let Ok(Claimed::Held(hold)) = hub.claim_or_hold("a") else {
            panic!("the claim is held")
        };
        // One waits; the next is refused at once, in the handshake too.
        assert!(matches!(
            hub.claim_or_hold("a"),
            Err(HubError::TakeoverPending(_))
        ));
        assert_eq!(
            hub.check_claim("a"),
            Err(HubError::TakeoverPending("a".into()))
        );
        let p2 = tokio::time::timeout(Duration::from_secs(1), hold.wait())
            .await
            .expect("waits the takeover time, no more")
            .expect("takes over");
        tokio::time::timeout(Duration::from_secs(1), p1.taken_over())
            .await
            .expect("the old publisher is told");
        assert_eq!(subs.lock().unwrap().len(), 1, "the same stream continues");
        assert_eq!(hub.check_claim("a"), Ok(()), "the waiting place is free");
        p2.finish();
    }

    #[tokio::test]
    async fn a_held_claim_is_refused_when_the_live_publisher_speaks_again() {
        let (hub, _subs) = hub(5000);
        let p1 = hub.claim("a").unwrap();
        let Ok(Claimed::Held(hold)) = hub.claim_or_hold("a") else {
            panic!("the claim is held")
        };
        tokio::time::sleep(Duration::from_millis(60)).await;
        p1.send_tracks(MediaInfo {
            video: None,
            audio: None,
            declared_bitrate: None,
        });
        assert_eq!(
            hold.wait().await.err(),
            Some(HubError::StillSending("a".into()))
        );
        // A dropped hold frees the waiting place too.
        let Ok(Claimed::Held(hold)) = hub.claim_or_hold("a") else {
            panic!("the claim is held")
        };
        drop(hold);
        assert!(matches!(hub.claim_or_hold("a"), Ok(Claimed::Held(_))));
    }

    #[tokio::test]
    async fn a_publisher_whose_frames_would_overfill_the_queue_budget_is_refused() {
        let (hub, _subs) = hub(50);
        let mut p = hub.claim("a").unwrap();
        let frame = |n: usize| AccessUnit {
            track: crate::media::TrackKind::Video,
            dts: 0,
            pts: 0,
            keyframe: true,
            data: bytes::Bytes::from(vec![0u8; n]),
            received: std::time::Instant::now(),
        };
        // 9 KB within the 10 KB budget, then one more frame past it.
        for _ in 0..9 {
            p.send_media(frame(1000)).unwrap();
        }
        assert!(matches!(
            p.send_media(frame(2000)),
            Err(HubError::QueueBytes { limit: 10_000, .. })
        ));
        // Small frames long after do not add up: only the last QUEUE_EVENTS count.
        let mut q = hub.claim("b").unwrap();
        for _ in 0..(QUEUE_EVENTS * 3) {
            q.send_media(frame(9)).unwrap();
        }
    }

    fn ended(rx: &mut broadcast::Receiver<HubEvent>) -> bool {
        std::iter::from_fn(|| rx.try_recv().ok()).any(|e| matches!(e, HubEvent::End))
    }

    #[tokio::test]
    async fn draining_refuses_new_publishers_and_ends_streams_without_grace() {
        let (hub, subs) = hub(60_000);
        let live = hub.claim("live").unwrap();
        let waiting = hub.claim("waiting").unwrap();
        drop(waiting); // a network drop: waits a minute for a reconnect
        assert_eq!(hub.open_streams(), 2);
        hub.start_draining();
        assert_eq!(hub.claim("new").err(), Some(HubError::Draining));
        assert_eq!(hub.check_claim("new"), Err(HubError::Draining));
        assert_eq!(hub.claim("waiting").err(), Some(HubError::Draining));
        // The stream waiting for its publisher ended at once.
        assert_eq!(hub.open_stream_names(), ["live"]);
        assert!(ended(&mut subs.lock().unwrap()[1]));
        // The live one goes on until its publisher drops: then no grace.
        assert!(!ended(&mut subs.lock().unwrap()[0]));
        let mut live = live;
        let kicked = tokio::time::timeout(Duration::from_millis(50), live.taken_over()).await;
        assert!(kicked.is_err(), "not disconnected before the drain timeout");
        hub.close_publishers();
        tokio::time::timeout(Duration::from_secs(1), live.taken_over())
            .await
            .expect("told to disconnect");
        let closed = tokio::spawn({
            let hub = hub.clone();
            async move { hub.all_closed().await }
        });
        tokio::task::yield_now().await;
        assert!(!closed.is_finished(), "a stream is still open");
        drop(live);
        assert!(ended(&mut subs.lock().unwrap()[0]));
        assert_eq!(hub.open_streams(), 0);
        tokio::time::timeout(Duration::from_secs(1), closed)
            .await
            .expect("all_closed resolves when the last stream ends")
            .unwrap();
    }
}
