//! The SNS outbox: deliveries to HTTP endpoints, confirmation messages, and deliveries to
//! functions that must be retried, worked through by one deliverer task.
//!
//! The deliverer leases due rows (at most [`IN_FLIGHT`] at once), makes each attempt in a task of
//! its own, and settles the outcomes in batches: a row goes when it was delivered or given up,
//! or comes back due after the retry policy's next delay. HTTP endpoints follow the
//! subscription's delivery policy (SNS's default: three retries, 20 s apart); a 2xx answer
//! delivers, 429, 5xx and unanswered attempts are retried, other answers are the endpoint's
//! refusal. Functions follow SNS's policy for AWS-managed endpoints (100,015 attempts over 23
//! days) when the invoke was throttled; a missing function or a refused permission ends the
//! delivery at once. Every delivery given up is counted and logged (for a function, in its own
//! log too).

use std::sync::Arc;
use std::time::Duration;

use lamina_model::now_millis;
use lamina_store::{Delivery, NewDelivery, SettleDelivery};
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};

use super::wire::{SnsError, SnsResult};
use crate::AppState;
use crate::lambda::from_service::{self, Refusal};

/// Deliveries attempted at once.
const IN_FLIGHT: usize = 64;

/// How an endpoint's deliveries are retried: the four phases of an SNS delivery policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries in all phases.
    pub retries: u32,
    pub no_delay: u32,
    pub min_delay: u32,
    pub max_delay: u32,
    pub min_delay_s: u32,
    pub max_delay_s: u32,
    pub backoff: Backoff,
}

/// How delays grow between `min_delay_s` and `max_delay_s` in the backoff phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    Linear,
    Arithmetic,
    Geometric,
    Exponential,
}

impl RetryPolicy {
    /// SNS's default for HTTP/S: three retries, 20 s apart.
    pub const HTTP: Self = Self {
        retries: 3,
        no_delay: 0,
        min_delay: 0,
        max_delay: 0,
        min_delay_s: 20,
        max_delay_s: 20,
        backoff: Backoff::Linear,
    };

    /// SNS's fixed policy for functions: 3 at once, 2 a second apart, 10 backing off from 1 s to
    /// 20 s, then 100,000 at 20 s.
    pub const FUNCTION: Self = Self {
        retries: 100_015,
        no_delay: 3,
        min_delay: 2,
        max_delay: 100_000,
        min_delay_s: 1,
        max_delay_s: 20,
        backoff: Backoff::Exponential,
    };

    /// The `healthyRetryPolicy` of a subscription's `DeliveryPolicy` (JSON), checked as SNS
    /// checks it.
    pub fn from_delivery_policy(text: &str) -> Result<Self, String> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("failed to parse JSON. {e}"))?;
        let p = &v["healthyRetryPolicy"];
        if p.is_null() {
            return Ok(Self::HTTP);
        }
        let num = |name: &str, default: u32| -> Result<u32, String> {
            match &p[name] {
                serde_json::Value::Null => Ok(default),
                n => n
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| format!("{name} must be a non-negative integer")),
            }
        };
        if let Some(ct) = v["requestPolicy"].get("headerContentType") {
            let ok = ct.as_str().is_some_and(|t| {
                !t.is_empty() && t.len() <= 256 && t.bytes().all(|b| (b' '..=b'~').contains(&b))
            });
            if !ok {
                return Err("requestPolicy.headerContentType must be a content type".into());
            }
        }
        let policy = Self {
            retries: num("numRetries", 3)?,
            no_delay: num("numNoDelayRetries", 0)?,
            min_delay: num("numMinDelayRetries", 0)?,
            max_delay: num("numMaxDelayRetries", 0)?,
            min_delay_s: num("minDelayTarget", 20)?,
            max_delay_s: num("maxDelayTarget", 20)?,
            backoff: match p["backoffFunction"].as_str().unwrap_or("linear") {
                "linear" => Backoff::Linear,
                "arithmetic" => Backoff::Arithmetic,
                "geometric" => Backoff::Geometric,
                "exponential" => Backoff::Exponential,
                other => {
                    return Err(format!(
                        "backoffFunction {other} is not one of linear, arithmetic, geometric, exponential"
                    ));
                }
            },
        };
        if policy.retries > 100 {
            return Err("numRetries must be at most 100".into());
        }
        if policy.no_delay as u64 + policy.min_delay as u64 + policy.max_delay as u64
            > policy.retries as u64
        {
            return Err(
                "numRetries must be at least the retries of the other phases together".into(),
            );
        }
        if policy.min_delay_s < 1
            || policy.min_delay_s > policy.max_delay_s
            || policy.max_delay_s > 3600
        {
            return Err("minDelayTarget must be at least 1, at most maxDelayTarget, which must be at most 3600".into());
        }
        let total: u64 = (1..=policy.retries).map(|n| policy.delay_s(n) as u64).sum();
        if total > 3600 {
            return Err("the total retry time must be at most 3600 seconds".into());
        }
        Ok(policy)
    }

    /// The delay before retry `n` (1-based), seconds.
    pub fn delay_s(&self, n: u32) -> u32 {
        let backoff = self.retries - self.no_delay - self.min_delay - self.max_delay;
        if n <= self.no_delay {
            return 0;
        }
        if n <= self.no_delay + self.min_delay {
            return self.min_delay_s;
        }
        let i = n - self.no_delay - self.min_delay;
        if i > backoff {
            return self.max_delay_s;
        }
        let (lo, hi) = (self.min_delay_s as f64, self.max_delay_s as f64);
        if backoff <= 1 || lo == hi {
            return self.min_delay_s;
        }
        let t = (i - 1) as f64 / (backoff - 1) as f64;
        let d = match self.backoff {
            Backoff::Linear => lo + (hi - lo) * t,
            Backoff::Arithmetic => lo + (hi - lo) * t * t,
            Backoff::Geometric => lo + (hi - lo) * t.powi(3),
            Backoff::Exponential => lo * (hi / lo).powf(t),
        };
        d.round().clamp(lo, hi) as u32
    }
}

/// The `SubscriptionConfirmation` message an HTTP endpoint receives.
pub fn confirmation_body(
    sns: &super::SnsState,
    topic_arn: &str,
    message_id: &str,
    token: &str,
    now_ms: i64,
) -> Vec<u8> {
    // ARNs go into links as they are, as SNS writes them (`:` is allowed in a query).
    let subscribe_url = format!(
        "{}/?Action=ConfirmSubscription&TopicArn={topic_arn}&Token={token}",
        sns.settings.public_url
    );
    let message = format!(
        "You have chosen to subscribe to the topic {topic_arn}.\nTo confirm the subscription, visit the SubscribeURL included in this message."
    );
    let timestamp = lamina_model::iso8601_millis(now_ms);
    let signature = sns.sign(&[
        ("Message", &message),
        ("MessageId", message_id),
        ("SubscribeURL", &subscribe_url),
        ("Timestamp", &timestamp),
        ("Token", token),
        ("TopicArn", topic_arn),
        ("Type", "SubscriptionConfirmation"),
    ]);
    json!({
        "Type": "SubscriptionConfirmation",
        "MessageId": message_id,
        "Token": token,
        "TopicArn": topic_arn,
        "Message": message,
        "SubscribeURL": subscribe_url,
        "Timestamp": timestamp,
        "SignatureVersion": super::signing::SIGNATURE_VERSION,
        "Signature": signature,
        "SigningCertURL": sns.cert_url(),
    })
    .to_string()
    .into_bytes()
}

/// Room in the outbox, taken before anything of a publish is made durable and given back when
/// it is not used (dropping it gives it all back).
pub struct Reservation<'a> {
    sns: &'a super::SnsState,
    bytes: u64,
}

impl<'a> Reservation<'a> {
    /// Reserves `bytes`, or refuses with `Throttled` when the outbox is full.
    pub fn take(sns: &'a super::SnsState, bytes: u64) -> SnsResult<Self> {
        let mut room = Self { sns, bytes: 0 };
        room.grow(bytes)?;
        Ok(room)
    }

    /// Reserves `bytes` more, or refuses as [`Reservation::take`] does (what was reserved stays
    /// until the reservation goes).
    pub fn grow(&mut self, bytes: u64) -> SnsResult<()> {
        if !self.sns.reserve(bytes) {
            return Err(SnsError::throttled(
                "Rate exceeded: the delivery backlog of this server is full; retry later.",
            ));
        }
        self.bytes += bytes;
        Ok(())
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.sns.release(self.bytes);
    }
}

/// Queues deliveries durably (one transaction) within a reservation, and wakes the deliverer.
pub async fn enqueue(
    state: &Arc<AppState>,
    deliveries: Vec<NewDelivery>,
    mut room: Reservation<'_>,
) -> SnsResult<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let st = state.clone();
    // From here the reservation is settled, and the deliverer woken, on the thread that commits:
    // what was queued stays counted (until it is delivered), the rest goes back, whether or not
    // the caller still waits (and if the commit fails or panics, all of it).
    let reserved = std::mem::take(&mut room.bytes);
    super::blocking(move || {
        let mut room = Reservation {
            sns: &st.sns,
            bytes: reserved,
        };
        let queued = st.store.enqueue_deliveries(&deliveries)?;
        room.bytes = reserved.saturating_sub(queued);
        st.sns.wake.notify_one();
        Ok(())
    })
    .await?;
    Ok(())
}

/// Counts what the outbox holds (leases of a previous process are released: due at once), then
/// starts the deliverer. Awaited before the server serves, so no publish races the count.
pub async fn start(state: Arc<AppState>) -> Result<(), lamina_store::StoreError> {
    let store = state.store.clone();
    let (_, bytes) = tokio::task::spawn_blocking(move || {
        store.release_delivery_leases()?;
        store.delivery_backlog()
    })
    .await
    .map_err(|e| lamina_store::StoreError::Corrupt(e.to_string()))??;
    state.sns.reserve(bytes);
    tokio::spawn(run(state));
    Ok(())
}

async fn run(state: Arc<AppState>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let (settled_tx, settled_rx) = mpsc::unbounded_channel();
    tokio::spawn(settle(state.clone(), settled_rx));
    loop {
        let free = slots.available_permits();
        let store = state.store.clone();
        let leased = if free == 0 {
            Ok(Vec::new())
        } else {
            tokio::task::spawn_blocking(move || store.lease_deliveries(now_millis(), free))
                .await
                .unwrap_or_else(|e| Err(lamina_store::StoreError::Corrupt(e.to_string())))
        };
        let leased = leased.unwrap_or_else(|e| {
            tracing::error!(error = %e, "leasing SNS deliveries failed");
            Vec::new()
        });
        let full = leased.len() == free && free > 0;
        for d in leased {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let state = state.clone();
            let tx = settled_tx.clone();
            tokio::spawn(async move {
                let s = attempt(&state, d).await;
                let _ = tx.send(s);
                drop(permit);
            });
        }
        if full {
            continue;
        }
        let store = state.store.clone();
        let next = tokio::task::spawn_blocking(move || store.next_delivery_due())
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        let wait = match next {
            Some(due) => Duration::from_millis((due - now_millis()).clamp(0, 60_000) as u64),
            None => Duration::from_secs(60),
        };
        if wait.is_zero() && slots.available_permits() == 0 {
            // Everything due is waiting for a slot: wait for one to free up.
            let _ = slots.acquire().await;
            continue;
        }
        tokio::select! {
            _ = state.sns.wake.notified() => {}
            _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
        }
    }
}

/// Writes settlements in batches.
async fn settle(state: Arc<AppState>, mut rx: mpsc::UnboundedReceiver<SettleDelivery>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(s) = rx.try_recv() {
            batch.push(s);
        }
        let retried = batch
            .iter()
            .any(|s| matches!(s, SettleDelivery::Retry { .. }));
        let store = state.store.clone();
        let gone = loop {
            let s = batch.clone();
            let st = store.clone();
            match tokio::task::spawn_blocking(move || st.settle_deliveries(&s)).await {
                Ok(Ok(gone)) => break gone,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "settling SNS deliveries failed; retrying")
                }
                Err(e) => tracing::error!(error = %e, "settling SNS deliveries failed; retrying"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        state.sns.release(gone);
        if retried {
            state.sns.wake.notify_one();
        }
    }
}

/// One attempt of one delivery, and what becomes of it.
async fn attempt(state: &Arc<AppState>, d: Delivery) -> SettleDelivery {
    let topic = d.subscription.topic.arn();
    let outcome = if d.subscription.protocol == "lambda" {
        to_function(state, &d).await
    } else {
        to_http(state, &d).await
    };
    let attempts = d.attempts + 1;
    match outcome {
        Ok(()) => {
            metrics::counter!("lamina_sns_deliveries_total", "topic" => topic).increment(1);
            SettleDelivery::Done(d.id)
        }
        Err(Attempt::Retry(why)) => {
            let policy = policy_of(&d);
            if attempts > policy.retries {
                give_up(
                    state,
                    &d,
                    &format!(
                        "{why}; the delivery policy's {} retries are exhausted",
                        policy.retries
                    ),
                )
                .await;
                SettleDelivery::Done(d.id)
            } else {
                metrics::counter!("lamina_sns_delivery_retries_total", "topic" => topic)
                    .increment(1);
                SettleDelivery::Retry {
                    id: d.id,
                    due_ms: now_millis() + policy.delay_s(attempts) as i64 * 1000,
                    attempts,
                }
            }
        }
        Err(Attempt::Refused(why)) => {
            give_up(state, &d, &why).await;
            SettleDelivery::Done(d.id)
        }
    }
}

fn policy_of(d: &Delivery) -> RetryPolicy {
    if d.subscription.protocol == "lambda" {
        return RetryPolicy::FUNCTION;
    }
    d.subscription
        .attributes
        .get("DeliveryPolicy")
        .and_then(|p| RetryPolicy::from_delivery_policy(p).ok())
        .unwrap_or(RetryPolicy::HTTP)
}

/// Why an attempt did not deliver.
enum Attempt {
    /// Worth another try.
    Retry(String),
    /// Never going to work.
    Refused(String),
}

/// Counts and logs a delivery that was given up; a function's log says it too.
pub async fn give_up(state: &Arc<AppState>, d: &Delivery, why: &str) {
    let topic = d.subscription.topic.arn();
    metrics::counter!("lamina_sns_deliveries_failed_total", "topic" => topic.clone()).increment(1);
    tracing::warn!(
        topic = %topic,
        subscription = %d.subscription.arn,
        message_id = %d.message_id,
        endpoint = %d.subscription.endpoint,
        "SNS delivery failed: {why}"
    );
    if d.subscription.protocol == "lambda" {
        let account = d.subscription.topic.account.as_str();
        function_log(
            state,
            account,
            &d.subscription.endpoint,
            &d.message_id,
            &topic,
            why,
        )
        .await;
    }
}

/// Writes a refused delivery into the function's log, if the function exists and belongs to
/// the topic's account (so no one can write into another tenant's logs).
pub async fn function_log(
    state: &Arc<AppState>,
    topic_account: &str,
    function_arn: &str,
    message_id: &str,
    topic: &str,
    why: &str,
) {
    let Ok((key, qualifier)) = from_service::function_of(function_arn) else {
        return;
    };
    if key.account.as_str() != topic_account {
        return;
    }
    let store = state.store.clone();
    let k = key.clone();
    let exists = tokio::task::spawn_blocking(move || store.get_function(&k))
        .await
        .is_ok_and(|r| r.is_ok_and(|f| f.is_some()));
    if exists {
        let version = match &qualifier {
            Some(lamina_model::Qualifier::Version(v)) => v.to_string(),
            _ => "$LATEST".into(),
        };
        state.executor.platform_log(
            key.account.as_str(),
            key.region.as_str(),
            key.name.as_str(),
            &version,
            format!("SNS delivery of message {message_id} from {topic} failed: {why}\n"),
        );
    }
}

async fn to_function(state: &Arc<AppState>, d: &Delivery) -> Result<(), Attempt> {
    let topic = d.subscription.topic.arn();
    let source = from_service::Source {
        service: "sns.amazonaws.com",
        arn: &topic,
        account: d.subscription.topic.account.as_str(),
    };
    match from_service::invoke_async(
        state,
        &d.subscription.endpoint,
        d.body.clone(),
        d.hops,
        source,
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(r @ (Refusal::Throttled(_) | Refusal::Internal(_))) => {
            Err(Attempt::Retry(r.message().to_owned()))
        }
        Err(r) => Err(Attempt::Refused(r.message().to_owned())),
    }
}

async fn to_http(state: &Arc<AppState>, d: &Delivery) -> Result<(), Attempt> {
    let sub = &d.subscription;
    let raw = d.kind == "Notification"
        && sub
            .attributes
            .get("RawMessageDelivery")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let content_type = sub
        .attributes
        .get("DeliveryPolicy")
        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .and_then(|p| {
            p["requestPolicy"]["headerContentType"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "text/plain; charset=UTF-8".into());
    if state.sns.settings.deny.denies_url(&sub.endpoint) {
        return Err(Attempt::Refused(
            "the endpoint is in a network SNS may not reach (sns_http_deny)".into(),
        ));
    }
    let mut req = state
        .sns
        .http
        .post(&sub.endpoint)
        .header("content-type", content_type)
        .header("x-amz-sns-message-type", d.kind.as_str())
        .header("x-amz-sns-message-id", d.message_id.as_str())
        .header("x-amz-sns-topic-arn", sub.topic.arn());
    if d.kind == "Notification" {
        req = req.header("x-amz-sns-subscription-arn", sub.arn.as_str());
    }
    if raw {
        req = req.header("x-amz-sns-rawdelivery", "true");
    }
    match req.body(d.body.clone()).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => Err(Attempt::Retry(
            format!("the endpoint answered {}", r.status()),
        )),
        Ok(r) => Err(Attempt::Refused(format!(
            "the endpoint answered {}",
            r.status()
        ))),
        Err(e) => Err(Attempt::Retry(format!(
            "the endpoint could not be reached: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_function_policy_spans_100015_attempts_over_about_23_days() {
        let p = RetryPolicy::FUNCTION;
        let delays: Vec<u32> = (1..=20).map(|n| p.delay_s(n)).collect();
        assert_eq!(&delays[..5], &[0, 0, 0, 1, 1]);
        assert_eq!(delays[5], 1);
        assert_eq!(delays[14], 20);
        assert!(delays[5..15].windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
        let total: u64 = (1..=p.retries).map(|n| p.delay_s(n) as u64).sum();
        let days = total as f64 / 86_400.0;
        assert!((23.0..23.3).contains(&days), "{days}");
    }

    #[test]
    fn the_http_default_is_three_retries_20_s_apart() {
        let p = RetryPolicy::HTTP;
        assert_eq!(
            (1..=3).map(|n| p.delay_s(n)).collect::<Vec<_>>(),
            [20, 20, 20]
        );
        assert_eq!(RetryPolicy::from_delivery_policy("{}").unwrap(), p);
    }

    #[test]
    fn delivery_policies_are_checked() {
        let p = RetryPolicy::from_delivery_policy(
            r#"{"healthyRetryPolicy":{"numRetries":5,"numNoDelayRetries":1,"minDelayTarget":1,"maxDelayTarget":8,"backoffFunction":"exponential"}}"#,
        )
        .unwrap();
        assert_eq!(
            (1..=5).map(|n| p.delay_s(n)).collect::<Vec<_>>(),
            [0, 1, 2, 4, 8]
        );
        for bad in [
            r#"{"healthyRetryPolicy":{"numRetries":101}}"#,
            r#"{"healthyRetryPolicy":{"numRetries":50,"minDelayTarget":100,"maxDelayTarget":100}}"#,
            r#"{"healthyRetryPolicy":{"backoffFunction":"cubic"}}"#,
            r#"{"healthyRetryPolicy":{"minDelayTarget":0}}"#,
            "not json",
        ] {
            assert!(RetryPolicy::from_delivery_policy(bad).is_err(), "{bad}");
        }
    }
}
