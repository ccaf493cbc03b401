//! Scenario tests of the whole engine, driven through virtual time: given these inputs, exactly
//! these outputs.

mod admin;
mod crash;
mod election;
mod failover;
mod fencing;
mod harness;
mod monitoring;
mod sentinels;
mod state;
