//! One rendition's window: its init segments, parts and segments (a
//! segment is the chain of its parts), the rendered playlists and their
//! snapshots, its progress, and the one change notification that wakes every
//! request blocked on it. Segments the playlist stops listing are kept as
//! [`super::retention`] says, then freed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use super::disk::{Disk, OnDisk};
use super::object::{InMemory, Stored};
use super::retention;

/// Describes a rendition for the multivariant playlist.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
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
/// Past the memory window it moves to disk (one file, its parts byte ranges).
#[derive(Default)]
struct StoredSegment {
    /// In memory; empty once the segment is on disk.
    parts: Vec<Bytes>,
    /// Where it is on disk, once written there.
    disk: Option<OnDisk>,
    /// Queued for the disk writer.
    spilling: bool,
    /// Writing it failed: it stays in memory (the memory budget bounds it).
    disk_failed: bool,
    complete: bool,
    duration: Duration,
    /// When the playlist stopped listing it (see [`retention`]).
    unlisted_at: Option<Instant>,
}

impl StoredSegment {
    /// Bytes held in memory.
    fn bytes(&self) -> usize {
        self.parts.iter().map(|p| p.len()).sum::<usize>()
    }

    /// From memory while it is there (also once written to disk).
    fn part(&self, idx: usize) -> Option<Stored> {
        match &self.disk {
            Some(d) if self.parts.is_empty() => Some(Box::new(d.part(idx)?)),
            _ => Some(Box::new(InMemory(vec![self.parts.get(idx)?.clone()]))),
        }
    }

    fn whole(&self) -> Stored {
        match &self.disk {
            Some(d) if self.parts.is_empty() => Box::new(d.whole()),
            _ => Box::new(InMemory(self.parts.clone())),
        }
    }
}

/// A segment as the disk tier sees it, for the session's manifest.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SegmentRecord {
    pub msn: u64,
    pub duration_us: u64,
    /// Sizes of its parts, in order.
    pub parts: Vec<u64>,
}

/// What a rendition's manifest holds, to serve it again after a restart.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RenditionRecord {
    pub name: String,
    pub meta: Option<RenditionMeta>,
    pub first_msn: u64,
    pub last_part: Option<(u64, u32)>,
    pub last_complete: Option<u64>,
    pub target_duration_ms: u64,
    pub inits: Vec<u32>,
    pub segments: Vec<SegmentRecord>,
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
    /// The longest this rendition's playlist has been: its listed complete
    /// segments plus one target duration for the segment being written
    /// (see [`retention`]).
    longest_listed: Duration,
}

/// Playlist renderings kept per rendition for exact repeat answers (~13 s of parts).
const SNAPSHOTS: usize = 64;

pub struct Rendition {
    /// Media bytes held by every rendition of the store (shared counter).
    total: Arc<AtomicUsize>,
    /// Its session is past a budget ([`super::SessionEntry::pressure`]):
    /// segments the playlist no longer lists are freed at once instead of
    /// after their retention time.
    pressed: Arc<AtomicBool>,
    name: String,
    /// The disk tier and this rendition's directory in it.
    disk: Option<(Arc<Disk>, PathBuf)>,
    /// Itself, for the disk writer to report back to.
    this: Weak<Rendition>,
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
    pub playlists: Option<(SnapshotKey, Playlists)>,
    pub ended: bool,
    pub target_duration: Duration,
    pub meta: Option<RenditionMeta>,
    /// For a new part: from its newest frame leaving the ingest socket to
    /// it being servable.
    pub part_ready: Option<Duration>,
}

impl Rendition {
    pub(super) fn new(
        name: &str,
        total: Arc<AtomicUsize>,
        pressed: Arc<AtomicBool>,
        disk: Option<(Arc<Disk>, PathBuf)>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|this| Rendition {
            total,
            pressed,
            name: name.to_string(),
            disk,
            this: this.clone(),
            state: RwLock::default(),
            changed: watch::channel(0).0,
        })
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
            // How long the playlist gets, measured from what it lists (at
            // each segment end or window move, not at every part).
            if u.segment_complete.is_some() || u.first_msn != st.progress.first_msn {
                let listed: Duration = st
                    .segments
                    .range(u.first_msn..)
                    .filter(|(_, s)| s.complete)
                    .map(|(_, s)| s.duration)
                    .sum::<Duration>()
                    + u.target_duration;
                st.longest_listed = st.longest_listed.max(listed);
            }
            // Segments the playlist no longer lists are kept as RFC 8216
            // 6.2.2 says, then freed.
            let playlist = st.longest_listed;
            let pressed = self.pressed.load(Ordering::Relaxed);
            for seg in st.segments.range_mut(..u.first_msn).map(|(_, s)| s) {
                seg.unlisted_at.get_or_insert(now);
            }
            let expired: Vec<u64> = st
                .segments
                .range(..u.first_msn)
                .filter(|(_, s)| {
                    s.unlisted_at.is_some_and(|at| {
                        pressed || retention::expired(at, s.duration, playlist, now)
                    })
                })
                .map(|(m, _)| *m)
                .collect();
            for msn in expired {
                if let Some(seg) = st.segments.remove(&msn) {
                    freed += seg.bytes();
                    if let (Some(on), Some((disk, _))) = (seg.disk, &self.disk) {
                        let len = on.parts.iter().sum();
                        disk.try_submit(move |c| c.remove_file(&on.path, len));
                    }
                }
            }
            if u.segment_complete.is_some() {
                self.spill(&mut st);
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

    /// Drop the memory copies of segments that are on disk too (an ended
    /// session under memory pressure). Returns the bytes freed.
    pub fn release_memory(&self) -> usize {
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        let mut freed = 0;
        for seg in st.segments.values_mut().filter(|s| s.disk.is_some()) {
            freed += seg.bytes();
            seg.parts = Vec::new();
        }
        st.bytes -= freed;
        self.total.fetch_sub(freed, Ordering::Relaxed);
        freed
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

    /// The highest init segment id held.
    pub fn last_init(&self) -> Option<u32> {
        self.read().inits.keys().max().copied()
    }

    /// Whether part `idx` of segment `msn` is servable (what a blocked
    /// request checks at every wake, without taking the object).
    pub fn has_part(&self, msn: u64, idx: u32) -> bool {
        self.read().segments.get(&msn).is_some_and(|s| {
            s.disk.as_ref().map_or(s.parts.len(), |d| d.parts.len()) > idx as usize
        })
    }

    /// Whether segment `msn` is complete and servable.
    pub fn has_segment(&self, msn: u64) -> bool {
        self.read().segments.get(&msn).is_some_and(|s| s.complete)
    }

    /// Part `idx` of segment `msn`, in memory or on disk.
    pub fn part(&self, msn: u64, idx: u32) -> Option<Stored> {
        self.read().segments.get(&msn)?.part(idx as usize)
    }

    /// A complete segment: its parts, in order (served as one body), or its
    /// file on disk.
    pub fn segment(&self, msn: u64) -> Option<Stored> {
        let st = self.read();
        let seg = st.segments.get(&msn)?;
        seg.complete.then(|| seg.whole())
    }

    /// Segment `msn` while it is written (or just after): its parts from
    /// index `from` on, and whether it is complete. None when it is not
    /// there (not begun, or gone), or only on disk.
    pub fn parts_from(&self, msn: u64, from: usize) -> Option<(Vec<Bytes>, bool)> {
        let st = self.read();
        let seg = st.segments.get(&msn)?;
        if seg.parts.is_empty() && seg.disk.is_some() {
            return None;
        }
        Some((
            seg.parts.get(from..).unwrap_or_default().to_vec(),
            seg.complete,
        ))
    }

    /// Queue for disk every complete segment past the memory window (the
    /// newest `memory_window` of complete segments stays in memory).
    fn spill(&self, st: &mut RenditionState) {
        let Some((disk, dir)) = &self.disk else {
            return;
        };
        if disk.full() {
            return;
        }
        let window = disk.memory_window();
        let mut newer = Duration::ZERO;
        for (&msn, seg) in st.segments.iter_mut().rev() {
            if !seg.complete {
                continue;
            }
            if newer < window {
                newer += seg.duration;
                continue;
            }
            if seg.disk.is_some() || seg.spilling || seg.disk_failed || seg.parts.is_empty() {
                continue;
            }
            let path = dir.join(format!("{msn}.m4s"));
            let (parts, this) = (seg.parts.clone(), self.this.clone());
            seg.spilling = disk.try_submit(move |c| {
                let written = c.write(&path, &parts, true);
                let sizes = parts.iter().map(|p| p.len() as u64).collect();
                match this.upgrade() {
                    Some(r) => r.spilled(msn, path.into(), sizes, written, true),
                    // The session is gone: so is its directory.
                    None if written.is_ok() => c.remove_file(&path, sizes_sum(&parts)),
                    None => {}
                }
            });
        }
    }

    /// The disk writer is done with segment `msn`: on success it is on disk
    /// at `path` and, if `free`, its memory is freed (it is served from the
    /// file from now on).
    fn spilled(
        &self,
        msn: u64,
        path: Arc<Path>,
        parts: Vec<u64>,
        written: std::io::Result<()>,
        free: bool,
    ) {
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        let Some(seg) = st.segments.get_mut(&msn) else {
            // It expired while being written.
            if written.is_ok() {
                let _ = std::fs::remove_file(&path);
            }
            return;
        };
        seg.spilling = false;
        if let Err(e) = written {
            seg.disk_failed = true;
            drop(st);
            tracing::warn!(rendition = %self.name, msn, error = %e, "cannot write a segment to disk; it stays in memory");
            return;
        }
        seg.disk = Some(OnDisk { path, parts });
        if !free {
            return;
        }
        let freed = seg.bytes();
        seg.parts = Vec::new();
        st.bytes -= freed;
        self.total.fetch_sub(freed, Ordering::Relaxed);
    }

    /// Write everything of this ended rendition that is not on disk yet
    /// into `dir` (on the disk writer's thread); free the memory of what is
    /// older than the memory window (the newest stays, where the players
    /// were, until the memory budget asks for it). Returns what the
    /// session's manifest needs.
    pub(super) fn persist(
        &self,
        c: &super::disk::DiskCounters,
        dir: &Path,
    ) -> std::io::Result<RenditionRecord> {
        let window = self
            .disk
            .as_ref()
            .map_or(Duration::ZERO, |(d, _)| d.memory_window());
        let (inits, pending, playlists) = {
            let st = self.read();
            let mut newer = Duration::ZERO;
            let mut pending: Vec<(u64, Vec<Bytes>, bool)> = Vec::new();
            for (&msn, s) in st.segments.iter().rev().filter(|(_, s)| s.complete) {
                let keep = newer < window;
                newer += s.duration;
                if s.disk.is_none() && !s.parts.is_empty() {
                    pending.push((msn, s.parts.clone(), !keep));
                }
            }
            (st.inits.clone(), pending, st.latest.clone())
        };
        for (id, b) in &inits {
            c.write(
                &dir.join(format!("init{id}.mp4")),
                std::slice::from_ref(b),
                true,
            )?;
        }
        if let Some(p) = &playlists {
            c.write(&dir.join(PLAYLIST), std::slice::from_ref(&p.full), false)?;
            c.write(&dir.join(DELTA), std::slice::from_ref(&p.delta), false)?;
        }
        for (msn, parts, free) in pending {
            let path = dir.join(format!("{msn}.m4s"));
            c.write(&path, &parts, true)?;
            let sizes = parts.iter().map(|p| p.len() as u64).collect();
            self.spilled(msn, path.into(), sizes, Ok(()), free);
        }
        let st = self.read();
        let mut inits: Vec<u32> = st.inits.keys().copied().collect();
        inits.sort_unstable();
        Ok(RenditionRecord {
            name: self.name.clone(),
            meta: st.meta.clone(),
            first_msn: st.progress.first_msn,
            last_part: st.progress.last_part,
            last_complete: st.progress.last_complete,
            target_duration_ms: st.progress.target_duration.as_millis() as u64,
            inits,
            segments: st
                .segments
                .iter()
                .filter_map(|(&msn, s)| {
                    let d = s.disk.as_ref().filter(|_| s.complete)?;
                    Some(SegmentRecord {
                        msn,
                        duration_us: s.duration.as_micros() as u64,
                        parts: d.parts.clone(),
                    })
                })
                .collect(),
        })
    }

    /// A rendition of an ended session, served from `dir` as `record` says
    /// (after a restart). Its inits and playlists are read into memory.
    pub(super) fn restore(
        record: &RenditionRecord,
        dir: &Path,
        total: Arc<AtomicUsize>,
        pressed: Arc<AtomicBool>,
        disk: Arc<Disk>,
    ) -> std::io::Result<Arc<Rendition>> {
        let mut st = RenditionState::default();
        for id in &record.inits {
            let b = Bytes::from(std::fs::read(dir.join(format!("init{id}.mp4")))?);
            st.bytes += b.len();
            disk.counted(b.len() as u64);
            st.inits.insert(*id, b);
        }
        let full = Bytes::from(std::fs::read(dir.join(PLAYLIST))?);
        let delta = Bytes::from(std::fs::read(dir.join(DELTA))?);
        st.latest = Some(Playlists {
            full_gzip: crate::gzip::gzip(&full),
            delta_gzip: crate::gzip::gzip(&delta),
            full,
            delta,
        });
        for s in &record.segments {
            let path = dir.join(format!("{}.m4s", s.msn));
            let len = std::fs::metadata(&path)?.len();
            if len != s.parts.iter().sum::<u64>() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not the size its manifest says", path.display()),
                ));
            }
            disk.counted(len);
            st.segments.insert(
                s.msn,
                StoredSegment {
                    disk: Some(OnDisk {
                        path: path.into(),
                        parts: s.parts.clone(),
                    }),
                    complete: true,
                    duration: Duration::from_micros(s.duration_us),
                    ..Default::default()
                },
            );
        }
        st.progress = Progress {
            last_part: record.last_part,
            last_complete: record.last_complete,
            first_msn: record.first_msn,
            ended: true,
            target_duration: Duration::from_millis(record.target_duration_ms),
        };
        st.meta = record.meta.clone();
        total.fetch_add(st.bytes, Ordering::Relaxed);
        let r = Rendition::new(
            &record.name,
            total,
            pressed,
            Some((disk, dir.to_path_buf())),
        );
        *r.state.write().unwrap_or_else(|e| e.into_inner()) = st;
        Ok(r)
    }
}

/// The ended media playlist's files in a rendition's directory.
const PLAYLIST: &str = "playlist.m3u8";
const DELTA: &str = "delta.m3u8";

fn sizes_sum(parts: &[Bytes]) -> u64 {
    parts.iter().map(|p| p.len() as u64).sum()
}

impl Drop for Rendition {
    fn drop(&mut self) {
        let held = self.state.get_mut().map_or(0, |s| s.bytes);
        self.total.fetch_sub(held, Ordering::Relaxed);
    }
}
