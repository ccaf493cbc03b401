//! Secrets in the configuration: written inline or kept in a file of their own, never printed.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::config::error::{ConfigError, Origin};

/// What `Debug`, `Display` and `picket check` show instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// Where a secret comes from: the `x = "..."` or the `x_file = "/path"` form of a key.
///
/// `Debug` and `Display` never show an inline value; a file's path is not secret and is shown.
#[derive(Clone, Eq, PartialEq)]
pub enum Secret {
    /// Written in the configuration file.
    Inline(String),
    /// Read from this file by [`crate::config::Config::resolve_secrets`]. A relative path is
    /// relative to the process's working directory, like every other path in the file.
    File(PathBuf),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inline(_) => write!(f, "Inline({REDACTED})"),
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inline(_) => f.write_str(REDACTED),
            Self::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

/// A configured secret: its [`Secret`] source, its value once known, and where the key was
/// written (so that a file that cannot be read is reported at its line).
///
/// An inline secret has its value from the start; a file secret gets it from
/// [`crate::config::Config::resolve_secrets`].
#[derive(Clone, Eq, PartialEq)]
pub struct SecretSetting {
    pub(crate) source: Secret,
    pub(crate) value: Option<String>,
    pub(crate) origin: Origin,
}

impl SecretSetting {
    /// A secret configured by `source` at `origin`.
    pub(crate) fn new(source: Secret, origin: Origin) -> Self {
        let value = match &source {
            Secret::Inline(value) => Some(value.clone()),
            Secret::File(_) => None,
        };
        Self { source, value, origin }
    }

    /// Where the secret comes from.
    #[must_use]
    pub const fn source(&self) -> &Secret {
        &self.source
    }

    /// The secret itself; `None` for a file secret that has not been resolved yet. Handle with
    /// care: never log it.
    #[must_use]
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// Reads a file secret with `read`, dropping one trailing newline (`\n` or `\r\n`, as editors
    /// and `echo` leave them). Inline secrets are left alone.
    pub(crate) fn resolve(
        &mut self,
        read: &mut impl FnMut(&Path) -> io::Result<String>,
        config: &Path,
    ) -> Result<(), ConfigError> {
        let Secret::File(file) = &self.source else { return Ok(()) };
        let error = |message| self.origin.error(config.to_owned(), message);
        let text = read(file).map_err(|e| error(format!("cannot read {}: {e}", file.display())))?;
        let value =
            text.strip_suffix('\n').map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
        if value.is_empty() {
            return Err(error(format!("{} is empty", file.display())));
        }
        self.value = Some(value.to_owned());
        Ok(())
    }
}

impl fmt::Debug for SecretSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretSetting")
            .field("source", &self.source)
            .field("resolved", &self.value.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin { line: 3, column: 1, key: "node: peer_secret_file".to_owned() }
    }

    #[test]
    fn debug_and_display_never_show_the_value() {
        let mut inline = SecretSetting::new(Secret::Inline("hunter2".to_owned()), origin());
        assert_eq!(inline.value(), Some("hunter2"));
        let mut file = SecretSetting::new(Secret::File("/run/s".into()), origin());
        file.value = Some("hunter2".to_owned());
        for text in [
            format!("{inline:?}"),
            format!("{file:?}"),
            inline.source().to_string(),
            format!("{:?}", inline.source()),
        ] {
            assert!(!text.contains("hunter2"), "{text}");
        }
        assert_eq!(inline.source().to_string(), "<redacted>");
        assert_eq!(file.source().to_string(), "file /run/s");
        assert_eq!(
            format!("{file:?}"),
            r#"SecretSetting { source: File("/run/s"), resolved: true, .. }"#
        );
        inline
            .resolve(&mut |_| panic!("inline secrets are not read"), Path::new("c.toml"))
            .unwrap();
    }

    #[test]
    fn resolving_trims_one_newline_and_reports_failures_at_the_key() {
        let config = Path::new("c.toml");
        let mut secret = SecretSetting::new(Secret::File("/run/s".into()), origin());
        assert_eq!(secret.value(), None);
        secret.resolve(&mut |_| Ok("abc\r\n\n".to_owned()), config).unwrap();
        assert_eq!(secret.value(), Some("abc\r\n"));
        secret.resolve(&mut |_| Ok("abc\r\n".to_owned()), config).unwrap();
        assert_eq!(secret.value(), Some("abc"));
        let err = secret.resolve(&mut |_| Ok("\n".to_owned()), config).unwrap_err();
        assert_eq!(err.to_string(), "c.toml:3:1: node: peer_secret_file: /run/s is empty");
        let err = secret
            .resolve(&mut |_| Err(io::Error::new(io::ErrorKind::NotFound, "no such file")), config)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "c.toml:3:1: node: peer_secret_file: cannot read /run/s: no such file"
        );
    }
}
