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
//! Integrity: the last line is a SHA-256 checksum of everything before it, verified on load, and
//! the state must pass [`DurableState::check`] (epochs ordered, votes not above the current
//! epoch). A file without a checksum line (written by an older Picket) is accepted if it passes
//! the invariants; the next write adds the checksum. A file whose checksum does not match was
//! changed or damaged after Picket wrote it and stops the node like any corrupt file.
//!
//! Confidentiality: the file and its temporary file are created with mode 0600, and no secret is
//! written in clear. The only secret the state holds is an `auth-pass` set with `SENTINEL SET`
//! (and the configuration's value it replaced): both are sealed with ChaCha20-Poly1305 under a
//! key derived from the peer secret ([`StateKey`]). Without a peer secret such a change is kept
//! in memory only and left out of the file, with a warning: after a restart the configuration's
//! password applies again.
//!
//! The file is separate from the operator's configuration, which Picket never writes (unlike
//! Sentinel's rewrite of `sentinel.conf`, which breaks on read-only ConfigMaps and bind mounts).

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Salt};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

use crate::engine::DurableState;

/// The state file's name inside `state_dir`.
pub const STATE_FILE: &str = "state.toml";
const TEMP_FILE: &str = "state.toml.tmp";
/// The state file's permissions: it holds the node's votes, and sealed secrets.
const MODE: u32 = 0o600;
/// The checksum line's prefix; the hex SHA-256 of every byte before the line follows.
const CHECKSUM: &str = "# sha256 ";
/// The `SENTINEL SET` options whose values are secrets.
const SECRET_OPTIONS: [&str; 1] = ["auth-pass"];
/// The prefix of a sealed value: hex nonce, then hex ciphertext and tag.
const SEALED: &str = "sealed:v1:";
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

/// The key that seals secrets in the state file, derived from the peer secret with HKDF-SHA256
/// (ring, already here for TLS): every node of a cluster shares it, and an operator who restores
/// a node's state directory onto a new machine with the same configuration can read it.
#[derive(Clone)]
pub struct StateKey([u8; 32]);

impl StateKey {
    /// Derives the key from the configured peer secret.
    #[must_use]
    pub fn from_peer_secret(secret: &[u8]) -> Self {
        struct Len;
        impl ring::hkdf::KeyType for Len {
            fn len(&self) -> usize {
                32
            }
        }
        let mut key = [0u8; 32];
        Salt::new(HKDF_SHA256, b"picket state file")
            .extract(secret)
            .expand(&[b"sentinel set secrets v1"], Len)
            .and_then(|okm| okm.fill(&mut key))
            .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 output length"));
        Self(key)
    }

    fn aead(&self) -> LessSafeKey {
        let key = UnboundKey::new(&CHACHA20_POLY1305, &self.0)
            .unwrap_or_else(|_| unreachable!("32 bytes is ChaCha20-Poly1305's key length"));
        LessSafeKey::new(key)
    }

    /// Seals `value`, bound to `context` (master and field) so that it cannot be moved.
    fn seal(&self, value: &str, context: &str) -> Result<String, PersistError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| PersistError::Encode("no OS randomness to seal a secret".to_owned()))?;
        let mut sealed = value.as_bytes().to_vec();
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| PersistError::Encode("cannot seal a secret".to_owned()))?;
        Ok(format!("{SEALED}{}{}", hex(&nonce), hex(&sealed)))
    }

    /// Opens a value sealed by [`Self::seal`] with the same `context`.
    fn open(&self, sealed: &str, context: &str) -> Option<String> {
        let bytes = unhex(sealed.strip_prefix(SEALED)?)?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plain =
            self.aead().open_in_place(nonce, Aad::from(context.as_bytes()), &mut body).ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(<redacted>)")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

/// Where the state lives and the key that seals its secrets: what the daemon loads and stores
/// with.
#[derive(Clone, Debug)]
pub struct Store {
    /// The state directory.
    pub dir: PathBuf,
    /// The key for secrets; `None` without a peer secret (secrets are then not persisted).
    pub key: Option<StateKey>,
}

impl Store {
    /// Loads the state (see [`load`]).
    ///
    /// # Errors
    /// See [`load`].
    pub fn load(&self) -> Result<Option<DurableState>, PersistError> {
        load(&self.dir, self.key.as_ref())
    }

    /// Stores the state (see [`store`]).
    ///
    /// # Errors
    /// See [`store`].
    pub fn store(&self, state: &DurableState) -> Result<(), PersistError> {
        store(&self.dir, state, self.key.as_ref())
    }
}

/// Loads the state from `dir`: `None` if there is none yet (a first start). Sealed secrets are
/// opened with `key`; one that cannot be opened (the peer secret changed, or no key) is dropped
/// with a warning, and the configuration's value applies.
///
/// # Errors
/// [`PersistError::Read`] or [`PersistError::Corrupt`] if a state file exists but is unusable:
/// unreadable, a checksum that does not match, not valid state, or an impossible state (an
/// [`crate::engine::Inconsistency`]).
pub fn load(dir: &Path, key: Option<&StateKey>) -> Result<Option<DurableState>, PersistError> {
    let path = dir.join(STATE_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(PersistError::Read { path, source }),
    };
    let corrupt = |message: String| PersistError::Corrupt { path: path.clone(), message };
    let body = verify_checksum(&text).map_err(corrupt)?;
    let mut state: DurableState =
        toml::from_str(body).map_err(|e| corrupt(e.message().to_owned()))?;
    state.check().map_err(|e| corrupt(format!("impossible state: {e}")))?;
    open_secrets(&mut state, key, &path);
    Ok(Some(state))
}

/// The text the checksum covers, if the last line is a checksum that matches it; the whole text
/// if there is no checksum line (a file written before checksums).
fn verify_checksum(text: &str) -> Result<&str, String> {
    let trimmed = text.strip_suffix('\n').unwrap_or(text);
    let (body, last) = match trimmed.rfind('\n') {
        Some(i) => (&text[..=i], &trimmed[i + 1..]),
        None => ("", trimmed),
    };
    let Some(expected) = last.strip_prefix(CHECKSUM) else {
        if !text.is_empty() {
            tracing::info!(
                "the state file has no checksum (written by an older Picket); the next write adds one"
            );
        }
        return Ok(text);
    };
    let actual = hex(&Sha256::digest(body.as_bytes()));
    if expected.trim() == actual {
        Ok(body)
    } else {
        Err(format!(
            "checksum mismatch (the file says {}, its content hashes to {actual}): it was changed \
             or damaged after Picket wrote it",
            expected.trim()
        ))
    }
}

/// Opens the sealed secrets of `state` in place; drops those that cannot be opened.
fn open_secrets(state: &mut DurableState, key: Option<&StateKey>, path: &Path) {
    for (master, m) in &mut state.masters {
        for option in SECRET_OPTIONS {
            let Some(change) = m.settings.get_mut(option) else { continue };
            let context = format!("{master}/{option}");
            let open = |value: &str, field: &str| -> Option<String> {
                if !value.starts_with(SEALED) {
                    return Some(value.to_owned()); // written in clear by an older Picket
                }
                key?.open(value, &format!("{context}/{field}"))
            };
            let value = open(&change.value, "value");
            let file_value = match change.file_value.as_deref() {
                Some(v) => open(v, "file_value").map(Some),
                None => Some(None),
            };
            if let (Some(value), Some(file_value)) = (value, file_value) {
                change.value = value;
                change.file_value = file_value;
            } else {
                tracing::warn!(
                    master = %master,
                    option,
                    file = %path.display(),
                    "a secret set with SENTINEL SET cannot be decrypted (no peer secret, or it \
                     changed); using the configuration file's value: set it again"
                );
                m.settings.remove(option);
            }
        }
    }
}

/// `state` as written: secrets sealed with `key`, or left out without one.
fn sealed(state: &DurableState, key: Option<&StateKey>) -> Result<DurableState, PersistError> {
    static WARNED: AtomicBool = AtomicBool::new(false);
    let mut state = state.clone();
    for (master, m) in &mut state.masters {
        for option in SECRET_OPTIONS {
            let Some(change) = m.settings.get_mut(option) else { continue };
            let Some(key) = key else {
                if !WARNED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        master = %master,
                        option,
                        "SENTINEL SET auth-pass is kept in memory only: without a peer secret \
                         there is no key to encrypt it in the state file, and it is never written \
                         in clear. After a restart the configuration's password applies."
                    );
                }
                m.settings.remove(option);
                continue;
            };
            let context = format!("{master}/{option}");
            change.value = key.seal(&change.value, &format!("{context}/value"))?;
            if let Some(file_value) = &change.file_value {
                change.file_value = Some(key.seal(file_value, &format!("{context}/file_value"))?);
            }
        }
    }
    Ok(state)
}

/// Writes `state` to `dir` atomically and durably, mode 0600, with its checksum and its secrets
/// sealed with `key` (left out without one).
///
/// # Errors
/// [`PersistError::Write`] if any step fails; the previous state file is then left intact.
pub fn store(dir: &Path, state: &DurableState, key: Option<&StateKey>) -> Result<(), PersistError> {
    let state = sealed(state, key)?;
    let body = toml::to_string(&state).map_err(|e| PersistError::Encode(e.to_string()))?;
    let mut text = String::with_capacity(HEADER.len() + body.len() + 80);
    text.push_str(HEADER);
    text.push_str(&body);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let checksum = hex(&Sha256::digest(text.as_bytes()));
    let _ = writeln!(text, "{CHECKSUM}{checksum}");
    let temp = dir.join(TEMP_FILE);
    let path = dir.join(STATE_FILE);
    let write = || -> io::Result<()> {
        let mut file =
            OpenOptions::new().write(true).create(true).truncate(true).mode(MODE).open(&temp)?;
        // A temporary file left by an older Picket keeps its mode when reopened.
        file.set_permissions(fs::Permissions::from_mode(MODE))?;
        file.write_all(text.as_bytes())?;
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
        assert!(load(dir.path(), None).unwrap().is_none());
        store(dir.path(), &state(), None).unwrap();
        assert_eq!(load(dir.path(), None).unwrap(), Some(state()));
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
            let err = load(dir.path(), None).unwrap_err();
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
        store(dir.path(), &state(), None).unwrap();
        fs::write(dir.path().join(TEMP_FILE), "half a write").unwrap();
        assert_eq!(load(dir.path(), None).unwrap(), Some(state()));
        store(dir.path(), &state(), None).unwrap();
        assert_eq!(load(dir.path(), None).unwrap(), Some(state()));
    }

    fn with_password(state: &mut DurableState, file_value: Option<&str>, value: &str) {
        let m = state.masters.get_mut("session").unwrap();
        m.settings.insert(
            "auth-pass".to_owned(),
            crate::engine::SettingChange {
                file_value: file_value.map(str::to_owned),
                value: value.to_owned(),
            },
        );
    }

    #[test]
    fn the_file_is_private_and_checksummed() {
        let dir = tempfile::tempdir().unwrap();
        // A temporary file left world-readable does not make the new state world-readable.
        fs::write(dir.path().join(TEMP_FILE), "old").unwrap();
        fs::set_permissions(dir.path().join(TEMP_FILE), fs::Permissions::from_mode(0o644)).unwrap();
        store(dir.path(), &state(), None).unwrap();
        let path = dir.path().join(STATE_FILE);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let text = fs::read_to_string(&path).unwrap();
        let last = text.lines().last().unwrap();
        let covered = &text[..text.len() - last.len() - 1];
        assert_eq!(last, format!("# sha256 {}", hex(&Sha256::digest(covered.as_bytes()))));
        // One byte changed anywhere: refused, naming the file and the mismatch.
        let tampered = text.replacen("current_epoch = 7", "current_epoch = 8", 1);
        fs::write(&path, tampered).unwrap();
        let err = load(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("state.toml is corrupt: checksum mismatch"), "{err}");
    }

    #[test]
    fn an_older_file_without_checksum_loads_if_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let body = toml::to_string(&state()).unwrap();
        fs::write(dir.path().join(STATE_FILE), format!("{HEADER}{body}")).unwrap();
        assert_eq!(load(dir.path(), None).unwrap(), Some(state()));
    }

    #[test]
    fn an_impossible_state_is_refused_naming_the_file_and_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let mut impossible = state();
        impossible.current_epoch = 0;
        impossible.vote_floor = 0;
        let m = impossible.masters.get_mut("session").unwrap();
        (m.config_epoch, m.voted_epoch, m.voted_for) = (1, 0, None);
        // Written with a valid checksum: the checksum proves who wrote it, not that it is sane.
        store(dir.path(), &impossible, None).unwrap();
        let err = load(dir.path(), None).unwrap_err().to_string();
        let file = dir.path().join(STATE_FILE);
        assert!(
            err.starts_with(&format!(
                "state file {} is corrupt: impossible state: masters.session.config_epoch = 1 \
                 is above current_epoch = 0. Refusing to start",
                file.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn a_password_set_at_runtime_is_sealed_with_the_peer_secret() {
        let dir = tempfile::tempdir().unwrap();
        let key = StateKey::from_peer_secret(b"peer secret");
        let mut secret = state();
        with_password(&mut secret, Some("from-the-file"), "hunter2");
        store(dir.path(), &secret, Some(&key)).unwrap();
        let text = fs::read_to_string(dir.path().join(STATE_FILE)).unwrap();
        assert!(!text.contains("hunter2") && !text.contains("from-the-file"), "{text}");
        assert_eq!(text.matches("\"sealed:v1:").count(), 2, "{text}");
        assert_eq!(load(dir.path(), Some(&key)).unwrap(), Some(secret.clone()));
        // Another peer secret (or none) cannot open it: the change is dropped, the rest loads.
        for other in [Some(StateKey::from_peer_secret(b"another")), None] {
            assert_eq!(load(dir.path(), other.as_ref()).unwrap(), Some(state()));
        }
        // A sealed value moved to another master does not open there.
        let moved = text.replace("[masters.session", "[masters.elsewhere");
        fs::write(
            dir.path().join(STATE_FILE),
            moved.lines().filter(|l| !l.starts_with("# sha256")).collect::<Vec<_>>().join("\n"),
        )
        .unwrap();
        let loaded = load(dir.path(), Some(&key)).unwrap().unwrap();
        assert!(loaded.masters["elsewhere"].settings.is_empty());
    }

    #[test]
    fn without_a_peer_secret_a_password_is_not_written_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let mut secret = state();
        with_password(&mut secret, None, "hunter2");
        store(dir.path(), &secret, None).unwrap();
        let text = fs::read_to_string(dir.path().join(STATE_FILE)).unwrap();
        assert!(!text.contains("hunter2") && !text.contains("auth-pass"), "{text}");
        assert_eq!(load(dir.path(), None).unwrap(), Some(state()));
        // A password an older Picket wrote in clear still loads, and is sealed or dropped at the
        // next write.
        let body = toml::to_string(&secret).unwrap();
        fs::write(dir.path().join(STATE_FILE), body).unwrap();
        assert_eq!(load(dir.path(), None).unwrap(), Some(secret));
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
