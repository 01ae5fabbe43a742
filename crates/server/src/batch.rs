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
//!
//! A graceful stop calls [`Writer::flush`]: the writer cuts its wait short and writes everything
//! handed to it before the call, so that stopping loses nothing a process exit would.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::time::{Duration, Instant};

const BATCH: usize = 1024;
/// The least time between two writes under load, and so how long an item may wait before its
/// batch is written; with the write itself, this bounds what a crash can lose.
pub const INTERVAL: Duration = Duration::from_millis(50);

/// What goes down a writer's queue: an item, or a request to write everything before it.
enum Msg<T> {
    Item(T),
    Flush(SyncSender<()>),
}

/// The producers' end of a writer.
pub struct Writer<T> {
    tx: Sender<Msg<T>>,
    thread: std::thread::Thread,
    /// Flushes asked for and not yet answered: while any is, the writer does not wait.
    flushing: Arc<AtomicUsize>,
}

impl<T> Writer<T> {
    /// Queues `item`; false when the writer is gone.
    pub fn send(&self, item: T) -> bool {
        self.tx.send(Msg::Item(item)).is_ok()
    }

    /// Blocks until every item queued before the call is written, or `limit` passes (a write
    /// that keeps failing); true when written (false, too, when the writer is gone).
    pub fn flush(&self, limit: Duration) -> bool {
        let (ack, written) = sync_channel(1);
        // Counted before it is queued, so that the writer's answer never comes first.
        self.flushing.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(Msg::Flush(ack)).is_err() {
            self.flushing.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        self.thread.unpark();
        written.recv_timeout(limit).is_ok()
    }
}

/// Starts the thread that drains a new queue into `write`, until every [`Writer`] is gone; what
/// is left then is written too.
pub fn spawn<T: Send + 'static>(name: &str, write: impl FnMut(&[T]) + Send + 'static) -> Writer<T> {
    let (tx, rx) = channel();
    let flushing = Arc::new(AtomicUsize::new(0));
    let pending = flushing.clone();
    let handle = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || drain_into(rx, &pending, write))
        .expect("spawning a writer thread");
    Writer {
        tx,
        thread: handle.thread().clone(),
        flushing,
    }
}

fn drain_into<T>(rx: Receiver<Msg<T>>, flushing: &AtomicUsize, mut write: impl FnMut(&[T])) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut acks = Vec::new();
    let drain = |batch: &mut Vec<T>, acks: &mut Vec<SyncSender<()>>| {
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(msg) => take(msg, batch, acks),
                Err(_) => break,
            }
        }
    };
    let mut last_write = Instant::now()
        .checked_sub(INTERVAL)
        .unwrap_or_else(Instant::now);
    loop {
        // Nothing is pending here (every pass writes what it took), so an idle writer sleeps
        // until an item comes rather than waking every interval.
        let done = match rx.recv() {
            Ok(msg) => {
                take(msg, &mut batch, &mut acks);
                drain(&mut batch, &mut acks);
                let since = last_write.elapsed();
                if batch.len() < BATCH && acks.is_empty() {
                    let wait = if since < INTERVAL {
                        INTERVAL - since
                    } else {
                        INTERVAL
                    };
                    // Parked rather than asleep, so that a flush can cut the wait short; a
                    // producer's item does not wake the writer.
                    let until = Instant::now() + wait;
                    while flushing.load(Ordering::SeqCst) == 0 {
                        let Some(left) = until.checked_duration_since(Instant::now()) else {
                            break;
                        };
                        std::thread::park_timeout(left);
                    }
                    drain(&mut batch, &mut acks);
                }
                false
            }
            Err(_) => true,
        };
        if !batch.is_empty() {
            write(&batch);
            batch.clear();
            last_write = Instant::now();
        }
        // A flush asked for after a full batch's items is answered on a later pass, once its
        // turn in the queue comes: the flag keeps those passes from waiting.
        for ack in acks.drain(..) {
            flushing.fetch_sub(1, Ordering::SeqCst);
            let _ = ack.send(());
        }
        if done {
            return;
        }
    }
}

/// Puts an item in the batch, or a flush's answer with those to send once it is written.
fn take<T>(msg: Msg<T>, batch: &mut Vec<T>, acks: &mut Vec<SyncSender<()>>) {
    match msg {
        Msg::Item(item) => batch.push(item),
        Msg::Flush(ack) => acks.push(ack),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// The batches a writer wrote, in order.
    type Written = Arc<Mutex<Vec<Vec<u32>>>>;

    /// A writer of numbers, and what it wrote.
    fn writer() -> (Writer<u32>, Written) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let seen = batches.clone();
        let tx = spawn("test-writer", move |items: &[u32]| {
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
        assert!(tx.send(1));
        std::thread::sleep(INTERVAL / 10);
        assert!(tx.send(2));
        assert!(tx.send(3));
        assert_eq!(wait_for(&batches, 3), vec![vec![1, 2, 3]]);
        // Whatever is left when the last sender goes is written too.
        assert!(tx.send(4));
        drop(tx);
        assert_eq!(wait_for(&batches, 4), vec![vec![1, 2, 3], vec![4]]);
    }

    #[test]
    fn a_flush_returns_once_everything_queued_before_it_is_written() {
        let (tx, batches) = writer();
        // Nothing queued: nothing to wait for.
        assert!(tx.flush(Duration::from_secs(5)));
        assert!(batches.lock().unwrap().is_empty());
        // Items within their interval are written before the flush returns, not after it.
        assert!(tx.send(1));
        assert!(tx.send(2));
        assert!(tx.flush(Duration::from_secs(5)));
        assert_eq!(*batches.lock().unwrap(), vec![vec![1, 2]]);
        // More than a batch: the flush waits for all of it.
        for i in 0..BATCH as u32 + 10 {
            assert!(tx.send(i));
        }
        assert!(tx.flush(Duration::from_secs(5)));
        let written = batches.lock().unwrap().clone();
        assert_eq!(written.iter().map(Vec::len).sum::<usize>(), BATCH + 12);
        // The writer goes back to batching afterwards.
        assert!(tx.send(7));
        assert!(tx.send(8));
        assert_eq!(wait_for(&batches, BATCH + 14).last(), Some(&vec![7, 8]));
    }

    #[test]
    fn a_flush_gives_up_on_a_write_that_does_not_finish() {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let tx = spawn("stuck-writer", move |_: &[u32]| {
            let _ = held.recv();
        });
        assert!(tx.send(1));
        assert!(!tx.flush(INTERVAL * 2));
        release.send(()).unwrap();
        assert!(tx.flush(Duration::from_secs(5)));
    }
}
