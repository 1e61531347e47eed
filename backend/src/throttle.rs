//! Rate limits on sign-in and sign-up, per client address and per
//! username, as Synapse does: an attacker guessing one account's password
//! from many addresses meets the per-username limit, and one address
//! trying many accounts meets the per-address one. GCRA buckets from the
//! `governor` crate; memory is bounded by `forget_idle`, run periodically.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// The quotas, per minute unless named otherwise (each is also the burst).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Sign-in attempts per address.
    pub per_ip: u32,
    /// Sign-in attempts per username.
    pub per_username: u32,
    /// New rooms per user per hour.
    pub rooms_per_hour: u32,
    pub api_per_ip: u32,
    pub api_per_token: u32,
}

pub struct Throttle {
    by_ip: DefaultKeyedRateLimiter<IpAddr>,
    by_username: DefaultKeyedRateLimiter<String>,
    /// New rooms, per user id.
    rooms_created: DefaultKeyedRateLimiter<String>,
    /// Every API request, per address and per session token.
    api_by_ip: DefaultKeyedRateLimiter<IpAddr>,
    api_by_token: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    trusted_proxies: Vec<IpAddr>,
}

impl Throttle {
    /// Attempts allowed per minute, per address and per username (each is
    /// also the burst).
    pub fn new(limits: Limits, trusted_proxies: Vec<IpAddr>) -> Throttle {
        let Limits {
            per_ip,
            per_username,
            rooms_per_hour,
            api_per_ip,
            api_per_token,
        } = limits;
        let n = |n: u32| NonZeroU32::new(n.max(1)).expect("at least 1");
        Throttle {
            api_by_ip: DefaultKeyedRateLimiter::keyed(Quota::per_minute(n(api_per_ip))),
            api_by_token: DefaultKeyedRateLimiter::keyed(Quota::per_minute(n(api_per_token))),
            by_ip: DefaultKeyedRateLimiter::keyed(Quota::per_minute(n(per_ip))),
            by_username: DefaultKeyedRateLimiter::keyed(Quota::per_minute(n(per_username))),
            rooms_created: DefaultKeyedRateLimiter::keyed(Quota::per_hour(n(rooms_per_hour))),
            clock: DefaultClock::default(),
            trusted_proxies,
        }
    }

    /// One attempt from `ip`, for `username` if there is one. `Err` says
    /// how long to wait.
    pub fn check(&self, ip: IpAddr, username: Option<&str>) -> Result<(), Duration> {
        let now = self.clock.now();
        self.by_ip
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(now))?;
        if let Some(username) = username {
            self.by_username
                .check_key(&username.to_owned())
                .map_err(|not_until| not_until.wait_time_from(now))?;
        }
        Ok(())
    }

    /// One more room created by `user_id`; `Err` says how long to wait.
    pub fn create_room(&self, user_id: &str) -> Result<(), Duration> {
        let now = self.clock.now();
        self.rooms_created
            .check_key(&user_id.to_owned())
            .map_err(|not_until| not_until.wait_time_from(now))
    }

    /// One API request from `ip`, with `token` if it carries one.
    pub fn api_request(&self, ip: IpAddr, token: Option<&str>) -> Result<(), Duration> {
        let now = self.clock.now();
        self.api_by_ip
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(now))?;
        if let Some(token) = token {
            self.api_by_token
                .check_key(&token.to_owned())
                .map_err(|not_until| not_until.wait_time_from(now))?;
        }
        Ok(())
    }

    /// Drops buckets that are full again, so idle keys cost no memory.
    pub fn forget_idle(&self) {
        self.api_by_ip.retain_recent();
        self.api_by_token.retain_recent();
        self.api_by_ip.shrink_to_fit();
        self.api_by_token.shrink_to_fit();
        self.by_ip.retain_recent();
        self.by_username.retain_recent();
        self.rooms_created.retain_recent();
        self.by_ip.shrink_to_fit();
        self.by_username.shrink_to_fit();
        self.rooms_created.shrink_to_fit();
    }

    /// The client's address: the peer's, or, when the peer is a trusted
    /// proxy, the last address in `X-Forwarded-For` that is not one of our
    /// proxies (earlier entries are whatever the client claimed).
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        client_ip(peer.ip(), headers, &self.trusted_proxies)
    }
}

fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", xff.parse().unwrap());
        headers
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let spoofed = headers("1.2.3.4, 203.0.113.7");
        assert_eq!(client_ip(client, &spoofed, &[]), client, "not a proxy");
        assert_eq!(client_ip(proxy, &spoofed, &[proxy]), client, "rightmost");
        assert_eq!(
            client_ip(proxy, &headers("203.0.113.7, 10.0.0.1"), &[proxy]),
            client,
            "our own proxies are skipped"
        );
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &[proxy]), proxy);
        assert_eq!(client_ip(proxy, &headers("garbage"), &[proxy]), proxy);
    }

    #[test]
    fn each_key_has_its_own_budget() {
        let throttle = Throttle::new(
            Limits {
                per_ip: 3,
                per_username: 2,
                rooms_per_hour: 1,
                api_per_ip: 100,
                api_per_token: 100,
            },
            Vec::new(),
        );
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(throttle.check(a, Some("alice")).is_ok());
        assert!(throttle.check(a, Some("alice")).is_ok());
        let wait = throttle.check(b, Some("alice")).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(30));
        assert!(throttle.check(a, Some("bob")).is_ok());
        assert!(throttle.check(a, Some("carol")).is_err(), "a's 3 are used");
        assert!(throttle.check(b, None).is_ok());
    }
}
