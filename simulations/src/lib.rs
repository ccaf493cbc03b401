//! Picket's deterministic simulator, after TigerBeetle's VOPR.
//!
//! A run is a pure function of one `u64` seed. The seed draws a deployment (3 or 5 Picket nodes,
//! one to three master groups with their replicas, settings, clock offsets) and a *swarm* of
//! faults (a random subset of fault kinds, each at a random rate). Every node runs the real,
//! unmodified [`picket::engine::Supervisor`]; Redis servers and the network are simulated. There
//! is no tokio, no thread and no wall clock inside a run: one discrete-event loop drives
//! everything in simulation time, so a failing seed replays bit for bit.
//!
//! A run has two phases:
//!
//! 1. **Safety**: faults strike for 60–120 s of simulation time while the [`checker`] checks the
//!    safety invariants against every output every engine performs.
//! 2. **Liveness**: every fault heals and injection stops; the cluster must then converge (one
//!    master per group that every node names, every replica following it) within a budget
//!    derived from the settings ([`options::Options::liveness_budget`]).
//!
//! # Layout
//!
//! * [`options`]: everything a run is made of, drawn from its seed;
//! * [`cluster`]: the deployment and the event loop (nodes, links, Redis commands);
//! * [`redis`]: one simulated Redis server;
//! * [`network`]: the event queue, delays and partitions;
//! * [`faults`]: fault injection and recovery;
//! * [`checker`]: the safety invariants;
//! * [`liveness`]: the convergence check and the state dump;
//! * [`progress`]: the progress invariant (a failover that is due happens);
//! * [`split_brain`]: the fencing invariant (no two writable masters for longer than allowed);
//! * [`run`]: one seed from start to verdict;
//! * [`trace`]: the trace.

pub mod checker;
pub mod cluster;
pub mod faults;
pub mod liveness;
pub mod network;
pub mod options;
pub mod progress;
pub mod redis;
pub mod run;
pub mod split_brain;
pub mod trace;

pub use cluster::{Failure, Simulation};
pub use options::Options;
pub use run::{Outcome, failure_report, reproduce_command, run_seed};
pub use trace::Trace;
