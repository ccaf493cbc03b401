//! The engine's timer table: one optional deadline per [`Timer`], and the earliest of them.
//!
//! Sentinel's timers are implicit ("now minus last-x greater than period", re-checked on every
//! pass over every instance). Here each deadline is data, so `poll_timeout` is one lookup, a
//! simulator can jump straight to the next deadline, and a thousand idle masters cost nothing
//! between their deadlines.

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::ids::PeerId;
use crate::engine::time::Instant;

/// What a deadline is for.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub enum Timer {
    /// Send heartbeats to peers.
    Heartbeat,
    /// Leave TILT.
    TiltEnd,
    /// Check whether the re-reading after a stall is over.
    RereadEnd,
    /// Write lazily persisted changes.
    LazyPersist,
    /// A peer's reports expire.
    PeerExpiry(PeerId),
    /// A master group (by index) has work due: pings, INFO, SDOWN, failover steps.
    Group(usize),
}

/// Deadlines, ordered by time then by timer (so ties fire in a fixed order).
#[derive(Debug, Default)]
pub struct Timers {
    by_timer: BTreeMap<Timer, Instant>,
    by_time: BTreeSet<(Instant, Timer)>,
}

impl Timers {
    /// Sets `timer` to fire at `at` (replacing its previous deadline), or clears it with `None`.
    pub fn set(&mut self, timer: Timer, at: Option<Instant>) {
        if let Some(old) = self.by_timer.remove(&timer) {
            self.by_time.remove(&(old, timer));
        }
        if let Some(at) = at {
            self.by_timer.insert(timer, at);
            self.by_time.insert((at, timer));
        }
    }

    /// The deadline of `timer`, if set.
    #[must_use]
    pub fn deadline(&self, timer: Timer) -> Option<Instant> {
        self.by_timer.get(&timer).copied()
    }

    /// The earliest deadline.
    #[must_use]
    pub fn next(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Removes and returns a timer due at or before `now`, earliest first.
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let &(at, timer) = self.by_time.first()?;
        if at > now {
            return None;
        }
        self.by_time.remove(&(at, timer));
        self.by_timer.remove(&timer);
        Some(timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_time_order_and_rescheduling_replaces() {
        let mut t = Timers::default();
        let at = Instant::from_millis;
        t.set(Timer::Group(1), Some(at(30)));
        t.set(Timer::Heartbeat, Some(at(10)));
        t.set(Timer::Group(0), Some(at(20)));
        t.set(Timer::Group(0), Some(at(40)));
        assert_eq!(t.next(), Some(at(10)));
        assert_eq!(t.pop_due(at(35)), Some(Timer::Heartbeat));
        assert_eq!(t.pop_due(at(35)), Some(Timer::Group(1)));
        assert_eq!(t.pop_due(at(35)), None);
        assert_eq!(t.deadline(Timer::Group(0)), Some(at(40)));
        t.set(Timer::Group(0), None);
        assert_eq!(t.next(), None);
    }
}
