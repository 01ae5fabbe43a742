//! `GET /_lamina/metrics/history/{function}` and `GET /_lamina/metrics/history`: a function's
//! metric history as a chart-ready series, and an account-wide summary per function.
//! Authenticated like every API call; the caller's account and region only.
//!
//! A window is `period=1h|1d|14d` (ending with the current slot), or `start` and `end` (epoch
//! ms) with an optional `step` (seconds, a multiple of 60). A series has at most
//! [`MAX_POINTS`] points; a larger window gets a larger step. Every slot of the window has a
//! point (counts 0, percentiles `null` where nothing ran), so charts need not fill gaps.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, RawQuery, State};
use lamina_model::LambdaError;
use lamina_store::{MINUTE_MS, MetricSlot};
use serde_json::{Value, json};

use super::query::Query;
use super::{ApiResult, AppState, Caller, blocking, resolve};

/// The most points a series has.
pub const MAX_POINTS: i64 = 1_500;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// The latest time a window may name (about the year 3084), so no arithmetic overflows.
const MAX_MS: i64 = 1 << 45;
/// The longest step, seconds.
const MAX_STEP_S: i64 = 30 * 86_400;

/// A window of the history: `[start, end)` in slots of `step_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: i64,
    pub end: i64,
    pub step_ms: i64,
}

impl Window {
    /// The window a query asks for, `now` being the current time (epoch ms).
    pub fn parse(q: &Query, now: i64) -> Result<Self, LambdaError> {
        let number = |name: &str| -> Result<Option<i64>, LambdaError> {
            q.get(name)
                .map(|v| {
                    v.parse::<i64>().map_err(|_| {
                        LambdaError::invalid_parameter(format!("{name} '{v}' is not an integer"))
                    })
                })
                .transpose()
        };
        let asked_step = match number("step")? {
            Some(s) if s <= 0 => {
                return Err(LambdaError::invalid_parameter("step must be positive"));
            }
            Some(s) => Some(s.min(MAX_STEP_S) * 1000),
            None => None,
        };
        let (start, end, default_step) = match q.get("period") {
            Some(p) => {
                let (span, step) = match p {
                    "1h" => (HOUR_MS, MINUTE_MS),
                    "1d" => (DAY_MS, MINUTE_MS),
                    "14d" => (14 * DAY_MS, 15 * MINUTE_MS),
                    other => {
                        return Err(LambdaError::invalid_parameter(format!(
                            "period '{other}' is not one of 1h, 1d, 14d"
                        )));
                    }
                };
                let step = asked_step.unwrap_or(step);
                let end = ceil_to(now + 1, step.max(MINUTE_MS));
                (end - span, end, step)
            }
            None => {
                let end = number("end")?.unwrap_or(now).clamp(0, MAX_MS);
                let start = number("start")?.unwrap_or(end - HOUR_MS).clamp(0, MAX_MS);
                (start, end, asked_step.unwrap_or(MINUTE_MS))
            }
        };
        if end <= start {
            return Err(LambdaError::invalid_parameter(
                "end must be later than start",
            ));
        }
        // A whole number of minutes, and few enough points.
        let mut step_ms = ceil_to(default_step, MINUTE_MS);
        let fewest = ceil_to(ceil_to(end - start, MAX_POINTS) / MAX_POINTS, MINUTE_MS);
        step_ms = step_ms.max(fewest);
        Ok(Self {
            start: start.div_euclid(step_ms) * step_ms,
            end: ceil_to(end, step_ms),
            step_ms,
        })
    }

    /// Slots in the window.
    pub fn len(&self) -> usize {
        ((self.end - self.start) / self.step_ms) as usize
    }
}

/// `v` rounded up to a multiple of `m`.
fn ceil_to(v: i64, m: i64) -> i64 {
    v.div_euclid(m) * m + if v.rem_euclid(m) == 0 { 0 } else { m }
}

/// A duration quantile, ms to the microsecond, or `null`.
fn quantile(slot: &MetricSlot, q: f64) -> Value {
    match slot.durations.quantile(q) {
        Some(ms) => json!((ms * 1000.0).round() / 1000.0),
        None => Value::Null,
    }
}

fn gb_seconds(slot: &MetricSlot) -> Value {
    json!((slot.gb_seconds() * 1e6).round() / 1e6)
}

/// A slot's figures as the history's JSON gives them.
fn slot_json(s: &MetricSlot) -> Value {
    json!({
        "invocations": s.invocations,
        "errors": s.errors,
        "throttles": s.throttles,
        "cold_starts": s.cold_starts,
        "p50_ms": quantile(s, 0.5),
        "p99_ms": quantile(s, 0.99),
        "concurrency_max": s.concurrency_max,
        "gb_seconds": gb_seconds(s),
    })
}

/// One function's series.
pub async fn function(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let q = Query::parse(raw.as_deref());
    let (key, _) = resolve(&caller, &name, None, "GetMetricHistory")?;
    let w = Window::parse(&q, lamina_model::now_millis())?;
    let store = state.store.clone();
    let k = key.clone();
    let rows = blocking(move || Ok(store.metric_rows(&k, w.start, w.end)?)).await?;
    let mut slots = vec![MetricSlot::default(); w.len()];
    for r in &rows {
        let i = ((r.t_ms - w.start) / w.step_ms) as usize;
        if let Some(s) = slots.get_mut(i) {
            s.merge(&r.slot);
        }
    }
    let points: Vec<Value> = slots
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut p = slot_json(s);
            p["t"] = json!(w.start + i as i64 * w.step_ms);
            p
        })
        .collect();
    Ok(Json(json!({
        "function": key.name.as_str(),
        "start": w.start,
        "end": w.end,
        "step_s": w.step_ms / 1000,
        "points": points,
    })))
}

/// Totals per function of the caller's account and region over the window, with the
/// invocations in flight now (`concurrency_now`, which the flushed history cannot know).
pub async fn summary(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let mut q = Query::parse(raw.as_deref());
    if q.get("period").is_none() && q.get("start").is_none() {
        q = Query::parse(Some("period=1d"));
    }
    let w = Window::parse(&q, lamina_model::now_millis())?;
    let store = state.store.clone();
    let (account, region) = (caller.account.to_string(), caller.region.to_string());
    let totals =
        blocking(move || Ok(store.metric_totals(&account, &region, w.start, w.end)?)).await?;
    let now = state
        .minutes
        .in_flight(caller.account.as_str(), caller.region.as_str());
    let mut functions: Vec<Value> = totals
        .iter()
        .map(|(name, s)| {
            let mut f = slot_json(s);
            f["function"] = json!(name);
            f["concurrency_now"] =
                json!(now.iter().find(|(n, _)| n == name).map_or(0, |(_, c)| *c));
            f
        })
        .collect();
    // Functions busy now whose first minute is not flushed yet.
    for (name, c) in now
        .iter()
        .filter(|(n, _)| !totals.iter().any(|(t, _)| t == n))
    {
        let mut f = slot_json(&MetricSlot::default());
        f["function"] = json!(name);
        f["concurrency_now"] = json!(c);
        functions.push(f);
    }
    Ok(Json(json!({
        "start": w.start,
        "end": w.end,
        "functions": functions,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(q: &str, now: i64) -> Result<Window, LambdaError> {
        Window::parse(&Query::parse(Some(q)), now)
    }

    #[test]
    fn periods_pick_their_steps_and_stay_under_the_limit() {
        let now = 1_000 * DAY_MS + 12_345;
        let h = window("period=1h", now).unwrap();
        assert_eq!((h.step_ms, h.len()), (MINUTE_MS, 60));
        assert!(h.end > now && h.end - now <= MINUTE_MS);
        let d = window("period=1d", now).unwrap();
        assert_eq!((d.step_ms, d.len()), (MINUTE_MS, 1440));
        let f = window("period=14d", now).unwrap();
        assert_eq!((f.step_ms, f.len()), (15 * MINUTE_MS, 14 * 96));
        assert!(window("period=2y", now).is_err());
    }

    #[test]
    fn explicit_ranges_align_and_coarsen() {
        let w = window("start=90000&end=210000&step=60", 0).unwrap();
        assert_eq!((w.start, w.end, w.step_ms), (60_000, 240_000, 60_000));
        let w = window("start=0&end=8640000000&step=60", 0).unwrap();
        assert!(w.len() as i64 <= MAX_POINTS, "{}", w.len());
        assert_eq!(w.step_ms % MINUTE_MS, 0);
        let w = window("start=0&end=600000&step=90", 0).unwrap();
        assert_eq!(w.step_ms, 120_000);
        assert!(window("start=5&end=5", 0).is_err());
        assert!(window("start=x", 0).is_err());
        assert!(window("start=0&end=10&step=-1", 0).is_err());
        let w = window(
            "start=-9223372036854775808&end=9223372036854775807&step=9223372036854775807",
            0,
        )
        .unwrap();
        assert!(w.len() as i64 <= MAX_POINTS && w.start >= 0);
    }
}
