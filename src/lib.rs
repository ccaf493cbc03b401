//! Picket: a high-availability supervisor for Redis that speaks the Sentinel protocol.
//!
//! # Layout
//!
//! Dependencies point one way, from pure decisions to I/O:
//!
//! ```text
//!  engine   the deterministic state machine: health, SDOWN/ODOWN, epochs, votes, failover,
//!           replica choice, events, what to persist. No clock, socket, file, env or global RNG.
//!    ^
//!  wire     wire formats: RESP, INFO text, gossip frames.            (pure)
//!  config   the operator's TOML file -> engine settings.             (pure)
//!    ^
//!  shell    Redis links, peer transport, discovery servers, notifications, persistence,
//!           metrics. Shell modules never call each other; they share only the leaves
//!           `hub`, `clock`, `metrics` and `tls`.                      (feature "runtime")
//!    ^
//!  runtime  the tokio task that owns the engine, feeds it inputs and performs its outputs.
//!    ^
//!  main.rs  the CLI.
//! ```
//!
//! The pure layers build with `--no-default-features`; CI checks that they do.

pub mod config;
pub mod engine;
pub mod wire;

#[cfg(feature = "runtime")]
pub mod clock;
#[cfg(feature = "runtime")]
pub mod demo;
#[cfg(feature = "runtime")]
pub mod http;
#[cfg(feature = "runtime")]
pub mod hub;
#[cfg(feature = "runtime")]
pub mod link;
#[cfg(feature = "runtime")]
pub mod metrics;
#[cfg(feature = "runtime")]
pub mod notify;
#[cfg(feature = "runtime")]
pub mod peer;
#[cfg(feature = "runtime")]
pub mod persist;
#[cfg(feature = "runtime")]
pub mod runtime;
#[cfg(feature = "runtime")]
pub mod sentinel_peering;
#[cfg(feature = "runtime")]
pub mod sentinel_port;
#[cfg(feature = "runtime")]
pub mod tls;
