//! The RTMP accept loop: one task per connection, admitted by
//! [`crate::ingest::admission`] (a small pending pool with a cap per address
//! until the publish is accepted, then a publisher slot).

use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::connection::{self, IngestContext};
use crate::metrics::ReasonLabel;

pub struct RtmpListener {
    pub listener: TcpListener,
    pub ctx: Arc<IngestContext>,
}

impl RtmpListener {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
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
            let slot = match self.ctx.admission.admit(peer.ip()) {
                Ok(slot) => slot,
                Err(why) => {
                    self.ctx
                        .metrics
                        .rtmp_refusals
                        .get_or_create(&ReasonLabel {
                            reason: why.reason().to_string(),
                        })
                        .inc();
                    if let Some(held_back) =
                        self.ctx.log_limiter.allow(why.reason(), Instant::now())
                    {
                        tracing::warn!(%peer, reason = %why, held_back, "RTMP connection refused");
                    }
                    continue; // dropping the socket closes it
                }
            };
            self.ctx.metrics.rtmp_connections.inc();
            let ctx = self.ctx.clone();
            tokio::spawn(async move {
                let result = connection::serve(tcp, peer, ctx.clone(), slot).await;
                connection::report(&ctx, peer, result);
            });
        }
    }
}
