//! TLS handshakes with a time limit, and what a failed one says: a reason for the metrics and a
//! sentence for the log.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{AlertDescription, CertificateError, ClientConfig, Error, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

use crate::hub::{TlsEndpoint, TlsFailure, TlsStats};

/// How long a server waits for a client to finish its handshake: a client that opens a
/// connection and sends nothing holds a task, not the accept loop, and not for long.
pub const ACCEPT_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed handshake: why, and how to say it.
#[derive(Debug)]
pub struct HandshakeError {
    /// The reason, as counted in the metrics.
    pub failure: TlsFailure,
    message: String,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLS handshake failed ({}): {}", self.failure.as_str(), self.message)
    }
}

impl std::error::Error for HandshakeError {}

impl HandshakeError {
    fn from_io(error: &io::Error) -> Self {
        Self { failure: classify(error).unwrap_or(TlsFailure::Protocol), message: describe(error) }
    }

    fn timeout(limit: Duration) -> Self {
        Self {
            failure: TlsFailure::Timeout,
            message: format!("no complete handshake within {}s", limit.as_secs_f64()),
        }
    }
}

/// The server side of a handshake on `stream`, within [`ACCEPT_TIMEOUT`]; a failure is counted.
///
/// # Errors
/// The handshake failed or timed out.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    config: Arc<ServerConfig>,
    stream: S,
    endpoint: TlsEndpoint,
    stats: &TlsStats,
) -> Result<server::TlsStream<S>, HandshakeError> {
    let handshake = TlsAcceptor::from(config).accept(stream);
    let result = match tokio::time::timeout(ACCEPT_TIMEOUT, handshake).await {
        Ok(Ok(stream)) => return Ok(stream),
        Ok(Err(e)) => HandshakeError::from_io(&e),
        Err(_) => HandshakeError::timeout(ACCEPT_TIMEOUT),
    };
    stats.failed(endpoint, result.failure);
    Err(result)
}

/// The client side of a handshake on `stream` with the server named `name`; a failure is
/// counted. The caller bounds the time (a connection attempt has its own limit).
///
/// # Errors
/// The handshake failed.
pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    stream: S,
    endpoint: TlsEndpoint,
    stats: &TlsStats,
) -> Result<client::TlsStream<S>, HandshakeError> {
    TlsConnector::from(config).connect(name, stream).await.map_err(|e| {
        let error = HandshakeError::from_io(&e);
        stats.failed(endpoint, error.failure);
        error
    })
}

/// The TLS reason behind an I/O error, if it is a TLS error at all. In TLS 1.3 a server checks
/// the client's certificate after the client considers the handshake done, so a refusal of the
/// client's certificate surfaces at the client's first read: links classify those errors too.
#[must_use]
pub fn classify(error: &io::Error) -> Option<TlsFailure> {
    let tls = error.get_ref()?.downcast_ref::<Error>()?;
    Some(match tls {
        Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => TlsFailure::UnknownCa,
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                TlsFailure::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                TlsFailure::NotYetValid
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsFailure::NameMismatch
            }
            _ => TlsFailure::BadCertificate,
        },
        Error::NoCertificatesPresented => TlsFailure::NoClientCert,
        Error::AlertReceived(AlertDescription::CertificateRequired) => TlsFailure::NoClientCert,
        Error::AlertReceived(_) => TlsFailure::RefusedByPeer,
        _ => TlsFailure::Protocol,
    })
}

/// A sentence for the log: rustls's description, with what to check for the common cases.
fn describe(error: &io::Error) -> String {
    let hint = match classify(error) {
        Some(TlsFailure::UnknownCa) => {
            "; the certificate is not signed by any CA in the configured CA file"
        }
        Some(TlsFailure::Expired) => "; the certificate has expired",
        Some(TlsFailure::NameMismatch) => {
            "; the certificate does not name the host it was reached by"
        }
        Some(TlsFailure::NoClientCert) => "; a client certificate is required and none was given",
        Some(TlsFailure::RefusedByPeer) => "; the other side refused this side's certificate",
        _ => "",
    };
    format!("{error}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_error(error: Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }

    #[test]
    fn failures_are_classified_from_the_rustls_error_inside() {
        let cases = [
            (Error::InvalidCertificate(CertificateError::UnknownIssuer), TlsFailure::UnknownCa),
            (Error::InvalidCertificate(CertificateError::Expired), TlsFailure::Expired),
            (
                Error::InvalidCertificate(CertificateError::NotValidForName),
                TlsFailure::NameMismatch,
            ),
            (Error::InvalidCertificate(CertificateError::BadEncoding), TlsFailure::BadCertificate),
            (Error::NoCertificatesPresented, TlsFailure::NoClientCert),
            (Error::AlertReceived(AlertDescription::CertificateRequired), TlsFailure::NoClientCert),
            (Error::AlertReceived(AlertDescription::UnknownCA), TlsFailure::RefusedByPeer),
            (Error::HandshakeNotComplete, TlsFailure::Protocol),
        ];
        for (error, expected) in cases {
            assert_eq!(classify(&tls_error(error)), Some(expected));
        }
        let plain = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(classify(&plain), None);
        let error = HandshakeError::from_io(&tls_error(Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        )));
        assert_eq!(
            error.to_string(),
            "TLS handshake failed (unknown_ca): invalid peer certificate: UnknownIssuer; the \
             certificate is not signed by any CA in the configured CA file"
        );
    }
}
