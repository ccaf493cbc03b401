//! Certificates, keys and trust roots from PEM files' bytes, with errors that name the file.

use std::path::Path;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The certificates of a PEM chain (leaf first), at least one.
pub(super) fn certificates(
    bytes: &[u8],
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate file: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: holds no PEM certificate", path.display()));
    }
    Ok(chain)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1). The error never quotes the file.
pub(super) fn private_key(bytes: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|e| {
        let why = match e {
            rustls::pki_types::pem::Error::NoItemsFound => "holds no PEM private key".to_owned(),
            // The other errors describe the PEM syntax; none of them quotes the key itself.
            other => format!("not a PEM private key file: {other}"),
        };
        format!("{}: {why}", path.display())
    })
}

/// A trust store of every certificate in a PEM bundle.
pub(super) fn roots(bytes: &[u8], path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(bytes, path)? {
        roots
            .add(cert)
            .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
    }
    Ok(roots)
}

/// The platform's trust store (what `openssl` and browsers trust), for instances with public
/// certificates. Loaded once: the operating system's bundle is not Picket's to watch.
pub(super) fn platform_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(format!(
            "the platform's trust store has no usable CA certificate ({}); set tls_ca_file",
            errors.join("; ")
        ));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file_and_never_quote_a_key() {
        let path = Path::new("/etc/picket/node.key");
        let err = private_key(b"not pem at all", path).unwrap_err();
        assert_eq!(err, "/etc/picket/node.key: holds no PEM private key");
        let broken = b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n";
        let err = private_key(broken, path).unwrap_err();
        assert!(err.starts_with("/etc/picket/node.key: not a PEM private key file"), "{err}");
        assert!(!err.contains("c2VjcmV0"), "{err}");
        let err = certificates(b"", Path::new("ca.pem")).unwrap_err();
        assert_eq!(err, "ca.pem: holds no PEM certificate");
    }
}
