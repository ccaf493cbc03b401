//! Sentinel-compatible scripts: a master's `notification_script` and `client_reconfig_script`.
//!
//! * The notification script runs for every warning-level event concerning the master (or its
//!   replicas and peers), with two arguments: the event name and Sentinel's payload text.
//! * The client-reconfig script runs when the master changes, with seven arguments:
//!   `<master-name> <role> <state> <from-ip> <from-port> <to-ip> <to-port>`, where `state` is
//!   always `start` and `role` is `leader` on the node that ran the failover (as soon as the
//!   promotion is seen, `+promoted-slave`) and `observer` on the others (at `+switch-master`).
//!   The leader does not run it a second time at its own `+switch-master`.
//!
//! Scripts are executed directly (no shell, so no interpolation of event text), with Picket's
//! environment, stdin/stdout/stderr closed, at most [`MAX_RUNNING`] at once, from a queue of
//! [`SCRIPT_QUEUE`] that drops its oldest entry when full. One running longer than
//! [`SCRIPT_TIMEOUT`] is killed. As in Sentinel, exit status 1 or death by a signal (a timeout
//! included) is retried up to [`MAX_RETRIES`] times, after [`RETRY_DELAY`] doubling each time;
//! status 2 or more, or a program that cannot be started, is an error and is not retried.
//! Sentinel publishes `-script-error` and `-script-timeout` events; Picket logs them (target
//! `picket::script`) and counts them in `picket_script_runs_total`, since only the engine
//! publishes events.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::engine::{Addr, Detail, EventKind, Level, Subject, View};
use crate::hub::{EventRecord, Hub, ScriptOutcome, ServerStats};

use super::Queue;

/// Longest a script may run before it is killed (Sentinel's `SENTINEL_SCRIPT_MAX_RUNTIME`).
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);
/// Most scripts running at once (Sentinel's `SENTINEL_SCRIPT_MAX_RUNNING`).
pub const MAX_RUNNING: usize = 16;
/// Most scripts waiting to run (Sentinel's `SENTINEL_SCRIPT_MAX_QUEUE`); also the most waiting
/// for a retry.
pub const SCRIPT_QUEUE: usize = 256;
/// Most retries of one script run (Sentinel's `SENTINEL_SCRIPT_MAX_RETRY`).
pub const MAX_RETRIES: u32 = 10;
/// Pause before the first retry, doubled for each further one (Sentinel's
/// `SENTINEL_SCRIPT_RETRY_DELAY`).
pub const RETRY_DELAY: Duration = Duration::from_secs(30);

/// One script run.
#[derive(Debug)]
struct Job {
    path: String,
    args: Vec<String>,
    /// Retries already made.
    retries: u32,
}

/// A master's script paths, as last seen in a view.
#[derive(Clone, Debug, Default)]
struct Paths {
    notification: Option<String>,
    client_reconfig: Option<String>,
}

/// Decides which scripts an event runs and queues them.
pub(super) struct Runner {
    queue: Arc<Queue<Job>>,
    /// Script paths by master, remembered so that an event about a master just removed
    /// (`-monitor`) still finds them. One entry per master ever seen.
    paths: BTreeMap<String, Paths>,
    /// Masters whose client-reconfig script this node ran as the leader, with the promoted
    /// address: the `+switch-master` that follows must not run it again.
    promoted: BTreeMap<String, Addr>,
}

impl Runner {
    /// Starts the scheduler task.
    pub(super) fn start(hub: &Hub) -> Self {
        let stats = Arc::clone(&hub.stats);
        let queue = Arc::new(Queue::new(
            SCRIPT_QUEUE,
            Arc::clone(&stats),
            |s| &s.scripts_queued,
            |s| &s.scripts_dropped,
        ));
        tokio::spawn(schedule(Arc::clone(&queue), stats));
        Self { queue, paths: BTreeMap::new(), promoted: BTreeMap::new() }
    }

    /// Queues the scripts `record` calls for.
    pub(super) fn observe(&mut self, record: &EventRecord, view: &View) {
        let event = &record.event;
        let Some(master) = event.master_name() else { return };
        if let Some(m) = view.master(master) {
            let paths = Paths {
                notification: m.notification_script.clone(),
                client_reconfig: m.client_reconfig_script.clone(),
            };
            self.paths.insert(master.to_owned(), paths);
        }
        let paths = self.paths.get(master).cloned().unwrap_or_default();
        if event.kind == EventKind::Unmonitor {
            self.paths.remove(master);
            self.promoted.remove(master);
        }
        if event.level() == Level::Warning
            && let Some(path) = &paths.notification
        {
            self.push(path, vec![event.channel().to_owned(), event.payload()]);
        }
        let reconf = match (&event.kind, &event.subject, &event.detail) {
            (EventKind::PromotedReplica, Some(Subject::Replica { addr, master_addr, .. }), _) => {
                self.promoted.insert(master.to_owned(), addr.clone());
                Some(("leader", master_addr, addr))
            }
            (EventKind::SwitchMaster, _, Detail::Switch { old, new, .. }) => {
                let led = self.promoted.remove(master).is_some_and(|p| &p == new);
                (!led).then_some(("observer", old, new))
            }
            _ => None,
        };
        if let (Some((role, from, to)), Some(path)) = (reconf, &paths.client_reconfig) {
            let args = [
                master,
                role,
                "start",
                from.host(),
                &from.port().to_string(),
                to.host(),
                &to.port().to_string(),
            ];
            self.push(path, args.iter().map(|a| (*a).to_owned()).collect());
        }
    }

    fn push(&self, path: &str, args: Vec<String>) {
        if self.queue.push(Job { path: path.to_owned(), args, retries: 0 }) {
            tracing::warn!(target: "picket::script", "script queue full: dropped the oldest");
        }
    }
}

/// Runs queued scripts, at most [`MAX_RUNNING`] at once.
async fn schedule(queue: Arc<Queue<Job>>, stats: Arc<ServerStats>) {
    let running = Arc::new(Semaphore::new(MAX_RUNNING));
    let retry_slots = Arc::new(Semaphore::new(SCRIPT_QUEUE));
    loop {
        let job = queue.pop().await;
        let Ok(permit) = Arc::clone(&running).acquire_owned().await else { break };
        tokio::spawn(run(
            job,
            permit,
            Arc::clone(&queue),
            Arc::clone(&retry_slots),
            Arc::clone(&stats),
        ));
    }
}

async fn run(
    mut job: Job,
    permit: OwnedSemaphorePermit,
    queue: Arc<Queue<Job>>,
    retry_slots: Arc<Semaphore>,
    stats: Arc<ServerStats>,
) {
    stats.scripts_running.fetch_add(1, Ordering::Relaxed);
    let outcome = execute(&job).await;
    stats.scripts_running.fetch_sub(1, Ordering::Relaxed);
    drop(permit);
    if let Some(i) = ScriptOutcome::ALL.iter().position(|o| *o == outcome) {
        stats.script_runs[i].fetch_add(1, Ordering::Relaxed);
    }
    let retry = matches!(outcome, ScriptOutcome::Retry | ScriptOutcome::Timeout);
    if !retry || job.retries >= MAX_RETRIES {
        return;
    }
    // Waiting retries are bounded like the queue; past that, the retry is dropped.
    let Ok(slot) = retry_slots.try_acquire_owned() else {
        stats.scripts_dropped.fetch_add(1, Ordering::Relaxed);
        let path = job.path;
        tracing::warn!(target: "picket::script", path, "too many scripts await a retry: dropped");
        return;
    };
    let delay = RETRY_DELAY.saturating_mul(1 << job.retries.min(16));
    job.retries += 1;
    stats.scripts_queued.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(delay).await;
    stats.scripts_queued.fetch_sub(1, Ordering::Relaxed);
    drop(slot);
    queue.push(job);
}

/// Runs the script once and says how it ended.
async fn execute(job: &Job) -> ScriptOutcome {
    let mut command = Command::new(&job.path);
    command
        .args(&job.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            // Sentinel's event for a script that cannot run (exec failure exits 2 there).
            tracing::warn!(target: "picket::script", "-script-error {} 0 2 ({e})", job.path);
            return ScriptOutcome::Error;
        }
    };
    let pid = child.id().unwrap_or(0);
    let path = &job.path;
    match tokio::time::timeout(SCRIPT_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) => match (status.code(), status.signal()) {
            (Some(0), _) => ScriptOutcome::Ok,
            (Some(1), _) => {
                tracing::warn!(target: "picket::script", "-script-error {path} 0 1 (retry)");
                ScriptOutcome::Retry
            }
            (Some(code), _) => {
                tracing::warn!(target: "picket::script", "-script-error {path} 0 {code}");
                ScriptOutcome::Error
            }
            (None, signal) => {
                let signal = signal.unwrap_or(0);
                tracing::warn!(target: "picket::script", "-script-error {path} {signal} 0 (retry)");
                ScriptOutcome::Retry
            }
        },
        Ok(Err(e)) => {
            tracing::warn!(target: "picket::script", "-script-error {path} 0 2 ({e})");
            ScriptOutcome::Error
        }
        Err(_) => {
            let _ = child.kill().await;
            tracing::warn!(target: "picket::script", "-script-timeout {path} {pid}");
            ScriptOutcome::Timeout
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exit_statuses_map_to_sentinels_retry_rules() {
        let job = |script: &str| Job {
            path: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            retries: 0,
        };
        assert_eq!(execute(&job("exit 0")).await, ScriptOutcome::Ok);
        assert_eq!(execute(&job("exit 1")).await, ScriptOutcome::Retry);
        assert_eq!(execute(&job("exit 3")).await, ScriptOutcome::Error);
        assert_eq!(execute(&job("kill -9 $$")).await, ScriptOutcome::Retry);
        let missing = Job { path: "/nonexistent/script".into(), args: Vec::new(), retries: 0 };
        assert_eq!(execute(&missing).await, ScriptOutcome::Error);
    }
}
