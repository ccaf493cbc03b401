//! The HTTP server's connection slots.
//!
//! There are as many slots as the node's descriptor budget gives HTTP. When all are taken, a new
//! connection takes the place of the oldest one with no request in flight (a client that has not
//! finished its headers, an idle keep-alive connection, an event stream between events), which is
//! closed; only when every connection is in the middle of a request is the new one refused. So
//! idle or slow clients can hold the slots only until the next prober or scraper arrives, and
//! `/healthz` is answered even while the slots are full.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::hub::ServerStats;

/// Every slot, and the connections holding them.
#[derive(Debug)]
pub(super) struct Slots {
    max: usize,
    state: Mutex<State>,
    stats: Arc<ServerStats>,
}

#[derive(Debug, Default)]
struct State {
    next: u64,
    /// By id, which increases with every connection: the oldest first.
    open: BTreeMap<u64, Holder>,
}

#[derive(Debug)]
struct Holder {
    in_flight: Arc<AtomicUsize>,
    close: oneshot::Sender<()>,
}

/// One connection's slot, given back when dropped.
#[derive(Debug)]
pub(super) struct Slot {
    slots: Arc<Slots>,
    id: u64,
    /// Requests of this connection being handled now.
    pub(super) in_flight: Arc<AtomicUsize>,
}

impl Slots {
    /// `max` slots (at least one).
    pub(super) fn new(max: usize, stats: Arc<ServerStats>) -> Arc<Self> {
        Arc::new(Self { max: max.max(1), state: Mutex::default(), stats })
    }

    /// A slot for a new connection and the signal that closes it (to make room for a newer one),
    /// or `None` when every slot holds a connection with a request in flight.
    pub(super) fn take(self: &Arc<Self>) -> Option<(Slot, oneshot::Receiver<()>)> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.open.len() >= self.max {
            let idle = state
                .open
                .iter()
                .find(|(_, holder)| holder.in_flight.load(Ordering::Relaxed) == 0)
                .map(|(id, _)| *id)?;
            if let Some(evicted) = state.open.remove(&idle) {
                let _ = evicted.close.send(());
                self.stats.http_evicted_connections.fetch_add(1, Ordering::Relaxed);
            }
        }
        state.next += 1;
        let id = state.next;
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (close, closed) = oneshot::channel();
        state.open.insert(id, Holder { in_flight: Arc::clone(&in_flight), close });
        self.stats.http_connections.fetch_add(1, Ordering::Relaxed);
        Some((Slot { slots: Arc::clone(self), id, in_flight }, closed))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.slots.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.open.remove(&self.id);
        self.slots.stats.http_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A hyper service counting the requests in flight on its connection.
#[derive(Clone, Debug)]
pub(super) struct Counted<S> {
    pub(super) inner: S,
    pub(super) in_flight: Arc<AtomicUsize>,
}

/// Marks one request in flight until dropped.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S, R> hyper::service::Service<R> for Counted<S>
where
    S: hyper::service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, request: R) -> Self::Future {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let guard = InFlight(Arc::clone(&self.in_flight));
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            drop(guard);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_connection_replaces_the_oldest_idle_one_and_is_refused_when_all_are_busy() {
        let stats = Arc::new(ServerStats::default());
        let slots = Slots::new(2, Arc::clone(&stats));
        let (first, mut first_closed) = slots.take().unwrap();
        let (second, mut second_closed) = slots.take().unwrap();
        assert_eq!(stats.http_connections.load(Ordering::Relaxed), 2);

        // The first is mid-request: the second, idle, makes room.
        first.in_flight.store(1, Ordering::Relaxed);
        let (third, _third_closed) = slots.take().unwrap();
        assert!(second_closed.try_recv().is_ok(), "the idle one is told to close");
        assert!(first_closed.try_recv().is_err());
        assert_eq!(stats.http_evicted_connections.load(Ordering::Relaxed), 1);

        // Both holders busy: refused.
        third.in_flight.store(1, Ordering::Relaxed);
        assert!(slots.take().is_none());

        // The evicted connection's task ends and gives its slot back; so does the first.
        drop(second);
        drop(first);
        assert_eq!(stats.http_connections.load(Ordering::Relaxed), 1);
        assert!(slots.take().is_some());
    }
}
