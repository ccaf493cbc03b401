//! `picket import-sentinel` (part of the binary): the file work around
//! [`picket::config::import`], which decides everything.
//!
//! It reads `sentinel.conf`, refuses to overwrite a `picket.toml` or a state file that already
//! exists (an existing state holds votes that must not be lost), writes the secrets (mode 0600),
//! the configuration and the state (with `persist::store`, as the daemon writes it), then loads
//! the written configuration as `picket check` does and prints what was and was not carried
//! over.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use picket::config::import::{ImportOptions, Unmapped, import};
use picket::engine::{Addr, NodeId};
use picket::persist;

/// `picket import-sentinel` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    /// The redis-sentinel configuration to import (as Sentinel last rewrote it).
    #[arg(long)]
    sentinel_conf: PathBuf,
    /// Directory for picket.toml, secrets/ and (if generated) peer-secret.
    #[arg(long)]
    output: PathBuf,
    /// `node.state_dir` (default: <output>/state); the initial state is written there.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// A peer's gossip address (repeat for each); default: each known Sentinel's host, on its
    /// Sentinel port plus the offset of this node's gossip port.
    #[arg(long = "peer")]
    peers: Vec<Addr>,
    /// A rolling migration: a Sentinel still running beside this node (repeat for each), at the
    /// address it announces. Written as every master's `sentinel_peers`, with `fencing = "off"`;
    /// `--peer` then lists only the Pickets that already replaced a Sentinel (none by default).
    #[arg(long = "sentinel-peer")]
    sentinel_peers: Vec<Addr>,
    /// `node.announce`, needed when the Sentinel binds every address and has no announce-ip.
    #[arg(long)]
    announce: Option<Addr>,
    /// The gossip port (default: the Sentinel port + 1).
    #[arg(long)]
    gossip_port: Option<u16>,
    /// The HTTP port (default: the Sentinel port + 2).
    #[arg(long)]
    http_port: Option<u16>,
    /// The secret every node shares (`node.peer_secret_file`); default: a new random one in
    /// <output>/peer-secret, to copy to every node.
    #[arg(long)]
    peer_secret_file: Option<PathBuf>,
}

/// Runs the import; `Err` is the message to print.
pub(crate) fn run(args: &ImportArgs) -> Result<(), String> {
    let text = fs::read_to_string(&args.sentinel_conf)
        .map_err(|e| format!("cannot read {}: {e}", args.sentinel_conf.display()))?;
    fs::create_dir_all(&args.output)
        .map_err(|e| format!("cannot create {}: {e}", args.output.display()))?;
    let output = fs::canonicalize(&args.output)
        .map_err(|e| format!("cannot resolve {}: {e}", args.output.display()))?;
    let config_path = output.join("picket.toml");
    let state_dir = match &args.state_dir {
        Some(dir) if dir.is_absolute() => dir.clone(),
        Some(dir) => std::env::current_dir().map_err(|e| e.to_string())?.join(dir),
        None => output.join("state"),
    };
    let state_file = state_dir.join(persist::STATE_FILE);
    for existing in [&config_path, &state_file] {
        if existing.exists() {
            return Err(format!(
                "{} exists: move it away first (an existing state holds votes and epochs that \
                 must not be overwritten)",
                existing.display()
            ));
        }
    }
    let generated_secret = args.peer_secret_file.is_none();
    let peer_secret_file =
        args.peer_secret_file.clone().unwrap_or_else(|| output.join("peer-secret"));
    let mut id = [0u8; 20];
    getrandom::fill(&mut id).map_err(|e| format!("cannot read OS randomness: {e}"))?;
    let options = ImportOptions {
        source: args.sentinel_conf.clone(),
        config_path: config_path.clone(),
        state_dir: state_dir.clone(),
        secrets_dir: output.join("secrets"),
        peer_secret_file: peer_secret_file.clone(),
        peers: args.peers.clone(),
        sentinel_peers: args.sentinel_peers.clone(),
        announce: args.announce.clone(),
        gossip_port: args.gossip_port,
        http_port: args.http_port,
        new_node_id: NodeId::from_bytes(id),
    };
    let imported = import(&text, &options).map_err(|e| e.to_string())?;

    for (path, secret) in &imported.secret_files {
        write_private(path, secret)?;
    }
    let will_have_peers = !imported.peers.is_empty() || !args.sentinel_peers.is_empty();
    let new_peer_secret = generated_secret && will_have_peers && !peer_secret_file.exists();
    if new_peer_secret {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| format!("cannot read OS randomness: {e}"))?;
        let hex = key.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        });
        write_private(&peer_secret_file, &format!("{hex}\n"))?;
    }
    fs::write(&config_path, &imported.toml)
        .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
    persist::prepare(&state_dir).map_err(|e| e.to_string())?;
    persist::store(&state_dir, &imported.state, None).map_err(|e| e.to_string())?;
    // What `picket check` does with the written files, secrets included.
    let mut check =
        picket::config::parse(&imported.toml, &config_path).map_err(|e| e.to_string())?;
    check.resolve_secrets(|path: &Path| fs::read_to_string(path)).map_err(|e| e.to_string())?;

    print!(
        "{}",
        report(
            args,
            &imported,
            &config_path,
            &state_file,
            new_peer_secret.then_some(&peer_secret_file)
        )
    );
    Ok(())
}

/// Writes `content` to a new file readable only by its owner (in a directory only it can
/// list, if the directory is new).
fn write_private(path: &Path, content: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.write_all(content.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// What an operator reads after the import.
fn report(
    args: &ImportArgs,
    imported: &picket::config::import::Imported,
    config_path: &Path,
    state_file: &Path,
    new_peer_secret: Option<&PathBuf>,
) -> String {
    let source = args.sentinel_conf.display();
    let state = &imported.state;
    let mut out = format!(
        "Imported {source} into {}\n  node id {} (the Sentinel's myid when it had one), current epoch {}\n",
        config_path.display(),
        state.node_id,
        state.current_epoch
    );
    for (name, master) in &state.masters {
        let _ = writeln!(
            out,
            "  master {name} at {}, config epoch {}, {} known replica(s)",
            master.addr,
            master.config_epoch,
            master.replicas.len()
        );
    }
    if !imported.peers.is_empty() {
        let peers: Vec<String> = imported.peers.iter().map(ToString::to_string).collect();
        let how = if imported.peers_derived {
            "derived from the known Sentinels: check them, or pass --peer"
        } else {
            "as given"
        };
        let _ = writeln!(out, "  peers ({how}): {}", peers.join(", "));
    }
    if !args.sentinel_peers.is_empty() {
        let listed: Vec<String> = args.sentinel_peers.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "  rolling migration: sentinel_peers {} and fencing \"off\" for every master",
            listed.join(", ")
        );
    }
    let _ = writeln!(out, "  state: {}", state_file.display());
    if !imported.secret_files.is_empty() {
        let _ = writeln!(out, "  secrets: {} file(s), mode 0600", imported.secret_files.len());
    }
    if let Some(path) = new_peer_secret {
        let _ = writeln!(
            out,
            "  peer secret: a new one in {}; every node needs the same secret: copy this file \
             to the others, or import them with --peer-secret-file",
            path.display()
        );
    }
    let list = |out: &mut String, title: &str, lines: &[Unmapped]| {
        if lines.is_empty() {
            return;
        }
        let _ = writeln!(out, "{title} ({} line(s)):", lines.len());
        for line in lines {
            let _ = writeln!(out, "  {source}:{}: {}: {}", line.line, line.text, line.reason);
        }
    };
    list(&mut out, "Not imported", &imported.conf.unmapped);
    list(&mut out, "Notes", &imported.conf.notes);
    out
}
