//! Every stream's sessions: the current one of each name, the ended ones
//! kept as VOD, and the memory budgets they share. Each session's renditions
//! ([`rendition`]) hold the media and playlists as `Bytes`.
//!
//! The store knows nothing of playlist syntax or HTTP: it holds bytes and the
//! progress (last part, last complete segment) that blocking requests wait on.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

pub mod catalog;
pub mod disk;
mod entry;
pub mod epoch;
pub mod object;
mod persist;
pub mod rendition;
pub mod retention;

pub use disk::Disk;
pub use entry::SessionEntry;
pub use object::{Object, Stored, Tier};
pub use persist::Restored;
pub use rendition::{Playlists, Progress, Rendition, RenditionMeta, SnapshotKey, Update};

/// The media bytes the store may hold (`hls.memory_budget_mb`) and one
/// stream may hold (`hls.stream_budget_mb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub total: usize,
    pub per_stream: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            total: usize::MAX,
            per_stream: usize::MAX,
        }
    }
}

/// Which budget makes a live stream give up DVR before its window says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pressure {
    /// The stream holds more than `hls.stream_budget_mb`.
    Stream,
    /// The store holds more than `hls.memory_budget_mb`, with no VOD left
    /// to give up first.
    Memory,
}

impl Pressure {
    pub fn reason(self) -> &'static str {
        match self {
            Pressure::Stream => "stream_budget",
            Pressure::Memory => "memory_budget",
        }
    }
}

/// Every stream's entries: the current session of each name, and ended
/// sessions kept as VOD under their own epoch (still servable after the
/// name goes live again), at most `max_vod` of them, oldest evicted first.
pub struct Store {
    /// Media bytes held by every rendition of every session.
    total: Arc<AtomicUsize>,
    streams: RwLock<HashMap<String, Arc<SessionEntry>>>,
    /// Sessions a newer session of the same name replaced, by (name, epoch).
    archive: RwLock<HashMap<(String, String), Arc<SessionEntry>>>,
    /// Ended sessions, oldest first.
    ended: Mutex<VecDeque<Arc<SessionEntry>>>,
    max_vod: usize,
    budget: Budget,
    /// Itself, handed to each stream (see [`SessionEntry::pressure`]).
    this: std::sync::Weak<Store>,
    disk: Option<Arc<Disk>>,
    /// Issues each session's epoch, never one issued before.
    epochs: epoch::Epochs,
}

impl Store {
    pub fn new() -> Arc<Store> {
        Store::with_limits(usize::MAX, Budget::default())
    }

    /// A store that keeps at most `max_vod` ended sessions.
    pub fn with_vod_limit(max_vod: usize) -> Arc<Store> {
        Store::with_limits(max_vod, Budget::default())
    }

    /// At most `max_vod` ended sessions, and media within `budget`.
    pub fn with_limits(max_vod: usize, budget: Budget) -> Arc<Store> {
        Store::with_disk(max_vod, budget, None)
    }

    /// As [`Store::with_limits`], with older segments and ended sessions on
    /// `disk`.
    pub fn with_disk(max_vod: usize, budget: Budget, disk: Option<Arc<Disk>>) -> Arc<Store> {
        Arc::new_cyclic(|this| Store {
            total: Arc::default(),
            streams: RwLock::default(),
            archive: RwLock::default(),
            ended: Mutex::default(),
            max_vod,
            budget,
            this: this.clone(),
            epochs: disk.as_ref().map_or_else(epoch::Epochs::in_memory, |d| {
                epoch::Epochs::kept_in(d.root())
            }),
            disk,
        })
    }

    pub fn disk(&self) -> Option<&Arc<Disk>> {
        self.disk.as_ref()
    }

    /// The ended sessions kept now, oldest first.
    pub fn vod(&self) -> Vec<Arc<SessionEntry>> {
        self.ended
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// The store is over its memory budget: the oldest ended session that
    /// is on disk and still holds media in memory drops it (it is served
    /// from its files from now on). Returns the bytes freed.
    pub fn release_vod_memory(&self) -> usize {
        if self.bytes() <= self.budget.total {
            return 0;
        }
        let ended: Vec<Arc<SessionEntry>> = self.vod();
        for e in ended.iter().filter(|e| e.persisted()) {
            let freed: usize = e.renditions().iter().map(|r| r.release_memory()).sum();
            if freed > 0 {
                return freed;
            }
        }
        0
    }

    /// The store is over its memory budget: remove the oldest ended
    /// session, if there is one; returns its (name, epoch).
    pub fn evict_oldest_vod(&self) -> Option<(String, String)> {
        if self.bytes() <= self.budget.total {
            return None;
        }
        // A session served from disk holds no media memory: evicting it
        // would free nothing.
        let oldest = {
            let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
            let at = ended.iter().position(|e| !e.persisted())?;
            ended.remove(at)?
        };
        self.forget(&oldest.name, &oldest.epoch);
        Some((oldest.name.clone(), oldest.epoch.clone()))
    }

    /// The disk tier is over its budget: remove the oldest ended session.
    pub fn evict_oldest_vod_from_disk(&self) -> Option<(String, String)> {
        self.disk.as_ref().filter(|d| d.full())?;
        let oldest = self
            .ended
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()?;
        self.forget(&oldest.name, &oldest.epoch);
        Some((oldest.name.clone(), oldest.epoch.clone()))
    }

    /// A fresh entry for a stream that starts now. The name's previous
    /// session, if it is still kept, stays servable under its own epoch.
    pub fn open_stream(&self, name: &str) -> Arc<SessionEntry> {
        // Issued (and recorded on disk) before every origin lookup waits on
        // the streams lock.
        let epoch = self.epochs.next();
        self.open(name, epoch, true)
    }

    /// The session `epoch` of `name` as another process (the ingest pod
    /// that packages it) named it: the current one if it is already open,
    /// else a fresh entry that replaces the name's current session.
    pub fn open_pushed(&self, name: &str, epoch: &str) -> Arc<SessionEntry> {
        match self.session(name, epoch) {
            Some(s) if s.ended_at().is_none() => return s,
            // Ended here (its pushes had stopped) or restored from disk: the
            // pushes rebuild it from the start, in a fresh entry.
            Some(_) => self.remove(name, epoch),
            None => {}
        }
        self.epochs.saw(epoch);
        self.open(name, epoch.to_string(), false)
    }

    fn open(&self, name: &str, mut epoch: String, issued: bool) -> Arc<SessionEntry> {
        let mut streams = self.streams.write().unwrap_or_else(|e| e.into_inner());
        let previous = streams.get(name).cloned();
        // Never an epoch served before (`epochs` already sees to it, from its
        // record and the sessions on disk at start); a directory found here
        // anyway would be another process's: step past it. (Two opens of one
        // name racing to this lock could leave the newer session with the
        // smaller epoch: still unique, which is all a URL needs.)
        while issued
            && (previous.as_ref().is_some_and(|p| p.epoch == epoch)
                || self
                    .disk
                    .as_ref()
                    .is_some_and(|d| d.session_dir(name, &epoch).exists()))
        {
            epoch = self.epochs.next();
        }
        if let Some(p) = previous {
            self.archive
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert((p.name.clone(), p.epoch.clone()), p);
        }
        let entry = Arc::new(SessionEntry {
            total: self.total.clone(),
            budget: self.budget,
            pressed: Arc::default(),
            store: self.this.clone(),
            name: name.to_string(),
            epoch,
            renditions: RwLock::default(),
            multivariant: RwLock::default(),
            multivariant_changed: tokio::sync::watch::Sender::new(()),
            independent: std::sync::atomic::AtomicBool::new(true),
            disk: self.disk.clone(),
            persisted: Default::default(),
            ended_at: Mutex::default(),
        });
        streams.insert(name.to_string(), entry.clone());
        entry
    }

    /// The current session of `name`.
    pub fn stream(&self, name: &str) -> Option<Arc<SessionEntry>> {
        self.streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// The session `epoch` of `name`, current or kept as VOD.
    pub fn session(&self, name: &str, epoch: &str) -> Option<Arc<SessionEntry>> {
        if let Some(s) = self.stream(name).filter(|s| s.epoch == epoch) {
            return Some(s);
        }
        self.archive
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(name.to_string(), epoch.to_string()))
            .cloned()
    }

    pub fn streams(&self) -> Vec<Arc<SessionEntry>> {
        self.streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// `entry`'s session has ended, in one call: it is marked ended, what it
    /// holds only in memory goes to disk with the manifest a restart serves
    /// it again from ([`SessionEntry::close`]), and it is kept as VOD.
    /// Evicts the oldest ended sessions past `hls.max_vod_sessions`; returns
    /// them (name, epoch). [`Store::expire_after`] removes it when its VOD
    /// time is over.
    pub async fn end_session(&self, entry: &Arc<SessionEntry>) -> Vec<(String, String)> {
        entry.close().await;
        self.ended(entry)
    }

    /// Remove session `epoch` of `name` once `keep` has passed, unless
    /// `stop` comes first (a process that leaves keeps no VOD).
    pub async fn expire_after(
        &self,
        name: &str,
        epoch: &str,
        keep: std::time::Duration,
        stop: &tokio_util::sync::CancellationToken,
    ) {
        tokio::select! {
            _ = tokio::time::sleep(keep) => {
                // A session opened again under the same epoch (an origin
                // given a pushed session it had ended) is live: this old
                // VOD timer leaves it.
                if self.session(name, epoch).is_none_or(|s| s.ended_at().is_some()) {
                    self.remove(name, epoch);
                }
            }
            _ = stop.cancelled() => {}
        }
    }

    /// `entry` is kept as VOD. Evicts the oldest ended sessions past the
    /// limit; returns them (name, epoch).
    fn ended(&self, entry: &Arc<SessionEntry>) -> Vec<(String, String)> {
        let evicted: Vec<Arc<SessionEntry>> = {
            let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
            ended.push_back(entry.clone());
            let over = ended.len().saturating_sub(self.max_vod);
            ended.drain(..over).collect()
        };
        evicted
            .into_iter()
            .map(|e| {
                self.forget(&e.name, &e.epoch);
                (e.name.clone(), e.epoch.clone())
            })
            .collect()
    }

    /// The count [`Store::bytes`] reads, for media held outside the store
    /// that counts against its budget (an ingest pod's push journals).
    pub fn held(&self) -> Arc<AtomicUsize> {
        self.total.clone()
    }

    /// Media bytes held now, by every session kept.
    pub fn bytes(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Ended sessions kept now.
    pub fn vod_sessions(&self) -> usize {
        self.ended.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Remove the session `epoch` of `name` (its VOD time is over).
    pub fn remove(&self, name: &str, epoch: &str) {
        self.ended
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|e| !(e.name == name && e.epoch == epoch));
        self.forget(name, epoch);
    }

    fn forget(&self, name: &str, epoch: &str) {
        let mut streams = self.streams.write().unwrap_or_else(|e| e.into_inner());
        if streams.get(name).is_some_and(|s| s.epoch == epoch) {
            streams.remove(name);
        }
        drop(streams);
        self.archive
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(name.to_string(), epoch.to_string()));
        if let Some(d) = &self.disk {
            d.remove_session(name, epoch);
        }
    }
}

#[cfg(test)]
mod tests;
