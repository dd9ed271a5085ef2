//! Session epochs: the name every media URL of a publishing session carries
//! (`/live/NAME/RENDITION/EPOCH/...`). Media is cached as immutable, so an
//! epoch must never be issued twice, across restarts and whatever the clock
//! does. An epoch is the clock in milliseconds (base 36: short, and sorted
//! like time), but never less than one more than the last one issued or
//! found on disk; with the disk tier, that high-water mark is kept in
//! `epoch.last` beside the session directories (no stream name has a dot).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// The file that keeps the last epoch issued, under the sessions root.
pub const FILE: &str = "epoch.last";

const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

pub struct Epochs {
    last: Mutex<u64>,
    file: Option<PathBuf>,
}

impl Epochs {
    /// Epochs that only this process remembers (no disk tier).
    pub fn in_memory() -> Epochs {
        Epochs {
            last: Mutex::new(0),
            file: None,
        }
    }

    /// Epochs that continue after the last one recorded in `root`'s
    /// [`FILE`], if any.
    pub fn kept_in(root: &Path) -> Epochs {
        let file = root.join(FILE);
        let last = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        Epochs {
            last: Mutex::new(last),
            file: Some(file),
        }
    }

    /// An epoch was found on disk (a session from before a restart, kept or
    /// about to be deleted): none at or below it is issued again. A name
    /// that reads as more than a year ahead of the clock was never issued
    /// from a clock (an older castline suffixed a `b` on a collision, which
    /// reads 36 times larger): it is left to the directory check.
    pub fn saw(&self, epoch: &str) {
        self.saw_at(epoch, now_ms());
    }

    fn saw_at(&self, epoch: &str, now_ms: u64) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let plausible = now_ms.max(*last).saturating_add(FUTURE_LIMIT_MS);
        if let Some(n) = decode(epoch).filter(|&n| n <= plausible) {
            *last = (*last).max(n);
        }
    }

    /// A new epoch, now.
    pub fn next(&self) -> String {
        self.next_at(now_ms())
    }

    /// A new epoch at `now_ms`: the clock, or one past the last epoch when
    /// the clock is not past it (it went back, or two sessions started in
    /// the same millisecond). Recorded before it is returned.
    pub fn next_at(&self, now_ms: u64) -> String {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let n = now_ms.max(last.saturating_add(1));
        *last = n;
        if let Some(file) = &self.file {
            if let Err(e) = record(file, n) {
                tracing::warn!(file = %file.display(), error = %e,
                    "cannot record the last session epoch: after a restart with the clock set back, an epoch could be issued again");
            }
        }
        encode(n)
    }
}

/// How far ahead of the clock an epoch found on disk may be and still count.
const FUTURE_LIMIT_MS: u64 = 366 * 24 * 3600 * 1000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Write `n` to `file` whole and durably (a temporary file, synced, renamed,
/// and the rename synced), so a power cut leaves the old record or the new.
fn record(file: &Path, n: u64) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = file.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(format!("{n}\n").as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)?;
    match file.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// `n` in base 36, lower case.
pub fn encode(mut n: u64) -> String {
    let mut s = Vec::new();
    loop {
        s.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

/// An epoch back to its number; `None` for a name that is not one.
pub fn decode(epoch: &str) -> Option<u64> {
    if epoch.is_empty() {
        return None;
    }
    epoch.bytes().try_fold(0u64, |n, b| {
        let d = DIGITS.iter().position(|&x| x == b)? as u64;
        n.checked_mul(36)?.checked_add(d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_base_36_milliseconds() {
        assert_eq!(encode(0), "0");
        assert_eq!(encode(35), "z");
        assert_eq!(encode(36), "10");
        let now = 1_796_000_000_000;
        assert_eq!(decode(&encode(now)), Some(now));
        assert_eq!(decode(""), None);
        assert_eq!(decode("AB"), None);
        assert_eq!(decode("a.b"), None);
        assert_eq!(decode(&"z".repeat(20)), None, "overflow");
    }

    #[test]
    fn epochs_only_increase_when_the_clock_goes_back_or_stands_still() {
        let e = Epochs::in_memory();
        let a = e.next_at(1_000_000);
        let b = e.next_at(1_000_000);
        let c = e.next_at(500);
        let (a, b, c) = (decode(&a), decode(&b), decode(&c));
        assert!(a < b && b < c, "{a:?} {b:?} {c:?}");
        assert_eq!(decode(&e.next_at(2_000_000)), Some(2_000_000));
    }

    #[test]
    fn after_a_restart_no_epoch_is_issued_again_even_with_the_clock_set_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = Epochs::kept_in(dir.path()).next_at(5_000_000);
        // The next process starts with its clock an hour behind.
        let again = Epochs::kept_in(dir.path());
        let second = again.next_at(5_000_000 - 3_600_000);
        assert!(decode(&second) > decode(&first), "{first} then {second}");
        // An epoch found on disk beyond the record counts too.
        again.saw(&encode(9_000_000));
        assert_eq!(decode(&again.next_at(1)), Some(9_000_001));
        again.saw("not-an-epoch");
        assert_eq!(decode(&again.next_at(1)), Some(9_000_002));
    }

    #[test]
    fn an_epoch_far_in_the_future_does_not_drag_the_clock_along() {
        let e = Epochs::in_memory();
        let now = 1_796_000_000_000;
        // An older castline's collision suffix: "…b" reads 36 times larger.
        let suffixed = format!("{}b", encode(now));
        e.saw_at(&suffixed, now);
        e.saw_at(&encode(now + 3_600_000), now);
        assert_eq!(decode(&e.next_at(now)), Some(now + 3_600_001));
    }
}
