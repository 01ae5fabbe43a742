//! Function logs into the store: environments hand lines to a bounded queue; one thread writes
//! them in batches, so logging never waits for SQLite on the invoke path.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use lamina_runtime_api::{LogRecord, LogSink};
use lamina_store::{NewLogEvent, Store};

const QUEUE: usize = 65_536;
const BATCH: usize = 1024;

/// The sink environments write to.
pub struct StoreLogs {
    tx: SyncSender<NewLogEvent>,
    dropped: AtomicU64,
}

impl StoreLogs {
    /// Starts the writer thread.
    pub fn start(store: Arc<Store>) -> Arc<Self> {
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_loop(store, rx))
            .expect("spawning the log writer");
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
            // A function flooding its log must not stall the platform; count what is lost.
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "function log queue full; dropping log lines");
            }
        }
    }
}

fn write_loop(store: Arc<Store>, rx: Receiver<NewLogEvent>) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(e) => {
                batch.push(e);
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(_) => break,
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                flush(&store, &mut batch);
                return;
            }
        }
        flush(&store, &mut batch);
    }
}

fn flush(store: &Store, batch: &mut Vec<NewLogEvent>) {
    if batch.is_empty() {
        return;
    }
    if let Err(e) = store.append_logs(batch) {
        tracing::warn!(error = %e, lines = batch.len(), "writing function logs failed");
    }
    batch.clear();
}
