//! Tests of the whole configuration: every key, every default, every error message (whole, with
//! its position), secrets, render -> parse, and the example files in `config/`.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::config::error::Origin;
use crate::engine::{Fencing, TlsProfile};

const PATH: &str = "config/picket.toml";

/// A valid base: lines 1-7 are `[node]`, 8 is blank, 9-12 the master; appended text starts at 13.
const BASE: &str = r#"[node]
listen = "127.0.0.1:26379"
gossip = "127.0.0.1:26380"
http = "127.0.0.1:26381"
state_dir = "/var/lib/picket"
peers = ["127.0.0.2:26380", "127.0.0.3:26380"]
peer_secret = "s3cret"

[[master]]
name = "session"
address = "127.0.0.1:6379"
quorum = 2
"#;

/// Every key of the file, set (secrets inline in one place and from a file in another).
const FULL: &str = r#"# A configuration with every key set.
[node]
listen = "0.0.0.0:26379"
tls_listen = "0.0.0.0:26389"
gossip = "10.0.0.1:26380"
http = "[::1]:26381"
tls_http = "10.0.0.1:26391"
state_dir = "/var/lib/picket"
peers = ["10.0.0.1:26380", "10.0.0.2:26380", "Picket-3.example:26380"]
announce = "10.0.0.1:26380"
client_announce = "picket-1.example:26379"
peer_secret = "gossip-key"
requirepass_file = "/run/secrets/requirepass"
heartbeat_ms = 200
peer_timeout_ms = 2500
tilt_trigger_ms = 3000
tilt_period_ms = 60000

[http]
admin_token = "admin-key"
read_token_file = "/run/secrets/read-token"
event_history = 50

[[webhook]]
url = "https://hooks.example/picket"
events = ["+switch-master", "+sdown"]
secret = "hook-key"
timeout_ms = 1000
max_retries = 0

[[webhook]]
url = "http://127.0.0.1:9000/hook"
secret_file = "/run/secrets/hook"

[[master]]
name = "session"
address = "Redis-Session:6379"
quorum = 3
down_after_ms = 5000
down_after_refused_ms = 200
failover_timeout_ms = 60000
parallel_syncs = 2
auth_user = "picket"
auth_pass = "redis-key"
reboot_down_after_ms = 10000
replica_priority = { "10.0.0.5:6379" = 0, "[::1]:6380" = 10 }
notification_script = "/usr/local/bin/notify"
client_reconfig_script = "/usr/local/bin/reconfig"
fencing = "strict"
max_lag_on_failover_bytes = 1048576
min_failover_interval_ms = 600000
switchover_timeout_ms = 2000

[[master]]
name = "cache"
address = "10.0.0.9:6379"
quorum = 1
auth_pass_file = "/run/secrets/cache-pass"
tls = true
tls_ca_file = "/etc/picket/redis-ca.pem"
tls_cert_file = "/etc/picket/client.pem"
tls_key_file = "/etc/picket/client.key"
tls_server_name = "redis.example"

[tls]
cert_file = "/etc/picket/node.pem"
key_file = "/etc/picket/node.key"
ca_file = "/etc/picket/ca.pem"
client_auth = "optional"
peers = true

[[user]]
name = "app"
password = "app-key"
role = "read"

[[user]]
name = "ops"
password_file = "/run/secrets/ops"
role = "admin"
"#;

fn parse_ok(text: &str) -> Config {
    parse(text, Path::new(PATH)).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn parse_err(text: &str) -> String {
    match parse(text, Path::new(PATH)) {
        Ok(config) => panic!("expected an error, parsed {config:?}"),
        Err(e) => e.to_string(),
    }
}

fn addr(s: &str) -> Addr {
    s.parse().unwrap()
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// A secret as (source, value, line, key), for comparisons.
fn secret_view(secret: Option<&SecretSetting>) -> Option<(Secret, Option<&str>, usize, &str)> {
    secret.map(|s| (s.source().clone(), s.value(), s.origin.line, s.origin.key.as_str()))
}

fn inline(value: &str) -> Secret {
    Secret::Inline(value.to_owned())
}

fn file(path: &str) -> Secret {
    Secret::File(path.into())
}

/// `config` with every secret replaced by what `render_effective` writes for it, and without the
/// positions of the keys (which move when the file is rewritten).
fn without_secrets(mut config: Config) -> Config {
    let mut redact = |secret: &mut SecretSetting| {
        if let Secret::Inline(_) = secret.source {
            secret.source = inline(REDACTED);
        }
        secret.value = None;
        secret.origin = Origin::default();
    };
    let node = [
        config.node.peer_secret.as_mut(),
        config.node.requirepass.as_mut(),
        config.node.sentinel_pass.as_mut(),
    ];
    let http = [config.http.admin_token.as_mut(), config.http.read_token.as_mut()];
    let hooks = config.webhooks.iter_mut().map(|hook| hook.secret.as_mut());
    let users = config.users.iter_mut().map(|user| Some(&mut user.password));
    let masters = config.master_auth.values_mut().map(|auth| Some(&mut auth.password));
    let secrets = node.into_iter().chain(http).chain(hooks).chain(users).chain(masters);
    secrets.flatten().for_each(&mut redact);
    for master in &mut config.masters {
        master.auth = None;
    }
    config
}

/// Renders `config`, parses the output, and checks it is the same configuration, secrets aside,
/// and that rendering again gives the same text.
fn assert_render_fixpoint(config: &Config) {
    let text = config.render_effective();
    let again = parse(&text, &config.path).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(without_secrets(again.clone()), without_secrets(config.clone()), "\n{text}");
    assert_eq!(again.render_effective(), text);
}

#[test]
fn every_key_is_parsed() {
    let config = parse_ok(FULL);
    assert_eq!(config.path, Path::new(PATH));
    let node = &config.node;
    assert_eq!(node.listen, Some(addr("0.0.0.0:26379")));
    assert_eq!(node.tls_listen, Some(addr("0.0.0.0:26389")));
    assert_eq!(node.gossip, addr("10.0.0.1:26380"));
    assert_eq!(node.http, Some(addr("[::1]:26381")));
    assert_eq!(node.tls_http, Some(addr("10.0.0.1:26391")));
    assert_eq!(node.state_dir, Path::new("/var/lib/picket"));
    assert_eq!(node.peers, vec![addr("10.0.0.2:26380"), addr("picket-3.example:26380")]);
    assert_eq!(node.announce, addr("10.0.0.1:26380"));
    assert_eq!(node.client_announce, addr("picket-1.example:26379"));
    assert_eq!(
        secret_view(node.peer_secret.as_ref()),
        Some((inline("gossip-key"), Some("gossip-key"), 12, "node: peer_secret"))
    );
    assert_eq!(
        secret_view(node.requirepass.as_ref()),
        Some((file("/run/secrets/requirepass"), None, 13, "node: requirepass_file"))
    );
    assert_eq!(
        (node.heartbeat, node.peer_timeout, node.tilt_trigger, node.tilt_period),
        (ms(200), ms(2500), ms(3000), ms(60_000))
    );

    let http = &config.http;
    assert_eq!(
        secret_view(http.admin_token.as_ref()),
        Some((inline("admin-key"), Some("admin-key"), 20, "http: admin_token"))
    );
    assert_eq!(
        secret_view(http.read_token.as_ref()),
        Some((file("/run/secrets/read-token"), None, 21, "http: read_token_file"))
    );
    assert_eq!(http.event_history, 50);

    let [hook1, hook2] = config.webhooks.as_slice() else { panic!("two webhooks") };
    assert_eq!(hook1.url, "https://hooks.example/picket");
    assert_eq!(hook1.events, ["+switch-master", "+sdown"]);
    assert_eq!(
        secret_view(hook1.secret.as_ref()),
        Some((inline("hook-key"), Some("hook-key"), 27, "webhook #1: secret"))
    );
    assert_eq!((hook1.timeout, hook1.max_retries), (ms(1000), 0));
    assert_eq!(hook2.url, "http://127.0.0.1:9000/hook");
    assert_eq!(hook2.events, DEFAULT_WEBHOOK_EVENTS);
    assert_eq!(
        secret_view(hook2.secret.as_ref()),
        Some((file("/run/secrets/hook"), None, 33, "webhook #2: secret_file"))
    );
    assert_eq!((hook2.timeout, hook2.max_retries), (ms(5000), 5));

    let [session, cache] = config.masters.as_slice() else { panic!("two masters") };
    assert_eq!(
        *session,
        MasterSettings {
            name: "session".to_owned(),
            addr: addr("redis-session:6379"),
            quorum: 3,
            down_after: ms(5000),
            down_after_refused: Some(ms(200)),
            failover_timeout: ms(60_000),
            parallel_syncs: 2,
            auth: Some(Credentials {
                user: Some("picket".to_owned()),
                password: "redis-key".to_owned()
            }),
            tls: None,
            reboot_down_after: Some(ms(10_000)),
            priority_overrides: BTreeMap::from([
                (addr("10.0.0.5:6379"), 0),
                (addr("[::1]:6380"), 10)
            ]),
            notification_script: Some("/usr/local/bin/notify".to_owned()),
            client_reconfig_script: Some("/usr/local/bin/reconfig".to_owned()),
            fencing: Fencing::Strict,
            max_lag_on_failover_bytes: Some(1_048_576),
            min_failover_interval: Some(ms(600_000)),
            switchover_timeout: ms(2000),
            sentinel_peers: Vec::new(),
        }
    );
    let mut expected_cache = MasterSettings::new("cache", addr("10.0.0.9:6379"), 1);
    expected_cache.tls = Some(TlsProfile("cache".to_owned()));
    assert_eq!(*cache, expected_cache, "password unresolved");
    let session_auth = &config.master_auth["session"];
    assert_eq!(session_auth.user.as_deref(), Some("picket"));
    assert_eq!(
        secret_view(Some(&session_auth.password)),
        Some((inline("redis-key"), Some("redis-key"), 44, "master \"session\": auth_pass"))
    );
    let cache_auth = &config.master_auth["cache"];
    assert_eq!(cache_auth.user, None);
    assert_eq!(
        secret_view(Some(&cache_auth.password)),
        Some((file("/run/secrets/cache-pass"), None, 58, "master \"cache\": auth_pass_file"))
    );
    assert_eq!(
        config.master_tls,
        BTreeMap::from([(
            "cache".to_owned(),
            MasterTls {
                ca_file: Some("/etc/picket/redis-ca.pem".into()),
                cert_file: Some("/etc/picket/client.pem".into()),
                key_file: Some("/etc/picket/client.key".into()),
                server_name: Some("redis.example".to_owned()),
                insecure_skip_verify: false,
            }
        )])
    );
    assert_eq!(
        config.tls,
        Some(TlsConfig {
            cert_file: "/etc/picket/node.pem".into(),
            key_file: "/etc/picket/node.key".into(),
            ca_file: Some("/etc/picket/ca.pem".into()),
            client_auth: ClientAuth::Optional,
            peers: true,
        })
    );
    let [app, ops] = config.users.as_slice() else { panic!("two users") };
    assert_eq!((app.name.as_str(), app.role), ("app", UserRole::Read));
    assert_eq!(
        secret_view(Some(&app.password)),
        Some((inline("app-key"), Some("app-key"), 74, "user \"app\": password"))
    );
    assert_eq!((ops.name.as_str(), ops.role), ("ops", UserRole::Admin));
    assert_eq!(
        secret_view(Some(&ops.password)),
        Some((file("/run/secrets/ops"), None, 79, "user \"ops\": password_file"))
    );
}

#[test]
fn defaults() {
    let config = parse_ok(
        r#"
        [node]
        listen = "127.0.0.1:26379"
        gossip = "127.0.0.1:26380"
        http = "127.0.0.1:26381"
        state_dir = "state"

        [[master]]
        name = "m"
        address = "127.0.0.1:6379"
        quorum = 1
        "#,
    );
    let node = &config.node;
    assert!(node.peers.is_empty());
    assert_eq!(node.announce, node.gossip, "announce defaults to gossip");
    assert_eq!(
        Some(&node.client_announce),
        node.listen.as_ref(),
        "client_announce defaults to listen"
    );
    assert_eq!((config.tls.as_ref(), config.users.as_slice()), (None, &[][..]));
    assert!(config.master_tls.is_empty());
    assert_eq!((node.peer_secret.as_ref(), node.requirepass.as_ref()), (None, None));
    assert_eq!(
        (node.heartbeat, node.peer_timeout, node.tilt_trigger, node.tilt_period),
        (ms(100), ms(1500), ms(2000), ms(30_000))
    );
    assert_eq!(
        config.http,
        HttpConfig { admin_token: None, read_token: None, event_history: 1000 }
    );
    assert!(config.webhooks.is_empty());
    assert_eq!(config.masters, vec![MasterSettings::new("m", addr("127.0.0.1:6379"), 1)]);
    let master = &config.masters[0];
    assert_eq!((master.down_after, master.failover_timeout), (ms(30_000), ms(180_000)));
    assert_eq!((master.parallel_syncs, master.reboot_down_after), (1, None));
    assert_eq!(master.down_after_refused, Some(ms(300)), "the crash rule is on by default");
    assert!(config.master_auth.is_empty());
    assert_eq!(
        config.engine_settings().node,
        NodeSettings::new(node.gossip.clone(), node.client_announce.clone(), vec![])
    );
}

#[test]
fn this_node_is_dropped_from_peers_and_wildcards_take_the_announce_host() {
    let config = parse_ok(&BASE.replace(
        "listen = \"127.0.0.1:26379\"\ngossip = \"127.0.0.1:26380\"\nhttp = \"127.0.0.1:26381\"",
        "listen = \"[::]:26379\"\ngossip = \"0.0.0.0:26380\"\nhttp = \"0.0.0.0:26381\"\n\
         announce = \"Picket-2.Picket:26380\"",
    )
    .replace("\"127.0.0.2:26380\"", "\"picket-2.picket:26380\""));
    assert_eq!(config.node.announce, addr("picket-2.picket:26380"));
    assert_eq!(config.node.peers, vec![addr("127.0.0.3:26380")]);
    assert_eq!(config.node.client_announce, addr("picket-2.picket:26379"));
    // Two voters left: quorum 2 is still allowed, 3 would not be.
    assert_eq!(config.masters[0].quorum, 2);
}

#[test]
fn engine_settings_carry_node_and_masters() {
    let mut config = parse_ok(FULL);
    config.resolve_secrets(|_| Ok("x".to_owned())).unwrap();
    let settings = config.engine_settings();
    assert_eq!(
        settings.node,
        NodeSettings {
            announce: addr("10.0.0.1:26380"),
            client_addr: addr("picket-1.example:26379"),
            peers: vec![addr("10.0.0.2:26380"), addr("picket-3.example:26380")],
            heartbeat: ms(200),
            peer_timeout: ms(2500),
            tilt_trigger: ms(3000),
            tilt_period: ms(60_000),
        }
    );
    assert_eq!(settings.node.voters(), 3);
    assert_eq!(settings.masters, config.masters);
}

/// Each broken file and its whole error message.
#[test]
fn sentinel_peers_are_voters_and_render_back() {
    let text = BASE.replace(
        "quorum = 2",
        "quorum = 4\nsentinel_peers = [\"10.0.0.21:26379\", \"Sentinel-B:26379\"]",
    );
    let config = parse_ok(&text);
    let master = &config.masters[0];
    assert_eq!(master.sentinel_peers, vec![addr("10.0.0.21:26379"), addr("sentinel-b:26379")]);
    assert_eq!(master.quorum, 4, "3 nodes and 2 Sentinels: 5 voters");
    assert_render_fixpoint(&config);
    assert!(config.render_effective().contains("sentinel_peers = [\"10.0.0.21:26379\""));

    let text = BASE.replace(
        "peer_secret = \"s3cret\"",
        "peer_secret = \"s3cret\"\nsentinel_user = \"picket\"\nsentinel_pass = \"hunter2\"",
    );
    let config = parse_ok(&text);
    let credentials = config.sentinel_credentials().unwrap();
    assert_eq!(
        (credentials.user.as_deref(), credentials.password.as_str()),
        (Some("picket"), "hunter2")
    );
    assert!(!config.render_effective().contains("hunter2"));
    assert_render_fixpoint(&config);
}

#[test]
fn errors_name_file_line_and_key() {
    let cases: Vec<(String, &str)> = vec![
        // Unknown keys, at every level.
        (
            format!("{BASE}[nodes]\nx = 1\n"),
            "config/picket.toml:13:1: nodes: unknown key, expected one of `node`, `http`, `tls`, \
             `user`, `webhook`, `master`",
        ),
        (
            BASE.replace("peer_secret = \"s3cret\"\n", "peer_secret = \"s3cret\"\nport = 1\n"),
            "config/picket.toml:8:1: node: port: unknown key, expected one of `listen`, \
             `tls_listen`, `gossip`, `http`, `tls_http`, `state_dir`, `peers`, `announce`, `client_announce`, `peer_secret`, \
             `peer_secret_file`, `requirepass`, `requirepass_file`, `heartbeat_ms`, \
             `peer_timeout_ms`, `tilt_trigger_ms`, `tilt_period_ms`, `sentinel_user`, \
             `sentinel_pass`, `sentinel_pass_file`",
        ),
        (
            format!("{BASE}quorom = 1\n"),
            "config/picket.toml:13:1: master \"session\": quorom: unknown key, expected one of \
             `name`, `address`, `quorum`, `down_after_ms`, `down_after_refused_ms`, \
             `failover_timeout_ms`, `parallel_syncs`, `auth_user`, `auth_pass`, `auth_pass_file`, `tls`, `tls_ca_file`, \
             `tls_cert_file`, `tls_key_file`, `tls_server_name`, `tls_insecure_skip_verify`, \
             `reboot_down_after_ms`, `replica_priority`, `notification_script`, \
             `client_reconfig_script`, `fencing`, `max_lag_on_failover_bytes`, \
             `min_failover_interval_ms`, `switchover_timeout_ms`, `sentinel_peers`",
        ),
        (
            format!("{BASE}[http]\nadmin = \"x\"\n"),
            "config/picket.toml:14:1: http: admin: unknown key, expected one of `admin_token`, \
             `admin_token_file`, `read_token`, `read_token_file`, `event_history`",
        ),
        // Wrong types and bad values.
        (
            BASE.replace("quorum = 2", "quorum = \"two\""),
            "config/picket.toml:12:1: master \"session\": quorum: invalid type: string \"two\", \
             expected an integer from 0 to 4294967295",
        ),
        (
            format!("{BASE}down_after_ms = -5\n"),
            "config/picket.toml:13:1: master \"session\": down_after_ms: invalid value: integer \
             `-5`, expected a non-negative integer",
        ),
        (
            BASE.replace("peer_secret = \"s3cret\"", "peer_secret = 123456"),
            "config/picket.toml:7:1: node: peer_secret: must be a string",
        ),
        (
            BASE.replace("[[master]]", "[master]"),
            "config/picket.toml:9:1: master: write [[master]] (one per entry), not [master]",
        ),
        (
            BASE.replace("127.0.0.1:6379", "localhost"),
            "config/picket.toml:11:1: master \"session\": address: expected host:port, found \
             \"localhost\"",
        ),
        (
            BASE.replace("127.0.0.1:26381", "127.0.0.1:http"),
            "config/picket.toml:4:1: node: http: invalid port \"http\" (expected 1-65535)",
        ),
        (
            BASE.replace("\"127.0.0.3:26380\"", "\"127.0.0.3:0\""),
            "config/picket.toml:6:29: node: peers[1]: invalid port \"0\" (expected 1-65535)",
        ),
        (
            format!("{BASE}replica_priority = {{ \"10.0.0.5:6379\" = 0, \"10.0.0.6\" = 1 }}\n"),
            "config/picket.toml:13:43: master \"session\": replica_priority.\"10.0.0.6\": \
             expected host:port, found \"10.0.0.6\"",
        ),
        // Sentinel-compatible peering.
        (
            format!("{BASE}sentinel_peers = []\n"),
            "config/picket.toml:13:1: master \"session\": sentinel_peers: must list at least one \
             Sentinel (leave the key out to turn the mode off)",
        ),
        (
            format!("{BASE}sentinel_peers = [\"10.0.0.1:26379\", \"10.0.0.1:26379\"]\n"),
            "config/picket.toml:13:37: master \"session\": sentinel_peers[1]: 10.0.0.1:26379 is \
             already listed as sentinel_peers[0]",
        ),
        (
            format!("{BASE}sentinel_peers = [\"0.0.0.0:26379\"]\n"),
            "config/picket.toml:13:19: master \"session\": sentinel_peers[0]: 0.0.0.0:26379 is a \
             wildcard address, not a Sentinel's",
        ),
        (
            format!("{BASE}sentinel_peers = [\"10.0.0.1\"]\n"),
            "config/picket.toml:13:19: master \"session\": sentinel_peers[0]: expected host:port, \
             found \"10.0.0.1\"",
        ),
        (
            BASE.replace(
                "peer_secret = \"s3cret\"",
                "peer_secret = \"s3cret\"\nsentinel_user = \"picket\"",
            ),
            "config/picket.toml:8:1: node: sentinel_user: requires sentinel_pass or \
             sentinel_pass_file",
        ),
        (
            BASE.replace("quorum = 2", "quorum = 5\nsentinel_peers = [\"10.0.0.1:26379\"]"),
            "config/picket.toml:12:1: master \"session\": quorum: must be at most the number of \
             voters, 4 (this node, 2 peers and 1 listed Sentinel)",
        ),
        // Missing keys and sections.
        (
            BASE.replace("state_dir = \"/var/lib/picket\"\n", ""),
            "config/picket.toml:1:1: node: state_dir: required key is missing",
        ),
        (
            BASE.replace("name = \"session\"\n", ""),
            "config/picket.toml:9:1: master #1: name: required key is missing",
        ),
        (
            BASE.split_once("\n\n").unwrap().1.to_owned(),
            "config/picket.toml:1:1: node: required section is missing",
        ),
        (
            BASE.split("\n\n").next().unwrap().to_owned(),
            "config/picket.toml:1:1: master: at least one [[master]] section is required",
        ),
        // Masters.
        (
            BASE.replace("quorum = 2", "quorum = 0"),
            "config/picket.toml:12:1: master \"session\": quorum: must be at least 1",
        ),
        (
            BASE.replace("quorum = 2", "quorum = 4"),
            "config/picket.toml:12:1: master \"session\": quorum: must be at most the number of \
             voters, 3 (this node and 2 peers)",
        ),
        (
            BASE.replace("peers = [\"127.0.0.2:26380\", ", "peers = [")
                .replace("quorum = 2", "quorum = 3"),
            "config/picket.toml:12:1: master \"session\": quorum: must be at most the number of \
             voters, 2 (this node and 1 peer)",
        ),
        (
            format!(
                "{BASE}\n[[master]]\nname = \"session\"\naddress = \"127.0.0.1:6380\"\nquorum = 1\n"
            ),
            "config/picket.toml:15:1: master \"session\": name: duplicate master name (first \
             defined on line 10)",
        ),
        (
            format!(
                "{BASE}\n[[master]]\nname = \"cache\"\naddress = \"127.0.0.1:6379\"\nquorum = 1\n"
            ),
            "config/picket.toml:16:1: master \"cache\": address: 127.0.0.1:6379 is already the \
             address of master \"session\"",
        ),
        (
            BASE.replace("name = \"session\"", "name = \"\""),
            "config/picket.toml:10:1: master #1: name: must not be empty",
        ),
        (
            BASE.replace("name = \"session\"", "name = \"my session\""),
            "config/picket.toml:10:1: master \"my session\": name: must not contain spaces or \
             control characters",
        ),
        (
            format!("{BASE}down_after_ms = 0\n"),
            "config/picket.toml:13:1: master \"session\": down_after_ms: must be at least 1",
        ),
        (
            format!("{BASE}down_after_ms = 1000\ndown_after_refused_ms = 1000\n"),
            "config/picket.toml:14:1: master \"session\": down_after_refused_ms: must be less \
             than down_after_ms (1000), or 0 to turn the crash rule off",
        ),
        (
            format!("{BASE}failover_timeout_ms = 0\n"),
            "config/picket.toml:13:1: master \"session\": failover_timeout_ms: must be at least 1",
        ),
        (
            format!("{BASE}fencing = \"maybe\"\n"),
            "config/picket.toml:13:1: master \"session\": fencing: \"maybe\" is not one of \
             \"off\", \"bounded\", \"strict\"",
        ),
        (
            format!("{BASE}failover_timeout_ms = 4000\nswitchover_timeout_ms = 4000\n"),
            "config/picket.toml:14:1: master \"session\": switchover_timeout_ms: must be less \
             than failover_timeout_ms (4000): a switchover pauses the master's writes for at most \
             that long",
        ),
        (
            format!("{BASE}switchover_timeout_ms = 0\n"),
            "config/picket.toml:13:1: master \"session\": switchover_timeout_ms: must be at least 1",
        ),
        (
            format!("{BASE}parallel_syncs = 0\n"),
            "config/picket.toml:13:1: master \"session\": parallel_syncs: must be at least 1",
        ),
        (
            format!("{BASE}auth_pass = \"a\"\nauth_pass_file = \"/run/p\"\n"),
            "config/picket.toml:14:1: master \"session\": auth_pass_file: set either auth_pass or \
             auth_pass_file, not both",
        ),
        (
            format!("{BASE}auth_user = \"picket\"\n"),
            "config/picket.toml:13:1: master \"session\": auth_user: requires auth_pass or \
             auth_pass_file",
        ),
        (
            format!("{BASE}replica_priority = {{ \"Redis-1:6379\" = 0, \"redis-1:6379\" = 1 }}\n"),
            "config/picket.toml:13:42: master \"session\": replica_priority.\"redis-1:6379\": same \
             replica as \"Redis-1:6379\"",
        ),
        // Node.
        (
            BASE.replace("\"127.0.0.3:26380\"]", "\"127.0.0.3:26380\", \"127.0.0.2:26380\"]"),
            "config/picket.toml:6:48: node: peers[2]: 127.0.0.2:26380 is already listed as peers[0]",
        ),
        (
            BASE.replace(
                "peer_secret = \"s3cret\"",
                "peer_secret = \"s3cret\"\npeer_secret_file = \"/run/s\"",
            ),
            "config/picket.toml:8:1: node: peer_secret_file: set either peer_secret or \
             peer_secret_file, not both",
        ),
        (
            BASE.replace("peer_secret = \"s3cret\"\n", ""),
            "config/picket.toml:6:1: node: peers: peers are configured, so peer_secret or \
             peer_secret_file is required",
        ),
        (
            BASE.replace("peer_secret = \"s3cret\"", "peer_secret = \"\""),
            "config/picket.toml:7:1: node: peer_secret: must not be empty",
        ),
        (
            BASE.replace("127.0.0.1:26380\"\n", "127.0.0.1:26379\"\n"),
            "config/picket.toml:3:1: node: gossip: must differ from listen (127.0.0.1:26379)",
        ),
        (
            BASE.replace("127.0.0.1:26381", "127.0.0.1:26380"),
            "config/picket.toml:4:1: node: http: must differ from gossip (127.0.0.1:26380)",
        ),
        (
            BASE.replace("127.0.0.1:26381", "0.0.0.0:26379"),
            "config/picket.toml:4:1: node: http: must differ from listen (127.0.0.1:26379)",
        ),
        (
            BASE.replace("gossip = \"127.0.0.1:26380\"", "gossip = \"0.0.0.0:26380\""),
            "config/picket.toml:3:1: node: gossip: binds a wildcard address, so announce is \
             required (the address peers list for this node)",
        ),
        (
            BASE.replace(
                "peer_secret = \"s3cret\"",
                "peer_secret = \"s3cret\"\nannounce = \"[::]:26380\"",
            ),
            "config/picket.toml:8:1: node: announce: [::]:26380 is a wildcard address; give one \
             others can reach",
        ),
        (
            BASE.replace("peer_secret = \"s3cret\"", "peer_secret = \"s3cret\"\nheartbeat_ms = 0"),
            "config/picket.toml:8:1: node: heartbeat_ms: must be at least 1",
        ),
        (
            BASE.replace(
                "peer_secret = \"s3cret\"",
                "peer_secret = \"s3cret\"\npeer_timeout_ms = 100",
            ),
            "config/picket.toml:8:1: node: peer_timeout_ms: must be greater than heartbeat_ms (100)",
        ),
        (
            BASE.replace(
                "peer_secret = \"s3cret\"",
                "peer_secret = \"s3cret\"\nheartbeat_ms = 1500",
            ),
            "config/picket.toml:8:1: node: heartbeat_ms: must be less than peer_timeout_ms (1500)",
        ),
        (
            BASE.replace("state_dir = \"/var/lib/picket\"", "state_dir = \"\""),
            "config/picket.toml:5:1: node: state_dir: must not be empty",
        ),
        // HTTP and webhooks.
        (
            format!("{BASE}[http]\nevent_history = 0\n"),
            "config/picket.toml:14:1: http: event_history: must be at least 1",
        ),
        (
            format!("{BASE}[[webhook]]\nurl = \"ftp://hooks.example/x\"\n"),
            "config/picket.toml:14:1: webhook #1: url: must start with http:// or https://",
        ),
        (
            format!(
                "{BASE}[[webhook]]\nurl = \"https://a.example\"\n[[webhook]]\nurl = \"https:///x\"\n"
            ),
            "config/picket.toml:16:1: webhook #2: url: \"https:///x\" is not a usable URL",
        ),
        (
            format!("{BASE}[[webhook]]\nurl = \"https://a.example\"\nevents = []\n"),
            "config/picket.toml:15:1: webhook #1: events: must list at least one event pattern",
        ),
        (
            format!(
                "{BASE}[[webhook]]\nurl = \"https://a.example\"\nevents = [\"+odown\", \"\"]\n"
            ),
            "config/picket.toml:15:21: webhook #1: events[1]: an event pattern must be non-empty, \
             without spaces",
        ),
        (
            format!("{BASE}[[webhook]]\nurl = \"https://a.example\"\ntimeout_ms = 0\n"),
            "config/picket.toml:15:1: webhook #1: timeout_ms: must be at least 1",
        ),
        (
            format!(
                "{BASE}[[webhook]]\nurl = \"https://a.example\"\nsecret = \"a\"\nsecret_file = \"/b\"\n"
            ),
            "config/picket.toml:16:1: webhook #1: secret_file: set either secret or secret_file, \
             not both",
        ),
        // TOML syntax.
        (
            BASE.replace("quorum = 2", "quorum = "),
            "config/picket.toml:12:10: master \"session\": quorum: invalid TOML: string values must \
             be quoted, expected literal string",
        ),
        (
            BASE.replace("[node]", "[node"),
            "config/picket.toml:1:6: invalid TOML: unclosed table, expected `]`",
        ),
        (
            BASE.replace(
                "peer_secret = \"s3cret\"",
                "peer_secret = \"s3cret\"\nlisten = \"127.0.0.1:1\"",
            ),
            "config/picket.toml:8:1: node: listen: invalid TOML: duplicate key",
        ),
        (
            format!("{BASE}name = \"unterminated\n"),
            "config/picket.toml:13:21: master \"session\": name: invalid TOML: invalid basic \
             string, expected `\"`",
        ),
    ];
    let mut failures = Vec::new();
    for (text, expected) in &cases {
        let actual = parse_err(text);
        if actual != *expected {
            failures.push(format!("expected: {expected}\n  actual: {actual}\n"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn crlf_files_report_the_same_positions() {
    let text = BASE.replace("quorum = 2", "quorum = 0").replace('\n', "\r\n");
    assert_eq!(
        parse_err(&text),
        "config/picket.toml:12:1: master \"session\": quorum: must be at least 1"
    );
    assert_eq!(parse_ok(&BASE.replace('\n', "\r\n")), parse_ok(BASE));
}

#[test]
fn errors_carry_the_path_as_given() {
    let err = parse("", Path::new("/etc/picket/picket.toml")).unwrap_err();
    assert_eq!(
        err,
        ConfigError {
            path: "/etc/picket/picket.toml".into(),
            line: 1,
            column: 1,
            key: "node".to_owned(),
            message: "required section is missing".to_owned(),
        }
    );
}

#[test]
fn resolve_secrets_reads_files_once_parsed() {
    let mut config = parse_ok(FULL);
    let files = BTreeMap::from([
        ("/run/secrets/requirepass", "client-pass\n"),
        ("/run/secrets/read-token", "reader\r\n"),
        ("/run/secrets/hook", "hook-file-key"),
        ("/run/secrets/cache-pass", "cache-pass\n"),
        ("/run/secrets/ops", "ops-pass\n"),
    ]);
    let mut reads = Vec::new();
    config
        .resolve_secrets(|path| {
            reads.push(path.to_owned());
            let key = path.to_str().unwrap_or_default();
            files.get(key).map(|s| (*s).to_owned()).ok_or_else(|| io::ErrorKind::NotFound.into())
        })
        .unwrap();
    assert_eq!(reads.len(), 5, "inline secrets are not read: {reads:?}");
    assert_eq!(config.users[1].password.value(), Some("ops-pass"));
    assert_eq!(
        config.node.requirepass.as_ref().and_then(SecretSetting::value),
        Some("client-pass")
    );
    assert_eq!(config.http.read_token.as_ref().and_then(SecretSetting::value), Some("reader"));
    assert_eq!(
        config.webhooks[1].secret.as_ref().and_then(SecretSetting::value),
        Some("hook-file-key")
    );
    assert_eq!(
        config.masters[1].auth,
        Some(Credentials { user: None, password: "cache-pass".to_owned() })
    );
    assert_eq!(config.engine_settings().masters[1].auth, config.masters[1].auth);
    // Untouched: the inline ones.
    assert_eq!(config.node.peer_secret.as_ref().and_then(SecretSetting::value), Some("gossip-key"));
    assert_eq!(config.masters[0].auth.as_ref().map(|a| a.password.as_str()), Some("redis-key"));
}

#[test]
fn unreadable_secret_files_are_reported_at_their_key() {
    let mut config = parse_ok(FULL);
    let err = config
        .resolve_secrets(|path| {
            if path == Path::new("/run/secrets/hook") {
                Err(io::Error::new(io::ErrorKind::PermissionDenied, "permission denied"))
            } else {
                Ok("x".to_owned())
            }
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "config/picket.toml:33:1: webhook #2: secret_file: cannot read /run/secrets/hook: \
         permission denied"
    );
    let mut config = parse_ok(FULL);
    let err = config
        .resolve_secrets(
            |path| Ok(if path.ends_with("cache-pass") { "\n" } else { "x" }.to_owned()),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "config/picket.toml:58:1: master \"cache\": auth_pass_file: /run/secrets/cache-pass is empty"
    );
}

/// The `[tls]`, `[[user]]` and masters' `tls_*` rules, each failure at its key.
#[test]
fn tls_and_user_errors_name_their_key() {
    let node_tls = "[tls]\ncert_file = \"/n.pem\"\nkey_file = \"/n.key\"\n";
    let with_tls_listen = BASE.replace(
        "peer_secret = \"s3cret\"",
        "peer_secret = \"s3cret\"\ntls_listen = \"127.0.0.1:26389\"",
    );
    let cases: Vec<(String, &str)> = vec![
        (
            with_tls_listen.clone(),
            "config/picket.toml:8:1: node: tls_listen: needs the [tls] section (cert_file and \
             key_file)",
        ),
        (
            BASE.replace("listen = \"127.0.0.1:26379\"\n", ""),
            "config/picket.toml:1:1: node: listen: set listen, tls_listen or both",
        ),
        (
            BASE.replace("http = \"127.0.0.1:26381\"", "tls_http = \"127.0.0.1:26379\""),
            "config/picket.toml:4:1: node: tls_http: must differ from listen (127.0.0.1:26379)",
        ),
        (
            format!("{with_tls_listen}[tls]\ncert_file = \"/n.pem\"\n"),
            "config/picket.toml:14:1: tls: cert_file and key_file are required (this node's \
             certificate)",
        ),
        (
            format!("{with_tls_listen}{node_tls}client_auth = \"yes\"\n"),
            "config/picket.toml:17:1: tls: client_auth: \"yes\" is not one of \"none\", \
             \"optional\", \"required\"",
        ),
        (
            format!("{with_tls_listen}{node_tls}client_auth = \"required\"\n"),
            "config/picket.toml:17:1: tls: client_auth: client certificates are checked against \
             ca_file, which is not set",
        ),
        (
            format!("{BASE}{node_tls}peers = true\n"),
            "config/picket.toml:16:1: tls: peers: peers' certificates are checked against \
             ca_file, which is not set",
        ),
        (
            format!("{BASE}{node_tls}"),
            "config/picket.toml:13:1: tls: secures nothing: set node.tls_listen, node.tls_http \
             or tls.peers",
        ),
        (
            format!("{BASE}[[user]]\nname = \"default\"\npassword = \"p\"\nrole = \"read\"\n"),
            "config/picket.toml:14:1: user \"default\": name: the default user's password is \
             node.requirepass",
        ),
        (
            format!(
                "{BASE}[[user]]\nname = \"app\"\npassword = \"p\"\nrole = \"read\"\n\
                 [[user]]\nname = \"app\"\npassword = \"q\"\nrole = \"admin\"\n"
            ),
            "config/picket.toml:18:1: user \"app\": name: duplicate user name (first defined on \
             line 14)",
        ),
        (
            format!("{BASE}[[user]]\nname = \"app\"\npassword = \"p\"\nrole = \"root\"\n"),
            "config/picket.toml:16:1: user \"app\": role: \"root\" is not one of \"read\", \"admin\"",
        ),
        (
            format!("{BASE}[[user]]\nname = \"app\"\nrole = \"read\"\n"),
            "config/picket.toml:13:1: user \"app\": password: password or password_file is \
             required",
        ),
        (
            format!("{BASE}[[user]]\nname = \"app\"\npassword = 7\nrole = \"read\"\n"),
            "config/picket.toml:15:1: user \"app\": password: must be a string",
        ),
        (
            format!("{BASE}tls_ca_file = \"/ca.pem\"\n"),
            "config/picket.toml:13:1: master \"session\": tls_ca_file: only applies with tls = \
             true",
        ),
        (
            format!("{BASE}tls = true\ntls_cert_file = \"/c.pem\"\n"),
            "config/picket.toml:14:1: master \"session\": tls_cert_file: needs tls_key_file (its \
             key)",
        ),
        (
            format!("{BASE}tls = true\ntls_server_name = \"not a name\"\n"),
            "config/picket.toml:14:1: master \"session\": tls_server_name: \"not a name\" is \
             neither a host name nor an IP address",
        ),
        (
            format!(
                "{BASE}tls = true\ntls_ca_file = \"/ca.pem\"\ntls_insecure_skip_verify = true\n"
            ),
            "config/picket.toml:15:1: master \"session\": tls_insecure_skip_verify: verifies \
             nothing, so tls_ca_file and tls_server_name would be ignored: remove them or this key",
        ),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(text, expected)| {
            let actual = parse_err(text);
            (actual != *expected).then(|| format!("expected: {expected}\n  actual: {actual}\n"))
        })
        .collect();
    assert!(failures.is_empty(), "{} cases differ:\n{}", failures.len(), failures.join("\n"));
    // The loud option parses, and `picket check` says what it means.
    let insecure = parse_ok(&format!("{BASE}tls = true\ntls_insecure_skip_verify = true\n"));
    assert!(insecure.master_tls["session"].insecure_skip_verify);
    let rendered = insecure.render_effective();
    assert!(rendered.contains("# DANGER: the instances' certificates are not verified.\ntls_insecure_skip_verify = true"), "{rendered}");
    assert_render_fixpoint(&insecure);
    // A TLS-only node: clients are told the TLS port.
    let tls_only = parse_ok(&format!(
        "{}{node_tls}",
        with_tls_listen.replace("listen = \"127.0.0.1:26379\"\n", "")
    ));
    assert_eq!(tls_only.node.listen, None);
    assert_eq!(tls_only.node.client_announce, addr("127.0.0.1:26389"));
    assert_render_fixpoint(&tls_only);
}

#[test]
fn secrets_are_never_printed() {
    let mut config = parse_ok(FULL);
    config.resolve_secrets(|_| Ok("file-secret".to_owned())).unwrap();
    let debug = format!("{config:?}");
    let rendered = config.render_effective();
    for secret in ["gossip-key", "admin-key", "hook-key", "redis-key", "app-key", "file-secret"] {
        assert!(!debug.contains(secret), "{secret} in Debug: {debug}");
        assert!(!rendered.contains(secret), "{secret} in render: {rendered}");
    }
    assert!(debug.contains("<redacted>"));
    let err = parse_err(&BASE.replace("peer_secret = \"s3cret\"", "peer_secret = [\"s3cret\"]"));
    assert!(!err.contains("s3cret"), "{err}");
}

#[test]
fn render_is_complete_and_parses_back() {
    let config = parse_ok(FULL);
    let text = config.render_effective();
    assert_eq!(
        text,
        r#"# Effective configuration from config/picket.toml: defaults filled in, secrets redacted.

[node]
listen = "0.0.0.0:26379"
tls_listen = "0.0.0.0:26389"
gossip = "10.0.0.1:26380"
http = "[::1]:26381"
tls_http = "10.0.0.1:26391"
state_dir = "/var/lib/picket"
peers = ["10.0.0.2:26380", "picket-3.example:26380"]
announce = "10.0.0.1:26380"
client_announce = "picket-1.example:26379"
peer_secret = "<redacted>"
requirepass_file = "/run/secrets/requirepass"
heartbeat_ms = 200
peer_timeout_ms = 2500
tilt_trigger_ms = 3000
tilt_period_ms = 60000

[http]
admin_token = "<redacted>"
read_token_file = "/run/secrets/read-token"
event_history = 50

[tls]
cert_file = "/etc/picket/node.pem"
key_file = "/etc/picket/node.key"
ca_file = "/etc/picket/ca.pem"
client_auth = "optional"
peers = true

[[user]]
name = "app"
password = "<redacted>"
role = "read"

[[user]]
name = "ops"
password_file = "/run/secrets/ops"
role = "admin"

[[webhook]]
url = "https://hooks.example/picket"
events = ["+switch-master", "+sdown"]
secret = "<redacted>"
timeout_ms = 1000
max_retries = 0

[[webhook]]
url = "http://127.0.0.1:9000/hook"
events = ["+switch-master", "+odown", "-failover-abort-*", "+tilt"]
secret_file = "/run/secrets/hook"
timeout_ms = 5000
max_retries = 5

[[master]]
name = "session"
address = "redis-session:6379"
quorum = 3
down_after_ms = 5000
down_after_refused_ms = 200
failover_timeout_ms = 60000
parallel_syncs = 2
auth_user = "picket"
auth_pass = "<redacted>"
reboot_down_after_ms = 10000
replica_priority = { "10.0.0.5:6379" = 0, "[::1]:6380" = 10 }
fencing = "strict"
max_lag_on_failover_bytes = 1048576
min_failover_interval_ms = 600000
switchover_timeout_ms = 2000
notification_script = "/usr/local/bin/notify"
client_reconfig_script = "/usr/local/bin/reconfig"

[[master]]
name = "cache"
address = "10.0.0.9:6379"
quorum = 1
down_after_ms = 30000
down_after_refused_ms = 300
failover_timeout_ms = 180000
parallel_syncs = 1
auth_pass_file = "/run/secrets/cache-pass"
tls = true
tls_ca_file = "/etc/picket/redis-ca.pem"
tls_cert_file = "/etc/picket/client.pem"
tls_key_file = "/etc/picket/client.key"
tls_server_name = "redis.example"
reboot_down_after_ms = 0
replica_priority = {}
fencing = "bounded"
min_failover_interval_ms = 0
switchover_timeout_ms = 5000
"#
    );
    assert_render_fixpoint(&config);
    assert_render_fixpoint(&parse_ok(BASE));
}

#[test]
fn render_escapes_the_path_in_its_comment() {
    let config = parse(BASE, Path::new("odd\nname.toml")).unwrap();
    let text = config.render_effective();
    assert!(text.starts_with("# Effective configuration from odd\\nname.toml: "), "{text}");
    assert_render_fixpoint(&config);
}

#[test]
fn render_escapes_strings() {
    let text = BASE.replace("/var/lib/picket", "/var/lib/pi\\\"ck\\\\et ☃");
    let config = parse_ok(&text);
    assert_eq!(config.node.state_dir, Path::new("/var/lib/pi\"ck\\et ☃"));
    assert_render_fixpoint(&config);
}

/// Every `*.toml` under `config/` in the repository (the annotated example and the local
/// cluster) must parse, and render back to itself.
#[test]
fn example_files_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("config")];
    let mut parsed = BTreeMap::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                let relative = path.strip_prefix(root).unwrap().to_owned();
                let text = std::fs::read_to_string(&path).unwrap();
                let config = parse(&text, &relative).unwrap_or_else(|e| panic!("{e}"));
                assert_render_fixpoint(&config);
                parsed.insert(relative, config);
            }
        }
    }
    let names: Vec<&Path> = parsed.keys().map(PathBuf::as_path).collect();
    assert_eq!(
        names,
        [
            "config/local/picket-1.toml",
            "config/local/picket-2.toml",
            "config/local/picket-3.toml",
            "config/picket.toml"
        ]
        .map(Path::new)
    );

    let example = &parsed[Path::new("config/picket.toml")];
    assert_eq!(example.node.announce, addr("picket-0.picket:26380"));
    assert_eq!(example.node.client_announce, addr("picket-0.picket:26379"));
    assert_eq!(example.node.peers, [addr("picket-1.picket:26380"), addr("picket-2.picket:26380")]);
    let names: Vec<&str> = example.masters.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["session", "cache", "realtime"]);
    // Every TLS and user key is shown in use.
    assert!(example.tls.as_ref().is_some_and(|t| t.peers && t.ca_file.is_some()));
    assert_eq!(example.node.tls_listen, Some(addr("0.0.0.0:26389")));
    let roles: Vec<UserRole> = example.users.iter().map(|u| u.role).collect();
    assert_eq!(roles, [UserRole::Read, UserRole::Admin]);
    let session_tls = &example.master_tls["session"];
    assert!(session_tls.ca_file.is_some() && session_tls.cert_file.is_some());

    for n in 1..=3 {
        let local = &parsed[&PathBuf::from(format!("config/local/picket-{n}.toml"))];
        let me = addr(&format!("127.0.0.{n}:26380"));
        assert_eq!(local.node.listen, Some(addr(&format!("127.0.0.{n}:26379"))));
        assert_eq!(local.node.http, Some(addr(&format!("127.0.0.{n}:26381"))));
        assert_eq!(local.node.announce, me);
        assert_eq!(local.node.state_dir, PathBuf::from(format!("/tmp/picket-local/{n}")));
        assert_eq!(local.node.peers.len(), 2);
        assert!(!local.node.peers.contains(&me));
        let masters: Vec<(&str, String, u32, Duration, Duration)> = local
            .masters
            .iter()
            .map(|m| {
                (m.name.as_str(), m.addr.to_string(), m.quorum, m.down_after, m.failover_timeout)
            })
            .collect();
        assert_eq!(
            masters,
            [
                ("session", "127.0.0.1:6379".to_owned(), 2, ms(1000), ms(10_000)),
                ("cache", "127.0.0.1:6380".to_owned(), 2, ms(1000), ms(10_000)),
                ("realtime", "127.0.0.1:6381".to_owned(), 2, ms(1000), ms(10_000)),
            ]
        );
        assert_eq!(
            local.node.peer_secret.as_ref().and_then(SecretSetting::value),
            parsed[Path::new("config/local/picket-1.toml")]
                .node
                .peer_secret
                .as_ref()
                .and_then(SecretSetting::value),
            "one shared secret"
        );
    }
}

/// A random webhook: inline secret?, events, timeout_ms, max_retries.
type HookShape = (bool, Option<Vec<String>>, Option<u64>, Option<u32>);

/// Parameters of a random valid configuration.
#[derive(Debug, Clone)]
struct Shape {
    peers: usize,
    list_self: bool,
    secret_in_file: bool,
    timings: [Option<u64>; 4],
    event_history: Option<usize>,
    webhooks: Vec<HookShape>,
    masters: Vec<MasterShape>,
}

#[derive(Debug, Clone)]
struct MasterShape {
    name: String,
    quorum: usize,
    durations: [Option<u64>; 3],
    parallel_syncs: Option<u32>,
    auth: Option<(Option<String>, bool)>,
    priorities: Vec<(u8, u32)>,
    script: Option<String>,
}

fn arb_master() -> impl Strategy<Value = MasterShape> {
    (
        "[a-z][a-z0-9_.-]{0,10}",
        1usize..8,
        [
            proptest::option::of(1u64..1 << 40),
            proptest::option::of(1u64..1 << 40),
            proptest::option::of(0u64..100_000),
        ],
        proptest::option::of(1u32..10),
        proptest::option::of((proptest::option::of("[a-z]{1,8}"), any::<bool>())),
        proptest::collection::vec((any::<u8>(), any::<u32>()), 0..3),
        proptest::option::of("/[a-z/ \"\\\\é]{1,20}"),
    )
        .prop_map(|(name, quorum, durations, parallel_syncs, auth, priorities, script)| {
            MasterShape { name, quorum, durations, parallel_syncs, auth, priorities, script }
        })
}

fn arb_shape() -> impl Strategy<Value = Shape> {
    let hook = (
        any::<bool>(),
        proptest::option::of(proptest::collection::vec("[+-][a-z*-]{1,12}", 1..4)),
        proptest::option::of(1u64..100_000),
        proptest::option::of(0u32..20),
    );
    (
        0usize..6,
        any::<bool>(),
        any::<bool>(),
        [
            proptest::option::of(1u64..100),
            proptest::option::of(101u64..10_000),
            proptest::option::of(1u64..1 << 40),
            proptest::option::of(1u64..1 << 40),
        ],
        proptest::option::of(1usize..100_000),
        proptest::collection::vec(hook, 0..3),
        proptest::collection::vec(arb_master(), 1..4),
    )
        .prop_map(
            |(peers, list_self, secret_in_file, timings, event_history, webhooks, masters)| Shape {
                peers,
                list_self,
                secret_in_file,
                timings,
                event_history,
                webhooks,
                masters,
            },
        )
}

/// The TOML text of `shape`; always a valid configuration.
fn shape_text(shape: &Shape) -> String {
    use std::fmt::Write as _;
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let mut out = String::from("[node]\nlisten = \"0.0.0.0:26379\"\ngossip = \"10.0.0.1:26380\"\n");
    out.push_str(
        "http = \"10.0.0.1:26381\"\nstate_dir = \"/var/lib/picket\"\nannounce = \"node-1:26380\"\n",
    );
    let mut peers: Vec<String> =
        (2..shape.peers + 2).map(|i| format!("\"node-{i}:26380\"")).collect();
    if shape.list_self {
        peers.insert(0, "\"Node-1:26380\"".to_owned());
    }
    let _ = writeln!(out, "peers = [{}]", peers.join(", "));
    out.push_str(if shape.secret_in_file {
        "peer_secret_file = \"/s\"\n"
    } else {
        "peer_secret = \"k\"\n"
    });
    for (key, value) in ["heartbeat_ms", "peer_timeout_ms", "tilt_trigger_ms", "tilt_period_ms"]
        .iter()
        .zip(shape.timings)
    {
        if let Some(value) = value {
            let _ = writeln!(out, "{key} = {value}");
        }
    }
    if let Some(n) = shape.event_history {
        let _ = writeln!(out, "[http]\nevent_history = {n}\nadmin_token_file = \"/t\"");
    }
    for (i, (secret, events, timeout, retries)) in shape.webhooks.iter().enumerate() {
        let _ = writeln!(out, "[[webhook]]\nurl = \"https://hooks.example/{i}\"");
        if *secret {
            out.push_str("secret = \"w\"\n");
        }
        if let Some(events) = events {
            let quoted: Vec<String> = events.iter().map(|e| quote(e)).collect();
            let _ = writeln!(out, "events = [{}]", quoted.join(", "));
        }
        if let Some(t) = timeout {
            let _ = writeln!(out, "timeout_ms = {t}");
        }
        if let Some(r) = retries {
            let _ = writeln!(out, "max_retries = {r}");
        }
    }
    let voters = shape.peers + 1;
    for (i, m) in shape.masters.iter().enumerate() {
        let quorum = m.quorum.min(voters);
        let _ = writeln!(
            out,
            "[[master]]\nname = \"{}-{i}\"\naddress = \"redis-{i}:6379\"\nquorum = {quorum}",
            m.name
        );
        for (key, value) in
            ["down_after_ms", "failover_timeout_ms", "reboot_down_after_ms"].iter().zip(m.durations)
        {
            if let Some(value) = value {
                let _ = writeln!(out, "{key} = {value}");
            }
        }
        if let Some(p) = m.parallel_syncs {
            let _ = writeln!(out, "parallel_syncs = {p}");
        }
        if let Some((user, in_file)) = &m.auth {
            if let Some(user) = user {
                let _ = writeln!(out, "auth_user = {}", quote(user));
            }
            out.push_str(if *in_file {
                "auth_pass_file = \"/p\"\n"
            } else {
                "auth_pass = \"p\"\n"
            });
        }
        let priorities: BTreeMap<String, u32> =
            m.priorities.iter().map(|(host, p)| (format!("10.0.{host}.1:6379"), *p)).collect();
        let entries: Vec<String> =
            priorities.iter().map(|(a, p)| format!("\"{a}\" = {p}")).collect();
        let _ = writeln!(out, "replica_priority = {{ {} }}", entries.join(", "));
        if let Some(script) = &m.script {
            let _ = writeln!(out, "notification_script = {}", quote(script));
        }
    }
    out
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC*") {
        let _ = parse(&text, Path::new(PATH));
    }

    #[test]
    fn edited_configs_never_panic_and_errors_point_inside_the_file(
        at in 0usize..2000,
        cut in 0usize..20,
        insert in "[\\[\\]{}=\",.\\n a-z0-9:_#-]{0,12}",
    ) {
        let mut text = FULL.to_owned();
        let at = at.min(text.len());
        let end = (at + cut).min(text.len());
        text.replace_range(at..end, &insert);
        if let Err(err) = parse(&text, Path::new(PATH)) {
            prop_assert!(err.line >= 1 && err.line <= text.lines().count() + 1, "{err}");
            prop_assert!(err.column >= 1, "{err}");
        }
    }

    #[test]
    fn render_then_parse_is_a_fixpoint(shape in arb_shape()) {
        let text = shape_text(&shape);
        let config = parse(&text, Path::new(PATH)).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        assert_render_fixpoint(&config);
    }
}

#[test]
fn zero_turns_the_crash_rule_off() {
    let config = parse_ok(&format!("{BASE}down_after_refused_ms = 0\n"));
    assert_eq!(config.masters[0].down_after_refused, None);
    let config = parse_ok(&format!("{BASE}down_after_refused_ms = 150\n"));
    assert_eq!(config.masters[0].down_after_refused, Some(ms(150)));
}
