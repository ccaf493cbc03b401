//! Combining the configuration file with the state file at start (see [`crate::engine::admin`]
//! for the rule: the most recent change wins).

use std::collections::BTreeMap;

use crate::engine::admin::SetOption;
use crate::engine::durable::{DurableMaster, DurableState, SettingChange};
use crate::engine::settings::MasterSettings;

/// One master to supervise, with what the state file remembers about it.
#[derive(Debug)]
pub struct Restored {
    /// Effective settings: the file's (or `MONITOR`'s), with surviving `SET` changes applied.
    pub settings: MasterSettings,
    /// Durable facts (epochs, votes, current master, replicas).
    pub saved: Option<DurableMaster>,
    /// For a master added with `SENTINEL MONITOR`: its quorum.
    pub monitored_quorum: Option<u32>,
    /// The `SET` changes still in force.
    pub changes: BTreeMap<String, SettingChange>,
}

/// The masters to supervise: the file's (minus those removed at runtime whose entry has not
/// changed since), then those added with `SENTINEL MONITOR` that the file does not define.
#[must_use]
pub fn masters(file: Vec<MasterSettings>, state: Option<&DurableState>) -> Vec<Restored> {
    let empty = DurableState {
        node_id: crate::engine::ids::NodeId::from_bytes([0; 20]),
        current_epoch: 0,
        vote_floor: 0,
        awaiting_vote_floor: false,
        masters: BTreeMap::new(),
        removed: BTreeMap::new(),
        known_peers: BTreeMap::new(),
    };
    let state = state.unwrap_or(&empty);
    let mut out = Vec::new();
    for mut settings in file {
        if state.removed.get(&settings.name) == Some(&settings.addr) {
            tracing::info!(master = %settings.name, "removed with SENTINEL REMOVE; not supervised");
            continue;
        }
        // A master of the same name added with MONITOR is replaced by the file's.
        let saved = state.masters.get(&settings.name).filter(|m| m.monitored_quorum.is_none());
        let changes = saved.map(|m| apply(&mut settings, &m.settings, true)).unwrap_or_default();
        out.push(Restored { settings, saved: saved.cloned(), monitored_quorum: None, changes });
    }
    for (name, saved) in &state.masters {
        let Some(quorum) = saved.monitored_quorum else { continue };
        if out.iter().any(|r| r.settings.name == *name) {
            tracing::info!(master = %name, "defined in the configuration file; it replaces the one added with SENTINEL MONITOR");
            continue;
        }
        let mut settings = MasterSettings::new(name, saved.configured_addr.clone(), quorum);
        let changes = apply(&mut settings, &saved.settings, false);
        out.push(Restored {
            settings,
            saved: Some(saved.clone()),
            monitored_quorum: Some(quorum),
            changes,
        });
    }
    out
}

/// Applies the recorded `SET` changes that still hold; `from_file` masters drop a change whose
/// file value was edited since.
fn apply(
    settings: &mut MasterSettings,
    changes: &BTreeMap<String, SettingChange>,
    from_file: bool,
) -> BTreeMap<String, SettingChange> {
    let mut kept = BTreeMap::new();
    for (name, change) in changes {
        if from_file && change.file_value != SetOption::current(name, settings) {
            tracing::info!(master = %settings.name, option = %name, "the configuration file changed since SENTINEL SET; using the file's value");
            continue;
        }
        match SetOption::parse(name, &change.value) {
            Some(Ok(option)) => {
                option.apply(settings);
                kept.insert(name.clone(), change.clone());
            }
            _ => {
                tracing::warn!(master = %settings.name, option = %name, "ignoring an unreadable saved SENTINEL SET change")
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::addr::Addr;

    fn addr(s: &str) -> Addr {
        s.parse().unwrap()
    }

    fn saved(changes: &[(&str, Option<&str>, &str)], monitored: Option<u32>) -> DurableMaster {
        DurableMaster {
            configured_addr: addr("127.0.0.1:7000"),
            addr: addr("127.0.0.1:7000"),
            config_epoch: 0,
            voted_epoch: 0,
            voted_for: None,
            replicas: Vec::new(),
            history: None,
            priorities: BTreeMap::new(),
            maintenance: crate::engine::gossip::Maintenance::default(),
            monitored_quorum: monitored,
            settings: changes
                .iter()
                .map(|(n, f, v)| {
                    (
                        (*n).to_owned(),
                        SettingChange { file_value: f.map(str::to_owned), value: (*v).to_owned() },
                    )
                })
                .collect(),
        }
    }

    fn state(masters: Vec<(&str, DurableMaster)>, removed: &[(&str, &str)]) -> DurableState {
        DurableState {
            node_id: crate::engine::ids::NodeId::from_bytes([1; 20]),
            current_epoch: 3,
            vote_floor: 0,
            awaiting_vote_floor: false,
            masters: masters.into_iter().map(|(n, m)| (n.to_owned(), m)).collect(),
            removed: removed.iter().map(|(n, a)| ((*n).to_owned(), addr(a))).collect(),
            known_peers: BTreeMap::new(),
        }
    }

    #[test]
    fn a_set_survives_until_the_file_changes_that_option() {
        let file = MasterSettings::new("cache", addr("127.0.0.1:7000"), 2);
        let st = state(
            vec![("cache", saved(&[("down-after-milliseconds", Some("30000"), "5000")], None))],
            &[],
        );
        let restored = masters(vec![file.clone()], Some(&st));
        assert_eq!(restored[0].settings.down_after, Duration::from_millis(5000));
        let mut edited = file;
        edited.down_after = Duration::from_millis(8000);
        let restored = masters(vec![edited], Some(&st));
        assert_eq!(restored[0].settings.down_after, Duration::from_millis(8000));
        assert!(restored[0].changes.is_empty());
    }

    #[test]
    fn removed_masters_stay_removed_until_their_entry_changes() {
        let file = MasterSettings::new("cache", addr("127.0.0.1:7000"), 2);
        let st = state(Vec::new(), &[("cache", "127.0.0.1:7000")]);
        assert!(masters(vec![file], Some(&st)).is_empty());
        let moved = MasterSettings::new("cache", addr("127.0.0.1:7001"), 2);
        assert_eq!(masters(vec![moved], Some(&st)).len(), 1);
    }

    #[test]
    fn monitored_masters_come_back_unless_the_file_defines_them() {
        let st = state(vec![("extra", saved(&[("quorum", None, "1")], Some(2)))], &[]);
        let restored = masters(Vec::new(), Some(&st));
        assert_eq!(restored.len(), 1);
        assert_eq!(restored[0].settings.name, "extra");
        assert_eq!(restored[0].settings.quorum, 1);
        assert_eq!(restored[0].monitored_quorum, Some(2));
        let file = MasterSettings::new("extra", addr("127.0.0.1:9000"), 2);
        let restored = masters(vec![file], Some(&st));
        assert_eq!(restored.len(), 1);
        assert_eq!(restored[0].settings.addr, addr("127.0.0.1:9000"));
        assert!(restored[0].saved.is_none());
    }
}
