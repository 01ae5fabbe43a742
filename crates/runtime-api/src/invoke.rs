//! One invocation: [`Executor::invoke`] answers its caller as soon as the outcome is known, and
//! the invocation ends (its REPORT line, its environment given back) when the runtime asks for
//! its next event.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::env::Environment;
use crate::{Executor, Failure, FunctionRuntime, Outcome, scheduler};

/// One invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub payload: Bytes,
    pub invoked_arn: String,
    pub version: String,
    /// Decoded `X-Amz-Client-Context` JSON.
    pub client_context: Option<String>,
    /// An attempt of an asynchronous event (it may use only its share of the concurrency).
    pub asynchronous: bool,
    /// The caller reads a streamed response as it comes (`InvokeWithResponseStream`, a
    /// `RESPONSE_STREAM` URL): the outcome's [`Outcome::stream`].
    pub stream: bool,
    /// How many invocations led to this one, through functions' calls to Lamina's APIs, SNS
    /// deliveries and destinations; its function's own calls carry it on ([`crate::apis`]).
    pub hops: u32,
}

/// The result of [`Executor::invoke`], as soon as the outcome is known.
#[derive(Debug)]
pub struct Invoked {
    pub outcome: Outcome,
    pub cold: bool,
    /// The rest, once the invocation has ended.
    pub end: End,
}

/// The end of an invocation: when its runtime asks for the next event (or dies, or times out),
/// shortly after its outcome. Waited for, or given work to do then ([`End::then`]): that work
/// runs in the invocation's own task, so that accounting for a call costs no task of its own.
pub struct End(Arc<std::sync::Mutex<EndState>>);

impl std::fmt::Debug for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("End")
    }
}

enum EndState {
    Waiting,
    Then(Box<dyn FnOnce(Option<Ended>) + Send>),
    Done(Option<Ended>),
}

impl End {
    /// Runs `f` with what is known once the invocation has ended (`None` if its task failed):
    /// at once if it has, else in the invocation's task when it does.
    pub fn then(self, f: impl FnOnce(Option<Ended>) + Send + 'static) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match std::mem::replace(&mut *state, EndState::Done(None)) {
            EndState::Done(ended) => {
                drop(state);
                f(ended);
            }
            _ => *state = EndState::Then(Box::new(f)),
        }
    }

    /// Waits for the invocation to end; `None` if its task failed.
    pub async fn wait(self) -> Option<Ended> {
        let (tx, rx) = oneshot::channel();
        self.then(move |ended| {
            let _ = tx.send(ended);
        });
        rx.await.ok().flatten()
    }
}

/// The invocation's side of its [`End`]. Dropped without [`Ender::send`] (its task failed), it
/// ends with nothing known.
struct Ender(Arc<std::sync::Mutex<EndState>>);

impl Ender {
    fn pair() -> (Ender, End) {
        let state = Arc::new(std::sync::Mutex::new(EndState::Waiting));
        (Ender(state.clone()), End(state))
    }

    fn send(self, ended: Ended) {
        self.end(Some(ended));
    }

    fn end(&self, ended: Option<Ended>) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match std::mem::replace(&mut *state, EndState::Done(None)) {
            EndState::Then(f) => {
                drop(state);
                f(ended);
            }
            EndState::Waiting => *state = EndState::Done(ended),
            // Already ended.
            EndState::Done(earlier) => *state = EndState::Done(earlier),
        }
    }
}

impl Drop for Ender {
    fn drop(&mut self) {
        self.end(None);
    }
}

/// What is known of an invocation once it has ended.
#[derive(Debug, Clone)]
pub struct Ended {
    pub duration_ms: f64,
    pub init_ms: Option<f64>,
    pub max_memory_mb: u64,
    /// The invocation's log (at most the last 4 KB), for `X-Amz-Log-Type: Tail`.
    pub tail: String,
    /// Milliseconds billed (the REPORT line's Billed Duration).
    pub billed_ms: u64,
    /// Bytes of a streamed response.
    pub streamed_bytes: u64,
    /// The error type a streamed response ended with, if any: the caller had its answer (the
    /// stream) before it came.
    pub stream_error: Option<String>,
}

/// Takes an answer whose caller went away before it came (a client that hung up): the
/// invocation runs to its end all the same, and this accounts for it as its caller would have.
pub trait Unclaimed: Send + 'static {
    fn take(self, answer: Result<Invoked, Failure>) -> impl Future<Output = ()> + Send;
}

impl Executor {
    /// Runs one invocation of `f`, answering as soon as its outcome is known: the caller of a
    /// warm function has its response when the runtime posts it, not one exchange later when
    /// the runtime asks for the next event. The work runs in a task of its own, so a caller that
    /// goes away cannot leave an environment or a concurrency slot behind. `unclaimed` comes
    /// back with the answer; if this future is dropped first, it takes the answer instead.
    pub async fn invoke<U: Unclaimed>(
        &self,
        f: &Arc<FunctionRuntime>,
        inv: Invocation,
        unclaimed: U,
    ) -> (Result<Invoked, Failure>, U) {
        if let Err(e) = self.inner.host.can_sandbox() {
            return (Err(Failure::Unavailable(e)), unclaimed);
        }
        let answered = self.spawn_run(f, inv);
        let mut claim = Claim {
            answered: Some(answered),
            unclaimed: Some(unclaimed),
        };
        let answer = claim.answered.as_mut().expect("held until now").await;
        claim.answered = None;
        let unclaimed = claim.unclaimed.take().expect("held until now");
        let answer = answer
            .unwrap_or_else(|_| Err(Failure::Internal("the invocation's task failed".into())));
        (answer, unclaimed)
    }

    /// Starts the invocation's task; its answer comes through the receiver. A function of its
    /// own, not inline in [`Executor::invoke`], so that the task's future is not part of the
    /// caller's too.
    fn spawn_run(
        &self,
        f: &Arc<FunctionRuntime>,
        inv: Invocation,
    ) -> oneshot::Receiver<Result<Invoked, Failure>> {
        let this = self.clone();
        let f = Arc::clone(f);
        let (answer, answered) = oneshot::channel();
        tokio::spawn(async move { this.run(&f, inv, answer).await });
        answered
    }

    async fn run(
        &self,
        f: &FunctionRuntime,
        inv: Invocation,
        answer: oneshot::Sender<Result<Invoked, Failure>>,
    ) {
        let slot = scheduler::Slot {
            account: f.account.clone(),
            region: f.region.clone(),
            function_arn: f.function_arn.clone(),
            revision_id: f.revision_id.clone(),
            version: f.version.clone(),
            memory_mb: f.memory_mb,
            tmp_mb: f.tmp_mb,
            asynchronous: inv.asynchronous,
        };
        let sched = &self.inner.scheduler;
        let (grant, reserved) = match sched.acquire(&slot).await {
            Ok(granted) => granted,
            Err(t) => {
                let _ = answer.send(Err(Failure::Throttled(t)));
                return;
            }
        };
        let mut held = Held::new(sched.clone(), slot, reserved);
        let (mut env, cold) = match grant {
            scheduler::Grant::Warm(env) => (env, false),
            scheduler::Grant::Cold { boost } => {
                // Boxed: a cold start's future is most of this one's size otherwise, and every
                // warm invocation would allocate and copy it.
                match Box::pin(Environment::start_for(
                    self,
                    f,
                    &inv.request_id,
                    inv.hops,
                    boost,
                ))
                .await
                {
                    Ok(env) => (env, true),
                    Err(e) => {
                        let init_failed = matches!(&e, Failure::Function(o) if o.init_failed());
                        held.release(None, Some(!init_failed));
                        let _ = answer.send(Err(if self.stopping() {
                            Failure::Interrupted
                        } else {
                            e
                        }));
                        return;
                    }
                }
            }
        };
        let (ended, end) = Ender::pair();
        let ran = env
            .invoke(&inv, f.timeout_s, |a| {
                // An environment that answered stays in flight until its runtime asks for the
                // next event; the scheduler hands it to a caller that comes meanwhile.
                if a.finishing {
                    held.finishing();
                }
                let _ = answer.send(if a.died && self.stopping() {
                    Err(Failure::Interrupted)
                } else {
                    Ok(Invoked {
                        outcome: a.outcome,
                        cold,
                        end,
                    })
                });
            })
            .await;
        let init_ok = cold.then_some(true);
        if ran.reusable {
            held.release(Some(env), init_ok);
        } else {
            // The caller has its answer and its concurrency goes back; the environment is
            // torn down behind it, and its memory is given back once it is gone. No caller
            // waits for it meanwhile.
            held.finished();
            let room = held.discard(init_ok);
            tokio::spawn(async move {
                env.destroy().await;
                drop(room);
            });
        }
        ended.send(Ended {
            duration_ms: ran.duration_ms,
            billed_ms: ran.billed_ms,
            init_ms: ran.init_ms,
            max_memory_mb: ran.max_memory_mb,
            tail: ran.tail,
            streamed_bytes: ran.streamed_bytes,
            stream_error: ran.stream_error,
        });
    }
}

/// An invocation's concurrency (with its memory and disk), from its grant until it is given
/// back. Dropped without [`Held::release`], as when the invocation's task panics, it is given
/// back all the same: a bug in one invocation cannot hold a function's concurrency for good.
struct Held {
    sched: scheduler::Scheduler,
    /// `None` once given back.
    slot: Option<scheduler::Slot>,
    reserved: bool,
    /// [`scheduler::Scheduler::finishing`] was called for it.
    finishing: bool,
}

impl Held {
    fn new(sched: scheduler::Scheduler, slot: scheduler::Slot, reserved: bool) -> Self {
        Self {
            sched,
            slot: Some(slot),
            reserved,
            finishing: false,
        }
    }

    /// The invocation answered and waits for its runtime's next `/next`.
    fn finishing(&mut self) {
        if let Some(slot) = &self.slot {
            self.sched.finishing(slot, self.reserved);
            self.finishing = true;
        }
    }

    /// The invocation that answered will not give its environment back.
    fn finished(&mut self) {
        if let Some(slot) = &self.slot
            && std::mem::take(&mut self.finishing)
        {
            self.sched.finished(slot, self.reserved);
        }
    }

    /// Gives the concurrency back, with the environment if it may serve again.
    fn release(mut self, env: Option<Environment>, init_ok: Option<bool>) {
        self.give_back(env, init_ok);
    }

    /// Gives the concurrency back now; the environment's room goes with the returned guard.
    fn discard(mut self, init_ok: Option<bool>) -> Option<scheduler::Room> {
        let slot = self.slot.take()?;
        Some(
            self.sched
                .release_discarding(slot, self.reserved, init_ok, self.finishing),
        )
    }

    fn give_back(&mut self, env: Option<Environment>, init_ok: Option<bool>) {
        if let Some(slot) = self.slot.take() {
            self.sched
                .release(slot, self.reserved, env, init_ok, self.finishing);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.give_back(None, None);
    }
}

/// A caller's claim on its answer. Dropped before the answer was taken, it hands the answer to
/// [`Unclaimed`] in a task of its own.
struct Claim<U: Unclaimed> {
    answered: Option<oneshot::Receiver<Result<Invoked, Failure>>>,
    unclaimed: Option<U>,
}

impl<U: Unclaimed> Drop for Claim<U> {
    fn drop(&mut self) {
        let (Some(answered), Some(unclaimed)) = (self.answered.take(), self.unclaimed.take())
        else {
            return;
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Ok(answer) = answered.await {
                    unclaimed.take(answer).await;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::time::Duration;

    use lamina_sandbox::kernel::RecordingKernel;

    use super::*;
    use crate::scheduler::{Grant, Scheduler, Settings, Slot};

    fn ended(ms: f64) -> Ended {
        Ended {
            duration_ms: ms,
            init_ms: None,
            max_memory_mb: 1,
            tail: String::new(),
            billed_ms: 1,
            streamed_bytes: 0,
            stream_error: None,
        }
    }

    #[tokio::test]
    async fn an_end_runs_its_work_once_whenever_it_was_given() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = |seen: &Arc<std::sync::Mutex<Vec<Option<f64>>>>| {
            let seen = seen.clone();
            move |e: Option<Ended>| seen.lock().unwrap().push(e.map(|e| e.duration_ms))
        };
        // Given before the end: run by the invocation's side when it ends.
        let (ender, end) = Ender::pair();
        end.then(record(&seen));
        assert!(seen.lock().unwrap().is_empty());
        ender.send(ended(1.0));
        // Given after: run at once.
        let (ender, end) = Ender::pair();
        ender.send(ended(2.0));
        end.then(record(&seen));
        // The invocation's task failed: nothing known.
        let (ender, end) = Ender::pair();
        end.then(record(&seen));
        drop(ender);
        assert_eq!(*seen.lock().unwrap(), vec![Some(1.0), Some(2.0), None]);
        // Waited for.
        let (ender, end) = Ender::pair();
        let waiter = tokio::spawn(end.wait());
        ender.send(ended(3.0));
        assert_eq!(waiter.await.unwrap().map(|e| e.duration_ms), Some(3.0));
    }

    fn scheduler() -> Scheduler {
        scheduler_telling(None)
    }

    fn scheduler_telling(forgotten: Option<crate::scheduler::Forgotten>) -> Scheduler {
        Scheduler::start(
            forgotten,
            Settings {
                account_concurrency: 1,
                keep_alive: Duration::from_secs(60),
                memory_budget_mb: 1024,
                memory_overcommit: 1.0,
                memory_reserve_mb: 0,
                tmp_budget_mb: 1024,
                freeze_after: Duration::from_secs(60),
                scale_up: 1000,
                async_share: 0.9,
                scale_window: Duration::from_secs(10),
            },
            Arc::new(RecordingKernel::new()),
        )
    }

    fn slot() -> Slot {
        Slot {
            account: "123456789012".into(),
            region: "us-east-1".into(),
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
            revision_id: "r1".into(),
            version: "$LATEST".into(),
            memory_mb: 128,
            tmp_mb: 512,
            asynchronous: false,
        }
    }

    #[tokio::test]
    async fn an_invocation_whose_task_panics_gives_its_concurrency_back() {
        let sched = scheduler();
        let (grant, reserved) = sched.acquire(&slot()).await.expect("room for one");
        assert!(matches!(grant, Grant::Cold { .. }));
        let held = Held::new(sched.clone(), slot(), reserved);
        assert!(
            sched.acquire(&slot()).await.is_err(),
            "the account's one concurrency is held"
        );
        let panicked = catch_unwind(AssertUnwindSafe(move || {
            let _held = held;
            panic!("a bug in the invocation's task");
        }));
        assert!(panicked.is_err());
        let (grant, _) = sched
            .acquire(&slot())
            .await
            .expect("the concurrency was given back");
        assert!(matches!(grant, Grant::Cold { .. }));
    }

    #[tokio::test]
    async fn a_discarded_environments_concurrency_goes_back_before_it_is_destroyed() {
        let sched = scheduler();
        let (_, reserved) = sched.acquire(&slot()).await.expect("room for one");
        let held = Held::new(sched.clone(), slot(), reserved);
        // It timed out: the caller has its answer while the environment is torn down.
        let room = held.discard(Some(true)).expect("held");
        let (grant, reserved) = sched
            .acquire(&slot())
            .await
            .expect("the account's one concurrency is free again");
        assert!(matches!(grant, Grant::Cold { .. }));
        assert_eq!(
            sched.stats().live_memory_mb,
            256,
            "both environments' memory counted"
        );
        drop(room);
        assert_eq!(sched.stats().live_memory_mb, 128);
        Held::new(sched.clone(), slot(), reserved).release(None, None);
        assert_eq!(sched.stats().live_memory_mb, 0);
    }

    #[tokio::test]
    async fn a_deleted_functions_entry_is_forgotten_once_it_holds_nothing() {
        let told = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let tell = {
            let told = told.clone();
            Box::new(move |arn: &str| told.lock().unwrap().push(arn.to_owned()))
        };
        let sched = scheduler_telling(Some(tell));
        let told = move || std::mem::take(&mut *told.lock().unwrap());
        let arn = slot().function_arn.to_string();
        let entries = |s: &Scheduler| s.entries().0;
        // A function that lives keeps its entry between invocations.
        let (_, reserved) = sched.acquire(&slot()).await.expect("room");
        Held::new(sched.clone(), slot(), reserved).release(None, None);
        assert_eq!(entries(&sched), 1);
        // Deleted while an invocation runs: kept until it ends, then forgotten.
        let (_, reserved) = sched.acquire(&slot()).await.expect("room");
        let held = Held::new(sched.clone(), slot(), reserved);
        sched.retire(&arn, None);
        assert_eq!(entries(&sched), 1, "its invocation still holds it");
        assert!(told().is_empty(), "nothing is told while it runs");
        held.release(None, None);
        assert_eq!(entries(&sched), 0);
        assert_eq!(
            told(),
            std::slice::from_ref(&arn),
            "its end tells its entry went"
        );
        // Made again, deleted while idle: forgotten at once. A thousand times, no entry left.
        for _ in 0..1000 {
            let (_, reserved) = sched.acquire(&slot()).await.expect("room");
            Held::new(sched.clone(), slot(), reserved).release(None, None);
            sched.retire(&arn, None);
        }
        assert_eq!(
            sched.entries(),
            (0, 0),
            "no entry of it, or of its account, is left"
        );
        assert_eq!(told().len(), 1000);
        // Made again and invoked: its entry stays between invocations, as a live function's.
        let (_, reserved) = sched.acquire(&slot()).await.expect("room");
        Held::new(sched.clone(), slot(), reserved).release(None, None);
        sched.retire(&arn, Some("$LATEST"));
        assert_eq!(entries(&sched), 1);
    }

    #[tokio::test]
    async fn an_asynchronous_attempt_may_start_a_function_larger_than_its_share() {
        let sched = scheduler();
        // The budget is 1024 MB, of which asynchronous attempts may fill 90 %: 921 MB.
        let big = Slot {
            memory_mb: 1000,
            asynchronous: true,
            ..slot()
        };
        let (grant, _) = sched
            .acquire(&big)
            .await
            .expect("an event of a function above the share still runs");
        assert!(matches!(grant, Grant::Cold { .. }));
    }
}
