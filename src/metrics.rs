//! Prometheus metrics: every name, label and unit Picket exports, and how each value is derived.
//!
//! This module owns the metric vocabulary, a contract with dashboards and with the alert rules in
//! `config/alerts.yml`. Where redis_exporter already names a Sentinel metric (`redis_sentinel_*`,
//! scraped from `INFO` and `SENTINEL MASTERS`), Picket exports the same name with the same
//! labels and meaning, so existing dashboards keep working; everything else is `picket_*`.
//!
//! Values come from three places, all read, never written, here: the engine's latest
//! [`View`], the counters the servers and the gossip transport keep ([`ServerStats`],
//! [`PeerStats`]), and the event stream, which [`EventMetrics`] turns into failover counters and
//! durations. The module never talks to the engine, never blocks, and keeps no state but
//! [`EventMetrics`]: a scrape builds a fresh registry from the current values.
//!
//! The exposition is OpenMetrics when the scraper asks for it (Prometheus does), else the
//! classic text format (`text/plain; version=0.0.4`), which `promtool check metrics` and older
//! tools read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use prometheus_client::encoding::text::encode_registry;
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry, Unit};

use crate::engine::view::{InstanceView, MasterView, Stats};
use crate::engine::{Addr, Detail, EventKind, Fencing, Instant, MasterStatus, NodeId, View};
use crate::hub::PeerStats;
use crate::hub::{EventRecord, Failpoints, ScriptOutcome, ServerStats, TlsStats};

/// Upper bounds of the failover-duration buckets, in seconds: from a quick manual failover to
/// one that runs into a typical `failover_timeout`.
pub const FAILOVER_BUCKETS: [f64; 11] =
    [1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0];

/// One sample's labels.
type Labels = Vec<(&'static str, String)>;
type FailoverHistogram = Family<Labels, Histogram, fn() -> Histogram>;

fn failover_histogram() -> Histogram {
    Histogram::new(FAILOVER_BUCKETS)
}

/// Counters derived from the event stream. One instance lives as long as the HTTP server; it is
/// fed every published event, in order, by [`EventMetrics::observe`].
#[derive(Debug)]
pub struct EventMetrics {
    events: Family<Labels, Counter>,
    started: Family<Labels, Counter>,
    succeeded: Family<Labels, Counter>,
    aborted: Family<Labels, Counter>,
    switches: Family<Labels, Counter>,
    duration: FailoverHistogram,
    /// Bytes possibly lost over all failovers (`+failover-loss`), and in the last one.
    lost_bytes: Family<Labels, Counter>,
    last_lost_bytes: Family<Labels, Gauge>,
    /// The last `+fence-window` stated (seconds); none while it was unknown.
    last_fence_window: Family<Labels, Gauge<f64, AtomicU64>>,
    /// Automatic failovers held back (`+failover-held`), by reason.
    held: Family<Labels, Counter>,
    /// When each failover this node leads began (`unix_ms` of its `+try-failover`), by master.
    /// At most one entry per master.
    open: Mutex<BTreeMap<String, u64>>,
}

impl Default for EventMetrics {
    fn default() -> Self {
        Self {
            events: Family::default(),
            started: Family::default(),
            succeeded: Family::default(),
            aborted: Family::default(),
            switches: Family::default(),
            duration: Family::new_with_constructor(failover_histogram),
            lost_bytes: Family::default(),
            last_lost_bytes: Family::default(),
            last_fence_window: Family::default(),
            held: Family::default(),
            open: Mutex::new(BTreeMap::new()),
        }
    }
}

impl EventMetrics {
    /// Counts `record`. Failovers are this node's own (`+try-failover` to `+failover-end`);
    /// master switches are counted on every node, leader or observer.
    pub fn observe(&self, record: &EventRecord) {
        let event = &record.event;
        self.events.get_or_create(&vec![("event", event.channel().to_owned())]).inc();
        let Some(master) = event.master_name() else { return };
        let labels = vec![("master", master.to_owned())];
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let aborted = |reason: &str| {
            let mut labels = labels.clone();
            labels.push(("reason", reason.to_owned()));
            self.aborted.get_or_create(&labels).inc();
        };
        match event.kind {
            EventKind::TryFailover => {
                self.started.get_or_create(&labels).inc();
                if open.insert(master.to_owned(), record.unix_ms).is_some() {
                    // A new attempt replaced one that ended without an event of its own.
                    aborted("superseded");
                }
            }
            EventKind::FailoverEnd | EventKind::FailoverEndForTimeout => {
                self.succeeded.get_or_create(&labels).inc();
                if let Some(start) = open.remove(master) {
                    let seconds = record.unix_ms.saturating_sub(start) as f64 / 1000.0;
                    self.duration.get_or_create(&labels).observe(seconds);
                }
            }
            EventKind::AbortNotElected => abort_open(&mut open, master, || aborted("not_elected")),
            EventKind::AbortNoGoodReplica => {
                abort_open(&mut open, master, || aborted("no_good_replica"));
            }
            EventKind::AbortReplicaTimeout => {
                abort_open(&mut open, master, || aborted("replica_timeout"));
            }
            EventKind::AbortSwitchoverTimeout => {
                abort_open(&mut open, master, || aborted("switchover_timeout"));
            }
            EventKind::FailoverLoss => {
                if let Detail::Loss { bytes } = event.detail {
                    self.lost_bytes.get_or_create(&labels).inc_by(bytes);
                    let gauge = i64::try_from(bytes).unwrap_or(i64::MAX);
                    self.last_lost_bytes.get_or_create(&labels).set(gauge);
                }
            }
            EventKind::FenceWindow => match event.detail {
                Detail::Window { ms: Some(ms) } => {
                    self.last_fence_window.get_or_create(&labels).set(ms as f64 / 1000.0);
                }
                _ => {
                    self.last_fence_window.remove(&labels);
                }
            },
            EventKind::FailoverHeld => {
                if let Detail::Held { reason } = event.detail {
                    let mut labels = labels.clone();
                    labels.push(("reason", reason.to_owned()));
                    self.held.get_or_create(&labels).inc();
                }
            }
            // A newer configuration from a peer ends this node's failover without an abort
            // event; so do a reset and a removal.
            EventKind::ConfigUpdateFrom | EventKind::ResetMaster | EventKind::Unmonitor => {
                let reason = match event.kind {
                    EventKind::ConfigUpdateFrom => "superseded",
                    EventKind::ResetMaster => "reset",
                    _ => "removed",
                };
                if open.remove(master).is_some() {
                    aborted(reason);
                }
            }
            EventKind::SwitchMaster => {
                self.switches.get_or_create(&labels).inc();
            }
            _ => {}
        }
    }
}

/// An abort event always counts, whether or not this process saw the attempt start.
fn abort_open(open: &mut BTreeMap<String, u64>, master: &str, count: impl FnOnce()) {
    open.remove(master);
    count();
}

/// The exposition format of a scrape.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Format {
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// The classic Prometheus text format, version 0.0.4.
    Text,
}

impl Format {
    /// OpenMetrics if the `Accept` header offers it, else the classic text format.
    #[must_use]
    pub fn from_accept(accept: Option<&str>) -> Self {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Self::OpenMetrics,
            _ => Self::Text,
        }
    }

    /// The `Content-Type` of the exposition.
    #[must_use]
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Self::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Everything a scrape reads.
#[derive(Clone, Copy, Debug)]
pub struct Sources<'a> {
    /// The engine's latest view.
    pub view: &'a View,
    /// Engine time now, for ages.
    pub now: Instant,
    /// The servers' counters.
    pub stats: &'a ServerStats,
    /// Gossip traffic counters.
    pub peers: &'a PeerStats,
    /// Armed crash points.
    pub failpoints: &'a Failpoints,
    /// Event-derived counters.
    pub events: &'a EventMetrics,
    /// TLS handshake failures and certificates.
    pub tls: &'a TlsStats,
}

/// Renders every metric in `format`.
#[must_use]
pub fn render(sources: &Sources<'_>, format: Format) -> String {
    let scrape = Scrape::of(sources);
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode_registry(&mut out, &scrape.registry);
    match format {
        Format::OpenMetrics => {
            out.push_str("# EOF\n");
            out
        }
        Format::Text => to_classic_text(&out),
    }
}

/// The name of every series `/metrics` can export, as Prometheus stores them: counters with
/// their `_total` suffix, histograms as their `_bucket`, `_sum` and `_count` series. The same
/// registrations as a scrape, of a node with no master, peer or event yet: families that have no
/// sample yet are listed too, where the exposition leaves them out. What dashboards may query
/// (`docker/grafana/picket.json` is checked against it).
#[must_use]
pub fn series_names() -> BTreeSet<String> {
    let addr = Addr::new("127.0.0.1", 26379).expect("a valid address");
    let view = View {
        at: Instant::ZERO,
        node_id: NodeId::from_bytes([0; 20]),
        announce: addr.clone(),
        client_addr: addr,
        current_epoch: 0,
        tilt_since: None,
        voters: 1,
        majority: 1,
        awaiting_vote_floor: false,
        peers_in_contact: 0,
        masters: Vec::new(),
        peers: Vec::new(),
        stats: Stats::default(),
    };
    let sources = Sources {
        view: &view,
        now: Instant::ZERO,
        stats: &ServerStats::default(),
        peers: &PeerStats::default(),
        failpoints: &Failpoints::default(),
        events: &EventMetrics::default(),
        tls: &TlsStats::default(),
    };
    Scrape::of(&sources).series
}

/// Builds one scrape's registry.
#[derive(Default)]
struct Scrape {
    registry: Registry,
    /// The series names of every family registered, with or without samples.
    series: BTreeSet<String>,
}

impl Scrape {
    /// Every metric, from `sources`.
    fn of(sources: &Sources<'_>) -> Self {
        let mut scrape = Self::default();
        node_metrics(&mut scrape, sources);
        master_metrics(&mut scrape, sources);
        sentinel_compat_metrics(&mut scrape, sources);
        instance_metrics(&mut scrape, sources);
        traffic_metrics(&mut scrape, sources);
        notify_metrics(&mut scrape, sources.stats);
        tls_metrics(&mut scrape, sources.tls);
        event_metrics(&mut scrape, sources.events);
        scrape
    }

    /// Registers a family, named `name` with its unit's suffix, and notes its series names.
    fn register(&mut self, name: &str, help: &str, unit: Option<Unit>, metric: impl Metric) {
        let name_with_unit = match &unit {
            Some(unit) => format!("{name}_{}", unit.as_str()),
            None => name.to_owned(),
        };
        let suffixes: &[&str] = match metric.metric_type() {
            MetricType::Counter => &["_total"],
            MetricType::Histogram => &["_bucket", "_sum", "_count"],
            MetricType::Info => &["_info"],
            MetricType::Gauge | MetricType::Unknown => &[""],
        };
        self.series.extend(suffixes.iter().map(|suffix| format!("{name_with_unit}{suffix}")));
        match unit {
            Some(unit) => self.registry.register_with_unit(name, help, unit, metric),
            None => self.registry.register(name, help, metric),
        }
    }

    fn gauge(&mut self, name: &str, help: &str, samples: impl IntoIterator<Item = (Labels, i64)>) {
        let family = Family::<Labels, Gauge>::default();
        for (labels, value) in samples {
            family.get_or_create(&labels).set(value);
        }
        self.register(name, help, None, family);
    }

    /// An unlabelled gauge.
    fn value(&mut self, name: &str, help: &str, value: i64) {
        let gauge = Gauge::<i64>::default();
        gauge.set(value);
        self.register(name, help, None, gauge);
    }

    /// An unlabelled counter.
    fn total(&mut self, name: &str, help: &str, value: u64) {
        let counter = Counter::<u64>::default();
        counter.inc_by(value);
        self.register(name, help, None, counter);
    }

    fn seconds(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels, f64)>,
    ) {
        let family = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        for (labels, value) in samples {
            family.get_or_create(&labels).set(value);
        }
        self.register(name, help, Some(Unit::Seconds), family);
    }

    fn counter(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels, u64)>,
    ) {
        let family = Family::<Labels, Counter>::default();
        for (labels, value) in samples {
            family.get_or_create(&labels).inc_by(value);
        }
        self.register(name, help, None, family);
    }

    /// An unlabelled counter of bytes.
    fn bytes(&mut self, name: &str, help: &str, value: u64) {
        let counter = Counter::<u64>::default();
        counter.inc_by(value);
        self.register(name, help, Some(Unit::Bytes), counter);
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn gauge_of(counter: &AtomicU64) -> i64 {
    i64::try_from(load(counter)).unwrap_or(i64::MAX)
}

fn master_label(m: &MasterView) -> Labels {
    vec![("master", m.name.clone())]
}

/// redis_exporter's labels for per-master Sentinel metrics.
fn compat_labels(m: &MasterView) -> Labels {
    vec![("master_name", m.name.clone()), ("master_address", m.addr.to_string())]
}

/// A replica that could take over: one the engine's replica selection would promote now
/// ([`crate::engine::selection::eligibility`], exposed in the view).
#[must_use]
pub const fn healthy_replica(replica: &InstanceView) -> bool {
    replica.ineligible.is_none()
}

/// Fresh peers whose latest report names the same master address under the same config epoch.
#[must_use]
pub fn agreeing_peers(m: &MasterView) -> usize {
    m.peers
        .iter()
        .filter(|p| p.fresh)
        .filter_map(|p| p.report.as_ref())
        .filter(|r| r.addr == m.addr && r.config_epoch == m.config_epoch)
        .count()
}

fn node_metrics(s: &mut Scrape, src: &Sources<'_>) {
    let view = src.view;
    s.value(
        "picket_current_epoch",
        "The current epoch of this node",
        i64::try_from(view.current_epoch).unwrap_or(i64::MAX),
    );
    s.value("picket_tilt", "1 while this node is in TILT mode", view.tilt_since.is_some().into());
    s.value("picket_voters", "Voters: this node and its configured peers", count(view.voters));
    s.value("picket_majority", "Votes needed for a majority of the voters", count(view.majority));
    s.value(
        "picket_peers_fresh",
        "Configured peers whose reports are fresh (heard within peer_timeout)",
        count(view.fresh_peers()),
    );
    s.gauge(
        "picket_peer_up",
        "1 if the configured peer's reports are fresh",
        view.peers.iter().map(|p| (vec![("peer", p.addr.to_string())], i64::from(p.fresh))),
    );
    s.value("picket_masters", "Masters this node supervises", count(view.masters.len()));
}

fn master_metrics(s: &mut Scrape, src: &Sources<'_>) {
    let masters = &src.view.masters;
    let statuses = [MasterStatus::Ok, MasterStatus::Sdown, MasterStatus::Odown];
    s.gauge(
        "picket_master_status",
        "1 for the master's current health as this node sees it (ok, sdown or odown)",
        masters.iter().flat_map(|m| {
            statuses.iter().map(|st| {
                let mut labels = master_label(m);
                labels.push(("status", st.as_str().to_owned()));
                (labels, i64::from(m.status == *st))
            })
        }),
    );
    s.gauge(
        "picket_master_failover_in_progress",
        "1 while this node leads a failover of the master",
        masters.iter().map(|m| (master_label(m), i64::from(m.failover.is_some()))),
    );
    s.gauge(
        "picket_master_info",
        "The current master address of each group (always 1)",
        masters.iter().map(|m| {
            let mut labels = master_label(m);
            labels.push(("address", m.addr.to_string()));
            (labels, 1)
        }),
    );
    s.gauge(
        "picket_master_config_epoch",
        "The epoch of the failover that set the current master (0 = as configured)",
        masters.iter().map(|m| (master_label(m), i64::try_from(m.config_epoch).unwrap_or(0))),
    );
    s.gauge(
        "picket_master_quorum",
        "Voters that must see the master down for it to be objectively down",
        masters.iter().map(|m| (master_label(m), i64::from(m.quorum))),
    );
    s.gauge(
        "picket_master_replicas",
        "Replicas known for the master",
        masters.iter().map(|m| (master_label(m), count(m.replicas.len()))),
    );
    s.gauge(
        "picket_master_replicas_healthy",
        "Replicas that a failover could promote now (the engine's eligibility rule)",
        masters.iter().map(|m| {
            (master_label(m), count(m.replicas.iter().filter(|r| healthy_replica(r)).count()))
        }),
    );
    s.gauge(
        "picket_master_peers_agreeing",
        "Fresh peers that report the same master address under the same config epoch",
        masters.iter().map(|m| (master_label(m), count(agreeing_peers(m)))),
    );
    s.seconds(
        "picket_master_down_after",
        "The master's down_after setting",
        masters.iter().map(|m| (master_label(m), m.down_after.as_secs_f64())),
    );
    s.seconds(
        "picket_master_failover_timeout",
        "The master's failover_timeout setting",
        masters.iter().map(|m| (master_label(m), m.failover_timeout.as_secs_f64())),
    );
    safety_metrics(s, masters);
}

/// Maintenance mode and fencing, from the view.
fn safety_metrics(s: &mut Scrape, masters: &[std::sync::Arc<MasterView>]) {
    s.gauge(
        "picket_master_maintenance",
        "1 while automatic failovers of the master are paused (maintenance mode)",
        masters.iter().map(|m| (master_label(m), i64::from(m.safety.maintenance_paused))),
    );
    let modes = [Fencing::Off, Fencing::Bounded, Fencing::Strict];
    s.gauge(
        "picket_master_fencing",
        "1 for the master's fencing mode (off, bounded or strict)",
        masters.iter().flat_map(|m| {
            modes.iter().map(|mode| {
                let mut labels = master_label(m);
                labels.push(("mode", mode.as_str().to_owned()));
                (labels, i64::from(m.safety.fencing == *mode))
            })
        }),
    );
    s.gauge(
        "picket_master_lease_min_replicas",
        "The min-replicas-to-write the master reported (its lease; 0 = none)",
        masters
            .iter()
            .filter_map(|m| m.safety.lease.map(|l| (master_label(m), i64::from(l.min_replicas)))),
    );
    s.gauge(
        "picket_master_isolation_fence",
        "1 while this node, cut off from its peers, pauses the master's writes itself",
        masters.iter().map(|m| (master_label(m), i64::from(m.safety.isolation_fence))),
    );
}

/// redis_exporter's names, labels and meanings, computed from the view.
fn sentinel_compat_metrics(s: &mut Scrape, src: &Sources<'_>) {
    let view = src.view;
    let masters = &view.masters;
    s.value(
        "redis_sentinel_masters",
        "The number of masters this sentinel is watching",
        count(masters.len()),
    );
    s.value("redis_sentinel_tilt", "Sentinel is in TILT mode", view.tilt_since.is_some().into());
    s.value(
        "redis_sentinel_running_scripts",
        "Number of scripts in execution right now",
        gauge_of(&src.stats.scripts_running),
    );
    s.value(
        "redis_sentinel_scripts_queue_length",
        "Queue of user scripts to execute",
        gauge_of(&src.stats.scripts_queued),
    );
    // Sentinel's bits: 1 = crash after election, 2 = crash after promotion.
    let flags = i64::from(src.failpoints.crash_after_election.load(Ordering::Relaxed))
        | i64::from(src.failpoints.crash_after_promotion.load(Ordering::Relaxed)) << 1;
    s.value("redis_sentinel_simulate_failure_flags", "Failures simulations", flags);
    s.gauge(
        "redis_sentinel_master_status",
        "Master status on Sentinel",
        masters.iter().map(|m| {
            let mut labels = compat_labels(m);
            labels.push(("master_status", m.status.as_str().to_owned()));
            (labels, i64::from(m.status == MasterStatus::Ok))
        }),
    );
    s.gauge(
        "redis_sentinel_master_slaves",
        "The number of slaves of the master",
        masters.iter().map(|m| (compat_labels(m), count(m.replicas.len()))),
    );
    s.gauge(
        "redis_sentinel_master_ok_slaves",
        "The number of okay slaves of the master",
        masters.iter().map(|m| {
            (compat_labels(m), count(m.replicas.iter().filter(|r| r.sdown_since.is_none()).count()))
        }),
    );
    // Sentinel counts itself with the other sentinels it knows.
    s.gauge(
        "redis_sentinel_master_sentinels",
        "The number of sentinels monitoring this master",
        masters.iter().map(|m| {
            (compat_labels(m), count(1 + m.peers.iter().filter(|p| p.node_id.is_some()).count()))
        }),
    );
    s.gauge(
        "redis_sentinel_master_ok_sentinels",
        "The number of okay sentinels monitoring this master",
        masters
            .iter()
            .map(|m| (compat_labels(m), count(1 + m.peers.iter().filter(|p| p.fresh).count()))),
    );
    s.gauge(
        "redis_sentinel_master_config_epoch",
        "Master config epoch",
        masters.iter().map(|m| (compat_labels(m), i64::try_from(m.config_epoch).unwrap_or(0))),
    );
    s.gauge(
        "redis_sentinel_master_setting_ckquorum",
        "Show the current ckquorum config for each master",
        masters.iter().map(|m| (compat_labels(m), i64::from(m.quorum))),
    );
    s.gauge(
        "redis_sentinel_master_setting_failover_timeout",
        "Show the current failover-timeout config for each master",
        masters.iter().map(|m| {
            (compat_labels(m), i64::try_from(m.failover_timeout.as_millis()).unwrap_or(i64::MAX))
        }),
    );
    s.gauge(
        "redis_sentinel_master_setting_parallel_syncs",
        "Show the current parallel-syncs config for each master",
        masters.iter().map(|m| (compat_labels(m), i64::from(m.parallel_syncs))),
    );
    let now = src.now;
    s.seconds(
        "redis_sentinel_master_last_ok_ping_reply",
        "Seconds since the master last answered a PING acceptably",
        masters.iter().map(|m| {
            (compat_labels(m), now.saturating_since(m.master.last_ok_reply_at).as_secs_f64())
        }),
    );
    s.gauge(
        "redis_sentinel_master_ckquorum_status",
        "Master ckquorum status",
        masters.iter().map(|m| {
            // SENTINEL CKQUORUM's answer: the engine's authorisation of a failover.
            let authorisation = view.authorisation(m);
            let ok = i64::from(authorisation.granted());
            let message = authorisation.to_string();
            (vec![("master_name", m.name.clone()), ("message", message)], ok)
        }),
    );
}

fn instance_metrics(s: &mut Scrape, src: &Sources<'_>) {
    let instances = || {
        src.view.masters.iter().flat_map(|m| {
            std::iter::once((m, "master", &m.master))
                .chain(m.replicas.iter().map(move |r| (m, "replica", r)))
        })
    };
    let labels = |m: &MasterView, role: &str, i: &InstanceView| -> Labels {
        vec![("master", m.name.clone()), ("address", i.addr.to_string()), ("role", role.to_owned())]
    };
    s.gauge(
        "picket_instance_up",
        "1 unless the instance is subjectively down",
        instances().map(|(m, role, i)| (labels(m, role, i), i64::from(i.sdown_since.is_none()))),
    );
    s.gauge(
        "picket_instance_link_up",
        "1 while this node's connection to the instance is up",
        instances().map(|(m, role, i)| (labels(m, role, i), i64::from(i.link_up))),
    );
    s.seconds(
        "picket_instance_ping_rtt",
        "Round trip of the last answered PING (millisecond resolution)",
        instances().filter_map(|(m, role, i)| {
            i.ping_rtt.map(|rtt| (labels(m, role, i), rtt.as_secs_f64()))
        }),
    );
    s.gauge(
        "picket_instance_repl_offset",
        "Replication offset the instance reports",
        instances().map(|(m, role, i)| {
            (labels(m, role, i), i64::try_from(i.repl_offset).unwrap_or(i64::MAX))
        }),
    );
}

fn traffic_metrics(s: &mut Scrape, src: &Sources<'_>) {
    let p = src.peers;
    s.total("picket_gossip_frames_sent", "Gossip frames sent", load(&p.frames_sent));
    s.bytes(
        "picket_gossip_sent",
        "Gossip bytes sent (frames and length prefixes)",
        load(&p.bytes_sent),
    );
    s.total(
        "picket_gossip_frames_accepted",
        "Gossip frames received and accepted",
        load(&p.frames_accepted),
    );
    s.bytes("picket_gossip_accepted", "Bytes of accepted gossip frames", load(&p.bytes_accepted));
    s.counter(
        "picket_gossip_frames_rejected",
        "Inbound gossip frames rejected, by reason",
        p.rejected().map(|(kind, n)| (vec![("reason", kind.to_owned())], n)),
    );
    let stats = src.view.stats;
    s.total("picket_peer_messages", "Peer messages the engine accepted", stats.peer_messages);
    s.counter(
        "picket_peer_messages_ignored",
        "Authenticated peer messages the engine ignored, by reason",
        [
            (vec![("reason", "unknown_sender".to_owned())], stats.peer_messages_unknown_sender),
            (vec![("reason", "own_id".to_owned())], stats.peer_messages_own_id),
        ],
    );
    s.total(
        "picket_peer_state_gaps",
        "Peer state deltas that could not be applied (a full resync was requested)",
        stats.peer_state_gaps,
    );
    s.total(
        "picket_sentinel_hellos",
        "Sentinel hellos accepted from Sentinels listed in sentinel_peers",
        stats.sentinel_hellos,
    );
    s.total(
        "picket_sentinel_hellos_unlisted",
        "Sentinel hellos about a supervised master from a sender not listed in its sentinel_peers \
         (ignored)",
        stats.sentinel_hellos_unlisted,
    );
    s.total(
        "picket_sentinel_votes_unlisted",
        "Vote requests (IS-MASTER-DOWN-BY-ADDR with a run id) from a candidate not listed in the \
         master's sentinel_peers (answered without a vote)",
        stats.sentinel_votes_unlisted,
    );
    let st = src.stats;
    s.value(
        "picket_resp_clients",
        "Clients connected to the Sentinel port",
        gauge_of(&st.resp_clients),
    );
    s.total(
        "picket_resp_connections",
        "Connections accepted on the Sentinel port",
        load(&st.resp_connections),
    );
    s.total(
        "picket_resp_commands",
        "Commands executed on the Sentinel port",
        load(&st.resp_commands),
    );
    s.total(
        "picket_resp_protocol_errors",
        "Sentinel-port clients disconnected for a protocol error",
        load(&st.resp_protocol_errors),
    );
    s.total(
        "picket_resp_slow_clients",
        "Sentinel-port clients disconnected for reading their replies too slowly",
        load(&st.resp_slow_clients),
    );
    s.total("picket_http_requests", "HTTP requests served", load(&st.http_requests));
    s.value("picket_http_connections", "HTTP connections open", gauge_of(&st.http_connections));
    s.total(
        "picket_http_refused_connections",
        "HTTP connections refused because every slot held a request in flight",
        load(&st.http_refused_connections),
    );
    s.total(
        "picket_http_evicted_connections",
        "Idle HTTP connections closed to make room for a newer one",
        load(&st.http_evicted_connections),
    );
    s.value(
        "picket_http_event_watchers",
        "HTTP event streams and long polls open",
        gauge_of(&st.http_event_watchers),
    );
    s.total(
        "picket_http_slow_watchers",
        "HTTP event streams ended because the client read too slowly",
        load(&st.http_slow_watchers),
    );
}

fn notify_metrics(s: &mut Scrape, st: &ServerStats) {
    s.counter(
        "picket_script_runs",
        "Script runs that ended, by outcome (ok, retry, error, timeout)",
        ScriptOutcome::ALL
            .iter()
            .zip(&st.script_runs)
            .map(|(o, n)| (vec![("outcome", o.as_str().to_owned())], load(n))),
    );
    s.total(
        "picket_scripts_dropped",
        "Scripts dropped because the script queue was full",
        load(&st.scripts_dropped),
    );
    s.value(
        "picket_webhook_queue_length",
        "Webhook deliveries waiting, over every endpoint",
        gauge_of(&st.webhooks_queued),
    );
    s.counter(
        "picket_webhook_deliveries",
        "Webhook deliveries by outcome (delivered, failed, dropped)",
        [
            (vec![("outcome", "delivered".to_owned())], load(&st.webhooks_delivered)),
            (vec![("outcome", "failed".to_owned())], load(&st.webhooks_failed)),
            (vec![("outcome", "dropped".to_owned())], load(&st.webhooks_dropped)),
        ],
    );
    s.total(
        "picket_webhook_retries",
        "Webhook attempts that failed and were retried",
        load(&st.webhook_retries),
    );
    s.total(
        "picket_notify_events_missed",
        "Events the notifier missed because it fell behind",
        load(&st.notify_events_missed),
    );
}

fn tls_metrics(s: &mut Scrape, tls: &TlsStats) {
    s.counter(
        "picket_tls_handshake_failures",
        "TLS handshakes that failed, by endpoint (redis, peer, sentinel, http) and reason",
        tls.failures().map(|(endpoint, failure, n)| {
            let labels = vec![
                ("endpoint", endpoint.as_str().to_owned()),
                ("reason", failure.as_str().to_owned()),
            ];
            (labels, n)
        }),
    );
    let certificates = tls.certificates();
    s.counter(
        "picket_tls_certificate_reloads",
        "Reloads of a certificate set (node, master <name>) after its files changed, by result",
        certificates.iter().flat_map(|(name, state)| {
            let labels =
                |result: &str| vec![("certificates", name.clone()), ("result", result.to_owned())];
            [(labels("ok"), state.reloads), (labels("error"), state.reload_failures)]
        }),
    );
    s.gauge(
        "picket_tls_certificate_info",
        "The leaf certificate in use per certificate set, by SHA-256 fingerprint (always 1)",
        certificates.iter().filter_map(|(name, state)| {
            let sha256 = state.fingerprint.clone()?;
            Some((vec![("certificates", name.clone()), ("sha256", sha256)], 1))
        }),
    );
}

fn event_metrics(s: &mut Scrape, e: &EventMetrics) {
    s.register("picket_events", "Events published, by event name", None, e.events.clone());
    s.register(
        "picket_failovers_started",
        "Failovers this node started (+try-failover)",
        None,
        e.started.clone(),
    );
    s.register(
        "picket_failovers_succeeded",
        "Failovers this node led to the end (+failover-end, with or without timeout)",
        None,
        e.succeeded.clone(),
    );
    s.register(
        "picket_failovers_aborted",
        "Failovers this node started that ended without switching, by reason",
        None,
        e.aborted.clone(),
    );
    s.register(
        "picket_master_switches",
        "Master address changes this node adopted (+switch-master), led or observed",
        None,
        e.switches.clone(),
    );
    s.register(
        "picket_failover_duration",
        "Duration of the failovers this node led, from +try-failover to +failover-end",
        Some(Unit::Seconds),
        e.duration.clone(),
    );
    s.register(
        "picket_failover_possibly_lost",
        "Replication bytes the promoted replicas lacked of the old masters' last known offsets, \
         over the failovers this node led (+failover-loss)",
        Some(Unit::Bytes),
        e.lost_bytes.clone(),
    );
    s.register(
        "picket_failover_last_possibly_lost",
        "Replication bytes the last promoted replica lacked of the old master's last known offset",
        Some(Unit::Bytes),
        e.last_lost_bytes.clone(),
    );
    s.register(
        "picket_failover_last_fence_window",
        "How long after the last promotion the old master may still have accepted writes \
         (+fence-window, bounded fencing; absent when unknown)",
        Some(Unit::Seconds),
        e.last_fence_window.clone(),
    );
    s.register(
        "picket_failovers_held",
        "Automatic failovers held back (+failover-held), by reason: maintenance or min-interval",
        None,
        e.held.clone(),
    );
}

/// Rewrites prometheus-client's OpenMetrics text into the classic text format: counter families
/// are named with their `_total` suffix, `# UNIT` and `# EOF` lines go.
fn to_classic_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "gauge" | "histogram" | "summary" => (name.to_owned(), kind),
                _ => (name.to_owned(), "untyped"),
            };
            if let Some(text) = help.take().and_then(|h| h.split_once(' ')).map(|(_, t)| t) {
                let _ = writeln!(out, "# HELP {name} {text}");
            }
            let _ = writeln!(out, "# TYPE {name} {kind}");
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_counters_with_their_suffix_and_drops_openmetrics_lines() {
        let om = "# HELP a_bytes Bytes.\n# TYPE a_bytes counter\n# UNIT a_bytes bytes\n\
                  a_bytes_total 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n# EOF\n";
        assert_eq!(
            to_classic_text(om),
            "# HELP a_bytes_total Bytes.\n# TYPE a_bytes_total counter\na_bytes_total 3\n\
             # HELP g A gauge.\n# TYPE g gauge\ng 1\n"
        );
    }

    #[test]
    fn series_names_list_every_family_with_the_suffixes_prometheus_stores() {
        let names = series_names();
        for name in [
            "picket_master_info",
            "picket_instance_ping_rtt_seconds",
            "picket_gossip_sent_bytes_total",
            "picket_resp_commands_total",
            // Families without a sample yet: no failover has happened.
            "picket_master_switches_total",
            "picket_failover_duration_seconds_bucket",
            "picket_failover_duration_seconds_sum",
            "picket_failover_duration_seconds_count",
            "picket_failover_possibly_lost_bytes_total",
            "redis_sentinel_master_status",
        ] {
            assert!(names.contains(name), "{name} missing from {names:?}");
        }
        assert!(!names.contains("picket_failover_duration_seconds"), "no such series");
    }

    #[test]
    fn openmetrics_is_served_only_to_scrapers_that_ask_for_it() {
        let prometheus = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;q=0.3";
        assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::from_accept(Some("*/*")), Format::Text);
        assert_eq!(Format::from_accept(None), Format::Text);
    }

    #[test]
    fn failover_loss_fence_window_and_holds_are_counted_per_master() {
        use crate::engine::{Addr, Event, Subject};
        let metrics = EventMetrics::default();
        let addr: Addr = "10.0.0.1:6379".parse().unwrap();
        let subject = Some(Subject::Master { name: "m".into(), addr });
        let events = [
            (EventKind::FailoverLoss, Detail::Loss { bytes: 120 }),
            (EventKind::FenceWindow, Detail::Window { ms: Some(1500) }),
            (EventKind::FailoverLoss, Detail::Loss { bytes: 30 }),
            (EventKind::FailoverHeld, Detail::Held { reason: "min-interval" }),
        ];
        for (id, (kind, detail)) in (1..).zip(events) {
            let event = Event { kind, subject: subject.clone(), detail };
            metrics.observe(&EventRecord { id, unix_ms: id, event });
        }
        let mut scrape = Scrape::default();
        event_metrics(&mut scrape, &metrics);
        let mut out = String::new();
        encode_registry(&mut out, &scrape.registry).unwrap();
        for line in [
            "picket_failover_possibly_lost_bytes_total{master=\"m\"} 150",
            "picket_failover_last_possibly_lost_bytes{master=\"m\"} 30",
            "picket_failover_last_fence_window_seconds{master=\"m\"} 1.5",
            "picket_failovers_held_total{master=\"m\",reason=\"min-interval\"} 1",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
        }
    }
}
