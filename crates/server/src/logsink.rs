//! Function logs into the store: environments hand lines to a queue bounded in bytes, so logging
//! never waits for SQLite on the invoke path and never grows the server without bound. Each
//! function's lines are already limited to its budget (`log_rate_bytes_per_s`) before they get
//! here; what is stored per function is bounded too (`log_max_mb_per_function`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lamina_runtime_api::logs::EVENT_OVERHEAD;
use lamina_runtime_api::{LogRecord, LogSink};
use lamina_store::{NewLogEvent, Store};

/// Bytes of log lines waiting to be written, at most.
const QUEUE_BYTES: u64 = 64 << 20;

/// The sink environments write to.
pub struct StoreLogs {
    writer: crate::batch::Writer<NewLogEvent>,
    queued: Arc<AtomicU64>,
    dropped: AtomicU64,
}

impl StoreLogs {
    /// Starts the writer thread.
    pub fn start(store: Arc<Store>, max_bytes_per_function: u64) -> Arc<Self> {
        let queued = Arc::new(AtomicU64::new(0));
        let written = queued.clone();
        let writer = crate::batch::spawn("log-writer", move |events: &[NewLogEvent]| {
            if let Err(e) = store.append_logs(events, max_bytes_per_function) {
                tracing::warn!(error = %e, lines = events.len(), "writing function logs failed");
            }
            let bytes: u64 = events
                .iter()
                .map(|e| (e.message.len() + EVENT_OVERHEAD) as u64)
                .sum();
            written.fetch_sub(bytes, Ordering::Relaxed);
        });
        Arc::new(Self {
            writer,
            queued,
            dropped: AtomicU64::new(0),
        })
    }

    /// Writes every line queued so far, waiting at most `limit`: at a graceful stop.
    pub fn flush(&self, limit: Duration) -> bool {
        self.writer.flush(limit)
    }
}

impl LogSink for StoreLogs {
    fn emit(&self, r: LogRecord) {
        let bytes = (r.message.len() + EVENT_OVERHEAD) as u64;
        if self.queued.fetch_add(bytes, Ordering::Relaxed) + bytes > QUEUE_BYTES {
            self.queued.fetch_sub(bytes, Ordering::Relaxed);
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "function log queue full; dropping log lines");
            }
            return;
        }
        let event = NewLogEvent {
            stream: r.stream,
            ts_ms: r.ts_ms,
            message: r.message,
        };
        if !self.writer.send(event) {
            self.queued.fetch_sub(bytes, Ordering::Relaxed);
        }
    }
}
