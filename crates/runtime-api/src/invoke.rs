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
/// shortly after its outcome.
#[derive(Debug)]
pub struct End(oneshot::Receiver<Ended>);

impl End {
    /// Waits for the invocation to end; `None` if its task failed.
    pub async fn wait(self) -> Option<Ended> {
        self.0.await.ok()
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
}

impl Executor {
    /// Runs one invocation of `f`, answering as soon as its outcome is known: the caller of a
    /// warm function has its response when the runtime posts it, not one exchange later when
    /// the runtime asks for the next event. The work runs in a task of its own, so a caller that
    /// goes away cannot leave an environment or a concurrency slot behind.
    pub async fn invoke(
        &self,
        f: &Arc<FunctionRuntime>,
        inv: Invocation,
    ) -> Result<Invoked, Failure> {
        self.inner
            .host
            .can_sandbox()
            .map_err(Failure::Unavailable)?;
        let this = self.clone();
        let f = Arc::clone(f);
        let (answer, answered) = oneshot::channel();
        tokio::spawn(async move { this.run(&f, inv, answer).await });
        answered
            .await
            .unwrap_or_else(|_| Err(Failure::Internal("the invocation's task failed".into())))
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
        let (mut env, cold) = match grant {
            scheduler::Grant::Warm(env) => (env, false),
            scheduler::Grant::Cold { boost } => {
                match Environment::start_for(self, f, &inv.request_id, boost).await {
                    Ok(env) => (env, true),
                    Err(e) => {
                        let init_failed = matches!(&e, Failure::Function(o) if o.init_failed());
                        sched.release(slot, reserved, None, Some(!init_failed), false);
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
        let (ended, end) = oneshot::channel();
        let mut finishing = false;
        let ran = env
            .invoke(&inv, f.timeout_s, |a| {
                // An environment that answered stays in flight until its runtime asks for the
                // next event; the scheduler hands it to a caller that comes meanwhile.
                if a.finishing {
                    sched.finishing(&slot, reserved);
                    finishing = true;
                }
                let _ = answer.send(if a.died && self.stopping() {
                    Err(Failure::Interrupted)
                } else {
                    Ok(Invoked {
                        outcome: a.outcome,
                        cold,
                        end: End(end),
                    })
                });
            })
            .await;
        let init_ok = cold.then_some(true);
        if ran.reusable {
            sched.release(slot, reserved, Some(env), init_ok, finishing);
        } else {
            // The caller has its answer; the environment is torn down behind it, and its slot
            // and memory are given back once it is gone. No caller waits for it meanwhile.
            if finishing {
                sched.finished(&slot, reserved);
            }
            let sched = sched.clone();
            tokio::spawn(async move {
                env.destroy().await;
                sched.release(slot, reserved, None, init_ok, false);
            });
        }
        let _ = ended.send(Ended {
            duration_ms: ran.duration_ms,
            billed_ms: ran.billed_ms,
            init_ms: ran.init_ms,
            max_memory_mb: ran.max_memory_mb,
            tail: ran.tail,
        });
    }
}
