//! Certificates that change under a running node: every file is re-read once a second (and at
//! once on SIGHUP); when a set's files changed, its TLS configurations are rebuilt and swapped in.
//! Connections already open keep the configuration they started with; new ones get the new one.
//!
//! Files are compared by content, not by modification time, so Kubernetes' symlink swaps of a
//! mounted Secret, `cp`, `mv` and editors all count. A set that fails to build (a certificate
//! replaced before its key, a typo) keeps the previous configuration; the failure is logged and
//! counted once per distinct content, and the set is tried again when a file changes again.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::hub::TlsStats;

/// How often the files are checked.
pub const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// A TLS configuration in use, replaced as a whole when its files change.
#[derive(Debug)]
pub struct Reloadable<T> {
    current: RwLock<Arc<T>>,
}

impl<T> Reloadable<T> {
    pub(super) fn new(value: T) -> Arc<Self> {
        Arc::new(Self { current: RwLock::new(Arc::new(value)) })
    }

    /// The configuration for a new connection.
    #[must_use]
    pub fn get(&self) -> Arc<T> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub(super) fn set(&self, value: T) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(value);
    }
}

/// Builds a set's configurations from its files' contents (in the order of its paths) and
/// installs them; returns the fingerprint of its leaf certificate, if it has one.
pub(super) type Install = Box<dyn Fn(&[Vec<u8>]) -> Result<Option<String>, String> + Send>;

/// Reads `paths`, in order; `Err` names the file that cannot be read.
pub(super) fn read_files(paths: &[PathBuf]) -> Result<Vec<Vec<u8>>, String> {
    paths
        .iter()
        .map(|path| std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display())))
        .collect()
}

/// A set of files that are loaded together (a certificate, its key, a CA bundle).
pub(super) struct CertificateSet {
    /// For logs and metrics: `node`, `master <name>`.
    name: String,
    paths: Vec<PathBuf>,
    install: Install,
    /// Digest of the contents last tried (loaded or refused).
    tried: [u8; 32],
}

impl CertificateSet {
    /// A set whose `first` contents were loaded at start (with leaf `fingerprint`).
    pub(super) fn loaded(
        name: String,
        paths: Vec<PathBuf>,
        install: Install,
        first: &[Vec<u8>],
        fingerprint: Option<String>,
        stats: &TlsStats,
    ) -> Self {
        stats.loaded(&name, fingerprint, true);
        Self { name, paths, install, tried: digest(first) }
    }

    /// Reloads the set if its files changed since the last attempt, or if `force`d.
    fn check(&mut self, force: bool, stats: &TlsStats) {
        let contents = match read_files(&self.paths) {
            Ok(contents) => contents,
            Err(e) => {
                // A file being replaced can be missing for an instant: say it once per cause.
                let marker = digest(&[e.clone().into_bytes()]);
                if marker != self.tried {
                    self.tried = marker;
                    stats.reload_failed(&self.name);
                    tracing::warn!(certificates = %self.name, error = %e,
                        "TLS certificates not reloaded; the previous ones stay in use");
                }
                return;
            }
        };
        let now = digest(&contents);
        if now == self.tried && !force {
            return;
        }
        self.tried = now;
        match (self.install)(&contents) {
            Ok(fingerprint) => {
                tracing::info!(certificates = %self.name, sha256 = fingerprint.as_deref().unwrap_or("-"),
                    "TLS certificates reloaded; new connections use them");
                stats.loaded(&self.name, fingerprint, false);
            }
            Err(e) => {
                stats.reload_failed(&self.name);
                tracing::warn!(certificates = %self.name, error = %e,
                    "TLS certificates not reloaded; the previous ones stay in use");
            }
        }
    }
}

/// Every certificate set of the node, checked together.
pub struct Reloader {
    sets: Mutex<Vec<CertificateSet>>,
    stats: Arc<TlsStats>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sets = self.sets.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_list().entries(sets.iter().map(|set| &set.name)).finish()
    }
}

impl Reloader {
    pub(super) fn new(sets: Vec<CertificateSet>, stats: Arc<TlsStats>) -> Self {
        Self { sets: Mutex::new(sets), stats }
    }

    /// Checks every set now (blocking: it reads files); `force` rebuilds unchanged ones too.
    pub fn check(&self, force: bool) {
        let mut sets = self.sets.lock().unwrap_or_else(PoisonError::into_inner);
        for set in sets.iter_mut() {
            set.check(force, &self.stats);
        }
    }

    /// Checks the files every [`RELOAD_CHECK`] and on every SIGHUP, until the runtime stops.
    pub async fn run(self: Arc<Self>) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => Some(hangup),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGHUP; certificates are still re-read every second");
                None
            }
        };
        let mut tick = tokio::time::interval(RELOAD_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let force = tokio::select! {
                _ = tick.tick() => false,
                Some(()) = async {
                    match hangup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    tracing::info!("SIGHUP: reloading TLS certificates");
                    true
                }
            };
            let reloader = Arc::clone(&self);
            if tokio::task::spawn_blocking(move || reloader.check(force)).await.is_err() {
                return;
            }
        }
    }
}

fn digest(contents: &[Vec<u8>]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for file in contents {
        hash.update((file.len() as u64).to_be_bytes());
        hash.update(file);
    }
    hash.finalize().into()
}
