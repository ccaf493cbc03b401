//! TLS for every connection Picket makes or accepts: links to monitored Redis instances, the
//! Sentinel port's and the HTTP API's TLS listeners, and gossip between peers.
//!
//! This module owns the certificates: it reads the PEM files the configuration names, builds
//! rustls configurations from them (ring provider, rustls's default protocol versions and
//! suites: TLS 1.2 and 1.3), watches the files and swaps new configurations in (`reload.rs`),
//! and performs handshakes with a time limit, counting and describing failures
//! (`handshake.rs`). It decides nothing about what runs over the connections: the link, peer,
//! Sentinel-port and HTTP modules take a [`Reloadable`] configuration and call [`accept`] or
//! [`connect`] on each new connection. It is a leaf of the shell, like `hub`: they all use it,
//! it uses none of them.
//!
//! What is verified where:
//! - Redis links: the instance's certificate against the master's `tls_ca_file` (or the
//!   platform's roots), for the host Picket connects to (or `tls_server_name`); with
//!   `tls_insecure_skip_verify`, nothing. A client certificate is offered when configured.
//! - `tls_listen` and `tls_http`: the node's certificate; clients' certificates against
//!   `[tls] ca_file` as `client_auth` says.
//! - Gossip: both directions present the node's certificate and check the other's against
//!   `ca_file`; the dialer checks the peer's certificate names the peer's configured host, and
//!   the acceptor that the client's certificate names one of the configured peers.

mod handshake;
mod pem;
mod reload;
mod verify;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};

use crate::config::{ClientAuth, Config, MasterTls, TlsConfig};
use crate::engine::{Addr, TlsProfile};
use crate::hub::TlsStats;

pub use self::handshake::{ACCEPT_TIMEOUT, HandshakeError, accept, classify, connect};
use self::reload::{CertificateSet, Install};
pub use self::reload::{RELOAD_CHECK, Reloadable, Reloader};
use self::verify::{InsecureServerVerifier, PeerClientVerifier};

/// The node's TLS configurations, built from `[tls]` and the masters' `tls_*` keys.
#[derive(Debug, Default)]
pub struct NodeTls {
    /// For `tls_listen` and `tls_http`, when either is set.
    pub server: Option<Arc<Reloadable<ServerConfig>>>,
    /// For gossip, with `[tls] peers = true`.
    pub peers: Option<PeerTls>,
    /// For links to masters with `tls = true` and their replicas.
    pub redis: RedisTls,
}

/// Gossip over mutual TLS.
#[derive(Clone, Debug)]
pub struct PeerTls {
    /// Accepting peers: the node's certificate; peers' certificates required.
    pub server: Arc<Reloadable<ServerConfig>>,
    /// Dialing peers: the node's certificate offered; the peer's verified.
    pub client: Arc<Reloadable<ClientConfig>>,
}

/// The client configurations of the masters with `tls = true`, by profile.
#[derive(Clone, Debug, Default)]
pub struct RedisTls {
    profiles: BTreeMap<TlsProfile, RedisProfile>,
}

#[derive(Clone, Debug)]
struct RedisProfile {
    config: Arc<Reloadable<ClientConfig>>,
    /// `tls_server_name`, replacing each instance's host in verification.
    server_name: Option<ServerName<'static>>,
}

impl RedisTls {
    /// What a link to `addr` with `profile` connects with: the configuration and the name the
    /// instance's certificate must carry.
    ///
    /// # Errors
    /// The profile is unknown (a master added at runtime cannot have one), or the host is not a
    /// valid server name.
    pub fn for_link(
        &self,
        profile: &TlsProfile,
        addr: &Addr,
    ) -> Result<(Arc<ClientConfig>, ServerName<'static>), String> {
        let found = self
            .profiles
            .get(profile)
            .ok_or_else(|| format!("no TLS settings for master {:?}", profile.0))?;
        let name = match &found.server_name {
            Some(name) => name.clone(),
            None => server_name(addr.host())?,
        };
        Ok((found.config.get(), name))
    }
}

/// `host` (a DNS name or an IP address) as a name to verify a certificate against.
///
/// # Errors
/// `host` is neither.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_owned())
        .map_err(|e| format!("{host:?} cannot be checked against a certificate: {e}"))
}

/// Builds every TLS configuration `config` asks for, and the [`Reloader`] that keeps them in
/// step with their files.
///
/// # Errors
/// A file cannot be read or is not what its key says (the message names the file), a key does
/// not match its certificate, or a configured peer's host cannot name a certificate.
pub fn load(config: &Config, stats: &Arc<TlsStats>) -> Result<(NodeTls, Reloader), String> {
    let mut node = NodeTls::default();
    let mut sets = Vec::new();
    if let Some(tls) = &config.tls {
        let servers = config.node.tls_listen.is_some() || config.node.tls_http.is_some();
        let built = node_certificates(tls, servers, &config.node.peers, stats)?;
        node.server = built.server;
        node.peers = built.peers;
        sets.push(built.set);
    }
    for (name, master) in &config.master_tls {
        let (profile, set) = master_certificates(name, master, stats)?;
        node.redis.profiles.insert(TlsProfile(name.clone()), profile);
        sets.push(set);
    }
    Ok((node, Reloader::new(sets, Arc::clone(stats))))
}

/// The ring provider, as the webhooks' client uses.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What `[tls]`'s files make, once.
struct NodeBuilt {
    /// For `tls_listen` and `tls_http`.
    server: Option<ServerConfig>,
    /// Gossip's acceptor and dialer.
    peers: Option<(ServerConfig, ClientConfig)>,
    fingerprint: String,
}

/// The node's configurations as loaded, and the set that reloads them.
struct NodeCertificates {
    server: Option<Arc<Reloadable<ServerConfig>>>,
    peers: Option<PeerTls>,
    set: CertificateSet,
}

/// The node's configurations, loaded now, and the set that reloads them.
fn node_certificates(
    tls: &TlsConfig,
    servers: bool,
    peers: &[Addr],
    stats: &TlsStats,
) -> Result<NodeCertificates, String> {
    let peer_names: Vec<ServerName<'static>> =
        peers.iter().map(|p| server_name(p.host())).collect::<Result<_, _>>()?;
    let mut paths = vec![tls.cert_file.clone(), tls.key_file.clone()];
    paths.extend(tls.ca_file.clone());
    let (cert_path, key_path) = (tls.cert_file.clone(), tls.key_file.clone());
    let (ca_path, client_auth, gossip) = (tls.ca_file.clone(), tls.client_auth, tls.peers);
    let build = move |files: &[Vec<u8>]| -> Result<NodeBuilt, String> {
        let in_key = |e: String| format!("{}: {e}", key_path.display());
        let chain = pem::certificates(&files[0], &cert_path)?;
        let key = pem::private_key(&files[1], &key_path)?;
        let roots = match (&ca_path, files.get(2)) {
            (Some(path), Some(bytes)) => Some(Arc::new(pem::roots(bytes, path)?)),
            _ => None,
        };
        let server = servers
            .then(|| {
                client_facing_server(chain.clone(), key.clone_key(), client_auth, roots.clone())
            })
            .transpose()
            .map_err(in_key)?;
        let peers = match (gossip, &roots) {
            (false, _) => None,
            (true, None) => return Err("gossip over TLS needs [tls] ca_file".to_owned()),
            (true, Some(roots)) => Some((
                peer_server(chain.clone(), key.clone_key(), roots, &peer_names).map_err(in_key)?,
                peer_client(chain.clone(), key.clone_key(), roots).map_err(in_key)?,
            )),
        };
        Ok(NodeBuilt { server, peers, fingerprint: fingerprint(&chain[0]) })
    };
    let first_files = reload::read_files(&paths)?;
    let first = build(&first_files)?;
    let server = first.server.map(Reloadable::new);
    let peer_tls = first.peers.map(|(server, client)| PeerTls {
        server: Reloadable::new(server),
        client: Reloadable::new(client),
    });
    let (server_target, peers_target) = (server.clone(), peer_tls.clone());
    let install: Install = Box::new(move |files| {
        // Swapped only once everything built: one set, one version.
        let built = build(files)?;
        if let (Some(target), Some(config)) = (&server_target, built.server) {
            target.set(config);
        }
        if let (Some(target), Some((server, client))) = (&peers_target, built.peers) {
            target.server.set(server);
            target.client.set(client);
        }
        Ok(Some(built.fingerprint))
    });
    let fingerprint = Some(first.fingerprint);
    let set =
        CertificateSet::loaded("node".to_owned(), paths, install, &first_files, fingerprint, stats);
    Ok(NodeCertificates { server, peers: peer_tls, set })
}

/// A master's client configuration, loaded now, and the set that reloads it (its CA file and
/// client certificate, if any).
fn master_certificates(
    name: &str,
    tls: &MasterTls,
    stats: &TlsStats,
) -> Result<(RedisProfile, CertificateSet), String> {
    let server_name = tls.server_name.as_deref().map(server_name).transpose()?;
    // The platform's roots are read once, at start.
    let platform = match (&tls.ca_file, tls.insecure_skip_verify) {
        (None, false) => Some(Arc::new(pem::platform_roots()?)),
        _ => None,
    };
    if tls.insecure_skip_verify {
        tracing::warn!(
            master = name,
            "tls_insecure_skip_verify: the certificates of this master's instances are NOT verified; its links are encrypted, but anyone on the path can impersonate its instances"
        );
    }
    let mut paths = Vec::new();
    paths.extend(tls.ca_file.clone());
    let identity_paths = tls.cert_file.clone().zip(tls.key_file.clone());
    if let Some((cert, key)) = &identity_paths {
        paths.extend([cert.clone(), key.clone()]);
    }
    let ca_path = tls.ca_file.clone();
    let build = move |files: &[Vec<u8>]| -> Result<(ClientConfig, Option<String>), String> {
        let mut files = files.iter();
        let mut next = || files.next().ok_or_else(|| "a file is missing".to_owned());
        let roots = match (&ca_path, &platform) {
            (Some(path), _) => Some(Arc::new(pem::roots(next()?, path)?)),
            (None, platform) => platform.clone(),
        };
        let identity = match &identity_paths {
            Some((cert_path, key_path)) => {
                let chain = pem::certificates(next()?, cert_path)?;
                Some((chain, pem::private_key(next()?, key_path)?, key_path))
            }
            None => None,
        };
        let fingerprint = identity.as_ref().map(|(chain, _, _)| fingerprint(&chain[0]));
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = match roots {
            Some(roots) => builder.with_root_certificates(roots),
            // Only with tls_insecure_skip_verify (else there is a CA file or the platform's).
            None => builder.dangerous().with_custom_certificate_verifier(Arc::new(
                InsecureServerVerifier { provider: provider() },
            )),
        };
        let config = match identity {
            Some((chain, key, key_path)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("{}: {e}", key_path.display()))?,
            None => builder.with_no_client_auth(),
        };
        Ok((config, fingerprint))
    };
    let first_files = reload::read_files(&paths)?;
    let (first, fingerprint) = build(&first_files)?;
    let config = Reloadable::new(first);
    let target = Arc::clone(&config);
    let install: Install = Box::new(move |files| {
        let (built, fingerprint) = build(files)?;
        target.set(built);
        Ok(fingerprint)
    });
    let name = format!("master {name}");
    let set = CertificateSet::loaded(name, paths, install, &first_files, fingerprint, stats);
    Ok((RedisProfile { config, server_name }, set))
}

/// The server configuration of `tls_listen` and `tls_http`.
fn client_facing_server(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_auth: ClientAuth,
    roots: Option<Arc<RootCertStore>>,
) -> Result<ServerConfig, String> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match (client_auth, roots) {
        (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
        (auth, Some(roots)) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider());
            let verifier = if auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| e.to_string())?)
        }
    };
    builder.with_single_cert(chain, key).map_err(|e| e.to_string())
}

/// The gossip acceptor's configuration: a client certificate signed by `roots` and valid for a
/// configured peer is required.
fn peer_server(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: &Arc<RootCertStore>,
    peers: &[ServerName<'static>],
) -> Result<ServerConfig, String> {
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::clone(roots), provider())
        .build()
        .map_err(|e| e.to_string())?;
    let verifier = Arc::new(PeerClientVerifier { inner, peers: peers.to_vec() });
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())
}

/// The gossip dialer's configuration: the node's certificate offered, the peer's verified.
fn peer_client(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: &Arc<RootCertStore>,
) -> Result<ClientConfig, String> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(Arc::clone(roots))
        .with_client_auth_cert(chain, key)
        .map_err(|e| e.to_string())
}

/// Hex SHA-256 of a certificate, as `openssl x509 -fingerprint -sha256` shows it (without
/// colons, lower case).
#[must_use]
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref()).iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// A self-signed certificate for `name` and its key, as PEM.
    fn certificate(name: &str) -> (String, String) {
        let made = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        (made.cert.pem(), made.signing_key.serialize_pem())
    }

    fn config(dir: &Path) -> Config {
        let text = format!(
            "[node]\ntls_listen = \"127.0.0.1:26389\"\ngossip = \"127.0.0.1:26380\"\n\
             http = \"127.0.0.1:26381\"\nstate_dir = \"{0}/state\"\n\n\
             [tls]\ncert_file = \"{0}/node.pem\"\nkey_file = \"{0}/node.key\"\n\n\
             [[master]]\nname = \"m\"\naddress = \"127.0.0.1:6379\"\nquorum = 1\n",
            dir.display()
        );
        crate::config::parse(&text, Path::new("picket.toml")).unwrap()
    }

    fn write(dir: &Path, (cert, key): &(String, String)) {
        std::fs::write(dir.join("node.key"), key).unwrap();
        std::fs::write(dir.join("node.pem"), cert).unwrap();
    }

    fn leaf_fingerprint(cert_pem: &str) -> String {
        use rustls::pki_types::pem::PemObject;
        fingerprint(&CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap())
    }

    #[test]
    fn a_set_that_fails_to_load_keeps_its_configuration_until_its_files_change_again() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (certificate("127.0.0.1"), certificate("127.0.0.1"));
        write(dir.path(), &a);
        let stats = Arc::new(TlsStats::default());
        let (node, reloader) = load(&config(dir.path()), &stats).unwrap();
        let server = node.server.unwrap();
        let state = |stats: &TlsStats| stats.certificates()["node"].clone();
        assert_eq!(state(&stats).fingerprint, Some(leaf_fingerprint(&a.0)));
        let first = server.get();

        // The new key is written before its certificate: the pair does not match.
        std::fs::write(dir.path().join("node.key"), &b.1).unwrap();
        reloader.check(false);
        reloader.check(false);
        assert_eq!((state(&stats).reloads, state(&stats).reload_failures), (0, 1), "once");
        assert!(Arc::ptr_eq(&first, &server.get()), "the previous configuration stays");
        // The certificate follows: loaded.
        std::fs::write(dir.path().join("node.pem"), &b.0).unwrap();
        reloader.check(false);
        assert_eq!((state(&stats).reloads, state(&stats).reload_failures), (1, 1));
        assert_eq!(state(&stats).fingerprint, Some(leaf_fingerprint(&b.0)));
        assert!(!Arc::ptr_eq(&first, &server.get()), "new connections get the new one");
        // Unchanged files are not reloaded, unless forced (SIGHUP).
        reloader.check(false);
        assert_eq!(state(&stats).reloads, 1);
        reloader.check(true);
        assert_eq!(state(&stats).reloads, 2);
        // A file that disappears: one failure, and the configuration stays.
        let kept = server.get();
        std::fs::remove_file(dir.path().join("node.pem")).unwrap();
        reloader.check(false);
        reloader.check(false);
        assert_eq!(state(&stats).reload_failures, 2);
        assert!(Arc::ptr_eq(&kept, &server.get()));
    }

    #[test]
    fn loading_at_start_names_the_file_at_fault() {
        let dir = tempfile::tempdir().unwrap();
        let stats = Arc::new(TlsStats::default());
        let err = load(&config(dir.path()), &stats).unwrap_err();
        assert!(
            err.starts_with(&format!("cannot read {}/node.pem", dir.path().display())),
            "{err}"
        );
        let (cert, _) = certificate("127.0.0.1");
        let (_, other_key) = certificate("127.0.0.1");
        write(dir.path(), &(cert, other_key));
        let err = load(&config(dir.path()), &stats).unwrap_err();
        assert!(err.starts_with(&format!("{}/node.key: ", dir.path().display())), "{err}");
    }
}
