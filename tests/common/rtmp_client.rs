//! A scripted RTMP client (rml_rtmp's client session over a blocking socket),
//! for tests that need exact control of what a publisher sends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};

/// True when the server closes the connection within `limit` (EOF or reset).
pub fn closed_by_server(tcp: &mut TcpStream, limit: Duration) -> bool {
    tcp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match tcp.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp
}

/// A real RTMP handshake from the client side; returns bytes left over.
pub fn handshake(tcp: &mut TcpStream) -> Vec<u8> {
    let mut hs = Handshake::new(PeerType::Client);
    tcp.write_all(&hs.generate_outbound_p0_and_p1().unwrap())
        .unwrap();
    let mut buf = [0u8; 8192];
    loop {
        let n = tcp.read(&mut buf).unwrap();
        assert!(n > 0, "server closed during handshake");
        match hs.process_bytes(&buf[..n]).unwrap() {
            HandshakeProcessResult::InProgress { response_bytes } => {
                tcp.write_all(&response_bytes).unwrap()
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                tcp.write_all(&response_bytes).unwrap();
                return remaining_bytes;
            }
        }
    }
}

pub fn send(tcp: &mut TcpStream, results: Vec<ClientSessionResult>) -> Vec<ClientSessionEvent> {
    let mut events = Vec::new();
    for r in results {
        match r {
            ClientSessionResult::OutboundResponse(p) => tcp.write_all(&p.bytes).unwrap(),
            ClientSessionResult::RaisedEvent(e) => events.push(e),
            _ => {}
        }
    }
    events
}

/// Drive a client session until `want` is raised.
pub fn until(
    tcp: &mut TcpStream,
    session: &mut ClientSession,
    want: fn(&ClientSessionEvent) -> bool,
) {
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 8192];
    loop {
        let n = tcp.read(&mut buf).expect("server answered");
        assert!(n > 0, "server closed the connection");
        let results = session.handle_input(&buf[..n]).unwrap();
        if send(tcp, results).iter().any(want) {
            return;
        }
    }
}

/// A publisher that gets as far as `publish` accepted, via rml_rtmp's client session.
pub fn publish(addr: SocketAddr, key: &str) -> (TcpStream, ClientSession) {
    let mut tcp = connect(addr);
    let leftover = handshake(&mut tcp);
    let (mut session, initial) = ClientSession::new(ClientSessionConfig::new()).unwrap();
    send(&mut tcp, initial);
    if !leftover.is_empty() {
        let r = session.handle_input(&leftover).unwrap();
        send(&mut tcp, r);
    }
    let r = session.request_connection("live".into()).unwrap();
    send(&mut tcp, vec![r]);
    until(&mut tcp, &mut session, |e| {
        matches!(e, ClientSessionEvent::ConnectionRequestAccepted)
    });
    request_publish(&mut tcp, &mut session, key);
    (tcp, session)
}

/// Ask to publish `key` on an open connection and wait until it is accepted.
pub fn request_publish(tcp: &mut TcpStream, session: &mut ClientSession, key: &str) {
    let r = session
        .request_publishing(key.into(), PublishRequestType::Live)
        .unwrap();
    send(tcp, vec![r]);
    until(tcp, session, |e| {
        matches!(e, ClientSessionEvent::PublishRequestAccepted)
    });
}
