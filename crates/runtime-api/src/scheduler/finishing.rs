//! Environments finishing: they answered their callers and wait for their runtimes' next
//! `/next`, in flight still. A caller that finds no idle environment waits in line for one of
//! them (see the scheduler's doc), rather than starting another or being throttled; a caller
//! that would be throttled waits for one to end.
//!
//! [`Finishing`] is generic over the environment (`E`), so that its bookkeeping is tested
//! without sandboxes.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::{Acquired, FINISH_WAIT, Grant, Scheduler, Slot, State, Throttle};
use crate::env::Environment;

/// What a waiting caller gets: an environment with its concurrency (`true`: from the function's
/// reservation), or `None` once fewer environments are finishing than callers wait.
pub(super) type Handed<E> = Option<(E, bool)>;

/// One function's finishing environments, by version and revision, and the callers waiting.
pub(super) struct Finishing<E> {
    /// Entries at count 0 that no caller waits for are reused.
    kinds: Vec<Kind>,
    /// Oldest first.
    waiters: VecDeque<Waiter<E>>,
}

impl<E> Default for Finishing<E> {
    fn default() -> Self {
        Self {
            kinds: Vec::new(),
            waiters: VecDeque::new(),
        }
    }
}

struct Kind {
    version: Arc<str>,
    revision_id: Arc<str>,
    /// Environments of this version and revision finishing.
    count: u32,
    /// A caller waited for one of them in vain (see [`Finishing::stall`]).
    stalled: bool,
}

struct Waiter<E> {
    /// An index into `kinds`.
    kind: usize,
    asynchronous: bool,
    tx: oneshot::Sender<Handed<E>>,
}

impl Scheduler {
    /// Asks for an environment. `Ok((grant, reserved))`: `reserved` says which pool the
    /// concurrency came from, to give back with [`Scheduler::release`]. Waits, for at most
    /// [`FINISH_WAIT`], only while invocations are finishing: for one of the function's to hand
    /// its environment over, or, where the caller would be throttled for want of concurrency,
    /// memory or disk, for any of them to end and make room.
    pub async fn acquire(&self, slot: &Slot) -> Result<(Grant, bool), Throttle> {
        let deadline = tokio::time::Instant::now() + FINISH_WAIT;
        let mut may_wait = true;
        loop {
            let acquired = {
                let mut state = self.state();
                match state.acquire(slot, may_wait) {
                    Err(t) if state.may_make_room(t, slot) => {
                        state.waiting_for_room += 1;
                        // Enabled under the lock, under which releases notify: none is missed.
                        let mut released = Box::pin(self.released.notified());
                        released.as_mut().enable();
                        Err(released)
                    }
                    other => Ok(other),
                }
            };
            let mut rx = match acquired {
                Ok(Ok(Acquired::Granted(grant, reserved))) => return Ok((grant, reserved)),
                Ok(Ok(Acquired::Wait(rx))) => rx,
                Ok(Err(t)) => return Err(t),
                Err(released) => {
                    let waited = tokio::time::timeout_at(deadline, released).await;
                    self.state().waiting_for_room -= 1;
                    if waited.is_err() {
                        // No room made in time: admitted (or throttled) as if none were
                        // finishing.
                        return self.acquire_now(slot);
                    }
                    continue;
                }
            };
            let handed = match tokio::time::timeout_at(deadline, &mut rx).await {
                Ok(handed) => handed.ok().flatten(),
                // Closed first, so that an environment handed over at this moment is not lost.
                Err(_) => {
                    rx.close();
                    rx.try_recv().ok().flatten()
                }
            };
            if let Some((env, reserved)) = handed {
                return Ok((Grant::Warm(env), reserved));
            }
            if tokio::time::Instant::now() >= deadline
                && let Some(f) = self.state().functions.get_mut(&slot.function_arn)
            {
                f.finishing.stall(slot);
            }
            may_wait = false;
        }
    }

    /// Notes that an invocation of `slot` answered its caller and waits for its runtime's next
    /// `/next`: its environment may be handed to a caller that comes meanwhile.
    pub fn finishing(&self, slot: &Slot, reserved: bool) {
        let mut state = self.state();
        state.finishing += 1;
        if !reserved {
            state.account(slot).finishing += 1;
        }
        let f = state
            .functions
            .entry(slot.function_arn.clone())
            .or_default();
        f.finishing.mark(slot);
    }

    /// Notes that an invocation marked [`Scheduler::finishing`] will not give its environment
    /// back (it died, or timed out): callers waiting for it stop waiting.
    pub fn finished(&self, slot: &Slot, reserved: bool) {
        let mut state = self.state();
        state.unmark(slot, reserved);
        if let Some(f) = state.functions.get_mut(&slot.function_arn) {
            f.finishing.settle(slot);
        }
    }

    /// [`Scheduler::acquire`] without waiting.
    fn acquire_now(&self, slot: &Slot) -> Result<(Grant, bool), Throttle> {
        match self.state().acquire(slot, false)? {
            Acquired::Granted(grant, reserved) => Ok((grant, reserved)),
            Acquired::Wait(_) => unreachable!("asked not to wait"),
        }
    }
}

impl State {
    /// Whether an invocation finishing may lift `t` for `slot`: its function's reservation in
    /// use, or the account's concurrency, memory or disk.
    fn may_make_room(&mut self, t: Throttle, slot: &Slot) -> bool {
        match t {
            Throttle::Reserved => self
                .functions
                .get_mut(&slot.function_arn)
                .is_some_and(|f| f.finishing.unpromised() > 0),
            Throttle::Account => self.account(slot).finishing > 0,
            Throttle::Memory | Throttle::Disk => self.finishing > 0,
            _ => false,
        }
    }

    /// Uncounts a finishing invocation of `slot` that ended.
    pub(super) fn unmark(&mut self, slot: &Slot, reserved: bool) {
        self.finishing = self.finishing.saturating_sub(1);
        if !reserved {
            let a = self.account(slot);
            a.finishing = a.finishing.saturating_sub(1);
        }
        if let Some(f) = self.functions.get_mut(&slot.function_arn) {
            f.finishing.unmark(slot);
        }
    }

    /// Hands `env`, released by an invocation of `slot`, to the oldest caller waiting for it,
    /// with the invocation's concurrency; gives it back if none takes it.
    pub(super) fn hand_over(
        &mut self,
        slot: &Slot,
        reserved: bool,
        env: Environment,
    ) -> Option<Environment> {
        let Some(f) = self.functions.get_mut(&slot.function_arn) else {
            return Some(env);
        };
        if !f.keeps(slot, &env) {
            return Some(env);
        }
        let asynchronous = match f.finishing.hand_over(slot, env, reserved) {
            Ok(asynchronous) => asynchronous,
            Err(env) => return Some(env),
        };
        // The slot stays in flight: only whether it is asynchronous may change.
        let change = |n: &mut u32| {
            *n = n.saturating_sub(slot.asynchronous as u32) + asynchronous as u32;
        };
        change(&mut f.in_flight_async);
        if !reserved {
            change(&mut self.account(slot).unreserved_in_flight_async);
        }
        None
    }
}

impl<E> Finishing<E> {
    /// Environments of the function finishing that no caller waits for yet, of kinds not
    /// stalled: an environment that lingers after its answer makes no room soon either.
    pub(super) fn unpromised(&mut self) -> usize {
        self.waiters.retain(|w| !w.tx.is_closed());
        let kinds = &self.kinds;
        let finishing: usize = kinds
            .iter()
            .filter(|k| !k.stalled)
            .map(|k| k.count as usize)
            .sum();
        let promised = self
            .waiters
            .iter()
            .filter(|w| !kinds[w.kind].stalled)
            .count();
        finishing.saturating_sub(promised)
    }

    /// The index of `slot`'s version and revision in `kinds`.
    fn find(&self, slot: &Slot) -> Option<usize> {
        self.kinds
            .iter()
            .position(|k| k.version == slot.version && k.revision_id == slot.revision_id)
    }

    /// Callers of `kind` still waiting (those that gave up are dropped from the line).
    fn waiting(&mut self, kind: usize) -> usize {
        self.waiters.retain(|w| !w.tx.is_closed());
        self.waiters.iter().filter(|w| w.kind == kind).count()
    }

    /// An invocation of `slot` answered its caller. A new version or revision takes an entry
    /// nothing refers to any more, so that updates do not grow the list.
    pub(super) fn mark(&mut self, slot: &Slot) {
        if let Some(kind) = self.find(slot) {
            self.kinds[kind].count += 1;
            return;
        }
        self.waiters.retain(|w| !w.tx.is_closed());
        let unused = (0..self.kinds.len())
            .find(|&i| self.kinds[i].count == 0 && !self.waiters.iter().any(|w| w.kind == i));
        let kind = Kind {
            version: slot.version.clone(),
            revision_id: slot.revision_id.clone(),
            count: 1,
            stalled: false,
        };
        match unused {
            Some(i) => self.kinds[i] = kind,
            None => self.kinds.push(kind),
        }
    }

    /// An invocation of `slot` marked finishing has ended.
    pub(super) fn unmark(&mut self, slot: &Slot) {
        if let Some(kind) = self.find(slot) {
            let k = &mut self.kinds[kind];
            k.count = k.count.saturating_sub(1);
            k.stalled = false;
        }
    }

    /// A caller of `slot` waited in vain: until one of its kind ends, callers do not wait for
    /// the others (a runtime that lingers after its responses would hold each of them). Where
    /// none is finishing any more (the one waited for ended as the wait ran out), there is
    /// nothing to stall: a stall set then would hold the next caller's wait, for an environment
    /// that had not yet answered when this one gave up.
    pub(super) fn stall(&mut self, slot: &Slot) {
        if let Some(kind) = self.find(slot).filter(|&k| self.kinds[k].count > 0) {
            self.kinds[kind].stalled = true;
        }
    }

    /// A place in line for a caller of `slot`, if more of its kind are finishing than callers
    /// wait for them.
    pub(super) fn wait(&mut self, slot: &Slot) -> Option<oneshot::Receiver<Handed<E>>> {
        let kind = self.find(slot)?;
        if self.kinds[kind].stalled || self.waiting(kind) >= self.kinds[kind].count as usize {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.push_back(Waiter {
            kind,
            asynchronous: slot.asynchronous,
            tx,
        });
        Some(rx)
    }

    /// Hands `env`, of `slot`'s kind, with its concurrency to the oldest caller waiting for
    /// that kind. `Ok`: whether that caller is an asynchronous attempt; `Err`: nobody took it.
    pub(super) fn hand_over(&mut self, slot: &Slot, env: E, reserved: bool) -> Result<bool, E> {
        let Some(kind) = self.find(slot).filter(|_| !self.waiters.is_empty()) else {
            return Err(env);
        };
        let mut env = env;
        while let Some(i) = self.waiters.iter().position(|w| w.kind == kind) {
            let w = self.waiters.remove(i).expect("found");
            match w.tx.send(Some((env, reserved))) {
                Ok(()) => return Ok(w.asynchronous),
                // That caller stopped waiting.
                Err(back) => env = back.expect("sent an environment").0,
            }
        }
        Err(env)
    }

    /// Whether no environment is finishing and no caller waits.
    pub(super) fn is_empty(&self) -> bool {
        self.waiters.is_empty() && self.kinds.iter().all(|k| k.count == 0)
    }

    /// Tells the callers of `slot`'s kind waiting beyond the environments still finishing (the
    /// newest first) to stop waiting.
    pub(super) fn settle(&mut self, slot: &Slot) {
        let Some(kind) = self.find(slot) else {
            return;
        };
        let surplus = self
            .waiting(kind)
            .saturating_sub(self.kinds[kind].count as usize);
        for _ in 0..surplus {
            let i = self
                .waiters
                .iter()
                .rposition(|w| w.kind == kind)
                .expect("counted");
            let w = self.waiters.remove(i).expect("found");
            let _ = w.tx.send(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(version: &str, asynchronous: bool) -> Slot {
        Slot {
            account: "123456789012".into(),
            region: "us-east-1".into(),
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
            revision_id: "r1".into(),
            version: version.into(),
            memory_mb: 128,
            tmp_mb: 512,
            asynchronous,
        }
    }

    #[test]
    fn only_as_many_callers_wait_as_environments_are_finishing() {
        let mut f = Finishing::<u32>::default();
        let latest = slot("$LATEST", false);
        assert!(f.wait(&latest).is_none(), "nothing finishing");
        f.mark(&latest);
        let first = f.wait(&latest).expect("one finishing");
        assert!(f.wait(&latest).is_none(), "one already waits for it");
        assert!(f.wait(&slot("1", false)).is_none(), "another version");
        // A caller that gave up frees its place.
        drop(first);
        assert!(f.wait(&latest).is_some());
    }

    #[test]
    fn an_environment_goes_to_the_oldest_caller_of_its_kind() {
        let mut f = Finishing::<u32>::default();
        let (latest, v1) = (slot("$LATEST", false), slot("1", true));
        f.mark(&latest);
        f.mark(&v1);
        f.mark(&latest);
        let mut a = f.wait(&latest).unwrap();
        let mut b = f.wait(&v1).unwrap();
        let mut c = f.wait(&latest).unwrap();
        assert_eq!(f.hand_over(&latest, 7, true), Ok(false));
        assert_eq!(a.try_recv().unwrap(), Some((7, true)));
        assert!(b.try_recv().is_err() && c.try_recv().is_err());
        assert_eq!(
            f.hand_over(&v1, 8, false),
            Ok(true),
            "an asynchronous caller"
        );
        assert_eq!(b.try_recv().unwrap(), Some((8, false)));
        // A caller that stopped waiting is passed over; with nobody left the environment comes
        // back.
        c.close();
        assert_eq!(f.hand_over(&latest, 9, false), Err(9));
    }

    #[test]
    fn after_a_wait_in_vain_callers_stop_waiting_until_one_ends() {
        let mut f = Finishing::<u32>::default();
        let latest = slot("$LATEST", false);
        f.mark(&latest);
        f.mark(&latest);
        drop(f.wait(&latest).unwrap());
        f.stall(&latest);
        assert!(f.wait(&latest).is_none(), "one of them lingers");
        f.unmark(&latest);
        assert!(f.wait(&latest).is_some(), "one ended");
    }

    #[test]
    fn a_stalled_kind_makes_no_room_to_wait_for() {
        let mut f = Finishing::<u32>::default();
        let (latest, v1) = (slot("$LATEST", false), slot("1", false));
        f.mark(&latest);
        f.mark(&v1);
        assert_eq!(f.unpromised(), 2);
        drop(f.wait(&latest).unwrap());
        f.stall(&latest);
        // A caller throttled for the function's reservation waits for room only from the
        // version whose environments end after their answers.
        assert_eq!(f.unpromised(), 1);
        let promised = f.wait(&v1).unwrap();
        assert_eq!(f.unpromised(), 0);
        drop(promised);
        f.unmark(&v1);
        assert_eq!(f.unpromised(), 0, "the lingering one makes none");
        f.unmark(&latest);
        f.mark(&latest);
        assert_eq!(f.unpromised(), 1, "the stall ended with its environment");
    }

    #[test]
    fn a_wait_that_ran_out_as_its_environment_ended_stalls_nothing() {
        let mut f = Finishing::<u32>::default();
        let latest = slot("$LATEST", false);
        f.mark(&latest);
        drop(f.wait(&latest).unwrap());
        // The environment ends as the caller's wait runs out; the caller takes it idle.
        f.unmark(&latest);
        f.stall(&latest);
        // Its next invocation answers: the next caller waits for it.
        f.mark(&latest);
        assert!(
            f.wait(&latest).is_some(),
            "not stalled by a wait before it answered"
        );
    }

    #[test]
    fn a_new_revision_reuses_an_entry_nothing_refers_to() {
        let mut f = Finishing::<u32>::default();
        for revision in 0..100 {
            let mut s = slot("$LATEST", false);
            s.revision_id = format!("r{revision}").into();
            f.mark(&s);
            f.unmark(&s);
        }
        assert_eq!(f.kinds.len(), 1);
        assert_eq!(f.unpromised(), 0);
    }

    #[test]
    fn callers_beyond_the_environments_finishing_stop_waiting() {
        let mut f = Finishing::<u32>::default();
        let latest = slot("$LATEST", false);
        f.mark(&latest);
        f.mark(&latest);
        let mut older = f.wait(&latest).unwrap();
        let mut newer = f.wait(&latest).unwrap();
        // One of the two died instead of asking for its next event.
        f.unmark(&latest);
        f.settle(&latest);
        assert_eq!(newer.try_recv().unwrap(), None, "told to stop waiting");
        assert!(older.try_recv().is_err(), "still waits for the other");
        f.unmark(&latest);
        f.settle(&latest);
        assert_eq!(older.try_recv().unwrap(), None);
    }
}
