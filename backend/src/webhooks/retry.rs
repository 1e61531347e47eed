//! What a webhook does after an attempt: pure, so the schedule is tested
//! without a receiver or a clock.
//!
//! A failure waits `base · 2^(failures-1)`, capped at `max`, with "equal
//! jitter" (between half and all of it), so that many webhooks failing at
//! once (a receiver's outage) do not come back in step. A receiver that has
//! failed for `give_up_after` (a day by default) is paused, and so is one
//! that answered 410 Gone: it waits for an operator (`hearth admin webhook
//! resume`), and what it has not delivered stays in the room's log.

use std::time::Duration;

use crate::store::DeliveryState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub base: Duration,
    pub max: Duration,
    pub give_up_after: Duration,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Worth trying again: a timeout, a refused connection, a 5xx, a 4xx.
    Failed(String),
    /// The receiver says it is gone for good (410).
    Gone(String),
}

/// The delay before the next attempt after `failures` failures in a row;
/// `jitter` in `0.0..=1.0` picks where in the upper half it falls.
pub fn delay(policy: &Policy, failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(32);
    let full = policy
        .base
        .saturating_mul(1u32 << doublings.min(31))
        .min(policy.max);
    full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// The state after an attempt that ended with `outcome` at `now_ms`.
pub fn after(
    policy: &Policy,
    state: &DeliveryState,
    outcome: Outcome,
    now_ms: i64,
    jitter: f64,
) -> DeliveryState {
    let (why, gone) = match outcome {
        Outcome::Delivered => return DeliveryState::default(),
        Outcome::Failed(why) => (why, false),
        Outcome::Gone(why) => (why, true),
    };
    let failures = state.failures.saturating_add(1);
    let failing_since = state.failing_since.unwrap_or(now_ms);
    let failing_for = u64::try_from(now_ms - failing_since).unwrap_or(0);
    let give_up = gone || failing_for >= policy.give_up_after.as_millis() as u64;
    let wait = delay(policy, failures, jitter).as_millis() as i64;
    DeliveryState {
        failures,
        failing_since: Some(failing_since),
        next_attempt_at: now_ms.saturating_add(wait),
        last_error: Some(why),
        paused_at: give_up.then_some(now_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        base: Duration::from_secs(1),
        max: Duration::from_secs(3600),
        give_up_after: Duration::from_secs(86_400),
    };

    #[test]
    fn delays_double_up_to_the_cap_and_jitter_stays_in_the_upper_half() {
        assert_eq!(delay(&POLICY, 1, 1.0), Duration::from_secs(1));
        assert_eq!(delay(&POLICY, 1, 0.0), Duration::from_millis(500));
        assert_eq!(delay(&POLICY, 4, 1.0), Duration::from_secs(8));
        assert_eq!(delay(&POLICY, 13, 1.0), Duration::from_secs(3600));
        assert_eq!(delay(&POLICY, u32::MAX, 1.0), Duration::from_secs(3600));
        for failures in 1..40 {
            for jitter in [0.0, 0.3, 1.0] {
                let d = delay(&POLICY, failures, jitter);
                let full = delay(&POLICY, failures, 1.0);
                assert!(d >= full / 2 && d <= full, "{failures} {jitter}: {d:?}");
            }
        }
    }

    #[test]
    fn failures_count_up_from_the_first_and_a_delivery_clears_them() {
        let first = after(&POLICY, &DeliveryState::default(), fail(), 1_000, 1.0);
        assert_eq!(first.failures, 1);
        assert_eq!(first.failing_since, Some(1_000));
        assert_eq!(first.next_attempt_at, 2_000);
        assert_eq!(first.paused_at, None);
        let second = after(&POLICY, &first, fail(), 2_000, 1.0);
        assert_eq!(second.failures, 2);
        assert_eq!(second.failing_since, Some(1_000));
        assert_eq!(second.next_attempt_at, 4_000);
        assert_eq!(second.last_error.as_deref(), Some("HTTP 503"));
        let ok = after(&POLICY, &second, Outcome::Delivered, 4_000, 1.0);
        assert_eq!(ok, DeliveryState::default());
    }

    #[test]
    fn a_day_of_failures_or_a_410_pauses_it() {
        let mut state = after(&POLICY, &DeliveryState::default(), fail(), 0, 0.5);
        let mut now = 0;
        while state.paused_at.is_none() {
            now = state.next_attempt_at;
            state = after(&POLICY, &state, fail(), now, 0.5);
        }
        assert!(now >= 86_400_000, "paused only after a day, at {now}");
        assert!(now < 86_400_000 + 3_600_000, "and soon after it: {now}");
        // About 40 attempts in the day, not thousands.
        assert!((20..60).contains(&state.failures), "{}", state.failures);

        let gone = Outcome::Gone("HTTP 410".into());
        let paused = after(&POLICY, &DeliveryState::default(), gone, 5, 1.0);
        assert_eq!(paused.paused_at, Some(5));
    }

    fn fail() -> Outcome {
        Outcome::Failed("HTTP 503".into())
    }
}
