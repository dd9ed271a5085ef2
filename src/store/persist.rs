//! Ended sessions on disk: `SessionEntry::persist` writes one whole, with
//! its manifest (`session.json`), when it ends; `Store::restore` serves
//! them again at start and deletes what cannot be (a session that was live
//! when castline stopped, or whose VOD time is over). The files are those of
//! [`super::disk`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::catalog::Multivariant;
use super::{Budget, Disk, Rendition, SessionEntry, Store};

use super::rendition::RenditionRecord;

/// A session's `session.json`: written last when it ended, so a session
/// directory holding one is complete; what a restart serves it again from.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Manifest {
    name: String,
    epoch: String,
    /// When the session ended (Unix milliseconds): its VOD time runs from here.
    ended_at_ms: u64,
    independent: bool,
    multivariant: Option<Multivariant>,
    renditions: Vec<RenditionRecord>,
}

/// The multivariant's file in a session's directory.
const MULTIVARIANT: &str = "index.m3u8";
const MANIFEST: &str = "session.json";

/// An ended session served again after a restart, until `ended_at` plus
/// the VOD time.
#[derive(Debug, Clone, PartialEq)]
pub struct Restored {
    pub name: String,
    pub epoch: String,
    pub ended_at: SystemTime,
}

impl SessionEntry {
    /// This session has ended: write what is still only in memory to disk,
    /// then its manifest (so a restart serves it again), and free its media
    /// memory. Without a disk tier it stays in memory. Errors are logged
    /// and counted; the session is then served from memory.
    pub(super) async fn close(self: &Arc<Self>) {
        let now = SystemTime::now();
        *self.ended_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
        // A multivariant request held for a first rendering that will not
        // come (the session ended before it) is answered now.
        self.multivariant_changed.send_replace(());
        let Some(disk) = self.disk.clone() else {
            return;
        };
        let this = self.clone();
        let dir = disk.session_dir(&self.name, &self.epoch);
        let done = disk
            .run(move |c| -> std::io::Result<()> {
                let mut renditions = Vec::new();
                for r in this.renditions() {
                    renditions.push(r.persist(c, &dir.join(r.name()))?);
                }
                let multivariant = this.multivariant_with_model();
                if let Some((_, bytes)) = &multivariant {
                    c.write(&dir.join(MULTIVARIANT), std::slice::from_ref(bytes), false)?;
                }
                let manifest = Manifest {
                    name: this.name.clone(),
                    epoch: this.epoch.clone(),
                    ended_at_ms: unix_ms(now),
                    independent: this.independent(),
                    multivariant: multivariant.map(|(m, _)| (*m).clone()),
                    renditions,
                };
                let json = serde_json::to_vec_pretty(&manifest)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                c.write(&dir.join(MANIFEST), &[Bytes::from(json)], false)
            })
            .await;
        match done {
            Ok(Ok(())) => self.persisted.store(true, Ordering::Relaxed),
            Ok(Err(e)) => {
                tracing::warn!(stream = %self.name, epoch = %self.epoch, error = %e, "cannot keep the ended session on disk; it is kept in memory and lost at restart")
            }
            Err(e) => {
                tracing::warn!(stream = %self.name, error = %e, "cannot keep the ended session on disk")
            }
        }
    }
}

impl Store {
    /// Serve again the ended sessions the disk tier holds that ended less
    /// than `keep` ago, oldest first; delete the others, and every session
    /// that was live when castline stopped (it has no manifest). Returns the
    /// sessions restored.
    pub fn restore(&self, keep: std::time::Duration) -> Vec<Restored> {
        let Some(disk) = self.disk.clone() else {
            return Vec::new();
        };
        let mut found = Vec::new();
        let dirs = |p: &std::path::Path| -> Vec<std::path::PathBuf> {
            std::fs::read_dir(p)
                .map(|d| {
                    d.flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path())
                        .collect()
                })
                .unwrap_or_default()
        };
        let now = SystemTime::now();
        for name_dir in dirs(disk.root()) {
            for dir in dirs(&name_dir) {
                // Its URLs may sit in caches for a year: whether it is kept
                // or deleted now, no later session gets its epoch.
                if let Some(epoch) = dir.file_name().and_then(|e| e.to_str()) {
                    self.epochs.saw(epoch);
                }
                match load_session(
                    &dir,
                    &disk,
                    self.total.clone(),
                    self.budget,
                    self.this.clone(),
                ) {
                    Ok(entry) if entry.ended_at().is_some_and(|t| t + keep > now) => {
                        found.push(entry)
                    }
                    Ok(_) => {
                        tracing::info!(dir = %dir.display(), "a kept session's VOD time is over; deleting it");
                        drop_dir(&dir);
                    }
                    Err(why) => {
                        tracing::info!(dir = %dir.display(), %why, "not a complete ended session (castline stopped while it was live); deleting it");
                        drop_dir(&dir);
                    }
                }
            }
            let _ = std::fs::remove_dir(&name_dir); // only if now empty
        }
        found.sort_by_key(|e| e.ended_at());
        let over = found.len().saturating_sub(self.max_vod);
        for old in found.drain(..over) {
            drop_dir(&disk.session_dir(&old.name, &old.epoch));
        }
        let mut restored = Vec::new();
        for entry in found {
            let mut streams = self.streams.write().unwrap_or_else(|e| e.into_inner());
            if let Some(older) = streams.insert(entry.name.clone(), entry.clone()) {
                self.archive
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((older.name.clone(), older.epoch.clone()), older);
            }
            drop(streams);
            self.ended
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back(entry.clone());
            restored.push(Restored {
                name: entry.name.clone(),
                epoch: entry.epoch.clone(),
                ended_at: entry.ended_at().unwrap_or(now),
            });
        }
        restored
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Delete a session directory found at start (before the writer has work).
fn drop_dir(dir: &std::path::Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot delete a session's files");
    }
}

/// One ended session from its directory, as its manifest says.
fn load_session(
    dir: &std::path::Path,
    disk: &Arc<Disk>,
    total: Arc<AtomicUsize>,
    budget: Budget,
    store: std::sync::Weak<Store>,
) -> Result<Arc<SessionEntry>, String> {
    let text = std::fs::read(dir.join(MANIFEST)).map_err(|e| format!("{MANIFEST}: {e}"))?;
    let m: Manifest = serde_json::from_slice(&text).map_err(|e| format!("{MANIFEST}: {e}"))?;
    let named = dir.ends_with(std::path::Path::new(&m.name).join(&m.epoch));
    if !named || !crate::stream_name::is_valid(&m.name) {
        return Err("the manifest names another session".into());
    }
    let mut renditions = Vec::new();
    let pressed = Arc::<std::sync::atomic::AtomicBool>::default();
    for r in &m.renditions {
        if !crate::stream_name::is_valid(&r.name) {
            return Err(format!("bad rendition name {:?}", r.name));
        }
        let rdir = dir.join(&r.name);
        let rendition = Rendition::restore(r, &rdir, total.clone(), pressed.clone(), disk.clone())
            .map_err(|e| format!("rendition {}: {e}", r.name))?;
        renditions.push(rendition);
    }
    let multivariant = match m.multivariant {
        Some(model) => {
            let bytes = std::fs::read(dir.join(MULTIVARIANT))
                .map_err(|e| format!("{MULTIVARIANT}: {e}"))?;
            Some((Arc::new(model), Bytes::from(bytes)))
        }
        None => None,
    };
    Ok(Arc::new(SessionEntry {
        total,
        budget,
        pressed,
        store,
        name: m.name,
        epoch: m.epoch,
        renditions: RwLock::new(renditions),
        multivariant: RwLock::new(multivariant),
        multivariant_changed: tokio::sync::watch::Sender::new(()),
        independent: std::sync::atomic::AtomicBool::new(m.independent),
        disk: Some(disk.clone()),
        persisted: std::sync::atomic::AtomicBool::new(true),
        ended_at: Mutex::new(Some(
            UNIX_EPOCH + std::time::Duration::from_millis(m.ended_at_ms),
        )),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{bytes_of, pls, segment_of};
    use crate::store::{SnapshotKey, Tier, Update};
    use std::time::Duration;

    #[tokio::test]
    async fn past_the_memory_window_segments_move_to_disk_and_an_ended_session_survives_a_restart()
    {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::open(dir.path().to_path_buf(), Duration::from_secs(2), u64::MAX).unwrap();
        let store = Store::with_disk(8, Budget::default(), Some(disk.clone()));
        let e = store.open_stream("a");
        let r = e.rendition("v");
        r.apply(Update {
            init: Some((1, Bytes::from_static(b"init"))),
            ..Default::default()
        });
        for msn in 0..5 {
            segment_of(&r, msn, "live");
        }
        disk.run(|_| ()).await.unwrap();
        // The newest 2 s (segments 3 and 4) stay in memory; 0-2 are files.
        for msn in 0..3 {
            assert!(
                r.segment(msn).map(|s| s.tier()) == Some(Tier::Disk),
                "{msn}"
            );
        }
        assert!(r.segment(3).map(|s| s.tier()) == Some(Tier::Memory));
        assert_eq!(store.bytes(), 4 + 2 * 200);
        assert_eq!(disk.bytes(), 3 * 200);
        let mut whole = vec![1u8; 100];
        whole.extend([2u8; 100]);
        assert_eq!(bytes_of(r.segment(1)).await, whole);
        assert_eq!(
            bytes_of(r.part(1, 1)).await,
            vec![2u8; 100],
            "a part is a range of its file"
        );
        assert_eq!(bytes_of(r.part(4, 0)).await, vec![4u8; 100]);
        assert!(r.has_part(1, 1) && !r.has_part(1, 2), "on disk: its parts");
        assert!(
            r.has_part(4, 1) && !r.has_part(4, 2),
            "in memory: its parts"
        );
        assert!(r.has_segment(1) && r.has_segment(4) && !r.has_segment(5));

        r.apply(Update {
            ended: true,
            playlists: Some((SnapshotKey::Other, pls("ended"))),
            target_duration: Duration::from_secs(1),
            ..Default::default()
        });
        e.set_multivariant(Arc::new(Multivariant::default()), Bytes::from_static(b"mv"));
        assert!(store.end_session(&e).await.is_empty());
        assert!(e.persisted());
        assert_eq!(
            store.bytes(),
            4 + 2 * 200,
            "an ended session keeps its memory window in memory"
        );
        assert!(r.segment(4).map(|s| s.tier()) == Some(Tier::Memory));
        assert_eq!(disk.bytes(), 5 * 200 + 4, "and all of it on disk");
        assert_eq!(r.release_memory(), 400, "which it gives up under pressure");
        assert_eq!(store.bytes(), 4);
        assert!(r.segment(4).map(|s| s.tier()) == Some(Tier::Disk));
        let epoch = e.epoch().to_string();
        let segment4 = bytes_of(r.segment(4)).await;
        drop((r, e, store));

        // A restart on the same directory: the same bytes under the same names.
        let disk = Disk::open(dir.path().to_path_buf(), Duration::from_secs(2), u64::MAX).unwrap();
        let store = Store::with_disk(8, Budget::default(), Some(disk.clone()));
        let restored = store.restore(Duration::from_secs(60));
        assert_eq!(restored.len(), 1);
        assert_eq!(
            (restored[0].name.as_str(), restored[0].epoch.as_str()),
            ("a", epoch.as_str())
        );
        let e = store.stream("a").expect("served again");
        assert_eq!(e.epoch(), epoch);
        assert_eq!(e.multivariant().unwrap(), Bytes::from_static(b"mv"));
        let r = e.find_rendition("v").unwrap();
        assert_eq!(&r.playlists(None).unwrap().full[..], b"ended");
        assert!(r.progress().ended);
        assert_eq!(r.progress().last_part, Some((4, 1)));
        assert_eq!(r.init(1).unwrap(), Bytes::from_static(b"init"));
        assert_eq!(bytes_of(r.segment(4)).await, segment4);
        assert_eq!(bytes_of(r.part(1, 1)).await, vec![2u8; 100]);
        assert_eq!((store.vod_sessions(), disk.bytes()), (1, 5 * 200 + 4));
        // The name published again gets another epoch; the VOD stays.
        let new = store.open_stream("a");
        assert_ne!(new.epoch(), epoch);
        assert!(store.session("a", &epoch).is_some());
        // Its VOD time over, it is deleted from disk.
        store.remove("a", &epoch);
        disk.run(|_| ()).await.unwrap();
        assert!(!disk.session_dir("a", &epoch).exists());
        assert_eq!(disk.bytes(), 0);
    }

    #[test]
    fn at_start_a_session_that_was_live_or_whose_vod_time_is_over_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::open(dir.path().to_path_buf(), Duration::from_secs(3), u64::MAX).unwrap();
        // Live when castline stopped: segments, no manifest.
        let live = disk.session_dir("live", "e1").join("v");
        std::fs::create_dir_all(&live).unwrap();
        std::fs::write(live.join("0.m4s"), b"x").unwrap();
        // A manifest that lies about its files.
        let bad = disk.session_dir("bad", "e2");
        std::fs::create_dir_all(&bad).unwrap();
        std::fs::write(bad.join(MANIFEST), b"{not json").unwrap();
        let store = Store::with_disk(8, Budget::default(), Some(disk.clone()));
        assert!(store.restore(Duration::from_secs(3600)).is_empty());
        assert!(!disk.session_dir("live", "e1").exists());
        assert!(!disk.session_dir("bad", "e2").exists());
        assert!(store.stream("live").is_none());
    }
}
