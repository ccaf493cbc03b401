//! Durable state on disk: `state.toml` in the node's `state_dir`.
//!
//! Writes are atomic and durable: the state goes to a temporary file in the same directory, which
//! is flushed to disk, renamed over `state.toml`, and then the directory itself is flushed so the
//! rename survives a power cut. A reader therefore sees either the old state or the new one, never
//! a mix.
//!
//! Loading is strict on purpose. A missing file means a first start. A file that exists but cannot
//! be read or parsed stops the node with an error naming the file: silently starting over would
//! reset the epoch and the votes, which is exactly how a node ends up voting twice in one epoch.
//! The operator decides (restore a backup, or move the file away to start as a new node).
//!
//! The file is separate from the operator's configuration, which Picket never writes (unlike
//! Sentinel's rewrite of `sentinel.conf`, which breaks on read-only ConfigMaps and bind mounts).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::engine::DurableState;

/// The state file's name inside `state_dir`.
pub const STATE_FILE: &str = "state.toml";
const TEMP_FILE: &str = "state.toml.tmp";
const HEADER: &str = "# Picket's durable state: node id, epochs, votes, current masters.\n\
# Written atomically by picket; do not edit while it runs. Deleting it makes this node a new\n\
# node that must re-learn the cluster's epochs before it may vote.\n\n";

/// Why the state could not be loaded or stored.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The state directory cannot be created or written.
    #[error("state directory {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The state file exists but cannot be read.
    #[error("cannot read state file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The state file exists but is not valid state.
    #[error(
        "state file {path} is corrupt: {message}. Refusing to start, because starting over would \
         reset this node's epoch and votes. Restore the file from a backup, or move it away to \
         start as a new node."
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Writing the state failed.
    #[error("cannot write state file {path}: {source}")]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The state could not be encoded (a value TOML cannot hold).
    #[error("cannot encode state: {0}")]
    Encode(String),
}

/// Makes sure `dir` exists and is writable, so a broken deployment fails at start rather than at
/// the first vote.
///
/// # Errors
/// [`PersistError::Directory`] if it cannot be created or written.
pub fn prepare(dir: &Path) -> Result<(), PersistError> {
    let err = |source| PersistError::Directory { path: dir.to_owned(), source };
    fs::create_dir_all(dir).map_err(err)?;
    let probe = dir.join(".picket-write-probe");
    File::create(&probe).and_then(|f| f.sync_all()).map_err(err)?;
    fs::remove_file(&probe).map_err(err)
}

/// Loads the state from `dir`: `None` if there is none yet (a first start).
///
/// # Errors
/// [`PersistError::Read`] or [`PersistError::Corrupt`] if a state file exists but is unusable.
pub fn load(dir: &Path) -> Result<Option<DurableState>, PersistError> {
    let path = dir.join(STATE_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(PersistError::Read { path, source }),
    };
    toml::from_str(&text)
        .map(Some)
        .map_err(|e| PersistError::Corrupt { path, message: e.message().to_owned() })
}

/// Writes `state` to `dir` atomically and durably.
///
/// # Errors
/// [`PersistError::Write`] if any step fails; the previous state file is then left intact.
pub fn store(dir: &Path, state: &DurableState) -> Result<(), PersistError> {
    let body = toml::to_string(state).map_err(|e| PersistError::Encode(e.to_string()))?;
    let temp = dir.join(TEMP_FILE);
    let path = dir.join(STATE_FILE);
    let write = || -> io::Result<()> {
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&temp)?;
        file.write_all(HEADER.as_bytes())?;
        file.write_all(body.as_bytes())?;
        file.sync_all()?;
        fs::rename(&temp, &path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|source| PersistError::Write { path, source })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::engine::{DurableMaster, NodeId};

    fn state() -> DurableState {
        DurableState {
            node_id: NodeId::from_bytes([0xab; 20]),
            current_epoch: 7,
            vote_floor: 2,
            awaiting_vote_floor: false,
            masters: BTreeMap::from([(
                "session".to_owned(),
                DurableMaster {
                    configured_addr: "127.0.0.1:6379".parse().unwrap(),
                    addr: "127.0.0.1:6380".parse().unwrap(),
                    config_epoch: 7,
                    voted_epoch: 7,
                    voted_for: Some(NodeId::from_bytes([1; 20])),
                    replicas: vec!["127.0.0.1:6379".parse().unwrap()],
                    history: None,
                    priorities: BTreeMap::new(),
                    maintenance: crate::engine::gossip::Maintenance::default(),
                    monitored_quorum: None,
                    settings: BTreeMap::new(),
                },
            )]),
            removed: BTreeMap::new(),
            known_peers: BTreeMap::new(),
        }
    }

    #[test]
    fn round_trips_and_a_missing_file_is_a_first_start() {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path()).unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        store(dir.path(), &state()).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(state()));
        let text = fs::read_to_string(dir.path().join(STATE_FILE)).unwrap();
        assert!(text.starts_with("# Picket's durable state"));
        assert!(text.contains("abababababababababababababababababababab"));
        assert!(!dir.path().join(TEMP_FILE).exists());
    }

    #[test]
    fn a_corrupt_file_is_an_error_never_a_silent_reset() {
        let dir = tempfile::tempdir().unwrap();
        for garbage in ["", "current_epoch = \"x\"", "\u{0}\u{1}binary", "node_id = \"abc\"\n"] {
            fs::write(dir.path().join(STATE_FILE), garbage).unwrap();
            let err = load(dir.path()).unwrap_err();
            assert!(matches!(err, PersistError::Corrupt { .. }), "{garbage:?}: {err}");
            let text = err.to_string();
            assert!(
                text.contains("state.toml is corrupt") && text.contains("Refusing to start"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_leftover_temporary_file_does_not_matter() {
        let dir = tempfile::tempdir().unwrap();
        store(dir.path(), &state()).unwrap();
        fs::write(dir.path().join(TEMP_FILE), "half a write").unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(state()));
        store(dir.path(), &state()).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(state()));
    }

    #[test]
    fn an_unwritable_directory_is_reported_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        fs::write(&file, "").unwrap();
        let err = prepare(&file).unwrap_err();
        assert!(err.to_string().starts_with("state directory"), "{err}");
    }
}
