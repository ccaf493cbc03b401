//! The process's only clock reads.
//!
//! The engine takes time as an input; this is where it comes from. Monotonic time (a tokio
//! `Instant` measured from the process's start) drives every decision; wall-clock time is used
//! only where the outside world needs it (timestamps on events and on gossip frames, which peers
//! check to refuse replays).
#![allow(clippy::disallowed_methods)] // the one clock read

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::engine::Instant;

/// Converts between tokio's monotonic clock and engine time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: tokio::time::Instant,
}

impl Clock {
    /// A clock whose engine-time origin is now.
    #[must_use]
    pub fn start() -> Self {
        Self { origin: tokio::time::Instant::now() }
    }

    /// Engine time now.
    #[must_use]
    pub fn now(&self) -> Instant {
        let elapsed = self.origin.elapsed();
        Instant::from_millis(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
    }

    /// The tokio instant at which engine time reaches `at`.
    #[must_use]
    pub fn deadline(&self, at: Instant) -> tokio::time::Instant {
        self.origin + Duration::from_millis(at.as_millis())
    }

    /// Wall-clock milliseconds since the Unix epoch.
    #[must_use]
    pub fn unix_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}
