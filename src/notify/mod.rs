//! Alerting: webhooks and Sentinel-compatible scripts, fed by the event stream.
//!
//! One dispatcher task reads the hub's event broadcast and offers each event to every webhook
//! whose patterns match and to the script runner. Deliveries and scripts run on tasks of their
//! own, behind bounded queues that drop their oldest entry when full (counted in metrics), so a
//! dead endpoint or a hung script never slows the driver, the dispatcher, or one another. This
//! module never touches the engine: it reads events and the latest view from the [`Hub`].

mod script;
mod webhook;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;

use crate::config::WebhookConfig;
use crate::hub::{Hub, ServerStats};

pub use self::script::{MAX_RETRIES, MAX_RUNNING, RETRY_DELAY, SCRIPT_QUEUE, SCRIPT_TIMEOUT};
pub use self::webhook::{
    DELIVERY_HEADER, EVENT_HEADER, FIRST_BACKOFF, MAX_BACKOFF, SIGNATURE_HEADER, TIMESTAMP_HEADER,
    WEBHOOK_QUEUE, signature,
};

/// Starts the notifier. Subscribes to the event broadcast before returning, so that no event
/// published after this call is missed.
pub fn start(hub: Hub, webhooks: &[WebhookConfig]) {
    let mut events = hub.events.subscribe();
    let hooks = webhook::start(&hub, webhooks);
    let mut scripts = script::Runner::start(&hub);
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(record) => {
                    for hook in &hooks {
                        hook.offer(&record);
                    }
                    scripts.observe(&record, &hub.view());
                }
                Err(RecvError::Lagged(missed)) => {
                    hub.stats.notify_events_missed.fetch_add(missed, Ordering::Relaxed);
                    tracing::warn!(missed, "the notifier fell behind and missed events");
                }
                Err(RecvError::Closed) => break,
            }
        }
    });
}

/// Which [`ServerStats`] counters a queue keeps up to date.
type Counter = fn(&ServerStats) -> &AtomicU64;

/// A bounded FIFO that drops its oldest item to make room.
struct Queue<T> {
    items: Mutex<VecDeque<T>>,
    capacity: usize,
    ready: Notify,
    stats: Arc<ServerStats>,
    /// The gauge of items waiting (shared by every queue of a kind).
    queued: Counter,
    /// The counter of items dropped.
    dropped: Counter,
}

impl<T> Queue<T> {
    fn new(capacity: usize, stats: Arc<ServerStats>, queued: Counter, dropped: Counter) -> Self {
        Self {
            items: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            ready: Notify::new(),
            stats,
            queued,
            dropped,
        }
    }

    /// Appends `item`, dropping the oldest one if the queue is full; returns whether one was.
    fn push(&self, item: T) -> bool {
        let dropped = {
            let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
            let dropped = items.len() >= self.capacity && items.pop_front().is_some();
            items.push_back(item);
            dropped
        };
        if dropped {
            (self.dropped)(&self.stats).fetch_add(1, Ordering::Relaxed);
        } else {
            (self.queued)(&self.stats).fetch_add(1, Ordering::Relaxed);
        }
        // Stores a permit if the consumer is busy, so no wake-up is lost.
        self.ready.notify_one();
        dropped
    }

    /// The oldest item, waiting for one if the queue is empty.
    async fn pop(&self) -> T {
        loop {
            let next = self.items.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
            if let Some(item) = next {
                (self.queued)(&self.stats).fetch_sub(1, Ordering::Relaxed);
                return item;
            }
            self.ready.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_drops_its_oldest_item() {
        let stats = Arc::new(ServerStats::default());
        let queue =
            Queue::new(2, Arc::clone(&stats), |s| &s.webhooks_queued, |s| &s.webhooks_dropped);
        assert!(!queue.push(1));
        assert!(!queue.push(2));
        assert!(queue.push(3));
        assert_eq!(stats.webhooks_dropped.load(Ordering::Relaxed), 1);
        assert_eq!(stats.webhooks_queued.load(Ordering::Relaxed), 2);
        assert_eq!(queue.pop().await, 2);
        assert_eq!(queue.pop().await, 3);
        assert_eq!(stats.webhooks_queued.load(Ordering::Relaxed), 0);
    }
}
