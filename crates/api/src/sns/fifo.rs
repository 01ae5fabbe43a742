//! FIFO topics' state: sequence numbers and recent deduplication ids, per topic, in memory (a
//! restart forgets the ids; sequence numbers start from the clock, so they still grow).

use std::collections::HashMap;

use lamina_model::now_millis;

use super::publish::Published;

/// How long a FIFO topic remembers deduplication ids.
const DEDUP_WINDOW_MS: i64 = 5 * 60_000;

/// Deduplication ids a FIFO topic remembers at most (the oldest go first).
const MAX_DEDUP_IDS: usize = 100_000;

/// How often a publish to a FIFO topic also expires every other topic's deduplication ids.
const FIFO_SWEEP_MS: i64 = 60_000;

/// The FIFO topics' state, per topic ARN.
#[derive(Debug, Default)]
pub struct FifoTopics {
    topics: HashMap<String, Fifo>,
    /// When every topic's expired ids last went.
    swept_ms: i64,
}

/// Per-topic FIFO state: sequence numbers and recent deduplication ids.
#[derive(Debug, Default)]
struct Fifo {
    last_sequence: u128,
    /// Deduplication id → (message id, sequence number).
    seen: HashMap<String, (String, String)>,
    /// Deduplication ids by expiry, oldest first.
    order: std::collections::VecDeque<(i64, String)>,
}

impl Fifo {
    fn expire(&mut self, now: i64) {
        while let Some((expires, _)) = self.order.front()
            && (*expires <= now || self.order.len() > MAX_DEDUP_IDS)
        {
            if let Some((_, id)) = self.order.pop_front() {
                self.seen.remove(&id);
            }
        }
    }
}

impl super::SnsState {
    /// The earlier publish of a FIFO message with this deduplication id, within the window.
    pub(super) fn fifo_seen(&self, topic_arn: &str, dedup: &str) -> Option<Published> {
        let mut fifos = self.fifo.lock().unwrap_or_else(|e| e.into_inner());
        let f = fifos.topics.get_mut(topic_arn)?;
        f.expire(now_millis());
        f.seen.get(dedup).map(|(id, seq)| Published {
            message_id: id.clone(),
            sequence_number: Some(seq.clone()),
        })
    }

    /// Remembers a published FIFO message; returns its sequence number (they grow across
    /// restarts: they start from the clock).
    pub(super) fn fifo_record(&self, topic_arn: &str, dedup: String, message_id: &str) -> String {
        let now = now_millis();
        let mut fifos = self.fifo.lock().unwrap_or_else(|e| e.into_inner());
        let f = fifos.topics.entry(topic_arn.to_owned()).or_default();
        f.last_sequence = f.last_sequence.max(now as u128 * 1_000_000) + 1;
        let seq = format!("{:020}", f.last_sequence % 10u128.pow(20));
        f.order.push_back((now + DEDUP_WINDOW_MS, dedup.clone()));
        f.seen.insert(dedup, (message_id.to_owned(), seq.clone()));
        f.expire(now);
        // A topic no longer published to keeps its ids only until the next sweep past their
        // window, and its entry goes with the last (sequence numbers start from the clock): what
        // is remembered is bounded by the publishes of the window, not by the topics ever used.
        if now - fifos.swept_ms >= FIFO_SWEEP_MS {
            fifos.swept_ms = now;
            fifos.topics.retain(|_, f| {
                f.expire(now);
                !f.seen.is_empty()
            });
        }
        seq
    }

    /// Forgets the FIFO state of a deleted topic.
    pub(crate) fn fifo_forget(&self, topic_arn: &str) {
        self.fifo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .topics
            .remove(topic_arn);
    }
}
