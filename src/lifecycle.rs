//! Who owns what when castline stops: the tokens that tell listeners to stop
//! accepting and open connections to finish their answer and close, and the
//! trackers of every connection task and every stream's pipeline, so
//! shutdown can wait for them instead of cutting them when the runtime drops.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long an accept loop waits after an accept error (EMFILE and the like)
/// instead of spinning on it.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Clone, Default)]
pub struct Lifecycle {
    /// Cancelled: listeners stop accepting.
    pub accept: CancellationToken,
    /// Cancelled: every open connection finishes the answers in flight (held
    /// blocking requests included) and closes.
    pub close: CancellationToken,
    /// Every connection task.
    pub tasks: TaskTracker,
    /// Every stream's pipeline task (see [`crate::pipeline::run`]).
    pub pipelines: TaskTracker,
    /// Cancelled: pipelines stop keeping their ended streams as VOD (the
    /// process is leaving), so every pipeline task returns once its
    /// playlists have ended.
    pub stop_vod: CancellationToken,
}

impl Lifecycle {
    pub fn new() -> Lifecycle {
        Lifecycle::default()
    }

    /// The HTTP ports' one accept loop (origin and admin): accept until
    /// `accept` is cancelled, back off on accept errors, and run each
    /// connection `serve(tcp, peer, close)` gives as a task of `tasks`. The
    /// connection must finish its answers and close once `close` is
    /// cancelled; `serve` returns `None` to refuse it (closed at once).
    pub async fn accept_loop<F, Fut>(&self, listener: TcpListener, what: &'static str, mut serve: F)
    where
        F: FnMut(TcpStream, SocketAddr, CancellationToken) -> Option<Fut>,
        Fut: Future<Output = ()> + Send + 'static,
    {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = self.accept.cancelled() => break,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    if let Some(conn) = serve(tcp, peer, self.close.clone()) {
                        self.tasks.spawn(conn);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, port = what, "accept failed; backing off");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
}
