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
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::{Duration, Instant, SystemTime};

    /// The tier and bytes of `s` (memory reads are ready at once).
    fn contents(s: Option<Stored>) -> Option<(Tier, Vec<u8>)> {
        let s = s?;
        let bytes = futures::executor::block_on(object::read_all(&*s)).ok()?;
        Some((s.tier(), bytes.concat()))
    }

    pub(super) fn pls(s: &'static str) -> Playlists {
        Playlists {
            full: Bytes::from_static(s.as_bytes()),
            delta: Bytes::from_static(s.as_bytes()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn parts_complete_into_segments_and_wake_waiters() {
        let store = Store::new();
        let r = store.open_stream("a").rendition("source");
        let mut rx = r.subscribe();
        r.apply(Update {
            part: Some((0, 0, Bytes::from_static(b"p0"))),
            playlists: Some((SnapshotKey::Part(0, 0), pls("one"))),
            ..Default::default()
        });
        rx.changed().await.unwrap();
        r.apply(Update {
            part: Some((0, 1, Bytes::from_static(b"p1"))),
            segment_complete: Some((0, Duration::from_secs(1))),
            playlists: Some((SnapshotKey::Part(0, 1), pls("two"))),
            ..Default::default()
        });
        assert_eq!(
            contents(r.segment(0)),
            Some((Tier::Memory, b"p0p1".to_vec()))
        );
        assert_eq!(r.progress().last_part, Some((0, 1)));
        assert_eq!(
            &r.playlists(Some(SnapshotKey::Part(0, 0))).unwrap().full[..],
            b"one"
        );
        assert_eq!(&r.playlists(None).unwrap().full[..], b"two");
        r.apply(Update {
            first_msn: 1,
            ..Default::default()
        });
        assert!(r.segment(0).is_some(), "unlisted, still servable for 1 s");
    }

    #[test]
    fn a_parts_rendering_is_one_allocation_handed_to_every_lookup_for_it() {
        let store = Store::new();
        let r = store.open_stream("a").rendition("source");
        let rendered = Bytes::from(b"#EXTM3U\n...0.0\n".to_vec());
        r.apply(Update {
            part: Some((0, 0, Bytes::from_static(b"p0"))),
            playlists: Some((
                SnapshotKey::Part(0, 0),
                Playlists {
                    full: rendered.clone(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        });
        // A later part renders anew; the waiters of 0.0 still get 0.0's.
        r.apply(Update {
            part: Some((0, 1, Bytes::from_static(b"p1"))),
            playlists: Some((SnapshotKey::Part(0, 1), pls("later"))),
            ..Default::default()
        });
        // What each request held for 0.0 looks up when it wakes.
        let waiters: Vec<Bytes> = (0..3)
            .map(|_| r.playlists(Some(SnapshotKey::Part(0, 0))).unwrap().full)
            .collect();
        for w in &waiters {
            assert_eq!(w.as_ptr(), rendered.as_ptr(), "one allocation, no copy");
            assert_eq!(w.len(), rendered.len());
        }
        assert_eq!(&r.playlists(None).unwrap().full[..], b"later");
    }

    /// Segment `msn` of rendition `r`: two parts of 100 bytes of `msn`.
    pub(super) fn segment_of(r: &Rendition, msn: u64, text: &'static str) {
        for idx in 0..2 {
            r.apply(Update {
                part: Some((msn, idx, Bytes::from(vec![msn as u8 + idx as u8; 100]))),
                segment_complete: (idx == 1).then_some((msn, Duration::from_secs(1))),
                playlists: Some((SnapshotKey::Part(msn, idx), pls(text))),
                target_duration: Duration::from_secs(1),
                ..Default::default()
            });
        }
    }

    pub(super) async fn bytes_of(s: Option<Stored>) -> Vec<u8> {
        let s = s.expect("stored");
        object::read_all(&*s).await.expect("readable").concat()
    }

    #[tokio::test]
    async fn past_the_disk_budget_the_oldest_vod_goes_and_live_segments_stay_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::open(dir.path().to_path_buf(), Duration::from_secs(3), 1_000).unwrap();
        let store = Store::with_disk(8, Budget::default(), Some(disk.clone()));
        let old = store.open_stream("old");
        let r = old.rendition("v");
        for msn in 0..6 {
            segment_of(&r, msn, "x");
        }
        store.end_session(&old).await;
        assert_eq!(disk.bytes(), 1_200, "the VOD is on disk");
        let live = store.open_stream("live");
        let lr = live.rendition("v");
        for msn in 0..6 {
            segment_of(&lr, msn, "x");
        }
        disk.run(|_| ()).await.unwrap();
        assert!(
            lr.segment(0).map(|s| s.tier()) == Some(Tier::Memory),
            "nothing more goes to a full disk"
        );
        let old_epoch = old.epoch().to_string();
        assert_eq!(
            live.disk_pressure(),
            Some(("old".into(), old_epoch.clone()))
        );
        disk.run(|_| ()).await.unwrap();
        assert_eq!(disk.bytes(), 0);
        assert!(store.session("old", &old_epoch).is_none());
        assert_eq!(live.disk_pressure(), None, "within the budget again");
        segment_of(&lr, 6, "x");
        disk.run(|_| ()).await.unwrap();
        assert!(
            lr.segment(0).map(|s| s.tier()) == Some(Tier::Disk),
            "spilling again"
        );
    }

    #[tokio::test]
    async fn under_memory_pressure_a_vod_on_disk_gives_up_its_memory_before_any_is_evicted() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::open(dir.path().to_path_buf(), Duration::from_secs(60), u64::MAX).unwrap();
        let budget = Budget {
            total: 1_500,
            per_stream: usize::MAX,
        };
        let store = Store::with_disk(8, budget, Some(disk.clone()));
        let vod = store.open_stream("vod");
        let r = vod.rendition("v");
        for msn in 0..5 {
            segment_of(&r, msn, "x");
        }
        store.end_session(&vod).await;
        assert_eq!(store.bytes(), 1_000, "kept in memory within its window");
        let live = store.open_stream("live");
        let _lr = hold(&live, 900);
        assert_eq!(
            live.pressure(),
            (None, None),
            "memory freed, nothing evicted"
        );
        assert_eq!(store.bytes(), 900);
        assert!(
            store.session("vod", vod.epoch()).is_some(),
            "the VOD is still served"
        );
        assert_eq!(bytes_of(r.segment(4)).await, {
            let mut v = vec![4u8; 100];
            v.extend([5u8; 100]);
            v
        });
    }

    #[tokio::test]
    async fn a_pushed_session_ended_here_and_pushed_again_starts_fresh_under_its_epoch() {
        let store = Store::new();
        let first = store.open_pushed("s", "e1");
        assert!(Arc::ptr_eq(&first, &store.open_pushed("s", "e1")));
        store.end_session(&first).await;
        let again = store.open_pushed("s", "e1");
        assert!(!Arc::ptr_eq(&first, &again), "a fresh entry");
        assert_eq!(again.epoch(), "e1");
        assert!(again.ended_at().is_none());
        // The ended session's VOD timer leaves the live one.
        let stop = tokio_util::sync::CancellationToken::new();
        store.expire_after("s", "e1", Duration::ZERO, &stop).await;
        assert!(store.session("s", "e1").is_some());
    }

    #[test]
    fn a_republished_stream_gets_a_new_epoch() {
        let store = Store::new();
        let a = store.open_stream("a").epoch().to_string();
        let b = store.open_stream("a").epoch().to_string();
        assert_ne!(a, b);
        store.remove("a", &a);
        assert!(
            store.stream("a").is_some(),
            "removing a stale epoch keeps the new entry"
        );
        store.remove("a", &b);
        assert!(store.stream("a").is_none());
    }

    #[tokio::test]
    async fn a_crashed_session_deleted_at_restart_never_lends_its_epoch_to_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            let disk = Disk::open(dir.path().to_path_buf(), Duration::from_secs(3), 1 << 30);
            Store::with_disk(8, Budget::default(), Some(disk.unwrap()))
        };
        // A session that was live when castline stopped, written while the
        // clock ran an hour ahead of the one it has now: no manifest.
        let ahead = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
            + 3_600_000;
        let crashed = epoch::encode(ahead);
        std::fs::create_dir_all(dir.path().join("game").join(&crashed)).unwrap();
        let store = open();
        assert!(store.restore(Duration::from_secs(60)).is_empty());
        assert!(
            !dir.path().join("game").join(&crashed).exists(),
            "deleted at start"
        );
        let fresh = store.open_stream("game").epoch().to_string();
        assert!(
            epoch::decode(&fresh) > Some(ahead),
            "{fresh} reissues or precedes {crashed}"
        );
        // And the next restart remembers it without the directory.
        let again = open().open_stream("game").epoch().to_string();
        assert!(epoch::decode(&again) > epoch::decode(&fresh));
    }

    #[test]
    fn an_ended_session_stays_servable_under_its_epoch_after_the_name_goes_live_again() {
        let store = Store::new();
        let old = store.open_stream("a");
        old.rendition("v").apply(Update {
            part: Some((0, 0, Bytes::from_static(b"old"))),
            ..Default::default()
        });
        store.ended(&old);
        let new = store.open_stream("a");
        assert_eq!(store.stream("a").unwrap().epoch(), new.epoch());
        let kept = store.session("a", old.epoch()).expect("old session kept");
        assert_eq!(
            contents(kept.find_rendition("v").unwrap().part(0, 0)),
            Some((Tier::Memory, b"old".to_vec()))
        );
        assert!(store.session("a", "nope").is_none());
        store.remove("a", old.epoch());
        assert!(store.session("a", old.epoch()).is_none());
        assert!(store.stream("a").is_some(), "the live session is untouched");
    }

    #[test]
    fn past_the_vod_limit_the_oldest_ended_session_goes_first() {
        let store = Store::with_vod_limit(2);
        let entries: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|n| store.open_stream(n))
            .collect();
        assert!(store.ended(&entries[0]).is_empty());
        assert!(store.ended(&entries[1]).is_empty());
        let evicted = store.ended(&entries[2]);
        assert_eq!(
            evicted,
            vec![("a".to_string(), entries[0].epoch().to_string())]
        );
        assert!(store.stream("a").is_none());
        assert!(store.stream("b").is_some() && store.stream("c").is_some());
        assert_eq!(store.vod_sessions(), 2);
    }

    #[test]
    fn the_store_counts_the_media_bytes_it_holds_and_frees() {
        let store = Store::new();
        let e = store.open_stream("a");
        let r = e.rendition("v");
        r.apply(Update {
            init: Some((1, Bytes::from(vec![0; 100]))),
            part: Some((0, 0, Bytes::from(vec![0; 1000]))),
            ..Default::default()
        });
        assert_eq!(store.bytes(), 1100);
        // A complete segment is its parts: no second copy.
        r.apply(Update {
            segment_complete: Some((0, Duration::from_secs(1))),
            ..Default::default()
        });
        assert_eq!(store.bytes(), 1100);
        // Unlisted, the segment stays servable for its 1 s plus the
        // playlist's 3 s (RFC 8216 6.2.2), then its bytes are freed.
        let t = Instant::now();
        let unlisted = || Update {
            first_msn: 1,
            playlist_duration: Duration::from_secs(3),
            ..Default::default()
        };
        r.apply_at(unlisted(), t);
        r.apply_at(unlisted(), t + Duration::from_millis(3990));
        assert_eq!(
            store.bytes(),
            1100,
            "kept while a player may still reach it"
        );
        assert!(r.segment(0).is_some() && r.part(0, 0).is_some());
        r.apply_at(unlisted(), t + Duration::from_secs(4));
        assert_eq!(store.bytes(), 100, "then freed");
        assert!(r.segment(0).is_none());
        drop(r);
        store.remove("a", e.epoch());
        drop(e);
        assert_eq!(store.bytes(), 0, "a removed stream frees everything");
    }

    fn hold(e: &SessionEntry, bytes: usize) -> Arc<Rendition> {
        let r = e.rendition("v");
        r.apply(Update {
            part: Some((0, 0, Bytes::from(vec![0; bytes]))),
            ..Default::default()
        });
        r
    }

    #[test]
    fn a_stream_over_its_budget_is_pressed_to_shorten_its_window() {
        let budget = Budget {
            total: 10_000,
            per_stream: 1_000,
        };
        let store = Store::with_limits(8, budget);
        let (small, big) = (store.open_stream("small"), store.open_stream("big"));
        let _r = (hold(&small, 900), hold(&big, 1_001));
        assert_eq!(small.pressure(), (None, None));
        assert_eq!(big.pressure(), (Some(Pressure::Stream), None));
    }

    #[test]
    fn past_the_memory_budget_the_oldest_vod_goes_before_any_live_window_shrinks() {
        let budget = Budget {
            total: 2_500,
            per_stream: 10_000,
        };
        let store = Store::with_limits(8, budget);
        let (old, newer) = (store.open_stream("old"), store.open_stream("newer"));
        let live = store.open_stream("live");
        drop((hold(&old, 1_000), hold(&newer, 1_000)));
        let _live_media = hold(&live, 1_000);
        assert!(store.ended(&old).is_empty() && store.ended(&newer).is_empty());
        let old_epoch = old.epoch().to_string();
        drop((old, newer));
        // 3,000 bytes held: the oldest VOD is evicted, the live window stays.
        assert_eq!(
            live.pressure(),
            (None, Some(("old".to_string(), old_epoch)))
        );
        assert_eq!(store.bytes(), 2_000);
        assert_eq!(live.pressure(), (None, None), "within the budget again");
        // Over it with no VOD left to go: the live stream gives way.
        let _more = store.open_stream("more");
        let _more_media = hold(&_more, 1_000);
        assert!(live.pressure().1.is_some(), "the last VOD goes first");
        let _extra = hold(&store.open_stream("extra"), 1_000);
        assert_eq!(live.pressure(), (Some(Pressure::Memory), None));
    }
}
