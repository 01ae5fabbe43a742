//! A background writer: producers hand items to a queue without waiting; one thread writes them
//! to the store in batches (up to `BATCH` items, or whatever arrived within `INTERVAL`).

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

const BATCH: usize = 1024;
/// How long an item may wait before it is written; this bounds what a crash can lose.
pub const INTERVAL: Duration = Duration::from_millis(10);

/// Drains `rx` into `write` until every sender is gone, then writes what is left.
pub fn spawn<T: Send + 'static>(
    name: &str,
    rx: Receiver<T>,
    mut write: impl FnMut(&[T]) + Send + 'static,
) {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let mut batch = Vec::with_capacity(BATCH);
            loop {
                let done = match rx.recv_timeout(INTERVAL) {
                    Ok(item) => {
                        batch.push(item);
                        while batch.len() < BATCH {
                            match rx.try_recv() {
                                Ok(item) => batch.push(item),
                                Err(_) => break,
                            }
                        }
                        false
                    }
                    Err(RecvTimeoutError::Timeout) => false,
                    Err(RecvTimeoutError::Disconnected) => true,
                };
                if !batch.is_empty() {
                    write(&batch);
                    batch.clear();
                }
                if done {
                    return;
                }
            }
        })
        .expect("spawning a writer thread");
}
