//! Caps on open WebSockets: per node, per client address and per user.
//! A slot is taken before the upgrade and given back when the session ends;
//! over a cap the upgrade is refused (`503 server_full` for the node,
//! `429 too_many_connections` for an address or a user), and nobody
//! already connected notices.
//!
//! The node's cap defaults to the process's file limit minus a reserve, so
//! a node full of WebSockets can still accept the HTTP requests that matter
//! (`/healthz`, sign-in) and open its database files.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// File descriptors kept for everything but WebSockets.
pub const FD_RESERVE: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotLimits {
    pub total: usize,
    pub per_ip: usize,
    pub per_user: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NodeFull,
    TooManyFromAddress,
    TooManyForUser,
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
    by_user: HashMap<Arc<str>, usize>,
}

pub struct Slots {
    limits: SlotLimits,
    counts: Mutex<Counts>,
}

/// One open WebSocket's place; given back when dropped.
pub struct Slot {
    slots: Arc<Slots>,
    ip: IpAddr,
    user: Arc<str>,
}

impl Slots {
    pub fn new(limits: SlotLimits) -> Arc<Slots> {
        Arc::new(Slots {
            limits,
            counts: Mutex::new(Counts::default()),
        })
    }

    pub fn limits(&self) -> SlotLimits {
        self.limits
    }

    pub fn acquire(self: &Arc<Self>, ip: IpAddr, user: &str) -> Result<Slot, Refusal> {
        let mut counts = self.lock();
        if counts.total >= self.limits.total {
            return Err(Refusal::NodeFull);
        }
        if counts.by_ip.get(&ip).copied().unwrap_or(0) >= self.limits.per_ip {
            return Err(Refusal::TooManyFromAddress);
        }
        if counts.by_user.get(user).copied().unwrap_or(0) >= self.limits.per_user {
            return Err(Refusal::TooManyForUser);
        }
        let user: Arc<str> = Arc::from(user);
        counts.total += 1;
        *counts.by_ip.entry(ip).or_default() += 1;
        *counts.by_user.entry(user.clone()).or_default() += 1;
        Ok(Slot {
            slots: self.clone(),
            ip,
            user,
        })
    }

    /// Open WebSockets on this node.
    pub fn open(&self) -> usize {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn give_back<K: Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = map.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            map.remove(key);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.slots.lock();
        counts.total -= 1;
        give_back(&mut counts.by_ip, &self.ip);
        give_back(&mut counts.by_user, &self.user);
    }
}

/// The soft limit on open files, from /proc (Linux); `None` elsewhere.
pub fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// `--max-connections 0`: the file limit minus the reserve (at least 100).
pub fn default_total() -> usize {
    open_file_limit()
        .map(|limit| limit.saturating_sub(FD_RESERVE))
        .unwrap_or(10_000)
        .max(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cap_is_counted_and_slots_come_back() {
        let slots = Slots::new(SlotLimits {
            total: 4,
            per_ip: 3,
            per_user: 2,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let one = slots.acquire(a, "u1").unwrap();
        let _two = slots.acquire(a, "u1").unwrap();
        assert_eq!(slots.acquire(b, "u1").err(), Some(Refusal::TooManyForUser));
        let _three = slots.acquire(a, "u2").unwrap();
        assert_eq!(
            slots.acquire(a, "u3").err(),
            Some(Refusal::TooManyFromAddress)
        );
        let _four = slots.acquire(b, "u3").unwrap();
        assert_eq!(slots.acquire(b, "u4").err(), Some(Refusal::NodeFull));
        drop(one);
        assert_eq!(slots.open(), 3);
        assert!(slots.acquire(b, "u4").is_ok());
        assert!(open_file_limit().is_some_and(|n| n > 0));
    }
}
