//! A Rust function built with the official `lambda_runtime` crate, used by the integration tests
//! (deployed as `provided.al2023`). `{"fail": true}` returns an error; anything else is echoed
//! with the request id and function name from the context, after `sleep_ms` if it has one.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, ctx) = event.into_parts();
    // `{"sleep_ms": N}` holds the invocation (`lamina bench --scale` keeps N environments busy).
    if let Some(ms) = payload.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(std::time::Duration::from_millis(ms.min(60_000))).await;
    }
    if payload.get("fail").and_then(Value::as_bool) == Some(true) {
        return Err(Box::new(Refused("asked to fail".into())));
    }
    Ok(json!({
        "echo": payload,
        "request_id": ctx.request_id,
        "function": ctx.env_config.function_name,
        "memory": ctx.env_config.memory,
        "deadline_in_future": ctx.deadline > 0,
    }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
