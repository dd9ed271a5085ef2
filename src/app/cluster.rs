//! The wiring of `[cluster] role`: where an ingest pod's sessions are
//! pushed, and an origin's push port with its silence check.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinSet;

use super::{bind, packager_config};
use crate::config::{Config, Role};
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::publish::Target;
use crate::store::Store;

/// Where sessions are published: the origins (role `ingest`), else this
/// process's store.
pub(super) fn publish_target(
    cfg: &Config,
    store: &Arc<Store>,
    metrics: &Arc<Metrics>,
    life: &Lifecycle,
) -> anyhow::Result<Target> {
    if cfg.cluster.role != Role::Ingest {
        return Ok(Target::Local {
            store: store.clone(),
            metrics: metrics.clone(),
        });
    }
    let origins = cfg
        .cluster
        .origins
        .iter()
        .filter_map(|o| crate::config::push_authority(o).map(str::to_string))
        .collect();
    let push = crate::publish::push::PushConfig {
        origins,
        secret: cfg.cluster.secret()?,
        queue_bytes: (cfg.cluster.queue_mb * 1024.0 * 1024.0) as usize,
        keep: Config::duration(cfg.hls.dvr_window),
        segment: Config::duration(cfg.hls.segment_duration),
    };
    Ok(Target::Push(crate::publish::push::Pusher::start(
        push,
        metrics.clone(),
        store.held(),
        life.close.clone(),
    )))
}

/// Role `origin`: the push port, and the task that ends pushed sessions
/// whose ingest went silent for longer than a reconnect could take.
pub(super) async fn start_push_port(
    cfg: &Config,
    store: &Arc<Store>,
    metrics: &Arc<Metrics>,
    life: &Lifecycle,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<SocketAddr> {
    let listener = bind(cfg.cluster.listen, "pushes").await?;
    let addr = listener.local_addr()?;
    let receiver = Arc::new(crate::publish::receive::Receiver::new(
        store.clone(),
        metrics.clone(),
        packager_config(cfg),
        life.pipelines.clone(),
        life.stop_vod.clone(),
    ));
    let port =
        crate::publish::listener::PushPort::new(receiver.clone(), cfg.cluster.secret.clone());
    tasks.spawn(port.serve(listener, life.clone()));
    let silent = Config::duration(cfg.ingest.reconnect_grace) + SILENT_PUSHER;
    let stop = life.accept.clone();
    // A draining origin ends no stream: the other origins serve on, and a
    // player it answered with ENDLIST would stop. It leaves the Service's
    // endpoints and finishes the answers in flight.
    tasks.spawn(async move {
        let tick = std::time::Duration::from_secs(1);
        loop {
            let before = std::time::Instant::now();
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(tick) => {}
            }
            // A tick far later than asked: this process did not run.
            if before.elapsed() > 3 * tick {
                receiver.paused();
            } else {
                receiver.end_silent(silent);
            }
        }
    });
    tracing::info!(%addr, "role origin: taking pushes");
    Ok(addr)
}

/// Role `origin`: a pushed session silent for the reconnect grace and this
/// much more has lost its ingest for good.
const SILENT_PUSHER: std::time::Duration = std::time::Duration::from_secs(5);
