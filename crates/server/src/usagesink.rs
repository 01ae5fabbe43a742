//! Usage records into the store, in batches off the invoke path. The queue is unbounded: usage is
//! never dropped. A write that fails is retried; records carry their request id, so a retried
//! batch never counts anything twice. What a kill -9 can lose is the last two `batch::INTERVAL`s
//! of completed invocations (the batch gathering and the one being written), besides those in
//! flight; a power loss, also the batches committed since the last sync (a batch's commit does
//! not wait for the disk, see `Store::record_usage`).

use std::sync::Arc;
use std::sync::mpsc::{Sender, channel};
use std::time::Duration;

use lamina_api::UsageSink;
use lamina_store::{Store, UsageRecord};

/// The sink the invoke handler writes to.
pub struct StoreUsage {
    tx: std::sync::Mutex<Sender<UsageRecord>>,
}

impl StoreUsage {
    /// Starts the writer thread.
    pub fn start(store: Arc<Store>) -> Arc<Self> {
        let (tx, rx) = channel();
        crate::batch::spawn("usage-writer", rx, move |records: &[UsageRecord]| {
            for attempt in 0u32.. {
                match store.record_usage(records) {
                    Ok(_) => return,
                    Err(e) => {
                        tracing::error!(error = %e, records = records.len(), attempt, "writing usage records failed; retrying");
                        std::thread::sleep(Duration::from_millis(
                            100 * (attempt as u64 + 1).min(50),
                        ));
                    }
                }
            }
        });
        Arc::new(Self {
            tx: std::sync::Mutex::new(tx),
        })
    }
}

impl UsageSink for StoreUsage {
    fn record(&self, record: UsageRecord) {
        let _ = self
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(record);
    }
}
