//! The deterministic core: every decision Picket makes, and none of its I/O.
//!
//! ```text
//!   Tick, LinkUp/Down, Replied ──┐                    ┌──► Connect / Disconnect / Send  (Redis links)
//!   Peer messages ───────────────┼──► Supervisor ─────┼──► SendPeer                     (gossip)
//!   Admin commands ──────────────┘    handle(now, in) ├──► Persist  (barrier: durable before the rest)
//!                                                     ├──► Emit     (events: pub/sub, HTTP, scripts)
//!                                                     └──► Answer   (to admin commands)
//! ```
//!
//! The engine reads no clock, socket, file, environment variable or global RNG: `now` and every
//! fact arrive as inputs, and its randomness comes from a ChaCha8 generator seeded by the caller.
//! The same code runs under the tokio runtime and under the deterministic simulator.
//!
//! Module map: [`supervisor`] is the entry point; [`group`] supervises one master group;
//! [`instance`] monitors one Redis instance; [`failover`] is the leader's state machine;
//! [`election`] and [`selection`] are the pure voting and replica-choice rules; [`peers`] holds
//! what other nodes said, [`sentinels`] what listed redis-sentinel voters said; [`gossip`],
//! [`io`], [`event`], [`durable`] and [`view`] are the vocabularies the engine speaks to the
//! outside.

pub mod addr;
pub mod admin;
pub mod durable;
pub mod election;
pub mod event;
pub mod failover;
pub mod fence;
pub mod glob;
pub mod gossip;
pub mod group;
pub mod ids;
pub mod instance;
pub mod io;
pub mod node;
pub mod peers;
pub mod report;
pub mod restore;
pub mod selection;
pub mod sentinels;
pub mod settings;
pub mod supervisor;
pub mod time;
pub mod timers;
pub mod timing;
pub mod view;

pub use addr::{Addr, AddrError};
pub use admin::SetOption;
pub use durable::{DurableMaster, DurableState, Inconsistency, SettingChange};
pub use event::{Detail, Event, EventKind, Level, Subject};
pub use fence::{Fencing, Lease};
pub use gossip::{Body, MasterReport, PeerMessage, Sender, StateVersion};
pub use ids::{LinkId, NodeId, PeerId, RequestId, Ticket};
pub use io::{
    AdminAnswer, AdminCommand, AdminRefusal, CachedInfo, Input, LinkFailure, Output,
    PromotedWrites, RedisCommand, Reply,
};
pub use report::{InfoReport, ListedReplica, ReplicaLink, ReportedRole};
pub use sentinels::{DownAnswer, Hello};
pub use settings::{Credentials, MasterSettings, NodeSettings, Settings, TlsProfile};
pub use supervisor::Supervisor;
pub use time::Instant;
pub use view::{MasterStatus, MasterView, View};

#[cfg(test)]
mod tests;
