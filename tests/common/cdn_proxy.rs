//! A stand-in CDN edge for tests: forwards every request to the origin over
//! HTTP/1.1 and adds the header a configured CDN sends (`x-castline-cdn: ID`),
//! so the origin can tell which "CDN" a player fetched through. No caching.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use http::{HeaderValue, Request};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

pub struct CdnProxy {
    pub addr: SocketAddr,
    origin: Arc<OnceLock<SocketAddr>>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl CdnProxy {
    /// Listen on a loopback port of its own; it forwards to the origin set
    /// with [`CdnProxy::forward_to`] (the origin's config names the proxy, so
    /// the proxy comes first). It lives as long as the test process.
    pub fn start(id: &str) -> CdnProxy {
        let origin = Arc::new(OnceLock::new());
        let target = origin.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("proxy address");
        let id = HeaderValue::from_str(id).expect("cdn id");
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let id = id.clone();
                    let target = target.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |mut req: Request<Incoming>| {
                            req.headers_mut().insert("x-castline-cdn", id.clone());
                            let origin = target.get().copied();
                            forward(req, origin)
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tcp), svc)
                            .await;
                    });
                }
            });
        });
        CdnProxy { addr, origin }
    }

    pub fn forward_to(&self, origin: SocketAddr) {
        let _ = self.origin.set(origin);
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn forward(
    req: Request<Incoming>,
    origin: Option<SocketAddr>,
) -> Result<http::Response<Incoming>, BoxError> {
    let origin = origin.ok_or_else(|| std::io::Error::other("the proxy has no origin yet"))?;
    let up = tokio::net::TcpStream::connect(origin).await?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(up)).await?;
    tokio::spawn(conn);
    Ok(send.send_request(req).await?)
}
