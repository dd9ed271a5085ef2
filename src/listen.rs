//! TCP listeners with a backlog of our choosing. `tokio::net::TcpListener::bind`
//! listens with a backlog of 128 here: a join burst (a crowd pressing play at
//! kick-off, a CDN reconnecting its edges) overflows it, and the kernel then
//! drops handshakes that clients retry only after 1 s, 3 s, 7 s.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Where Linux says how far it caps any listen backlog.
const SOMAXCONN: &str = "/proc/sys/net/core/somaxconn";

/// Bind `addr` (with `SO_REUSEADDR`, as `TcpListener::bind` does) and listen
/// with `backlog` finished handshakes waiting for `accept`. The kernel caps
/// the backlog at `net.core.somaxconn` without saying so: see [`kernel_cap`].
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// `net.core.somaxconn`, when the kernel says (Linux).
pub fn kernel_cap() -> Option<u32> {
    parse_cap(&std::fs::read_to_string(SOMAXCONN).ok()?)
}

fn parse_cap(text: &str) -> Option<u32> {
    text.trim().parse().ok()
}

/// Where Linux counts, per network namespace, the handshakes it dropped
/// because a listener's accept queue was full.
const NETSTAT: &str = "/proc/net/netstat";

/// `TcpExtListenOverflows` of this network namespace (in a pod: the pod's
/// own), when the kernel says: the handshakes dropped for a full backlog.
pub fn listen_overflows() -> Option<u64> {
    parse_listen_overflows(&std::fs::read_to_string(NETSTAT).ok()?)
}

/// The `ListenOverflows` column of the `TcpExt:` header line and its values line.
fn parse_listen_overflows(text: &str) -> Option<u64> {
    let mut tcp_ext = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (tcp_ext.next()?, tcp_ext.next()?);
    let at = names
        .split_whitespace()
        .position(|n| n == "ListenOverflows")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// Turns readings of a kernel counter into increments from a baseline (the
/// reading when castline started): what `castline_tcp_listen_overflows_total`
/// adds at each scrape.
#[derive(Debug)]
pub struct Overflows {
    last: std::sync::Mutex<Option<u64>>,
}

impl Overflows {
    /// The reading at start: what came before is not castline's.
    pub fn starting_at(reading: Option<u64>) -> Overflows {
        Overflows {
            last: std::sync::Mutex::new(reading),
        }
    }

    /// How much the counter rose since the last reading (0 for the first
    /// reading, or one lower than the last: a counter that was reset).
    pub fn rise(&self, reading: u64) -> u64 {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let rise = last.map_or(0, |l| reading.saturating_sub(l));
        *last = Some(reading);
        rise
    }
}

/// The backlog the kernel gives instead of `asked`, when its cap is lower
/// (worth a line in the log: raise `net.core.somaxconn`).
pub fn capped(asked: u32, cap: Option<u32>) -> Option<u32> {
    cap.filter(|&cap| cap < asked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_kernel_cap_is_read_and_applied() {
        assert_eq!(parse_cap("4096\n"), Some(4096));
        assert_eq!(parse_cap("many"), None);
        assert_eq!(capped(4096, Some(4096)), None);
        assert_eq!(capped(8192, Some(4096)), Some(4096));
        assert_eq!(capped(4096, None), None);
    }

    #[test]
    fn listen_overflows_are_read_from_the_tcp_ext_lines() {
        let netstat = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\n\
                       TcpExt: 4 23046 23046\n\
                       IpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(parse_listen_overflows(netstat), Some(23046));
        assert_eq!(
            parse_listen_overflows("IpExt: InNoRoutes\nIpExt: 0\n"),
            None
        );
        assert_eq!(
            parse_listen_overflows("TcpExt: ListenDrops\nTcpExt: 1\n"),
            None
        );
        let o = Overflows::starting_at(Some(100));
        assert_eq!(o.rise(100), 0);
        assert_eq!(o.rise(130), 30);
        assert_eq!(o.rise(5), 0, "reset");
        assert_eq!(o.rise(7), 2);
        assert_eq!(Overflows::starting_at(None).rise(50), 0);
    }

    /// Handshakes that complete while nobody accepts: with a small backlog
    /// the kernel drops the rest (their connect would retry after a second);
    /// with ours they all complete.
    async fn handshakes_completed(backlog: u32, clients: usize, wait: Duration) -> usize {
        let listener = bind("127.0.0.1:0".parse().unwrap(), backlog).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut connects = tokio::task::JoinSet::new();
        for _ in 0..clients {
            connects.spawn(async move {
                let c = tokio::net::TcpStream::connect(addr);
                tokio::time::timeout(wait, c).await
            });
        }
        let mut done = 0;
        let mut open = Vec::new();
        while let Some(r) = connects.join_next().await {
            if let Ok(Ok(Ok(stream))) = r {
                done += 1;
                open.push(stream);
            }
        }
        drop(listener);
        done
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_connections_completes_its_handshakes_within_the_backlog() {
        let cap = kernel_cap().unwrap_or(4096);
        let clients = 600.min(cap.saturating_sub(1) as usize);
        assert!(
            clients > 64,
            "net.core.somaxconn {cap} leaves no room for the test"
        );
        // A small backlog: most of the burst is dropped (a dropped handshake
        // is retried only after a second).
        let small = handshakes_completed(64, clients, Duration::from_millis(700)).await;
        assert!(small < clients, "{small} of {clients} with a backlog of 64");
        // A backlog above the burst: every handshake completes. Nobody
        // accepts, so a dropped one would not complete in these 5 s either.
        let ours = handshakes_completed(cap, clients, Duration::from_secs(5)).await;
        assert_eq!(ours, clients, "with a backlog of {cap}");
    }
}
