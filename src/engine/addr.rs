//! Network addresses as the engine sees them: a host (IP literal or DNS name) and a port.
//!
//! The engine never resolves names; it compares addresses as written, case-insensitively for
//! names (host names are normalised to lower case when parsed). The shell resolves a name every
//! time it connects, so an instance or peer that comes back under the same name with a new IP is
//! still the same instance.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `host:port` pair. IPv6 literals are written `[addr]:port` and stored without brackets.
#[derive(Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct Addr {
    host: String,
    port: u16,
}

/// Why a string is not a usable `host:port` address.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
pub enum AddrError {
    /// No `:port` suffix.
    #[error("expected host:port, found {0:?}")]
    MissingPort(String),
    /// The port is not a number in 1..=65535.
    #[error("invalid port {0:?} (expected 1-65535)")]
    BadPort(String),
    /// The host part is empty or contains characters no host name or IP literal has.
    #[error("invalid host {0:?}")]
    BadHost(String),
}

impl Addr {
    /// Builds an address from a host and a port, validating and normalising the host.
    ///
    /// # Errors
    /// [`AddrError::BadHost`] for an empty host or one with characters outside host names and IP
    /// literals; [`AddrError::BadPort`] for port 0.
    pub fn new(host: &str, port: u16) -> Result<Self, AddrError> {
        if port == 0 {
            return Err(AddrError::BadPort("0".to_owned()));
        }
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let valid = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
        if !valid {
            return Err(AddrError::BadHost(host.to_owned()));
        }
        Ok(Self { host: host.to_ascii_lowercase(), port })
    }

    /// The host, without IPv6 brackets.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    #[must_use]
    pub const fn port(&self) -> u16 {
        self.port
    }

    /// Whether the host is an IPv6 literal (it then needs brackets in `host:port` form).
    #[must_use]
    pub fn is_ipv6(&self) -> bool {
        self.host.contains(':')
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_ipv6() {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Addr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, port) =
            s.rsplit_once(':').ok_or_else(|| AddrError::MissingPort(s.to_owned()))?;
        if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
            // An IPv6 literal without brackets: the port cannot be told apart from the address.
            return Err(AddrError::MissingPort(s.to_owned()));
        }
        let port: u16 = port.parse().map_err(|_| AddrError::BadPort(port.to_owned()))?;
        Self::new(host, port)
    }
}

impl Serialize for Addr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Addr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_ipv4_and_bracketed_ipv6() {
        let a: Addr = "Redis-Session:6379".parse().unwrap();
        assert_eq!((a.host(), a.port()), ("redis-session", 6379));
        assert_eq!(a.to_string(), "redis-session:6379");
        let b: Addr = "127.0.0.2:26380".parse().unwrap();
        assert_eq!(b.host(), "127.0.0.2");
        let c: Addr = "[::1]:6379".parse().unwrap();
        assert_eq!(c.host(), "::1");
        assert!(c.is_ipv6());
        assert_eq!(c.to_string(), "[::1]:6379");
    }

    #[test]
    fn rejects_malformed_addresses() {
        assert_eq!("localhost".parse::<Addr>(), Err(AddrError::MissingPort("localhost".into())));
        assert_eq!("h:0".parse::<Addr>(), Err(AddrError::BadPort("0".into())));
        assert_eq!("h:99999".parse::<Addr>(), Err(AddrError::BadPort("99999".into())));
        assert_eq!(":6379".parse::<Addr>(), Err(AddrError::BadHost(String::new())));
        assert_eq!("a b:1".parse::<Addr>(), Err(AddrError::BadHost("a b".into())));
        assert!("::1:6379".parse::<Addr>().is_err());
    }
}
