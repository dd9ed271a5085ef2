//! A TCP relay a test can cut, as a route between an encoder and the
//! server can die: it forwards a local port to the server until
//! [`Relay::cut`], then closes the server's side and keeps reading the
//! encoder's bytes into the void, so the encoder carries on unaware (its
//! other outputs too) while the server hears nothing more on that one.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub struct Relay {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
}

impl Relay {
    /// Listen on a loopback port of its own and relay every connection to
    /// `to`. It lives as long as the test process.
    pub fn start(to: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let addr = listener.local_addr().expect("relay address");
        let cut = Arc::new(AtomicBool::new(false));
        let flag = cut.clone();
        std::thread::spawn(move || {
            for near in listener.incoming().flatten() {
                let Ok(far) = TcpStream::connect(to) else {
                    continue;
                };
                let (near2, far2) = (
                    near.try_clone().expect("clone"),
                    far.try_clone().expect("clone"),
                );
                let flag = flag.clone();
                std::thread::spawn(move || forward(near, far, &flag));
                std::thread::spawn(move || back(far2, near2));
            }
        });
        Relay { addr, cut }
    }

    /// From now on nothing more reaches the server; the encoder's bytes are
    /// read and dropped.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }
}

/// Encoder to server, until the cut; then into the void.
fn forward(mut near: TcpStream, mut far: TcpStream, cut: &AtomicBool) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut open = true;
    loop {
        let n = match near.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if open && cut.load(Ordering::SeqCst) {
            let _ = far.shutdown(Shutdown::Both);
            open = false;
        }
        if open && far.write_all(&buf[..n]).is_err() {
            open = false;
        }
    }
    let _ = far.shutdown(Shutdown::Both);
}

/// Server to encoder, while the server's side is open.
fn back(mut far: TcpStream, mut near: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = far.read(&mut buf) {
        if n == 0 || near.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}
