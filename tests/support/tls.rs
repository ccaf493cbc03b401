//! Certificates for TLS tests, made per test with rcgen: CAs, leaf certificates for hosts and
//! clients, expired and wrongly named ones. Files are written atomically (a temporary file
//! renamed over the target), as a rotation tool would.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, date_time_ymd,
};
use tempfile::TempDir;

/// A certificate authority and the directory its files are written to.
pub struct Pki {
    dir: TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    /// The CA's certificate (PEM).
    pub ca_file: PathBuf,
}

/// A certificate and its private key, as files.
#[derive(Clone, Debug)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// When a certificate is valid.
#[derive(Clone, Copy, Debug)]
pub enum Validity {
    /// From 2020 to 2100.
    Current,
    /// From 2020 to 2021: expired.
    Expired,
}

impl Pki {
    /// A new CA named `name`, its certificate written to `<name>-ca.pem`.
    pub fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = dn(&format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2100, 1, 1);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let ca_file = dir.path().join(format!("{name}-ca.pem"));
        write_atomically(&ca_file, &ca.pem());
        Self { dir, ca, ca_file }
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A current certificate for `names` (host names or IP addresses), usable by servers and
    /// clients, written to `<stem>.pem` and `<stem>.key`.
    pub fn issue(&self, stem: &str, names: &[&str]) -> Pair {
        self.issue_with(stem, names, Validity::Current)
    }

    /// Like [`Self::issue`], valid as `validity` says.
    pub fn issue_with(&self, stem: &str, names: &[&str], validity: Validity) -> Pair {
        let pair = Pair {
            cert: self.dir.path().join(format!("{stem}.pem")),
            key: self.dir.path().join(format!("{stem}.key")),
        };
        self.issue_to(&pair, names, validity);
        pair
    }

    /// Writes a new certificate (and key) for `names` over `pair`'s files: the key first, then
    /// the certificate, each file replaced atomically, as a rotation tool would.
    pub fn issue_to(&self, pair: &Pair, names: &[&str], validity: Validity) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params.distinguished_name = dn(names.first().map_or("client", String::as_str));
        params.key_usages =
            vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let (from, to) = match validity {
            Validity::Current => (date_time_ymd(2020, 1, 1), date_time_ymd(2100, 1, 1)),
            Validity::Expired => (date_time_ymd(2020, 1, 1), date_time_ymd(2021, 1, 1)),
        };
        params.not_before = from;
        params.not_after = to;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        write_atomically(&pair.key, &key.serialize_pem());
        write_atomically(&pair.cert, &cert.pem());
    }
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Writes `text` to a temporary file beside `path`, then renames it over `path`.
pub fn write_atomically(path: &Path, text: &str) {
    let temp = path.with_extension("tmp");
    fs::write(&temp, text).unwrap();
    fs::rename(&temp, path).unwrap();
}

/// The hex SHA-256 of the first certificate in a PEM file, as Picket's metrics show it.
pub fn fingerprint(cert_file: &Path) -> String {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::pem_file_iter(cert_file).unwrap().next().unwrap().unwrap();
    picket::tls::fingerprint(&der)
}

/// The SHA-256 fingerprint of the certificate a TLS server at `addr` presents, read with a
/// handshake that trusts `ca_file` and offers `client` (if given).
pub fn served_fingerprint(
    addr: &str,
    ca_file: &Path,
    client: Option<&Pair>,
) -> Result<String, String> {
    use std::io::Write as _;
    use std::net::TcpStream;
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(pair) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_file_iter(&pair.cert).unwrap().map(Result::unwrap).collect();
            let key = PrivateKeyDer::from_pem_file(&pair.key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let host = addr.rsplit_once(':').unwrap().0.to_owned();
    let name = ServerName::try_from(host).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
    }
    let _ = sock.flush();
    let leaf = conn.peer_certificates().and_then(|c| c.first()).ok_or("no certificate")?;
    Ok(picket::tls::fingerprint(leaf))
}
