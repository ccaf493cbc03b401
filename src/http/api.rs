//! Discovery (`/v1/masters`), role checks for load balancers and probes, and the admin routes.
//!
//! Everything here is computed from one [`View`] per request, and the JSON shapes are a contract
//! with clients: add fields, never rename or remove one.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::engine::election::Authorisation;
use crate::engine::gossip::MasterReport;
use crate::engine::selection::Ineligible;
use crate::engine::view::{InstanceView, MasterView, PeerReportView};
use crate::engine::{
    Addr, AdminAnswer, AdminCommand, AdminRefusal, Fencing, Instant, Lease, MasterStatus, NodeId,
    View,
};
use crate::metrics::{agreeing_peers, healthy_replica};

use super::safety::ScheduledJson;
use super::{Access, ApiError, Shared, millis, ms_since, rejected};

/// `GET /v1/masters`.
#[derive(Serialize)]
struct MastersJson<'a> {
    node: NodeJson<'a>,
    masters: Vec<MasterJson<'a>>,
}

/// This node, as the discovery answers describe it.
#[derive(Serialize)]
struct NodeJson<'a> {
    id: NodeId,
    /// Sentinel-port address.
    address: &'a Addr,
    /// Gossip address.
    gossip_address: &'a Addr,
    current_epoch: u64,
    tilt: bool,
    voters: usize,
    majority: usize,
    fresh_peers: usize,
}

/// One master group.
#[derive(Serialize)]
struct MasterJson<'a> {
    name: &'a str,
    /// The current master's address.
    address: &'a Addr,
    config_epoch: u64,
    quorum: u32,
    /// `ok`, `sdown`, `odown`, or `failover-in-progress` while this node or a peer runs one.
    status: &'static str,
    /// `ok`, `sdown` or `odown`, failover or not.
    health: MasterStatus,
    /// Voters that saw the master down at the last evaluation.
    odown_votes: usize,
    failover: Option<FailoverJson<'a>>,
    master: InstanceJson<'a>,
    replicas: Vec<InstanceJson<'a>>,
    replicas_healthy: usize,
    /// Each configured peer's latest report about this master.
    peers: Vec<PeerJson<'a>>,
    /// Fresh peers reporting the same address under the same config epoch.
    peers_agreeing: usize,
    /// The redis-sentinel voters listed in `sentinel_peers` (empty when the mode is off).
    sentinels: Vec<SentinelJson<'a>>,
    /// Whether a failover can be authorised now (`SENTINEL CKQUORUM`, computed by the engine):
    /// usable voters, quorum, votes needed, and why not (`blocked`).
    authorisation: Authorisation,
    settings: SettingsJson,
    /// Maintenance mode: automatic failovers paused (on every node), and why one is held back.
    maintenance: MaintenanceJson,
    /// How the master is fenced now.
    fencing: FencingJson,
    /// A planned switchover waiting for its time on this node.
    scheduled_switchover: Option<ScheduledJson>,
}

/// Maintenance mode and anti-flapping.
#[derive(Serialize)]
struct MaintenanceJson {
    /// Automatic failovers are paused.
    paused: bool,
    /// Why an automatic failover is being held back: `maintenance` or `min-interval`.
    held: Option<&'static str>,
}

/// The fence of the master.
#[derive(Serialize)]
struct FencingJson {
    /// `off`, `bounded` or `strict`.
    mode: Fencing,
    /// The lease the master reported: `min-replicas-to-write` and `min-replicas-max-lag`.
    lease: Option<Lease>,
    /// This node is cut off from its peers and pauses the master's writes itself.
    isolation_fence: bool,
}

/// A failover in progress, run by this node (`leader: "self"`) or reported by a peer.
#[derive(Serialize)]
struct FailoverJson<'a> {
    /// `self`, or the leading peer's node id.
    leader: String,
    epoch: u64,
    /// Sentinel's state name; known only for this node's own failover.
    state: Option<&'static str>,
    elected: bool,
    manual: Option<bool>,
    promoted: Option<&'a Addr>,
    started_ms_ago: Option<u64>,
    state_ms_ago: Option<u64>,
}

/// One Redis instance.
#[derive(Serialize)]
struct InstanceJson<'a> {
    address: &'a Addr,
    /// The role it reports in INFO: `master` or `slave` (unknown before its first INFO).
    role: Option<&'static str>,
    run_id: Option<&'a str>,
    /// `ok` or `sdown`.
    status: &'static str,
    /// This node's connection to it: `up` or `down`.
    link: &'static str,
    sdown_ms: Option<u64>,
    last_ok_ping_ms_ago: u64,
    last_reply_ms_ago: Option<u64>,
    /// Time since its last INFO reply (`null` before the first): `why` shows how stale it is.
    info_ms_ago: Option<u64>,
    ping_rtt_ms: Option<u64>,
    /// Replication offset it reports.
    offset: u64,
    /// Replicas: bytes behind the master's offset.
    lag_bytes: Option<u64>,
    /// Replicas: seconds since the master last heard from it (the master's INFO `lag`).
    lag_seconds: Option<u64>,
    /// Replicas: their replication link as they report it.
    replication: Option<ReplicationJson<'a>>,
    /// Replicas: whether a failover could promote it now (the engine's eligibility rule).
    healthy: Option<bool>,
    /// Why a failover could not promote it now (`priority_zero`, `sdown`, ...).
    ineligible: Option<Ineligible>,
    priority: u32,
    /// Chosen for promotion by this node's failover.
    promoted: bool,
    /// Repointing state during this node's failover.
    reconfiguration: Option<&'static str>,
}

/// A replica's link to its master.
#[derive(Serialize)]
struct ReplicationJson<'a> {
    master: Option<&'a Addr>,
    /// `up` or `down` (`master_link_status`).
    link: &'static str,
    link_down_seconds: Option<u64>,
}

/// A peer and its latest report.
#[derive(Serialize)]
struct PeerJson<'a> {
    node_id: Option<NodeId>,
    /// Its Sentinel-port address.
    address: Option<&'a Addr>,
    fresh: bool,
    last_heard_ms_ago: Option<u64>,
    report: Option<&'a MasterReport>,
    /// Its report names the same address under the same config epoch.
    agrees: bool,
}

/// A listed redis-sentinel voter, as this node knows it.
#[derive(Serialize)]
struct SentinelJson<'a> {
    /// Its configured address (its Sentinel port).
    address: &'a Addr,
    /// The run id its hellos announce.
    run_id: Option<NodeId>,
    /// Heard within an answer's validity (5 s): it counts as a usable voter.
    fresh: bool,
    last_heard_ms_ago: Option<u64>,
    /// Its latest answer says it sees the master down.
    master_down: bool,
    /// Its last known vote.
    voted_for: Option<NodeId>,
    voted_epoch: u64,
}

/// The master's timing settings.
#[derive(Serialize)]
struct SettingsJson {
    down_after_ms: u64,
    /// The crash rule's threshold; 0: off.
    down_after_refused_ms: u64,
    failover_timeout_ms: u64,
    parallel_syncs: u32,
    fencing: Fencing,
    max_lag_on_failover_bytes: Option<u64>,
    /// 0: no minimum.
    min_failover_interval_ms: u64,
    switchover_timeout_ms: u64,
}

fn node_json(view: &View) -> NodeJson<'_> {
    NodeJson {
        id: view.node_id,
        address: &view.client_addr,
        gossip_address: &view.announce,
        current_epoch: view.current_epoch,
        tilt: view.tilt_since.is_some(),
        voters: view.voters,
        majority: view.majority,
        fresh_peers: view.fresh_peers(),
    }
}

fn master_json<'a>(
    view: &View,
    m: &'a MasterView,
    now: Instant,
    scheduled_switchover: Option<ScheduledJson>,
) -> MasterJson<'a> {
    let failover = failover_json(m, now);
    let status = if failover.is_some() { "failover-in-progress" } else { m.status.as_str() };
    let master_offset = m.master.info_at.map(|_| m.master.repl_offset);
    MasterJson {
        name: &m.name,
        address: &m.addr,
        config_epoch: m.config_epoch,
        quorum: m.quorum,
        status,
        health: m.status,
        odown_votes: m.odown_votes,
        failover,
        master: instance_json(&m.master, now, None),
        replicas: m
            .replicas
            .iter()
            .map(|r| {
                let mut json = instance_json(r, now, Some(healthy_replica(r)));
                json.lag_bytes = master_offset
                    .filter(|_| r.info_at.is_some())
                    .map(|o| o.saturating_sub(r.repl_offset));
                json.lag_seconds = r.listed_lag_s;
                json
            })
            .collect(),
        replicas_healthy: m.replicas.iter().filter(|r| healthy_replica(r)).count(),
        peers: m.peers.iter().map(|p| peer_json(m, p, now)).collect(),
        peers_agreeing: agreeing_peers(m),
        sentinels: m
            .sentinels
            .iter()
            .map(|sv| SentinelJson {
                address: &sv.addr,
                run_id: sv.run_id,
                fresh: sv.fresh,
                last_heard_ms_ago: sv.last_heard_at.map(|t| ms_since(now, t)),
                master_down: sv.master_down,
                voted_for: sv.voted_for,
                voted_epoch: sv.voted_epoch,
            })
            .collect(),
        authorisation: view.authorisation(m),
        settings: SettingsJson {
            down_after_ms: millis(m.down_after),
            down_after_refused_ms: m.down_after_refused.map_or(0, millis),
            failover_timeout_ms: millis(m.failover_timeout),
            parallel_syncs: m.parallel_syncs,
            fencing: m.safety.fencing,
            max_lag_on_failover_bytes: m.safety.max_lag_on_failover_bytes,
            min_failover_interval_ms: m.safety.min_failover_interval.map_or(0, millis),
            switchover_timeout_ms: millis(m.safety.switchover_timeout),
        },
        maintenance: MaintenanceJson { paused: m.safety.maintenance_paused, held: m.safety.held },
        fencing: FencingJson {
            mode: m.safety.fencing,
            lease: m.safety.lease,
            isolation_fence: m.safety.isolation_fence,
        },
        scheduled_switchover,
    }
}

fn failover_json(m: &MasterView, now: Instant) -> Option<FailoverJson<'_>> {
    if let Some(f) = &m.failover {
        return Some(FailoverJson {
            leader: "self".to_owned(),
            epoch: f.epoch,
            state: Some(f.state),
            elected: f.state != "wait_start",
            manual: Some(f.manual),
            promoted: f.promoted.as_ref(),
            started_ms_ago: Some(ms_since(now, f.started_at)),
            state_ms_ago: Some(ms_since(now, f.state_since)),
        });
    }
    // A fresh peer leading a failover of this master; the newest epoch wins.
    m.peers
        .iter()
        .filter(|p| p.fresh)
        .filter_map(|p| Some((p, p.report.as_ref()?.failover?)))
        .max_by_key(|(_, f)| f.epoch)
        .map(|(p, f)| FailoverJson {
            leader: p.node_id.map(|id| id.to_string()).unwrap_or_default(),
            epoch: f.epoch,
            state: None,
            elected: f.elected,
            manual: None,
            promoted: None,
            started_ms_ago: None,
            state_ms_ago: None,
        })
}

fn instance_json(i: &InstanceView, now: Instant, healthy: Option<bool>) -> InstanceJson<'_> {
    InstanceJson {
        address: &i.addr,
        role: i.role,
        run_id: i.run_id.as_deref(),
        status: if i.sdown_since.is_some() { "sdown" } else { "ok" },
        link: if i.link_up { "up" } else { "down" },
        sdown_ms: i.sdown_since.map(|t| ms_since(now, t)),
        last_ok_ping_ms_ago: ms_since(now, i.last_ok_reply_at),
        last_reply_ms_ago: i.last_reply_at.map(|t| ms_since(now, t)),
        info_ms_ago: i.info_at.map(|t| ms_since(now, t)),
        ping_rtt_ms: i.ping_rtt.map(millis),
        offset: i.repl_offset,
        lag_bytes: None,
        lag_seconds: None,
        replication: i.replica_link.as_ref().map(|l| ReplicationJson {
            master: l.master.as_ref(),
            link: if l.link_up { "up" } else { "down" },
            link_down_seconds: l.link_down_for.map(|d| d.as_secs()),
        }),
        healthy,
        ineligible: i.ineligible,
        priority: i.priority,
        promoted: i.promoted,
        reconfiguration: i.reconf,
    }
}

fn peer_json<'a>(m: &'a MasterView, p: &'a PeerReportView, now: Instant) -> PeerJson<'a> {
    PeerJson {
        node_id: p.node_id,
        address: p.client_addr.as_ref(),
        fresh: p.fresh,
        last_heard_ms_ago: p.last_heard_at.map(|t| ms_since(now, t)),
        report: p.report.as_ref(),
        agrees: p
            .report
            .as_ref()
            .is_some_and(|r| r.addr == m.addr && r.config_epoch == m.config_epoch),
    }
}

/// `GET /v1/masters`.
pub(super) async fn masters(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Access::Read)?;
    let view = state.hub.view();
    let now = state.hub.clock.now();
    let body = MastersJson {
        node: node_json(&view),
        masters: view
            .masters
            .iter()
            .map(|m| master_json(&view, m, now, state.schedule.get(&m.name)))
            .collect(),
    };
    Ok(Json(body).into_response())
}

/// `GET /v1/masters/{name}`.
pub(super) async fn master(
    State(state): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Access::Read)?;
    let Path(name) = name.map_err(|r| rejected(r, "bad_path"))?;
    let view = state.hub.view();
    let m = view.master(&name).ok_or_else(|| ApiError::no_such_master(&name))?;
    let scheduled = state.schedule.get(&name);
    Ok(Json(master_json(&view, m, state.hub.clock.now(), scheduled)).into_response())
}

/// The query of the role checks.
#[derive(Deserialize)]
pub(super) struct RoleQuery {
    addr: Option<String>,
}

/// A role check's answer (the status code is the answer; the body explains it).
#[derive(Serialize)]
struct RoleJson<'a> {
    master: &'a str,
    address: &'a Addr,
    role: &'static str,
    /// Whether `address` has the role asked about.
    ok: bool,
    current_master: &'a Addr,
    reason: Option<&'static str>,
}

fn role_check(
    state: &Shared,
    headers: &HeaderMap,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<RoleQuery>, QueryRejection>,
    role: &'static str,
) -> Result<Response, ApiError> {
    state.authorize(headers, Access::Read)?;
    let Path(name) = name.map_err(|r| rejected(r, "bad_path"))?;
    let Query(query) = query.map_err(|r| rejected(r, "bad_query"))?;
    let text = query.addr.ok_or_else(|| {
        ApiError::bad_request("bad_query", "missing query parameter addr=host:port")
    })?;
    let addr: Addr =
        text.parse().map_err(|e| ApiError::bad_request("bad_address", format!("addr: {e}")))?;
    let view = state.hub.view();
    let m = view.master(&name).ok_or_else(|| ApiError::no_such_master(&name))?;
    let reason = if role == "master" {
        (m.addr != addr).then_some("not_the_current_master")
    } else {
        match m.replicas.iter().find(|r| r.addr == addr) {
            None => Some("not_a_known_replica"),
            // The engine's own rule: a replica the failover could promote now.
            Some(r) => r.ineligible.map(Ineligible::as_str),
        }
    };
    let body = RoleJson {
        master: &m.name,
        address: &addr,
        role,
        ok: reason.is_none(),
        current_master: &m.addr,
        reason,
    };
    let status = if reason.is_none() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Ok((status, Json(body)).into_response())
}

/// `GET /v1/masters/{name}/is-master?addr=host:port`: 200 if `addr` is the current master.
pub(super) async fn is_master(
    State(state): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<RoleQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    role_check(&state, &headers, name, query, "master")
}

/// `GET /v1/masters/{name}/is-replica?addr=host:port`: 200 if `addr` is a healthy replica.
pub(super) async fn is_replica(
    State(state): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<RoleQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    role_check(&state, &headers, name, query, "replica")
}

/// The optional body of the admin routes.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminBody {
    /// Why, for the log.
    reason: Option<String>,
}

/// Checks the token, the path and the body of an admin request; returns the master's name and
/// the operator's reason.
fn admin_request(
    state: &Shared,
    headers: &HeaderMap,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(String, Option<String>), ApiError> {
    state.authorize(headers, Access::Admin)?;
    let Path(name) = name.map_err(|r| rejected(r, "bad_path"))?;
    let body = body.map_err(|r| rejected(r, "bad_body"))?;
    let body: AdminBody = if body.iter().all(u8::is_ascii_whitespace) {
        AdminBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("bad_json", format!("request body: {e}")))?
    };
    if state.hub.view().master(&name).is_none() {
        return Err(ApiError::no_such_master(&name));
    }
    Ok((name, body.reason))
}

/// An engine refusal as an HTTP error: the status follows the refusal's kind.
pub(super) fn refused(refusal: &AdminRefusal) -> ApiError {
    let (status, code) = match refusal {
        AdminRefusal::InProgress => (StatusCode::CONFLICT, "failover_in_progress"),
        AdminRefusal::NoGoodReplica => (StatusCode::CONFLICT, "no_good_replica"),
        AdminRefusal::NoQuorum(_) => (StatusCode::SERVICE_UNAVAILABLE, "no_quorum"),
        AdminRefusal::NoSuchMaster => (StatusCode::NOT_FOUND, "no_such_master"),
        AdminRefusal::DuplicateName
        | AdminRefusal::QuorumZero
        | AdminRefusal::QuorumAboveVoters { .. }
        | AdminRefusal::AlreadyMonitored { .. }
        | AdminRefusal::RefusedNotBelowDownAfter { .. } => (StatusCode::CONFLICT, "refused"),
        AdminRefusal::PatternTooLong(_) => (StatusCode::BAD_REQUEST, "pattern_too_long"),
    };
    ApiError::new(status, code, refusal.to_string())
}

/// `POST /v1/masters/{name}/failover`: starts a manual failover (202), which still needs the
/// votes of a majority.
pub(super) async fn failover(
    State(state): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (name, reason) = admin_request(&state, &headers, name, body)?;
    let reason = reason.as_deref();
    tracing::warn!(master = %name, reason, "manual failover requested over HTTP");
    match state.hub.admin(AdminCommand::Failover { master: name.clone() }).await {
        Some(
            AdminAnswer::Ok
            | AdminAnswer::Count(_)
            | AdminAnswer::Down(_)
            | AdminAnswer::InfoCache(_),
        ) => Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "master": name, "failover": "started" })),
        )
            .into_response()),
        Some(AdminAnswer::Refused(refusal)) => Err(refused(&refusal)),
        None => Err(ApiError::unavailable()),
    }
}

/// `POST /v1/masters/{name}/reset`: forgets the master's replicas and any failover in progress
/// (Sentinel's `SENTINEL RESET`, for exactly this name).
pub(super) async fn reset(
    State(state): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (name, reason) = admin_request(&state, &headers, name, body)?;
    let reason = reason.as_deref();
    tracing::warn!(master = %name, reason, "reset requested over HTTP");
    match state.hub.admin(AdminCommand::Reset { pattern: glob_literal(&name) }).await {
        Some(AdminAnswer::Count(0)) => Err(ApiError::no_such_master(&name)),
        Some(AdminAnswer::Count(n)) => {
            Ok(Json(serde_json::json!({ "master": name, "reset": n })).into_response())
        }
        Some(AdminAnswer::Ok | AdminAnswer::Down(_) | AdminAnswer::InfoCache(_)) => {
            Ok(Json(serde_json::json!({ "master": name, "reset": 1 })).into_response())
        }
        Some(AdminAnswer::Refused(refusal)) => Err(refused(&refusal)),
        None => Err(ApiError::unavailable()),
    }
}

/// A glob pattern matching exactly `name`: the engine's reset takes a pattern, and a name may
/// contain pattern characters.
fn glob_literal(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::glob;

    #[test]
    fn reset_patterns_match_exactly_the_name() {
        for name in ["cache", "a*b", "x?[y]\\z"] {
            assert!(glob::matches(glob_literal(name).as_bytes(), name.as_bytes()), "{name}");
        }
        assert!(!glob::matches(glob_literal("a*b").as_bytes(), b"aXb"));
    }

    #[test]
    fn refusals_map_to_statuses() {
        use crate::engine::election::Unauthorised;
        let no_quorum = refused(&AdminRefusal::NoQuorum(Unauthorised::NoMajority));
        assert_eq!(no_quorum.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused(&AdminRefusal::InProgress).status, StatusCode::CONFLICT);
        assert_eq!(refused(&AdminRefusal::NoSuchMaster).status, StatusCode::NOT_FOUND);
    }
}
