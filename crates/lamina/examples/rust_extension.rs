//! An external extension built with the official `lambda-extension` crate, used by the
//! integration tests (deployed in a layer as `extensions/<name>`). It registers under its file's
//! name for `INVOKE` and `SHUTDOWN`, and leaves what it saw in the function's `/tmp`, which it
//! shares:
//! - `/tmp/extension-registered`: what its registration answered, and what it found in its
//!   environment;
//! - `/tmp/extension-invokes`: each invocation's request id, appended after `EXTENSION_WORK_MS`
//!   milliseconds of work, before it asks for its next event.
//!
//! It prints `EXTENSION INVOKE <id>` and `EXTENSION SHUTDOWN <reason>` to the function's log, and
//! exits after `SHUTDOWN`; with `EXTENSION_CRASH_ON_INVOKE` set, it exits (status 1) as soon as it
//! is given an invocation, as a crashing extension does.

use std::io::Write as _;

use lambda_extension::{Error, Extension, LambdaEvent, NextEvent, service_fn};

async fn on_event(work_ms: u64, event: LambdaEvent) -> Result<(), Error> {
    match event.next {
        NextEvent::Invoke(_) if std::env::var_os("EXTENSION_CRASH_ON_INVOKE").is_some() => {
            std::process::exit(1);
        }
        NextEvent::Invoke(e) => {
            tokio::time::sleep(std::time::Duration::from_millis(work_ms)).await;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open("/tmp/extension-invokes")?;
            writeln!(f, "{}", e.request_id)?;
            println!("EXTENSION INVOKE {}", e.request_id);
        }
        NextEvent::Shutdown(e) => {
            println!("EXTENSION SHUTDOWN {}", e.shutdown_reason);
            std::process::exit(0);
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let work_ms = std::env::var("EXTENSION_WORK_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let registered = Extension::new()
        .with_events_processor(service_fn(move |e| on_event(work_ms, e)))
        .register()
        .await?;
    let seen = serde_json::json!({
        "function": registered.function_name,
        "version": registered.function_version,
        "handler": registered.handler,
        "account": registered.account_id,
        "has_handler_variable": std::env::var_os("_HANDLER").is_some(),
        "has_task_root_variable": std::env::var_os("LAMBDA_TASK_ROOT").is_some(),
        "function_name_variable": std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok(),
        "work_ms_variable": std::env::var("EXTENSION_WORK_MS").ok(),
        "uid": std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self")?),
    });
    std::fs::write("/tmp/extension-registered", seen.to_string())?;
    registered.run().await
}
