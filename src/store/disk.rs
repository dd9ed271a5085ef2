//! The disk tier: segments older than the memory window (`hls.memory_window`)
//! and every ended session kept as VOD, as files under
//! `data_dir/sessions/NAME/EPOCH/`, one per object of its URL:
//!
//! ```text
//! NAME/EPOCH/index.m3u8              the multivariant, as last served
//! NAME/EPOCH/session.json            written last, when the session ended
//! NAME/EPOCH/RENDITION/init1.mp4     init segments
//! NAME/EPOCH/RENDITION/42.m4s        segment 42 (its parts are byte ranges)
//! NAME/EPOCH/RENDITION/playlist.m3u8 the ended playlist (and delta.m3u8)
//! ```
//!
//! Writes run on one thread of their own (a bounded queue of jobs, off the
//! async runtime); reads are async ([`FileRange`], an [`Object`](super::object::Object)). A file is written
//! under a temporary name and renamed, so a file that exists is whole; a
//! session directory without `session.json` was live when castline stopped
//! and is deleted at the next start (its URLs then answer 404, never other
//! bytes).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::object::{Object, Read, Tier};

/// Disk jobs waiting for the writer thread; past it a segment stays in
/// memory until the next try (the memory budget still bounds it).
const QUEUE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("cannot use the data directory {path}: {source}")]
    Root { path: PathBuf, source: io::Error },
    #[error("cannot start the disk writer: {0}")]
    Thread(io::Error),
    #[error("the disk writer is gone")]
    Gone,
}

/// One job for the writer thread.
type Job = Box<dyn FnOnce() + Send>;

/// The disk tier's object: a byte range of a file (a segment, or one of its
/// parts).
#[derive(Debug, Clone, PartialEq)]
pub struct FileRange {
    pub path: Arc<Path>,
    pub offset: u64,
    pub len: u64,
}

impl Object for FileRange {
    fn tier(&self) -> Tier {
        Tier::Disk
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn read(&self, start: u64, end: u64) -> Read {
        let end = end.min(self.len);
        let start = start.min(end);
        let (path, at) = (self.path.clone(), self.offset + start);
        let want = end - start;
        Box::pin(async move {
            let want = usize::try_from(want)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "object too large"))?;
            if want == 0 {
                return Ok(Vec::new());
            }
            // One hop to the blocking pool for open + read (tokio::fs makes
            // one per call and copies once more). read_to_end fills the
            // buffer's spare capacity: no zeroing of it first.
            let read = tokio::task::spawn_blocking(move || -> io::Result<Bytes> {
                use std::io::{Read as _, Seek, SeekFrom};
                let mut f = std::fs::File::open(&*path)?;
                f.seek(SeekFrom::Start(at))?;
                let mut buf = Vec::with_capacity(want);
                f.take(want as u64).read_to_end(&mut buf)?;
                if buf.len() != want {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file is shorter than its object",
                    ));
                }
                Ok(Bytes::from(buf))
            });
            Ok(vec![read.await.map_err(io::Error::other)??])
        })
    }
}

/// A segment written to disk: its file and the sizes of its parts, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct OnDisk {
    pub path: Arc<Path>,
    pub parts: Vec<u64>,
}

impl OnDisk {
    /// Part `idx` as a byte range of the file.
    pub fn part(&self, idx: usize) -> Option<FileRange> {
        let len = *self.parts.get(idx)?;
        Some(FileRange {
            path: self.path.clone(),
            offset: self.parts[..idx].iter().sum(),
            len,
        })
    }

    pub fn whole(&self) -> FileRange {
        FileRange {
            path: self.path.clone(),
            offset: 0,
            len: self.parts.iter().sum(),
        }
    }
}

/// The data directory's session files, their writer thread and their count.
pub struct Disk {
    root: PathBuf,
    memory_window: Duration,
    /// Media bytes the tier may hold (`hls.disk_budget_mb`).
    budget: u64,
    jobs: mpsc::Sender<Job>,
    /// Bytes of media files written and not yet deleted.
    bytes: Arc<AtomicU64>,
    /// Writes and deletes that failed.
    errors: Arc<AtomicU64>,
}

impl Disk {
    /// Use `root` (created if missing) for sessions, keeping the newest
    /// `memory_window` of every rendition in memory and at most `budget`
    /// bytes of media on disk.
    pub fn open(
        root: PathBuf,
        memory_window: Duration,
        budget: u64,
    ) -> Result<Arc<Disk>, DiskError> {
        std::fs::create_dir_all(&root).map_err(|source| DiskError::Root {
            path: root.clone(),
            source,
        })?;
        let (jobs, mut rx) = mpsc::channel::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("castline-disk".into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    job();
                }
            })
            .map_err(DiskError::Thread)?;
        Ok(Arc::new(Disk {
            root,
            memory_window,
            budget,
            jobs,
            bytes: Arc::default(),
            errors: Arc::default(),
        }))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn memory_window(&self) -> Duration {
        self.memory_window
    }

    /// The directory of one session (`name` and `epoch` are URL-safe names).
    pub fn session_dir(&self, name: &str, epoch: &str) -> PathBuf {
        self.root.join(name).join(epoch)
    }

    /// Bytes of media on disk now.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The tier holds its budget: the oldest VOD goes, and live segments
    /// stay in memory (where the memory budget bounds them) until it frees.
    pub fn full(&self) -> bool {
        self.bytes() >= self.budget
    }

    /// Disk writes and deletes that failed so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub(super) fn counted(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Queue `job` for the writer thread; false when the queue is full.
    pub(super) fn try_submit(&self, job: impl FnOnce(&DiskCounters) + Send + 'static) -> bool {
        let counters = self.counters();
        self.jobs.try_send(Box::new(move || job(&counters))).is_ok()
    }

    /// Run `job` on the writer thread after every job queued before it, and
    /// wait for its result.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&DiskCounters) -> T + Send + 'static,
    ) -> Result<T, DiskError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let counters = self.counters();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(job(&counters));
            }))
            .await
            .map_err(|_| DiskError::Gone)?;
        rx.await.map_err(|_| DiskError::Gone)
    }

    /// Delete a session's directory (its VOD time is over), on the writer.
    pub fn remove_session(&self, name: &str, epoch: &str) {
        let dir = self.session_dir(name, epoch);
        let queued = self.try_submit(move |c| c.remove_dir(&dir));
        if !queued {
            tracing::warn!(stream = %name, %epoch, "disk queue full; the session's files stay until the next start");
        }
    }

    fn counters(&self) -> DiskCounters {
        DiskCounters {
            bytes: self.bytes.clone(),
            errors: self.errors.clone(),
        }
    }
}

/// What a job on the writer thread counts in.
pub struct DiskCounters {
    bytes: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
}

impl DiskCounters {
    /// Write `chunks` as the file `path` (whole or not at all); counts the
    /// bytes of media files (`media`) on success and every failure.
    pub fn write(&self, path: &Path, chunks: &[Bytes], media: bool) -> io::Result<()> {
        let r = write_whole(path, chunks);
        match &r {
            Ok(()) if media => {
                let n: u64 = chunks.iter().map(|c| c.len() as u64).sum();
                self.bytes.fetch_add(n, Ordering::Relaxed);
            }
            Ok(()) => {}
            Err(_) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        r
    }

    /// Delete the media file `path` of `len` bytes.
    pub fn remove_file(&self, path: &Path, len: u64) {
        match std::fs::remove_file(path) {
            Ok(()) => {
                self.bytes.fetch_sub(len, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(path = %path.display(), error = %e, "cannot delete an expired segment");
            }
        }
    }

    /// Delete a directory and everything in it, uncounting its media.
    pub fn remove_dir(&self, dir: &Path) {
        let held = media_bytes(dir);
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {
                self.bytes.fetch_sub(held, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(dir = %dir.display(), error = %e, "cannot delete a session's files");
            }
        }
    }
}

/// Bytes of the media files (`.m4s`, `.mp4`) under `dir`.
pub(super) fn media_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => media_bytes(&p),
                Ok(_) if is_media(&p) => e.metadata().map_or(0, |m| m.len()),
                _ => 0,
            }
        })
        .sum()
}

fn is_media(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("m4s") | Some("mp4")
    )
}

/// Write under a temporary name, then rename: a reader never sees half a
/// file, and a crash leaves none.
fn write_whole(path: &Path, chunks: &[Bytes]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    for c in chunks {
        f.write_all(c)?;
    }
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::object::read_all;

    #[tokio::test]
    async fn a_segment_written_to_disk_reads_back_whole_and_by_part() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::open(
            dir.path().join("sessions"),
            Duration::from_secs(1),
            u64::MAX,
        )
        .unwrap();
        let path: Arc<Path> = disk.session_dir("a", "e1").join("v/3.m4s").into();
        let parts = vec![Bytes::from_static(b"first"), Bytes::from_static(b"second")];
        let (p, c) = (path.clone(), parts.clone());
        disk.run(move |d| d.write(&p, &c, true))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(disk.bytes(), 11);
        let on = OnDisk {
            path: path.clone(),
            parts: vec![5, 6],
        };
        assert_eq!(
            read_all(&on.whole()).await.unwrap().concat(),
            b"firstsecond"
        );
        let second = on.part(1).unwrap();
        assert_eq!((second.tier(), second.len()), (Tier::Disk, 6));
        assert_eq!(read_all(&second).await.unwrap().concat(), b"second");
        assert_eq!(
            second.read(2, 5).await.unwrap().concat(),
            b"con",
            "a range reads only its bytes"
        );
        assert_eq!(second.read(4, 99).await.unwrap().concat(), b"nd", "clamped");
        assert!(second.read(u64::MAX, 3).await.unwrap().is_empty());
        assert!(on.part(2).is_none());
        let (name, epoch) = ("a", "e1");
        disk.remove_session(name, epoch);
        disk.run(|_| ()).await.unwrap();
        assert_eq!(disk.bytes(), 0);
        let gone = read_all(&on.whole()).await.unwrap_err();
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
        assert_eq!(disk.errors(), 0);
    }

    #[tokio::test]
    async fn a_failed_write_is_counted_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::open(dir.path().to_path_buf(), Duration::from_secs(1), u64::MAX).unwrap();
        // A file where the session directory should be.
        std::fs::write(dir.path().join("a"), b"x").unwrap();
        let path = disk.session_dir("a", "e").join("v/0.m4s");
        let p = path.clone();
        let r = disk
            .run(move |d| d.write(&p, &[Bytes::from_static(b"m")], true))
            .await
            .unwrap();
        assert!(r.is_err());
        assert_eq!((disk.errors(), disk.bytes()), (1, 0));
        assert!(!path.exists());
    }
}
