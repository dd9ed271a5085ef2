//! Role `ingest`: every rendition's events, pushed to every origin over
//! HTTP ([`super::wire`]).
//!
//! One lock orders every event of every session, so each origin is sent the
//! same sequence and builds the same playlists. Each origin has its own
//! bounded queue and its own connection, worked by its own task: a slow or
//! dead origin never holds the others or the packagers back. Past its queue,
//! or when its connection breaks, an origin is resynced: sent again each
//! live session's journal (its start, its inits, and the segments still in
//! the DVR window), which it takes as duplicates where it has them. An
//! origin that appears (discovery resolves the configured names again every
//! few seconds) starts with the same resync, so it serves the live edge at
//! once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::wire::{self, Message, PartMeta, Resume, SegmentMeta, SessionKey, SessionPlan};
use super::{Event, Publish};
use crate::metrics::{Metrics, OriginLabel, OriginReasonLabel};
use crate::store::epoch::Epochs;

/// What a new session does about the origins' live session of its name.
#[derive(Debug, Clone, PartialEq)]
enum Claim {
    /// None: a session of its own.
    Fresh,
    /// Another pod's session, silent for `takeover_after`: continue it.
    Continue(Resume),
    /// Still fed by another pod: ask again.
    Wait,
    /// Still fed when the wait is over: this publish is refused.
    Refuse(Resume),
}

/// The takeover rule, as the hub applies it to two publishers in one
/// process: `found` is the origins' furthest answer, `waited_out` whether
/// the wait is over.
fn claim(found: Option<Resume>, takeover_after: Duration, waited_out: bool) -> Claim {
    match found {
        None => Claim::Fresh,
        Some(r) if r.silent_ms >= takeover_after.as_millis() as u64 => Claim::Continue(r),
        Some(r) if waited_out => Claim::Refuse(r),
        Some(_) => Claim::Wait,
    }
}

/// Where a session continues one whose ingest pod was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Continuation {
    /// The first cut's MSN.
    pub next_msn: u64,
    /// Each rendition's first init segment id.
    pub next_init: u32,
}

/// How long a new session waits, past `ingest.takeover_after`, for the
/// origins' live session of its name to fall silent.
const TAKEOVER_WAIT: Duration = Duration::from_secs(1);
/// An origin that cannot say where a stream continues within this is not
/// waited for.
const ASK_WITHIN: Duration = Duration::from_secs(1);

/// How often the origins' names are resolved again.
const DISCOVER_EVERY: Duration = Duration::from_secs(3);
/// Waits between connection attempts to an origin that does not answer.
const RETRY: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(300),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// One push, encoded once for every origin.
struct Item {
    request: wire::Request,
    /// The rendition and MSN of a part or segment end (what the journal
    /// trims by).
    segment: Option<(String, u64)>,
    made: Instant,
}

impl Item {
    fn new(key: &SessionKey, m: &Message) -> Item {
        let segment = match m {
            Message::Part { rendition, msn, .. } | Message::SegmentEnd { rendition, msn, .. } => {
                Some((rendition.clone(), *msn))
            }
            _ => None,
        };
        Item {
            request: wire::encode(key, m),
            segment,
            made: Instant::now(),
        }
    }
}

/// What a session's late-joining origin needs: everything except the
/// segments that have left the DVR window. An ended session's journal is
/// its end alone, kept for [`KEEP_ENDED`], so an origin resynced just then
/// still ends it.
#[derive(Default)]
struct Journal {
    items: VecDeque<Arc<Item>>,
    ended: Option<Instant>,
    /// The bodies' bytes it holds.
    bytes: usize,
}

const KEEP_ENDED: Duration = Duration::from_secs(60);

impl Journal {
    /// Add `item`. `ends`: it ends the session; `closes`: it completes
    /// segment (rendition, msn), and that rendition's segments more than
    /// `keep` before it leave the journal.
    /// The bytes it holds change by what it returns (kept in step, not
    /// summed again per item).
    fn record(
        &mut self,
        item: Arc<Item>,
        ends: bool,
        closes: Option<(String, u64)>,
        keep: u64,
    ) -> isize {
        let before = self.bytes;
        self.bytes += item.request.body.len();
        if ends {
            self.items = VecDeque::from([item]);
            self.bytes = self.items.iter().map(|i| i.request.body.len()).sum();
            self.ended = Some(Instant::now());
        } else {
            self.items.push_back(item);
        }
        if let Some((rendition, msn)) = closes {
            let mut freed = 0;
            self.items.retain(|i| {
                let keep = i
                    .segment
                    .as_ref()
                    .is_none_or(|(r, m)| *r != rendition || m + keep > msn);
                if !keep {
                    freed += i.request.body.len();
                }
                keep
            });
            self.bytes -= freed;
        }
        self.bytes as isize - before as isize
    }
}

/// One origin address and what it still has to be sent.
struct Link {
    label: String,
    /// The journals, being sent again after a resync (not bounded: the
    /// journals are; sent before `queue`).
    replay: VecDeque<Arc<Item>>,
    /// What was made since, bounded by [`Pusher::queue_bytes`].
    queue: VecDeque<Arc<Item>>,
    bytes: usize,
    /// Its queue was dropped: it is sent the journals before anything else.
    resync: bool,
    wake: Arc<Notify>,
    stop: CancellationToken,
}

#[derive(Default)]
struct State {
    journals: BTreeMap<SessionKey, Journal>,
    links: HashMap<SocketAddr, Link>,
    /// When ended journals past [`KEEP_ENDED`] were last let go.
    swept: Option<Instant>,
}

/// How often ended journals are looked for (not on every push: that is
/// every live session's journal under the lock).
const SWEEP: Duration = Duration::from_secs(1);

pub struct Pusher {
    state: Mutex<State>,
    epochs: Epochs,
    metrics: Arc<Metrics>,
    secret: String,
    /// Bytes one origin's queue may hold.
    queue_bytes: usize,
    /// Segments a journal keeps per rendition (the DVR window).
    keep_segments: u64,
    /// The media bytes this process holds (the store's count): the
    /// journals count in it, so the memory budget and its ratio see them.
    held: Arc<AtomicUsize>,
}

/// What a [`Pusher`] is told by the config.
pub struct PushConfig {
    /// `HOST:PORT` each (`cluster.origins`).
    pub origins: Vec<String>,
    pub secret: String,
    /// Bytes one origin's queue may hold (`cluster.queue_mb`).
    pub queue_bytes: usize,
    /// How much of each session's media is kept for origins that join late
    /// (`hls.dvr_window`), in segments of `segment`.
    pub keep: Duration,
    pub segment: Duration,
}

impl Pusher {
    /// A pusher as `cfg` says, counting its journals in `held`. Discovery
    /// runs until `stop`.
    pub fn start(
        cfg: PushConfig,
        metrics: Arc<Metrics>,
        held: Arc<AtomicUsize>,
        stop: CancellationToken,
    ) -> Arc<Pusher> {
        let keep_segments =
            (cfg.keep.as_secs_f64() / cfg.segment.as_secs_f64().max(0.1)).ceil() as u64 + 1;
        let pusher = Arc::new(Pusher {
            state: Mutex::default(),
            epochs: Epochs::in_memory(),
            metrics,
            secret: cfg.secret,
            queue_bytes: cfg.queue_bytes,
            keep_segments,
            held,
        });
        tokio::spawn(pusher.clone().discover(cfg.origins, stop));
        pusher
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A session of `stream` starts. If the origins hold a live session of
    /// that name (its ingest pod was lost, and the encoder came here), this
    /// one continues it: same epoch, the MSN after the newest begun, behind
    /// a discontinuity. A session another pod still feeds is waited for
    /// until it has been silent for `takeover_after`, as a takeover is; if
    /// it is still fed [`TAKEOVER_WAIT`] after that, this session is
    /// refused (nothing of it is pushed; logged and counted).
    pub async fn open(
        self: &Arc<Self>,
        stream: &str,
        mut plan: SessionPlan,
        takeover_after: Duration,
    ) -> (PushSession, Option<Continuation>) {
        let deadline = Instant::now() + takeover_after + TAKEOVER_WAIT;
        let claim = loop {
            let found = self.ask_origins(stream).await;
            match claim(found, takeover_after, Instant::now() >= deadline) {
                Claim::Wait => tokio::time::sleep(Duration::from_millis(200)).await,
                decided => break decided,
            }
        };
        let (epoch, continuation, refused) = match claim {
            Claim::Continue(r) => {
                tracing::info!(stream, epoch = %r.epoch, msn = r.next_msn, silent_ms = r.silent_ms, "the origins hold this stream's session: it continues here");
                plan.continues_at = Some(r.next_msn);
                let c = Continuation {
                    next_msn: r.next_msn,
                    next_init: r.next_init,
                };
                (r.epoch, Some(c), false)
            }
            Claim::Refuse(r) => {
                tracing::error!(stream, epoch = %r.epoch, "another ingest pod still feeds this stream on the origins: this publish is not pushed");
                self.metrics
                    .push_refused
                    .get_or_create(&OriginReasonLabel {
                        origin: "all".into(),
                        reason: "live_elsewhere",
                    })
                    .inc();
                (r.epoch, None, true)
            }
            Claim::Fresh | Claim::Wait => (self.epochs.next(), None, false),
        };
        let key = SessionKey {
            stream: stream.to_string(),
            epoch,
        };
        if !refused {
            self.send(&key, Message::Start(plan));
        }
        let session = PushSession {
            pusher: self.clone(),
            key,
            refused,
        };
        (session, continuation)
    }

    /// Origins pushed to now.
    pub fn origins(&self) -> usize {
        self.state().links.len()
    }

    /// Whether every origin has been sent everything.
    pub fn flushed(&self) -> bool {
        self.state()
            .links
            .values()
            .all(|l| l.replay.is_empty() && l.queue.is_empty() && !l.resync)
    }

    fn send(&self, key: &SessionKey, m: Message) {
        let ends = matches!(m, Message::End);
        let closes = match &m {
            Message::SegmentEnd { rendition, msn, .. } => Some((rendition.clone(), *msn)),
            _ => None,
        };
        let item = Arc::new(Item::new(key, &m));
        let mut st = self.state();
        let mut change = 0isize;
        if st.swept.is_none_or(|t| t.elapsed() >= SWEEP) {
            st.swept = Some(Instant::now());
            st.journals.retain(|_, j| {
                let keep = j.ended.is_none_or(|t| t.elapsed() < KEEP_ENDED);
                if !keep {
                    change -= j.bytes as isize;
                }
                keep
            });
        }
        change += st.journals.entry(key.clone()).or_default().record(
            item.clone(),
            ends,
            closes,
            self.keep_segments,
        );
        if change >= 0 {
            self.held.fetch_add(change as usize, Ordering::Relaxed);
        } else {
            self.held
                .fetch_sub(change.unsigned_abs(), Ordering::Relaxed);
        }
        let size = item.request.body.len();
        for link in st.links.values_mut() {
            if link.resync {
                continue;
            }
            if link.bytes + size > self.queue_bytes {
                self.resync(link);
                tracing::warn!(origin = %link.label, "an origin fell a whole queue behind: it is sent the live window again");
            } else {
                link.queue.push_back(item.clone());
                link.bytes += size;
            }
            link.wake.notify_one();
        }
    }

    /// The next push for the origin at `addr`: its queue, after the journals
    /// when it is to be resynced. None: nothing yet (or it is gone).
    fn next(&self, addr: SocketAddr) -> Option<Arc<Item>> {
        let mut st = self.state();
        let State {
            journals, links, ..
        } = &mut *st;
        let link = links.get_mut(&addr)?;
        if link.resync {
            link.replay = journals
                .values()
                .flat_map(|j| j.items.iter().cloned())
                .collect();
            link.resync = false;
        }
        if let Some(item) = link.replay.pop_front() {
            return Some(item);
        }
        let item = link.queue.pop_front()?;
        link.bytes -= item.request.body.len();
        Some(item)
    }

    /// The connection to `addr` broke: what it had queued is dropped, and it
    /// is resynced when it is back.
    fn lost(&self, addr: SocketAddr) {
        if let Some(link) = self.state().links.get_mut(&addr) {
            if !link.resync {
                self.resync(link);
            }
        }
    }

    /// Drop what `link` has queued: it is sent the journals next (counted).
    fn resync(&self, link: &mut Link) {
        link.replay.clear();
        link.queue.clear();
        link.bytes = 0;
        link.resync = true;
        self.metrics
            .push_resyncs
            .get_or_create(&OriginLabel {
                origin: link.label.clone(),
            })
            .inc();
    }

    /// Resolve the configured origins now and every [`DISCOVER_EVERY`]: an
    /// address that appears gets a link (and a resync), one that goes away
    /// loses its link.
    async fn discover(self: Arc<Self>, origins: Vec<String>, stop: CancellationToken) {
        loop {
            let mut found = Vec::new();
            for o in &origins {
                match tokio::net::lookup_host(o.as_str()).await {
                    Ok(addrs) => found.extend(addrs),
                    Err(e) => tracing::warn!(origin = %o, error = %e, "cannot resolve an origin"),
                }
            }
            self.update_links(&found);
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(DISCOVER_EVERY) => {}
            }
        }
        for link in self.state().links.values() {
            link.stop.cancel();
        }
    }

    fn update_links(self: &Arc<Self>, found: &[SocketAddr]) {
        let mut st = self.state();
        st.links.retain(|addr, link| {
            let keep = found.contains(addr);
            if !keep {
                tracing::info!(origin = %link.label, "an origin went away: no longer pushed to");
                link.stop.cancel();
            }
            keep
        });
        for addr in found {
            if st.links.contains_key(addr) {
                continue;
            }
            tracing::info!(origin = %addr, "pushing to a new origin");
            let link = Link {
                label: addr.to_string(),
                replay: VecDeque::new(),
                queue: VecDeque::new(),
                bytes: 0,
                resync: true,
                wake: Arc::new(Notify::new()),
                stop: CancellationToken::new(),
            };
            tokio::spawn(
                self.clone()
                    .work(*addr, link.wake.clone(), link.stop.clone()),
            );
            st.links.insert(*addr, link);
        }
        self.metrics.push_origins.set(st.links.len() as i64);
    }
}

/// One session, pushed.
pub struct PushSession {
    pusher: Arc<Pusher>,
    key: SessionKey,
    /// Another pod feeds the stream: nothing of this session is pushed.
    refused: bool,
}

impl PushSession {
    pub fn epoch(&self) -> &str {
        &self.key.epoch
    }

    pub fn refused(&self) -> bool {
        self.refused
    }

    pub fn rendition(&self, rendition: &str) -> PushRendition {
        let part_ready = self
            .pusher
            .metrics
            .part_ready_seconds
            .get_or_create(&crate::metrics::RenditionLabel {
                rendition: rendition.to_string(),
            })
            .clone();
        PushRendition {
            pusher: self.pusher.clone(),
            key: self.key.clone(),
            rendition: rendition.to_string(),
            part_ready,
            refused: self.refused,
        }
    }

    pub fn mark_dependent(&self) {
        if !self.refused {
            self.pusher.send(&self.key, Message::Dependent);
        }
    }

    pub fn end(self) {
        if !self.refused {
            self.pusher.send(&self.key, Message::End);
        }
    }
}

/// One rendition's packager output, pushed.
pub struct PushRendition {
    pusher: Arc<Pusher>,
    key: SessionKey,
    rendition: String,
    /// `castline_part_ready_seconds{rendition}`: here, the newest frame's
    /// arrival to the part handed to the pusher.
    part_ready: prometheus_client::metrics::histogram::Histogram,
    refused: bool,
}

impl Publish for PushRendition {
    fn publish(&mut self, event: Event) {
        if self.refused {
            return;
        }
        let rendition = self.rendition.clone();
        let m = match event {
            Event::Init { id, data } => Message::Init {
                rendition,
                id,
                data,
            },
            Event::Part { part, next } => {
                self.part_ready
                    .observe(part.received.elapsed().as_secs_f64());
                Message::Part {
                    rendition,
                    msn: part.segment.msn,
                    index: part.index,
                    meta: PartMeta {
                        discontinuity: part.segment.discontinuity,
                        init_id: part.segment.init_id,
                        date_ns: wire::date_ns(part.segment.program_date_time),
                        duration: part.duration,
                        independent: part.independent,
                        next,
                    },
                    data: part.data,
                }
            }
            Event::SegmentEnd {
                msn,
                duration,
                meta,
                next,
            } => Message::SegmentEnd {
                rendition,
                msn,
                meta: SegmentMeta {
                    duration,
                    meta,
                    next,
                },
            },
            Event::End => Message::RenditionEnd { rendition },
        };
        self.pusher.send(&self.key, m);
    }
}

mod link;
#[cfg(test)]
mod tests;
