//! A background writer: producers hand items to a queue without waiting; one thread writes them
//! to the store in batches of up to `BATCH` items. An item that comes after a quiet spell is
//! written at once; one that comes within `INTERVAL` of the last write waits until that
//! interval is out, with whatever else arrived meanwhile: under load that is one wake-up and one
//! transaction per interval, not one per invocation (the writers were a fifth of the CPU of a
//! warm-invoke loop when they woke and wrote for every item).
//!
//! A transaction costs about as much as a hundred items (the pages it touches are written
//! whole to the WAL, with their checksums), so the interval sets what an item costs under load:
//! at 400 invocations a second, a 10 ms interval made each invocation's three log lines and usage
//! record cost 85 µs of CPU, a 50 ms one about 25 (see BENCHMARKS.md).

use std::sync::mpsc::Receiver;
use std::time::Duration;

const BATCH: usize = 1024;
/// The least time between two writes under load, and so how long an item may wait before its
/// batch is written; with the write itself, this bounds what a crash can lose.
pub const INTERVAL: Duration = Duration::from_millis(50);

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
            let drain = |batch: &mut Vec<T>| {
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(item) => batch.push(item),
                        Err(_) => break,
                    }
                }
            };
            let mut last_write = std::time::Instant::now()
                .checked_sub(INTERVAL)
                .unwrap_or_else(std::time::Instant::now);
            loop {
                // Nothing is pending here (every pass writes what it took), so an idle writer
                // sleeps until an item comes rather than waking every interval.
                let done = match rx.recv() {
                    Ok(item) => {
                        batch.push(item);
                        drain(&mut batch);
                        let since = last_write.elapsed();
                        if batch.len() < BATCH && since < INTERVAL {
                            std::thread::sleep(INTERVAL - since);
                            drain(&mut batch);
                        }
                        false
                    }
                    Err(_) => true,
                };
                if !batch.is_empty() {
                    write(&batch);
                    batch.clear();
                    last_write = std::time::Instant::now();
                }
                if done {
                    return;
                }
            }
        })
        .expect("spawning a writer thread");
}
