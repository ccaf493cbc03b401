//! The file descriptor budget: how many clients each port may hold so that the node never runs
//! out of descriptors for what it must do (write its state file, reach its Redis instances and
//! its peers).
//!
//! At start the soft `RLIMIT_NOFILE` is raised to the hard limit (the common soft limit of 1,024
//! is far below what a Sentinel serves). What the node itself needs is reserved first; the rest
//! is shared by the client-facing ports, each capped at its own maximum. Past its budget the
//! Sentinel port answers `-ERR max number of clients reached` and closes, and HTTP answers 503
//! and closes, so that a flood of idle clients costs refused connections, never a failed state
//! write (which stops the node) or a lost Redis link.

use crate::peer::{PENDING_PER_ADDRESS, STRANGER_PENDING};

/// Descriptors reserved whatever the configuration: standard streams, the runtimes' epoll and
/// wake-up descriptors, the listeners (up to five), a state write (temporary file and directory),
/// configuration and certificate reloads, DNS lookups, notification scripts' pipes and webhook
/// connections.
pub const BASE_RESERVE: u64 = 128;

/// Descriptors reserved per master: links to the master and its replicas.
pub const PER_MASTER: u64 = 8;

/// Descriptors reserved per configured peer: the connection this node dials, the one it accepts,
/// and the unauthenticated connections the gossip port may hold from its address.
pub const PER_PEER: u64 = 2 + PENDING_PER_ADDRESS as u64;

/// Unauthenticated gossip connections the peer port may hold at once from other addresses.
const GOSSIP_PENDING: u64 = STRANGER_PENDING as u64;

/// Share of the descriptors left for clients that goes to the Sentinel port, in quarters (the
/// rest goes to HTTP): application clients far outnumber probes and scrapers.
const SENTINEL_QUARTERS: u64 = 3;

/// How the process's descriptors are shared out.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Budget {
    /// The soft `RLIMIT_NOFILE` the budget was derived from.
    pub limit: u64,
    /// Descriptors kept for the node's own work.
    pub reserved: u64,
    /// Most Sentinel-port clients (plain and TLS together).
    pub sentinel_clients: usize,
    /// Most HTTP connections (plain and TLS together).
    pub http_connections: usize,
}

impl Budget {
    /// The budget for a soft limit of `limit` descriptors, `masters` masters and `peers` peers;
    /// each port gets at most its own maximum, and at least one client, so that a node started
    /// with too few descriptors still answers (its start is logged as a warning).
    #[must_use]
    pub fn new(
        limit: u64,
        masters: usize,
        peers: usize,
        max_sentinel: usize,
        max_http: usize,
    ) -> Self {
        let reserved = BASE_RESERVE
            .saturating_add(PER_MASTER.saturating_mul(masters as u64))
            .saturating_add(PER_PEER.saturating_mul(peers as u64))
            .saturating_add(GOSSIP_PENDING);
        let spare = limit.saturating_sub(reserved);
        let sentinel = (spare / 4).saturating_mul(SENTINEL_QUARTERS);
        let sentinel =
            usize::try_from(sentinel).unwrap_or(usize::MAX).clamp(1, max_sentinel.max(1));
        let http = usize::try_from(spare.saturating_sub(sentinel as u64))
            .unwrap_or(usize::MAX)
            .clamp(1, max_http.max(1));
        Self { limit, reserved, sentinel_clients: sentinel, http_connections: http }
    }

    /// Whether the limit leaves room for the reserve and at least a few clients per port.
    #[must_use]
    pub fn is_comfortable(&self) -> bool {
        self.limit >= self.reserved + 2 * 16
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft limit now in force.
/// A limit that cannot be read counts as the common default, 1,024.
pub fn raise_nofile_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let current = getrlimit(Resource::Nofile);
    let soft = current.current.unwrap_or(u64::MAX);
    if let Some(hard) = current.maximum
        && hard > soft
    {
        match setrlimit(Resource::Nofile, Rlimit { current: Some(hard), maximum: Some(hard) }) {
            Ok(()) => return hard,
            Err(e) => tracing::warn!(soft, hard, error = %e, "cannot raise the open file limit"),
        }
    }
    if current.current.is_none() { u64::MAX } else { soft }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENTINEL: usize = 10_000;
    const HTTP: usize = 4096;

    #[test]
    fn the_reserve_grows_with_masters_and_peers() {
        let b = Budget::new(1024, 0, 0, SENTINEL, HTTP);
        assert_eq!(b.reserved, BASE_RESERVE + 32);
        let b = Budget::new(1024, 10, 2, SENTINEL, HTTP);
        assert_eq!(b.reserved, 128 + 80 + 12 + 32);
    }

    #[test]
    fn the_common_soft_limit_is_shared_out_below_the_limit() {
        // One master and two peers: 128 + 8 + 12 + 32 = 180 reserved, 844 for clients.
        let b = Budget::new(1024, 1, 2, SENTINEL, HTTP);
        assert_eq!(b.reserved, 180);
        assert_eq!(b.sentinel_clients, 633);
        assert_eq!(b.http_connections, 211);
        assert_eq!(b.reserved + (b.sentinel_clients + b.http_connections) as u64, 1024);
        assert!(b.is_comfortable());
    }

    #[test]
    fn a_large_limit_is_capped_by_each_port_maximum() {
        let b = Budget::new(1 << 20, 3, 2, SENTINEL, HTTP);
        assert_eq!((b.sentinel_clients, b.http_connections), (SENTINEL, HTTP));
        let b = Budget::new(20_000, 3, 2, SENTINEL, HTTP);
        assert_eq!(b.reserved, 128 + 24 + 12 + 32);
        assert_eq!(b.sentinel_clients, SENTINEL);
        assert_eq!(b.http_connections, HTTP);
    }

    #[test]
    fn a_limit_below_the_reserve_still_admits_one_client_per_port_and_says_so() {
        let b = Budget::new(100, 1, 2, SENTINEL, HTTP);
        assert_eq!((b.sentinel_clients, b.http_connections), (1, 1));
        assert!(!b.is_comfortable());
        let b = Budget::new(0, 0, 0, 0, 0);
        assert_eq!((b.sentinel_clients, b.http_connections), (1, 1));
    }

    #[test]
    fn every_budget_fits_the_limit_when_the_limit_covers_the_reserve() {
        for limit in [192, 200, 256, 300, 1024, 4096, 65_536] {
            for masters in [0, 1, 5, 20] {
                let b = Budget::new(limit, masters, 2, SENTINEL, HTTP);
                if b.reserved + 2 <= limit {
                    let used = b.reserved + (b.sentinel_clients + b.http_connections) as u64;
                    assert!(used <= limit, "{b:?}");
                }
            }
        }
    }
}
