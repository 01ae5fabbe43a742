//! The metric history's writer: every flush interval, the counts the invoke path gathered in
//! [`Minutes`] go into the store in one transaction; every [`SWEEP_EVERY`], minutes older than a
//! day are merged into 15-minute slots and slots older than 15 days deleted, in batches. Both
//! run off the invoke path. A failed write puts its counts back for the next flush. What a
//! kill -9 loses is what was counted since the last flush; [`flush`] at shutdown loses nothing.

use std::sync::Arc;
use std::time::Duration;

use lamina_api::lambda::Minutes;
use lamina_store::Store;

/// How often the history is downsampled and expired.
pub const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Starts the flusher and the sweeper; they stop with the runtime.
pub fn start(store: Arc<Store>, minutes: Arc<Minutes>, every: Duration) {
    {
        let (store, minutes) = (store.clone(), minutes.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                flush(&store, &minutes).await;
            }
        });
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let store = store.clone();
            let now = lamina_model::now_millis();
            match tokio::task::spawn_blocking(move || store.downsample_metrics(now)).await {
                Ok(Ok(r)) if r.merged + r.expired > 0 => {
                    tracing::debug!(
                        merged = r.merged,
                        expired = r.expired,
                        "metric history swept"
                    );
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "sweeping the metric history failed"),
                Err(e) => tracing::warn!(error = %e, "the metric history sweep panicked"),
            }
        }
    });
}

/// Writes everything counted so far; on failure the counts go back for the next flush.
pub async fn flush(store: &Arc<Store>, minutes: &Arc<Minutes>) {
    let rows = minutes.drain();
    if rows.is_empty() {
        return;
    }
    let store = store.clone();
    let result = tokio::task::spawn_blocking(move || {
        let r = store.add_metrics(&rows);
        (rows, r)
    })
    .await;
    match result {
        Ok((_, Ok(()))) => {}
        Ok((rows, Err(e))) => {
            tracing::warn!(error = %e, "writing the metric history failed; retrying at the next flush");
            minutes.restore(rows);
        }
        Err(e) => tracing::warn!(error = %e, "the metric history flush panicked"),
    }
}
