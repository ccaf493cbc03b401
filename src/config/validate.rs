//! From the file as written ([`crate::config::model`]) to the typed [`Config`]: defaults filled
//! in, every value and every cross-key rule checked, each failure located at its key.
//!
//! Checks stop at the first error: one precise message beats a cascade of consequences.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::error::ConfigError;
use crate::config::locate::{Document, KeyPath};
use crate::config::model::{RawConfig, RawHttp, RawMaster, RawNode, RawTls, RawUser, RawWebhook};
use crate::config::secret::{Secret, SecretSetting};
use crate::config::{
    ClientAuth, Config, DEFAULT_EVENT_HISTORY, DEFAULT_WEBHOOK_EVENTS, DEFAULT_WEBHOOK_MAX_RETRIES,
    DEFAULT_WEBHOOK_TIMEOUT, HttpConfig, MasterAuth, MasterTls, NodeConfig, TlsConfig, UserConfig,
    UserRole, WebhookConfig,
};
use crate::engine::{Addr, AddrError, Fencing, MasterSettings, NodeSettings, TlsProfile};

/// Builds the typed configuration from the raw one.
pub(crate) fn build(raw: RawConfig, doc: &Document<'_>) -> Result<Config, ConfigError> {
    let node = node(raw.node, doc)?;
    let http = http(raw.http, doc)?;
    let tls = raw.tls.map(|raw| tls(raw, doc)).transpose()?;
    tls_in_use(&node, tls.as_ref(), doc)?;
    let users = users(raw.user, doc)?;
    let webhooks = raw
        .webhook
        .into_iter()
        .enumerate()
        .map(|(i, hook)| webhook(hook, &KeyPath::root().key("webhook").index(i), doc))
        .collect::<Result<_, _>>()?;
    let voters = node.peers.len() + 1;
    let masters = masters(raw.master, voters, doc)?;
    Ok(Config {
        path: doc.path().to_owned(),
        node,
        http,
        tls,
        users,
        webhooks,
        masters: masters.settings,
        master_auth: masters.auth,
        master_tls: masters.tls,
    })
}

fn node(raw: RawNode, doc: &Document<'_>) -> Result<NodeConfig, ConfigError> {
    let at = KeyPath::root().key("node");
    // The RESP port clients are told about: the plain one while there is one (a migration to
    // TLS runs both), else the TLS one.
    let Some(client_port) = raw.listen.as_ref().or(raw.tls_listen.as_ref()) else {
        return Err(doc.error(&at.key("listen"), "set listen, tls_listen or both"));
    };
    let client_port = client_port.clone();
    if raw.http.is_none() && raw.tls_http.is_none() {
        return Err(doc.error(&at.key("http"), "set http, tls_http or both"));
    }
    distinct_binds(&raw, &at, doc)?;
    if raw.state_dir.as_os_str().is_empty() {
        return Err(doc.error(&at.key("state_dir"), "must not be empty"));
    }
    let announce = match raw.announce {
        Some(announce) => reachable(announce, &at.key("announce"), doc)?,
        None if is_wildcard(&raw.gossip) => {
            let message = "binds a wildcard address, so announce is required (the address peers \
                           list for this node)";
            return Err(doc.error(&at.key("gossip"), message));
        }
        None => raw.gossip.clone(),
    };
    let client_announce = match raw.client_announce {
        Some(addr) => reachable(addr, &at.key("client_announce"), doc)?,
        // Clients reach the Sentinel port on the host peers reach this node by.
        None if is_wildcard(&client_port) => Addr::new(announce.host(), client_port.port())
            .map_err(|e| doc.error(&at.key("listen"), e.to_string()))?,
        None => client_port,
    };
    let peers = peers(raw.peers, &announce, &at, doc)?;
    let peer_secret = secret(doc, &at, "peer_secret", raw.peer_secret, raw.peer_secret_file)?;
    if !peers.is_empty() && peer_secret.is_none() {
        let message = "peers are configured, so peer_secret or peer_secret_file is required";
        return Err(doc.error(&at.key("peers"), message));
    }
    let requirepass = secret(doc, &at, "requirepass", raw.requirepass, raw.requirepass_file)?;
    let sentinel_pass =
        secret(doc, &at, "sentinel_pass", raw.sentinel_pass, raw.sentinel_pass_file)?;
    match &raw.sentinel_user {
        Some(user) if user.is_empty() => {
            return Err(doc.error(&at.key("sentinel_user"), "must not be empty"));
        }
        Some(_) if sentinel_pass.is_none() => {
            let message = "requires sentinel_pass or sentinel_pass_file";
            return Err(doc.error(&at.key("sentinel_user"), message));
        }
        _ => {}
    }
    // The engine's defaults are the file's defaults: one source of truth.
    let timings = NodeSettings::new(announce.clone(), client_announce.clone(), peers);
    let written = [raw.heartbeat_ms, raw.peer_timeout_ms, raw.tilt_trigger_ms, raw.tilt_period_ms];
    let timings = node_timings(written, timings, &at, doc)?;
    Ok(NodeConfig {
        listen: raw.listen,
        tls_listen: raw.tls_listen,
        gossip: raw.gossip,
        http: raw.http,
        tls_http: raw.tls_http,
        state_dir: raw.state_dir,
        peers: timings.peers,
        announce,
        client_announce,
        peer_secret,
        requirepass,
        sentinel_user: raw.sentinel_user,
        sentinel_pass,
        heartbeat: timings.heartbeat,
        peer_timeout: timings.peer_timeout,
        tilt_trigger: timings.tilt_trigger,
        tilt_period: timings.tilt_period,
    })
}

/// `defaults` with the node's `heartbeat_ms`, `peer_timeout_ms`, `tilt_trigger_ms` and
/// `tilt_period_ms` applied, as written (in that order).
fn node_timings(
    written: [Option<u64>; 4],
    defaults: NodeSettings,
    at: &KeyPath,
    doc: &Document<'_>,
) -> Result<NodeSettings, ConfigError> {
    let [heartbeat_ms, peer_timeout_ms, tilt_trigger_ms, tilt_period_ms] = written;
    let heartbeat = millis(doc, &at.key("heartbeat_ms"), heartbeat_ms, defaults.heartbeat)?;
    let peer_timeout =
        millis(doc, &at.key("peer_timeout_ms"), peer_timeout_ms, defaults.peer_timeout)?;
    if peer_timeout <= heartbeat {
        // Peers would time out between two heartbeats. Blame the key the operator wrote (with
        // both defaults this cannot happen).
        let (key, message) = if peer_timeout_ms.is_some() {
            let millis = heartbeat.as_millis();
            ("peer_timeout_ms", format!("must be greater than heartbeat_ms ({millis})"))
        } else {
            let millis = peer_timeout.as_millis();
            ("heartbeat_ms", format!("must be less than peer_timeout_ms ({millis})"))
        };
        return Err(doc.error(&at.key(key), message));
    }
    let tilt_trigger =
        millis(doc, &at.key("tilt_trigger_ms"), tilt_trigger_ms, defaults.tilt_trigger)?;
    let tilt_period = millis(doc, &at.key("tilt_period_ms"), tilt_period_ms, defaults.tilt_period)?;
    Ok(NodeSettings { heartbeat, peer_timeout, tilt_trigger, tilt_period, ..defaults })
}

/// The listening sockets must not collide: same address, or the same port where one of them
/// binds every address.
fn distinct_binds(raw: &RawNode, at: &KeyPath, doc: &Document<'_>) -> Result<(), ConfigError> {
    let binds: Vec<(&str, &Addr)> = [
        ("listen", raw.listen.as_ref()),
        ("tls_listen", raw.tls_listen.as_ref()),
        ("gossip", Some(&raw.gossip)),
        ("http", raw.http.as_ref()),
        ("tls_http", raw.tls_http.as_ref()),
    ]
    .into_iter()
    .filter_map(|(key, addr)| Some((key, addr?)))
    .collect();
    for (i, (key, addr)) in binds.iter().enumerate() {
        for (earlier_key, earlier) in binds.iter().take(i) {
            let collide = addr.port() == earlier.port()
                && (addr.host() == earlier.host() || is_wildcard(addr) || is_wildcard(earlier));
            if collide {
                let message = format!("must differ from {earlier_key} ({earlier})");
                return Err(doc.error(&at.key(key), message));
            }
        }
    }
    Ok(())
}

/// A master's `sentinel_peers`: the redis-sentinel processes this node accepts as voters for
/// it, at the address each announces in its hellos (Sentinel-compatible peering, for a rolling
/// migration). An empty list is refused: leaving the key out is how the mode is turned off.
fn sentinel_peers(
    raw: Option<&[String]>,
    at: &KeyPath,
    doc: &Document<'_>,
) -> Result<Vec<Addr>, ConfigError> {
    let Some(raw) = raw else { return Ok(Vec::new()) };
    if raw.is_empty() {
        let message = "must list at least one Sentinel (leave the key out to turn the mode off)";
        return Err(doc.error(&at.key("sentinel_peers"), message));
    }
    let mut listed: Vec<Addr> = Vec::with_capacity(raw.len());
    for (i, text) in raw.iter().enumerate() {
        let here = at.key("sentinel_peers").index(i);
        let addr: Addr = text.parse().map_err(|e: AddrError| doc.error(&here, e.to_string()))?;
        if is_wildcard(&addr) {
            let message = format!("{addr} is a wildcard address, not a Sentinel's");
            return Err(doc.error(&here, message));
        }
        if let Some(first) = listed.iter().position(|p| *p == addr) {
            let message = format!("{addr} is already listed as sentinel_peers[{first}]");
            return Err(doc.error(&here, message));
        }
        listed.push(addr);
    }
    Ok(listed)
}

/// Checks the peer list and drops this node from it (one file may serve every node).
fn peers(
    raw: Vec<String>,
    announce: &Addr,
    at: &KeyPath,
    doc: &Document<'_>,
) -> Result<Vec<Addr>, ConfigError> {
    let mut peers: Vec<Addr> = Vec::with_capacity(raw.len());
    for (i, text) in raw.iter().enumerate() {
        let here = at.key("peers").index(i);
        let peer: Addr = text.parse().map_err(|e: AddrError| doc.error(&here, e.to_string()))?;
        if is_wildcard(&peer) {
            return Err(doc.error(&here, format!("{peer} is a wildcard address, not a peer's")));
        }
        if let Some(first) = peers.iter().position(|p| *p == peer) {
            return Err(doc.error(&here, format!("{peer} is already listed as peers[{first}]")));
        }
        peers.push(peer);
    }
    // Matched as written, without resolving names: the same rule the engine applies.
    peers.retain(|peer| peer != announce);
    Ok(peers)
}

fn http(raw: RawHttp, doc: &Document<'_>) -> Result<HttpConfig, ConfigError> {
    let at = KeyPath::root().key("http");
    let event_history = match raw.event_history {
        None => DEFAULT_EVENT_HISTORY,
        Some(0) => return Err(doc.error(&at.key("event_history"), "must be at least 1")),
        Some(n) => n,
    };
    Ok(HttpConfig {
        admin_token: secret(doc, &at, "admin_token", raw.admin_token, raw.admin_token_file)?,
        read_token: secret(doc, &at, "read_token", raw.read_token, raw.read_token_file)?,
        event_history,
    })
}

fn tls(raw: RawTls, doc: &Document<'_>) -> Result<TlsConfig, ConfigError> {
    let at = KeyPath::root().key("tls");
    let cert_file = non_empty(doc, &at.key("cert_file"), raw.cert_file)?;
    let key_file = non_empty(doc, &at.key("key_file"), raw.key_file)?;
    let ca_file = non_empty(doc, &at.key("ca_file"), raw.ca_file)?;
    let (Some(cert_file), Some(key_file)) = (cert_file, key_file) else {
        return Err(doc.error(&at, "cert_file and key_file are required (this node's certificate)"));
    };
    let client_auth = match raw.client_auth.as_deref() {
        None | Some("none") => ClientAuth::None,
        Some("optional") => ClientAuth::Optional,
        Some("required") => ClientAuth::Required,
        Some(other) => {
            let message = format!("{other:?} is not one of \"none\", \"optional\", \"required\"");
            return Err(doc.error(&at.key("client_auth"), message));
        }
    };
    if client_auth != ClientAuth::None && ca_file.is_none() {
        let message = "client certificates are checked against ca_file, which is not set";
        return Err(doc.error(&at.key("client_auth"), message));
    }
    let peers = raw.peers.unwrap_or(false);
    if peers && ca_file.is_none() {
        let message = "peers' certificates are checked against ca_file, which is not set";
        return Err(doc.error(&at.key("peers"), message));
    }
    Ok(TlsConfig { cert_file, key_file, ca_file, client_auth, peers })
}

/// `tls_listen` and `tls_http` need `[tls]`, and `[tls]` must secure something.
fn tls_in_use(
    node: &NodeConfig,
    tls: Option<&TlsConfig>,
    doc: &Document<'_>,
) -> Result<(), ConfigError> {
    let at = KeyPath::root().key("node");
    let servers =
        [("tls_listen", node.tls_listen.is_some()), ("tls_http", node.tls_http.is_some())];
    match tls {
        None => match servers.iter().find(|(_, set)| *set) {
            Some((key, _)) => {
                let message = "needs the [tls] section (cert_file and key_file)";
                Err(doc.error(&at.key(key), message))
            }
            None => Ok(()),
        },
        Some(tls) if !tls.peers && servers.iter().all(|(_, set)| !set) => Err(doc.error(
            &KeyPath::root().key("tls"),
            "secures nothing: set node.tls_listen, node.tls_http or tls.peers",
        )),
        Some(_) => Ok(()),
    }
}

/// The `[[user]]` entries, in file order.
fn users(raw: Vec<RawUser>, doc: &Document<'_>) -> Result<Vec<UserConfig>, ConfigError> {
    let list = KeyPath::root().key("user");
    let mut users: Vec<UserConfig> = Vec::with_capacity(raw.len());
    for (i, raw) in raw.into_iter().enumerate() {
        let at = list.index(i);
        let name_error = if raw.name.is_empty() {
            Some("must not be empty".to_owned())
        } else if raw.name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Some("must not contain spaces or control characters".to_owned())
        } else if raw.name == "default" {
            Some("the default user's password is node.requirepass".to_owned())
        } else {
            users.iter().position(|u| u.name == raw.name).map(|first| {
                let line = doc.line_of(&list.index(first).key("name"));
                format!("duplicate user name (first defined on line {line})")
            })
        };
        if let Some(message) = name_error {
            return Err(doc.error(&at.key("name"), message));
        }
        let role = match raw.role.as_str() {
            "read" => UserRole::Read,
            "admin" => UserRole::Admin,
            other => {
                let message = format!("{other:?} is not one of \"read\", \"admin\"");
                return Err(doc.error(&at.key("role"), message));
            }
        };
        let Some(password) = secret(doc, &at, "password", raw.password, raw.password_file)? else {
            return Err(doc.error(&at.key("password"), "password or password_file is required"));
        };
        users.push(UserConfig { name: raw.name, password, role });
    }
    Ok(users)
}

fn webhook(
    raw: RawWebhook,
    at: &KeyPath,
    doc: &Document<'_>,
) -> Result<WebhookConfig, ConfigError> {
    let scheme_len = ["http://", "https://"]
        .into_iter()
        .find(|scheme| raw.url.get(..scheme.len()).is_some_and(|s| s.eq_ignore_ascii_case(scheme)))
        .map(str::len);
    let Some(scheme_len) = scheme_len else {
        return Err(doc.error(&at.key("url"), "must start with http:// or https://"));
    };
    let rest = raw.url.get(scheme_len..).unwrap_or_default();
    if rest.is_empty() || rest.starts_with('/') || raw.url.chars().any(char::is_whitespace) {
        return Err(doc.error(&at.key("url"), format!("{:?} is not a usable URL", raw.url)));
    }
    let events = match raw.events {
        None => DEFAULT_WEBHOOK_EVENTS.iter().map(|e| (*e).to_owned()).collect(),
        Some(events) if events.is_empty() => {
            return Err(doc.error(&at.key("events"), "must list at least one event pattern"));
        }
        Some(events) => events,
    };
    for (i, pattern) in events.iter().enumerate() {
        if pattern.is_empty() || pattern.chars().any(|c| c.is_whitespace() || c.is_control()) {
            let message = "an event pattern must be non-empty, without spaces";
            return Err(doc.error(&at.key("events").index(i), message));
        }
    }
    Ok(WebhookConfig {
        url: raw.url,
        events,
        secret: secret(doc, at, "secret", raw.secret, raw.secret_file)?,
        timeout: millis(doc, &at.key("timeout_ms"), raw.timeout_ms, DEFAULT_WEBHOOK_TIMEOUT)?,
        max_retries: raw.max_retries.unwrap_or(DEFAULT_WEBHOOK_MAX_RETRIES),
    })
}

/// The masters of the file, with what the engine does not keep about them.
struct Masters {
    /// In file order.
    settings: Vec<MasterSettings>,
    /// The credentials sources of those that authenticate, by name.
    auth: BTreeMap<String, MasterAuth>,
    /// The TLS settings of those with `tls = true`, by name.
    tls: BTreeMap<String, MasterTls>,
}

/// The masters, in file order.
fn masters(raw: Vec<RawMaster>, voters: usize, doc: &Document<'_>) -> Result<Masters, ConfigError> {
    let list = KeyPath::root().key("master");
    if raw.is_empty() {
        return Err(doc.error(&list, "at least one [[master]] section is required"));
    }
    let mut masters: Vec<MasterSettings> = Vec::with_capacity(raw.len());
    let mut auths = BTreeMap::new();
    let mut tls = BTreeMap::new();
    for (i, mut raw) in raw.into_iter().enumerate() {
        let at = list.index(i);
        let master_tls = master_tls(&mut raw, &at, doc)?;
        let (mut settings, auth) = master(raw, voters, &at, doc)?;
        if let Some(first) = masters.iter().position(|m| m.name == settings.name) {
            let line = doc.line_of(&list.index(first).key("name"));
            let message = format!("duplicate master name (first defined on line {line})");
            return Err(doc.error(&at.key("name"), message));
        }
        if let Some(first) = masters.iter().find(|m| m.addr == settings.addr) {
            let message =
                format!("{} is already the address of master {:?}", settings.addr, first.name);
            return Err(doc.error(&at.key("address"), message));
        }
        if let Some(auth) = auth {
            auths.insert(settings.name.clone(), auth);
        }
        if let Some(master_tls) = master_tls {
            settings.tls = Some(TlsProfile(settings.name.clone()));
            tls.insert(settings.name.clone(), master_tls);
        }
        masters.push(settings);
    }
    Ok(Masters { settings: masters, auth: auths, tls })
}

/// A master's `tls` and `tls_*` keys (taken out of `raw`): `Some` with `tls = true`.
fn master_tls(
    raw: &mut RawMaster,
    at: &KeyPath,
    doc: &Document<'_>,
) -> Result<Option<MasterTls>, ConfigError> {
    let ca_file = non_empty(doc, &at.key("tls_ca_file"), raw.tls_ca_file.take())?;
    let cert_file = non_empty(doc, &at.key("tls_cert_file"), raw.tls_cert_file.take())?;
    let key_file = non_empty(doc, &at.key("tls_key_file"), raw.tls_key_file.take())?;
    let server_name = raw.tls_server_name.take();
    let insecure_skip_verify = raw.tls_insecure_skip_verify.take();
    if raw.tls != Some(true) {
        let set = [
            ("tls_ca_file", ca_file.is_some()),
            ("tls_cert_file", cert_file.is_some()),
            ("tls_key_file", key_file.is_some()),
            ("tls_server_name", server_name.is_some()),
            ("tls_insecure_skip_verify", insecure_skip_verify.is_some()),
        ];
        if let Some((key, _)) = set.iter().find(|(_, set)| *set) {
            return Err(doc.error(&at.key(key), "only applies with tls = true"));
        }
        return Ok(None);
    }
    match (&cert_file, &key_file) {
        (Some(_), None) => {
            return Err(doc.error(&at.key("tls_cert_file"), "needs tls_key_file (its key)"));
        }
        (None, Some(_)) => {
            return Err(doc.error(&at.key("tls_key_file"), "needs tls_cert_file (its certificate)"));
        }
        _ => {}
    }
    if let Some(name) = &server_name {
        let valid = name.parse::<IpAddr>().is_ok()
            || (!name.is_empty()
                && name.len() <= 253
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.*".contains(&b)));
        if !valid {
            let message = format!("{name:?} is neither a host name nor an IP address");
            return Err(doc.error(&at.key("tls_server_name"), message));
        }
    }
    let insecure_skip_verify = insecure_skip_verify.unwrap_or(false);
    if insecure_skip_verify && (ca_file.is_some() || server_name.is_some()) {
        let message = "verifies nothing, so tls_ca_file and tls_server_name would be ignored: \
                       remove them or this key";
        return Err(doc.error(&at.key("tls_insecure_skip_verify"), message));
    }
    Ok(Some(MasterTls { ca_file, cert_file, key_file, server_name, insecure_skip_verify }))
}

fn master(
    raw: RawMaster,
    voters: usize,
    at: &KeyPath,
    doc: &Document<'_>,
) -> Result<(MasterSettings, Option<MasterAuth>), ConfigError> {
    if raw.name.is_empty() {
        return Err(doc.error(&at.key("name"), "must not be empty"));
    }
    if raw.name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        // Names travel in space-separated event payloads (`+switch-master <name> ...`).
        return Err(doc.error(&at.key("name"), "must not contain spaces or control characters"));
    }
    if raw.quorum == 0 {
        return Err(doc.error(&at.key("quorum"), "must be at least 1"));
    }
    let sentinel_peers = sentinel_peers(raw.sentinel_peers.as_deref(), at, doc)?;
    let all_voters = voters + sentinel_peers.len();
    if usize::try_from(raw.quorum).map_or(true, |q| q > all_voters) {
        let peers = voters - 1;
        let plural = if peers == 1 { "" } else { "s" };
        let who = match sentinel_peers.len() {
            0 => format!("this node and {peers} peer{plural}"),
            1 => format!("this node, {peers} peer{plural} and 1 listed Sentinel"),
            n => format!("this node, {peers} peer{plural} and {n} listed Sentinels"),
        };
        let message = format!("must be at most the number of voters, {all_voters} ({who})");
        return Err(doc.error(&at.key("quorum"), message));
    }
    let mut settings = MasterSettings::new(&raw.name, raw.address.clone(), raw.quorum);
    settings.sentinel_peers = sentinel_peers;
    settings.down_after =
        millis(doc, &at.key("down_after_ms"), raw.down_after_ms, settings.down_after)?;
    settings.down_after_refused = match raw.down_after_refused_ms {
        None => settings.down_after_refused,
        Some(0) => None,
        Some(ms) if Duration::from_millis(ms) >= settings.down_after => {
            let message = format!(
                "must be less than down_after_ms ({}), or 0 to turn the crash rule off",
                settings.down_after.as_millis()
            );
            return Err(doc.error(&at.key("down_after_refused_ms"), message));
        }
        Some(ms) => Some(Duration::from_millis(ms)),
    };
    settings.failover_timeout = millis(
        doc,
        &at.key("failover_timeout_ms"),
        raw.failover_timeout_ms,
        settings.failover_timeout,
    )?;
    settings.parallel_syncs = match raw.parallel_syncs {
        None => settings.parallel_syncs,
        Some(0) => return Err(doc.error(&at.key("parallel_syncs"), "must be at least 1")),
        Some(n) => n,
    };
    // 0 is Sentinel's "off" for master-reboot-down-after-period.
    settings.reboot_down_after =
        raw.reboot_down_after_ms.filter(|&ms| ms > 0).map(Duration::from_millis);
    safety(&mut settings, &raw, at, doc)?;
    settings.priority_overrides = priority_overrides(raw.replica_priority, at, doc)?;
    settings.notification_script =
        non_empty(doc, &at.key("notification_script"), raw.notification_script)?;
    settings.client_reconfig_script =
        non_empty(doc, &at.key("client_reconfig_script"), raw.client_reconfig_script)?;
    let password = secret(doc, at, "auth_pass", raw.auth_pass, raw.auth_pass_file)?;
    let auth = match (raw.auth_user, password) {
        (Some(user), _) if user.is_empty() => {
            return Err(doc.error(&at.key("auth_user"), "must not be empty"));
        }
        (Some(_), None) => {
            let message = "requires auth_pass or auth_pass_file";
            return Err(doc.error(&at.key("auth_user"), message));
        }
        (user, Some(password)) => Some(MasterAuth { user, password }),
        (None, None) => None,
    };
    settings.auth = auth.as_ref().and_then(MasterAuth::credentials);
    Ok((settings, auth))
}

/// The keys of fencing and of the failover limits.
fn safety(
    settings: &mut MasterSettings,
    raw: &RawMaster,
    at: &KeyPath,
    doc: &Document<'_>,
) -> Result<(), ConfigError> {
    if let Some(text) = &raw.fencing {
        settings.fencing = Fencing::parse(text).ok_or_else(|| {
            let message = format!("{text:?} is not one of \"off\", \"bounded\", \"strict\"");
            doc.error(&at.key("fencing"), message)
        })?;
    }
    settings.max_lag_on_failover_bytes = raw.max_lag_on_failover_bytes;
    // 0 is "no minimum", as for reboot_down_after_ms.
    settings.min_failover_interval =
        raw.min_failover_interval_ms.filter(|&ms| ms > 0).map(Duration::from_millis);
    // The old master's writes stay paused for failover_timeout: a longer wait would let them
    // resume before the promotion, and lose what they accept. Unwritten, the wait is the
    // default or half the failover timeout, whichever is shorter.
    let key = at.key("switchover_timeout_ms");
    let Some(ms) = raw.switchover_timeout_ms else {
        settings.switchover_timeout =
            settings.switchover_timeout.min(settings.failover_timeout / 2);
        return Ok(());
    };
    settings.switchover_timeout = millis(doc, &key, Some(ms), settings.switchover_timeout)?;
    if settings.switchover_timeout >= settings.failover_timeout {
        let message = format!(
            "must be less than failover_timeout_ms ({}): a switchover pauses the master's \
             writes for at most that long",
            settings.failover_timeout.as_millis()
        );
        return Err(doc.error(&key, message));
    }
    Ok(())
}

fn priority_overrides(
    raw: BTreeMap<String, u32>,
    at: &KeyPath,
    doc: &Document<'_>,
) -> Result<BTreeMap<Addr, u32>, ConfigError> {
    let mut overrides = BTreeMap::new();
    let mut written: BTreeMap<Addr, String> = BTreeMap::new();
    for (key, priority) in raw {
        let here = at.key("replica_priority").key(&key);
        let addr: Addr = key.parse().map_err(|e: AddrError| doc.error(&here, e.to_string()))?;
        // Host names are case-insensitive: `Redis-1:6379` and `redis-1:6379` are one replica.
        if let Some(first) = written.insert(addr.clone(), key.clone()) {
            return Err(doc.error(&here, format!("same replica as {first:?}")));
        }
        overrides.insert(addr, priority);
    }
    Ok(overrides)
}

/// A script or file path key: not empty when set.
fn non_empty<T: AsRef<std::ffi::OsStr>>(
    doc: &Document<'_>,
    at: &KeyPath,
    value: Option<T>,
) -> Result<Option<T>, ConfigError> {
    match value {
        Some(v) if v.as_ref().is_empty() => Err(doc.error(at, "must not be empty")),
        other => Ok(other),
    }
}

/// The secret configured by `name` or `name_file` in the table at `table`.
fn secret(
    doc: &Document<'_>,
    table: &KeyPath,
    name: &str,
    inline: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<SecretSetting>, ConfigError> {
    let file_key = format!("{name}_file");
    match (inline, file) {
        (Some(_), Some(_)) => {
            let message = format!("set either {name} or {file_key}, not both");
            Err(doc.error(&table.key(&file_key), message))
        }
        (Some(value), None) if value.is_empty() => {
            Err(doc.error(&table.key(name), "must not be empty"))
        }
        (Some(value), None) => {
            Ok(Some(SecretSetting::new(Secret::Inline(value), doc.origin(&table.key(name)))))
        }
        (None, Some(path)) if path.as_os_str().is_empty() => {
            Err(doc.error(&table.key(&file_key), "must not be empty"))
        }
        (None, Some(path)) => {
            Ok(Some(SecretSetting::new(Secret::File(path), doc.origin(&table.key(&file_key)))))
        }
        (None, None) => Ok(None),
    }
}

/// A `*_ms` key: at least 1 when set, `default` when not.
fn millis(
    doc: &Document<'_>,
    at: &KeyPath,
    value: Option<u64>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(0) => Err(doc.error(at, "must be at least 1")),
        Some(ms) => Ok(Duration::from_millis(ms)),
    }
}

/// An address others must be able to connect to.
fn reachable(addr: Addr, at: &KeyPath, doc: &Document<'_>) -> Result<Addr, ConfigError> {
    if is_wildcard(&addr) {
        return Err(
            doc.error(at, format!("{addr} is a wildcard address; give one others can reach"))
        );
    }
    Ok(addr)
}

/// `0.0.0.0` or `::` (any spelling): binds every address, reaches none.
fn is_wildcard(addr: &Addr) -> bool {
    addr.host().parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified())
}
