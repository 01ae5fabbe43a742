//! A background writer: producers hand items to a queue without waiting; one thread writes them
//! to the store in batches of up to `BATCH` items. An item waits until `INTERVAL` has passed
//! since the last write, or, after a quiet spell, since it came, with whatever else arrived
//! meanwhile: under load that is one wake-up and one transaction per interval, not one per
//! invocation (the writers were a fifth of the CPU of a warm-invoke loop when they woke and wrote
//! for every item). Nor is an item written alone at once after a quiet spell: an invocation
//! after a pause would share the machine with up to three transactions for its own lines and
//! usage record (`START`; `END` and `REPORT`; usage) while it runs and answers (see
//! BENCHMARKS.md, "An invocation after a pause").
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
                        if batch.len() < BATCH {
                            let wait = if since < INTERVAL {
                                INTERVAL - since
                            } else {
                                INTERVAL
                            };
                            std::thread::sleep(wait);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::sync::{Arc, Mutex};

    /// The batches a writer wrote, in order.
    type Written = Arc<Mutex<Vec<Vec<u32>>>>;

    /// A writer of numbers, and what it wrote.
    fn writer() -> (std::sync::mpsc::Sender<u32>, Written) {
        let (tx, rx) = channel();
        let batches = Arc::new(Mutex::new(Vec::new()));
        let seen = batches.clone();
        spawn("test-writer", rx, move |items: &[u32]| {
            seen.lock().unwrap().push(items.to_vec());
        });
        (tx, batches)
    }

    fn wait_for(batches: &Mutex<Vec<Vec<u32>>>, items: usize) -> Vec<Vec<u32>> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let got = batches.lock().unwrap().clone();
            if got.iter().map(Vec::len).sum::<usize>() >= items {
                return got;
            }
            assert!(std::time::Instant::now() < deadline, "written: {got:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn an_item_after_a_quiet_spell_waits_for_the_others_of_its_interval() {
        let (tx, batches) = writer();
        // A quiet spell, then an invocation's first item and, a little later, its others: one
        // transaction for all of them, not one for the first alone.
        std::thread::sleep(INTERVAL * 2);
        tx.send(1).unwrap();
        std::thread::sleep(INTERVAL / 10);
        tx.send(2).unwrap();
        tx.send(3).unwrap();
        assert_eq!(wait_for(&batches, 3), vec![vec![1, 2, 3]]);
        // Whatever is left when the last sender goes is written too.
        tx.send(4).unwrap();
        drop(tx);
        assert_eq!(wait_for(&batches, 4), vec![vec![1, 2, 3], vec![4]]);
    }
}
