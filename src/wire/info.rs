//! The text of a Redis `INFO` reply, parsed into an [`InfoReport`].
//!
//! This module owns the mapping from Redis's `key:value` lines to the typed fields the engine acts
//! on, and the leniency rules for replies that are odd but still INFO. It reads text it is given
//! and nothing else: no socket, no clock. It must not make decisions (whether a replica is
//! eligible, whether a run id change is a reboot): those belong to the engine, which sees only the
//! [`InfoReport`].
//!
//! # Leniency
//!
//! A monitored instance is not trusted to be well-formed, but one odd line must not blind the
//! engine to the rest of the reply. So, like Sentinel, the parser only fails when the text cannot
//! be an INFO reply at all (no `role:` line, or a role other than `master`/`slave`). Everything
//! else degrades field by field: an unparsable number takes the field's default, an unparsable
//! `slaveN:` line is skipped, unknown keys and lines without a `:` are ignored. When a key appears
//! twice, the last value wins.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::{Addr, InfoReport, ListedReplica, ReplicaLink, ReportedRole};

/// Replica priority when the reply has neither `slave_priority` nor `replica_priority` (Redis's own
/// default).
pub const DEFAULT_REPLICA_PRIORITY: u32 = 100;

/// How much of an unknown role is kept in [`InfoError::UnknownRole`]: enough to recognise it in a
/// log line, not enough for a misbehaving peer to flood the log.
const MAX_ROLE_IN_ERROR: usize = 32;

/// Why a reply cannot be read as INFO at all.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
pub enum InfoError {
    /// No `role:` line: whatever this is, it is not an INFO reply with a replication section.
    #[error("INFO reply has no role line")]
    MissingRole,
    /// A role other than `master` or `slave` (truncated to a few dozen characters).
    #[error("INFO reply has unknown role {0:?}")]
    UnknownRole(String),
}

/// Parses the text of an `INFO` reply (all default sections, or at least `server` and
/// `replication`).
///
/// Lines end in `\r\n` as Redis sends them; bare `\n` is accepted too. See the module docs for how
/// odd lines are treated, and [`InfoReport`] for the fields. `master_link_down_since_seconds` maps
/// to [`ReplicaLink::link_down_for`] when it is a non-negative number of seconds. Redis prints `-1`
/// when the link has not come up since the replica was pointed at its master (it has never synced
/// with it); that, like any other negative or unparsable value, gives `link_down_for: None` with
/// `link_up: false`, which reads as "down, for an unknown time", never as "just went down".
///
/// `slaveN:` lines are collected whatever the role: a replica with replicas of its own lists them
/// too, and it is for the engine to decide whose list it trusts.
///
/// # Errors
/// [`InfoError::MissingRole`] if there is no `role:` line; [`InfoError::UnknownRole`] if the role
/// is neither `master` nor `slave`.
pub fn parse_info(text: &str) -> Result<InfoReport, InfoError> {
    let mut fields = Fields::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            fields.take(key, value);
        }
    }
    fields.into_report(text)
}

/// The raw values of the keys this parser reads, as found in the text.
#[derive(Default)]
struct Fields<'a> {
    run_id: Option<&'a str>,
    role: Option<&'a str>,
    master_host: Option<&'a str>,
    master_port: Option<&'a str>,
    master_link_status: Option<&'a str>,
    master_link_down_since_seconds: Option<&'a str>,
    slave_repl_offset: Option<&'a str>,
    replica_priority: Option<&'a str>,
    replica_announced: Option<&'a str>,
    master_repl_offset: Option<&'a str>,
    master_replid: Option<&'a str>,
    master_replid2: Option<&'a str>,
    min_slaves_good_slaves: Option<&'a str>,
    loading: Option<&'a str>,
    replicas: Vec<ListedReplica>,
}

impl<'a> Fields<'a> {
    /// Records one `key:value` line.
    fn take(&mut self, key: &'a str, value: &'a str) {
        let slot = match key {
            "run_id" => &mut self.run_id,
            "role" => &mut self.role,
            "master_host" => &mut self.master_host,
            "master_port" => &mut self.master_port,
            "master_link_status" => &mut self.master_link_status,
            "master_link_down_since_seconds" => &mut self.master_link_down_since_seconds,
            "slave_repl_offset" => &mut self.slave_repl_offset,
            // Redis 5 renamed the setting but kept printing `slave_priority`; accept both.
            "slave_priority" | "replica_priority" => &mut self.replica_priority,
            "replica_announced" => &mut self.replica_announced,
            "master_repl_offset" => &mut self.master_repl_offset,
            "master_replid" => &mut self.master_replid,
            "master_replid2" => &mut self.master_replid2,
            "min_slaves_good_slaves" => &mut self.min_slaves_good_slaves,
            "loading" => &mut self.loading,
            _ => {
                if is_replica_key(key) {
                    self.replicas.extend(parse_listed_replica(value));
                }
                return;
            }
        };
        *slot = Some(value);
    }

    /// Builds the report once every line has been seen (the order of keys in the text is free).
    fn into_report(self, text: &str) -> Result<InfoReport, InfoError> {
        let role = match self.role.ok_or(InfoError::MissingRole)? {
            "master" => ReportedRole::Master,
            "slave" => ReportedRole::Replica(self.replica_link()),
            other => {
                return Err(InfoError::UnknownRole(
                    other.chars().take(MAX_ROLE_IN_ERROR).collect(),
                ));
            }
        };
        Ok(InfoReport {
            run_id: self.run_id.filter(|id| !id.is_empty()).map(str::to_owned),
            role,
            replica_priority: self
                .replica_priority
                .and_then(|p| p.parse().ok())
                .unwrap_or(DEFAULT_REPLICA_PRIORITY),
            // Only an explicit `0` hides a replica: hiding it on a garbled value would drop it
            // from `SENTINEL REPLICAS` for no reason.
            replica_announced: self.replica_announced != Some("0"),
            master_repl_offset: parse_u64(self.master_repl_offset),
            replid: replication_id(self.master_replid),
            replid2: replication_id(self.master_replid2),
            good_replicas: self.min_slaves_good_slaves.and_then(|v| v.parse().ok()),
            replicas: self.replicas,
            loading: self.loading == Some("1"),
            raw: Arc::from(text),
        })
    }

    /// The replication link of a `role:slave` reply.
    fn replica_link(&self) -> ReplicaLink {
        let master = match (self.master_host, self.master_port) {
            (Some(host), Some(port)) => {
                port.parse::<u16>().ok().and_then(|port| Addr::new(host, port).ok())
            }
            _ => None,
        };
        ReplicaLink {
            master,
            link_up: self.master_link_status == Some("up"),
            // Negative (`-1`: never up) and garbage both fail to parse as u64: unknown duration.
            link_down_for: self
                .master_link_down_since_seconds
                .and_then(|s| s.parse::<u64>().ok())
                .map(Duration::from_secs),
            repl_offset: parse_u64(self.slave_repl_offset),
        }
    }
}

/// A replication id: `None` when absent, empty, or all zeros (Redis's "no previous history").
fn replication_id(value: Option<&str>) -> Option<String> {
    value.filter(|v| !v.is_empty() && v.bytes().any(|b| b != b'0')).map(str::to_owned)
}

/// A counter, 0 when absent or unparsable.
fn parse_u64(value: Option<&str>) -> u64 {
    value.and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Whether `key` is `slave` followed by a replica number (`slave0`, `slave12`), as opposed to the
/// many other keys that start with `slave` (`slave_repl_offset`, `slave_read_only`, ...).
fn is_replica_key(key: &str) -> bool {
    key.strip_prefix("slave")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Parses the value of a `slaveN:` line, in either of the forms Redis has used:
/// `ip=<ip>,port=<port>,state=<state>,offset=<offset>,lag=<lag>` (2.8 and later) or
/// `<ip>,<port>,<state>` (earlier). `None` if there is no usable address.
///
/// Only `ip` and `port` are required: Sentinel learns a replica from its address alone. A missing
/// `state` is left empty, a missing or garbled `offset` is 0 and a missing or garbled `lag` is
/// `None`. Unknown `name=value` pairs are ignored, so fields added by later Redis versions do not
/// hide the replica.
fn parse_listed_replica(value: &str) -> Option<ListedReplica> {
    // Sentinel tells the forms apart by the presence of `ip=`; so do we.
    if !value.contains("ip=") {
        let mut parts = value.split(',');
        let (ip, port, state) = (parts.next()?, parts.next()?, parts.next().unwrap_or(""));
        return Some(ListedReplica {
            addr: Addr::new(ip, port.parse().ok()?).ok()?,
            state: state.to_owned(),
            offset: 0,
            lag: None,
        });
    }
    let (mut ip, mut port, mut state, mut offset, mut lag) = (None, None, "", None, None);
    for pair in value.split(',') {
        let Some((name, v)) = pair.split_once('=') else { continue };
        match name {
            "ip" => ip = Some(v),
            "port" => port = v.parse::<u16>().ok(),
            "state" => state = v,
            "offset" => offset = Some(v),
            "lag" => lag = v.parse().ok(),
            _ => {}
        }
    }
    Some(ListedReplica {
        addr: Addr::new(ip?, port?).ok()?,
        state: state.to_owned(),
        offset: parse_u64(offset),
        lag,
    })
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use proptest::prelude::*;

    use super::*;

    const MASTER: &str = include_str!("testdata/master_one_replica.txt");
    const REPLICA_UP: &str = include_str!("testdata/replica_link_up.txt");
    const REPLICA_MASTER_DOWN: &str = include_str!("testdata/replica_master_down.txt");
    const REPLICA_NEVER_SYNCED: &str = include_str!("testdata/replica_never_synced.txt");

    fn addr(s: &str) -> Addr {
        s.parse().unwrap()
    }

    fn link(report: &InfoReport) -> &ReplicaLink {
        match &report.role {
            ReportedRole::Replica(link) => link,
            ReportedRole::Master => panic!("expected a replica, got {report:?}"),
        }
    }

    #[test]
    fn fixtures_keep_redis_line_endings() {
        // Guards against a checkout that rewrote the captured replies (see testdata/.gitattributes).
        for text in [MASTER, REPLICA_UP, REPLICA_MASTER_DOWN, REPLICA_NEVER_SYNCED] {
            assert!(text.contains("\r\n# Replication\r\nrole:"));
        }
    }

    #[test]
    fn real_master_with_one_replica() {
        let report = parse_info(MASTER).unwrap();
        assert_eq!(
            report,
            InfoReport {
                replicas: vec![ListedReplica {
                    addr: addr("127.0.0.1:17002"),
                    state: "online".to_owned(),
                    offset: 118,
                    lag: Some(0),
                }],
                master_repl_offset: 118,
                replid: Some("4afe39f24369ffce32d0cddbcab29e21076a5607".to_owned()),
                raw: Arc::from(MASTER),
                ..InfoReport::master("e3043b20dbeef63beefd2efdcb85b6dbfb43d35c")
            }
        );
        assert_eq!(&*report.raw, MASTER);
    }

    #[test]
    fn real_replica_with_link_up() {
        let report = parse_info(REPLICA_UP).unwrap();
        let expected = InfoReport {
            replid: Some("4afe39f24369ffce32d0cddbcab29e21076a5607".to_owned()),
            raw: Arc::from(REPLICA_UP),
            ..InfoReport::replica(
                "00e4774e5e98a74b35a32a93317dcc589ce717e5",
                addr("127.0.0.1:17001"),
                118,
            )
        };
        assert_eq!(report, expected);
    }

    #[test]
    fn real_replica_whose_master_is_down() {
        let report = parse_info(REPLICA_MASTER_DOWN).unwrap();
        assert_eq!(report.run_id.as_deref(), Some("00e4774e5e98a74b35a32a93317dcc589ce717e5"));
        assert_eq!(
            link(&report),
            &ReplicaLink {
                master: Some(addr("127.0.0.1:17001")),
                link_up: false,
                link_down_for: Some(Duration::from_secs(4)),
                repl_offset: 118,
            }
        );
        assert_eq!((report.replica_priority, report.replica_announced), (100, true));
        assert!(report.replicas.is_empty());
    }

    #[test]
    fn real_replica_that_never_synced_has_unknown_down_time() {
        // Captured before the first sync finished: Redis prints master_link_down_since_seconds:-1.
        let report = parse_info(REPLICA_NEVER_SYNCED).unwrap();
        assert!(REPLICA_NEVER_SYNCED.contains("master_link_down_since_seconds:-1\r\n"));
        let link = link(&report);
        assert!(!link.link_up);
        assert_eq!(link.link_down_for, None);
        assert_eq!(link.repl_offset, 1);
        assert_eq!(report.master_repl_offset, 0);
    }

    #[test]
    fn replica_lines_in_both_forms_and_ipv6() {
        let text = "role:master\n\
            slave0:ip=::1,port=6380,state=online,offset=42,lag=1\n\
            slave1:10.0.0.2,6381,send_bulk\n\
            slave2:ip=Replica-3.example,port=6382,state=wait_bgsave,offset=7,lag=0,extra=x\n\
            slave3:ip=10.0.0.4,port=6383\n";
        let report = parse_info(text).unwrap();
        let listed = |a: &str, state: &str, offset, lag| ListedReplica {
            addr: addr(a),
            state: state.to_owned(),
            offset,
            lag,
        };
        assert_eq!(
            report.replicas,
            vec![
                listed("[::1]:6380", "online", 42, Some(1)),
                listed("10.0.0.2:6381", "send_bulk", 0, None),
                listed("replica-3.example:6382", "wait_bgsave", 7, Some(0)),
                listed("10.0.0.4:6383", "", 0, None),
            ]
        );
    }

    #[test]
    fn unparsable_replica_lines_are_skipped_not_fatal() {
        let text = "role:master\r\n\
            slave0:ip=10.0.0.1,port=notaport,state=online\r\n\
            slave1:ip=,port=6380,state=online\r\n\
            slave2:ip=10.0.0.3,state=online\r\n\
            slave3:just-garbage\r\n\
            slave4:ip=10.0.0.5,port=0,state=online\r\n\
            slave5:ip=bad host,port=6380\r\n\
            slave6:ip=10.0.0.7,port=6380,state=online,offset=-5,lag=x\r\n\
            slaveX:ip=10.0.0.8,port=6380\r\n";
        let report = parse_info(text).unwrap();
        assert_eq!(
            report.replicas,
            vec![ListedReplica {
                addr: addr("10.0.0.7:6380"),
                state: "online".to_owned(),
                offset: 0,
                lag: None,
            }]
        );
    }

    #[test]
    fn a_promoted_replica_names_the_history_it_continued() {
        // What `REPLICAOF NO ONE` leaves in INFO (Redis 7): a new history, the old one second.
        let text = "role:master\r\nmaster_replid:b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0\r\n\
                    master_replid2:4afe39f24369ffce32d0cddbcab29e21076a5607\r\n\
                    master_repl_offset:1200\r\nsecond_repl_offset:1119\r\n";
        let report = parse_info(text).unwrap();
        assert_eq!(report.replid.as_deref(), Some("b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0"));
        assert_eq!(report.replid2.as_deref(), Some("4afe39f24369ffce32d0cddbcab29e21076a5607"));
        assert!(report.carries_history("4afe39f24369ffce32d0cddbcab29e21076a5607"));
        assert!(!report.carries_history("76d42f29a0388f3a759ff83e57dcec1f3567c5fd"));
        // Zeros mean "no previous history", never a history named zero.
        let fresh = parse_info(MASTER).unwrap();
        assert_eq!(fresh.replid2, None);
        assert!(!fresh.carries_history("0000000000000000000000000000000000000000"));
    }

    #[test]
    fn missing_fields_take_defaults() {
        let report = parse_info("role:slave\n").unwrap();
        assert_eq!(
            report,
            InfoReport {
                run_id: None,
                role: ReportedRole::Replica(ReplicaLink {
                    master: None,
                    link_up: false,
                    link_down_for: None,
                    repl_offset: 0,
                }),
                raw: Arc::from("role:slave\n"),
                ..InfoReport::master("")
            }
        );
    }

    #[test]
    fn replica_fields_and_garbage_lines() {
        let text = "# Server\n\
            this line has no colon\n\
            run_id:abc\n\
            :value without key\n\
            \n\
            # Replication\n\
            master_host:[::1]\n\
            master_port:6379\n\
            role:slave\n\
            master_link_status:down\n\
            master_link_down_since_seconds:12\n\
            slave_repl_offset:99\n\
            replica_priority:0\n\
            replica_announced:0\n\
            loading:1\n\
            master_repl_offset:100\n";
        let report = parse_info(text).unwrap();
        assert_eq!(report.run_id.as_deref(), Some("abc"));
        assert_eq!(
            link(&report),
            &ReplicaLink {
                master: Some(addr("[::1]:6379")),
                link_up: false,
                link_down_for: Some(Duration::from_secs(12)),
                repl_offset: 99,
            }
        );
        assert_eq!(report.replica_priority, 0);
        assert!(!report.replica_announced);
        assert!(report.loading);
        assert_eq!(report.master_repl_offset, 100);
    }

    #[test]
    fn unparsable_values_fall_back_to_defaults() {
        let text = "role:slave\nmaster_host:10.0.0.1\nmaster_port:99999\n\
            slave_priority:high\nslave_repl_offset:-3\nreplica_announced:maybe\nloading:yes\n";
        let report = parse_info(text).unwrap();
        assert_eq!(link(&report).master, None, "port out of range");
        assert_eq!(link(&report).repl_offset, 0);
        assert_eq!(report.replica_priority, 100);
        assert!(report.replica_announced);
        assert!(!report.loading);
        let no_port = parse_info("role:slave\nmaster_host:10.0.0.1\n").unwrap();
        assert_eq!(link(&no_port).master, None);
        let bad_host = parse_info("role:slave\nmaster_host:a b\nmaster_port:1\n").unwrap();
        assert_eq!(link(&bad_host).master, None);
    }

    #[test]
    fn replies_that_are_not_info_are_errors() {
        assert_eq!(parse_info(""), Err(InfoError::MissingRole));
        assert_eq!(parse_info("-ERR unknown command\r\n"), Err(InfoError::MissingRole));
        assert_eq!(
            parse_info("# Replication\r\nrole:\r\n"),
            Err(InfoError::UnknownRole(String::new()))
        );
        assert_eq!(
            parse_info("role:sentinel\n"),
            Err(InfoError::UnknownRole("sentinel".to_owned()))
        );
        let long = format!("role:{}\n", "x".repeat(1000));
        assert_eq!(parse_info(&long), Err(InfoError::UnknownRole("x".repeat(32))));
        assert_eq!(
            InfoError::UnknownRole("replica".to_owned()).to_string(),
            "INFO reply has unknown role \"replica\""
        );
    }

    /// Renders the lines Redis would print for `report` (in a shuffled-enough order: the parser
    /// must not depend on it).
    fn render(report: &InfoReport) -> String {
        let mut out = String::from("# Server\r\n");
        if let Some(run_id) = &report.run_id {
            let _ = write!(out, "run_id:{run_id}\r\n");
        }
        let _ = write!(out, "loading:{}\r\n\r\n# Replication\r\n", u8::from(report.loading));
        let _ = write!(out, "role:{}\r\n", report.role.as_redis_str());
        if let ReportedRole::Replica(link) = &report.role {
            if let Some(master) = &link.master {
                let _ = write!(
                    out,
                    "master_host:{}\r\nmaster_port:{}\r\n",
                    master.host(),
                    master.port()
                );
            }
            let status = if link.link_up { "up" } else { "down" };
            let _ = write!(out, "master_link_status:{status}\r\n");
            if let Some(down) = link.link_down_for {
                let _ = write!(out, "master_link_down_since_seconds:{}\r\n", down.as_secs());
            }
            let _ = write!(out, "slave_repl_offset:{}\r\n", link.repl_offset);
        }
        let _ = write!(out, "slave_priority:{}\r\n", report.replica_priority);
        let _ = write!(out, "replica_announced:{}\r\n", u8::from(report.replica_announced));
        for (i, r) in report.replicas.iter().enumerate() {
            let _ = write!(
                out,
                "slave{i}:ip={},port={},state={},offset={}",
                r.addr.host(),
                r.addr.port(),
                r.state,
                r.offset
            );
            if let Some(lag) = r.lag {
                let _ = write!(out, ",lag={lag}");
            }
            out.push_str("\r\n");
        }
        let _ = write!(out, "master_repl_offset:{}\r\n", report.master_repl_offset);
        if let Some(replid) = &report.replid {
            let _ = write!(out, "master_replid:{replid}\r\n");
        }
        let replid2 =
            report.replid2.as_deref().unwrap_or("0000000000000000000000000000000000000000");
        let _ = write!(out, "master_replid2:{replid2}\r\n");
        out
    }

    fn arb_addr() -> impl Strategy<Value = Addr> {
        let host = prop_oneof![
            "[a-z][a-z0-9-]{0,12}(\\.[a-z0-9-]{1,8}){0,2}",
            (any::<u8>(), any::<u8>()).prop_map(|(a, b)| format!("10.{a}.{b}.1")),
            Just("::1".to_owned()),
            Just("fe80::1:2".to_owned()),
        ];
        (host, 1u16..).prop_map(|(h, p)| Addr::new(&h, p).unwrap())
    }

    fn arb_report() -> impl Strategy<Value = InfoReport> {
        let link = (
            proptest::option::of(arb_addr()),
            any::<bool>(),
            proptest::option::of(0u64..1 << 40),
            any::<u64>(),
        )
            .prop_map(|(master, link_up, down, repl_offset)| ReplicaLink {
                master,
                link_up,
                link_down_for: down.map(Duration::from_secs),
                repl_offset,
            });
        let role = prop_oneof![Just(ReportedRole::Master), link.prop_map(ReportedRole::Replica)];
        let replica =
            (arb_addr(), "[a-z_]{1,12}", any::<u64>(), proptest::option::of(any::<u64>()))
                .prop_map(|(addr, state, offset, lag)| ListedReplica { addr, state, offset, lag });
        (
            proptest::option::of("[0-9a-f]{40}"),
            role,
            any::<u32>(),
            any::<bool>(),
            any::<u64>(),
            (proptest::option::of("[0-9a-f]{40}"), proptest::option::of("[0-9a-f]{39}[1-9a-f]")),
            proptest::collection::vec(replica, 0..4),
            any::<bool>(),
        )
            .prop_map(
                |(
                    run_id,
                    role,
                    replica_priority,
                    replica_announced,
                    master_repl_offset,
                    (replid, replid2),
                    replicas,
                    loading,
                )| {
                    InfoReport {
                        run_id,
                        role,
                        replica_priority,
                        replica_announced,
                        master_repl_offset,
                        replid: replid.filter(|id| id.bytes().any(|b| b != b'0')),
                        replid2,
                        good_replicas: None,
                        replicas,
                        loading,
                        raw: Arc::from(""),
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC*") {
            let _ = parse_info(&text);
        }

        #[test]
        fn arbitrary_info_like_lines_never_panic(
            lines in proptest::collection::vec(
                prop_oneof![
                    "(role|master_host|master_port|slave[0-9]|slave_priority|loading):[ -~]{0,40}",
                    "slave[0-9]{1,3}:(ip=[ -~]{0,12},?|port=[0-9-]{0,6},?|state=[a-z]{0,6},?|offset=[0-9-]{0,22},?|lag=[0-9-]{0,22},?){0,6}",
                    "[ -~]{0,40}",
                ],
                0..20,
            )
        ) {
            let _ = parse_info(&lines.join("\r\n"));
        }

        #[test]
        fn rendered_reports_parse_back(report in arb_report()) {
            let text = render(&report);
            let parsed = parse_info(&text).unwrap();
            prop_assert_eq!(parsed, InfoReport { raw: Arc::from(text.as_str()), ..report });
        }
    }
}
