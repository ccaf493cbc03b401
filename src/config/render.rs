//! The effective configuration written back as TOML, for `picket check`.
//!
//! Written by hand rather than through serde so that the layout is the documented one (sections
//! in file order, `replica_priority` inline) and every default appears. Keys with no default that
//! are not set are left out. Inline secrets are replaced by [`REDACTED`], which parses back as a
//! (useless) inline secret; file secrets keep their `*_file` path, which is not secret.

use std::fmt::Write as _;
use std::time::Duration;

use crate::config::secret::{REDACTED, Secret, SecretSetting};
use crate::config::{Config, HttpConfig, NodeConfig, TlsConfig, UserConfig, WebhookConfig};
use crate::engine::MasterSettings;
use crate::engine::time::duration_millis;

/// Renders `config` (see [`Config::render_effective`]).
pub(crate) fn render(config: &Config) -> String {
    let mut out = Out(String::new());
    // Escaped: a line break in the path would end the comment.
    let path = config.path.display().to_string();
    out.line(&format!(
        "# Effective configuration from {}: defaults filled in, secrets redacted.",
        path.escape_debug()
    ));
    node(&mut out, &config.node);
    http(&mut out, &config.http);
    if let Some(config_tls) = &config.tls {
        tls(&mut out, config_tls);
    }
    for config_user in &config.users {
        user(&mut out, config_user);
    }
    for hook in &config.webhooks {
        webhook(&mut out, hook);
    }
    for master_settings in &config.masters {
        master(&mut out, config, master_settings);
    }
    out.0
}

fn node(out: &mut Out, node: &NodeConfig) {
    out.line("\n[node]");
    out.addr("listen", node.listen.as_ref());
    out.addr("tls_listen", node.tls_listen.as_ref());
    out.string("gossip", &node.gossip.to_string());
    out.addr("http", node.http.as_ref());
    out.addr("tls_http", node.tls_http.as_ref());
    out.string("state_dir", &node.state_dir.to_string_lossy());
    out.strings("peers", node.peers.iter().map(ToString::to_string));
    out.string("announce", &node.announce.to_string());
    out.string("client_announce", &node.client_announce.to_string());
    out.secret("peer_secret", node.peer_secret.as_ref());
    out.secret("requirepass", node.requirepass.as_ref());
    if let Some(user) = &node.sentinel_user {
        out.string("sentinel_user", user);
    }
    out.secret("sentinel_pass", node.sentinel_pass.as_ref());
    out.millis("heartbeat_ms", node.heartbeat);
    out.millis("peer_timeout_ms", node.peer_timeout);
    out.millis("tilt_trigger_ms", node.tilt_trigger);
    out.millis("tilt_period_ms", node.tilt_period);
}

fn http(out: &mut Out, http: &HttpConfig) {
    out.line("\n[http]");
    out.secret("admin_token", http.admin_token.as_ref());
    out.secret("read_token", http.read_token.as_ref());
    out.raw("event_history", http.event_history);
}

fn tls(out: &mut Out, tls: &TlsConfig) {
    out.line("\n[tls]");
    out.string("cert_file", &tls.cert_file.to_string_lossy());
    out.string("key_file", &tls.key_file.to_string_lossy());
    if let Some(ca) = &tls.ca_file {
        out.string("ca_file", &ca.to_string_lossy());
    }
    out.string("client_auth", tls.client_auth.as_str());
    out.raw("peers", tls.peers);
}

fn user(out: &mut Out, user: &UserConfig) {
    out.line("\n[[user]]");
    out.string("name", &user.name);
    out.secret("password", Some(&user.password));
    out.string("role", user.role.as_str());
}

fn webhook(out: &mut Out, hook: &WebhookConfig) {
    out.line("\n[[webhook]]");
    out.string("url", &hook.url);
    out.strings("events", hook.events.iter().cloned());
    out.secret("secret", hook.secret.as_ref());
    out.millis("timeout_ms", hook.timeout);
    out.raw("max_retries", hook.max_retries);
}

fn master(out: &mut Out, config: &Config, master: &MasterSettings) {
    out.line("\n[[master]]");
    out.string("name", &master.name);
    out.string("address", &master.addr.to_string());
    out.raw("quorum", master.quorum);
    out.millis("down_after_ms", master.down_after);
    out.millis("down_after_refused_ms", master.down_after_refused.unwrap_or(Duration::ZERO));
    out.millis("failover_timeout_ms", master.failover_timeout);
    out.raw("parallel_syncs", master.parallel_syncs);
    // The configured source, not `master.auth`: a file password may not be resolved yet.
    if let Some(auth) = config.master_auth.get(&master.name) {
        if let Some(user) = &auth.user {
            out.string("auth_user", user);
        }
        out.secret("auth_pass", Some(&auth.password));
    }
    if let Some(tls) = config.master_tls.get(&master.name) {
        out.raw("tls", true);
        let files = [
            ("tls_ca_file", &tls.ca_file),
            ("tls_cert_file", &tls.cert_file),
            ("tls_key_file", &tls.key_file),
        ];
        for (key, file) in files {
            if let Some(file) = file {
                out.string(key, &file.to_string_lossy());
            }
        }
        if let Some(name) = &tls.server_name {
            out.string("tls_server_name", name);
        }
        if tls.insecure_skip_verify {
            out.line("# DANGER: the instances' certificates are not verified.");
            out.raw("tls_insecure_skip_verify", true);
        }
    }
    out.millis("reboot_down_after_ms", master.reboot_down_after.unwrap_or(Duration::ZERO));
    let overrides: Vec<String> = master
        .priority_overrides
        .iter()
        .map(|(addr, priority)| format!("{} = {priority}", quote(&addr.to_string())))
        .collect();
    if overrides.is_empty() {
        out.line("replica_priority = {}");
    } else {
        out.line(&format!("replica_priority = {{ {} }}", overrides.join(", ")));
    }
    out.string("fencing", master.fencing.as_str());
    if let Some(bytes) = master.max_lag_on_failover_bytes {
        out.raw("max_lag_on_failover_bytes", bytes);
    }
    out.millis("min_failover_interval_ms", master.min_failover_interval.unwrap_or(Duration::ZERO));
    out.millis("switchover_timeout_ms", master.switchover_timeout);
    if !master.sentinel_peers.is_empty() {
        let listed: Vec<String> =
            master.sentinel_peers.iter().map(|a| quote(&a.to_string())).collect();
        out.line(&format!("sentinel_peers = [{}]", listed.join(", ")));
    }
    if let Some(script) = &master.notification_script {
        out.string("notification_script", script);
    }
    if let Some(script) = &master.client_reconfig_script {
        out.string("client_reconfig_script", script);
    }
}

/// The text being built.
struct Out(String);

impl Out {
    fn line(&mut self, line: &str) {
        self.0.push_str(line);
        self.0.push('\n');
    }

    fn raw(&mut self, key: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.0, "{key} = {value}");
    }

    fn string(&mut self, key: &str, value: &str) {
        self.raw(key, quote(value));
    }

    /// An optional address: left out when not set.
    fn addr(&mut self, key: &str, value: Option<&crate::engine::Addr>) {
        if let Some(addr) = value {
            self.string(key, &addr.to_string());
        }
    }

    fn strings(&mut self, key: &str, values: impl Iterator<Item = String>) {
        let quoted: Vec<String> = values.map(|v| quote(&v)).collect();
        self.raw(key, format_args!("[{}]", quoted.join(", ")));
    }

    fn millis(&mut self, key: &str, value: Duration) {
        self.raw(key, duration_millis(value));
    }

    fn secret(&mut self, key: &str, secret: Option<&SecretSetting>) {
        match secret.map(SecretSetting::source) {
            Some(Secret::Inline(_)) => self.string(key, REDACTED),
            Some(Secret::File(path)) => {
                self.string(&format!("{key}_file"), &path.to_string_lossy())
            }
            None => {}
        }
    }
}

/// `value` as a TOML string (also valid as a quoted key), escaped by the toml crate.
fn quote(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}
