//! Secrets never leave the files they are configured in: two pickets with every kind of secret
//! (the peer secret, requirepass, a user's password, the HTTP tokens, a webhook's key, a
//! master's auth-pass, the TLS private key), put through authentications, a SENTINEL SET of
//! the password, a failover and a certificate reload, and then every log line, `picket check`,
//! `/metrics`, every HTTP API route, `SENTINEL CONFIG GET`, `SENTINEL MASTER`, `INFO` and
//! `CLIENT LIST` and the state files are searched for each secret.

#![allow(clippy::disallowed_methods)] // waits on real processes in real time

#[path = "support/resp.rs"]
mod resp;
mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use picket::wire::resp::Frame;
use resp::Resp;
use support::http::{get_with, metrics};
use support::tls::{Pki, Validity};
use support::{CLUSTER_WAIT, Group, Picket, node_specs, wait_for, wait_until};

const PEER_SECRET: &str = "peer-secret-value-4417";
const REQUIREPASS: &str = "requirepass-value-5521";
const USER_PASSWORD: &str = "user-password-value-6633";
const ADMIN_TOKEN: &str = "admin-token-value-7744";
const READ_TOKEN: &str = "read-token-value-8855";
const WEBHOOK_SECRET: &str = "webhook-secret-value-9966";
const REDIS_PASSWORD: &str = "redis-password-value-1077";

#[test]
fn no_secret_appears_in_logs_check_metrics_the_api_or_sentinel_replies() {
    let group = Group::start("session", 1, Some(REDIS_PASSWORD));
    let pki = Pki::new("picket");
    let specs = node_specs(2);
    let pairs_by_ip: Vec<_> =
        specs.iter().map(|s| pki.issue(&format!("picket-{}", s.ip), &[&s.ip])).collect();
    // The TLS key's PEM body is a secret too: any 40 characters of it would give it away.
    let key_bodies: Vec<String> = pairs_by_ip
        .iter()
        .map(|p| {
            let pem = fs::read_to_string(&p.key).unwrap();
            pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>()[..40].to_owned()
        })
        .collect();
    let hook_port = support::free_port();
    let config = |i: usize, state: &std::path::Path| {
        let me = &specs[i];
        let other = &specs[1 - i];
        format!(
            "[node]\nlisten = \"{}\"\ntls_listen = \"{}\"\ngossip = \"{}\"\nhttp = \"{}\"\n\
             state_dir = \"{}\"\npeers = [\"{}\"]\npeer_secret = \"{PEER_SECRET}\"\n\
             requirepass = \"{REQUIREPASS}\"\n\n\
             [http]\nadmin_token = \"{ADMIN_TOKEN}\"\nread_token = \"{READ_TOKEN}\"\n\n\
             [tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nca_file = \"{}\"\npeers = true\n\n\
             [[user]]\nname = \"app\"\npassword = \"{USER_PASSWORD}\"\nrole = \"admin\"\n\n\
             [[webhook]]\nurl = \"http://127.0.0.1:{hook_port}/hook\"\nsecret = \"{WEBHOOK_SECRET}\"\n\
             timeout_ms = 200\nmax_retries = 1\n\n\
             [[master]]\nname = \"session\"\naddress = \"{}\"\nquorum = 1\ndown_after_ms = 1000\n\
             auth_pass = \"{REDIS_PASSWORD}\"\n",
            me.listen_addr(),
            me.tls_listen_addr(),
            me.gossip_addr(),
            me.http_addr(),
            state.display(),
            other.gossip_addr(),
            pairs_by_ip[i].cert.display(),
            pairs_by_ip[i].key.display(),
            pki.ca_file.display(),
            group.master.addr(),
        )
    };
    let pickets: Vec<Picket> = (0..2)
        .map(|i| Picket::start_logging(specs[i].clone(), "debug", |state| config(i, state)))
        .collect();
    for picket in &pickets {
        wait_for("peers and the replica", CLUSTER_WAIT, || {
            picket.saw("+sentinel ") && picket.saw("+slave ")
        });
    }
    let first = &pickets[0];
    let port = first.spec.listen_addr();
    let http = first.spec.http_addr();
    let bearer = format!("Bearer {READ_TOKEN}");
    let admin_bearer = format!("Bearer {ADMIN_TOKEN}");

    // Authentications, right and wrong, and a SET of the master's password.
    let mut c = Resp::connect(&port);
    assert!(matches!(c.call(&["AUTH", "app", "wrong"]), Frame::Error(_)));
    assert_eq!(c.call(&["AUTH", "app", USER_PASSWORD]), Frame::Simple("OK".into()));
    assert_eq!(c.call(&["AUTH", REQUIREPASS]), Frame::Simple("OK".into()));
    assert_eq!(
        c.call(&["SENTINEL", "SET", "session", "auth-pass", REDIS_PASSWORD]),
        Frame::Simple("OK".into())
    );
    assert!(get_with(&http, "/v1/masters", &[("Authorization", "Bearer nope")]).status == 401);
    // SIGHUP reloads the certificates though no file changed (the watcher alone would not),
    // then a new certificate is picked up by the watcher.
    let reloads = || first.log().matches("TLS certificates reloaded").count();
    let _ = Command::new("kill").args(["-HUP", &first.pid().to_string()]).status();
    wait_for("the reload on SIGHUP", CLUSTER_WAIT, || reloads() == 1);
    pki.issue_to(&pairs_by_ip[0], &[&specs[0].ip], Validity::Current);
    wait_for("the reload of the new certificate", CLUSTER_WAIT, || reloads() == 2);
    // A failover, with webhook deliveries failing (nothing listens).
    let mut group = group;
    group.master.kill();
    for picket in &pickets {
        wait_for("+switch-master", CLUSTER_WAIT, || picket.saw("+switch-master"));
    }

    let mut seen: Vec<(String, String)> = Vec::new();
    let check = Command::new(env!("CARGO_BIN_EXE_picket"))
        .arg("check")
        .arg("--config")
        .arg(first.config_path())
        .output()
        .unwrap();
    assert!(check.status.success());
    seen.push(("picket check".into(), String::from_utf8_lossy(&check.stdout).into_owned()));
    seen.push(("/metrics".into(), metrics(&http)));
    for path in ["/v1/masters", "/v1/masters/session", "/v1/history", "/v1/events?after=0&wait=1s"]
    {
        let body = get_with(&http, path, &[("Authorization", &bearer)]);
        assert_eq!(body.status, 200, "{path}");
        seen.push((path.to_owned(), body.text()));
    }
    let reset = support::http::post(
        &http,
        "/v1/masters/session/reset",
        &[("Authorization", &admin_bearer)],
        b"",
    );
    seen.push(("POST reset".into(), reset.text()));
    for command in [
        &["SENTINEL", "CONFIG", "GET", "*"][..],
        &["SENTINEL", "MASTER", "session"],
        &["SENTINEL", "MASTERS"],
        &["SENTINEL", "REPLICAS", "session"],
        &["SENTINEL", "SENTINELS", "session"],
        &["SENTINEL", "DEBUG"],
        &["INFO"],
        &["CLIENT", "LIST"],
    ] {
        seen.push((command.join(" "), flatten(&c.call(command))));
    }
    let events = wait_until("a reply", CLUSTER_WAIT, || {
        let body = get_with(&http, "/v1/events?after=0", &[("Authorization", &bearer)]);
        (body.status == 200).then(|| body.text())
    });
    seen.push(("events".into(), events));
    for picket in &pickets {
        let log = picket.log();
        assert!(log.contains("\"level\":\"DEBUG\""), "the debug log is on");
        seen.push((format!("log of {}", picket.spec.ip), log));
        // The state file: private, and the password set above is sealed, never in clear.
        let state = picket.dir().join("state/state.toml");
        let mode = fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", state.display());
        seen.push((
            format!("state file of {}", picket.spec.ip),
            fs::read_to_string(&state).unwrap(),
        ));
    }

    // The places searched hold what they should (a search of empty answers proves nothing).
    let find = |place: &str| &seen.iter().find(|(p, _)| p == place).unwrap().1;
    assert!(find("SENTINEL CONFIG GET *").contains("announce-ip"));
    assert!(find("SENTINEL MASTER session").contains("config-epoch"));
    assert!(find("/v1/masters/session").contains("\"name\":\"session\""));
    assert!(find("/metrics").contains("picket_tls_certificate_info"));
    assert!(find("picket check").contains("requirepass = \"<redacted>\""));
    let state = find(&format!("state file of {}", first.spec.ip));
    assert!(state.contains("[masters.session.settings.auth-pass]"), "{state}");
    assert!(state.contains("value = \"sealed:v1:"), "{state}");
    let secrets = [
        PEER_SECRET,
        REQUIREPASS,
        USER_PASSWORD,
        ADMIN_TOKEN,
        READ_TOKEN,
        WEBHOOK_SECRET,
        REDIS_PASSWORD,
    ];
    for (place, text) in &seen {
        for secret in secrets.iter().copied().chain(key_bodies.iter().map(String::as_str)) {
            assert!(!text.contains(secret), "{secret} appears in {place}:\n{text}");
        }
    }
    // The password change was announced, redacted.
    assert!(first.saw("+set master session"), "{}", first.log());
    // The sealed password opens again after a restart (with the same peer secret).
    let mut first = pickets.into_iter().next().unwrap();
    first.restart();
    wait_for("restarted", CLUSTER_WAIT, || first.count("+monitor") == 2);
    assert!(!first.log().contains("cannot be decrypted"), "{}", first.log());
}

/// Every string of a reply, as text (bulk strings are bytes in `Frame`'s `Debug`).
fn flatten(frame: &Frame) -> String {
    match frame {
        Frame::Bulk(b) | Frame::BlobError(b) => String::from_utf8_lossy(b).into_owned(),
        Frame::Verbatim { text, .. } => String::from_utf8_lossy(text).into_owned(),
        Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
            items.iter().map(flatten).collect::<Vec<_>>().join(" ")
        }
        Frame::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| format!("{} {}", flatten(k), flatten(v)))
            .collect::<Vec<_>>()
            .join(" "),
        other => format!("{other:?}"),
    }
}
