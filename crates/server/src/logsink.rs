//! Function logs into the store: environments hand lines to a bounded queue, so logging never
//! waits for SQLite on the invoke path; a function flooding its log loses lines, not the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use lamina_runtime_api::{LogRecord, LogSink};
use lamina_store::{NewLogEvent, Store};

const QUEUE: usize = 65_536;

/// The sink environments write to.
pub struct StoreLogs {
    tx: SyncSender<NewLogEvent>,
    dropped: AtomicU64,
}

impl StoreLogs {
    /// Starts the writer thread.
    pub fn start(store: Arc<Store>) -> Arc<Self> {
        let (tx, rx) = sync_channel(QUEUE);
        crate::batch::spawn("log-writer", rx, move |events| {
            if let Err(e) = store.append_logs(events) {
                tracing::warn!(error = %e, lines = events.len(), "writing function logs failed");
            }
        });
        Arc::new(Self {
            tx,
            dropped: AtomicU64::new(0),
        })
    }
}

impl LogSink for StoreLogs {
    fn emit(&self, r: LogRecord) {
        let event = NewLogEvent {
            account: r.account,
            region: r.region,
            function: r.function,
            stream: r.stream,
            ts_ms: r.ts_ms,
            message: r.message,
        };
        if let Err(TrySendError::Full(_)) = self.tx.try_send(event) {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "function log queue full; dropping log lines");
            }
        }
    }
}
