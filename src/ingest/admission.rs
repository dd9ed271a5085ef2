//! Who may hold an ingest connection. Connections that have not published
//! yet draw on their own small pool, with a cap per remote address, so a
//! client that opens hundreds of idle sockets holds a handful of pending
//! slots and never the publishers' ones. A connection moves to a publisher
//! slot when its publish is accepted.
//!
//! Pure bookkeeping (no sockets); slots release themselves on drop.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::per_address::PerAddress;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many connections that have not published yet")]
    TooManyPending,
    #[error("too many unpublished connections from this address")]
    TooManyFromAddress,
    #[error("too many publishers")]
    TooManyPublishers,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::TooManyPending => "pending_full",
            Refusal::TooManyFromAddress => "per_address",
            Refusal::TooManyPublishers => "publishers_full",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub pending: usize,
    pub pending_per_address: usize,
    pub publishers: usize,
}

#[derive(Debug, Default)]
struct Counts {
    pending: usize,
    per_address: PerAddress,
    publishers: usize,
}

#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    counts: Mutex<Counts>,
}

/// A connection that has not published yet.
#[derive(Debug)]
pub struct PendingSlot {
    admission: Arc<Admission>,
    /// Its share of its address's.
    address: IpAddr,
}

/// A connection that publishes.
#[derive(Debug)]
pub struct PublisherSlot {
    admission: Arc<Admission>,
}

impl Admission {
    pub fn new(limits: Limits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            counts: Mutex::default(),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new connection from `ip`.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<PendingSlot, Refusal> {
        let mut c = self.counts();
        if c.pending >= self.limits.pending {
            return Err(Refusal::TooManyPending);
        }
        let address = c
            .per_address
            .take(ip, self.limits.pending_per_address)
            .ok_or(Refusal::TooManyFromAddress)?;
        c.pending += 1;
        Ok(PendingSlot {
            admission: self.clone(),
            address,
        })
    }

    /// (pending, publishers) held now.
    pub fn held(&self) -> (usize, usize) {
        let c = self.counts();
        (c.pending, c.publishers)
    }
}

impl PendingSlot {
    /// The connection's publish was accepted: trade this slot for a
    /// publisher's. On refusal the pending slot is kept (and released on drop).
    pub fn promote(self) -> Result<PublisherSlot, (PendingSlot, Refusal)> {
        {
            let mut c = self.admission.counts();
            if c.publishers >= self.admission.limits.publishers {
                drop(c);
                return Err((self, Refusal::TooManyPublishers));
            }
            c.publishers += 1;
        }
        let admission = self.admission.clone();
        drop(self); // releases the pending count
        Ok(PublisherSlot { admission })
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut c = self.admission.counts();
        c.pending = c.pending.saturating_sub(1);
        c.per_address.give_back(self.address);
    }
}

impl Drop for PublisherSlot {
    fn drop(&mut self) {
        let mut c = self.admission.counts();
        c.publishers = c.publishers.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission() -> Arc<Admission> {
        Admission::new(Limits {
            pending: 4,
            pending_per_address: 2,
            publishers: 1,
        })
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn one_address_holds_at_most_its_share_of_pending_slots() {
        let a = admission();
        let _x = a.admit(ip(2)).unwrap();
        let _y = a.admit(ip(2)).unwrap();
        assert_eq!(a.admit(ip(2)).unwrap_err(), Refusal::TooManyFromAddress);
        // Another address still gets in.
        let z = a.admit(ip(1)).unwrap();
        assert_eq!(a.held(), (3, 0));
        drop(z);
        assert_eq!(a.held(), (2, 0));
    }

    #[test]
    fn the_pending_pool_is_bounded_across_addresses() {
        let a = admission();
        let held: Vec<_> = (1..=4).map(|i| a.admit(ip(i)).unwrap()).collect();
        assert_eq!(a.admit(ip(9)).unwrap_err(), Refusal::TooManyPending);
        drop(held);
        assert!(a.admit(ip(9)).is_ok());
    }

    #[test]
    fn publishing_moves_a_connection_out_of_the_pending_pool() {
        let a = admission();
        let p = a.admit(ip(1)).unwrap().promote().unwrap();
        assert_eq!(a.held(), (0, 1));
        let (back, why) = a.admit(ip(1)).unwrap().promote().unwrap_err();
        assert_eq!(why, Refusal::TooManyPublishers);
        assert_eq!(a.held(), (1, 1));
        drop(back);
        drop(p);
        assert_eq!(a.held(), (0, 0));
    }
}
