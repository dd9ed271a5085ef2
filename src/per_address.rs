//! Connections counted per client address, under a cap: the bookkeeping
//! ingest admission and the origin's connection slots share. An IPv6 client
//! counts by its /64 (one host usually holds a whole /64), an IPv4-mapped
//! address as its IPv4 one.

use std::collections::HashMap;
use std::net::IpAddr;

#[derive(Debug, Default)]
pub struct PerAddress {
    counts: HashMap<IpAddr, usize>,
}

impl PerAddress {
    /// One more for `ip` if its holder has fewer than `cap`; the key to
    /// [`give_back`](Self::give_back) with.
    pub fn take(&mut self, ip: IpAddr, cap: usize) -> Option<IpAddr> {
        let key = holder(ip);
        let n = self.counts.get(&key).copied().unwrap_or(0);
        if n >= cap {
            return None;
        }
        self.counts.insert(key, n + 1);
        Some(key)
    }

    /// Gives back one that [`take`](Self::take) returned `key` for.
    pub fn give_back(&mut self, key: IpAddr) {
        if let Some(n) = self.counts.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&key);
            }
        }
    }

    /// Addresses holding at least one now.
    pub fn addresses(&self) -> usize {
        self.counts.len()
    }
}

/// Whose share a connection from `ip` counts against.
fn holder(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !0u128 << 64).into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_takes_up_to_its_cap_and_a_given_back_one_is_its_again() {
        let mut p = PerAddress::default();
        let a = p.take(ip("192.0.2.1"), 2).unwrap();
        assert!(p.take(ip("192.0.2.1"), 2).is_some());
        assert_eq!(p.take(ip("192.0.2.1"), 2), None);
        assert!(p.take(ip("192.0.2.2"), 2).is_some(), "another address");
        p.give_back(a);
        assert!(p.take(ip("192.0.2.1"), 2).is_some());
        assert_eq!(p.take(ip("192.0.2.3"), 0), None, "a cap of 0 takes none");
        assert_eq!(p.addresses(), 2, "a refusal leaves no entry behind");
    }

    #[test]
    fn an_ipv6_client_is_held_to_one_share_for_its_whole_64() {
        let mut p = PerAddress::default();
        let x = p.take(ip("2001:db8:1:2::1"), 1).unwrap();
        assert_eq!(p.take(ip("2001:db8:1:2:ffff::9"), 1), None, "same /64");
        assert!(p.take(ip("2001:db8:1:3::1"), 1).is_some(), "another /64");
        assert!(p.take(ip("::ffff:192.0.2.7"), 1).is_some());
        assert_eq!(
            p.take(ip("192.0.2.7"), 1),
            None,
            "an IPv4-mapped address is its IPv4 one"
        );
        p.give_back(x);
        assert_eq!(p.addresses(), 2);
    }
}
