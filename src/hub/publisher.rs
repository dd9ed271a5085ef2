//! The right to publish one input of a stream, held by its connection.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use super::{Hub, HubError, HubEvent, HubStream, Input, Kick, QUEUE_EVENTS};
use crate::media::{AccessUnit, MediaInfo};

/// The right to publish one stream. Dropping it without [`Publisher::finish`]
/// is a network drop: the stream waits for a reconnect during the grace period.
pub struct Publisher {
    hub: Arc<Hub>,
    stream: Arc<HubStream>,
    input: Input,
    session: u64,
    finished: bool,
    kicked: watch::Receiver<Option<Kick>>,
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
    /// Session `session` of `stream`'s `input`, told to close through `kicked`.
    pub(super) fn new(
        hub: Arc<Hub>,
        stream: Arc<HubStream>,
        input: Input,
        session: u64,
        kicked: watch::Receiver<Option<Kick>>,
    ) -> Publisher {
        Publisher {
            hub,
            stream,
            input,
            session,
            finished: false,
            kicked,
            window: QueueWindow::default(),
        }
    }

    /// This publisher continues a stream the hub already held: a reconnect
    /// within the grace period, or a takeover of a silent publisher.
    pub fn resumes(&self) -> bool {
        self.input == Input::Primary && self.session > 1
    }

    /// Which input this publisher feeds.
    pub fn input(&self) -> Input {
        self.input
    }

    pub fn name(&self) -> &str {
        &self.stream.name
    }

    pub fn send_tracks(&self, info: MediaInfo) {
        self.stream.touch(self.input);
        let _ = self
            .stream
            .tx
            .send(HubEvent::Tracks(self.input, Arc::new(info)));
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
        self.stream.touch(self.input);
        let len = au.data.len() as u64;
        self.stream.bytes.fetch_add(len, Ordering::Relaxed);
        self.stream.frames.fetch_add(1, Ordering::Relaxed);
        let _ = self.stream.tx.send(HubEvent::Media(self.input, au));
        Ok(())
    }

    /// Resolves when the connection holding this publisher should close
    /// (a new connection took the stream over, the stream ended, the server
    /// drains, or the stream is live elsewhere), and says why.
    pub async fn taken_over(&mut self) -> Kick {
        match self.kicked.wait_for(|k| k.is_some()).await {
            Ok(k) => k.unwrap_or(Kick::Closed),
            // The hub let go of the stream.
            Err(_) => Kick::Closed,
        }
    }

    /// The publisher unpublished deliberately. The primary's unpublish
    /// ends the stream now (the broadcast is over; a backup still connected
    /// is told to close); a backup's is a drop like any other.
    pub fn finish(mut self) {
        if self.input == Input::Backup {
            return; // dropped: Drop releases it and starts its grace timer
        }
        self.finished = true;
        self.release();
        self.hub.end_now(&self.stream);
    }

    fn release(&self) {
        let mut st = self.stream.state.lock().unwrap_or_else(|e| e.into_inner());
        let input = &mut st.inputs[self.input.index()];
        if input.session == self.session {
            input.live = false;
            input.dropped = Some(Instant::now());
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
        let input = self.input;
        if hub.is_draining() {
            // Its reconnect goes to another instance: end the stream now,
            // unless the other input still carries it.
            let other_live = {
                let st = stream.state.lock().unwrap_or_else(|e| e.into_inner());
                st.inputs[input.other().index()].live
            };
            if !other_live {
                hub.end_now(&stream);
            }
            return;
        }
        tracing::info!(stream = %stream.name, input = input.label(), grace = ?hub.grace, "publisher dropped; waiting for a reconnect");
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    tokio::time::sleep(hub.grace).await;
                    hub.end_after_grace(&stream, input, session);
                });
            }
            Err(_) => hub.end_after_grace(&stream, input, session),
        }
    }
}
