//! One RTMP connection after its handshake, sans-IO as `rml_rtmp`'s own
//! session is: bytes in, the bytes to send back out, and the publish they
//! drive through the hub (authorisation, admission, capacity, the hub's
//! claim, the RTMP status codes, demuxed media). The socket, its timeouts
//! and a takeover live in [`super::connection`]; this is tested without one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};

use super::close_stream::CloseStreamWatch;
use super::connection::{IngestContext, RtmpError};
use super::demux::{DemuxEvent, Demuxer};
use crate::hub::{Claimed, Hold, HubError, Publisher};
use crate::ingest::admission::{PendingSlot, PublisherSlot};

/// The session failed: send `reply` (what the client should read first,
/// such as the rejection's status), then close with `error`.
#[derive(Debug)]
pub struct Refused {
    pub reply: Vec<u8>,
    pub error: RtmpError,
}

impl Refused {
    fn bare(error: RtmpError) -> Self {
        Refused {
            reply: Vec::new(),
            error,
        }
    }
}

/// The admission slot a connection holds: pending until its publish is
/// accepted, then a publisher's.
enum Slot {
    Pending(Option<PendingSlot>),
    Publisher(#[allow(dead_code)] PublisherSlot),
}

pub struct Session {
    server: ServerSession,
    slot: Slot,
    ctx: Arc<IngestContext>,
    peer: SocketAddr,
    publisher: Option<Publisher>,
    /// Whether this connection ever got to publish (for the close reason).
    published: bool,
    /// The stream key of the current publish (an `FCUnpublish` names it).
    publish_key: Option<String>,
    /// Sees the `closeStream` rml_rtmp's session swallows.
    close_watch: CloseStreamWatch,
    demuxer: Demuxer,
    /// A publish waiting for the live publisher's takeover time: answered
    /// by [`Session::take_held`].
    held: Option<HeldPublish>,
}

struct HeldPublish {
    request_id: u32,
    stream_key: String,
    hold: Hold,
}

/// What one event gives: the results to go on with (replies, more
/// events), or the session's end.
type Step = Result<Vec<ServerSessionResult>, (Vec<ServerSessionResult>, RtmpError)>;

impl Session {
    /// A session for a connection holding `slot`, and its first bytes out.
    pub fn new(
        ctx: Arc<IngestContext>,
        peer: SocketAddr,
        slot: PendingSlot,
    ) -> Result<(Session, Vec<u8>), Refused> {
        let (server, initial) = ServerSession::new(ServerSessionConfig::new())
            .map_err(|e| Refused::bare(RtmpError::Session(e.to_string())))?;
        let mut session = Session {
            server,
            slot: Slot::Pending(Some(slot)),
            demuxer: Demuxer::with_max_jump(max_jump(&ctx)),
            ctx,
            peer,
            publisher: None,
            published: false,
            publish_key: None,
            close_watch: CloseStreamWatch::default(),
            held: None,
        };
        let out = session.results(initial)?;
        Ok((session, out))
    }

    /// Take bytes from the client; the bytes to send back.
    pub fn input(&mut self, bytes: &[u8]) -> Result<Vec<u8>, Refused> {
        let results = self
            .server
            .handle_input(bytes)
            .map_err(|e| Refused::bare(RtmpError::Session(e.to_string())))?;
        let out = self.results(results)?;
        if self.close_watch.push(bytes) && self.publisher.is_some() {
            self.unpublish("closeStream").map_err(Refused::bare)?;
        }
        Ok(out)
    }

    /// The publish in progress, if one is.
    pub fn publisher_mut(&mut self) -> Option<&mut Publisher> {
        self.publisher.as_mut()
    }

    /// Whether this connection ever got to publish.
    pub fn published(&self) -> bool {
        self.published
    }

    /// When a publish held for a takeover is to be answered
    /// ([`Session::take_held`]).
    pub fn held_until(&self) -> Option<Instant> {
        self.held.as_ref().map(|h| h.hold.until())
    }

    /// Answer the held publish: take the stream over, or refuse (the live
    /// publisher spoke again). The bytes to send.
    pub fn take_held(&mut self) -> Result<Vec<u8>, Refused> {
        let Some(h) = self.held.take() else {
            return Ok(Vec::new());
        };
        let claimed = h.hold.take().map_err(RtmpError::from);
        let step = self.publish_claimed(h.request_id, h.stream_key, claimed);
        let results = match step {
            Ok(results) => results,
            Err((results, error)) => {
                let mut reply = Vec::new();
                for r in results {
                    if let ServerSessionResult::OutboundResponse(p) = r {
                        reply.extend_from_slice(&p.bytes);
                    }
                }
                return Err(Refused { reply, error });
            }
        };
        self.results(results)
    }

    /// Work through `results` in order: replies go out, events are handled
    /// (and may add results of their own).
    fn results(&mut self, results: Vec<ServerSessionResult>) -> Result<Vec<u8>, Refused> {
        let mut out = Vec::new();
        let mut queue: std::collections::VecDeque<ServerSessionResult> = results.into();
        while let Some(r) = queue.pop_front() {
            match r {
                ServerSessionResult::OutboundResponse(packet) => {
                    out.extend_from_slice(&packet.bytes)
                }
                ServerSessionResult::RaisedEvent(ev) => match self.on_event(ev) {
                    Ok(more) => queue.extend(more),
                    Err((more, error)) => {
                        // Tell the client why before closing.
                        for r in more {
                            if let ServerSessionResult::OutboundResponse(p) = r {
                                out.extend_from_slice(&p.bytes);
                            }
                        }
                        return Err(Refused { reply: out, error });
                    }
                },
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(out)
    }

    fn on_event(&mut self, ev: ServerSessionEvent) -> Step {
        let received = Instant::now();
        match ev {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => self.on_connect(request_id, app_name),
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                stream_key,
                ..
            } => self.on_publish(request_id, stream_key),
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                self.demuxer.on_metadata(&metadata);
                Ok(Vec::new())
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => self.on_media(|d| d.on_video(timestamp.value, &data, received)),
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => self.on_media(|d| d.on_audio(timestamp.value, &data, received)),
            ServerSessionEvent::PublishStreamFinished { .. } => {
                self.unpublish("deleteStream")
                    .map_err(|e| (Vec::new(), e))?;
                Ok(Vec::new())
            }
            // rml_rtmp leaves FCUnpublish to us. GStreamer's rtmp2sink sends
            // it and closes the socket before its deleteStream is seen, so it
            // is an unpublish of its own (if it names this publish's key).
            ServerSessionEvent::UnhandleableAmf0Command {
                command_name,
                additional_values,
                ..
            } if command_name == "FCUnpublish" => {
                let named = additional_values.iter().find_map(|v| match v {
                    rml_rtmp::rml_amf0::Amf0Value::Utf8String(k) => Some(k.as_str()),
                    _ => None,
                });
                if named.is_none_or(|k| Some(k) == self.publish_key.as_deref()) {
                    self.unpublish("FCUnpublish").map_err(|e| (Vec::new(), e))?;
                }
                Ok(Vec::new())
            }
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                let out = self.reject(
                    request_id,
                    "NetStream.Play.Failed",
                    "castline serves playback over HLS",
                );
                Err((
                    out,
                    RtmpError::Session("RTMP playback is not offered".into()),
                ))
            }
            ServerSessionEvent::UnhandleableAmf0Command {
                command_name,
                additional_values,
                ..
            } => {
                tracing::debug!(peer = %self.peer, command = %command_name, args = ?additional_values, "RTMP command");
                Ok(Vec::new())
            }
            _ => Ok(Vec::new()),
        }
    }

    /// `connect`: only the configured application is served.
    fn on_connect(&mut self, request_id: u32, app_name: String) -> Step {
        if app_name.trim_end_matches('/') != self.ctx.app {
            let out = self.reject(
                request_id,
                "NetConnection.Connect.Rejected",
                "unknown application",
            );
            return Err((out, RtmpError::WrongApp(app_name, self.ctx.app.clone())));
        }
        self.accept(request_id)
    }

    /// `publish`: the key names a stream, admission takes the slot, a new
    /// stream needs capacity, and the hub hands over the stream (or says why
    /// not, which the client reads as an RTMP status).
    fn on_publish(&mut self, request_id: u32, stream_key: String) -> Step {
        let claimed = match self.claim(&stream_key) {
            Ok(Claimed::Now(publisher)) => Ok(publisher),
            Ok(Claimed::Held(hold)) if self.held.is_none() => {
                self.held = Some(HeldPublish {
                    request_id,
                    stream_key,
                    hold,
                });
                return Ok(Vec::new());
            }
            Ok(Claimed::Held(hold)) => {
                drop(hold);
                Err(RtmpError::Session(
                    "a second publish while one waits".into(),
                ))
            }
            Err(e) => Err(e),
        };
        self.publish_claimed(request_id, stream_key, claimed)
    }

    /// Answer a publish: accepted with its publisher, or refused with the
    /// status the client reads.
    fn publish_claimed(
        &mut self,
        request_id: u32,
        stream_key: String,
        claimed: Result<Publisher, RtmpError>,
    ) -> Step {
        match claimed {
            Ok(publisher) => {
                self.ctx.announce_live(self.peer, &publisher, "RTMP");
                // A publish (a republish on this connection too) starts a
                // fresh demux session: its tracks are announced anew.
                self.demuxer = Demuxer::with_max_jump(max_jump(&self.ctx));
                self.publisher = Some(publisher);
                self.publish_key = Some(stream_key);
                self.published = true;
                self.accept(request_id)
            }
            Err(e) => {
                let code = match e {
                    RtmpError::Busy(HubError::Draining) => "NetStream.Publish.Rejected",
                    RtmpError::Auth(_) | RtmpError::Busy(_) => "NetStream.Publish.BadName",
                    _ => "NetStream.Publish.Rejected",
                };
                let out = self.reject(request_id, code, &e.to_string());
                Err((out, e))
            }
        }
    }

    fn claim(&mut self, stream_key: &str) -> Result<Claimed, RtmpError> {
        let name = self.ctx.keys.resolve(stream_key)?;
        self.promote()?;
        // A new stream takes memory; a reconnect or takeover of one the hub
        // already holds does not.
        if !self.ctx.hub.open_stream_names().contains(&name) {
            if let Some(why) = (self.ctx.capacity)() {
                return Err(RtmpError::AtCapacity(why.0, why.1));
            }
        }
        let input = crate::ingest::auth::input_of(stream_key);
        Ok(self.ctx.hub.claim_or_hold(&name, input)?)
    }

    /// An FLV tag: demuxed, counted, and what it completes sent on.
    fn on_media(
        &mut self,
        demux: impl FnOnce(&mut Demuxer) -> Result<Vec<DemuxEvent>, super::demux::DemuxError>,
    ) -> Step {
        let before = self.demuxer_counts();
        let events = demux(&mut self.demuxer).map_err(|e| (Vec::new(), e.into()))?;
        self.count(before);
        self.forward(events).map_err(|e| (Vec::new(), e))?;
        Ok(Vec::new())
    }

    fn accept(&mut self, request_id: u32) -> Step {
        self.server
            .accept_request(request_id)
            .map_err(|e| (Vec::new(), RtmpError::Session(e.to_string())))
    }

    fn reject(&mut self, request_id: u32, code: &str, why: &str) -> Vec<ServerSessionResult> {
        self.server
            .reject_request(request_id, code, why)
            .unwrap_or_default()
    }

    /// (skipped tags, clock resets, repaired timestamps) so far.
    fn demuxer_counts(&self) -> (u64, u64, u64) {
        let d = &self.demuxer;
        (d.skipped_tags, d.clock_resets(), d.repaired_timestamps())
    }

    /// Count what the demuxer skipped or repaired since `before`.
    fn count(&self, before: (u64, u64, u64)) {
        let (skipped, resets, repaired) = self.demuxer_counts();
        self.ctx
            .metrics
            .ingest_skipped_tags
            .inc_by(skipped - before.0);
        self.ctx
            .count_clock(self.peer, resets - before.1, repaired - before.2);
    }

    /// Trade the pending slot for a publisher's (once per connection).
    fn promote(&mut self) -> Result<(), RtmpError> {
        let Slot::Pending(pending) = &mut self.slot else {
            return Ok(());
        };
        let Some(p) = pending.take() else {
            return Ok(());
        };
        match p.promote() {
            Ok(publisher) => {
                self.slot = Slot::Publisher(publisher);
                Ok(())
            }
            Err((p, why)) => {
                *pending = Some(p);
                Err(RtmpError::Admission(why))
            }
        }
    }

    /// The publisher said it is done: what the demuxer holds goes out, then
    /// the stream ends at once (no reconnect grace).
    fn unpublish(&mut self, how: &'static str) -> Result<(), RtmpError> {
        let events = self.demuxer.finish();
        self.forward(events)?;
        self.publish_key = None;
        if let Some(p) = self.publisher.take() {
            tracing::info!(peer = %self.peer, stream = p.name(), command = how, "publisher unpublished");
            p.finish();
        }
        Ok(())
    }

    fn forward(&mut self, events: Vec<DemuxEvent>) -> Result<(), RtmpError> {
        match &mut self.publisher {
            Some(p) => Ok(self.ctx.forward(p, events)?),
            None => Ok(()),
        }
    }
}

fn max_jump(ctx: &IngestContext) -> i64 {
    ctx.max_timestamp_jump.as_millis() as i64
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use rml_rtmp::sessions::{
        ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
        PublishRequestType,
    };

    use super::*;
    use crate::hub::{Hub, HubLimits};
    use crate::ingest::admission::{Admission, Limits};
    use crate::ingest::auth::StreamKeys;
    use crate::log_limit::LogLimiter;
    use crate::metrics::Metrics;

    fn ctx(keys: &[(&str, &str)]) -> Arc<IngestContext> {
        let secs = Duration::from_secs;
        Arc::new(IngestContext {
            hub: Hub::new(
                HubLimits {
                    grace: secs(3),
                    takeover_after: Duration::from_millis(300),
                    max_queue_bytes: 1 << 20,
                },
                Box::new(|_| {}),
            ),
            keys: StreamKeys::new(
                keys.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<HashMap<_, _>>(),
            ),
            app: "live".into(),
            metrics: Arc::new(Metrics::new()),
            handshake_timeout: secs(5),
            publish_timeout: secs(5),
            idle_timeout: secs(5),
            max_timestamp_jump: secs(5),
            admission: Admission::new(Limits {
                pending: 8,
                pending_per_address: 8,
                publishers: 8,
            }),
            capacity: Box::new(|| None),
            log_limiter: LogLimiter::new(secs(1)),
            playback_base: "http://test".into(),
            tasks: tokio_util::task::TaskTracker::new(),
        })
    }

    /// A client (rml_rtmp's own session) and ours, talking through memory.
    struct Pair {
        client: ClientSession,
        server: Session,
    }

    /// What the client saw of one exchange, and the server's error if it
    /// closed the session.
    struct Heard {
        events: Vec<ClientSessionEvent>,
        /// The bytes the server sent (to look for an RTMP status code).
        bytes: Vec<u8>,
        error: Option<RtmpError>,
    }

    impl Pair {
        fn new(ctx: &Arc<IngestContext>) -> Pair {
            let peer: SocketAddr = "192.0.2.1:5000".parse().unwrap();
            let slot = ctx.admission.admit(peer.ip()).unwrap();
            let (server, out) = Session::new(ctx.clone(), peer, slot).unwrap();
            let (mut client, _) = ClientSession::new(ClientSessionConfig::new()).unwrap();
            client.handle_input(&out).unwrap();
            Pair { client, server }
        }

        /// Send the client's `request` and hand back what the server says,
        /// until neither side has more to say.
        fn send(&mut self, request: ClientSessionResult) -> Heard {
            let mut heard = Heard {
                events: Vec::new(),
                bytes: Vec::new(),
                error: None,
            };
            let mut outbound = vec![request];
            while !outbound.is_empty() {
                let bytes: Vec<u8> = outbound
                    .drain(..)
                    .filter_map(|r| match r {
                        ClientSessionResult::OutboundResponse(p) => Some(p.bytes),
                        _ => None,
                    })
                    .flatten()
                    .collect();
                if bytes.is_empty() {
                    break;
                }
                let reply = match self.server.input(&bytes) {
                    Ok(out) => out,
                    Err(refused) => {
                        heard.error = Some(refused.error);
                        refused.reply
                    }
                };
                heard.bytes.extend_from_slice(&reply);
                for r in self.client.handle_input(&reply).unwrap() {
                    match r {
                        ClientSessionResult::RaisedEvent(e) => heard.events.push(e),
                        other => outbound.push(other),
                    }
                }
                if heard.error.is_some() {
                    break;
                }
            }
            heard
        }

        fn connect(&mut self, app: &str) -> Heard {
            let request = self.client.request_connection(app.into()).unwrap();
            self.send(request)
        }

        fn publish(&mut self, key: &str) -> Heard {
            let connected = self.connect("live");
            assert!(connected.error.is_none(), "{:?}", connected.error);
            let request = self
                .client
                .request_publishing(key.into(), PublishRequestType::Live)
                .unwrap();
            self.send(request)
        }
    }

    fn says(heard: &Heard, status: &str) -> bool {
        heard
            .bytes
            .windows(status.len())
            .any(|w| w == status.as_bytes())
    }

    #[tokio::test]
    async fn a_client_of_another_application_is_told_and_closed() {
        let ctx = ctx(&[]);
        let heard = Pair::new(&ctx).connect("vod");
        assert!(matches!(heard.error, Some(RtmpError::WrongApp(..))));
        assert!(
            heard
                .events
                .iter()
                .any(|e| matches!(e, ClientSessionEvent::ConnectionRequestRejected { .. })),
            "{:?}",
            heard.events
        );
        assert!(says(&heard, "NetConnection.Connect.Rejected"));
    }

    #[tokio::test]
    async fn an_unknown_key_is_bad_name_and_a_known_one_goes_live_under_its_name() {
        let ctx = ctx(&[("k1", "match1")]);
        let refused = Pair::new(&ctx).publish("nope");
        assert!(matches!(refused.error, Some(RtmpError::Auth(_))));
        assert!(says(&refused, "NetStream.Publish.BadName"));
        assert!(ctx.hub.open_stream_names().is_empty());

        let mut pair = Pair::new(&ctx);
        let live = pair.publish("k1?bitrate=6000");
        assert!(live.error.is_none(), "{:?}", live.error);
        assert!(
            live.events
                .iter()
                .any(|e| matches!(e, ClientSessionEvent::PublishRequestAccepted)),
            "{:?}",
            live.events
        );
        assert!(pair.server.published());
        assert!(pair.server.publisher_mut().is_some());
        assert_eq!(ctx.hub.open_stream_names(), ["match1"]);
    }

    fn accepted(heard: &Heard) -> bool {
        heard
            .events
            .iter()
            .any(|e| matches!(e, ClientSessionEvent::PublishRequestAccepted))
    }

    #[tokio::test]
    async fn a_second_publisher_waits_for_the_takeover_time_and_a_third_is_refused() {
        let ctx = ctx(&[]);
        let mut first = Pair::new(&ctx);
        assert!(first.publish("match1").error.is_none());
        // Held: no answer yet, the first goes on.
        let mut second = Pair::new(&ctx);
        let held = second.publish("match1");
        assert!(held.error.is_none() && !accepted(&held), "{:?}", held.error);
        assert!(second.server.held_until().is_some());
        // Only one may wait.
        let third = Pair::new(&ctx).publish("match1");
        assert!(matches!(
            third.error,
            Some(RtmpError::Busy(HubError::TakeoverPending(_)))
        ));
        assert!(says(&third, "NetStream.Publish.BadName"));
        // The first keeps sending: the held publish is refused, with why.
        let first_publisher = first.server.publisher_mut().unwrap();
        first_publisher.send_tracks(crate::media::MediaInfo {
            video: None,
            audio: None,
            declared_bitrate: None,
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        first_publisher.send_tracks(crate::media::MediaInfo {
            video: None,
            audio: None,
            declared_bitrate: None,
        });
        tokio::time::sleep_until(second.server.held_until().unwrap().into()).await;
        let refused = second.server.take_held().unwrap_err();
        assert!(matches!(
            refused.error,
            RtmpError::Busy(HubError::StillSending(_))
        ));
        assert!(!refused.reply.is_empty(), "the client is told");
        assert!(first.server.publisher_mut().is_some(), "the first goes on");
    }

    #[tokio::test]
    async fn a_held_publish_takes_over_a_publisher_that_stayed_silent() {
        let ctx = ctx(&[]);
        let mut first = Pair::new(&ctx);
        assert!(first.publish("match1").error.is_none());
        let mut second = Pair::new(&ctx);
        assert!(!accepted(&second.publish("match1")));
        tokio::time::sleep_until(second.server.held_until().unwrap().into()).await;
        let reply = second.server.take_held().expect("taken over");
        let events = second.client.handle_input(&reply).unwrap();
        assert!(events.iter().any(|r| matches!(
            r,
            ClientSessionResult::RaisedEvent(ClientSessionEvent::PublishRequestAccepted)
        )));
        assert!(second.server.publisher_mut().is_some());
        let old = first.server.publisher_mut().unwrap();
        tokio::time::timeout(Duration::from_secs(1), old.taken_over())
            .await
            .expect("the old connection is told to close");
        assert_eq!(ctx.hub.open_stream_names(), ["match1"]);
    }

    #[tokio::test]
    async fn a_new_stream_past_capacity_is_refused_with_the_reason() {
        let mut ctx = ctx(&[]);
        Arc::get_mut(&mut ctx).unwrap().capacity =
            Box::new(|| Some(("capacity", "the server is full".to_string())));
        let refused = Pair::new(&ctx).publish("match1");
        assert!(matches!(
            refused.error,
            Some(RtmpError::AtCapacity("capacity", _))
        ));
        assert!(says(&refused, "NetStream.Publish.Rejected"));
        assert!(says(&refused, "the server is full"));
    }

    #[tokio::test]
    async fn playback_is_refused_over_rtmp() {
        let ctx = ctx(&[]);
        let mut pair = Pair::new(&ctx);
        assert!(pair.connect("live").error.is_none());
        let request = pair.client.request_playback("match1".into()).unwrap();
        let heard = pair.send(request);
        assert!(matches!(heard.error, Some(RtmpError::Session(_))));
        assert!(says(&heard, "NetStream.Play.Failed"));
    }
}
