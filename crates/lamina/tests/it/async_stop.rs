//! A graceful stop (SIGTERM) with an asynchronous attempt running: the attempt finishes within
//! the grace period and its outcome is kept, so it does not run again after the restart; one
//! the grace period cuts short is not counted against the event's retries, and runs again; an
//! attempt that ended and is still publishing its event to a dead-letter topic is waited for.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;

use crate::async_invoke::{bill_requests, queued};
use crate::helpers::*;
use crate::sns::cli;

/// The function `slow` with `handler` (`nap` sleeps for the event's `s` seconds, under 10), with
/// no retries: an attempt counted as failed ends its event.
async fn deploy(c: &Client, handler: &str) {
    crate::async_invoke::deploy(c, "slow", handler).await;
    c.put_function_event_invoke_config()
        .function_name("slow")
        .maximum_retry_attempts(0)
        .send()
        .await
        .unwrap();
}

/// Queues an event that sleeps `s` seconds; returns its request id once its attempt is running.
async fn running_event(c: &Client, endpoint: &str, s: u32) -> String {
    let out = c
        .invoke()
        .function_name("slow")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(format!(r#"{{"s": {s}}}"#)))
        .send()
        .await
        .unwrap();
    use aws_sdk_lambda::operation::RequestId;
    let id = out.request_id().unwrap().to_owned();
    attempts_logged(endpoint, &id, 1).await;
    id
}

/// Waits until `n` attempts of the event `id` have started (their `nap <id>` lines); returns
/// every line of the function.
async fn attempts_logged(endpoint: &str, id: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lines = log_lines(endpoint, "slow").await;
        let started = lines
            .iter()
            .filter(|l| l.contains(&format!("nap {id}")))
            .count();
        if started >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{n} attempts of {id} never started: {lines:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The REPORT lines of the event `id`.
fn reports<'a>(lines: &'a [String], id: &str) -> Vec<&'a String> {
    lines
        .iter()
        .filter(|l| l.starts_with(&format!("REPORT RequestId: {id}")))
        .collect()
}

/// A data directory in `dir`, and the arguments of a server configured with `toml`.
fn configured(dir: &Path, toml: &str) -> (PathBuf, [String; 2]) {
    let config = dir.join("lamina.toml");
    std::fs::write(&config, toml).unwrap();
    let args = ["--config".into(), config.to_str().unwrap().into()];
    (dir.join("data"), args)
}

/// Waits until the bill shows `n` requests of the function.
async fn billed(endpoint: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let bill: serde_json::Value =
            reqwest::get(format!("{endpoint}/_lamina/bill?function=slow"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        if bill_requests(&bill) == n {
            return;
        }
        assert!(Instant::now() < deadline, "never billed {n}: {bill}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_lets_a_running_attempt_finish_and_keeps_its_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = ServerProcess::start(&data, &[]);
    let c = sdk_client(&server.endpoint(), "test", "test", "us-east-1");
    deploy(&c, "nap").await;
    let id = running_event(&c, &server.endpoint(), 2).await;
    // Mid-attempt, with no request in flight: the stop waits for the attempt (the grace period
    // is 30 s), and writes how it ended before the process exits.
    server.stop();

    let server = ServerProcess::start(&data, &[]);
    assert_eq!(
        queued(&server.endpoint()).await,
        0.0,
        "the attempt's outcome was kept: its event is not run again"
    );
    let lines = log_lines(&server.endpoint(), "slow").await;
    let reports = reports(&lines, &id);
    assert_eq!(reports.len(), 1, "{lines:?}");
    assert!(
        !reports[0].contains("Status:"),
        "the attempt ran to its end, not stopped with its environment: {lines:?}"
    );
    billed(&server.endpoint(), 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_the_grace_period_cuts_short_runs_again_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (data, args) = configured(dir.path(), "shutdown_grace_s = 1\n");
    let args = args.each_ref().map(String::as_str);
    let start = |data: &Path| ServerProcess::start(data, &args);
    let mut server = start(&data);
    let c = sdk_client(&server.endpoint(), "test", "test", "us-east-1");
    deploy(&c, "nap").await;
    // Eight seconds: it is still running when the second of grace is over on a loaded machine.
    let id = running_event(&c, &server.endpoint(), 8).await;
    // The attempt outlives the grace period: its environment is stopped with the server.
    server.stop();

    // Not the function's failure: with no retries left, a counted failure would have ended the
    // event. It is still queued, and its attempt runs again, to its end, billed once.
    let server = start(&data);
    assert_eq!(queued(&server.endpoint()).await, 1.0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let lines = loop {
        let lines = attempts_logged(&server.endpoint(), &id, 2).await;
        if reports(&lines, &id).iter().any(|r| !r.contains("Status:")) || Instant::now() > deadline
        {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let reports = reports(&lines, &id);
    assert!(
        reports.iter().any(|r| !r.contains("Status:")),
        "the attempt ran again to its end: {lines:?}"
    );
    billed(&server.endpoint(), 1).await;
    // The event leaves the queue's count once its settlement is committed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while queued(&server.endpoint()).await != 0.0 {
        assert!(Instant::now() < deadline, "the event never left the queue");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_waits_for_an_ended_attempts_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    // No room in the SNS outbox: publishing the dead letter is refused, and tried again five
    // times over 31 s while its event stays leased.
    let toml = "shutdown_grace_s = 60\nsns_backlog_max_mb = 0\n";
    let (data, args) = configured(dir.path(), toml);
    let args = args.each_ref().map(String::as_str);
    let mut server = ServerProcess::start(&data, &args);
    let ep = server.endpoint();
    let c = sdk_client(&ep, "test", "test", "us-east-1");
    deploy(&c, "fail").await;
    let dlq = cli(&ep, &["sns", "create-topic", "--name", "dlq"])["TopicArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let subscriber = "arn:aws:lambda:us-east-1:000000000000:function:slow";
    cli(
        &ep,
        &[
            "sns",
            "subscribe",
            "--topic-arn",
            &dlq,
            "--protocol",
            "lambda",
            "--notification-endpoint",
            subscriber,
        ],
    );
    cli(
        &ep,
        &[
            "lambda",
            "update-function-configuration",
            "--function-name",
            "slow",
            "--dead-letter-config",
            &format!("TargetArn={dlq}"),
        ],
    );
    let out = c
        .invoke()
        .function_name("slow")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(r#"{"k": 1}"#))
        .send()
        .await
        .unwrap();
    use aws_sdk_lambda::operation::RequestId;
    let id = out.request_id().unwrap().to_owned();
    // Its only attempt has failed: the event is finished once its dead letter is published.
    let deadline = Instant::now() + Duration::from_secs(60);
    while reports(&log_lines(&ep, "slow").await, &id).is_empty() {
        assert!(Instant::now() < deadline, "the attempt never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stopping = Instant::now();
    server.stop_within(Duration::from_secs(90));
    eprintln!("stopped in {:?}", stopping.elapsed());

    // The stop waited for the publishing to give up and the event to be settled: it is not
    // run again.
    let server = ServerProcess::start(&data, &args);
    assert_eq!(
        queued(&server.endpoint()).await,
        0.0,
        "the event was settled before the stop"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let lines = log_lines(&server.endpoint(), "slow").await;
    let attempts = lines
        .iter()
        .filter(|l| l.contains(&format!("attempt {id}")))
        .count();
    assert_eq!(attempts, 1, "the event ran once: {lines:?}");
}
