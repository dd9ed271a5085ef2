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
    };
    let cfg = load(&args).context("configuration refused")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let app = App::start(cfg).await?;
        // Machine-readable lines (tests and scripts read these), then the human ones.
        println!("rtmp listening on {}", app.rtmp_addr);
        if let Some(srt) = app.srt_addr {
            println!("srt listening on {srt}");
        }
        println!("http listening on {}", app.http_addr);
        println!("admin listening on {}", app.admin_addr);
        let rtmp_host = if app.rtmp_addr.ip().is_unspecified() {
            "localhost".to_string()
        } else {
            app.rtmp_addr.ip().to_string()
        };
        println!(
            "OBS server: rtmp://{rtmp_host}:{}/live  (stream key = stream name)",
            app.rtmp_addr.port()
        );
        if let Some(srt) = app.srt_addr {
            println!(
                "SRT:        srt://{rtmp_host}:{}?streamid=STREAM  (MPEG-TS)",
                srt.port()
            );
        }
        println!("playback:   {}/live/STREAM/index.m3u8", app.playback_base);
        shutdown_signal().await;
        tracing::info!("shutting down");
        app.shutdown().await;
        anyhow::Ok(())
    })
}
