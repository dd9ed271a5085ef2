//! One rendition's window: its init segments, parts and segments (a
//! segment is the chain of its parts), the rendered playlists and their
//! snapshots, its progress, and the one change notification that wakes every
//! request blocked on it. Segments the playlist stops listing are kept as
//! [`super::retention`] says, then freed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use super::retention;

/// Describes a rendition for the multivariant playlist.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RenditionMeta {
    pub bandwidth: u64,
    pub average_bandwidth: u64,
    pub codecs: String,
    pub resolution: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
    /// Audio channel count, for EXT-X-MEDIA CHANNELS.
    pub channels: Option<u32>,
}

/// What a playlist rendering was made for, so a blocking request for a given
/// part or segment always gets the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnapshotKey {
    Part(u64, u32),
    Segment(u64),
    Other,
}

/// One rendering of a media playlist, full and delta (`_HLS_skip`), each
/// also gzip-compressed once (empty when not made).
#[derive(Debug, Clone, Default)]
pub struct Playlists {
    pub full: Bytes,
    pub delta: Bytes,
    pub full_gzip: Bytes,
    pub delta_gzip: Bytes,
}

/// Where a rendition is: what blocking requests wait on.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Progress {
    /// The newest part: (msn, index).
    pub last_part: Option<(u64, u32)>,
    /// The newest complete segment.
    pub last_complete: Option<u64>,
    pub first_msn: u64,
    pub ended: bool,
    pub target_duration: Duration,
}

/// A segment is its parts, held once: a part stays servable for as long as
/// its segment is in the window, and the segment is served as their chain.
#[derive(Default)]
struct StoredSegment {
    parts: Vec<Bytes>,
    complete: bool,
    duration: Duration,
    /// When the playlist stopped listing it (see [`retention`]).
    unlisted_at: Option<Instant>,
}

impl StoredSegment {
    fn bytes(&self) -> usize {
        self.parts.iter().map(|p| p.len()).sum::<usize>()
    }
}

#[derive(Default)]
struct RenditionState {
    inits: HashMap<u32, Bytes>,
    segments: BTreeMap<u64, StoredSegment>,
    progress: Progress,
    latest: Option<Playlists>,
    snapshots: VecDeque<(SnapshotKey, Playlists)>,
    meta: Option<RenditionMeta>,
    /// The newest part's latency (see [`Update::part_ready`]).
    part_ready: Option<Duration>,
    /// Media bytes held (inits, parts, segments), for the store's budget.
    bytes: usize,
}

/// Playlist renderings kept per rendition for exact repeat answers (~13 s of parts).
const SNAPSHOTS: usize = 64;

pub struct Rendition {
    /// Media bytes held by every rendition of the store (shared counter).
    total: Arc<AtomicUsize>,
    name: String,
    state: RwLock<RenditionState>,
    changed: watch::Sender<u64>,
}

/// One change to a rendition, applied atomically, then announced once.
#[derive(Default)]
pub struct Update {
    pub init: Option<(u32, Bytes)>,
    pub part: Option<(u64, u32, Bytes)>,
    /// A segment completed, and its duration.
    pub segment_complete: Option<(u64, Duration)>,
    /// Segments below this msn leave the playlist (they stay servable for a
    /// while: [`retention`]).
    pub first_msn: u64,
    /// The longest the playlist gets (what a player may still be reading
    /// when a segment leaves it).
    pub playlist_duration: Duration,
    pub playlists: Option<(SnapshotKey, Playlists)>,
    pub ended: bool,
    pub target_duration: Duration,
    pub meta: Option<RenditionMeta>,
    /// For a new part: from its newest frame leaving the ingest socket to
    /// it being servable.
    pub part_ready: Option<Duration>,
    /// A memory budget is reached: segments the playlist no longer lists
    /// are freed now instead of after their retention time.
    pub free_unlisted: bool,
}

impl Rendition {
    pub(super) fn new(name: &str, total: Arc<AtomicUsize>) -> Self {
        Rendition {
            total,
            name: name.to_string(),
            state: RwLock::default(),
            changed: watch::channel(0).0,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Media bytes this rendition holds.
    pub fn bytes(&self) -> usize {
        self.read().bytes
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, RenditionState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn apply(&self, u: Update) {
        self.apply_at(u, Instant::now());
    }

    pub(super) fn apply_at(&self, u: Update, now: Instant) {
        {
            let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
            // Media bytes added and freed by this update, for the store's count.
            let (mut added, mut freed) = (0usize, 0usize);
            if let Some((id, bytes)) = u.init {
                added += bytes.len();
                freed += st.inits.insert(id, bytes).map_or(0, |old| old.len());
            }
            if let Some((msn, idx, bytes)) = u.part {
                let seg = st.segments.entry(msn).or_default();
                if seg.parts.len() == idx as usize {
                    added += bytes.len();
                    seg.parts.push(bytes);
                }
                st.progress.last_part = Some((msn, idx));
            }
            if let Some((msn, duration)) = u.segment_complete {
                if let Some(seg) = st.segments.get_mut(&msn) {
                    seg.complete = true;
                    seg.duration = duration;
                }
                st.progress.last_complete = Some(msn);
            }
            // Segments the playlist no longer lists are kept as RFC 8216
            // 6.2.2 says, then freed.
            for seg in st.segments.range_mut(..u.first_msn).map(|(_, s)| s) {
                seg.unlisted_at.get_or_insert(now);
            }
            let expired: Vec<u64> = st
                .segments
                .range(..u.first_msn)
                .filter(|(_, s)| {
                    s.unlisted_at.is_some_and(|at| {
                        u.free_unlisted
                            || retention::expired(at, s.duration, u.playlist_duration, now)
                    })
                })
                .map(|(m, _)| *m)
                .collect();
            for msn in expired {
                freed += st.segments.remove(&msn).map_or(0, |s| s.bytes());
            }
            st.progress.first_msn = u.first_msn;
            st.progress.ended |= u.ended;
            st.progress.target_duration = u.target_duration;
            if let Some((key, pls)) = u.playlists {
                if key != SnapshotKey::Other {
                    if st.snapshots.len() >= SNAPSHOTS {
                        st.snapshots.pop_front();
                    }
                    st.snapshots.push_back((key, pls.clone()));
                }
                st.latest = Some(pls);
            }
            if u.meta.is_some() {
                st.meta = u.meta;
            }
            if u.part_ready.is_some() {
                st.part_ready = u.part_ready;
            }
            st.bytes = st.bytes + added - freed;
            self.total.fetch_add(added, Ordering::Relaxed);
            self.total.fetch_sub(freed, Ordering::Relaxed);
        }
        self.changed.send_modify(|v| *v += 1);
    }

    /// A receiver that resolves on the next change. Take it *before* checking
    /// [`Rendition::progress`] so no change can slip between check and wait.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub fn progress(&self) -> Progress {
        self.read().progress
    }

    /// The newest part's latency, from its last frame's arrival to servable.
    pub fn part_ready(&self) -> Option<Duration> {
        self.read().part_ready
    }

    pub fn meta(&self) -> Option<RenditionMeta> {
        self.read().meta.clone()
    }

    pub fn playlists(&self, key: Option<SnapshotKey>) -> Option<Playlists> {
        let st = self.read();
        if let Some(key) = key {
            if let Some((_, p)) = st.snapshots.iter().rev().find(|(k, _)| *k == key) {
                return Some(p.clone());
            }
        }
        st.latest.clone()
    }

    pub fn init(&self, id: u32) -> Option<Bytes> {
        self.read().inits.get(&id).cloned()
    }

    pub fn part(&self, msn: u64, idx: u32) -> Option<Bytes> {
        self.read()
            .segments
            .get(&msn)?
            .parts
            .get(idx as usize)
            .cloned()
    }

    /// A complete segment: its parts, in order (served as one body).
    pub fn segment(&self, msn: u64) -> Option<Vec<Bytes>> {
        let st = self.read();
        let seg = st.segments.get(&msn)?;
        seg.complete.then(|| seg.parts.clone())
    }
}

impl Drop for Rendition {
    fn drop(&mut self) {
        let held = self.state.get_mut().map_or(0, |s| s.bytes);
        self.total.fetch_sub(held, Ordering::Relaxed);
    }
}
