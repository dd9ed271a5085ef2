use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use castline::app::App;
use castline::config::Config;

#[derive(Parser)]
#[command(
    name = "castline",
    version,
    about = "Live video pipeline: RTMP in, Low-Latency HLS out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Say which video encoders work on this machine, and why the others don't.
    Probe,
    /// Print a signed playback URL (needs `origin.signing_key` in the config).
    Sign(SignArgs),
}

#[derive(clap::Args)]
struct SignArgs {
    /// The server's TOML configuration (its signing key and public URL).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The stream to sign for.
    #[arg(long)]
    stream: String,
    /// How long the URL plays, e.g. 1h, 30m, 90s.
    #[arg(long, default_value = "1h")]
    ttl: humantime::Duration,
}

fn sign(args: &SignArgs) -> anyhow::Result<String> {
    let cfg = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    cfg.validate()?;
    anyhow::ensure!(
        !cfg.origin.signing_key.is_empty(),
        "origin.signing_key is empty in the config: nothing to sign with"
    );
    anyhow::ensure!(
        castline::stream_name::is_valid(&args.stream),
        "{:?} is not a stream name",
        args.stream
    );
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + std::time::Duration::from(args.ttl).as_secs();
    let sig =
        castline::origin::signed::sign(cfg.origin.signing_key.as_bytes(), &args.stream, expiry);
    let base = if cfg.server.public_url.is_empty() {
        format!("http://localhost:{}", cfg.server.http_listen.port())
    } else {
        cfg.server.public_url.trim_end_matches('/').to_string()
    };
    Ok(format!(
        "{base}/s/{expiry}/{sig}/live/{}/index.m3u8",
        args.stream
    ))
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file (default: built-in defaults, as in config/castline.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, value_name = "ADDR")]
    rtmp_listen: Option<SocketAddr>,
    #[arg(long, value_name = "ADDR")]
    srt_listen: Option<SocketAddr>,
    #[arg(long, value_name = "ADDR")]
    http_listen: Option<SocketAddr>,
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

fn load(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut cfg = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    let s = &mut cfg.server;
    if let Some(a) = args.rtmp_listen {
        s.rtmp_listen = a;
    }
    if let Some(a) = args.srt_listen {
        s.srt_listen = a;
    }
    if let Some(a) = args.http_listen {
        s.http_listen = a;
    }
    if let Some(a) = args.admin_listen {
        s.admin_listen = a;
    }
    if let Some(d) = &args.data_dir {
        s.data_dir = d.clone();
    }
    cfg.validate()?;
    Ok(cfg)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// info for castline; srt-protocol's per-packet lines only when they are
/// errors (a hostile caller must not be able to fill the log through them).
const DEFAULT_LOG: &str = "info,srt_protocol=error,srt_tokio=error";

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| DEFAULT_LOG.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Serve(args) => args,
        Command::Probe => {
            for line in castline::transcode::probe_report() {
                println!("{line}");
            }
            return Ok(());
        }
        Command::Sign(args) => {
            println!("{}", sign(&args)?);
            return Ok(());
        }
    };
    let cfg = load(&args).context("configuration refused")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let rtmp_app = cfg.ingest.app.clone();
    let key_rule = if cfg.ingest.keys.is_empty() {
        "stream key = stream name"
    } else {
        "stream key from [ingest.keys]"
    };
    rt.block_on(async move {
        let app = App::start(cfg).await?;
        // Machine-readable lines (tests and scripts read these), then the human ones.
        if let Some(rtmp) = app.rtmp_addr {
            println!("rtmp listening on {rtmp}");
        }
        if let Some(srt) = app.srt_addr {
            println!("srt listening on {srt}");
        }
        if let Some(push) = app.push_addr {
            println!("push listening on {push}");
        }
        println!("http listening on {}", app.http_addr);
        println!("admin listening on {}", app.admin_addr);
        if let Some(rtmp) = app.rtmp_addr {
            let rtmp_host = if rtmp.ip().is_unspecified() {
                "localhost".to_string()
            } else {
                rtmp.ip().to_string()
            };
            println!(
                "OBS server: rtmp://{rtmp_host}:{}/{rtmp_app}  ({key_rule})",
                rtmp.port()
            );
            if let Some(srt) = app.srt_addr {
                println!(
                    "SRT:        srt://{rtmp_host}:{}?streamid=STREAM  (MPEG-TS)",
                    srt.port()
                );
            }
        }
        println!("playback:   {}/live/STREAM/index.m3u8", app.playback_base);
        shutdown_signal().await;
        tracing::info!("shutting down (a second SIGTERM or Ctrl-C exits at once)");
        tokio::spawn(async {
            shutdown_signal().await;
            tracing::warn!("second signal: exiting without draining");
            std::process::exit(1);
        });
        app.shutdown().await;
        anyhow::Ok(())
    })
}
