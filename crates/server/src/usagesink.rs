//! Usage records into the store, in batches off the invoke path. The queue is unbounded: usage is
//! never dropped. A write that fails is retried; records carry their request id, so a retried
//! batch never counts anything twice. What a kill -9 can lose is the last two `batch::INTERVAL`s
//! of completed invocations (the batch gathering and the one being written), besides those in
//! flight; a power loss, also the batches committed since the last sync (a batch's commit does
//! not wait for the disk, see `Store::record_usage`). A graceful stop loses none: it flushes the
//! writer once the environments are stopped.

use std::sync::Arc;
use std::time::Duration;

use lamina_api::UsageSink;
use lamina_store::{Store, UsageRecord};

/// The sink the invoke handler writes to.
pub struct StoreUsage {
    writer: crate::batch::Writer<UsageRecord>,
}

impl StoreUsage {
    /// Starts the writer thread.
    pub fn start(store: Arc<Store>) -> Arc<Self> {
        let writer = crate::batch::spawn("usage-writer", move |records: &[UsageRecord]| {
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
        Arc::new(Self { writer })
    }

    /// Writes every record queued so far, waiting at most `limit`: at a graceful stop.
    pub fn flush(&self, limit: Duration) -> bool {
        self.writer.flush(limit)
    }
}

impl UsageSink for StoreUsage {
    fn record(&self, record: UsageRecord) {
        self.writer.send(record);
    }
}
