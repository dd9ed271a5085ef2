//! One stream session: its renditions, its multivariant playlist, whether
//! it is still independent, and its share of the store's budgets.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use bytes::Bytes;

use super::catalog::Multivariant;
use super::{Budget, Disk, Pressure, Rendition, Store};

/// One session of a stream (its epoch names its media URLs): its
/// renditions and its multivariant playlist.
pub struct SessionEntry {
    pub(super) total: Arc<AtomicUsize>,
    pub(super) budget: Budget,
    /// Past a budget at the last look ([`SessionEntry::pressure`]): each
    /// rendition frees what its playlist no longer lists at once instead of
    /// after its retention time.
    pub(super) pressed: Arc<AtomicBool>,
    /// The store, to give up its oldest VOD before a live stream shrinks.
    pub(super) store: std::sync::Weak<Store>,
    pub(super) name: String,
    /// Part of every media URL: a stream published again after it ended gets
    /// a new epoch, so its URLs never collide with cached ones.
    pub(super) epoch: String,
    pub(super) renditions: RwLock<Vec<Arc<Rendition>>>,
    /// The multivariant playlist as rendered, and what it was rendered from.
    pub(super) multivariant: RwLock<Option<(Arc<Multivariant>, Bytes)>>,
    /// Bumped at every rendering, for requests held until the first one.
    pub(super) multivariant_changed: tokio::sync::watch::Sender<()>,
    /// Every segment of every rendition starts with an IDR (until a
    /// passthrough segment had to be cut between keyframes).
    pub(super) independent: std::sync::atomic::AtomicBool,
    /// The disk tier, when there is one.
    pub(super) disk: Option<Arc<Disk>>,
    /// This ended session is all on disk (its VOD holds no media memory).
    pub(super) persisted: std::sync::atomic::AtomicBool,
    /// When it ended, once it has.
    pub(super) ended_at: Mutex<Option<SystemTime>>,
}

impl SessionEntry {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Media bytes held by this stream's renditions.
    pub fn bytes(&self) -> usize {
        self.renditions().iter().map(|r| r.bytes()).sum()
    }

    /// Whether this live stream must list less than its DVR window now:
    /// past its own budget, or past the store's once no VOD is left to go
    /// first (the store then evicts its oldest VOD and the stream keeps its
    /// window). The second value is the VOD evicted, if one was.
    pub fn pressure(&self) -> (Option<Pressure>, Option<(String, String)>) {
        let found = self.find_pressure();
        self.pressed.store(found.0.is_some(), Ordering::Relaxed);
        found
    }

    fn find_pressure(&self) -> (Option<Pressure>, Option<(String, String)>) {
        if self.bytes() > self.budget.per_stream {
            return (Some(Pressure::Stream), None);
        }
        if self.total.load(Ordering::Relaxed) <= self.budget.total {
            return (None, None);
        }
        let Some(store) = self.store.upgrade() else {
            return (Some(Pressure::Memory), None);
        };
        // An ended session on disk gives up its memory copies first.
        if store.release_vod_memory() > 0 {
            return (None, None);
        }
        match store.evict_oldest_vod() {
            Some(evicted) => (None, Some(evicted)),
            None => (Some(Pressure::Memory), None),
        }
    }

    /// Past the disk tier's budget, the oldest ended session is removed
    /// (from disk and memory); returns it (name, epoch).
    pub fn disk_pressure(&self) -> Option<(String, String)> {
        self.disk.as_ref().filter(|d| d.full())?;
        self.store.upgrade()?.evict_oldest_vod_from_disk()
    }

    /// The rendition `name`, created on first use.
    pub fn rendition(&self, name: &str) -> Arc<Rendition> {
        let mut r = self.renditions.write().unwrap_or_else(|e| e.into_inner());
        if let Some(x) = r.iter().find(|x| x.name() == name) {
            return x.clone();
        }
        let disk = self.disk.as_ref().map(|d| {
            let dir = d.session_dir(&self.name, &self.epoch).join(name);
            (d.clone(), dir)
        });
        let x = Rendition::new(name, self.total.clone(), self.pressed.clone(), disk);
        r.push(x.clone());
        x
    }

    /// When this session ended, if it has.
    pub fn ended_at(&self) -> Option<SystemTime> {
        *self.ended_at.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this ended session is served from disk alone.
    pub fn persisted(&self) -> bool {
        self.persisted.load(Ordering::Relaxed)
    }

    pub fn find_rendition(&self, name: &str) -> Option<Arc<Rendition>> {
        self.renditions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|x| x.name() == name)
            .cloned()
    }

    pub fn renditions(&self) -> Vec<Arc<Rendition>> {
        self.renditions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn independent(&self) -> bool {
        self.independent.load(Ordering::Relaxed)
    }

    /// A segment of this stream does not start with an IDR.
    pub fn mark_dependent(&self) {
        self.independent.store(false, Ordering::Relaxed);
    }

    pub fn set_multivariant(&self, model: Arc<Multivariant>, bytes: Bytes) {
        *self.multivariant.write().unwrap_or_else(|e| e.into_inner()) = Some((model, bytes));
        self.multivariant_changed.send_replace(());
    }

    /// The multivariant playlist, waiting up to `limit` for its first
    /// rendering while the session is live (a new stream's renditions each
    /// need a segment first): a player that asks as the stream starts gets
    /// it as soon as it exists, not a 404.
    pub async fn multivariant_within(
        &self,
        limit: std::time::Duration,
    ) -> Option<(Arc<Multivariant>, Bytes)> {
        let mut rx = self.multivariant_changed.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(m) = self.multivariant_with_model() {
                return Some(m);
            }
            if self.ended_at().is_some() {
                return None;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return self.multivariant_with_model(),
            }
        }
    }

    pub fn multivariant(&self) -> Option<Bytes> {
        self.multivariant_with_model().map(|(_, b)| b)
    }

    pub fn multivariant_with_model(&self) -> Option<(Arc<Multivariant>, Bytes)> {
        self.multivariant
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
