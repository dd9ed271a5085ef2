//! The RTMP accept loop: one task per connection, admitted by
//! [`crate::ingest::admission`] (a small pending pool with a cap per address
//! until the publish is accepted, then a publisher slot).

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::connection::{self, IngestContext};

pub struct RtmpListener {
    pub listener: TcpListener,
    pub ctx: Arc<IngestContext>,
}

impl RtmpListener {
    /// Accept until `stop` (the [`crate::lifecycle::Lifecycle`]'s `accept`).
    pub async fn run(self, stop: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                _ = stop.cancelled() => break,
            };
            let (tcp, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "RTMP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let slot = match self.ctx.admission.admit(peer.ip()) {
                Ok(slot) => slot,
                Err(why) => {
                    let refusals = &self.ctx.metrics.rtmp_refusals;
                    let ctx = &self.ctx;
                    ctx.count_failure(
                        refusals,
                        why.reason(),
                        peer,
                        &why,
                        "RTMP connection refused",
                    );
                    continue; // dropping the socket closes it
                }
            };
            self.ctx.metrics.rtmp_connections.inc();
            let ctx = self.ctx.clone();
            self.ctx.tasks.spawn(async move {
                let result = connection::serve(tcp, peer, ctx.clone(), slot).await;
                connection::report(&ctx, peer, result);
            });
        }
    }
}
