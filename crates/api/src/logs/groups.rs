//! Log groups and streams: `DescribeLogGroups`, `DescribeLogStreams`, `PutRetentionPolicy`,
//! `DeleteRetentionPolicy` and `DeleteLogGroup`.
//!
//! Pages resume after the last item returned (its name, or its time and name), so a token always
//! moves forward and the last page has none, as botocore's paginators require.

use lamina_store::{LogGroupRow, LogStreamRow};
use serde_json::{Value, json};

use super::{Ctx, LogsError, Result, token};
use crate::blocking;

/// The retention periods CloudWatch Logs accepts, in days.
pub const RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

pub(super) async fn describe_log_groups(ctx: &Ctx<'_>) -> Result<Value> {
    let prefix = ctx.str("logGroupNamePrefix")?.map(str::to_owned);
    let pattern = ctx.str("logGroupNamePattern")?.map(str::to_owned);
    if prefix.is_some() && pattern.is_some() {
        return Err(LogsError::invalid(
            "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.",
        ));
    }
    let limit = ctx.limit(50, 50)?;
    let wanted: Option<Vec<String>> = ctx.strings("logGroupIdentifiers")?.map(|ids| {
        ids.iter()
            .map(|i| {
                let name = i
                    .strip_prefix(&ctx.group_arn(""))
                    .map(|n| n.strip_suffix(":*").unwrap_or(n))
                    .unwrap_or(i);
                name.to_owned()
            })
            .collect()
    });
    let after = match ctx.str("nextToken")? {
        Some(t) => Some(
            token::decode('g', t)
                .and_then(|f| f.into_iter().next())
                .ok_or_else(LogsError::bad_token)?,
        ),
        None => None,
    };
    let store = ctx.state.store.clone();
    let c = ctx.caller.clone();
    let rows = blocking::<_, LogsError>(move || {
        Ok(store.log_groups(c.account.as_str(), c.region.as_str())?)
    })
    .await?;
    let names = ctx.groups().await?;
    let mut rows: Vec<(String, LogGroupRow)> = rows
        .into_iter()
        .map(|g| (names.name_of(&g.function), g))
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut chosen = rows.iter().filter(|(name, _)| {
        prefix.as_ref().is_none_or(|p| name.starts_with(p.as_str()))
            && pattern.as_ref().is_none_or(|p| name.contains(p.as_str()))
            && wanted.as_ref().is_none_or(|w| w.contains(name))
            && after.as_ref().is_none_or(|a| name > a)
    });
    let page: Vec<&(String, LogGroupRow)> = chosen.by_ref().take(limit).collect();
    let more = chosen.next().is_some();
    let groups: Vec<Value> = page
        .iter()
        .map(|(name, g)| group_json(ctx, name, g, pattern.is_some()))
        .collect();
    let mut out = json!({ "logGroups": groups });
    if more && let Some((last, _)) = page.last() {
        out["nextToken"] = json!(token::encode('g', &[last]));
    }
    Ok(out)
}

fn group_json(ctx: &Ctx<'_>, name: &str, g: &LogGroupRow, brief: bool) -> Value {
    let arn = ctx.group_arn(name);
    // With a name pattern, CloudWatch Logs answers only these three members.
    if brief {
        return json!({
            "logGroupName": name,
            "creationTime": g.created_ms,
            "arn": format!("{arn}:*"),
        });
    }
    let mut v = json!({
        "logGroupName": name,
        "creationTime": g.created_ms,
        "metricFilterCount": 0,
        "arn": format!("{arn}:*"),
        "logGroupArn": arn,
        "storedBytes": g.stored_bytes,
        "logGroupClass": "STANDARD",
        "deletionProtectionEnabled": false,
    });
    if let Some(d) = g.retention_days {
        v["retentionInDays"] = json!(d);
    }
    v
}

/// How `DescribeLogStreams` orders streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Name,
    LastEventTime,
}

pub(super) async fn describe_log_streams(ctx: &Ctx<'_>) -> Result<Value> {
    let order = match ctx.str("orderBy")? {
        None | Some("LogStreamName") => Order::Name,
        Some("LastEventTime") => Order::LastEventTime,
        Some(other) => {
            return Err(LogsError::invalid(format!(
                "1 validation error detected: Value '{other}' at 'orderBy' failed to satisfy constraint: Member must satisfy enum value set: [LogStreamName, LastEventTime]"
            )));
        }
    };
    let prefix = ctx.str("logStreamNamePrefix")?.map(str::to_owned);
    if prefix.is_some() && order == Order::LastEventTime {
        return Err(LogsError::invalid(
            "Cannot order by LastEventTime with a logStreamNamePrefix.",
        ));
    }
    let descending = ctx.bool("descending")?.unwrap_or(false);
    let limit = ctx.limit(50, 50)?;
    let after: Option<(i64, String)> = match ctx.str("nextToken")? {
        Some(t) => {
            let f = token::decode('s', t).ok_or_else(LogsError::bad_token)?;
            match f.as_slice() {
                [ts, name] => Some((
                    ts.parse().map_err(|_| LogsError::bad_token())?,
                    name.clone(),
                )),
                _ => return Err(LogsError::bad_token()),
            }
        }
        None => None,
    };
    let (group, key, _) = ctx.group().await?;
    let store = ctx.state.store.clone();
    let mut streams = blocking::<_, LogsError>(move || Ok(store.log_streams(&key)?)).await?;
    let sort_key = |s: &LogStreamRow| match order {
        Order::Name => (0, s.name.clone()),
        Order::LastEventTime => (s.last_ms, s.name.clone()),
    };
    streams.sort_by_key(sort_key);
    if descending {
        streams.reverse();
    }
    let mut chosen = streams.iter().filter(|s| {
        prefix
            .as_ref()
            .is_none_or(|p| s.name.starts_with(p.as_str()))
            && after.as_ref().is_none_or(|a| {
                let k = sort_key(s);
                if descending { k < *a } else { k > *a }
            })
    });
    let page: Vec<&LogStreamRow> = chosen.by_ref().take(limit).collect();
    let more = chosen.next().is_some();
    let group = ctx.group_arn(&group);
    let list: Vec<Value> = page
        .iter()
        .map(|s| {
            json!({
                "logStreamName": s.name,
                "creationTime": s.first_ms,
                "firstEventTimestamp": s.first_ms,
                "lastEventTimestamp": s.last_ms,
                "lastIngestionTime": s.last_ms,
                "arn": format!("{group}:log-stream:{}", s.name),
                "storedBytes": 0,
            })
        })
        .collect();
    let mut out = json!({ "logStreams": list });
    if more && let Some(last) = page.last() {
        let (ts, name) = sort_key(last);
        out["nextToken"] = json!(token::encode('s', &[&ts.to_string(), &name]));
    }
    Ok(out)
}

pub(super) async fn put_retention_policy(ctx: &Ctx<'_>) -> Result<Value> {
    let days = match ctx.int("retentionInDays")? {
        None => {
            return Err(LogsError::invalid(
                "1 validation error detected: Value null at 'retentionInDays' failed to satisfy constraint: Member must not be null",
            ));
        }
        Some(d) => RETENTION_DAYS
            .iter()
            .copied()
            .find(|v| i64::from(*v) == d)
            .ok_or_else(|| {
                let set: Vec<String> = RETENTION_DAYS.iter().map(u32::to_string).collect();
                LogsError::invalid(format!(
                    "1 validation error detected: Value '{d}' at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                    set.join(", ")
                ))
            })?,
    };
    let (_, key, _) = ctx.group().await?;
    let store = ctx.state.store.clone();
    blocking::<_, LogsError>(move || Ok(store.set_log_retention(&key, Some(days))?)).await?;
    Ok(json!({}))
}

pub(super) async fn delete_retention_policy(ctx: &Ctx<'_>) -> Result<Value> {
    let (_, key, _) = ctx.group().await?;
    let store = ctx.state.store.clone();
    blocking::<_, LogsError>(move || Ok(store.set_log_retention(&key, None)?)).await?;
    Ok(json!({}))
}

pub(super) async fn delete_log_group(ctx: &Ctx<'_>) -> Result<Value> {
    let (_, key, _) = ctx.group().await?;
    let store = ctx.state.store.clone();
    blocking::<_, LogsError>(move || Ok(store.delete_log_group(&key)?)).await?;
    Ok(json!({}))
}
