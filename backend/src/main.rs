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
        command: backend::ops::admin::AdminCommand,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli { command, config } = Cli::parse();
    match command {
        Some(Command::Backup { file }) => {
            let bytes = backend::ops::backup::sqlite(&config, &file).await?;
            println!("backed up to {} ({bytes} bytes)", file.display());
            return Ok(());
        }
        Some(Command::Admin { command }) => {
            return backend::ops::admin::run(&config, command, &mut std::io::stdout().lock()).await;
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

/// The allocator is jemalloc, set up to give memory back: after a burst
/// (tens of thousands of rooms created and abandoned) glibc's allocator
/// kept a third more than a fresh node resident, freed but fragmented, which
/// even `malloc_trim` could not return; this gets within a tenth of it
/// (docs/benchmarks.md, "Rooms created and abandoned").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read before `main` runs; `_RJEM_MALLOC_CONF` in
/// the environment overrides them.
///
/// - `tcache:false`: no per-thread caches. A thread's cache keeps freed
///   objects for that thread alone, and an idle worker's cache is never
///   emptied: with caches a node kept 24 % more than fresh after the burst,
///   without them 6-8 %. Delivering a frame allocates nothing, and the
///   measured throughput and CPU per delivery did not change.
/// - `dirty_decay_ms:1000,muzzy_decay_ms:0`: freed pages go back to the OS
///   within a second, by jemalloc's background thread
///   (`background_thread:true`), not on some later allocation.
#[cfg(not(target_env = "msvc"))]
#[allow(unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: MallocConf = MallocConf(
    c"tcache:false,background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr(),
);

/// A C string pointer that may be a `static`.
#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);

// SAFETY: it points to a constant string that nothing writes.
#[allow(unsafe_code)]
unsafe impl Sync for MallocConf {}
