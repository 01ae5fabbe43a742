//! `GET /_lamina/bill?month=YYYY-MM&function=F&format=json|csv`: the caller's account bill for a
//! month, per function (at list price) and in total (free tier once per account, tiers in order).

use std::sync::Arc;

use axum::extract::{Extension, RawQuery, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use lamina_billing::{MB_MS_PER_GB_S, PriceSheet, Usage, bill};
use lamina_model::LambdaError;
use lamina_store::FunctionUsage;
use serde_json::json;

use super::query::Query;
use super::{ApiResult, AppState, Caller, blocking};

/// `[start, end)` of a `YYYY-MM` month in epoch milliseconds (UTC).
pub fn month_range(month: &str) -> Result<(i64, i64), LambdaError> {
    let bad = || LambdaError::invalid_parameter(format!("month '{month}' is not YYYY-MM"));
    let (y, m) = month.split_once('-').ok_or_else(bad)?;
    let (y, m): (i32, u8) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    let start = time::Date::from_calendar_date(y, time::Month::try_from(m).map_err(|_| bad())?, 1)
        .map_err(|_| bad())?;
    let next = if m == 12 {
        time::Date::from_calendar_date(y + 1, time::Month::January, 1)
    } else {
        time::Date::from_calendar_date(y, time::Month::try_from(m + 1).map_err(|_| bad())?, 1)
    }
    .map_err(|_| bad())?;
    let ms = |d: time::Date| d.midnight().assume_utc().unix_timestamp() * 1000;
    Ok((ms(start), ms(next)))
}

/// The current UTC month, `YYYY-MM`.
pub fn this_month() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:04}-{:02}", now.year(), now.month() as u8)
}

fn usage_of(sheet: &PriceSheet, rows: &[&FunctionUsage]) -> Usage {
    let mut u = Usage::default();
    for r in rows {
        let mb_ms = if sheet.bill_init {
            r.mb_ms
        } else {
            r.mb_ms_without_init
        };
        u.requests += r.requests;
        if r.architecture == "arm64" {
            u.arm_mb_ms += mb_ms;
        } else {
            u.x86_mb_ms += mb_ms;
        }
        u.storage_mb_ms += r.storage_mb_ms;
        u.streamed_bytes += r.streamed_bytes;
    }
    u
}

fn gb_s(mb_ms: u128) -> String {
    format!(
        "{}.{:03}",
        mb_ms / MB_MS_PER_GB_S,
        (mb_ms % MB_MS_PER_GB_S) * 1000 / MB_MS_PER_GB_S
    )
}

/// The handler.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let q = Query::parse(raw.as_deref());
    let month = q.get("month").map(str::to_owned).unwrap_or_else(this_month);
    let (from, to) = month_range(&month)?;
    let function = q.get("function").map(str::to_owned);
    let store = state.store.clone();
    let account = caller.account.to_string();
    let f = function.clone();
    let rows = blocking(move || Ok(store.usage(&account, from, to, f.as_deref())?)).await?;
    let sheet = &state.prices;
    let list_price = PriceSheet {
        free_requests: 0,
        free_gb_seconds: 0,
        free_streamed_gb: 0,
        ..sheet.clone()
    };
    let functions: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let u = usage_of(sheet, &[r]);
            json!({
                "function": r.function,
                "architecture": r.architecture,
                "requests": r.requests,
                "gb_seconds": gb_s(u.x86_mb_ms + u.arm_mb_ms),
                "streamed_bytes": u.streamed_bytes as u64,
                "cost": bill(&list_price, &u).total,
            })
        })
        .collect();
    let all: Vec<&FunctionUsage> = rows.iter().collect();
    let total_usage = usage_of(sheet, &all);
    // The free tier belongs to the account: it applies to the whole month, not to a filtered view.
    let account_bill = bill(
        if function.is_some() {
            &list_price
        } else {
            sheet
        },
        &total_usage,
    );
    if q.get("format") == Some("csv") {
        let mut csv = String::from("function,architecture,requests,gb_seconds,cost\n");
        for f in &functions {
            csv.push_str(&format!(
                "{},{},{},{},{}\n",
                f["function"].as_str().unwrap_or_default(),
                f["architecture"].as_str().unwrap_or_default(),
                f["requests"],
                f["gb_seconds"].as_str().unwrap_or_default(),
                f["cost"].as_str().unwrap_or_default()
            ));
        }
        for l in &account_bill.lines {
            csv.push_str(&format!("\"{}\",,,,{}\n", l.item, l.amount));
        }
        csv.push_str(&format!(
            "TOTAL,,{},{},{}\n",
            total_usage.requests,
            gb_s(total_usage.x86_mb_ms + total_usage.arm_mb_ms),
            account_bill.total
        ));
        let mut resp = csv.into_response();
        resp.headers_mut()
            .insert("content-type", HeaderValue::from_static("text/csv"));
        return Ok(resp);
    }
    Ok(axum::Json(json!({
        "month": month,
        "account": caller.account.to_string(),
        "currency": account_bill.currency,
        "functions": functions,
        "requests": total_usage.requests,
        "gb_seconds": gb_s(total_usage.x86_mb_ms + total_usage.arm_mb_ms),
        "streamed_bytes": total_usage.streamed_bytes as u64,
        "lines": account_bill.lines,
        "total": account_bill.total,
        "free_tier_applied": function.is_none(),
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months() {
        assert_eq!(
            month_range("2026-11").unwrap(),
            (1_793_491_200_000, 1_796_083_200_000)
        );
        assert_eq!(month_range("2026-12").unwrap().1, 1_798_761_600_000);
        assert!(month_range("2026-13").is_err() && month_range("nope").is_err());
    }
}
