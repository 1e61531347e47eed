use backend::config::LogFormat;
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = backend::Config::parse();
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
