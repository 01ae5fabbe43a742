//! Function logs: every line an environment writes, and the platform's START/END/REPORT lines,
//! go to a [`LogSink`]; the lines of the invocation in progress are also kept for
//! `X-Amz-Log-Type: Tail`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use tokio::io::AsyncBufReadExt;

/// One log line of a function.
#[derive(Debug, Clone)]
pub struct LogRecord {
    pub account: String,
    pub region: String,
    pub function: String,
    pub stream: String,
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
    pub account: String,
    pub region: String,
    pub function: String,
    pub stream: String,
    sink: Arc<dyn LogSink>,
    /// Lines of the invocation in progress, when someone wants its tail.
    capture: Mutex<Option<String>>,
    /// The read ends of stdout and stderr, to see whether output is still in flight.
    pipes: Mutex<Vec<i32>>,
}

/// How much of an invocation's log `Tail` returns.
pub const TAIL_BYTES: usize = 4096;

impl Tap {
    pub fn new(
        account: String,
        region: String,
        function: String,
        stream: String,
        sink: Arc<dyn LogSink>,
    ) -> Arc<Self> {
        Arc::new(Self {
            account,
            region,
            function,
            stream,
            sink,
            capture: Mutex::new(None),
            pipes: Mutex::new(Vec::new()),
        })
    }

    pub fn line(&self, message: String) {
        if let Some(buf) = self
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
            account: self.account.clone(),
            region: self.region.clone(),
            function: self.function.clone(),
            stream: self.stream.clone(),
            ts_ms: lamina_model::now_millis(),
            message,
        });
    }

    pub fn start_capture(&self) {
        *self.capture.lock().unwrap_or_else(|e| e.into_inner()) = Some(String::new());
    }

    /// The captured lines, at most the last 4 KB.
    pub fn take_capture(&self) -> String {
        let buf = self
            .capture
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default();
        if buf.len() <= TAIL_BYTES {
            return buf;
        }
        let mut start = buf.len() - TAIL_BYTES;
        while !buf.is_char_boundary(start) {
            start += 1;
        }
        buf[start..].to_owned()
    }

    /// Waits (briefly) until the function's pipes hold no unread output, so that everything it
    /// printed before finishing is in the log before END.
    pub async fn drain(&self) {
        for _ in 0..200 {
            let pending: i32 = self
                .pipes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|fd| {
                    let mut n: libc::c_int = 0;
                    // SAFETY: FIONREAD writes an int; the fd stays open while the pump runs.
                    unsafe { libc::ioctl(*fd, libc::FIONREAD, &mut n) };
                    n
                })
                .sum();
            if pending == 0 {
                // Give the pump a turn to finish the line it may be holding.
                tokio::task::yield_now().await;
                return;
            }
            tokio::time::sleep(std::time::Duration::from_micros(100)).await;
        }
    }

    /// Pumps one of the function's output pipes into the log, line by line.
    pub fn pump(self: &Arc<Self>, fd: OwnedFd) -> std::io::Result<()> {
        let raw = fd.as_raw_fd();
        self.pipes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(raw);
        let rx = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)?;
        let tap = self.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(rx).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tap.line(line);
            }
            // Forget the descriptor before it is closed (and its number reused).
            tap.pipes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|fd| *fd != raw);
        });
        Ok(())
    }
}
