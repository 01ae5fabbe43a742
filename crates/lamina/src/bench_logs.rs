//! The logging part of `lamina bench`:
//! - what logging costs an invocation: warm invokes of a Python function that prints 100 lines
//!   next to the same function printing none, interleaved, on a server whose log budget does not
//!   drop lines (so every line is pumped, budgeted and stored); and, as the baseline of the same
//!   run, the two handlers called in a plain `python3` whose line-buffered stdout is a pipe, so
//!   that what printing costs the function itself can be told from what Lamina adds;
//! - how FilterLogEvents answers over a large group: the store is filled with `lines` lines
//!   (one in 10,000 an `ERROR`) over a day and 10 streams before the server opens it, then a
//!   filter over the last 5 minutes, the first page of a filter over everything, and a whole
//!   scan following `nextToken` to its end.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::bench::{Target, bar, stats, zip_of};

const QUIET: &[u8] = b"def handler(event, context):\n    return 1\n";
const CHATTY: &[u8] = b"def handler(event, context):\n    for i in range(100):\n        print('line', i, 'of a chatty function, with some words to make it typical')\n    return 1\n";

pub async fn run(
    http: &reqwest::Client,
    python: Option<&str>,
    warm: usize,
    lines: usize,
    json_out: bool,
) -> anyhow::Result<Value> {
    let data = tempfile::tempdir()?;
    fill(data.path(), lines, json_out)?;
    let raw: lamina_server::FileConfig = toml::from_str(
        "memory_budget_mb = 100000000\nlog_rate_bytes_per_s = 1000000000\nlog_burst_bytes = 1000000000\nlog_max_mb_per_function = 100000",
    )?;
    let (addr, stop, server) = crate::bench::serve(raw, data.path(), Some(false)).await?;
    let target = Target {
        http: http.clone(),
        base: format!("http://{addr}"),
    };
    let measured = async {
        let overhead = match python {
            Some(python) => Some(overhead(&target, python, warm, json_out).await?),
            None => None,
        };
        anyhow::Ok((overhead, filter(&target, json_out).await?))
    }
    .await;
    // Stopped whatever happened, so that its sandboxes and cgroups go with it.
    let _ = stop.send(());
    let _ = server.await;
    let (overhead, filter) = measured?;
    Ok(json!({ "print_100_lines": overhead, "filter": filter, "stored_lines": lines }))
}

/// Warm p50 with 100 printed lines per invocation against none, interleaved.
async fn overhead(t: &Target, python: &str, n: usize, json_out: bool) -> anyhow::Result<Value> {
    for (name, code) in [("quiet", QUIET), ("chatty", CHATTY)] {
        // 1769 MB: one whole vCPU, so the CPU quota does not blur the comparison.
        let zip = zip_of(&[("app.py", code, 0o644)])?;
        t.create(name, python, "app.handler", 1769, &zip).await?;
        for _ in 0..20 {
            t.invoke(name).await?;
        }
    }
    let b = bar(2 * n, "warm invokes printing 100 lines and none", json_out);
    let (mut quiet, mut chatty) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        quiet.push(t.invoke("quiet").await?);
        chatty.push(t.invoke("chatty").await?);
        b.inc(2);
    }
    b.finish_and_clear();
    let (quiet, chatty) = (stats(quiet), stats(chatty));
    let native = native_print(python, n)?;
    let printing = native["chatty_p50_ms"].as_f64().unwrap_or(0.0)
        - native["quiet_p50_ms"].as_f64().unwrap_or(0.0);
    // What Lamina adds beyond the function's own printing, against the quiet invoke.
    let platform = chatty.p50_ms - quiet.p50_ms - printing;
    Ok(json!({
        "none": quiet,
        "hundred_lines": chatty,
        "p50_ratio": chatty.p50_ms / quiet.p50_ms,
        "native": native,
        "platform_ms": platform,
        "platform_ratio": 1.0 + platform / quiet.p50_ms,
    }))
}

/// The handlers' own p50s outside Lamina: the host's interpreter, stdout line-buffered (as the
/// runtime client sets it) into a pipe this process drains.
fn native_print(python: &str, n: usize) -> anyhow::Result<Value> {
    use std::io::Read;
    let script = format!(
        "import json, sys, time\nsys.stdout.reconfigure(line_buffering=True)\nq, c = {{}}, {{}}\nexec({quiet:?}, q)\nexec({chatty:?}, c)\nqs, cs = [], []\nfor _ in range({n}):\n    t = time.perf_counter(); q['handler']({{}}, None); qs.append(time.perf_counter() - t)\n    t = time.perf_counter(); c['handler']({{}}, None); cs.append(time.perf_counter() - t)\nqs.sort(); cs.sort()\nsys.stderr.write(json.dumps({{'quiet_p50_ms': qs[len(qs) // 2] * 1e3, 'chatty_p50_ms': cs[len(cs) // 2] * 1e3}}))\n",
        quiet = String::from_utf8_lossy(QUIET),
        chatty = String::from_utf8_lossy(CHATTY),
    );
    let interpreter = ["/usr/bin", "/usr/local/bin"]
        .iter()
        .map(|d| std::path::Path::new(d).join(python))
        .find(|p| p.exists())
        .with_context(|| format!("{python} is not in /usr/bin or /usr/local/bin"))?;
    let mut child = std::process::Command::new(interpreter)
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut stdout = child.stdout.take().context("a pipe")?;
    let drain = std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let mut err = String::new();
    child
        .stderr
        .take()
        .context("a pipe")?
        .read_to_string(&mut err)?;
    let status = child.wait()?;
    let _ = drain.join();
    if !status.success() {
        bail!("the native printing baseline failed: {err}");
    }
    Ok(serde_json::from_str(&err)?)
}

/// Writes `lines` lines of the function `bench-logs` straight into a store at `dir`.
fn fill(dir: &std::path::Path, lines: usize, json_out: bool) -> anyhow::Result<()> {
    let store = lamina_store::Store::open(dir).context("cannot open the benchmark's store")?;
    let now = lamina_model::now_millis();
    let day = 86_400_000i64;
    let b = bar(lines, "storing log lines", json_out);
    let mut batch = Vec::with_capacity(10_000);
    let streams: Vec<_> = (0..10)
        .map(|i| {
            std::sync::Arc::new(lamina_model::LogStreamKey {
                account: "000000000000".into(),
                region: "us-east-1".into(),
                function: "bench-logs".into(),
                stream: format!("2026/01/01/[$LATEST]{i:032x}"),
            })
        })
        .collect();
    for i in 0..lines {
        let message = if i % 10_000 == 5_000 {
            format!("ERROR request {i} failed: upstream timed out")
        } else {
            format!("INFO request {i} served in {} ms", i % 97)
        };
        batch.push(lamina_store::NewLogEvent {
            stream: streams[i % 10].clone(),
            ts_ms: now - day + (i as i64 * day) / lines.max(1) as i64,
            message,
        });
        if batch.len() == 10_000 || i + 1 == lines {
            store.append_logs(&batch, 1 << 40)?;
            b.inc(batch.len() as u64);
            batch.clear();
        }
    }
    b.finish_and_clear();
    Ok(())
}

async fn call(t: &Target, body: &Value) -> anyhow::Result<(f64, Value)> {
    let started = Instant::now();
    let r = t
        .http
        .post(format!("{}/", t.base))
        .header("x-amz-target", "Logs_20140328.FilterLogEvents")
        .header("content-type", "application/x-amz-json-1.1")
        .body(body.to_string())
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await?;
    if !status.is_success() {
        bail!("FilterLogEvents failed: {v}");
    }
    Ok((started.elapsed().as_secs_f64() * 1000.0, v))
}

/// FilterLogEvents latencies: 20 calls each, and one whole scan.
async fn filter(t: &Target, json_out: bool) -> anyhow::Result<Value> {
    let group = "/aws/lambda/bench-logs";
    let recent = json!({ "logGroupName": group, "filterPattern": "ERROR",
        "startTime": lamina_model::now_millis() - 300_000 });
    let everything = json!({ "logGroupName": group, "filterPattern": "ERROR" });
    let b = bar(40, "FilterLogEvents", json_out);
    let (mut windowed, mut first) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        windowed.push(call(t, &recent).await?.0);
        first.push(call(t, &everything).await?.0);
        b.inc(2);
    }
    b.finish_and_clear();
    let started = Instant::now();
    let (mut body, mut calls, mut found) = (everything.clone(), 0, 0);
    loop {
        let (_, page) = call(t, &body).await?;
        calls += 1;
        found += page["events"].as_array().map_or(0, Vec::len);
        match page["nextToken"].as_str() {
            Some(token) => body["nextToken"] = json!(token),
            None => break,
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("a FilterLogEvents scan took over 5 minutes");
        }
    }
    Ok(json!({
        "last_5_minutes": stats(windowed),
        "first_page_of_all": stats(first),
        "whole_scan_ms": started.elapsed().as_secs_f64() * 1000.0,
        "whole_scan_calls": calls,
        "whole_scan_found": found,
    }))
}

/// The table lines.
pub fn print(l: &Value) {
    let ms = |v: &Value| v.as_f64().unwrap_or(0.0);
    let o = &l["print_100_lines"];
    if o.is_null() {
        println!("logging: no python3.X on this host, the printing comparison is skipped");
    } else {
        println!(
            "logging: warm p50 (p99) ms printing 100 lines {:.3} ({:.3}), none {:.3} ({:.3}): {:.2}x; {} each, interleaved",
            ms(&o["hundred_lines"]["p50_ms"]),
            ms(&o["hundred_lines"]["p99_ms"]),
            ms(&o["none"]["p50_ms"]),
            ms(&o["none"]["p99_ms"]),
            ms(&o["p50_ratio"]),
            o["none"]["n"],
        );
        println!(
            "logging: the same 100 prints in a plain python3 cost {:.3} ms at p50 (handler alone {:.3}, quiet {:.3}); Lamina adds {:.3} ms beyond them: {:.2}x the quiet invoke",
            ms(&o["native"]["chatty_p50_ms"]) - ms(&o["native"]["quiet_p50_ms"]),
            ms(&o["native"]["chatty_p50_ms"]),
            ms(&o["native"]["quiet_p50_ms"]),
            ms(&o["platform_ms"]),
            ms(&o["platform_ratio"]),
        );
    }
    let f = &l["filter"];
    println!(
        "logging: FilterLogEvents over {} lines, p50 (p99) ms: last 5 minutes {:.3} ({:.3}), first page of all {:.3} ({:.3}); whole scan {:.0} ms in {} calls, {} found",
        l["stored_lines"],
        ms(&f["last_5_minutes"]["p50_ms"]),
        ms(&f["last_5_minutes"]["p99_ms"]),
        ms(&f["first_page_of_all"]["p50_ms"]),
        ms(&f["first_page_of_all"]["p99_ms"]),
        ms(&f["whole_scan_ms"]),
        f["whole_scan_calls"],
        f["whole_scan_found"],
    );
}
