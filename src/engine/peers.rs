//! The other voters: what each last told us, and whether that is still fresh.
//!
//! Membership is the configuration: slot `i` is the `i`-th configured peer address, whatever node
//! id answers there. A pod that comes back with a new IP under the same name is the same slot; a
//! node removed from the configuration is simply not a slot any more. Nothing is remembered
//! beyond that, unlike Sentinel's ever-growing list of known sentinels.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::engine::addr::Addr;
use crate::engine::durable::KnownPeer;
use crate::engine::gossip::{MasterReport, StateVersion};
use crate::engine::ids::{NodeId, PeerId};
use crate::engine::time::Instant;

/// One configured peer.
#[derive(Debug)]
pub struct Peer {
    /// Its configured gossip address.
    pub addr: Addr,
    /// The node id that last spoke from this slot.
    pub node_id: Option<NodeId>,
    /// Its Sentinel-port address, as it announced it.
    pub client_addr: Option<Addr>,
    /// Its current epoch, as last announced.
    pub current_epoch: u64,
    /// When we last heard from it.
    pub last_heard_at: Option<Instant>,
    /// The version of its reports we hold, if we hold a consistent set.
    pub version: Option<StateVersion>,
    /// Its reports, by master name.
    pub reports: BTreeMap<String, MasterReport>,
    /// When we last asked it for its complete state.
    pub last_sync_request_at: Option<Instant>,
    /// Whether it currently counts as down (its reports expired).
    pub down: bool,
    /// The latest version of its reports it announced (in a heartbeat or a state message) since
    /// it was last heard from after being down; `None` until then.
    pub announced: Option<StateVersion>,
    /// Who was last heard in this slot, in this run or (from the state file) an earlier one:
    /// what `SENTINEL SENTINELS` lists before the peer is heard again. Persisted.
    pub known: Option<KnownPeer>,
}

impl Peer {
    fn new(addr: Addr) -> Self {
        Self {
            addr,
            node_id: None,
            client_addr: None,
            current_epoch: 0,
            last_heard_at: None,
            version: None,
            reports: BTreeMap::new(),
            last_sync_request_at: None,
            down: true,
            announced: None,
            known: None,
        }
    }

    /// Whether the reports held are the latest it announced. A peer heard from again after a
    /// partition is fresh at once, but its reports are the ones it had before until the resync
    /// arrives: they must not be read as "nothing is happening".
    #[must_use]
    pub fn in_sync(&self) -> bool {
        self.announced.is_some() && self.announced == self.version
    }

    /// Whether its reports are fresh at `now`.
    #[must_use]
    pub fn is_fresh(&self, now: Instant, timeout: Duration) -> bool {
        self.last_heard_at.is_some_and(|at| now.saturating_since(at) < timeout)
    }

    /// Its node id and Sentinel-port address: as heard in this run, else as last known (from
    /// the state file), for the views.
    #[must_use]
    pub fn identity(&self) -> (Option<NodeId>, Option<Addr>) {
        match (self.node_id, &self.known) {
            (None, Some(known)) => (Some(known.node_id), Some(known.client_addr.clone())),
            (id, _) => (id, self.client_addr.clone()),
        }
    }

    /// Forgets everything learned from the node that held this slot (it was replaced).
    pub fn forget(&mut self) {
        self.client_addr = None;
        self.current_epoch = 0;
        self.version = None;
        self.announced = None;
        self.reports.clear();
    }
}

/// All configured peers, indexed by slot.
#[derive(Debug)]
pub struct Peers {
    slots: Vec<Peer>,
    timeout: Duration,
}

impl Peers {
    /// Peers at the configured addresses; reports expire after `timeout`. `known` is who was
    /// last heard at each address (from the state file); addresses no longer configured are
    /// dropped.
    #[must_use]
    pub fn new(addrs: &[Addr], timeout: Duration, known: &BTreeMap<Addr, KnownPeer>) -> Self {
        let peer =
            |addr: &Addr| Peer { known: known.get(addr).cloned(), ..Peer::new(addr.clone()) };
        Self { slots: addrs.iter().map(peer).collect(), timeout }
    }

    /// Who was last heard at each configured address, for the state file.
    #[must_use]
    pub fn known(&self) -> BTreeMap<Addr, KnownPeer> {
        self.slots.iter().filter_map(|p| Some((p.addr.clone(), p.known.clone()?))).collect()
    }

    /// How long reports stay valid.
    #[must_use]
    pub const fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The slot configured with `addr`.
    #[must_use]
    pub fn slot_of(&self, addr: &Addr) -> Option<PeerId> {
        let index = self.slots.iter().position(|p| p.addr == *addr)?;
        u16::try_from(index).ok().map(PeerId)
    }

    /// The peer in `slot`.
    #[must_use]
    pub fn get(&self, slot: PeerId) -> Option<&Peer> {
        self.slots.get(usize::from(slot.0))
    }

    /// The peer in `slot`, mutably.
    pub fn get_mut(&mut self, slot: PeerId) -> Option<&mut Peer> {
        self.slots.get_mut(usize::from(slot.0))
    }

    /// All slots with their peers.
    pub fn iter(&self) -> impl Iterator<Item = (PeerId, &Peer)> {
        self.slots.iter().enumerate().filter_map(|(i, p)| Some((PeerId(u16::try_from(i).ok()?), p)))
    }

    /// All slot ids.
    pub fn ids(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.iter().map(|(id, _)| id)
    }

    /// Number of configured peers.
    #[must_use]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no peers are configured.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// How many peers have fresh reports at `now`.
    #[must_use]
    pub fn fresh_count(&self, now: Instant) -> usize {
        self.slots.iter().filter(|p| p.is_fresh(now, self.timeout)).count()
    }

    /// How many peers were heard within `window` before `now`.
    #[must_use]
    pub fn heard_within(&self, now: Instant, window: Duration) -> usize {
        self.slots.iter().filter(|p| p.is_fresh(now, window)).count()
    }

    /// How many peers were heard within `window` and have sent their latest state since (see
    /// [`Peer::in_sync`]): those whose reports say what they know now.
    #[must_use]
    pub fn synced_within(&self, now: Instant, window: Duration) -> usize {
        self.slots.iter().filter(|p| p.is_fresh(now, window) && p.in_sync()).count()
    }

    /// Fresh reports about master `name`, with their senders.
    pub fn fresh_reports<'a>(
        &'a self,
        name: &'a str,
        now: Instant,
    ) -> impl Iterator<Item = (PeerId, &'a Peer, &'a MasterReport)> + 'a {
        self.iter()
            .filter(move |(_, p)| p.is_fresh(now, self.timeout))
            .filter_map(move |(id, p)| p.reports.get(name).map(|r| (id, p, r)))
    }

    /// When the freshness of peer `slot` runs out, if it is fresh.
    #[must_use]
    pub fn expiry(&self, slot: PeerId) -> Option<Instant> {
        self.get(slot)?.last_heard_at.map(|at| at + self.timeout)
    }
}
