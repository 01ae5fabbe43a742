//! Function logs: every line an environment writes, and the platform's START/END/REPORT lines,
//! go to a [`LogSink`]; the lines of the invocation in progress are also kept for
//! `X-Amz-Log-Type: Tail`.
//!
//! A function's output is untrusted bytes. The pumps read bytes, never lines: a line becomes one
//! event, decoded lossily (a byte that is not UTF-8 becomes U+FFFD), and a line longer than
//! CloudWatch's event limit ([`MAX_EVENT`]) becomes several events, so no line makes the server
//! hold more than one event. The pumps never stop draining a pipe while the function lives (a
//! function whose output is not read would die of a broken pipe or block). What a function may
//! log is budgeted per function ([`Budgets`]): beyond its rate and burst, its lines are dropped
//! (and the drop is said in its log) so that one flooding function cannot crowd out the others.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The largest log event, in bytes: CloudWatch's 256 KB per event, less its 26 bytes of overhead.
pub const MAX_EVENT: usize = 262_144 - 26;

/// One log line of a function.
#[derive(Debug, Clone)]
pub struct LogRecord {
    pub stream: Arc<lamina_model::LogStreamKey>,
    pub ts_ms: i64,
    pub message: String,
}

/// Where log lines go (the server stores them).
pub trait LogSink: Send + Sync + 'static {
    fn emit(&self, record: LogRecord);
}

/// A sink that drops everything (for benchmarks and tests that do not look at logs).
pub struct NoLogs;

impl LogSink for NoLogs {
    fn emit(&self, _: LogRecord) {}
}

/// The log tap of one environment.
pub struct Tap {
    stream: Arc<lamina_model::LogStreamKey>,
    sink: Arc<dyn LogSink>,
    /// Lines of the invocation in progress, when someone wants its tail.
    capture: Mutex<Option<String>>,
    /// The read end of the environment's output pipe while it is pumped, to see whether output
    /// is still in flight; held by the pump from each read until its lines are logged.
    pipe: Mutex<Option<i32>>,
    /// The function's log budget, shared by its environments.
    budget: Budget,
    /// The environment's telemetry subscriptions, which the function's lines go to as well,
    /// and whether its log format is JSON.
    telemetry: std::sync::OnceLock<(Arc<crate::telemetry::Telemetry>, bool)>,
    /// This taps the extensions' output rather than the function's own: the function's tap,
    /// whose capture its lines go to.
    function: Option<Arc<Tap>>,
}

thread_local! {
    /// The buffer each worker thread reads functions' output into.
    static READ_BUF: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0; 64 * 1024].into_boxed_slice());
}

/// How much of an invocation's log `Tail` returns.
pub const TAIL_BYTES: usize = 4096;

/// The last [`TAIL_BYTES`] of `log` (or a little less, to start on a character).
pub fn tail_of(log: String) -> String {
    if log.len() <= TAIL_BYTES {
        return log;
    }
    let mut start = log.len() - TAIL_BYTES;
    while !log.is_char_boundary(start) {
        start += 1;
    }
    log[start..].to_owned()
}

impl Tap {
    pub fn new(
        stream: lamina_model::LogStreamKey,
        sink: Arc<dyn LogSink>,
        budget: Budget,
    ) -> Arc<Self> {
        Arc::new(Self {
            stream: Arc::new(stream),
            sink,
            capture: Mutex::new(None),
            pipe: Mutex::new(None),
            budget,
            telemetry: std::sync::OnceLock::new(),
            function: None,
        })
    }

    /// A tap of the same environment for its extensions' output, which has a pipe of its own:
    /// their lines go to the same log, within the same budget, and to telemetry subscriptions
    /// as `extension` records, and to the tail of the invocation in progress. Made after
    /// [`Tap::tell`].
    pub(crate) fn for_extensions(self: &Arc<Self>) -> Arc<Self> {
        Arc::new(Self {
            stream: self.stream.clone(),
            sink: self.sink.clone(),
            capture: Mutex::new(None),
            pipe: Mutex::new(None),
            budget: self.budget.clone(),
            telemetry: self.telemetry.clone(),
            function: Some(self.clone()),
        })
    }

    /// Sends the function's lines to `telemetry`'s subscriptions too.
    pub(crate) fn tell(&self, telemetry: &Arc<crate::telemetry::Telemetry>, json: bool) {
        let _ = self.telemetry.set((telemetry.clone(), json));
    }

    /// One event of the function's output: to the log, and to telemetry subscriptions.
    fn function_line(&self, message: String) {
        if let Some((t, json)) = self.telemetry.get()
            && t.live()
        {
            t.line(&message, *json, self.function.is_some());
        }
        self.line(message);
    }

    /// Logs what the function wrote: one line (without its newline), within the budget.
    /// Returns whether it passed.
    fn output(&self, bytes: &[u8]) -> bool {
        match self.budget.admit(bytes.len()) {
            Admit::Drop => return false,
            Admit::Pass => {}
            Admit::PassAfterDrop(dropped) => self.line(format!(
                "[lamina] {dropped} bytes of log output dropped: the function wrote more than its budget of {} bytes per second",
                self.budget.rate
            )),
        }
        let text = String::from_utf8_lossy(bytes);
        // Each invalid byte became three (U+FFFD): what is stored is what the budget counts.
        self.budget.charge(text.len() - bytes.len());
        let mut rest: &str = &text;
        // Lossy decoding can grow the text (U+FFFD is 3 bytes): cut it again at char boundaries.
        while rest.len() > MAX_EVENT {
            let mut cut = MAX_EVENT;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            self.function_line(rest[..cut].to_owned());
            rest = &rest[cut..];
        }
        self.function_line(rest.to_owned());
        true
    }

    pub fn line(&self, message: String) {
        let captured = self.function.as_deref().unwrap_or(self);
        if let Some(buf) = captured
            .capture
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            buf.push_str(&message);
            buf.push('\n');
            if buf.len() > 4 * TAIL_BYTES {
                let cut = buf.len() - 2 * TAIL_BYTES;
                let cut = (cut..buf.len())
                    .find(|i| buf.is_char_boundary(*i))
                    .unwrap_or(0);
                buf.drain(..cut);
            }
        }
        self.sink.emit(LogRecord {
            stream: Arc::clone(&self.stream),
            ts_ms: lamina_model::now_millis(),
            message,
        });
    }

    pub fn start_capture(&self) {
        self.start_capture_from(String::new());
    }

    /// Starts capturing after `earlier` lines (each ended by a newline).
    pub fn start_capture_from(&self, earlier: String) {
        *self.capture.lock().unwrap_or_else(|e| e.into_inner()) = Some(earlier);
    }

    /// The captured lines, at most the last 4 KB.
    pub fn take_capture(&self) -> String {
        tail_of(
            self.capture
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .unwrap_or_default(),
        )
    }

    /// Waits (briefly) until the function's pipe holds no unread output, so that everything it
    /// printed before finishing is in the log before END.
    ///
    /// An empty pipe seen under the pump's lock is enough: the pump holds that lock from each
    /// read until the lines it read are logged, and at the pipe's end until its last
    /// unfinished line is, so nothing read is still on its way.
    pub async fn drain(&self) {
        for _ in 0..200 {
            let pending = self
                .pipe
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .map_or(0, |fd| {
                    let mut n: libc::c_int = 0;
                    // SAFETY: FIONREAD writes an int; the fd stays open while the pump runs.
                    unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
                    n
                });
            if pending == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_micros(100)).await;
        }
    }

    /// Waits (up to `limit`) until the pump has reached the pipe's end, where it logs a last
    /// line that had no newline.
    pub async fn closed(&self, limit: std::time::Duration) {
        let until = Instant::now() + limit;
        loop {
            let open = self
                .pipe
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some();
            if !open || Instant::now() >= until {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_micros(200)).await;
        }
    }

    /// Pumps the function's output pipe into the log until it closes: a line per event, a long
    /// line cut every [`MAX_EVENT`] bytes.
    pub fn pump(self: &Arc<Self>, fd: OwnedFd) -> std::io::Result<()> {
        *self.pipe.lock().unwrap_or_else(|e| e.into_inner()) = Some(fd.as_raw_fd());
        let rx = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)?;
        let tap = self.clone();
        tokio::spawn(async move {
            let mut line: Vec<u8> = Vec::new();
            // Lines handled since this task last let its worker's other tasks run. Waiting for
            // the pipe does not count against tokio's budget, and a function can keep its pipe
            // full: counted here, it cannot hold a worker thread.
            let mut work = 0;
            // The last read went past the budget.
            let mut over = false;
            // An idle environment holds no read buffer: a worker thread's own is lent for each
            // read, which happens between awaits.
            while rx.readable().await.is_ok() {
                let open = READ_BUF.with_borrow_mut(|buf| {
                    // Held from the read until its lines are logged: `drain`, which looks at the
                    // pipe under the same lock, never finds it empty while the lines it held are
                    // still on their way (on another worker thread).
                    let _reading = tap.pipe.lock().unwrap_or_else(|e| e.into_inner());
                    match rx.try_read(buf) {
                        Ok(0) => false,
                        Ok(n) => {
                            match tap.split_lines(&mut line, &buf[..n]) {
                                Some(lines) => work += 1 + lines,
                                None => over = true,
                            }
                            true
                        }
                        Err(e) => matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                        ),
                    }
                });
                if !open {
                    break;
                }
                if line.is_empty() && line.capacity() > 4096 {
                    // A long line passed: give its buffer back.
                    line = Vec::new();
                }
                if std::mem::take(&mut over) {
                    // Past its budget, a function's output is read at most once a pause: its
                    // writes wait for the pipe meanwhile, instead of the server reading (and
                    // dropping) as fast as the function can write.
                    work = 0;
                    tokio::time::sleep(OVER_BUDGET_PAUSE).await;
                } else if work >= LINES_PER_YIELD {
                    work = 0;
                    tokio::task::yield_now().await;
                }
            }
            // Under the lock, as each read: the last unfinished line is logged and the
            // descriptor forgotten (before it is closed and its number reused), so `drain`
            // never finds the pipe gone while that line is still on its way.
            let mut pipe = tap.pipe.lock().unwrap_or_else(|e| e.into_inner());
            if !line.is_empty() {
                tap.output(&line);
            }
            *pipe = None;
        });
        Ok(())
    }

    /// Cuts `data` into lines, `pending` holding the start of an unfinished one. Returns how
    /// many it handled, or `None` once the budget drops one: the rest of `data` is then dropped
    /// whole, so a flood of short lines costs the server one look at the budget per read, not
    /// one per line.
    fn split_lines(&self, pending: &mut Vec<u8>, mut data: &[u8]) -> Option<usize> {
        let mut lines = 0;
        while !data.is_empty() {
            lines += 1;
            // The newline ending a dropped line is dropped output too.
            let (passed, newline) = match data.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    let passed = self.flush_line(pending, &data[..i]);
                    data = &data[i + 1..];
                    (passed, 1)
                }
                None => {
                    let room = MAX_EVENT - pending.len();
                    let take = room.min(data.len());
                    pending.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if pending.len() < MAX_EVENT {
                        continue;
                    }
                    let passed = self.output(pending);
                    pending.clear();
                    (passed, 0)
                }
            };
            if !passed {
                self.budget.dropped(newline + pending.len() + data.len());
                pending.clear();
                return None;
            }
        }
        Some(lines)
    }

    /// Emits `pending` + `end` as one line (or several, if longer than an event). Returns
    /// whether all of it passed the budget.
    fn flush_line(&self, pending: &mut Vec<u8>, end: &[u8]) -> bool {
        if pending.is_empty() {
            return if end.is_empty() {
                self.output(end)
            } else {
                self.output_events(end)
            };
        }
        let room = MAX_EVENT - pending.len();
        let (head, tail) = end.split_at(room.min(end.len()));
        pending.extend_from_slice(head);
        let passed = self.output(pending);
        pending.clear();
        if !passed {
            self.budget.dropped(tail.len());
            return false;
        }
        self.output_events(tail)
    }

    /// Emits `bytes` an event at a time, until the budget drops one (the rest is counted
    /// dropped). Returns whether all of it passed.
    fn output_events(&self, bytes: &[u8]) -> bool {
        let mut rest = bytes;
        while !rest.is_empty() {
            let (event, after) = rest.split_at(MAX_EVENT.min(rest.len()));
            if !self.output(event) {
                self.budget.dropped(after.len());
                return false;
            }
            rest = after;
        }
        true
    }
}

/// Lines a pump handles before it lets the other tasks of its worker run.
const LINES_PER_YIELD: usize = 256;

/// How long a pump waits after a read that went past the function's budget.
const OVER_BUDGET_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

/// What the budget says about a line.
#[derive(Debug, PartialEq)]
enum Admit {
    Pass,
    /// Pass, after reporting how many bytes were dropped before it.
    PassAfterDrop(u64),
    Drop,
}

/// What one event costs beyond its text: its metadata, its row, its place in queues. Charging it
/// keeps a flood of empty lines within the budget too.
pub const EVENT_OVERHEAD: usize = 64;

/// A token bucket of bytes.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u64, burst: u64) -> Mutex<Self> {
        let burst = burst.max((MAX_EVENT + EVENT_OVERHEAD) as u64) as f64;
        Mutex::new(Self {
            rate: rate as f64,
            burst,
            tokens: burst,
            at: Instant::now(),
        })
    }

    fn refill(&mut self, now: Instant) {
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
    }

    /// Whether a bucket nobody holds may go: a new one would start as it is now, full.
    fn forgettable(bucket: &Arc<Mutex<Bucket>>, now: Instant) -> bool {
        if Arc::strong_count(bucket) > 1 {
            return false;
        }
        let mut b = bucket.lock().unwrap_or_else(|e| e.into_inner());
        b.refill(now);
        b.tokens >= b.burst
    }
}

/// Budgets by name, with the size at which those nobody needs are next looked for.
struct Kept<T> {
    map: HashMap<String, T>,
    prune_at: usize,
}

impl<T> Kept<T> {
    /// Removes what `forgettable` says may go once the map has doubled since the last time,
    /// so that functions and accounts that come and go do not make it grow for good.
    fn prune(&mut self, forgettable: impl Fn(&T) -> bool) {
        if self.map.len() < self.prune_at {
            return;
        }
        self.map.retain(|_, v| !forgettable(v));
        self.prune_at = (self.map.len() * 2).max(PRUNE_AT_LEAST);
    }
}

/// Budgets kept, at least, before any is looked at to go.
const PRUNE_AT_LEAST: usize = 1024;

/// A function's log budget: its own bucket, shared by its environments, and its account's,
/// shared by all the account's functions (so that many functions of one tenant cannot crowd out
/// the others either).
#[derive(Debug, Clone)]
pub struct Budget {
    function: Arc<Mutex<Bucket>>,
    account: Arc<Mutex<Bucket>>,
    /// Bytes dropped since the last line that passed, per function.
    dropped: Arc<std::sync::atomic::AtomicU64>,
    rate: u64,
}

impl Budget {
    /// Counts `bytes` of output dropped without a look at the buckets.
    fn dropped(&self, bytes: usize) {
        self.dropped
            .fetch_add(bytes as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts `bytes` more of a line that passed: its buckets may go below empty, and the lines
    /// after it wait until they refill.
    fn charge(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.function
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tokens -= bytes as f64;
        self.account
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tokens -= bytes as f64;
    }

    fn admit(&self, bytes: usize) -> Admit {
        use std::sync::atomic::Ordering;
        let cost = (bytes + EVENT_OVERHEAD) as f64;
        let now = Instant::now();
        let mut f = self.function.lock().unwrap_or_else(|e| e.into_inner());
        let mut a = self.account.lock().unwrap_or_else(|e| e.into_inner());
        f.refill(now);
        a.refill(now);
        if f.tokens < cost || a.tokens < cost {
            self.dropped.fetch_add(bytes as u64, Ordering::Relaxed);
            return Admit::Drop;
        }
        f.tokens -= cost;
        a.tokens -= cost;
        match self.dropped.swap(0, Ordering::Relaxed) {
            0 => Admit::Pass,
            n => Admit::PassAfterDrop(n),
        }
    }
}

/// A function's bucket and its count of dropped bytes.
type FunctionBudget = (Arc<Mutex<Bucket>>, Arc<std::sync::atomic::AtomicU64>);

/// The log budgets of every function and account.
pub struct Budgets {
    rate: u64,
    burst: u64,
    functions: Mutex<Kept<FunctionBudget>>,
    accounts: Mutex<Kept<Arc<Mutex<Bucket>>>>,
}

/// An account may log this many times what one of its functions may.
pub const ACCOUNT_FACTOR: u64 = 4;

impl Budgets {
    pub fn new(rate: u64, burst: u64) -> Self {
        Self {
            rate,
            burst,
            functions: Mutex::new(Kept {
                map: HashMap::new(),
                prune_at: PRUNE_AT_LEAST,
            }),
            accounts: Mutex::new(Kept {
                map: HashMap::new(),
                prune_at: PRUNE_AT_LEAST,
            }),
        }
    }

    /// The budget of a function (taken when an environment starts).
    pub fn of(&self, account: &str, function_arn: &str) -> Budget {
        use std::sync::atomic::Ordering;
        let now = Instant::now();
        let mut functions = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        functions.prune(|(bucket, dropped)| {
            dropped.load(Ordering::Relaxed) == 0 && Bucket::forgettable(bucket, now)
        });
        let (function, dropped) = functions
            .map
            .entry(function_arn.to_owned())
            .or_insert_with(|| (Arc::new(Bucket::new(self.rate, self.burst)), Arc::default()))
            .clone();
        drop(functions);
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        // An account's bucket is held by its functions' budgets as well.
        accounts.prune(|bucket| Bucket::forgettable(bucket, now));
        let account = accounts
            .map
            .entry(account.to_owned())
            .or_insert_with(|| {
                Arc::new(Bucket::new(
                    self.rate.saturating_mul(ACCOUNT_FACTOR),
                    self.burst.saturating_mul(ACCOUNT_FACTOR),
                ))
            })
            .clone();
        Budget {
            function,
            account,
            dropped,
            rate: self.rate,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    struct Count(AtomicUsize);

    impl LogSink for Count {
        fn emit(&self, _: LogRecord) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A tap counting the lines it emits, on a budget that never refills: its burst (the floor,
    /// one largest event and its overhead) is all that passes.
    fn counted_tap() -> (Arc<Tap>, Arc<Count>, Budget) {
        let sink = Arc::new(Count(AtomicUsize::new(0)));
        let budget = Budgets::new(0, 0).of("123456789012", "arn:f");
        let stream = lamina_model::LogStreamKey {
            account: "123456789012".into(),
            region: "us-east-1".into(),
            function: "f".into(),
            stream: "s".into(),
        };
        (Tap::new(stream, sink.clone(), budget.clone()), sink, budget)
    }

    #[test]
    fn invalid_utf8_is_counted_as_stored() {
        let (tap, sink, _) = counted_tap();
        // A third of the burst in invalid bytes is the whole burst once decoded: the line after
        // it is dropped.
        assert!(tap.output(&vec![0xff; MAX_EVENT / 3]));
        assert!(!tap.output(b"x"));
        assert_eq!(sink.0.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn budgets_nobody_holds_go_once_many_functions_came_and_went() {
        let budgets = Budgets::new(0, 0);
        let held = budgets.of("a", "arn:held");
        // A function that spent its burst keeps its bucket, held or not: no new environment
        // starts it afresh.
        let spent = budgets.of("b", "arn:spent");
        assert_eq!(spent.admit(MAX_EVENT), Admit::Pass);
        drop(spent);
        for i in 0..PRUNE_AT_LEAST * 3 {
            budgets.of("a", &format!("arn:{i}"));
        }
        let kept = budgets.functions.lock().unwrap();
        assert!(kept.map.len() <= PRUNE_AT_LEAST, "{}", kept.map.len());
        assert!(kept.map.contains_key("arn:held"));
        assert!(kept.map.contains_key("arn:spent"));
        drop(kept);
        assert_eq!(held.admit(0), Admit::Pass);
    }

    #[test]
    fn a_flood_beyond_the_budget_costs_one_look_per_read() {
        let (tap, sink, budget) = counted_tap();
        let read = vec![b'\n'; 64 * 1024];
        let mut pending = Vec::new();
        let passing = (MAX_EVENT + EVENT_OVERHEAD) / EVENT_OVERHEAD;
        let mut reads = 1;
        while tap.split_lines(&mut pending, &read).is_some() {
            reads += 1;
        }
        assert_eq!(
            sink.0.load(Ordering::Relaxed),
            passing,
            "the burst's empty lines"
        );
        // Past the budget, a read is one line looked at, whatever it holds.
        assert_eq!(tap.split_lines(&mut pending, &read), None);
        assert_eq!(sink.0.load(Ordering::Relaxed), passing);
        // Every byte not logged is counted, for the line that reports the drop.
        let dropped = budget.dropped.load(Ordering::Relaxed) as usize;
        assert_eq!(dropped, (reads + 1) * read.len() - passing);
    }
}
