//! The sandboxes kept ready, and the thread that keeps them (see [`crate::premade`]): `size`
//! plain ones, and `size` with an interpreter started ahead for each of the last [`MAX_KINDS`]
//! kinds that cold starts asked for within [`KIND_IDLE`]. The first of each sort is made before
//! the rest, plain ones first: every cold start can use them. A kind whose interpreter cannot be
//! started is forgotten until a cold start asks for it again.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::premade::{Kind, Maker, Premade, lock};

/// How long the thread waits after a sandbox was taken before it makes another.
const SETTLE: Duration = Duration::from_millis(10);

/// How long shutdown waits for the pool's thread to stop.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// How many kinds of interpreters are kept started ahead; the one wanted longest ago goes.
pub(crate) const MAX_KINDS: usize = 4;

/// How long interpreters of a kind no cold start asked for are kept: a server whose Python
/// functions went quiet holds no Python interpreters.
const KIND_IDLE: Duration = Duration::from_secs(15 * 60);

pub(crate) struct Pool {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

struct Shared {
    ready: Mutex<Ready>,
    changed: Condvar,
    stop: AtomicBool,
    size: usize,
    maker: Arc<Maker>,
}

#[derive(Default)]
struct Ready {
    /// Oldest first.
    plain: VecDeque<Premade>,
    /// Interpreters started ahead, by kind, with when a cold start last asked for it, the kind
    /// wanted most recently last.
    zygotes: Vec<(Kind, Instant, VecDeque<Premade>)>,
    /// Sandboxes let go by a cold start, which the thread destroys (blocking) for it.
    discard: Vec<Premade>,
}

impl Ready {
    /// What the thread should make next, if anything: `Some(None)` a plain sandbox.
    fn wanted(&self, size: usize) -> Option<Option<Kind>> {
        // An empty sort before a short one; the kind wanted most recently first.
        for enough in [1, size] {
            if self.plain.len() < enough {
                return Some(None);
            }
            if let Some((kind, _, _)) = self.zygotes.iter().rev().find(|(_, _, q)| q.len() < enough)
            {
                return Some(Some(kind.clone()));
            }
        }
        None
    }

    /// Forgets `kind` (its interpreter could not be started), to be dropped outside the lock.
    fn forget(&mut self, kind: &Kind) -> Vec<Premade> {
        match self.zygotes.iter().position(|(k, _, _)| k == kind) {
            Some(i) => self.zygotes.remove(i).2.into(),
            None => Vec::new(),
        }
    }

    /// Takes out the kinds no cold start asked for within [`KIND_IDLE`], to be dropped outside
    /// the lock.
    fn expire(&mut self, now: Instant) -> Vec<Premade> {
        let mut gone = Vec::new();
        while let Some((_, wanted, _)) = self.zygotes.first()
            && now.duration_since(*wanted) >= KIND_IDLE
        {
            gone.extend(self.zygotes.remove(0).2);
        }
        gone
    }
}

/// The first living sandbox of `queue`; the dead ones found before it go to `dead`.
fn first_alive(queue: &mut VecDeque<Premade>, dead: &mut Vec<Premade>) -> Option<Premade> {
    while let Some(mut p) = queue.pop_front() {
        if p.alive() {
            return Some(p);
        }
        dead.push(p);
    }
    None
}

impl Pool {
    /// Keeps `size` sandboxes ready of each sort (`None` for 0).
    pub(crate) fn start(maker: Arc<Maker>, size: usize) -> std::io::Result<Option<Self>> {
        if size == 0 {
            return Ok(None);
        }
        let shared = Arc::new(Shared {
            ready: Mutex::new(Ready::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            size,
            maker,
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sandbox-pool".into())
            .spawn(move || fill(&s))?;
        Ok(Some(Self {
            shared,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// A ready sandbox, if there is one; the thread makes another.
    pub(crate) fn take(&self) -> Option<Premade> {
        // Killed from outside meanwhile (rare): removed once the lock is released.
        let mut dead = Vec::new();
        let taken = first_alive(&mut lock(&self.shared.ready).plain, &mut dead);
        self.shared.changed.notify_one();
        drop(dead);
        taken
    }

    /// A ready sandbox with `kind`'s interpreter started, if there is one. Either way the kind
    /// is now the one wanted most recently, and the thread makes another (the kind wanted
    /// longest ago is let go beyond [`MAX_KINDS`]); unless one of its sandboxes was found dead.
    pub(crate) fn take_zygote(&self, kind: &Kind) -> Option<Premade> {
        let mut dead = Vec::new();
        let taken = {
            let mut ready = lock(&self.shared.ready);
            let now = Instant::now();
            let mut entry = match ready.zygotes.iter().position(|(k, _, _)| k == kind) {
                Some(i) => ready.zygotes.remove(i),
                None => (kind.clone(), now, VecDeque::new()),
            };
            // Asked for now: the last of the kinds to expire.
            entry.1 = now;
            let taken = first_alive(&mut entry.2, &mut dead);
            if !dead.is_empty() {
                // Its interpreter died while it waited: the kind is forgotten, and made again
                // only when a cold start asks for it again.
                dead.extend(entry.2);
            } else {
                ready.zygotes.push(entry);
                if ready.zygotes.len() > MAX_KINDS {
                    // Destroyed by the thread, not on this cold start's way.
                    let evicted = ready.zygotes.remove(0).2;
                    ready.discard.extend(evicted);
                }
            }
            taken
        };
        self.shared.changed.notify_one();
        drop(dead);
        taken
    }

    /// Stops the thread and destroys the sandboxes it kept (blocking).
    pub(crate) fn stop(&self) {
        // Set under the lock: the thread checks it under the lock before it waits, so the
        // wake-up below cannot fall between its check and its wait.
        {
            let _ready = lock(&self.shared.ready);
            self.shared.stop.store(true, Ordering::Relaxed);
        }
        self.shared.changed.notify_all();
        if let Some(t) = lock(&self.thread).take() {
            // Bounded: a sandbox it is making is counted in `Starts`, which shutdown waits for
            // next (within its own bound), so a thread stuck in the kernel cannot hold
            // shutdown past a service manager's stop timeout.
            let deadline = std::time::Instant::now() + STOP_LIMIT;
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                tracing::warn!(
                    limit_s = STOP_LIMIT.as_secs(),
                    "the sandbox pool's thread did not stop in time; left behind"
                );
            }
        }
        let ready = std::mem::take(&mut *lock(&self.shared.ready));
        drop(ready);
    }
}

fn fill(s: &Shared) {
    let mut failures = 0u32;
    loop {
        let mut gone = Vec::new();
        let wanted = {
            let mut ready = lock(&s.ready);
            loop {
                if s.stop.load(Ordering::Relaxed) {
                    return;
                }
                gone.extend(ready.expire(Instant::now()));
                gone.append(&mut ready.discard);
                // Those first, outside the lock.
                if !gone.is_empty() {
                    break None;
                }
                if let Some(w) = ready.wanted(s.size) {
                    break Some(w);
                }
                // Woken by a take, or to let idle kinds go.
                ready = s
                    .changed
                    .wait_timeout(ready, KIND_IDLE / 4)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        };
        drop(gone);
        let Some(wanted) = wanted else {
            continue;
        };
        // A moment first: the cold start that took a sandbox is still running, and making one
        // costs a core for a few milliseconds.
        std::thread::sleep(SETTLE);
        if s.stop.load(Ordering::Relaxed) {
            return;
        }
        let made = match &wanted {
            None => s.maker.make(None),
            Some(kind) => s.maker.make_zygote(kind),
        };
        match made.and_then(|mut p| p.ready().map(|()| p)) {
            Ok(p) => {
                failures = 0;
                let mut ready = lock(&s.ready);
                if s.stop.load(Ordering::Relaxed) {
                    // Stopped meanwhile (perhaps after `stop` stopped waiting): destroyed here,
                    // not kept where nobody takes it.
                    drop(ready);
                    drop(p);
                    return;
                }
                let queue = match &wanted {
                    None => Some(&mut ready.plain),
                    // Let go meanwhile: the sandbox goes too.
                    Some(kind) => ready
                        .zygotes
                        .iter_mut()
                        .find(|(k, _, _)| k == kind)
                        .map(|(_, _, q)| q),
                };
                match queue {
                    Some(q) => q.push_back(p),
                    None => {
                        drop(ready);
                        drop(p);
                    }
                }
            }
            Err(e) if wanted.is_some() => {
                // Its interpreter did not start: forgotten, so that the other sorts are still
                // made; a cold start that asks for it again tries again.
                let kind = wanted.as_ref().expect("a kind");
                let argv = &kind.argv;
                tracing::warn!(error = %e, ?argv, "starting a runtime's interpreter ahead failed");
                let forgotten = lock(&s.ready).forget(kind);
                drop(forgotten);
            }
            Err(e) => {
                // Cold starts make their own meanwhile; try again later, less often each time.
                failures = (failures + 1).min(6);
                // Said once per streak of failures; the rest at debug level.
                if failures == 1 {
                    tracing::warn!(error = %e, "preparing a sandbox ahead of time failed");
                } else {
                    tracing::debug!(error = %e, "preparing a sandbox ahead of time failed again");
                }
                let pause = Duration::from_millis(100 << failures);
                let ready = lock(&s.ready);
                let _ = s
                    .changed
                    .wait_timeout_while(ready, pause, |_| !s.stop.load(Ordering::Relaxed));
            }
        }
    }
}
