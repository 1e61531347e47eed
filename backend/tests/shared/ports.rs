//! Ports for servers that cannot pick their own and say which (Redis,
//! PostgreSQL, chromedriver, a node that must restart where its clients
//! know it). Our own server picks its port itself wherever it can
//! (`--listen 127.0.0.1:0`, read back from its log).
//!
//! The usual trick (bind port 0, read it, close, hand it to the server)
//! races: the port comes from the kernel's ephemeral range, and until the
//! server binds it, any outgoing connection (the tests make thousands) may
//! be given it as its local port. These ports come from below that range
//! instead, which the kernel never hands out on its own; they are spread
//! by process id, so test processes running side by side do not meet, and
//! each is checked free before it is handed out.

use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port of the kernel's ephemeral range (32768 by default).
fn ephemeral_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// A port on 127.0.0.1 that nothing listens on, outside the ephemeral
/// range.
pub fn unused_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = 10_000u32;
    let span = ephemeral_start().saturating_sub(low).max(1_000);
    let base = std::process::id().wrapping_mul(7_919);
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (low + base.wrapping_add(n.wrapping_mul(13)) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below the ephemeral range");
}
