//! The composition root: config → bind → wire components → serve → drain.
//! The only place that knows every component.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::admin::Admin;
use crate::capacity;
use crate::config::Config;
use crate::config::Role;
use crate::hub::{Hub, HubLimits};
use crate::ingest::admission::{Admission, Limits};
use crate::ingest::auth::StreamKeys;
use crate::ingest::rtmp::connection::IngestContext;
use crate::ingest::rtmp::RtmpListener;
use crate::ingest::srt::listener::{SrtIngest, SrtSettings};
use crate::lifecycle::Lifecycle;
use crate::log_limit::LogLimiter;
use crate::metrics::Metrics;
use crate::metrics::{BackendLabel, FramePathLabel};
use crate::origin::steering::Cdns;
use crate::package::packager::PackagerConfig;
use crate::package::playlist::PartAddressing;
use crate::package::segmenter::SegmenterConfig;
use crate::pipeline::{self, LadderConfig, PipelineConfig};
use crate::publish::Target;

mod cluster;
use crate::store::Store;
use crate::transcode::worker::{FramePath, SCALE_GRAPH};
use crate::transcode::{self, encoder};
use cluster::{publish_target, start_push_port};

pub struct App {
    /// None in role `origin`.
    pub rtmp_addr: Option<SocketAddr>,
    /// None when `srt.enabled = false`, and in role `origin`.
    pub srt_addr: Option<SocketAddr>,
    /// Role `origin`: where pushes are taken.
    pub push_addr: Option<SocketAddr>,
    pub http_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub playback_base: String,
    admin: Arc<Admin>,
    hub: Arc<Hub>,
    store: Arc<Store>,
    target: Arc<Target>,
    drain: Drain,
    /// The one drain signal and the trackers of every connection (HTTP,
    /// RTMP, SRT) and every stream's pipeline.
    life: Lifecycle,
    /// The capacity sampler (stopped last).
    sampler: tokio::task::JoinHandle<()>,
    /// The accept loops (RTMP, SRT, origin, admin): they end when
    /// `life.accept` is cancelled.
    tasks: JoinSet<()>,
}

/// The stages of a drain (config `server.drain_delay`, `drain_timeout`).
#[derive(Debug, Clone, Copy)]
struct Drain {
    delay: std::time::Duration,
    timeout: std::time::Duration,
}

/// Viewers are the distinct clients of the last one to two of these.
const VIEWER_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// A new stream is refused once the store holds this share of its memory
/// budget.
const ADMIT_BELOW: f64 = 0.9;

/// How long ended streams' packagers get to write ENDLIST, and open
/// connections to finish their answers, before castline exits anyway.
const FINISH: std::time::Duration = std::time::Duration::from_secs(5);

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for {what} on {addr}"))
}

/// The origin's listener, with room for a join burst (`origin.listen_backlog`).
fn bind_http(addr: SocketAddr, backlog: u32) -> anyhow::Result<TcpListener> {
    let listener = crate::listen::bind(addr, backlog)
        .with_context(|| format!("cannot listen for HTTP on {addr}"))?;
    if let Some(given) = crate::listen::capped(backlog, crate::listen::kernel_cap()) {
        tracing::warn!(
            asked = backlog,
            given,
            "the kernel caps the origin's listen backlog at net.core.somaxconn: \
             a larger join burst waits for retried handshakes (raise it with sysctl; \
             in Kubernetes an unsafe sysctl the kubelet must allow)"
        );
    }
    Ok(listener)
}

/// The store, with its disk tier when `hls.disk` is on.
fn open_store(cfg: &Config, memory_budget: usize) -> anyhow::Result<Arc<Store>> {
    let disk = if cfg.hls.disk {
        let root = cfg.server.data_dir.join("sessions");
        let window = Config::duration(cfg.hls.memory_window);
        let budget = (cfg.hls.disk_budget_mb * 1024.0 * 1024.0) as u64;
        Some(crate::store::Disk::open(root, window, budget)?)
    } else {
        None
    };
    let store = Store::with_disk(
        cfg.hls.max_vod_sessions,
        crate::store::Budget {
            total: memory_budget,
            per_stream: (cfg.hls.stream_budget_mb * 1024.0 * 1024.0) as usize,
        },
        disk,
    );
    Ok(store)
}

/// What every rendition's packager and playlist share (TARGETDURATION is set
/// per stream by its cut schedule, `pipeline::Renditions::build`).
fn packager_config(cfg: &Config) -> PackagerConfig {
    PackagerConfig {
        segmenter: SegmenterConfig {
            segment_target: Config::duration(cfg.hls.segment_duration),
            part_target: Config::duration(cfg.hls.part_duration),
        },
        dvr_window: Config::duration(cfg.hls.dvr_window),
        vod_keep: Config::duration(cfg.hls.vod_keep),
        target_duration: Config::duration(cfg.hls.segment_duration)
            .as_secs_f64()
            .ceil()
            .max(1.0) as u32,
        part_addressing: match cfg.hls.part_addressing {
            crate::config::PartAddressing::Files => PartAddressing::Files,
            crate::config::PartAddressing::ByteRanges => PartAddressing::ByteRanges,
        },
    }
}

/// Sessions kept from before a restart go when their VOD time is over.
fn expire_restored(
    restored: Vec<crate::store::Restored>,
    store: &Arc<Store>,
    life: &Lifecycle,
    vod_keep: std::time::Duration,
) {
    for r in restored {
        let keep = (r.ended_at + vod_keep)
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        tracing::info!(stream = %r.name, epoch = %r.epoch, ?keep, "serving an ended session kept on disk");
        let (store, stop) = (store.clone(), life.stop_vod.clone());
        life.pipelines
            .spawn(async move { store.expire_after(&r.name, &r.epoch, keep, &stop).await });
    }
}

/// The base of the playback URLs printed when a stream goes live.
fn playback_base(cfg: &Config, http_addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    if cfg.server.public_url.is_empty() {
        let host = if http_addr.ip().is_unspecified() {
            "localhost".to_string()
        } else {
            http_addr.ip().to_string()
        };
        format!("{scheme}://{host}:{}", http_addr.port())
    } else {
        cfg.server.public_url.trim_end_matches('/').to_string()
    }
}

/// `origin.max_connections`, or (0) what the open-files limit leaves after
/// ingest and the disk tier.
fn origin_max_connections(cfg: &Config) -> usize {
    let open_files = open_files_limit();
    match cfg.origin.max_connections {
        0 => crate::origin::slots::auto_max_connections(open_files),
        n => {
            let reserve = crate::origin::slots::reserved_descriptors(open_files);
            if n as u64 > open_files.saturating_sub(reserve) {
                tracing::warn!(
                    max_connections = n,
                    open_files,
                    "origin.max_connections is above the open-files limit less {reserve}: \
                     viewers can take the descriptors ingest and the disk tier need"
                );
            }
            n
        }
    }
}

/// Why a new stream cannot be taken now (the store near its memory budget,
/// or the limits), if so: given to ingest as `IngestContext::capacity`.
fn admit_new_stream(
    store: Arc<Store>,
    gauge: Arc<capacity::Gauge>,
    budget: usize,
) -> Box<dyn Fn() -> Option<(&'static str, String)> + Send + Sync> {
    Box::new(move || {
        let held = store.bytes();
        // Live streams shrink their DVR to stay within the budget, so the
        // store hovers just under it when full.
        if held as f64 >= ADMIT_BELOW * budget as f64 {
            let why = format!("the server's memory budget is used ({held} of {budget} bytes)");
            return Some(("memory_budget", why));
        }
        gauge.full().map(|why| ("capacity", why))
    })
}

/// Who may fetch from the origin: the CDN secret and signed URLs.
fn origin_access(cfg: &Config) -> crate::origin::Access {
    let access = crate::origin::Access {
        cdn_secret: (!cfg.origin.cdn_secret.is_empty())
            .then(|| {
                http::HeaderName::from_bytes(cfg.origin.cdn_secret_header.as_bytes())
                    .ok()
                    .map(|h| (h, cfg.origin.cdn_secret.clone()))
            })
            .flatten(),
        signing_key: (!cfg.origin.signing_key.is_empty())
            .then(|| cfg.origin.signing_key.as_bytes().to_vec()),
        edge_tokens: cfg.origin.cdn_checks_tokens,
    };
    if access.signing_key.is_some() {
        tracing::info!("origin.signing_key is set: playback URLs must be signed (castline sign)");
    }
    if access.cdn_secret.is_some() {
        tracing::info!(header = %cfg.origin.cdn_secret_header, "origin.cdn_secret is set: HTTP requests without it get 403");
    }
    access
}

/// The SRT listener, when `srt.enabled`.
async fn bind_srt(cfg: &Config, ctx: &Arc<IngestContext>) -> anyhow::Result<Option<SrtIngest>> {
    Ok(if cfg.srt.enabled {
        let settings = SrtSettings {
            passphrase: (!cfg.srt.passphrase.is_empty()).then(|| cfg.srt.passphrase.clone()),
            latency: Config::duration(cfg.srt.latency),
            peer_idle_timeout: Config::duration(cfg.srt.peer_idle_timeout),
        };
        let srt = SrtIngest::bind(cfg.server.srt_listen, settings, ctx.clone())
            .await
            .with_context(|| format!("cannot listen for SRT on {}", cfg.server.srt_listen))?;
        if cfg.srt.passphrase.is_empty() {
            tracing::info!("srt.passphrase is empty: SRT callers are not encrypted");
        }
        Some(srt)
    } else {
        None
    })
}

impl App {
    pub async fn start(cfg: Config) -> anyhow::Result<App> {
        let metrics = Arc::new(Metrics::new());
        let memory_budget = (cfg.hls.memory_budget_mb * 1024.0 * 1024.0) as usize;
        let store = open_store(&cfg, memory_budget)?;
        let vod_keep = Config::duration(cfg.hls.vod_keep);
        let restored = store.restore(vod_keep);
        let pcfg = packager_config(&cfg);
        let ladder = if cfg.transcode.enabled {
            Some(Self::ladder(&cfg, &metrics)?)
        } else {
            tracing::info!("transcode.enabled = false: streams are served as published");
            None
        };
        let cdns = Cdns::new(&cfg.origin);
        let pipeline_cfg = Arc::new(PipelineConfig {
            packager: pcfg,
            segment_duration: Config::duration(cfg.hls.segment_duration),
            max_segment_duration: Config::duration(cfg.hls.max_segment()),
            ladder,
            takeover_after: Config::duration(cfg.ingest.takeover_after),
            inputs: pipeline::InputRules {
                failover_after: Config::duration(cfg.ingest.failover_after),
                failback_after: (cfg.ingest.failback_after > 0.0)
                    .then(|| Config::duration(cfg.ingest.failback_after)),
                slate: Self::slate(&cfg)?,
            },
        });

        // Each new stream gets its pipeline; subscribing here, before the
        // publisher sends, loses nothing. The pipeline does the slow work
        // (opening encoders) in its own task, outside the hub's lock.
        let life = Lifecycle::new();
        let role = cfg.cluster.role;
        let target = Arc::new(publish_target(&cfg, &store, &metrics, &life)?);
        let target2 = target.clone();
        let metrics2 = metrics.clone();
        let (pipelines, stop_vod) = (life.pipelines.clone(), life.stop_vod.clone());
        expire_restored(restored, &store, &life, vod_keep);
        let hub = Hub::new(
            HubLimits {
                grace: Config::duration(cfg.ingest.reconnect_grace),
                takeover_after: Config::duration(cfg.ingest.takeover_after),
                max_queue_bytes: (cfg.ingest.max_queue_mb * 1024.0 * 1024.0) as usize,
            },
            Box::new(move |stream| {
                pipelines.spawn(pipeline::run(
                    pipeline_cfg.clone(),
                    target.clone(),
                    metrics2.clone(),
                    stream.clone(),
                    stream.subscribe(),
                    stop_vod.clone(),
                ));
            }),
        );

        let rtmp = match role {
            Role::Origin => None,
            _ => Some(bind(cfg.server.rtmp_listen, "RTMP").await?),
        };
        // What the kernel had dropped before: not castline's.
        let overflows = crate::listen::Overflows::starting_at(crate::listen::listen_overflows());
        let http = bind_http(cfg.server.http_listen, cfg.origin.listen_backlog)?;
        let admin_l = bind(cfg.server.admin_listen, "admin").await?;
        let rtmp_addr = rtmp.as_ref().map(|l| l.local_addr()).transpose()?;
        let (http_addr, admin_addr) = (http.local_addr()?, admin_l.local_addr()?);
        let tls = match (&cfg.origin.tls_cert, &cfg.origin.tls_key) {
            (Some(cert), Some(key)) => {
                Some(crate::origin::tls::acceptor(cert, key).context("origin TLS")?)
            }
            _ => None,
        };
        let playback_base = playback_base(&cfg, http_addr, tls.is_some());

        let max_connections = origin_max_connections(&cfg);
        let gauge = capacity::Gauge::new(
            capacity::Capacity::from_config(&cfg.limits, memory_budget, max_connections),
            cfg.limits.max_cpu < 1.0,
            cfg.limits.prewarm_windows()?,
        );
        let keys = StreamKeys::new(cfg.ingest.keys.clone());
        if keys.is_open() {
            tracing::warn!("no stream keys configured: publishing is open, and the stream key is the stream name");
        }
        let ctx = Arc::new(IngestContext {
            hub: hub.clone(),
            keys,
            app: cfg.ingest.app.clone(),
            metrics: metrics.clone(),
            handshake_timeout: Config::duration(cfg.ingest.handshake_timeout),
            publish_timeout: Config::duration(cfg.ingest.publish_timeout),
            idle_timeout: Config::duration(cfg.ingest.idle_timeout),
            max_timestamp_jump: Config::duration(cfg.ingest.max_timestamp_jump),
            admission: Admission::new(Limits {
                pending: cfg.ingest.max_pending,
                pending_per_address: cfg.ingest.max_pending_per_address,
                publishers: cfg.ingest.max_connections,
            }),
            log_limiter: LogLimiter::new(std::time::Duration::from_secs(10)),
            capacity: admit_new_stream(store.clone(), gauge.clone(), memory_budget),
            playback_base: playback_base.clone(),
            // Ingest connections are tracked with the HTTP ones: one drain waits for all.
            tasks: life.tasks.clone(),
        });
        let access = origin_access(&cfg);
        let mut tasks = JoinSet::new();
        let srt = match rtmp {
            Some(listener) => {
                let srt = bind_srt(&cfg, &ctx).await?;
                tasks.spawn(RtmpListener { listener, ctx }.run(life.accept.clone()));
                srt
            }
            None => None,
        };
        let srt_addr = srt.as_ref().map(|s| s.local_addr);
        if let Some(srt) = srt {
            tasks.spawn(srt.run(life.accept.clone()));
        }
        let push_addr = if role == Role::Origin {
            Some(start_push_port(&cfg, &store, &metrics, &life, &mut tasks).await?)
        } else {
            None
        };
        let viewers = Arc::new(crate::origin::viewers::Viewers::new(VIEWER_WINDOW));
        let per_address = cfg.origin.max_connections_per_address;
        tracing::info!(max_connections, per_address, "origin connection limits");
        tasks.spawn(
            crate::origin::Origin::new(
                store.clone(),
                metrics.clone(),
                access,
                cdns.clone(),
                viewers.clone(),
                crate::origin::slots::Slots::new(max_connections, per_address),
                Config::duration(cfg.origin.idle_timeout),
            )
            .serve(http, tls, life.clone()),
        );
        let sampler = tokio::spawn(capacity::run(
            gauge.clone(),
            hub.clone(),
            store.clone(),
            metrics.clone(),
            viewers,
        ));
        let admin = Arc::new(Admin {
            gauge,
            metrics,
            store: store.clone(),
            hub: hub.clone(),
            cdns,
            vod_keep,
            ready: false.into(),
            overflows,
            pusher: match &*target2 {
                Target::Push(p) => Some(p.clone()),
                Target::Local { .. } => None,
            },
        });
        tasks.spawn(admin.clone().serve(admin_l, life.clone()));
        admin.ready.store(true, Ordering::Relaxed);
        Ok(App {
            rtmp_addr,
            srt_addr,
            push_addr,
            http_addr,
            admin_addr,
            playback_base,
            admin,
            hub,
            store,
            target: target2,
            drain: Drain {
                delay: Config::duration(cfg.server.drain_delay),
                timeout: Config::duration(cfg.server.drain_timeout),
            },
            life,
            sampler,
            tasks,
        })
    }

    /// The slate's settings, its image checked now (a picture FFmpeg cannot
    /// read is a start-up error, not a surprise at the first outage).
    fn slate(cfg: &Config) -> anyhow::Result<Option<Arc<crate::slate::SlateSettings>>> {
        let settings = cfg.slate.settings();
        if let Some(image) = settings.as_ref().and_then(|s| s.image.as_ref()) {
            transcode::init().context("FFmpeg cannot start")?;
            crate::slate::clip::load_image(image, 64, 36)?;
        }
        Ok(settings)
    }

    /// Probe the encoders once and choose the ladder's backend; a config that
    /// demands NVENC where it cannot run is refused here.
    fn ladder(cfg: &Config, metrics: &Metrics) -> anyhow::Result<LadderConfig> {
        transcode::init().context("FFmpeg cannot start")?;
        let sel = encoder::probe_and_select(cfg.transcode.encoder).map_err(anyhow::Error::msg)?;
        match &sel.fallback_reason {
            Some(why) => {
                tracing::warn!(reason = %why, "NVENC is not available; the ladder runs on libx264")
            }
            None => tracing::info!(backend = sel.backend.label(), "ladder encoder"),
        }
        let frames = Self::frame_path(cfg, sel.backend);
        metrics
            .frame_path
            .get_or_create(&FramePathLabel {
                path: frames.label(),
            })
            .set(1);
        metrics
            .encoder_backend
            .get_or_create(&BackendLabel {
                backend: sel.backend.label(),
            })
            .set(1);
        Ok(LadderConfig {
            backend: sel.backend,
            presets: encoder::Presets {
                x264: cfg.transcode.x264_preset.clone(),
                nvenc: cfg.transcode.nvenc_preset.clone(),
            },
            frames,
            rungs: cfg.transcode.rungs.clone(),
            passthrough: cfg.transcode.passthrough,
            keyframe_interval: (cfg.transcode.keyframe_interval > 0.0)
                .then(|| Config::duration(cfg.transcode.keyframe_interval)),
        })
    }

    /// Where the ladder's frames are decoded and scaled: on the GPU with
    /// NVENC when a CUDA device opens (and `transcode.gpu_frames`), else on
    /// the CPU, saying why.
    fn frame_path(cfg: &Config, backend: encoder::Backend) -> FramePath {
        if std::env::var(SCALE_GRAPH).is_ok_and(|v| v == "software") {
            tracing::warn!("{SCALE_GRAPH}=software: frames are scaled in one software graph per stream (a test hook)");
            return FramePath::SoftwareGraph;
        }
        if backend != encoder::Backend::Nvenc {
            return FramePath::Cpu;
        }
        if !cfg.transcode.gpu_frames {
            tracing::info!("transcode.gpu_frames = false: frames are decoded and scaled on the CPU and uploaded by NVENC");
            return FramePath::Cpu;
        }
        match transcode::open_gpu_path() {
            Ok(device) => {
                tracing::info!("GPU frame path: NVDEC decodes, scale_cuda scales every rung, NVENC encodes from GPU memory");
                FramePath::Cuda(Arc::new(device))
            }
            Err(why) => {
                tracing::warn!(reason = %why, "the GPU frame path cannot run: frames are decoded and scaled on the CPU");
                FramePath::Cpu
            }
        }
    }

    /// Drain, then stop (a Kubernetes scale-in, `SIGTERM`):
    /// 1. not ready at once; everything is still served for `drain_delay`
    ///    while the orchestrator takes this instance out of its endpoints;
    /// 2. new publishers are refused (`draining`), and streams waiting for a
    ///    reconnect end; live publishers get `drain_timeout` to finish, then
    ///    are disconnected; every stream's playlists end (ENDLIST), which
    ///    answers the blocking requests held on them at once;
    /// 3. listeners stop accepting; open connections finish their answers
    ///    and close; every task is waited for.
    pub async fn shutdown(mut self) {
        self.admin.ready.store(false, Ordering::Relaxed);
        self.admin.metrics.draining.set(1);
        tracing::info!(delay = ?self.drain.delay, "draining: not ready; still serving while endpoints are removed");
        tokio::time::sleep(self.drain.delay).await;
        self.hub.start_draining();
        let deadline = tokio::time::Instant::now() + self.drain.timeout;
        tracing::info!(streams = self.hub.open_streams(), timeout = ?self.drain.timeout, "draining: new publishers are refused; live publishers may finish");
        if tokio::time::timeout_at(deadline, self.hub.all_closed())
            .await
            .is_err()
        {
            self.hub.close_publishers();
        }
        // Each stream's pipeline writes its ENDLIST playlists and returns
        // (no VOD is kept by a process that leaves).
        self.life.stop_vod.cancel();
        self.life.pipelines.close();
        if tokio::time::timeout(FINISH, self.life.pipelines.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                pipelines = self.life.pipelines.len(),
                "stream pipelines still running after the drain; leaving them"
            );
        }
        if let Target::Push(pusher) = &*self.target {
            // Each stream's end reaches the origins before this process goes.
            let flushed = async {
                while !pusher.flushed() {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            };
            if tokio::time::timeout(FINISH, flushed).await.is_err() {
                tracing::warn!("origins not sent everything after the drain; leaving");
            }
        }
        tracing::info!(
            ended = self.all_playlists_ended(),
            "draining: every stream's pipeline has finished; closing connections"
        );
        // A viewer between two requests (it just got a playlist from before
        // the end) asks once more and gets the ended one, instead of a
        // refused connection.
        tokio::time::sleep(ENDED_LINGER).await;
        self.life.accept.cancel();
        self.life.close.cancel();
        self.life.tasks.close();
        if tokio::time::timeout(FINISH, self.life.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                connections = self.life.tasks.len(),
                "connections still open after the drain; closing them"
            );
        }
        while self.tasks.join_next().await.is_some() {}
        self.sampler.abort();
        tracing::info!("drained");
    }

    fn all_playlists_ended(&self) -> bool {
        self.store
            .streams()
            .iter()
            .flat_map(|s| s.renditions())
            .all(|r| r.progress().ended)
    }
}

/// How long the origin still answers after every playlist of a draining
/// process has ended.
const ENDED_LINGER: std::time::Duration = std::time::Duration::from_millis(500);

/// The open-files limit, raised first from the soft to the hard limit (a
/// server's connections need descriptors; the soft default is often 1,024).
fn open_files_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let (Some(soft), hard) = (limit.current, limit.maximum) else {
        return u64::MAX; // unlimited
    };
    // An unlimited hard limit: ask for a large finite one (the kernel's
    // nr_open caps it).
    let wanted = hard.unwrap_or(1 << 20);
    if wanted > soft {
        let raised = Rlimit {
            current: Some(wanted),
            maximum: hard,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => {
                tracing::info!(from = soft, to = wanted, "raised the open-files limit");
                return wanted;
            }
            Err(e) => tracing::warn!(error = %e, soft, "cannot raise the open-files limit"),
        }
    }
    soft
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_cuda_device_an_nvenc_ladder_decodes_and_scales_on_the_cpu() {
        // The real probe: transcode::open_gpu_path fails here, as on a node whose
        // GPU has NVENC but whose CUDA device cannot open.
        if encoder::nvidia_device_present() {
            eprintln!("an NVIDIA device is present: this check is for machines without one");
            return;
        }
        crate::transcode::init().unwrap();
        let cfg = Config::default();
        assert!(
            cfg.transcode.gpu_frames,
            "the GPU frame path is the default"
        );
        assert!(matches!(
            App::frame_path(&cfg, encoder::Backend::Nvenc),
            FramePath::Cpu
        ));
        assert!(matches!(
            App::frame_path(&cfg, encoder::Backend::X264),
            FramePath::Cpu
        ));
    }
}
