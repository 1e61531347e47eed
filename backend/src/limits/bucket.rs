//! A token bucket, used for the per-connection send rate and error budget.
//! Pure: the caller passes the current time, so tests need no clock.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    per_sec: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `capacity` tokens that refills at `per_sec`.
    pub fn new(capacity: u32, per_sec: f64, now: Instant) -> Self {
        TokenBucket {
            capacity: f64::from(capacity),
            per_sec,
            tokens: f64::from(capacity),
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        self.last = now;
    }

    /// Takes `amount` tokens, going into debt if there are not enough, and
    /// returns how long until the debt is paid (zero if there was none):
    /// the caller waits that long before using what it took. A wait over
    /// `max_wait` takes nothing and returns `None`.
    pub fn reserve(&mut self, amount: f64, max_wait: Duration, now: Instant) -> Option<Duration> {
        self.refill(now);
        let after = self.tokens - amount;
        let wait = if after >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-after / self.per_sec.max(f64::MIN_POSITIVE))
        };
        if wait > max_wait {
            return None;
        }
        self.tokens = after;
        Some(wait)
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserving_goes_into_debt_up_to_a_wait() {
        let t0 = Instant::now();
        let patience = Duration::from_secs(5);
        let mut bytes = TokenBucket::new(200, 100.0, t0);
        assert_eq!(bytes.reserve(150.0, patience, t0), Some(Duration::ZERO));
        // 50 left: 250 more is a debt of 200, paid in 2 s.
        assert_eq!(
            bytes.reserve(250.0, patience, t0),
            Some(Duration::from_secs(2))
        );
        // Another 400 would be 6 s: refused, and nothing is taken.
        assert_eq!(bytes.reserve(400.0, patience, t0), None);
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(
            bytes.reserve(100.0, patience, t2),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn allows_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(40, 20.0, t0);
        assert_eq!((0..100).filter(|_| bucket.try_take(t0)).count(), 40);
        // After one second, 20 more.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!((0..100).filter(|_| bucket.try_take(t1)).count(), 20);
        // Idle time never grows the bucket past its capacity.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!((0..100).filter(|_| bucket.try_take(t2)).count(), 40);
    }

    #[test]
    fn a_clock_going_backwards_grants_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut bucket = TokenBucket::new(1, 1.0, t0);
        assert!(bucket.try_take(t0));
        assert!(!bucket.try_take(t0 - Duration::from_secs(5)));
    }
}
