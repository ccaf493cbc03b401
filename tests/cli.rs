//! The `picket` command line: `check`, configuration errors, clean shutdown, and state files.

mod support;

use std::fs;
use std::process::Command;
use std::time::Duration;

use support::{ClusterOptions, Group, Picket, config_text, node_specs, wait_for};

fn picket(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_picket")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_prints_the_effective_configuration_of_the_local_examples() {
    for path in
        ["config/local/picket-1.toml", "config/local/picket-2.toml", "config/local/picket-3.toml"]
    {
        let (code, stdout, stderr) = picket(&["check", "--config", path]);
        assert_eq!(code, 0, "{path}: {stderr}");
        assert!(stdout.contains("[node]") && stdout.contains("[[master]]"), "{path}: {stdout}");
        assert!(
            stdout.contains("peer_secret = \"<redacted>\""),
            "secrets must not be printed: {stdout}"
        );
    }
}

#[test]
fn check_reads_secret_files_so_a_broken_mount_is_caught_before_deploying() {
    // The Kubernetes example reads its secrets from mounted files, absent on this machine.
    let (code, _, stderr) = picket(&["check", "--config", "config/picket.toml"]);
    assert_eq!(code, 1);
    // The error names the key's line, wherever the example file has it.
    let example = fs::read_to_string("config/picket.toml").unwrap();
    let line = 1 + example.lines().position(|l| l.starts_with("peer_secret_file")).unwrap();
    let expected = format!(
        "config/picket.toml:{line}:1: node: peer_secret_file: cannot read /etc/picket/secrets/peer-secret"
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[test]
fn check_loads_the_certificates_as_the_daemon_will() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tls.toml");
    let text = format!(
        "[node]\ntls_listen = \"127.0.0.1:26389\"\ngossip = \"127.0.0.1:26380\"\n\
         http = \"127.0.0.1:26381\"\nstate_dir = \"/tmp/x\"\n\n[tls]\n\
         cert_file = \"{0}/node.pem\"\nkey_file = \"{0}/node.key\"\n\n\
         [[master]]\nname = \"session\"\naddress = \"127.0.0.1:6379\"\nquorum = 1\n",
        dir.path().display()
    );
    fs::write(&path, text).unwrap();
    let (code, _, stderr) = picket(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    let expected = format!("picket: TLS: cannot read {}/node.pem", dir.path().display());
    assert!(stderr.contains(&expected), "{stderr}");
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    fs::write(dir.path().join("node.pem"), made.cert.pem()).unwrap();
    fs::write(dir.path().join("node.key"), made.signing_key.serialize_pem()).unwrap();
    let (code, stdout, stderr) = picket(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("[tls]\ncert_file = "), "{stdout}");
}

#[test]
fn broken_configurations_name_the_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = "[node]\nlisten = \"127.0.0.1:26379\"\ngossip = \"127.0.0.1:26380\"\nhttp = \"127.0.0.1:26381\"\nstate_dir = \"/tmp/x\"\n\n[[master]]\nname = \"session\"\naddress = \"127.0.0.1:6379\"\nquorum = 0\n";
    fs::write(&path, text).unwrap();
    let (code, _, stderr) = picket(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    let expected =
        format!("{}:10:1: master \"session\": quorum: must be at least 1", path.display());
    assert!(stderr.contains(&expected), "{stderr}");
    let (code, _, stderr) = picket(&["run", "--config", "/nonexistent/picket.toml"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot read /nonexistent/picket.toml"), "{stderr}");
}

#[test]
fn announce_on_the_command_line_lets_one_file_serve_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.toml");
    let text = "[node]\nlisten = \"0.0.0.0:26379\"\ngossip = \"0.0.0.0:26380\"\nhttp = \"0.0.0.0:26381\"\nstate_dir = \"/tmp/x\"\npeers = [\"picket-0.picket:26380\", \"picket-1.picket:26380\", \"picket-2.picket:26380\"]\npeer_secret = \"abc\"\n\n[[master]]\nname = \"session\"\naddress = \"redis-session:6379\"\nquorum = 2\n";
    fs::write(&path, text).unwrap();
    let (code, _, stderr) = picket(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 1, "a wildcard gossip address needs an announce");
    assert!(stderr.contains("announce is required"), "{stderr}");
    let (code, stdout, stderr) = picket(&[
        "check",
        "--config",
        path.to_str().unwrap(),
        "--announce",
        "picket-1.picket:26380",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("peers = [\"picket-0.picket:26380\", \"picket-2.picket:26380\"]"),
        "{stdout}"
    );
    assert!(stdout.contains("client_announce = \"picket-1.picket:26379\""), "{stdout}");
}

fn lone(group: &Group) -> Picket {
    let specs = node_specs(1);
    let options = ClusterOptions { quorum: 1, ..ClusterOptions::default() };
    Picket::start(specs[0].clone(), |state| {
        config_text(&specs[0], &specs, &[group], state, &options)
    })
}

#[test]
fn sigterm_stops_cleanly_and_the_identity_survives_a_restart() {
    let group = Group::start("session", 0, None);
    let mut picket = lone(&group);
    wait_for("started", Duration::from_secs(30), || picket.saw("+monitor"));
    let state = fs::read_to_string(picket.dir().join("state/state.toml")).unwrap();
    assert_eq!(picket.terminate(), Some(0), "{}", picket.log());
    picket.restart();
    wait_for("restarted", Duration::from_secs(30), || picket.count("+monitor") == 2);
    let again = fs::read_to_string(picket.dir().join("state/state.toml")).unwrap();
    let id = |s: &str| s.lines().find(|l| l.starts_with("node_id")).map(str::to_owned);
    assert_eq!(id(&state), id(&again));
    assert!(id(&state).is_some(), "{state}");
}

#[test]
fn a_corrupt_state_file_stops_the_node_instead_of_resetting_it() {
    let group = Group::start("session", 0, None);
    let mut picket = lone(&group);
    wait_for("started", Duration::from_secs(30), || picket.saw("+monitor"));
    picket.kill();
    fs::write(picket.dir().join("state/state.toml"), "current_epoch = \"garbage\"\n").unwrap();
    picket.restart();
    wait_for("exit", Duration::from_secs(30), || picket.exit_code().is_some());
    assert_eq!(picket.exit_code(), Some(1));
    assert!(picket.log().contains("is corrupt"), "{}", picket.log());
    assert_eq!(
        fs::read_to_string(picket.dir().join("state/state.toml")).unwrap(),
        "current_epoch = \"garbage\"\n"
    );
}

#[test]
fn an_impossible_state_file_stops_the_node_naming_the_file_and_the_field() {
    let group = Group::start("session", 0, None);
    let mut picket = lone(&group);
    wait_for("started", Duration::from_secs(30), || picket.saw("+monitor"));
    picket.kill();
    let path = picket.dir().join("state/state.toml");
    // An older file (no checksum line) with a config epoch above the current epoch.
    let text = fs::read_to_string(&path).unwrap();
    let impossible: String = text
        .lines()
        .filter(|l| !l.starts_with("# sha256 "))
        .map(|l| match l {
            l if l.starts_with("current_epoch = ") => "current_epoch = 0".to_owned(),
            l if l.starts_with("config_epoch = ") => "config_epoch = 1".to_owned(),
            l => l.to_owned(),
        })
        .map(|l| l + "\n")
        .collect();
    assert!(impossible.contains("config_epoch = 1"), "{impossible}");
    fs::write(&path, &impossible).unwrap();
    picket.restart();
    wait_for("exit", Duration::from_secs(30), || picket.exit_code().is_some());
    assert_eq!(picket.exit_code(), Some(1));
    let expected = format!(
        "state file {} is corrupt: impossible state: masters.session.config_epoch = 1 is above \
         current_epoch = 0",
        path.display()
    );
    assert!(picket.log().contains(&expected), "{}", picket.log());
    assert_eq!(fs::read_to_string(&path).unwrap(), impossible, "the file is left as it was");
}
