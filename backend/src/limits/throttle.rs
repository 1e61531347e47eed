//! Rate limits on sign-in and sign-up, per client address, per username and
//! address, and per username, and the other per-key budgets of the API.
//! GCRA buckets from the `governor` crate; memory is bounded by
//! `forget_idle`, run periodically.
//!
//! Sign-in, and why it is shaped so (docs/protocol.md, "Sign-in limits"):
//! - every attempt counts against its address (one address trying many
//!   accounts), and against its (username, address) pair (one address
//!   guessing one account);
//! - attempts also count against the username across all addresses, but
//!   an exhausted username budget only slows attempts down and refuses
//!   wrong passwords: the right one still gets through. Guessing from
//!   many addresses is then as slow as the per-address limits and argon2's
//!   cost make it, and an attacker who knows a username can no longer lock
//!   its owner out by spending its budget with wrong guesses.

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
    /// New rooms per client address per hour.
    pub rooms_per_ip_per_hour: u32,
    pub api_per_ip: u32,
    pub api_per_token: u32,
    /// History sent (replays on join, the history API), bytes per second
    /// per user and per address; the burst is twice this.
    pub history_bytes_per_user: u32,
    pub history_bytes_per_ip: u32,
    /// File uploads per user per minute.
    pub uploads_per_user: u32,
}

pub struct Throttle {
    by_ip: DefaultKeyedRateLimiter<IpAddr>,
    /// Attempts per (username, address).
    by_username_ip: DefaultKeyedRateLimiter<(String, IpAddr)>,
    /// Attempts per username, from all addresses together (see
    /// `attempt_on_username`).
    failures_by_username: DefaultKeyedRateLimiter<String>,
    /// New rooms, per user id and per address (sign-ups are cheap enough
    /// that a per-user quota alone multiplies with accounts).
    rooms_created: DefaultKeyedRateLimiter<String>,
    rooms_created_by_ip: DefaultKeyedRateLimiter<IpAddr>,
    /// Every API request, per address and per session token.
    api_by_ip: DefaultKeyedRateLimiter<IpAddr>,
    api_by_token: DefaultKeyedRateLimiter<String>,
    /// History bytes sent, in KiB, per user id and per address: 32 sockets
    /// of one user, or many users behind one address, share one budget.
    history_by_user: DefaultKeyedRateLimiter<String>,
    history_by_ip: DefaultKeyedRateLimiter<IpAddr>,
    /// The bursts of those two, in KiB: a request for more than a whole
    /// burst is charged a whole burst (it could never be served otherwise).
    history_burst_kib: (NonZeroU32, NonZeroU32),
    /// File uploads, per user id.
    uploads: DefaultKeyedRateLimiter<String>,
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
            rooms_per_ip_per_hour,
            api_per_ip,
            api_per_token,
            history_bytes_per_user,
            history_bytes_per_ip,
            uploads_per_user,
        } = limits;
        let n = |n: u32| NonZeroU32::new(n.max(1)).expect("at least 1");
        let burst_kib = |bytes: u32| n(bytes.div_ceil(1024).saturating_mul(2));
        let kib_per_sec =
            |bytes: u32| Quota::per_second(n(bytes.div_ceil(1024))).allow_burst(burst_kib(bytes));
        Throttle {
            api_by_ip: DefaultKeyedRateLimiter::keyed(Quota::per_minute(n(api_per_ip))),
            api_by_token: DefaultKeyedRateLimiter::keyed(Quota::per_minute(n(api_per_token))),
            by_ip: DefaultKeyedRateLimiter::keyed(Quota::per_minute(n(per_ip))),
            by_username_ip: DefaultKeyedRateLimiter::keyed(Quota::per_minute(n(per_username))),
            failures_by_username: DefaultKeyedRateLimiter::keyed(Quota::per_minute(n(
                per_username,
            ))),
            rooms_created: DefaultKeyedRateLimiter::keyed(Quota::per_hour(n(rooms_per_hour))),
            rooms_created_by_ip: DefaultKeyedRateLimiter::keyed(Quota::per_hour(n(
                rooms_per_ip_per_hour,
            ))),
            history_by_user: DefaultKeyedRateLimiter::keyed(kib_per_sec(history_bytes_per_user)),
            history_by_ip: DefaultKeyedRateLimiter::keyed(kib_per_sec(history_bytes_per_ip)),
            history_burst_kib: (
                burst_kib(history_bytes_per_ip),
                burst_kib(history_bytes_per_user),
            ),
            uploads: DefaultKeyedRateLimiter::keyed(Quota::per_minute(n(uploads_per_user))),
            clock: DefaultClock::default(),
            trusted_proxies,
        }
    }

    /// One file upload by `user_id`: `Err` says how long to wait.
    pub fn upload(&self, user_id: &str) -> Result<(), Duration> {
        let now = self.clock.now();
        self.uploads
            .check_key(&user_id.to_owned())
            .map_err(|not_until| not_until.wait_time_from(now))
    }

    /// One attempt from `ip`, for `username` if there is one. `Err` says
    /// how long to wait.
    pub fn check(&self, ip: IpAddr, username: Option<&str>) -> Result<(), Duration> {
        let now = self.clock.now();
        self.by_ip
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(now))?;
        if let Some(username) = username {
            self.by_username_ip
                .check_key(&(username.to_owned(), ip))
                .map_err(|not_until| not_until.wait_time_from(now))?;
        }
        Ok(())
    }

    /// Counts an attempt on `username` from anywhere (every attempt, as
    /// if it failed: a right password is rare enough not to matter).
    /// `Some(wait)`: too many lately; the caller slows this attempt down
    /// and refuses it if the password is wrong, but lets the right one in.
    pub fn attempt_on_username(&self, username: &str) -> Option<Duration> {
        let now = self.clock.now();
        self.failures_by_username
            .check_key(&username.to_owned())
            .err()
            .map(|not_until| not_until.wait_time_from(now))
    }

    /// One more room created by `user_id` from `ip`; `Err` says which
    /// quota is spent (true: the address's) and how long to wait.
    pub fn create_room(&self, user_id: &str, ip: IpAddr) -> Result<(), (bool, Duration)> {
        let now = self.clock.now();
        // The user's first: a user over their own quota does not spend the
        // address's, which others behind it share.
        self.rooms_created
            .check_key(&user_id.to_owned())
            .map_err(|not_until| (false, not_until.wait_time_from(now)))?;
        self.rooms_created_by_ip
            .check_key(&ip)
            .map_err(|not_until| (true, not_until.wait_time_from(now)))
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

    /// `bytes` of history for `user_id` at `ip`, now or never: `Err` says
    /// how long to wait. (The address is charged first; a refusal by the
    /// user's budget leaves it charged, which only errs on the safe side.)
    pub fn history_bytes(&self, ip: IpAddr, user_id: &str, bytes: usize) -> Result<(), Duration> {
        let kib = kib(bytes);
        let (ip_burst, user_burst) = self.history_burst_kib;
        let now = self.clock.now();
        let wait = |result: Result<Result<(), governor::NotUntil<_>>, _>| match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(governor::NotUntil::wait_time_from(&not_until, now)),
            Err(_) => unreachable!("never more than a burst"),
        };
        wait(self.history_by_ip.check_key_n(&ip, kib.min(ip_burst)))?;
        wait(
            self.history_by_user
                .check_key_n(&user_id.to_owned(), kib.min(user_burst)),
        )
    }

    /// `bytes` of history for `user_id` at `ip`, waiting for the budgets
    /// until `deadline` at most. False: not within the deadline (nothing
    /// more is charged then).
    pub async fn wait_for_history_bytes(
        &self,
        ip: IpAddr,
        user_id: &str,
        bytes: usize,
        deadline: tokio::time::Instant,
    ) -> bool {
        let kib = kib(bytes);
        let (ip_burst, user_burst) = self.history_burst_kib;
        let user = user_id.to_owned();
        // One budget after the other, each charged once, when it has room.
        for by_user in [false, true] {
            loop {
                let now = self.clock.now();
                let checked = if by_user {
                    self.history_by_user.check_key_n(&user, kib.min(user_burst))
                } else {
                    self.history_by_ip.check_key_n(&ip, kib.min(ip_burst))
                };
                match checked {
                    Ok(Ok(())) => break,
                    Ok(Err(not_until)) => {
                        let until = tokio::time::Instant::now() + not_until.wait_time_from(now);
                        if until > deadline {
                            return false;
                        }
                        tokio::time::sleep_until(until).await;
                    }
                    Err(_) => return false,
                }
            }
        }
        true
    }

    /// Drops buckets that are full again, so idle keys cost no memory.
    pub fn forget_idle(&self) {
        self.history_by_user.retain_recent();
        self.history_by_ip.retain_recent();
        self.history_by_user.shrink_to_fit();
        self.history_by_ip.shrink_to_fit();
        self.api_by_ip.retain_recent();
        self.api_by_token.retain_recent();
        self.api_by_ip.shrink_to_fit();
        self.api_by_token.shrink_to_fit();
        self.by_ip.retain_recent();
        self.by_username_ip.retain_recent();
        self.failures_by_username.retain_recent();
        self.rooms_created.retain_recent();
        self.rooms_created_by_ip.retain_recent();
        self.by_ip.shrink_to_fit();
        self.by_username_ip.shrink_to_fit();
        self.failures_by_username.shrink_to_fit();
        self.rooms_created.shrink_to_fit();
        self.rooms_created_by_ip.shrink_to_fit();
        self.uploads.retain_recent();
        self.uploads.shrink_to_fit();
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

/// Bytes in the KiB units of the history budgets, rounded up.
fn kib(bytes: usize) -> NonZeroU32 {
    let kib = bytes.div_ceil(1024).clamp(1, u32::MAX as usize) as u32;
    NonZeroU32::new(kib).expect("at least 1")
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
                rooms_per_ip_per_hour: 2,
                api_per_ip: 100,
                api_per_token: 100,
                history_bytes_per_user: 4096,
                history_bytes_per_ip: 8192,
                uploads_per_user: 2,
            },
            Vec::new(),
        );
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        // Rooms: one per user an hour, two per address.
        assert!(throttle.create_room("u1", a).is_ok());
        assert_eq!(throttle.create_room("u1", a).map_err(|e| e.0), Err(false));
        assert!(throttle.create_room("u2", a).is_ok());
        assert_eq!(throttle.create_room("u3", a).map_err(|e| e.0), Err(true));
        assert!(throttle.create_room("u4", b).is_ok());
        // History bytes: 8 KiB of burst for a user, 16 KiB for an address.
        assert!(throttle.history_bytes(a, "u1", 8 * 1024).is_ok());
        assert!(throttle.history_bytes(a, "u1", 1).is_err(), "u1 spent");
        assert!(throttle.history_bytes(a, "u2", 7 * 1024).is_ok());
        assert!(
            throttle.history_bytes(a, "u3", 2 * 1024).is_err(),
            "address spent"
        );
        assert!(throttle.history_bytes(b, "u3", 2 * 1024).is_ok());
        // Sign-in: 2 per (username, address), 3 per address.
        assert!(throttle.check(a, Some("alice")).is_ok());
        assert!(throttle.check(a, Some("alice")).is_ok());
        let wait = throttle.check(a, Some("alice")).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(30));
        assert!(throttle.check(b, Some("alice")).is_ok(), "another address");
        assert!(throttle.check(a, Some("bob")).is_err(), "a's 3 are used");
        assert!(throttle.check(b, None).is_ok());
        // From everywhere: 2 attempts on a username, then it is under attack.
        assert_eq!(throttle.attempt_on_username("alice"), None);
        assert_eq!(throttle.attempt_on_username("alice"), None);
        assert!(throttle.attempt_on_username("alice").is_some());
        assert_eq!(throttle.attempt_on_username("bob"), None);
    }
}
