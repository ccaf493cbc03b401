//! The file as written: serde's view of the TOML, before defaults and cross-checks.
//!
//! Field names here are the keys of the file (a contract with operators: never rename one), in
//! the order serde lists them when it reports an unknown key. Every table denies unknown keys, so
//! a typo is an error rather than a silently ignored setting. Nothing here is public: `validate`
//! turns these into the typed [`crate::config::Config`]. No `Debug` derives, because these hold
//! secrets in clear.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::engine::Addr;

/// The whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) node: RawNode,
    #[serde(default)]
    pub(crate) http: RawHttp,
    pub(crate) tls: Option<RawTls>,
    #[serde(default)]
    pub(crate) user: Vec<RawUser>,
    #[serde(default)]
    pub(crate) webhook: Vec<RawWebhook>,
    // Defaulted so that a file without masters gets the precise "at least one" error.
    #[serde(default)]
    pub(crate) master: Vec<RawMaster>,
}

/// `[node]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNode {
    pub(crate) listen: Option<Addr>,
    pub(crate) tls_listen: Option<Addr>,
    pub(crate) gossip: Addr,
    pub(crate) http: Option<Addr>,
    pub(crate) tls_http: Option<Addr>,
    pub(crate) state_dir: PathBuf,
    // Strings here so that a bad address is reported at its own element, not at the array.
    #[serde(default)]
    pub(crate) peers: Vec<String>,
    pub(crate) announce: Option<Addr>,
    pub(crate) client_announce: Option<Addr>,
    pub(crate) peer_secret: Option<String>,
    pub(crate) peer_secret_file: Option<PathBuf>,
    pub(crate) requirepass: Option<String>,
    pub(crate) requirepass_file: Option<PathBuf>,
    pub(crate) heartbeat_ms: Option<u64>,
    pub(crate) peer_timeout_ms: Option<u64>,
    pub(crate) tilt_trigger_ms: Option<u64>,
    pub(crate) tilt_period_ms: Option<u64>,
    pub(crate) sentinel_user: Option<String>,
    pub(crate) sentinel_pass: Option<String>,
    pub(crate) sentinel_pass_file: Option<PathBuf>,
}

/// `[http]`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttp {
    pub(crate) admin_token: Option<String>,
    pub(crate) admin_token_file: Option<PathBuf>,
    pub(crate) read_token: Option<String>,
    pub(crate) read_token_file: Option<PathBuf>,
    pub(crate) event_history: Option<usize>,
}

/// `[tls]`: this node's certificate, and what it secures.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub(crate) cert_file: Option<PathBuf>,
    pub(crate) key_file: Option<PathBuf>,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) client_auth: Option<String>,
    pub(crate) peers: Option<bool>,
}

/// One `[[user]]` of the Sentinel port.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUser {
    pub(crate) name: String,
    pub(crate) password: Option<String>,
    pub(crate) password_file: Option<PathBuf>,
    pub(crate) role: String,
}

/// One `[[webhook]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebhook {
    pub(crate) url: String,
    pub(crate) events: Option<Vec<String>>,
    pub(crate) secret: Option<String>,
    pub(crate) secret_file: Option<PathBuf>,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) max_retries: Option<u32>,
}

/// One `[[master]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMaster {
    pub(crate) name: String,
    pub(crate) address: Addr,
    pub(crate) quorum: u32,
    pub(crate) down_after_ms: Option<u64>,
    pub(crate) down_after_refused_ms: Option<u64>,
    pub(crate) failover_timeout_ms: Option<u64>,
    pub(crate) parallel_syncs: Option<u32>,
    pub(crate) auth_user: Option<String>,
    pub(crate) auth_pass: Option<String>,
    pub(crate) auth_pass_file: Option<PathBuf>,
    pub(crate) tls: Option<bool>,
    pub(crate) tls_ca_file: Option<PathBuf>,
    pub(crate) tls_cert_file: Option<PathBuf>,
    pub(crate) tls_key_file: Option<PathBuf>,
    pub(crate) tls_server_name: Option<String>,
    pub(crate) tls_insecure_skip_verify: Option<bool>,
    pub(crate) reboot_down_after_ms: Option<u64>,
    // Keys stay strings for the same reason as `peers`.
    #[serde(default)]
    pub(crate) replica_priority: BTreeMap<String, u32>,
    pub(crate) notification_script: Option<String>,
    pub(crate) client_reconfig_script: Option<String>,
    pub(crate) fencing: Option<String>,
    pub(crate) max_lag_on_failover_bytes: Option<u64>,
    pub(crate) min_failover_interval_ms: Option<u64>,
    pub(crate) switchover_timeout_ms: Option<u64>,
    // Strings for the same reason as `peers`.
    pub(crate) sentinel_peers: Option<Vec<String>>,
}
