//! The operator's configuration file (`picket.toml`): TOML text in, typed [`Config`] out.
//!
//! This module owns the file's keys (a contract with operators: see `config/picket.toml` for every
//! one of them, annotated), their defaults, every check on them, the exact location of every
//! error ([`ConfigError`]), the redaction of secrets, and the rendering of the effective
//! configuration for `picket check`. It turns the file into [`crate::engine::Settings`] with
//! [`Config::engine_settings`].
//!
//! It is pure: it never reads the file, a secret file or the environment itself, and never
//! resolves a host name. The shell reads the file and passes its text to [`parse`], then passes a
//! file reader to [`Config::resolve_secrets`]. The daemon never writes the file; durable state
//! lives in the state directory.
//!
//! # Example
//!
//! ```
//! use std::path::Path;
//!
//! let text = r#"
//!     [node]
//!     listen = "127.0.0.1:26379"
//!     gossip = "127.0.0.1:26380"
//!     http = "127.0.0.1:26381"
//!     state_dir = "/var/lib/picket"
//!
//!     [[master]]
//!     name = "cache"
//!     address = "127.0.0.1:6379"
//!     quorum = 0
//! "#;
//! let err = picket::config::parse(text, Path::new("picket.toml")).unwrap_err();
//! assert_eq!(err.to_string(), r#"picket.toml:11:5: master "cache": quorum: must be at least 1"#);
//! ```

mod error;
pub mod import;
mod locate;
mod model;
mod render;
mod secret;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use self::error::ConfigError;
pub use self::secret::{REDACTED, Secret, SecretSetting};
use crate::engine::{Addr, Credentials, MasterSettings, NodeSettings, Settings};

/// `[http] event_history` when absent: events kept for SSE clients that reconnect.
pub const DEFAULT_EVENT_HISTORY: usize = 1000;

/// `[[webhook]] events` when absent: the events an operator is paged for.
pub const DEFAULT_WEBHOOK_EVENTS: [&str; 4] =
    ["+switch-master", "+odown", "-failover-abort-*", "+tilt"];

/// `[[webhook]] timeout_ms` when absent.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_millis(5000);

/// `[[webhook]] max_retries` when absent.
pub const DEFAULT_WEBHOOK_MAX_RETRIES: u32 = 5;

/// Parses and checks the text of the configuration file at `path`.
///
/// `path` is only used in error messages and kept in [`Config::path`]; the caller reads the file.
/// Secrets given as `*_file` are not read: call [`Config::resolve_secrets`] next.
///
/// # Errors
/// The first problem found, located at its line and key (see [`ConfigError`]): TOML syntax, an
/// unknown key, a value of the wrong type, a missing required key, a bad address, or a value or
/// combination of values the checks reject.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    parse_with(text, path, &Overrides::default())
}

/// Values given on the command line that replace the file's, so that one file (a Kubernetes
/// ConfigMap, say) can serve every node: each pod passes its own `--announce`.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct Overrides {
    /// Replaces `node.announce`.
    pub announce: Option<Addr>,
    /// Replaces `node.client_announce`.
    pub client_announce: Option<Addr>,
}

/// [`parse`], with `overrides` applied before any check, so the checks (this node dropped from
/// `peers`, the quorum against the number of voters) see the effective values.
///
/// # Errors
/// As [`parse`].
pub fn parse_with(text: &str, path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
    let doc = locate::Document::parse(text, path)?;
    let mut raw: model::RawConfig = doc.deserialize()?;
    if let Some(announce) = &overrides.announce {
        raw.node.announce = Some(announce.clone());
    }
    if let Some(client_announce) = &overrides.client_announce {
        raw.node.client_announce = Some(client_announce.clone());
    }
    validate::build(raw, &doc)
}

/// The whole configuration, with every default filled in.
///
/// `Debug` redacts secrets (including the masters' passwords).
#[derive(Clone, Eq, PartialEq)]
pub struct Config {
    /// The file it was read from, as the caller named it (for messages).
    pub path: PathBuf,
    /// `[node]`: this node's sockets, peers and timings.
    pub node: NodeConfig,
    /// `[http]`: the discovery and admin API.
    pub http: HttpConfig,
    /// `[tls]`: this node's certificate and what it secures; `None` when the section is absent.
    pub tls: Option<TlsConfig>,
    /// `[[user]]`: the Sentinel port's users besides `default`, in file order.
    pub users: Vec<UserConfig>,
    /// `[[webhook]]`, in file order.
    pub webhooks: Vec<WebhookConfig>,
    /// `[[master]]`, in file order. A master whose password is in a file has `auth: None` until
    /// [`Config::resolve_secrets`] has read it.
    pub masters: Vec<MasterSettings>,
    /// Where each authenticating master's credentials come from, by master name.
    pub master_auth: BTreeMap<String, MasterAuth>,
    /// The TLS settings of each master with `tls = true`, by master name (its
    /// [`MasterSettings::tls`] profile is its name).
    pub master_tls: BTreeMap<String, MasterTls>,
}

/// `[node]`.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct NodeConfig {
    /// `listen`: the Sentinel-compatible RESP port for clients, in plain TCP (at least one of
    /// `listen` and `tls_listen` is set).
    pub listen: Option<Addr>,
    /// `tls_listen`: the same port over TLS, with `[tls]`'s certificate.
    pub tls_listen: Option<Addr>,
    /// `gossip`: the port peers connect to.
    pub gossip: Addr,
    /// `http`: discovery HTTP and `/metrics`, in plain HTTP (at least one of `http` and
    /// `tls_http` is set).
    pub http: Option<Addr>,
    /// `tls_http`: the same API over HTTPS.
    pub tls_http: Option<Addr>,
    /// `state_dir`: where durable state (epochs, votes, current masters) is kept.
    pub state_dir: PathBuf,
    /// `peers`: the other nodes' gossip addresses, in file order, without this node (a file may
    /// list every node, this one included; the entry equal to `announce` is dropped).
    pub peers: Vec<Addr>,
    /// `announce`: the gossip address peers list for this node (default: `gossip`).
    pub announce: Addr,
    /// `client_announce`: the Sentinel-port address given to clients and peers (default:
    /// `listen`, else `tls_listen`; the `announce` host with that port when it binds a
    /// wildcard).
    pub client_announce: Addr,
    /// `peer_secret` / `peer_secret_file`: the key that authenticates gossip (required when there
    /// are peers).
    pub peer_secret: Option<SecretSetting>,
    /// `requirepass` / `requirepass_file`: the password clients of the RESP port must give.
    pub requirepass: Option<SecretSetting>,
    /// `sentinel_user`: the ACL user to authenticate as on the redis-sentinel ports of
    /// `sentinel_peers` (Sentinel's `sentinel-user`); `None` = the default user.
    pub sentinel_user: Option<String>,
    /// `sentinel_pass` / `sentinel_pass_file`: the password of those ports (Sentinel's
    /// `sentinel-pass`); `None` = no `AUTH`.
    pub sentinel_pass: Option<SecretSetting>,
    /// `heartbeat_ms`.
    pub heartbeat: Duration,
    /// `peer_timeout_ms`.
    pub peer_timeout: Duration,
    /// `tilt_trigger_ms`.
    pub tilt_trigger: Duration,
    /// `tilt_period_ms`.
    pub tilt_period: Duration,
}

/// `[http]`.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct HttpConfig {
    /// `admin_token` / `admin_token_file`: required by the POST endpoints, which are disabled
    /// without it.
    pub admin_token: Option<SecretSetting>,
    /// `read_token` / `read_token_file`: when set, `GET /v1/*` requires it.
    pub read_token: Option<SecretSetting>,
    /// `event_history`: how many events are kept for SSE clients (at least 1).
    pub event_history: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { admin_token: None, read_token: None, event_history: DEFAULT_EVENT_HISTORY }
    }
}

/// `[tls]`.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct TlsConfig {
    /// `cert_file`: this node's certificate chain (PEM, leaf first), served on `tls_listen` and
    /// `tls_http` and presented to peers.
    pub cert_file: PathBuf,
    /// `key_file`: its private key (PEM).
    pub key_file: PathBuf,
    /// `ca_file`: the certificates (PEM) that sign clients' and peers' certificates.
    pub ca_file: Option<PathBuf>,
    /// `client_auth`: whether clients of `tls_listen` and `tls_http` must present a certificate.
    pub client_auth: ClientAuth,
    /// `peers`: gossip over mutually authenticated TLS.
    pub peers: bool,
}

/// `[tls] client_auth`, as Redis's `tls-auth-clients`.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub enum ClientAuth {
    /// `"none"`: no client certificate is asked for.
    #[default]
    None,
    /// `"optional"`: a certificate is asked for and, if given, must be signed by `ca_file`.
    Optional,
    /// `"required"`: clients without a certificate signed by `ca_file` are refused.
    Required,
}

impl ClientAuth {
    /// The value as written in the file.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Optional => "optional",
            Self::Required => "required",
        }
    }
}

/// One `[[user]]` of the Sentinel port.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct UserConfig {
    /// `name`: the user name given to `AUTH` and `HELLO ... AUTH`.
    pub name: String,
    /// `password` / `password_file`.
    pub password: SecretSetting,
    /// `role`.
    pub role: UserRole,
}

/// What a user of the Sentinel port may do.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum UserRole {
    /// `"read"`: everything a Sentinel client library needs (queries, `SUBSCRIBE`, `INFO`,
    /// `ROLE`, `PING`, ...), and nothing that changes the node.
    Read,
    /// `"admin"`: also `SENTINEL FAILOVER`, `RESET`, `MONITOR`, `REMOVE`, `SET`, `FLUSHCONFIG`,
    /// `SIMULATE-FAILURE`, `CLIENT KILL` and `SHUTDOWN`.
    Admin,
}

impl UserRole {
    /// The value as written in the file.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Admin => "admin",
        }
    }
}

/// A master's `tls_*` keys (present when it has `tls = true`).
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct MasterTls {
    /// `tls_ca_file`: the certificates that sign the instances' certificates; `None` for the
    /// platform's trust store.
    pub ca_file: Option<PathBuf>,
    /// `tls_cert_file`: Picket's client certificate, for instances with `tls-auth-clients yes`.
    pub cert_file: Option<PathBuf>,
    /// `tls_key_file`: its private key.
    pub key_file: Option<PathBuf>,
    /// `tls_server_name`: the name every instance's certificate is checked against, instead of
    /// the host of the address Picket connects to.
    pub server_name: Option<String>,
    /// `tls_insecure_skip_verify`: accept any certificate. Encrypts, but authenticates nothing.
    pub insecure_skip_verify: bool,
}

/// One `[[webhook]]`.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct WebhookConfig {
    /// `url`: `http://` or `https://`.
    pub url: String,
    /// `events`: glob patterns over event names (default [`DEFAULT_WEBHOOK_EVENTS`]).
    pub events: Vec<String>,
    /// `secret` / `secret_file`: HMAC key for the signature header.
    pub secret: Option<SecretSetting>,
    /// `timeout_ms`.
    pub timeout: Duration,
    /// `max_retries`.
    pub max_retries: u32,
}

/// A master's `auth_user` and `auth_pass` / `auth_pass_file`.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct MasterAuth {
    /// `auth_user`: ACL user; `None` for the default user.
    pub user: Option<String>,
    /// `auth_pass` / `auth_pass_file`.
    pub password: SecretSetting,
}

impl MasterAuth {
    /// The credentials, once the password is known.
    #[must_use]
    pub fn credentials(&self) -> Option<Credentials> {
        let password = self.password.value()?.to_owned();
        Some(Credentials { user: self.user.clone(), password })
    }
}

impl Config {
    /// The credentials for the redis-sentinel ports of `sentinel_peers`, once the password is
    /// known; `None` without `sentinel_pass`.
    #[must_use]
    pub fn sentinel_credentials(&self) -> Option<Credentials> {
        let password = self.node.sentinel_pass.as_ref()?.value()?.to_owned();
        Some(Credentials { user: self.node.sentinel_user.clone(), password })
    }

    /// Reads every `*_file` secret with `read` (the shell passes a real file reader; tests pass a
    /// map), drops one trailing newline from each, and fills in the masters' credentials. Calling
    /// it again reads the files again.
    ///
    /// # Errors
    /// The first file that cannot be read or is empty, located at its `*_file` key.
    pub fn resolve_secrets(
        &mut self,
        mut read: impl FnMut(&Path) -> io::Result<String>,
    ) -> Result<(), ConfigError> {
        let path = self.path.clone();
        let node = [
            self.node.peer_secret.as_mut(),
            self.node.requirepass.as_mut(),
            self.node.sentinel_pass.as_mut(),
        ];
        let http = [self.http.admin_token.as_mut(), self.http.read_token.as_mut()];
        let users = self.users.iter_mut().map(|user| Some(&mut user.password));
        let hooks = self.webhooks.iter_mut().map(|hook| hook.secret.as_mut());
        for secret in node.into_iter().chain(http).chain(users).chain(hooks).flatten() {
            secret.resolve(&mut read, &path)?;
        }
        // In file order, so that the first failure reported is the first in the file.
        for master in &mut self.masters {
            if let Some(auth) = self.master_auth.get_mut(&master.name) {
                auth.password.resolve(&mut read, &path)?;
                master.auth = auth.credentials();
            }
        }
        Ok(())
    }

    /// What the engine needs: this node's identity, peers and timings, and the masters.
    ///
    /// Call it after [`Config::resolve_secrets`], or masters whose password is in a file have no
    /// credentials.
    #[must_use]
    pub fn engine_settings(&self) -> Settings {
        let node = &self.node;
        Settings {
            node: NodeSettings {
                announce: node.announce.clone(),
                client_addr: node.client_announce.clone(),
                peers: node.peers.clone(),
                heartbeat: node.heartbeat,
                peer_timeout: node.peer_timeout,
                tilt_trigger: node.tilt_trigger,
                tilt_period: node.tilt_period,
            },
            masters: self.masters.clone(),
        }
    }

    /// The effective configuration as TOML, for `picket check`: every default written out,
    /// inline secrets shown as [`REDACTED`] (file secrets keep their `*_file` path). Parsing the
    /// output gives this configuration again, secrets aside.
    #[must_use]
    pub fn render_effective(&self) -> String {
        render::render(self)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `engine::Credentials` prints its password; show the masters with it blanked out.
        let masters: Vec<MasterSettings> = self
            .masters
            .iter()
            .cloned()
            .map(|mut master| {
                if let Some(auth) = &mut master.auth {
                    REDACTED.clone_into(&mut auth.password);
                }
                master
            })
            .collect();
        f.debug_struct("Config")
            .field("path", &self.path)
            .field("node", &self.node)
            .field("http", &self.http)
            .field("tls", &self.tls)
            .field("users", &self.users)
            .field("webhooks", &self.webhooks)
            .field("masters", &masters)
            .field("master_auth", &self.master_auth)
            .field("master_tls", &self.master_tls)
            .finish()
    }
}
