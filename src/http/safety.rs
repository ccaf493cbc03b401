//! Data-safety routes: planned switchovers, now or at a time, and maintenance mode.
//!
//! A switchover is the engine's failover of a reachable, fenced master: it pauses the master's
//! writes, waits for the chosen replica to catch up, and only then promotes it, so no
//! acknowledged write is lost (or it gives up after `switchover_timeout_ms` and leaves the
//! master serving). Scheduling is the only thing this module adds: it holds the operator's
//! request until its time and then sends it, as if it had just arrived, with the same checks.
//! A schedule lives in this process only: it is neither replicated nor persisted, and a restart
//! forgets it (the answer says which node holds it).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::engine::{AdminAnswer, AdminCommand};

use super::api::refused;
use super::{Access, ApiError, Shared, rejected};

/// How far ahead a switchover may be scheduled.
pub const MAX_SCHEDULE_AHEAD: Duration = Duration::from_secs(7 * 24 * 3600);

/// The switchovers waiting for their time, by master: at most one each.
#[derive(Debug, Default)]
pub(super) struct Schedule {
    entries: Mutex<BTreeMap<String, Scheduled>>,
}

/// One scheduled switchover.
#[derive(Debug)]
struct Scheduled {
    at: String,
    at_unix_ms: u64,
    reason: Option<String>,
    task: tokio::task::AbortHandle,
}

/// A scheduled switchover as `/v1/masters` shows it.
#[derive(Clone, Debug, Serialize)]
pub(super) struct ScheduledJson {
    /// As the operator wrote it (RFC 3339).
    at: String,
    at_unix_ms: u64,
    reason: Option<String>,
}

impl Schedule {
    /// The switchover scheduled for `master`, if any.
    pub(super) fn get(&self, master: &str) -> Option<ScheduledJson> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(master).map(|s| ScheduledJson {
            at: s.at.clone(),
            at_unix_ms: s.at_unix_ms,
            reason: s.reason.clone(),
        })
    }

    fn remove(&self, master: &str) -> Option<Scheduled> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).remove(master)
    }
}

/// The body of `POST .../switchover`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SwitchoverBody {
    /// Why, for the log.
    reason: Option<String>,
    /// When (RFC 3339, e.g. `2026-12-06T03:00:00Z`); now if absent.
    at: Option<String>,
}

/// The optional body of the maintenance routes.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: Option<String>,
}

fn json_body<T: Default + for<'de> Deserialize<'de>>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|r| rejected(r, "bad_body"))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("bad_json", format!("request body: {e}")))
}

/// The master named in the path, which must exist.
fn known_master(
    state: &Shared,
    name: Result<Path<String>, PathRejection>,
) -> Result<String, ApiError> {
    let Path(name) = name.map_err(|r| rejected(r, "bad_path"))?;
    if state.hub.view().master(&name).is_none() {
        return Err(ApiError::no_such_master(&name));
    }
    Ok(name)
}

/// Starts a switchover of `name` now, after checking that one is possible.
async fn switch_over(state: &Shared, name: &str) -> Result<(), ApiError> {
    let refusal = state.hub.view().master(name).map(|m| m.switchover_refusal());
    match refusal {
        None => return Err(ApiError::no_such_master(name)),
        Some(Some(why)) => {
            let message = format!("cannot switch over {name} without losing writes: {why}");
            return Err(ApiError::new(StatusCode::CONFLICT, "switchover_impossible", message));
        }
        Some(None) => {}
    }
    match state.hub.admin(AdminCommand::Failover { master: name.to_owned() }).await {
        Some(
            AdminAnswer::Ok
            | AdminAnswer::Count(_)
            | AdminAnswer::Down(_)
            | AdminAnswer::InfoCache(_),
        ) => Ok(()),
        Some(AdminAnswer::Refused(refusal)) => Err(refused(&refusal)),
        None => Err(ApiError::unavailable()),
    }
}

/// `POST /v1/masters/{name}/switchover`: a planned switchover that loses no acknowledged
/// write, now (202) or at `at` (202, `"scheduled"`). Refused (409) if the master is not
/// reachable or not fenced: use `/failover` then.
pub(super) async fn switchover(
    State(state): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Access::Admin)?;
    let name = known_master(&state, name)?;
    let body: SwitchoverBody = json_body(body)?;
    let reason = body.reason;
    let Some(at) = body.at else {
        tracing::warn!(master = %name, reason, "switchover requested over HTTP");
        switch_over(&state, &name).await?;
        let json = serde_json::json!({ "master": name, "switchover": "started" });
        return Ok((StatusCode::ACCEPTED, Json(json)).into_response());
    };
    let at_unix_ms = parse_time(&at)?;
    let now = state.hub.clock.unix_ms();
    let ahead = Duration::from_millis(at_unix_ms.saturating_sub(now));
    if at_unix_ms <= now || ahead > MAX_SCHEDULE_AHEAD {
        let message = format!(
            "at: {at} is not in the next {} days",
            MAX_SCHEDULE_AHEAD.as_secs() / (24 * 3600)
        );
        return Err(ApiError::bad_request("bad_time", message));
    }
    let mut entries = state.schedule.entries.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(existing) = entries.get(&name) {
        let message = format!(
            "a switchover of {name} is already scheduled at {}: cancel it first",
            existing.at
        );
        return Err(ApiError::new(StatusCode::CONFLICT, "already_scheduled", message));
    }
    tracing::warn!(master = %name, at, reason, "switchover scheduled over HTTP");
    let task = {
        let (state, name) = (std::sync::Arc::clone(&state), name.clone());
        tokio::spawn(async move {
            tokio::time::sleep(ahead).await;
            state.schedule.remove(&name);
            match switch_over(&state, &name).await {
                Ok(()) => tracing::warn!(master = %name, "scheduled switchover started"),
                Err(e) => {
                    tracing::error!(master = %name, error = %e.message, "scheduled switchover refused");
                }
            }
        })
        .abort_handle()
    };
    entries.insert(name.clone(), Scheduled { at: at.clone(), at_unix_ms, reason, task });
    let json = serde_json::json!({
        "master": name,
        "switchover": "scheduled",
        "at": at,
        "at_unix_ms": at_unix_ms,
        "node": state.hub.view().node_id,
    });
    Ok((StatusCode::ACCEPTED, Json(json)).into_response())
}

/// `DELETE /v1/masters/{name}/switchover`: cancels a scheduled switchover (404 if none).
pub(super) async fn cancel_switchover(
    State(state): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Access::Admin)?;
    let name = known_master(&state, name)?;
    let Some(scheduled) = state.schedule.remove(&name) else {
        let message = format!("no switchover of {name} is scheduled on this node");
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_scheduled", message));
    };
    scheduled.task.abort();
    tracing::warn!(master = %name, at = scheduled.at, "scheduled switchover cancelled over HTTP");
    Ok(Json(serde_json::json!({ "master": name, "cancelled": scheduled.at })).into_response())
}

/// An RFC 3339 time as Unix milliseconds.
fn parse_time(text: &str) -> Result<u64, ApiError> {
    let bad = |detail: String| {
        ApiError::bad_request(
            "bad_time",
            format!("at: {text:?} is not an RFC 3339 time ({detail})"),
        )
    };
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| bad(e.to_string()))?;
    u64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).map_err(|_| bad("before 1970".into()))
}

/// Pauses or resumes automatic failovers of `master` (every master with `None`).
async fn maintenance(
    state: &Shared,
    master: Option<String>,
    paused: bool,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let what = if paused { "maintenance: automatic failovers paused" } else { "maintenance ended" };
    tracing::warn!(master = master.as_deref().unwrap_or("*"), reason, "{what} over HTTP");
    let command = AdminCommand::Maintenance { master: master.clone(), paused };
    match state.hub.admin(command).await {
        Some(
            AdminAnswer::Ok
            | AdminAnswer::Count(_)
            | AdminAnswer::Down(_)
            | AdminAnswer::InfoCache(_),
        ) => {
            let masters = master.map_or_else(
                || state.hub.view().masters.iter().map(|m| m.name.clone()).collect(),
                |name| vec![name],
            );
            Ok(Json(serde_json::json!({ "masters": masters, "paused": paused })).into_response())
        }
        Some(AdminAnswer::Refused(refusal)) => Err(refused(&refusal)),
        None => Err(ApiError::unavailable()),
    }
}

/// `POST /v1/masters/{name}/pause`: maintenance mode for one master (every node adopts it, and it
/// survives restarts); monitoring, events and operators' failovers go on.
pub(super) async fn pause_master(
    State(state): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Access::Admin)?;
    let name = known_master(&state, name)?;
    let body: ReasonBody = json_body(body)?;
    maintenance(&state, Some(name), true, body.reason).await
}

/// `POST /v1/masters/{name}/resume`: ends maintenance mode for one master.
pub(super) async fn resume_master(
    State(state): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Access::Admin)?;
    let name = known_master(&state, name)?;
    let body: ReasonBody = json_body(body)?;
    maintenance(&state, Some(name), false, body.reason).await
}

/// `POST /v1/pause`: maintenance mode for every master.
pub(super) async fn pause_all(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Access::Admin)?;
    let body: ReasonBody = json_body(body)?;
    maintenance(&state, None, true, body.reason).await
}

/// `POST /v1/resume`: ends maintenance mode for every master.
pub(super) async fn resume_all(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Access::Admin)?;
    let body: ReasonBody = json_body(body)?;
    maintenance(&state, None, false, body.reason).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc_3339() {
        assert_eq!(parse_time("2026-12-06T03:00:00Z").ok(), Some(1_796_526_000_000));
        assert_eq!(parse_time("2026-12-06T04:00:00.5+01:00").ok(), Some(1_796_526_000_500));
        let err = parse_time("tomorrow").unwrap_err();
        assert_eq!((err.status, err.code), (StatusCode::BAD_REQUEST, "bad_time"));
        assert!(parse_time("1969-12-31T23:59:59Z").is_err());
    }
}
