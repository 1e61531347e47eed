use std::path::PathBuf;

use backend::config::LogFormat;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Hearth: real-time rooms and chat over WebSockets. With no command, serves.
#[derive(Parser)]
#[command(name = "hearth", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: backend::Config,
}

#[derive(Subcommand)]
enum Command {
    /// Writes a consistent copy of the SQLite store to FILE, while the
    /// server runs (same --data-dir / HEARTH_DATA_DIR as the server's).
    Backup {
        /// Where to write the copy; must not exist.
        file: PathBuf,
    },
    /// Operators' commands against the same store (output: JSON Lines).
    Admin {
        #[command(subcommand)]
        command: backend::admin::AdminCommand,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli { command, config } = Cli::parse();
    match command {
        Some(Command::Backup { file }) => {
            let bytes = backend::backup::sqlite(&config, &file).await?;
            println!("backed up to {} ({bytes} bytes)", file.display());
            return Ok(());
        }
        Some(Command::Admin { command }) => {
            return backend::admin::run(&config, command, &mut std::io::stdout().lock()).await;
        }
        None => {}
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .init(),
    }
    let drain = std::time::Duration::from_millis(config.drain_ms);
    let server = backend::start(config).await?;
    let stop = server.shutdown_token();
    let state = server.state().clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        if !drain.is_zero() {
            // Not ready any more, but still serving: the load balancer
            // notices (`/readyz`) and sends new clients elsewhere first.
            tracing::info!(?drain, "draining: /readyz answers 503");
            state.begin_draining();
            tokio::select! {
                _ = tokio::time::sleep(drain) => {}
                _ = wait_for_signal() => {}
            }
        }
        tracing::info!("shutting down: closing connections with 1001");
        stop.cancel();
        // A second signal means "now".
        wait_for_signal().await;
        std::process::exit(130);
    });
    server.wait().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
