//! Gzip for playlists, at the fastest level: a playlist is text that
//! repeats itself (a long DVR window compresses ~10x), and it is compressed
//! for every part (full and delta forms, kept beside the plain bytes so a
//! viewer asking for gzip costs no compression). Shared by the packager,
//! which renders, and the store, which restores ended sessions from disk.

use bytes::Bytes;

/// `text` gzip-compressed (empty if that fails: served plain), with the
/// calling thread's [`Gzip`]: one deflate state per thread, not per
/// rendition (each holds a few hundred KB; 40 renditions kept 12 MB).
pub fn gzip(text: &[u8]) -> Bytes {
    thread_local! {
        static GZIP: std::cell::RefCell<Gzip> = std::cell::RefCell::new(Gzip::default());
    }
    GZIP.with(|g| match g.try_borrow_mut() {
        Ok(mut g) => g.compress(text),
        Err(_) => Gzip::default().compress(text), // (not reentrant; never nested)
    })
}

/// Gzip (RFC 1952) for playlists, with one deflate state kept and reset.
///
/// flate2's `GzEncoder` builds a new compressor for every call: several
/// hundred KB allocated and zeroed (fresh pages, faults, a TLB flush on
/// release) for a playlist of a few KB, rendered twice per part. That cost
/// more than the compression itself (a 4-stream RTMP profile: 15 % of
/// castline's CPU). The framing here is the 10-byte header GzEncoder writes
/// at level 1 and the CRC-32/length trailer, so the bytes are the same.
pub struct Gzip {
    deflate: flate2::Compress,
}

/// The gzip header: deflate, no flags, no mtime, XFL 4 (fastest), OS unknown.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 0xff];

impl Default for Gzip {
    fn default() -> Self {
        Gzip {
            deflate: flate2::Compress::new(flate2::Compression::fast(), false),
        }
    }
}

impl Gzip {
    /// `text`, gzip-compressed; empty (served plain) if deflate fails.
    pub fn compress(&mut self, text: &[u8]) -> Bytes {
        self.deflate.reset();
        let mut out = Vec::with_capacity(text.len() / 3 + 64);
        out.extend_from_slice(&GZIP_HEADER);
        loop {
            let read = self.deflate.total_in() as usize;
            let Some(rest) = text.get(read..) else {
                return Bytes::new();
            };
            out.reserve(rest.len() / 2 + 64);
            match self
                .deflate
                .compress_vec(rest, &mut out, flate2::FlushCompress::Finish)
            {
                Ok(flate2::Status::StreamEnd) => break,
                Ok(_) => continue,
                Err(_) => return Bytes::new(),
            }
        }
        out.extend_from_slice(&crc32fast::hash(text).to_le_bytes());
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gz_encoder(text: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn a_reused_gzip_writes_what_gz_encoder_writes_and_it_decompresses() {
        use std::io::Read;
        let mut g = Gzip::default();
        let big: String = (0..5000)
            .map(|i| format!("#EXT-X-PART:DURATION=0.2,URI=\"{i}.0.m4s\"\n"))
            .collect();
        for text in ["", "#EXTM3U\n", big.as_str(), "#EXTM3U\n#EXT-X-VERSION:9\n"] {
            let ours = g.compress(text.as_bytes());
            assert_eq!(
                &ours[..],
                &gz_encoder(text.as_bytes())[..],
                "{} bytes",
                text.len()
            );
            let mut back = String::new();
            flate2::read::GzDecoder::new(&ours[..])
                .read_to_string(&mut back)
                .unwrap();
            assert_eq!(back, text);
        }
    }
}
