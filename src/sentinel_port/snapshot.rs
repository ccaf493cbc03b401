//! The engine's latest view, indexed once for every connection.
//!
//! The runtime publishes a new [`View`] whenever something in it changed (several times a second
//! while instances answer PINGs). One task turns each into a [`Snapshot`]: the view plus a map
//! from master name to position and the ready-made `GET-MASTER-ADDR-BY-NAME` reply of every
//! master. Connections keep an `Arc` of the latest snapshot and swap it only when the watch
//! channel says it changed, so the hot path is a map lookup and a copy of a few bytes.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::View;
use crate::engine::view::MasterView;

/// A published view with its indexes.
#[derive(Debug)]
pub(super) struct Snapshot {
    /// The view.
    pub(super) view: Arc<View>,
    /// Master name to index in `view.masters`.
    by_name: BTreeMap<Box<[u8]>, usize>,
    /// `*2 $host $port` for each master, in `view.masters` order: the same bytes in RESP2 and
    /// RESP3.
    addr_replies: Vec<Box<[u8]>>,
}

impl Snapshot {
    /// Indexes `view`.
    pub(super) fn new(view: Arc<View>) -> Self {
        let by_name =
            view.masters.iter().enumerate().map(|(i, m)| (m.name.as_bytes().into(), i)).collect();
        let addr_replies = view.masters.iter().map(|m| addr_reply(m).into_boxed_slice()).collect();
        Self { view, by_name, addr_replies }
    }

    /// The master named `name` (case-sensitive, as Sentinel's names are).
    pub(super) fn master(&self, name: &[u8]) -> Option<&MasterView> {
        let index = *self.by_name.get(name)?;
        self.view.masters.get(index).map(AsRef::as_ref)
    }

    /// The `GET-MASTER-ADDR-BY-NAME` reply for `name`.
    pub(super) fn addr_reply(&self, name: &[u8]) -> Option<&[u8]> {
        let index = *self.by_name.get(name)?;
        self.addr_replies.get(index).map(AsRef::as_ref)
    }
}

/// The address clients should connect to for `master`: the view's current master, which the
/// engine switches to the promoted replica as soon as the promotion is confirmed (Sentinel's
/// leader does the same from `reconf_slaves` on). Host names stay host names.
fn addr_reply(master: &MasterView) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    let mut w = crate::wire::resp::ReplyWriter::new(&mut out, crate::wire::resp::Protocol::Resp2);
    w.array(2);
    w.bulk_str(master.addr.host());
    w.bulk_u64(u64::from(master.addr.port()));
    out
}

/// Starts the task that indexes every view `views` publishes; it ends when the runtime drops
/// the view's sender, and the returned handle completes then.
pub(super) fn spawn_refresher(
    mut views: watch::Receiver<Arc<View>>,
) -> (watch::Receiver<Arc<Snapshot>>, JoinHandle<()>) {
    let first = Arc::clone(&views.borrow_and_update());
    let (tx, rx) = watch::channel(Arc::new(Snapshot::new(first)));
    let task = tokio::spawn(async move {
        while views.changed().await.is_ok() {
            let view = Arc::clone(&views.borrow_and_update());
            if tx.send(Arc::new(Snapshot::new(view))).is_err() {
                break;
            }
        }
    });
    (rx, task)
}
