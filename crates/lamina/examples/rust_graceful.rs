//! A Rust function built with the official `lambda_runtime` crate that asks for a graceful
//! shutdown (its `graceful-shutdown` feature: an internal extension registered for no event, and
//! a handler for `SIGTERM`), used by the integration tests. It echoes its event, and prints
//! `GRACEFUL SHUTDOWN HOOK` when its environment ends.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::spawn_graceful_shutdown_handler(|| async {
        println!("GRACEFUL SHUTDOWN HOOK");
    })
    .await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
