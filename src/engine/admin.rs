//! Runtime changes an operator makes through the Sentinel port: `SENTINEL SET` options, and how
//! they survive restarts beside the configuration file.
//!
//! The file is the operator's and Picket never writes it. Changes made at runtime
//! (`SENTINEL MONITOR`, `REMOVE`, `SET`) are kept in the state file and reapplied on top of the
//! file at every start, with one rule so that neither side silently wins: **the most recent change
//! wins**. A `SET` remembers the file's value it replaced; if the file says something else at the
//! next start, the operator edited the file afterwards, and the file's value is used. The same
//! holds for `REMOVE` (the master comes back if its entry in the file changed) and `MONITOR` (a
//! master of the same name added to the file replaces the monitored one).

use std::time::Duration;

use crate::engine::settings::{Credentials, MasterSettings};

/// A `SENTINEL SET` option and its new value, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetOption {
    /// `down-after-milliseconds`.
    DownAfter(Duration),
    /// `failover-timeout`.
    FailoverTimeout(Duration),
    /// `parallel-syncs`.
    ParallelSyncs(u32),
    /// `quorum`.
    Quorum(u32),
    /// `auth-pass` (empty = none).
    AuthPass(Option<String>),
    /// `auth-user` (empty = none).
    AuthUser(Option<String>),
    /// `master-reboot-down-after-period` (0 = off).
    RebootDownAfter(Option<Duration>),
    /// `down-after-refused-milliseconds` (Picket's crash rule, `down_after_refused_ms`; 0 = off).
    DownAfterRefused(Option<Duration>),
}

/// The option names `SENTINEL SET` accepts, as Sentinel spells them.
pub const SET_OPTIONS: [&str; 8] = [
    "down-after-milliseconds",
    "failover-timeout",
    "parallel-syncs",
    "quorum",
    "auth-pass",
    "auth-user",
    "master-reboot-down-after-period",
    "down-after-refused-milliseconds",
];

impl SetOption {
    /// Parses `value` for option `name` (case-insensitive), with Sentinel's error texts:
    /// `None` for an unknown option, `Some(Err(_))` for a bad value.
    #[must_use]
    pub fn parse(name: &str, value: &str) -> Option<Result<Self, String>> {
        let name = name.to_ascii_lowercase();
        let invalid = || format!("ERR Invalid argument '{value}' for SENTINEL SET '{name}'");
        let positive = || value.parse::<u64>().ok().filter(|v| *v > 0).ok_or_else(invalid);
        let text = || (!value.is_empty()).then(|| value.to_owned());
        let optional_millis = || {
            value
                .parse::<u64>()
                .map(|v| (v > 0).then(|| Duration::from_millis(v)))
                .map_err(|_| invalid())
        };
        let parsed = match name.as_str() {
            "down-after-milliseconds" => {
                positive().map(|v| Self::DownAfter(Duration::from_millis(v)))
            }
            "failover-timeout" => {
                positive().map(|v| Self::FailoverTimeout(Duration::from_millis(v)))
            }
            "parallel-syncs" => positive()
                .and_then(|v| u32::try_from(v).map_err(|_| invalid()))
                .map(Self::ParallelSyncs),
            "quorum" => {
                positive().and_then(|v| u32::try_from(v).map_err(|_| invalid())).map(Self::Quorum)
            }
            "auth-pass" => Ok(Self::AuthPass(text())),
            "auth-user" => Ok(Self::AuthUser(text())),
            "master-reboot-down-after-period" | "primary-reboot-down-after-period" => {
                optional_millis().map(Self::RebootDownAfter)
            }
            "down-after-refused-milliseconds" => optional_millis().map(Self::DownAfterRefused),
            _ => return None,
        };
        Some(parsed)
    }

    /// The option's name.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::DownAfter(_) => "down-after-milliseconds",
            Self::FailoverTimeout(_) => "failover-timeout",
            Self::ParallelSyncs(_) => "parallel-syncs",
            Self::Quorum(_) => "quorum",
            Self::AuthPass(_) => "auth-pass",
            Self::AuthUser(_) => "auth-user",
            Self::RebootDownAfter(_) => "master-reboot-down-after-period",
            Self::DownAfterRefused(_) => "down-after-refused-milliseconds",
        }
    }

    /// The value as `SENTINEL SET` takes it (and as it is persisted).
    #[must_use]
    pub fn value(&self) -> String {
        match self {
            Self::DownAfter(d) | Self::FailoverTimeout(d) => d.as_millis().to_string(),
            Self::ParallelSyncs(n) | Self::Quorum(n) => n.to_string(),
            Self::AuthPass(v) | Self::AuthUser(v) => v.clone().unwrap_or_default(),
            Self::RebootDownAfter(d) | Self::DownAfterRefused(d) => {
                d.map_or(0, |d| d.as_millis()).to_string()
            }
        }
    }

    /// The value as `+set` shows it: passwords hidden, as Sentinel does.
    #[must_use]
    pub fn shown_value(&self) -> String {
        match self {
            Self::AuthPass(_) => "******".to_owned(),
            _ => self.value(),
        }
    }

    /// The current value of option `name` in `settings`, in the same form as [`Self::value`].
    #[must_use]
    pub fn current(name: &str, settings: &MasterSettings) -> Option<String> {
        let auth = settings.auth.as_ref();
        let option = match name {
            "down-after-milliseconds" => Self::DownAfter(settings.down_after),
            "failover-timeout" => Self::FailoverTimeout(settings.failover_timeout),
            "parallel-syncs" => Self::ParallelSyncs(settings.parallel_syncs),
            "quorum" => Self::Quorum(settings.quorum),
            "auth-pass" => Self::AuthPass(auth.map(|a| a.password.clone())),
            "auth-user" => Self::AuthUser(auth.and_then(|a| a.user.clone())),
            "master-reboot-down-after-period" => Self::RebootDownAfter(settings.reboot_down_after),
            "down-after-refused-milliseconds" => {
                Self::DownAfterRefused(settings.down_after_refused)
            }
            _ => return None,
        };
        Some(option.value())
    }

    /// Applies the option to `settings`.
    pub fn apply(&self, settings: &mut MasterSettings) {
        match self {
            Self::DownAfter(d) => settings.down_after = *d,
            Self::FailoverTimeout(d) => settings.failover_timeout = *d,
            Self::ParallelSyncs(n) => settings.parallel_syncs = *n,
            Self::Quorum(n) => settings.quorum = *n,
            Self::AuthPass(password) => {
                let user = settings.auth.as_ref().and_then(|a| a.user.clone());
                settings.auth = password.clone().map(|password| Credentials { user, password });
            }
            Self::AuthUser(user) => {
                if let Some(auth) = &mut settings.auth {
                    auth.user.clone_from(user);
                }
            }
            Self::RebootDownAfter(d) => settings.reboot_down_after = *d,
            Self::DownAfterRefused(d) => settings.down_after_refused = *d,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::addr::Addr;

    #[test]
    fn options_parse_with_sentinels_errors_and_apply() {
        let mut m = MasterSettings::new("m", "127.0.0.1:6379".parse::<Addr>().unwrap(), 2);
        let q = SetOption::parse("QUORUM", "3").unwrap().unwrap();
        q.apply(&mut m);
        assert_eq!(m.quorum, 3);
        assert_eq!(SetOption::current("quorum", &m).as_deref(), Some("3"));
        assert_eq!(
            SetOption::parse("quorum", "0"),
            Some(Err("ERR Invalid argument '0' for SENTINEL SET 'quorum'".into()))
        );
        assert_eq!(SetOption::parse("nope", "1"), None);
        SetOption::parse("auth-pass", "s3cret").unwrap().unwrap().apply(&mut m);
        SetOption::parse("auth-user", "app").unwrap().unwrap().apply(&mut m);
        assert_eq!(
            m.auth,
            Some(Credentials { user: Some("app".into()), password: "s3cret".into() })
        );
        let clear = SetOption::parse("auth-pass", "").unwrap().unwrap();
        assert_eq!(clear.shown_value(), "******");
        clear.apply(&mut m);
        assert_eq!(m.auth, None);
        SetOption::parse("master-reboot-down-after-period", "0").unwrap().unwrap().apply(&mut m);
        assert_eq!(m.reboot_down_after, None);
        let crash = SetOption::parse("down-after-refused-milliseconds", "150").unwrap().unwrap();
        crash.apply(&mut m);
        assert_eq!(m.down_after_refused, Some(Duration::from_millis(150)));
        assert_eq!(
            SetOption::current("down-after-refused-milliseconds", &m).as_deref(),
            Some("150")
        );
        SetOption::parse("down-after-refused-milliseconds", "0").unwrap().unwrap().apply(&mut m);
        assert_eq!(m.down_after_refused, None);
        assert_eq!(
            SetOption::parse("down-after-refused-milliseconds", "-1"),
            Some(Err(
                "ERR Invalid argument '-1' for SENTINEL SET 'down-after-refused-milliseconds'"
                    .into()
            ))
        );
    }
}
