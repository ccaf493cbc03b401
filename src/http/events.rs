//! The change feed: a bounded in-memory history of published events, served as server-sent
//! events (resumable with `Last-Event-ID`) and as a JSON long poll.
//!
//! One collector task reads the hub's event broadcast and appends every record to the
//! [`EventLog`], and feeds the failover history and the event metrics. Watchers never read the
//! hub's broadcast themselves: they subscribe to the log's own broadcast under the log's lock, so
//! that every event is either in the backlog they copy or in what they receive next, never
//! neither. A watcher that falls behind the live broadcast is dropped (its stream ends) rather
//! than waited for; it reconnects with `Last-Event-ID` and resumes from the history.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::{self, error::RecvError};

use crate::hub::{EventJson, EventRecord, ServerStats};

use super::{Access, ApiError, AppState, Shared, Watcher, rejected};

/// Events buffered for live watchers; one that falls further behind is dropped.
pub const LIVE_BUFFER: usize = 1024;
/// Longest `wait` a long poll may ask for; longer ones are shortened to this.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// Most events one long-poll answer carries; the client asks again from the last one.
pub const MAX_POLL_EVENTS: usize = 1000;
/// Interval of the comment lines that keep idle event streams (and proxies) alive.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The bounded history of published events, and the broadcast of new ones to watchers.
pub(super) struct EventLog {
    inner: Mutex<LogInner>,
}

struct LogInner {
    records: VecDeque<Arc<EventRecord>>,
    capacity: usize,
    /// Id of the newest record appended (0 before the first).
    newest: u64,
    live: broadcast::Sender<Arc<EventRecord>>,
}

/// Where a watcher starts: what it missed, then what comes live.
pub(super) struct Resume {
    /// Records after the watcher's last id, oldest first.
    pub(super) backlog: Vec<Arc<EventRecord>>,
    /// Some records the watcher has not seen are no longer in the history (or the process
    /// restarted, which renumbers events from 1).
    pub(super) gap: bool,
    /// The newest id at subscription: later records arrive on `live`, earlier ones are in the
    /// backlog or gone.
    pub(super) newest: u64,
    pub(super) live: broadcast::Receiver<Arc<EventRecord>>,
}

impl EventLog {
    /// A log keeping the last `capacity` records (at least one).
    pub(super) fn new(capacity: usize) -> Self {
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        let capacity = capacity.max(1);
        Self {
            inner: Mutex::new(LogInner {
                records: VecDeque::with_capacity(capacity.min(64 * 1024)),
                capacity,
                newest: 0,
                live,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a record and hands it to live watchers.
    pub(super) fn push(&self, record: Arc<EventRecord>) {
        let mut inner = self.lock();
        if inner.records.len() == inner.capacity {
            inner.records.pop_front();
        }
        inner.newest = record.id;
        inner.records.push_back(Arc::clone(&record));
        // No watcher is not an error.
        let _ = inner.live.send(record);
    }

    /// Subscribes a watcher that has seen every record up to `after` (`None`: it wants only what
    /// comes next). At most `limit` backlog records are returned.
    pub(super) fn resume(&self, after: Option<u64>, limit: usize) -> Resume {
        let inner = self.lock();
        let live = inner.live.subscribe();
        let newest = inner.newest;
        let Some(after) = after else {
            return Resume { backlog: Vec::new(), gap: false, newest, live };
        };
        // An id from the future: the process restarted and renumbered. Everything is new.
        let from_future = after > newest;
        let after = if from_future { 0 } else { after };
        let backlog: Vec<Arc<EventRecord>> =
            inner.records.iter().filter(|r| r.id > after).take(limit).cloned().collect();
        let gap = from_future
            || backlog.first().is_some_and(|r| r.id > after + 1)
            || (backlog.is_empty() && newest > after);
        Resume { backlog, gap, newest, live }
    }
}

/// Starts the task that records every published event.
pub(super) fn spawn_collector(state: &Shared) {
    let mut events = state.hub.events.subscribe();
    let state = Arc::clone(state);
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(record) => {
                    state.metrics.observe(&record);
                    state.history.lock().unwrap_or_else(PoisonError::into_inner).observe(&record);
                    state.log.push(record);
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "the HTTP event history fell behind and lost events");
                }
                Err(RecvError::Closed) => break,
            }
        }
    });
}

/// The query of `GET /v1/events`.
#[derive(Deserialize)]
pub(super) struct EventsQuery {
    /// Long poll: the last id the client has.
    after: Option<u64>,
    /// Long poll: how long to wait for an event (`30s`, `500ms`, `2m`, or seconds).
    wait: Option<String>,
    /// Long poll: most events to return.
    limit: Option<usize>,
}

/// `GET /v1/events`: a server-sent event stream, or a long poll when `after` or `wait` is given.
pub(super) async fn events(
    State(state): State<Shared>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Access::Read)?;
    let Query(query) = query.map_err(|r| rejected(r, "bad_query"))?;
    if query.after.is_some() || query.wait.is_some() {
        return long_poll(&state, &query).await;
    }
    let last = match headers.get("last-event-id") {
        None => None,
        Some(value) => {
            Some(value.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()).ok_or_else(
                || ApiError::bad_request("bad_last_event_id", "Last-Event-ID must be an event id"),
            )?)
        }
    };
    let watcher = state.watcher()?;
    let resume = state.log.resume(last, usize::MAX);
    let gap = resume.gap.then(|| Gap {
        last_event_id: last.unwrap_or(0),
        first_available_id: resume.backlog.first().map_or(resume.newest + 1, |r| r.id),
    });
    let feed = Feed {
        gap,
        backlog: resume.backlog.into(),
        newest: resume.newest,
        live: resume.live,
        stats: Arc::clone(&state.hub.stats),
        _watcher: watcher,
    };
    let stream = futures::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok::<_, Infallible>(event), feed))
    });
    Ok(sse(stream).into_response())
}

fn sse(
    stream: impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static,
) -> impl IntoResponse {
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// The `gap` event's data: events after `last_event_id` and before `first_available_id` are lost.
#[derive(Clone, Copy, Serialize)]
struct Gap {
    last_event_id: u64,
    first_available_id: u64,
}

/// One event stream's state.
struct Feed {
    gap: Option<Gap>,
    backlog: VecDeque<Arc<EventRecord>>,
    newest: u64,
    live: broadcast::Receiver<Arc<EventRecord>>,
    stats: Arc<ServerStats>,
    _watcher: Watcher,
}

impl Feed {
    /// The next event to send; `None` ends the stream.
    async fn next(&mut self) -> Option<SseEvent> {
        if let Some(gap) = self.gap.take() {
            let data = serde_json::to_string(&gap).unwrap_or_default();
            return Some(SseEvent::default().event("gap").data(data));
        }
        if let Some(record) = self.backlog.pop_front() {
            return Some(sse_event(&record));
        }
        loop {
            match self.live.recv().await {
                // Already in the backlog this stream started with.
                Ok(record) if record.id <= self.newest => {}
                Ok(record) => return Some(sse_event(&record)),
                Err(RecvError::Lagged(_)) => {
                    self.stats.http_slow_watchers.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

fn sse_event(record: &EventRecord) -> SseEvent {
    let data = serde_json::to_string(&record.json()).unwrap_or_default();
    SseEvent::default().id(record.id.to_string()).event(record.event.channel()).data(data)
}

/// The long poll's answer.
#[derive(Serialize)]
struct PollJson<'a> {
    events: Vec<EventJson<'a>>,
    /// The id to pass as `after` next time.
    last_id: u64,
    /// Some events after `after` are no longer in the history.
    gap: bool,
}

async fn long_poll(state: &AppState, query: &EventsQuery) -> Result<Response, ApiError> {
    let after = query.after.unwrap_or(0);
    let wait = match &query.wait {
        Some(text) => parse_wait(text)?.min(MAX_WAIT),
        None => Duration::ZERO,
    };
    let limit = query.limit.unwrap_or(MAX_POLL_EVENTS).clamp(1, MAX_POLL_EVENTS);
    let _watcher = state.watcher()?;
    let mut resume = state.log.resume(Some(after), limit);
    if resume.backlog.is_empty() && !resume.gap && !wait.is_zero() {
        // Wake on the next event (or a lag, or the deadline), then read it from the log.
        let _ = tokio::time::timeout(wait, resume.live.recv()).await;
        resume = state.log.resume(Some(after), limit);
    }
    let last_id = resume.backlog.last().map_or_else(|| after.min(resume.newest), |r| r.id);
    let body = PollJson {
        events: resume.backlog.iter().map(|r| r.json()).collect(),
        last_id,
        gap: resume.gap,
    };
    Ok(Json(body).into_response())
}

/// `30s`, `500ms`, `2m` or a bare number of seconds.
fn parse_wait(text: &str) -> Result<Duration, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "bad_wait",
            format!("wait: expected 30s, 500ms or 2m, found {text:?}"),
        )
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Detail, Event, EventKind};

    fn record(id: u64) -> Arc<EventRecord> {
        let event = Event {
            kind: EventKind::NewEpoch,
            subject: None,
            detail: Detail::Epoch { epoch: id, master: None },
        };
        Arc::new(EventRecord { id, unix_ms: id, event })
    }

    #[test]
    fn resume_returns_what_was_missed_and_flags_gaps() {
        let log = EventLog::new(3);
        for id in 1..=5 {
            log.push(record(id));
        }
        let ids = |r: &Resume| r.backlog.iter().map(|e| e.id).collect::<Vec<_>>();
        let r = log.resume(Some(3), usize::MAX);
        assert_eq!((ids(&r), r.gap), (vec![4, 5], false));
        let r = log.resume(Some(1), usize::MAX);
        assert_eq!((ids(&r), r.gap), (vec![3, 4, 5], true), "event 2 fell out of the history");
        let r = log.resume(Some(5), usize::MAX);
        assert_eq!((ids(&r), r.gap), (vec![], false));
        let r = log.resume(Some(99), usize::MAX);
        assert_eq!((ids(&r), r.gap), (vec![3, 4, 5], true), "ids from a previous run");
        let r = log.resume(None, usize::MAX);
        assert_eq!((ids(&r), r.gap, r.newest), (vec![], false, 5));
        let r = log.resume(Some(2), 2);
        assert_eq!(ids(&r), vec![3, 4]);
    }

    #[tokio::test]
    async fn a_watcher_that_falls_behind_is_dropped_not_waited_for() {
        let log = EventLog::new(10);
        let stats = Arc::new(ServerStats::default());
        let permit = Arc::new(tokio::sync::Semaphore::new(1)).try_acquire_owned().unwrap();
        let resume = log.resume(None, usize::MAX);
        let mut feed = Feed {
            gap: None,
            backlog: VecDeque::new(),
            newest: resume.newest,
            live: resume.live,
            stats: Arc::clone(&stats),
            _watcher: Watcher { _permit: permit, stats: Arc::clone(&stats) },
        };
        stats.http_event_watchers.fetch_add(1, Ordering::Relaxed);
        // Publishing never waits for the watcher; past its buffer, the watcher is cut off.
        for id in 1..=u64::try_from(LIVE_BUFFER).unwrap() + 5 {
            log.push(record(id));
        }
        assert!(feed.next().await.is_none(), "the stream ends");
        assert_eq!(stats.http_slow_watchers.load(Ordering::Relaxed), 1);
        drop(feed);
        assert_eq!(stats.http_event_watchers.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn waits_parse_with_units() {
        assert_eq!(parse_wait("30s").ok(), Some(Duration::from_secs(30)));
        assert_eq!(parse_wait("250ms").ok(), Some(Duration::from_millis(250)));
        assert_eq!(parse_wait("2m").ok(), Some(Duration::from_secs(120)));
        assert_eq!(parse_wait("7").ok(), Some(Duration::from_secs(7)));
        assert!(parse_wait("soon").is_err());
        assert!(parse_wait("5h").is_err());
    }
}
