//! The RTMP accept loop: one task per connection, bounded in number.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use super::connection::{self, IngestContext};

pub struct RtmpListener {
    pub listener: TcpListener,
    pub ctx: Arc<IngestContext>,
    pub max_connections: usize,
}

impl RtmpListener {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.max_connections));
        loop {
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                _ = shutdown.changed() => break,
            };
            let (tcp, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "RTMP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, max = self.max_connections, "RTMP connection refused: too many connections");
                continue;
            };
            self.ctx.metrics.rtmp_connections.inc();
            let ctx = self.ctx.clone();
            tokio::spawn(async move {
                let result = connection::serve(tcp, peer, ctx.clone()).await;
                connection::report(&ctx, peer, result);
                drop(permit);
            });
        }
    }
}
