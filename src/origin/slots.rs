//! Who may hold an origin connection (pure bookkeeping; a slot releases
//! itself on drop). At most `total` at once, so viewers never take the file
//! descriptors that ingest and the disk tier need, and optionally at most
//! `per_address` from one address (`crate::per_address`), so one
//! client cannot take them all from the others. A connection over either
//! limit is closed at once.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::per_address::PerAddress;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the origin holds origin.max_connections connections")]
    Full,
    #[error("this address holds origin.max_connections_per_address connections")]
    PerAddress,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Full => "max_connections",
            Refusal::PerAddress => "per_address",
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    open: usize,
    per_address: PerAddress,
}

#[derive(Debug)]
pub struct Slots {
    total: usize,
    /// 0: no cap per address.
    per_address: usize,
    counts: Mutex<Counts>,
}

/// One open origin connection.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    /// Its share of its address's, with a cap per address.
    address: Option<IpAddr>,
}

impl Slots {
    pub fn new(total: usize, per_address: usize) -> Arc<Slots> {
        Arc::new(Slots {
            total,
            per_address,
            counts: Mutex::default(),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new connection from `ip`.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let mut c = self.counts();
        if c.open >= self.total {
            return Err(Refusal::Full);
        }
        let address = match self.per_address {
            0 => None,
            cap => Some(c.per_address.take(ip, cap).ok_or(Refusal::PerAddress)?),
        };
        c.open += 1;
        Ok(Slot {
            slots: self.clone(),
            address,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts().open
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.slots.counts();
        c.open = c.open.saturating_sub(1);
        if let Some(a) = self.address {
            c.per_address.give_back(a);
        }
    }
}

/// What castline keeps of `open_files` for itself (ingest, disk files,
/// admin, logs): 1,024, or a quarter of a small limit.
pub fn reserved_descriptors(open_files: u64) -> u64 {
    (open_files / 4).min(1_024)
}

/// `origin.max_connections = 0`: the open-files limit less what castline
/// keeps for itself, at least 64.
pub fn auto_max_connections(open_files: u64) -> usize {
    usize::try_from(open_files - reserved_descriptors(open_files))
        .unwrap_or(usize::MAX)
        .max(64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn past_the_total_every_address_is_refused_until_a_slot_frees() {
        let s = Slots::new(2, 0);
        let a = s.admit(ip(1)).unwrap();
        let _b = s.admit(ip(1)).unwrap();
        assert_eq!(s.admit(ip(2)).unwrap_err(), Refusal::Full);
        drop(a);
        assert_eq!(s.open(), 1);
        assert!(s.admit(ip(2)).is_ok());
    }

    #[test]
    fn one_address_holds_at_most_its_share_and_others_still_get_in() {
        let s = Slots::new(10, 2);
        let x = s.admit(ip(2)).unwrap();
        let _y = s.admit(ip(2)).unwrap();
        assert_eq!(s.admit(ip(2)).unwrap_err(), Refusal::PerAddress);
        assert!(s.admit(ip(3)).is_ok(), "another address is not held back");
        drop(x);
        assert!(
            s.admit(ip(2)).is_ok(),
            "a freed slot is the address's again"
        );
    }

    #[test]
    fn the_automatic_cap_leaves_castline_its_own_descriptors() {
        assert_eq!(auto_max_connections(20_000), 18_976);
        assert_eq!(
            auto_max_connections(1_024),
            768,
            "a quarter of a small limit"
        );
        assert_eq!(auto_max_connections(100), 75);
        assert_eq!(auto_max_connections(u64::MAX), (u64::MAX - 1_024) as usize);
    }
}
