//! Accepting connections. Our own accept loop rather than `axum::serve`,
//! for what that cannot do:
//!
//! - a deadline for a request's headers (`--header-timeout-ms`), so a
//!   client that sends half a request, or nothing, is closed instead of
//!   holding a socket forever (slowloris);
//! - caps on HTTP connections open at once, per client address (so one
//!   address cannot take every file descriptor) and per node (so many
//!   addresses cannot either); a connection over one is closed as soon as
//!   it is accepted (a body that never comes is cut by the request
//!   deadline, `request_deadline` in lib.rs);
//! - `TCP_NODELAY`: frames are small and latency is the product; without
//!   it a frame written while an earlier one is unacknowledged waits for
//!   the peer's delayed ACK (up to 40 ms).
//!
//! The cap counts connections until they are upgraded to a WebSocket; open
//! WebSockets have their own caps (see `slots.rs`), below the process's
//! file limit, so there is always room to answer `/healthz` and sign-in.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long in-flight HTTP requests may take to finish on shutdown.
const DRAIN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub per_ip: usize,
    /// From all addresses together.
    pub total: usize,
    pub header_timeout: Duration,
}

/// Open HTTP connections per client address, and in all.
#[derive(Default)]
struct Open {
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    by_ip: HashMap<IpAddr, usize>,
    total: usize,
}

/// Why a connection was closed on accept.
#[derive(Debug, Clone, Copy)]
enum Full {
    Address,
    Node,
}

/// One admitted connection; gives its place back when dropped.
struct Admitted {
    open: Arc<Open>,
    ip: IpAddr,
}

impl Open {
    fn admit(self: &Arc<Self>, ip: IpAddr, limits: &HttpLimits) -> Result<Admitted, Full> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.total >= limits.total {
            return Err(Full::Node);
        }
        let count = counts.by_ip.entry(ip).or_default();
        if *count >= limits.per_ip {
            return Err(Full::Address);
        }
        *count += 1;
        counts.total += 1;
        Ok(Admitted {
            open: self.clone(),
            ip,
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut counts = self.open.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total -= 1;
        if let Some(count) = counts.by_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.by_ip.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, then lets in-flight
/// requests finish (upgraded WebSockets are the sessions' business).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) {
    let open = Arc::new(Open::default());
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, most likely: back off a
                    // little instead of spinning; connections will close.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let admitted = match open.admit(peer.ip(), &limits) {
            Ok(admitted) => admitted,
            Err(full) => {
                tracing::debug!(ip = %peer.ip(), ?full, "too many HTTP connections; closed");
                crate::prometheus::rate_limited(match full {
                    Full::Address => "http_connections_per_ip",
                    Full::Node => "http_connections_per_node",
                });
                drop(stream);
                continue;
            }
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%err, "could not set TCP_NODELAY");
        }
        let router = router.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _admitted = admitted;
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request
                        .extensions_mut()
                        .insert(ConnectInfo::<SocketAddr>(peer));
                    let mut router = router.clone();
                    tower_service::Service::call(&mut router, request.map(axum::body::Body::new))
                });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(err) = served {
                        tracing::trace!(%err, "connection ended with an error");
                    }
                }
                _ = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(DRAIN, connection).await;
                }
            }
        });
    }
    connections.close();
    let _ = tokio::time::timeout(DRAIN, connections.wait()).await;
}
