//! Registry of live streams and per-stream fan-out.
//!
//! A publisher [`Hub::claim`]s a stream name; every consumer (the packager
//! today, the transcoder's workers later) subscribes to the stream and gets
//! its own bounded queue. A consumer that falls behind loses the oldest events
//! (counted by the consumer) instead of making the publisher or the others wait.
//!
//! A publisher that drops without unpublishing leaves the stream open for a
//! grace period: reconnecting within it continues the same stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;

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
}

/// Called once for each new stream, before its publisher can send anything,
/// so consumers subscribed here see every event.
pub type OnNewStream = Box<dyn Fn(&Arc<HubStream>) + Send + Sync>;

pub struct Hub {
    streams: Mutex<HashMap<String, Arc<HubStream>>>,
    grace: Duration,
    on_new: OnNewStream,
}

pub struct HubStream {
    name: String,
    tx: broadcast::Sender<HubEvent>,
    state: Mutex<PublishState>,
}

#[derive(Debug, Default)]
struct PublishState {
    live: bool,
    /// Bumped on every claim so a stale grace timer knows it is stale.
    session: u64,
    ended: bool,
}

impl Hub {
    pub fn new(grace: Duration, on_new: OnNewStream) -> Arc<Hub> {
        Arc::new(Hub {
            streams: Mutex::new(HashMap::new()),
            grace,
            on_new,
        })
    }

    /// Become the publisher of `name`. Refused while another publisher is live;
    /// within the grace period after a drop, continues the same stream.
    pub fn claim(self: &Arc<Self>, name: &str) -> Result<Publisher, HubError> {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(stream) = streams.get(name) {
            let mut st = stream.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.live {
                return Err(HubError::AlreadyLive(name.to_string()));
            }
            st.live = true;
            st.session += 1;
            tracing::info!(
                stream = name,
                "publisher reconnected within the grace period; stream continues"
            );
            return Ok(Publisher {
                hub: self.clone(),
                stream: stream.clone(),
                session: st.session,
                finished: false,
            });
        }
        let (tx, _) = broadcast::channel(QUEUE_EVENTS);
        let stream = Arc::new(HubStream {
            name: name.to_string(),
            tx,
            state: Mutex::new(PublishState {
                live: true,
                session: 1,
                ended: false,
            }),
        });
        streams.insert(name.to_string(), stream.clone());
        (self.on_new)(&stream);
        Ok(Publisher {
            hub: self.clone(),
            stream,
            session: 1,
            finished: false,
        })
    }

    pub fn live_streams(&self) -> Vec<String> {
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
        let _ = stream.tx.send(HubEvent::End);
        tracing::info!(stream = %stream.name, "stream ended");
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
}

/// The right to publish one stream. Dropping it without [`Publisher::finish`]
/// is a network drop: the stream waits for a reconnect during the grace period.
pub struct Publisher {
    hub: Arc<Hub>,
    stream: Arc<HubStream>,
    session: u64,
    finished: bool,
}

impl Publisher {
    pub fn name(&self) -> &str {
        &self.stream.name
    }

    pub fn send_tracks(&self, info: MediaInfo) {
        let _ = self.stream.tx.send(HubEvent::Tracks(Arc::new(info)));
    }

    /// Never blocks: a consumer that is a full queue behind loses its oldest event.
    pub fn send_media(&self, au: AccessUnit) {
        let _ = self.stream.tx.send(HubEvent::Media(au));
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
            Duration::from_millis(grace_ms),
            Box::new(move |s| s2.lock().unwrap().push(s.subscribe())),
        );
        (hub, subs)
    }

    #[tokio::test]
    async fn second_publisher_is_refused_and_first_is_untouched() {
        let (hub, subs) = hub(50);
        let p1 = hub.claim("a").unwrap();
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
        assert_eq!(hub.live_streams(), vec!["a".to_string()]);
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
            hub.live_streams(),
            vec!["a".to_string()],
            "stale grace timer must not end it"
        );
        p2.finish();
        let mut rx = subs.lock().unwrap().pop().unwrap();
        assert!(matches!(rx.recv().await, Ok(HubEvent::End)));
        assert!(hub.live_streams().is_empty());
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
}
