//! SNS deliveries: HTTP endpoints with the confirmation handshake, signatures and retries;
//! topics as destinations and dead-letter targets; messages that survive kill -9; invokes
//! throttled by a full queue and retried by SNS; a publish refused when the outbox is full.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::sns::{aws, boto3, cli, counter, deploy, events, messages, verify_signature};

/// A small HTTP endpoint on loopback that records what SNS posts, answering with the statuses
/// it is given (then 200).
struct Endpoint {
    url: String,
    seen: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Endpoint {
    async fn start(statuses: Vec<u16>) -> Self {
        let seen: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>> = Arc::default();
        let plan = Arc::new(Mutex::new(statuses));
        let s = seen.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let s = s.clone();
                let plan = plan.clone();
                async move {
                    s.lock().unwrap().push((headers, body));
                    let mut p = plan.lock().unwrap();
                    let code = if p.is_empty() { 200 } else { p.remove(0) };
                    axum::http::StatusCode::from_u16(code).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Self {
            url,
            seen,
            shutdown: Some(tx),
        }
    }

    /// What was posted, waiting until there are at least `n`.
    async fn posts(&self, n: usize) -> Vec<(axum::http::HeaderMap, String)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.seen.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "{} of {n} posts", got.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_endpoints_confirm_then_receive_notifications_with_retries() {
    let app = spawn_app().await;
    let ep = app.endpoint();
    // The first notification fails twice (500, then 429) before it is taken.
    let hook = Endpoint::start(vec![200, 500, 429]).await;
    let topic = cli(&ep, &["sns", "create-topic", "--name", "web"])["TopicArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = cli(
        &ep,
        &[
            "sns",
            "subscribe",
            "--topic-arn",
            &topic,
            "--protocol",
            "http",
            "--notification-endpoint",
            &hook.url,
        ],
    );
    assert_eq!(out["SubscriptionArn"], "pending confirmation");
    let posts = hook.posts(1).await;
    let (headers, body) = &posts[0];
    assert_eq!(
        headers["x-amz-sns-message-type"],
        "SubscriptionConfirmation"
    );
    assert_eq!(headers["x-amz-sns-topic-arn"], topic.as_str());
    assert_eq!(headers["content-type"], "text/plain; charset=UTF-8");
    assert_eq!(
        headers["user-agent"],
        "Amazon Simple Notification Service Agent"
    );
    let confirmation: Value = serde_json::from_str(body).unwrap();
    assert_eq!(confirmation["Type"], "SubscriptionConfirmation");
    assert_eq!(confirmation["TopicArn"], topic.as_str());
    assert_eq!(
        confirmation["Message"],
        format!(
            "You have chosen to subscribe to the topic {topic}.\nTo confirm the subscription, visit the SubscribeURL included in this message."
        )
    );
    verify_signature(&confirmation);
    let token = confirmation["Token"].as_str().unwrap();
    let link = confirmation["SubscribeURL"].as_str().unwrap();
    assert_eq!(
        link,
        format!("{ep}/?Action=ConfirmSubscription&TopicArn={topic}&Token={token}")
    );
    // Nothing is delivered while pending.
    cli(
        &ep,
        &[
            "sns",
            "publish",
            "--topic-arn",
            &topic,
            "--message",
            "too early",
        ],
    );
    // The link needs no signature.
    let answer = reqwest::get(link).await.unwrap();
    assert_eq!(answer.status(), 200);
    let xml = answer.text().await.unwrap();
    assert!(xml.contains("<ConfirmSubscriptionResponse"), "{xml}");
    let subs = cli(
        &ep,
        &["sns", "list-subscriptions-by-topic", "--topic-arn", &topic],
    );
    let sub = subs["Subscriptions"][0]["SubscriptionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(xml.contains(&sub), "{xml}");
    // Retries come quickly with this delivery policy.
    cli(
        &ep,
        &[
            "sns",
            "set-subscription-attributes",
            "--subscription-arn",
            &sub,
            "--attribute-name",
            "DeliveryPolicy",
            "--attribute-value",
            r#"{"healthyRetryPolicy": {"numRetries": 3, "minDelayTarget": 1, "maxDelayTarget": 1}}"#,
        ],
    );
    let attrs = json!({"k": {"DataType": "String", "StringValue": "v"}}).to_string();
    let id = cli(
        &ep,
        &[
            "sns",
            "publish",
            "--topic-arn",
            &topic,
            "--message",
            "hello web",
            "--subject",
            "Hi",
            "--message-attributes",
            &attrs,
        ],
    )["MessageId"]
        .as_str()
        .unwrap()
        .to_owned();
    let posts = hook.posts(4).await;
    assert_eq!(posts.len(), 4, "the pending-time message was never sent");
    for (headers, body) in &posts[1..] {
        assert_eq!(headers["x-amz-sns-message-type"], "Notification");
        assert_eq!(headers["x-amz-sns-message-id"], id.as_str());
        assert_eq!(headers["x-amz-sns-subscription-arn"], sub.as_str());
        let n: Value = serde_json::from_str(body).unwrap();
        assert_eq!(n["Type"], "Notification");
        assert_eq!(n["MessageId"], id.as_str());
        assert_eq!(n["Subject"], "Hi");
        assert_eq!(n["Message"], "hello web");
        assert_eq!(
            n["UnsubscribeURL"],
            format!("{ep}/?Action=Unsubscribe&SubscriptionArn={sub}")
        );
        assert_eq!(
            n["MessageAttributes"],
            json!({"k": {"Type": "String", "Value": "v"}})
        );
        verify_signature(&n);
    }
    // Raw delivery: the bare message.
    cli(
        &ep,
        &[
            "sns",
            "set-subscription-attributes",
            "--subscription-arn",
            &sub,
            "--attribute-name",
            "RawMessageDelivery",
            "--attribute-value",
            "true",
        ],
    );
    cli(
        &ep,
        &[
            "sns",
            "publish",
            "--topic-arn",
            &topic,
            "--message",
            "raw body",
        ],
    );
    let posts = hook.posts(5).await;
    assert_eq!(posts[4].1, "raw body");
    assert_eq!(posts[4].0["x-amz-sns-rawdelivery"], "true");
    // The unsubscribe link, unsigned, ends it.
    let link = format!("{ep}/?Action=Unsubscribe&SubscriptionArn={sub}");
    assert_eq!(reqwest::get(&link).await.unwrap().status(), 200);
    cli(
        &ep,
        &[
            "sns",
            "publish",
            "--topic-arn",
            &topic,
            "--message",
            "after",
        ],
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(hook.seen.lock().unwrap().len(), 5);
    assert_eq!(
        counter(&ep, "lamina_sns_deliveries_total", &topic).await,
        3.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_destinations_and_dead_letter_targets() {
    let app = spawn_app().await;
    let ep = app.endpoint();
    let c = &app.client;
    deploy(c, "failing", "fail").await;
    deploy(c, "records", "show").await;
    deploy(c, "letters", "show").await;
    let failures = cli(&ep, &["sns", "create-topic", "--name", "failures"])["TopicArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let dlq = cli(&ep, &["sns", "create-topic", "--name", "dlq"])["TopicArn"]
        .as_str()
        .unwrap()
        .to_owned();
    for (topic, f) in [(&failures, "records"), (&dlq, "letters")] {
        let endpoint = format!("arn:aws:lambda:us-east-1:000000000000:function:{f}");
        cli(
            &ep,
            &[
                "sns",
                "subscribe",
                "--topic-arn",
                topic,
                "--protocol",
                "lambda",
                "--notification-endpoint",
                &endpoint,
            ],
        );
    }
    // A topic that does not exist is refused as either.
    let missing = "arn:aws:sns:us-east-1:000000000000:missing";
    let e = aws(
        &ep,
        ("test", "test"),
        &[
            "lambda",
            "update-function-configuration",
            "--function-name",
            "failing",
            "--dead-letter-config",
            &format!("TargetArn={missing}"),
        ],
    )
    .unwrap_err();
    assert!(e.contains("InvalidParameterValueException"), "{e}");
    let cfg = cli(
        &ep,
        &[
            "lambda",
            "update-function-configuration",
            "--function-name",
            "failing",
            "--dead-letter-config",
            &format!("TargetArn={dlq}"),
        ],
    );
    assert_eq!(cfg["DeadLetterConfig"]["TargetArn"], dlq.as_str());
    cli(
        &ep,
        &[
            "lambda",
            "put-function-event-invoke-config",
            "--function-name",
            "failing",
            "--maximum-retry-attempts",
            "0",
            "--destination-config",
            &json!({"OnFailure": {"Destination": failures}}).to_string(),
        ],
    );
    let out = c
        .invoke()
        .function_name("failing")
        .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
        .payload(Blob::new(br#"{"k": 1}"#.to_vec()))
        .send()
        .await
        .unwrap();
    use aws_sdk_lambda::operation::RequestId;
    let request_id = out.request_id().unwrap().to_owned();
    let record = &events(&ep, "records", 1).await[0]["Records"][0]["Sns"];
    assert_eq!(record["TopicArn"], failures.as_str());
    let record: Value = serde_json::from_str(record["Message"].as_str().unwrap()).unwrap();
    assert_eq!(record["requestContext"]["requestId"], request_id.as_str());
    assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(record["requestPayload"], json!({"k": 1}));
    assert_eq!(
        record["responsePayload"]["errorMessage"],
        "intentional failure"
    );
    let letter = &events(&ep, "letters", 1).await[0]["Records"][0]["Sns"];
    assert_eq!(letter["TopicArn"], dlq.as_str());
    assert_eq!(letter["Message"], r#"{"k": 1}"#);
    assert_eq!(
        letter["MessageAttributes"],
        json!({
            "RequestID": {"Type": "String", "Value": request_id},
            "ErrorCode": {"Type": "Number", "Value": "200"},
            "ErrorMessage": {"Type": "String", "Value": "intentional failure"},
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_messages_survive_kill9_and_are_delivered_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = ServerProcess::start(&data, &[]);
    let ep = server.endpoint();
    let c = sdk_client(&ep, "test", "test", "us-east-1");
    // One at a time, 0.2 s each: most messages are still queued when the server dies (a handler
    // that returns at once can drain all 200 while boto3 is still publishing).
    let function = deploy(&c, "work", "slow").await;
    c.put_function_concurrency()
        .function_name("work")
        .reserved_concurrent_executions(1)
        .send()
        .await
        .unwrap();
    let out = boto3(
        &ep,
        ("test", "test"),
        &format!(
            r#"
t = sns.create_topic(Name='durable')['TopicArn']
sns.subscribe(TopicArn=t, Protocol='lambda', Endpoint='{function}')
for i in range(20):
    sns.publish_batch(TopicArn=t, PublishBatchRequestEntries=[{{'Id': str(j), 'Message': 'm%d' % (i * 10 + j)}} for j in range(10)])
print(json.dumps(t))
"#
        ),
    );
    assert!(out.as_str().unwrap().ends_with(":durable"));
    let queued = counter(&ep, "lamina_async_queue_events", "").await;
    assert!(
        queued > 50.0,
        "most messages are still queued at the crash: {queued}"
    );
    server.kill9();
    let server = ServerProcess::start(&data, &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let bill_requests = crate::async_invoke::bill_requests;
    let requests = loop {
        let bill: Value = reqwest::get(format!("{}/_lamina/bill?function=work", server.endpoint()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let n = bill_requests(&bill);
        if n >= 200 || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Every acknowledged message became exactly one (billed) invocation.
    assert_eq!(requests, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invokes_throttled_by_a_full_queue_are_retried_by_sns() {
    // Room for three events: the rest of a batch finds the queue full and waits in SNS's outbox.
    let app = spawn_app_with("async_queue_max_events = 3").await;
    let ep = app.endpoint();
    let function = deploy(&app.client, "busy", "slow").await;
    app.client
        .put_function_concurrency()
        .function_name("busy")
        .reserved_concurrent_executions(1)
        .send()
        .await
        .unwrap();
    boto3(
        &ep,
        ("test", "test"),
        &format!(
            r#"
t = sns.create_topic(Name='burst')['TopicArn']
sns.subscribe(TopicArn=t, Protocol='lambda', Endpoint='{function}')
r = sns.publish_batch(TopicArn=t, PublishBatchRequestEntries=[{{'Id': str(j), 'Message': 'm%d' % j}} for j in range(10)])
assert len(r['Successful']) == 10, r
print('null')
"#
        ),
    );
    let got = messages(&events(&ep, "busy", 10).await);
    let want: Vec<String> = {
        let mut w: Vec<String> = (0..10).map(|j| format!("m{j}")).collect();
        w.sort();
        w
    };
    assert_eq!(got, want);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(events(&ep, "busy", 0).await.len(), 10, "each message once");
    let retried = counter(&ep, "lamina_sns_delivery_retries_total", "burst").await;
    assert!(retried >= 1.0, "the full queue throttled none: {retried}");
}

/// A publish whose deliveries would overfill the outbox is refused as throttled, having made
/// none of them (and held no more of their bodies than the outbox has room for); one that fits
/// goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_that_would_overfill_the_outbox_is_throttled() {
    let app = spawn_app_with("sns_backlog_max_mb = 1").await;
    boto3(
        &app.endpoint(),
        ("test", "test"),
        r#"
import botocore.config, botocore.exceptions
sns = boto3.client('sns', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test', config=botocore.config.Config(retries={'total_max_attempts': 1}))
t = sns.create_topic(Name='wide')['TopicArn']
subs = [sns.subscribe(TopicArn=t, Protocol='lambda', Endpoint='arn:aws:lambda:us-east-1:000000000000:function:f%d' % i)['SubscriptionArn'] for i in range(6)]
big = 'x' * 200000
try:
    sns.publish(TopicArn=t, Message=big)
    raise SystemExit('six deliveries of 200 KB fitted an outbox of 1 MB')
except botocore.exceptions.ClientError as e:
    assert e.response['Error']['Code'] == 'Throttled', e.response
for s in subs[:2]:
    sns.unsubscribe(SubscriptionArn=s)
assert 'MessageId' in sns.publish(TopicArn=t, Message=big)
print('null')
"#,
    );
}
