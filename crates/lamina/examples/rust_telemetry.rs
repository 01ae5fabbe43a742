//! An external extension that subscribes to the Telemetry API (or, with `TELEMETRY_API=logs`,
//! the Logs API) with the official `lambda-extension` crate, used by the integration tests
//! (deployed in a layer as `extensions/<name>`). It asks for the platform's records, the
//! function's lines and the extensions', batched after 25 ms, and appends each record it is sent to
//! `/tmp/telemetry` in the function's `/tmp`, which it shares: as JSON for the Telemetry API,
//! as the crate's own rendering for the Logs API, whose records it cannot write back as JSON.
//! The crate refuses a whole batch (`400`) if any record in it does not parse as its types, so
//! what arrives here is what that client reads.
//!
//! It writes one line to its output as it starts, `telemetry-probe started`, and nothing after:
//! each line it wrote would come back to it as a record.

use std::io::Write as _;

use lambda_extension::{
    Error, Extension, LambdaLog, LambdaTelemetry, LogBuffering, SharedService, service_fn,
};

fn append(lines: impl Iterator<Item = String>) -> Result<(), Error> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("/tmp/telemetry")?;
    for line in lines {
        writeln!(f, "{line}")?;
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let buffering = LogBuffering {
        timeout_ms: 25,
        max_bytes: 262_144,
        max_items: 1_000,
    };
    println!("telemetry-probe started");
    let types = &["platform", "function", "extension"];
    if std::env::var("TELEMETRY_API").as_deref() == Ok("logs") {
        let logs = service_fn(|batch: Vec<LambdaLog>| async move {
            append(batch.iter().map(|r| format!("{:?}", r.record)))
        });
        Extension::new()
            .with_logs_processor(SharedService::new(logs))
            .with_log_types(types)
            .with_log_buffering(buffering)
            .run()
            .await
    } else {
        let telemetry = service_fn(|batch: Vec<LambdaTelemetry>| async move {
            append(batch.iter().filter_map(|r| serde_json::to_string(r).ok()))
        });
        Extension::new()
            .with_telemetry_processor(SharedService::new(telemetry))
            .with_telemetry_types(types)
            .with_telemetry_buffering(buffering)
            .run()
            .await
    }
}
