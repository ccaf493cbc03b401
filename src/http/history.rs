//! `GET /v1/history`: the recent failovers of each master, with their timelines, rebuilt from the
//! events this node published.
//!
//! A failover's timeline is the sequence of its milestones as this node saw them: `detected`
//! (`+sdown` of the master), `odown`, then on the leader `started` (`+try-failover`), `elected`,
//! `catch_up` (a planned switchover waits for the replica), `promoted`, `fence_wait` (strict
//! fencing holds the new master's writes), one `replica_reconfigured` per replica and `done`
//! (`+failover-end`); on an
//! observer `config_update` (`+config-update-from`) and `done` (`+switch-master`). Each step
//! carries its time since the first step and since the previous one. Only events feed it, so it
//! restarts empty with the process.

use std::collections::{BTreeMap, VecDeque};
use std::sync::PoisonError;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::engine::{Addr, Detail, EventKind, Subject};
use crate::hub::EventRecord;

use super::{Access, ApiError, Shared, rejected};

/// Finished failovers kept per master.
pub const FAILOVERS_PER_MASTER: usize = 16;
/// Most steps in one timeline (a group with many replicas stops recording reconfigurations).
pub const MAX_STEPS: usize = 64;

/// Failovers per master.
#[derive(Debug, Default)]
pub(super) struct FailoverHistory {
    masters: BTreeMap<String, Track>,
}

/// One master's state.
#[derive(Debug, Default)]
struct Track {
    /// `+sdown` of the master, before any failover started.
    detected: Option<Step>,
    /// `+odown`, likewise.
    odown: Option<Step>,
    open: Option<Failover>,
    /// Most recent first.
    done: VecDeque<Failover>,
}

/// One failover as this node saw it.
#[derive(Clone, Debug, Serialize)]
struct Failover {
    master: String,
    /// `leader` if this node ran it, else `observer`.
    role: &'static str,
    /// Known on the leader.
    epoch: Option<u64>,
    /// `in_progress`, `succeeded` or `aborted`.
    outcome: &'static str,
    /// Why it was aborted: `not_elected`, `no_good_replica`, `replica_timeout`,
    /// `switchover_timeout`, `superseded`, `reset`.
    reason: Option<&'static str>,
    /// A planned switchover (the master's writes were paused for the replica to catch up).
    switchover: bool,
    /// Known on the leader: the replication bytes the promoted replica lacked of the old
    /// master's last known offset (`+failover-loss`): acknowledged writes possibly lost.
    bytes_possibly_lost: Option<u64>,
    /// Known on the leader with `fencing = "bounded"` (`+fence-window`): how long after the
    /// promotion the old master may still have accepted writes.
    fence_window: Option<FenceWindow>,
    old_master: Option<Addr>,
    new_master: Option<Addr>,
    started_unix_ms: u64,
    ended_unix_ms: Option<u64>,
    duration_ms: Option<u64>,
    timeline: Vec<Step>,
}

/// `+fence-window`.
#[derive(Clone, Copy, Debug, Serialize)]
struct FenceWindow {
    /// Milliseconds, or `null`: not known (a replica keeping the old master's lease may still
    /// acknowledge it).
    ms: Option<u64>,
}

/// One milestone.
#[derive(Clone, Debug, Serialize)]
struct Step {
    step: &'static str,
    /// The event that marked it.
    event: &'static str,
    /// The event's id.
    id: u64,
    unix_ms: u64,
    since_start_ms: u64,
    since_previous_ms: u64,
    /// The replica concerned, for replica steps.
    instance: Option<Addr>,
}

impl Step {
    fn of(record: &EventRecord, step: &'static str) -> Self {
        let instance = match &record.event.subject {
            Some(Subject::Replica { addr, .. }) => Some(addr.clone()),
            _ => None,
        };
        Self {
            step,
            event: record.event.channel(),
            id: record.id,
            unix_ms: record.unix_ms,
            since_start_ms: 0,
            since_previous_ms: 0,
            instance,
        }
    }
}

impl Failover {
    /// A failover whose first steps are the detection steps seen before it started. They stay
    /// with the master until it recovers or switches, so a retry after an aborted attempt (a split
    /// vote, say) still starts its timeline at the outage's detection.
    fn open(master: &str, role: &'static str, old_master: Option<Addr>, track: &mut Track) -> Self {
        let mut failover = Self {
            master: master.to_owned(),
            role,
            epoch: None,
            outcome: "in_progress",
            reason: None,
            switchover: false,
            bytes_possibly_lost: None,
            fence_window: None,
            old_master,
            new_master: None,
            started_unix_ms: 0,
            ended_unix_ms: None,
            duration_ms: None,
            timeline: Vec::new(),
        };
        for step in [track.detected.clone(), track.odown.clone()].into_iter().flatten() {
            failover.push(step);
        }
        failover
    }

    fn push(&mut self, mut step: Step) {
        if self.timeline.len() >= MAX_STEPS {
            return;
        }
        match self.timeline.last() {
            None => self.started_unix_ms = step.unix_ms,
            Some(previous) => {
                step.since_start_ms = step.unix_ms.saturating_sub(self.started_unix_ms);
                step.since_previous_ms = step.unix_ms.saturating_sub(previous.unix_ms);
            }
        }
        self.timeline.push(step);
    }

    fn has(&self, step: &str) -> bool {
        self.timeline.iter().any(|s| s.step == step)
    }
}

impl Track {
    /// Files the open failover as finished.
    fn close(&mut self, outcome: &'static str, reason: Option<&'static str>) {
        let Some(mut failover) = self.open.take() else { return };
        failover.outcome = outcome;
        failover.reason = reason;
        let ended = failover.timeline.last().map_or(failover.started_unix_ms, |s| s.unix_ms);
        failover.ended_unix_ms = Some(ended);
        failover.duration_ms = Some(ended.saturating_sub(failover.started_unix_ms));
        self.done.push_front(failover);
        self.done.truncate(FAILOVERS_PER_MASTER);
    }

    /// The open failover, opened as `role` if there is none.
    fn ensure_open(
        &mut self,
        master: &str,
        role: &'static str,
        old: Option<Addr>,
    ) -> &mut Failover {
        let failover = match self.open.take() {
            Some(failover) => failover,
            None => Failover::open(master, role, old, self),
        };
        self.open.insert(failover)
    }

    fn step(&mut self, record: &EventRecord, step: &'static str) {
        if let Some(failover) = &mut self.open {
            failover.push(Step::of(record, step));
        }
    }
}

fn master_addr(record: &EventRecord) -> Option<Addr> {
    match &record.event.subject {
        Some(Subject::Master { addr, .. }) => Some(addr.clone()),
        Some(Subject::Replica { master_addr, .. } | Subject::Peer { master_addr, .. }) => {
            Some(master_addr.clone())
        }
        None => None,
    }
}

impl FailoverHistory {
    /// Updates the timelines with one published event.
    pub(super) fn observe(&mut self, record: &EventRecord) {
        let event = &record.event;
        let Some(name) = event.master_name() else { return };
        if event.kind == EventKind::Unmonitor {
            self.masters.remove(name);
            return;
        }
        let on_master = matches!(event.subject, Some(Subject::Master { .. }));
        let track = self.masters.entry(name.to_owned()).or_default();
        match event.kind {
            EventKind::Sdown if on_master && track.open.is_none() => {
                track.detected.get_or_insert_with(|| Step::of(record, "detected"));
            }
            EventKind::SdownCleared if on_master && track.open.is_none() => {
                track.detected = None;
                track.odown = None;
            }
            EventKind::Odown if track.open.is_none() => {
                track.odown.get_or_insert_with(|| Step::of(record, "odown"));
            }
            EventKind::OdownCleared if track.open.is_none() => track.odown = None,
            EventKind::TryFailover => {
                track.close("aborted", Some("superseded"));
                let mut failover = Failover::open(name, "leader", master_addr(record), track);
                if let Detail::Attempt { epoch } = event.detail {
                    failover.epoch = Some(epoch);
                }
                failover.push(Step::of(record, "started"));
                track.open = Some(failover);
            }
            EventKind::ElectedLeader => {
                track.ensure_open(name, "leader", master_addr(record));
                track.step(record, "elected");
            }
            EventKind::PromotedReplica => {
                let promoted = match &event.subject {
                    Some(Subject::Replica { addr, .. }) => Some(addr.clone()),
                    _ => None,
                };
                track.ensure_open(name, "leader", master_addr(record)).new_master = promoted;
                track.step(record, "promoted");
            }
            EventKind::StateWaitCatchUp => {
                if let Some(failover) = &mut track.open {
                    failover.switchover = true;
                }
                track.step(record, "catch_up");
            }
            EventKind::StateWaitFence => track.step(record, "fence_wait"),
            EventKind::FailoverLoss => {
                if let (Some(failover), Detail::Loss { bytes }) = (&mut track.open, &event.detail) {
                    failover.bytes_possibly_lost = Some(*bytes);
                }
            }
            EventKind::FenceWindow => {
                if let (Some(failover), Detail::Window { ms }) = (&mut track.open, &event.detail) {
                    failover.fence_window = Some(FenceWindow { ms: *ms });
                }
            }
            EventKind::ReplicaReconfDone
            | EventKind::ReplicaReconfTimeout
            | EventKind::ReplicaReconfBestEffort => track.step(record, "replica_reconfigured"),
            EventKind::FailoverEnd | EventKind::FailoverEndForTimeout => track.step(record, "done"),
            EventKind::ConfigUpdateFrom => {
                if track.open.as_ref().is_some_and(|f| f.role == "leader") {
                    track.close("aborted", Some("superseded"));
                }
                track.ensure_open(name, "observer", master_addr(record));
                track.step(record, "config_update");
            }
            EventKind::SwitchMaster => {
                let Detail::Switch { old, new, .. } = &event.detail else { return };
                let failover = track.ensure_open(name, "observer", Some(old.clone()));
                failover.new_master = Some(new.clone());
                if !failover.has("done") {
                    failover.push(Step::of(record, "done"));
                }
                track.close("succeeded", None);
                track.detected = None;
                track.odown = None;
            }
            EventKind::AbortNotElected => abort(track, record, "not_elected"),
            EventKind::AbortNoGoodReplica => abort(track, record, "no_good_replica"),
            EventKind::AbortReplicaTimeout => abort(track, record, "replica_timeout"),
            EventKind::AbortSwitchoverTimeout => abort(track, record, "switchover_timeout"),
            EventKind::ResetMaster => {
                track.close("aborted", Some("reset"));
                track.detected = None;
                track.odown = None;
            }
            _ => {}
        }
    }

    /// Every failover kept (finished and in progress), most recent first, optionally of one
    /// master only.
    fn list(&self, master: Option<&str>) -> Vec<&Failover> {
        let mut all: Vec<&Failover> = self
            .masters
            .iter()
            .filter(|(name, _)| master.is_none_or(|m| m == name.as_str()))
            .flat_map(|(_, t)| t.open.iter().chain(t.done.iter()))
            .collect();
        all.sort_by_key(|f| std::cmp::Reverse(f.started_unix_ms));
        all
    }
}

fn abort(track: &mut Track, record: &EventRecord, reason: &'static str) {
    if track.open.is_some() {
        track.step(record, "aborted");
        track.close("aborted", Some(reason));
    }
}

/// `GET /v1/history`.
#[derive(Serialize)]
struct HistoryJson<'a> {
    /// Most recent first.
    failovers: Vec<&'a Failover>,
}

/// The query of `GET /v1/history`.
#[derive(Deserialize)]
pub(super) struct HistoryQuery {
    /// Only this master's failovers.
    master: Option<String>,
}

/// `GET /v1/history[?master=name]`.
pub(super) async fn history(
    State(state): State<Shared>,
    headers: HeaderMap,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Access::Read)?;
    let Query(query) = query.map_err(|r| rejected(r, "bad_query"))?;
    let history = state.history.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(name) = &query.master
        && state.hub.view().master(name).is_none()
        && !history.masters.contains_key(name)
    {
        return Err(ApiError::no_such_master(name));
    }
    let body = HistoryJson { failovers: history.list(query.master.as_deref()) };
    Ok(Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Event;

    fn addr(s: &str) -> Addr {
        s.parse().unwrap()
    }

    fn master_event(kind: EventKind) -> Event {
        Event::about(kind, Subject::Master { name: "m".into(), addr: addr("10.0.0.1:6379") })
    }

    fn feed(history: &mut FailoverHistory, events: Vec<Event>) {
        for (i, event) in events.into_iter().enumerate() {
            let id = u64::try_from(i).unwrap() + 1;
            history.observe(&EventRecord { id, unix_ms: 1000 * id, event });
        }
    }

    #[test]
    fn an_observer_timeline_runs_from_detection_to_the_switch() {
        let mut history = FailoverHistory::default();
        let switch = Event {
            kind: EventKind::SwitchMaster,
            subject: None,
            detail: Detail::Switch {
                name: "m".into(),
                old: addr("10.0.0.1:6379"),
                new: addr("10.0.0.2:6379"),
            },
        };
        feed(
            &mut history,
            vec![master_event(EventKind::Sdown), master_event(EventKind::Odown), switch],
        );
        let list = history.list(None);
        assert_eq!(list.len(), 1);
        let f = list[0];
        assert_eq!((f.role, f.outcome, f.duration_ms), ("observer", "succeeded", Some(2000)));
        let steps: Vec<&str> = f.timeline.iter().map(|s| s.step).collect();
        assert_eq!(steps, ["detected", "odown", "done"]);
        assert_eq!(f.timeline[2].since_previous_ms, 1000);
        assert_eq!(f.new_master, Some(addr("10.0.0.2:6379")));
    }

    #[test]
    fn a_leader_abort_is_recorded_with_its_reason_and_epoch() {
        let mut history = FailoverHistory::default();
        let attempt =
            Event { detail: Detail::Attempt { epoch: 7 }, ..master_event(EventKind::TryFailover) };
        // A vote for another node's newer epoch in between does not change this attempt's.
        let vote = Event {
            kind: EventKind::VoteForLeader,
            subject: None,
            detail: Detail::Vote {
                leader: "a".repeat(40).parse().unwrap(),
                epoch: 8,
                master: "m".into(),
            },
        };
        feed(
            &mut history,
            vec![
                master_event(EventKind::Odown),
                attempt,
                vote,
                master_event(EventKind::AbortNotElected),
            ],
        );
        let f = history.list(Some("m"))[0];
        assert_eq!(
            (f.role, f.outcome, f.reason, f.epoch),
            ("leader", "aborted", Some("not_elected"), Some(7))
        );
        let steps: Vec<&str> = f.timeline.iter().map(|s| s.step).collect();
        assert_eq!(steps, ["odown", "started", "aborted"]);
    }

    #[test]
    fn a_switchover_records_its_loss_and_fence_window() {
        let mut history = FailoverHistory::default();
        let replica = Subject::Replica {
            addr: addr("10.0.0.2:6379"),
            master: "m".into(),
            master_addr: addr("10.0.0.1:6379"),
        };
        let with = |kind, detail| Event {
            kind,
            subject: Some(Subject::Master { name: "m".into(), addr: addr("10.0.0.1:6379") }),
            detail,
        };
        feed(
            &mut history,
            vec![
                master_event(EventKind::TryFailover),
                master_event(EventKind::StateWaitCatchUp),
                Event::about(EventKind::PromotedReplica, replica),
                with(EventKind::FailoverLoss, Detail::Loss { bytes: 0 }),
                with(EventKind::FenceWindow, Detail::Window { ms: Some(0) }),
                master_event(EventKind::FailoverEnd),
            ],
        );
        let f = history.list(Some("m"))[0];
        assert!(f.switchover);
        assert_eq!((f.bytes_possibly_lost, f.fence_window.map(|w| w.ms)), (Some(0), Some(Some(0))));
        let steps: Vec<&str> = f.timeline.iter().map(|s| s.step).collect();
        assert_eq!(steps, ["started", "catch_up", "promoted", "done"]);
        let json = serde_json::to_value(f).unwrap();
        assert_eq!(json["bytes_possibly_lost"], 0);
        assert_eq!(json["fence_window"]["ms"], 0);
        feed(
            &mut history,
            vec![
                master_event(EventKind::TryFailover),
                master_event(EventKind::StateWaitCatchUp),
                master_event(EventKind::AbortSwitchoverTimeout),
            ],
        );
        let f = history.list(Some("m"))[0];
        assert_eq!((f.outcome, f.reason), ("aborted", Some("switchover_timeout")));
    }
}
