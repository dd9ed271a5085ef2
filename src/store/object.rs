//! Storage behind a trait: an [`Object`] is one init, part or segment as
//! the tier holding it keeps it, its length known without reading it, and
//! its bytes read asynchronously, only the range asked for. The origin
//! decides 304, 206 and 416 from the object's identity (ETag) and length,
//! then reads what it sends: a revalidation of a segment on disk reads
//! nothing from disk.
//!
//! The tiers: memory (the buffers the packager made, [`InMemory`]) and disk
//! (a byte range of a file, `disk::FileRange`).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;

use bytes::Bytes;

/// The bytes of an object, once read.
pub type Read = Pin<Box<dyn Future<Output = io::Result<Vec<Bytes>>> + Send + 'static>>;

/// Which tier an object is served from (the label of its reads in metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    Memory,
    Disk,
}

impl Tier {
    pub fn label(self) -> &'static str {
        match self {
            Tier::Memory => "memory",
            Tier::Disk => "disk",
        }
    }
}

/// One stored object, whichever tier holds it.
pub trait Object: Send + Sync + fmt::Debug {
    fn tier(&self) -> Tier;
    /// Its length in bytes.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes `start..end` (end exclusive, clamped to the length). An object
    /// removed meanwhile (it expired) reads as `NotFound`.
    fn read(&self, start: u64, end: u64) -> Read;
}

/// What the store hands the origin for an object.
pub type Stored = Box<dyn Object>;

/// Reads the whole of `object` (tests of the tiers).
#[cfg(test)]
pub async fn read_all(object: &dyn Object) -> io::Result<Vec<Bytes>> {
    object.read(0, object.len()).await
}

/// The memory tier: the object's buffers, shared (a segment is the chain of
/// its parts).
#[derive(Debug, Clone, PartialEq)]
pub struct InMemory(pub Vec<Bytes>);

impl Object for InMemory {
    fn tier(&self) -> Tier {
        Tier::Memory
    }

    fn len(&self) -> u64 {
        self.0.iter().map(|b| b.len() as u64).sum()
    }

    fn read(&self, start: u64, end: u64) -> Read {
        let chunks = slice(&self.0, start, end);
        Box::pin(std::future::ready(Ok(chunks)))
    }
}

/// Bytes `start..end` of the chain `chunks`, sharing the buffers.
fn slice(chunks: &[Bytes], start: u64, end: u64) -> Vec<Bytes> {
    if start >= end {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(chunks.len());
    let mut at = 0u64;
    for c in chunks {
        let (from, to) = (at, at + c.len() as u64);
        at = to;
        if to <= start || from >= end {
            continue;
        }
        let a = start.saturating_sub(from) as usize;
        let b = (end.min(to) - from) as usize;
        out.push(c.slice(a..b));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain() -> InMemory {
        InMemory(vec![
            Bytes::from_static(b"abcd"),
            Bytes::from_static(b"efg"),
        ])
    }

    #[tokio::test]
    async fn a_memory_object_reads_any_range_of_its_chain_without_a_copy() {
        let o = chain();
        assert_eq!((o.tier(), o.len()), (Tier::Memory, 7));
        assert_eq!(read_all(&o).await.unwrap().concat(), b"abcdefg");
        let mid = o.read(2, 6).await.unwrap();
        assert_eq!(
            mid,
            vec![Bytes::from_static(b"cd"), Bytes::from_static(b"ef")]
        );
        assert_eq!(mid[0].as_ptr(), o.0[0][2..].as_ptr(), "shared, not copied");
        assert_eq!(o.read(4, 100).await.unwrap().concat(), b"efg", "clamped");
        assert!(o.read(7, 9).await.unwrap().is_empty());
        assert!(o.read(3, 1).await.unwrap().is_empty(), "an empty range");
    }
}
