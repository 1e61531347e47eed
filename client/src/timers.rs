//! The machine's timers as deadlines: the driver sleeps until the earliest
//! one. Starting a timer replaces the one of its kind, as the machine
//! expects (`Effect::Start*`), and cancelling one that is not running does
//! nothing.

use tokio::time::{Duration, Instant};

use client_core::connection::Event;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    Retry,
    Watchdog,
    Pace,
    Stable,
    Gate,
    Resend,
}

impl Timer {
    const ALL: [Timer; 6] = [
        Timer::Retry,
        Timer::Watchdog,
        Timer::Pace,
        Timer::Stable,
        Timer::Gate,
        Timer::Resend,
    ];

    /// What the machine is told when it fires.
    pub fn event(self) -> Event {
        match self {
            Timer::Retry => Event::RetryTimerFired,
            Timer::Watchdog => Event::WatchdogExpired,
            Timer::Pace => Event::PaceTimerFired,
            Timer::Stable => Event::StableTimerFired,
            Timer::Gate => Event::GateTimerFired,
            Timer::Resend => Event::ResendTimerFired,
        }
    }
}

#[derive(Debug, Default)]
pub struct Timers {
    due: [Option<Instant>; 6],
}

impl Timers {
    pub fn start(&mut self, timer: Timer, ms: u32) {
        self.due[timer as usize] = Some(Instant::now() + Duration::from_millis(ms.into()));
    }

    pub fn cancel(&mut self, timer: Timer) {
        self.due[timer as usize] = None;
    }

    /// The timer due first, and when.
    pub fn next(&self) -> Option<(Timer, Instant)> {
        Timer::ALL
            .into_iter()
            .filter_map(|timer| Some((timer, self.due[timer as usize]?)))
            .min_by_key(|&(_, at)| at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_timer_is_next_and_a_restart_replaces_it() {
        let mut timers = Timers::default();
        assert_eq!(timers.next(), None);
        timers.start(Timer::Watchdog, 35_000);
        timers.start(Timer::Retry, 1_000);
        assert_eq!(timers.next().unwrap().0, Timer::Retry);
        timers.start(Timer::Retry, 60_000);
        assert_eq!(timers.next().unwrap().0, Timer::Watchdog);
        timers.cancel(Timer::Watchdog);
        timers.cancel(Timer::Pace);
        assert_eq!(timers.next().unwrap().0, Timer::Retry);
        timers.cancel(Timer::Retry);
        assert_eq!(timers.next(), None);
    }
}
