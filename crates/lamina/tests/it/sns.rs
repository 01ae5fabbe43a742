//! SNS through clients we did not write (the AWS CLI and boto3): topic and subscription life
//! cycles, the exact event a function receives, filter policies, HTTP endpoints with the
//! confirmation handshake and retries, the permission SNS needs with `--auth`, SNS as a
//! destination and dead-letter target, malformed requests, and a kill -9 after publishing.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};
use serde_json::{Value, json};

use crate::helpers::*;

const HANDLERS: &[u8] = b"import json\n\
def show(event, context):\n    print('EVENT ' + json.dumps(event))\n    return 1\n\
def fail(event, context):\n    raise RuntimeError('intentional failure')\n\
def slow(event, context):\n    import time\n    time.sleep(0.2)\n    print('EVENT ' + json.dumps(event))\n    return 1\n";

async fn deploy(c: &Client, name: &str, handler: &str) -> String {
    let f = c
        .create_function()
        .function_name(name)
        .runtime(Runtime::from(host_python().as_str()))
        .handler(format!("handlers.{handler}"))
        .role(ROLE)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(zip_of(&[("handlers.py", HANDLERS)])))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {}", describe(&e)));
    f.function_arn().unwrap().to_owned()
}

/// Runs the AWS CLI against `endpoint` with `key`; returns its JSON output, or its error text.
fn aws(endpoint: &str, key: (&str, &str), args: &[&str]) -> Result<Value, String> {
    let out = Command::new(crate::awscli::aws_cli())
        .args([
            "--endpoint-url",
            endpoint,
            "--region",
            "us-east-1",
            "--output",
            "json",
        ])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", key.0)
        .env("AWS_SECRET_ACCESS_KEY", key.1)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("aws runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    Ok(
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("aws printed non-JSON ({e}): {text}")),
    )
}

fn cli(endpoint: &str, args: &[&str]) -> Value {
    aws(endpoint, ("test", "test"), args).unwrap_or_else(|e| panic!("aws {args:?}: {e}"))
}

/// Runs a boto3 script (given `sns`, a client for `endpoint`) and parses the JSON it prints last.
fn boto3(endpoint: &str, key: (&str, &str), script: &str) -> Value {
    let program = format!(
        "import boto3, json, sys\n\
         sns = boto3.client('sns', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='{}', aws_secret_access_key='{}')\n{script}",
        key.0, key.1
    );
    let out = Command::new(python_venv().join("bin/python"))
        .args(["-c", &program, endpoint])
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "boto3 script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or("null");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("boto3 printed non-JSON ({e}): {text}"))
}

/// Checks an SNS message's signature as a client would: fetch the certificate at its signing
/// certificate URL, and verify the string to sign (SHA256withRSA for `SignatureVersion` 2) with
/// Python's `cryptography`.
fn verify_signature(message: &Value) {
    let program = r#"
import base64, json, sys, urllib.request
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
m = json.loads(sys.argv[1])
assert m['SignatureVersion'] == '2', m['SignatureVersion']
url = m.get('SigningCertURL') or m['SigningCertUrl']
cert = x509.load_pem_x509_certificate(urllib.request.urlopen(url).read())
if m['Type'] == 'Notification':
    keys = ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type']
else:
    keys = ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type']
text = ''.join('%s\n%s\n' % (k, m[k]) for k in keys if m.get(k) is not None)
cert.public_key().verify(base64.b64decode(m['Signature']), text.encode(), padding.PKCS1v15(), hashes.SHA256())
tampered = text.replace(m['Message'], m['Message'] + '!', 1)
try:
    cert.public_key().verify(base64.b64decode(m['Signature']), tampered.encode(), padding.PKCS1v15(), hashes.SHA256())
    sys.exit('a tampered message verified')
except Exception:
    pass
"#;
    let out = Command::new(python_venv().join("bin/python"))
        .args(["-c", program, &message.to_string()])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "the signature does not verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The SNS events a function has logged, waiting until there are at least `n`.
async fn events(endpoint: &str, function: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got: Vec<Value> = log_lines(endpoint, function)
            .await
            .iter()
            .filter_map(|l| l.strip_prefix("EVENT "))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{function} received {} of {n} events: {got:?}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The messages (the `Sns.Message` fields) a function received.
fn messages(events: &[Value]) -> Vec<String> {
    let mut m: Vec<String> = events
        .iter()
        .map(|e| {
            e["Records"][0]["Sns"]["Message"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    m.sort();
    m
}

/// A counter's value in `/metrics` (summed over its series that contain `label`).
async fn counter(endpoint: &str, name: &str, label: &str) -> f64 {
    let text = reqwest::get(format!("{endpoint}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_life_cycle_delivers_the_exact_sns_event() {
    let app = spawn_app().await;
    let ep = app.endpoint();
    let function_arn = deploy(&app.client, "show", "show").await;
    let out = boto3(
        &ep,
        ("test", "test"),
        &format!(
            r#"
t = sns.create_topic(Name='orders', Attributes={{'DisplayName': 'Orders'}}, Tags=[{{'Key': 'team', 'Value': 'a'}}])['TopicArn']
assert sns.create_topic(Name='orders')['TopicArn'] == t
sns.set_topic_attributes(TopicArn=t, AttributeName='DisplayName', AttributeValue='Orders!')
attrs = sns.get_topic_attributes(TopicArn=t)['Attributes']
tags = sns.list_tags_for_resource(ResourceArn=t)['Tags']
sub = sns.subscribe(TopicArn=t, Protocol='lambda', Endpoint='{function_arn}')['SubscriptionArn']
subs = sns.list_subscriptions_by_topic(TopicArn=t)['Subscriptions']
sub_attrs = sns.get_subscription_attributes(SubscriptionArn=sub)['Attributes']
m1 = sns.publish(TopicArn=t, Message='Hello', Subject='Greetings', MessageAttributes={{
    'color': {{'DataType': 'String', 'StringValue': 'red'}},
    'n': {{'DataType': 'Number', 'StringValue': '5'}},
    'bin': {{'DataType': 'Binary', 'BinaryValue': b'\x00\x01'}},
    'tags': {{'DataType': 'String.Array', 'StringValue': '["a", "b"]'}},
}})['MessageId']
m2 = sns.publish(TopicArn=t, Message='Plain')['MessageId']
m3 = sns.publish(TopicArn=t, MessageStructure='json', Message=json.dumps({{'default': 'd', 'lambda': 'for functions'}}))['MessageId']
batch = sns.publish_batch(TopicArn=t, PublishBatchRequestEntries=[{{'Id': 'a', 'Message': 'B1'}}, {{'Id': 'b', 'Message': ''}}])
print(json.dumps({{'topic': t, 'attrs': attrs, 'tags': tags, 'sub': sub, 'subs': subs, 'sub_attrs': sub_attrs, 'ids': [m1, m2, m3], 'batch': batch}}))
"#
        ),
    );
    let topic = out["topic"].as_str().unwrap();
    assert_eq!(topic, "arn:aws:sns:us-east-1:000000000000:orders");
    assert_eq!(out["attrs"]["DisplayName"], "Orders!");
    assert_eq!(out["attrs"]["Owner"], "000000000000");
    assert_eq!(out["attrs"]["SubscriptionsConfirmed"], "0");
    assert_eq!(out["tags"], json!([{"Key": "team", "Value": "a"}]));
    let sub = out["sub"].as_str().unwrap();
    assert!(sub.starts_with(&format!("{topic}:")), "{sub}");
    assert_eq!(out["subs"][0]["Endpoint"], function_arn.as_str());
    assert_eq!(out["subs"][0]["Protocol"], "lambda");
    assert_eq!(out["sub_attrs"]["PendingConfirmation"], "false");
    assert_eq!(out["sub_attrs"]["RawMessageDelivery"], "false");
    assert_eq!(out["batch"]["Successful"].as_array().unwrap().len(), 1);
    assert_eq!(out["batch"]["Failed"][0]["Id"], "b");
    assert_eq!(out["batch"]["Failed"][0]["Code"], "InvalidParameter");
    assert_eq!(out["batch"]["Failed"][0]["SenderFault"], true);

    let got = events(&ep, "show", 4).await;
    let by_id = |id: &Value| {
        got.iter()
            .find(|e| e["Records"][0]["Sns"]["MessageId"] == *id)
            .unwrap_or_else(|| panic!("no event for {id}: {got:?}"))
            .clone()
    };
    // One record per invocation, field by field.
    let e = by_id(&out["ids"][0]);
    let records = e["Records"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r["EventSource"], "aws:sns");
    assert_eq!(r["EventVersion"], "1.0");
    assert_eq!(r["EventSubscriptionArn"], sub);
    let s = &r["Sns"];
    assert_eq!(s["Type"], "Notification");
    assert_eq!(s["MessageId"], out["ids"][0]);
    assert_eq!(s["TopicArn"], topic);
    assert_eq!(s["Subject"], "Greetings");
    assert_eq!(s["Message"], "Hello");
    let ts = s["Timestamp"].as_str().unwrap();
    assert_eq!(ts.len(), 24, "{ts}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T' && ts.as_bytes()[19] == b'.');
    assert!(s["SigningCertUrl"].as_str().unwrap().ends_with(".pem"));
    verify_signature(s);
    assert_eq!(
        s["UnsubscribeUrl"],
        format!("{ep}/?Action=Unsubscribe&SubscriptionArn={sub}")
    );
    assert_eq!(
        s["MessageAttributes"],
        json!({
            "color": {"Type": "String", "Value": "red"},
            "n": {"Type": "Number", "Value": "5"},
            "bin": {"Type": "Binary", "Value": "AAE="},
            "tags": {"Type": "String.Array", "Value": "[\"a\", \"b\"]"},
        })
    );
    // No subject: null; no attributes: {}.
    let plain = by_id(&out["ids"][1]);
    assert_eq!(plain["Records"][0]["Sns"]["Subject"], Value::Null);
    assert_eq!(plain["Records"][0]["Sns"]["MessageAttributes"], json!({}));
    // MessageStructure json: functions get the `lambda` message.
    assert_eq!(
        by_id(&out["ids"][2])["Records"][0]["Sns"]["Message"],
        "for functions"
    );

    // Unsubscribing stops deliveries; deleting the topic takes it away.
    let after = boto3(
        &ep,
        ("test", "test"),
        &format!(
            r#"
sns.unsubscribe(SubscriptionArn='{sub}')
sns.unsubscribe(SubscriptionArn='{sub}')
sns.publish(TopicArn='{topic}', Message='after')
left = sns.list_subscriptions()['Subscriptions']
sns.delete_topic(TopicArn='{topic}')
sns.delete_topic(TopicArn='{topic}')
print(json.dumps({{'left': left, 'topics': sns.list_topics()['Topics']}}))
"#
        ),
    );
    assert_eq!(after, json!({"left": [], "topics": []}));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(events(&ep, "show", 0).await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_policies_route_each_message_to_its_subscribers() {
    let app = spawn_app().await;
    let ep = app.endpoint();
    let red = deploy(&app.client, "red", "show").await;
    let big = deploy(&app.client, "big", "show").await;
    let topic = cli(&ep, &["sns", "create-topic", "--name", "t"])["TopicArn"]
        .as_str()
        .unwrap()
        .to_owned();
    // A bad policy is refused with SNS's words, and subscribes nothing.
    let bad = aws(
        &ep,
        ("test", "test"),
        &[
            "sns",
            "subscribe",
            "--topic-arn",
            &topic,
            "--protocol",
            "lambda",
            "--notification-endpoint",
            &red,
            "--attributes",
            r#"{"FilterPolicy": "{\"color\": []}"}"#,
        ],
    )
    .unwrap_err();
    assert!(
        bad.contains(
            "Invalid parameter: Attributes Reason: FilterPolicy: Empty arrays are not allowed"
        ),
        "{bad}"
    );
    cli(
        &ep,
        &[
            "sns",
            "subscribe",
            "--topic-arn",
            &topic,
            "--protocol",
            "lambda",
            "--notification-endpoint",
            &red,
            "--attributes",
            r#"{"FilterPolicy": "{\"color\": [\"red\", {\"prefix\": \"crim\"}]}"}"#,
        ],
    );
    cli(
        &ep,
        &[
            "sns",
            "subscribe",
            "--topic-arn",
            &topic,
            "--protocol",
            "lambda",
            "--notification-endpoint",
            &big,
            "--attributes",
            r#"{"FilterPolicy": "{\"size\": [{\"numeric\": [\">\", 10]}]}", "FilterPolicyScope": "MessageBody"}"#,
        ],
    );
    let publish = |body: &str, color: &str| {
        let attrs = format!(r#"{{"color": {{"DataType": "String", "StringValue": "{color}"}}}}"#);
        cli(
            &ep,
            &[
                "sns",
                "publish",
                "--topic-arn",
                &topic,
                "--message",
                body,
                "--message-attributes",
                &attrs,
            ],
        );
    };
    publish(r#"{"size": 5, "m": 1}"#, "red");
    publish(r#"{"size": 50, "m": 2}"#, "blue");
    publish(r#"{"size": 50, "m": 3}"#, "crimson");
    publish("not json", "green");
    let red_got = messages(&events(&ep, "red", 2).await);
    let big_got = messages(&events(&ep, "big", 2).await);
    assert_eq!(
        red_got,
        [r#"{"size": 5, "m": 1}"#, r#"{"size": 50, "m": 3}"#]
    );
    assert_eq!(
        big_got,
        [r#"{"size": 50, "m": 2}"#, r#"{"size": 50, "m": 3}"#]
    );
    // Nothing else arrives later.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(events(&ep, "red", 0).await.len(), 2);
    assert_eq!(events(&ep, "big", 0).await.len(), 2);
    assert_eq!(
        counter(&ep, "lamina_sns_messages_published_total", &topic).await,
        4.0
    );
    assert_eq!(
        counter(&ep, "lamina_sns_messages_filtered_total", &topic).await,
        4.0
    );
    assert_eq!(
        counter(&ep, "lamina_sns_deliveries_total", &topic).await,
        4.0
    );
    // Changing a policy applies to the next message.
    let subs = cli(
        &ep,
        &["sns", "list-subscriptions-by-topic", "--topic-arn", &topic],
    );
    let red_sub = subs["Subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Endpoint"] == red.as_str())
        .unwrap()["SubscriptionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    cli(
        &ep,
        &[
            "sns",
            "set-subscription-attributes",
            "--subscription-arn",
            &red_sub,
            "--attribute-name",
            "FilterPolicy",
            "--attribute-value",
            r#"{"color": ["green"]}"#,
        ],
    );
    publish("green again", "green");
    assert!(messages(&events(&ep, "red", 3).await).contains(&"green again".to_string()));
}

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
async fn malformed_requests_get_sns_xml_errors_and_change_nothing() {
    let app = spawn_app().await;
    let ep = app.endpoint();
    let http = reqwest::Client::new();
    let post = |body: String| {
        let http = http.clone();
        let ep = ep.clone();
        async move {
            let r = http
                .post(format!("{ep}/"))
                .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
                .header(
                    "authorization",
                    format!("AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sns/aws4_request, SignedHeaders=host, Signature={}", "0".repeat(64)),
                )
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let ctype = r.headers()["content-type"].to_str().unwrap().to_owned();
            (status, ctype, r.text().await.unwrap())
        }
    };
    let code = |xml: &str| {
        let start = xml.find("<Code>").unwrap() + 6;
        xml[start..xml.find("</Code>").unwrap()].to_owned()
    };
    let (status, ctype, xml) = post("Version=2010-03-31".into()).await;
    assert_eq!(
        (status, ctype.as_str(), code(&xml).as_str()),
        (400, "text/xml", "MissingAction")
    );
    assert!(
        xml.starts_with("<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">"),
        "{xml}"
    );
    assert!(
        xml.contains("<Type>Sender</Type>") && xml.contains("<RequestId>"),
        "{xml}"
    );
    let (status, _, xml) = post("Action=Frobnicate&Version=2010-03-31".into()).await;
    assert_eq!((status, code(&xml).as_str()), (400, "InvalidAction"));
    let (status, _, xml) =
        post("Action=CreateTopic&Name=t&Tags.member.0.Key=a&Tags.member.0.Value=b".into()).await;
    assert_eq!((status, code(&xml).as_str()), (400, "ValidationError"));
    let (status, _, xml) = post("Action=CreateTopic&Name=bad%20name!".into()).await;
    assert_eq!((status, code(&xml).as_str()), (400, "InvalidParameter"));
    assert!(xml.contains("Invalid parameter: Topic Name"), "{xml}");
    let (status, _, xml) = post("Action=CreateTopic".into()).await;
    assert_eq!((status, code(&xml).as_str()), (400, "ValidationError"));
    let (_, _, xml) = post("Action=CreateTopic&Name=real".into()).await;
    assert!(
        xml.contains("<TopicArn>arn:aws:sns:us-east-1:000000000000:real</TopicArn>"),
        "{xml}"
    );
    let big = "x".repeat(1 << 20);
    let (status, _, xml) = post(format!(
        "Action=Publish&TopicArn=arn:aws:sns:us-east-1:000000000000:real&Message={big}"
    ))
    .await;
    assert_eq!((status, code(&xml).as_str()), (400, "InvalidParameter"));
    assert!(xml.contains("Invalid parameter: Message too long"), "{xml}");
    let (status, _, xml) =
        post("Action=Publish&TopicArn=arn:aws:sns:us-east-1:000000000000:nope&Message=m".into())
            .await;
    assert_eq!((status, code(&xml).as_str()), (404, "NotFound"));
    let (status, _, xml) = post("Action=Publish&TopicArn=nope&Message=m".into()).await;
    assert_eq!((status, code(&xml).as_str()), (400, "InvalidParameter"));
    assert!(
        xml.contains("An ARN must have at least 6 elements, not 1"),
        "{xml}"
    );
    let (status, _, xml) = post(
        "Action=Publish&TopicArn=arn:aws:sns:us-east-1:000000000000:real&Message=m&MessageAttributes.entry.1.Name=a&MessageAttributes.entry.1.Value.DataType=Blob&MessageAttributes.entry.1.Value.StringValue=x".into(),
    )
    .await;
    assert_eq!(
        (status, code(&xml).as_str()),
        (400, "ParameterValueInvalid")
    );
    // Only the one good topic exists.
    let topics = cli(&ep, &["sns", "list-topics"]);
    assert_eq!(
        topics["Topics"],
        json!([{"TopicArn": "arn:aws:sns:us-east-1:000000000000:real"}])
    );
    assert_eq!(
        counter(&ep, "lamina_sns_messages_published_total", "real").await,
        0.0
    );
}

const AUTH: &str = r#"
[auth]
verify = true
[[auth.keys]]
access_key_id = "AKIDALICE"
secret_access_key = "alice-secret"
account = "111111111111"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_delivery_needs_the_sns_permission_and_says_so_when_missing() {
    let app = spawn_app_with(AUTH).await;
    let ep = app.endpoint();
    let alice = sdk_client(&ep, "AKIDALICE", "alice-secret", "us-east-1");
    let function = deploy(&alice, "guarded", "show").await;
    let key = ("AKIDALICE", "alice-secret");
    // Unsigned and badly signed SNS calls are refused in SNS's words.
    let bad = aws(&ep, ("AKIDALICE", "wrong"), &["sns", "list-topics"]).unwrap_err();
    assert!(bad.contains("SignatureDoesNotMatch"), "{bad}");
    let out = boto3(
        &ep,
        key,
        &format!(
            r#"
t = sns.create_topic(Name='guarded')['TopicArn']
sns.subscribe(TopicArn=t, Protocol='lambda', Endpoint='{function}')
m = sns.publish(TopicArn=t, Message='denied')['MessageId']
print(json.dumps({{'topic': t, 'id': m}}))
"#
        ),
    );
    let topic = out["topic"].as_str().unwrap().to_owned();
    assert_eq!(topic, "arn:aws:sns:us-east-1:111111111111:guarded");
    // Visible: a metric, and a line in the function's own log.
    let deadline = Instant::now() + Duration::from_secs(10);
    while counter(&ep, "lamina_sns_deliveries_failed_total", &topic).await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the refused delivery was not counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Read as Alice would, with `lamina logs`.
    let logs = || {
        let out = Command::new(env!("CARGO_BIN_EXE_lamina"))
            .args(["logs", "guarded", "--endpoint", &ep])
            .env("AWS_ACCESS_KEY_ID", key.0)
            .env("AWS_SECRET_ACCESS_KEY", key.1)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let id = out["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !logs()
        .lines()
        .any(|l| l.contains(id) && l.contains("not authorized"))
    {
        assert!(
            Instant::now() < deadline,
            "no log line for the refused delivery: {}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!logs().contains("EVENT "));
    // The permission, as the console grants it, lets the next message through.
    alice
        .add_permission()
        .function_name("guarded")
        .statement_id("sns")
        .action("lambda:InvokeFunction")
        .principal("sns.amazonaws.com")
        .source_arn(&topic)
        .send()
        .await
        .unwrap();
    boto3(
        &ep,
        key,
        &format!("sns.publish(TopicArn='{topic}', Message='allowed')\nprint('null')"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !logs().contains(r#""Message": "allowed""#) {
        assert!(
            Instant::now() < deadline,
            "the allowed message never arrived: {}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!logs().contains(r#""Message": "denied""#));
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
    let function = deploy(&c, "work", "show").await;
    // One at a time: most messages are still queued when the server dies.
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
async fn lamina_topic_subscribes_functions_with_their_permission_and_publishes() {
    let app = spawn_app_with(AUTH).await;
    let ep = app.endpoint();
    let alice = sdk_client(&ep, "AKIDALICE", "alice-secret", "us-east-1");
    deploy(&alice, "worker", "show").await;
    let lamina = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_lamina"))
            .args(args)
            .args(["--endpoint", &ep, "--json"])
            .env("AWS_ACCESS_KEY_ID", "AKIDALICE")
            .env("AWS_SECRET_ACCESS_KEY", "alice-secret")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "lamina {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let topic = lamina(&["topic", "create", "jobs"])["TopicArn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(topic, "arn:aws:sns:us-east-1:111111111111:jobs");
    lamina(&[
        "topic",
        "subscribe",
        "jobs",
        "worker",
        "--filter",
        r#"{"kind": ["build"]}"#,
    ]);
    // Subscribing twice is the same subscription, and the grant is kept.
    lamina(&[
        "topic",
        "subscribe",
        "jobs",
        "worker",
        "--filter",
        r#"{"kind": ["build"]}"#,
    ]);
    let listed = lamina(&["topic", "ls"]);
    assert_eq!(listed[0]["TopicArn"], topic.as_str());
    assert_eq!(listed[0]["SubscriptionsConfirmed"], "1");
    lamina(&["topic", "publish", "jobs", "skip me", "--attr", "kind=test"]);
    let id = lamina(&[
        "topic",
        "publish",
        "jobs",
        "build it",
        "--attr",
        "kind=build",
        "--attr",
        "n=3",
        "--subject",
        "Job",
    ])["MessageId"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new(env!("CARGO_BIN_EXE_lamina"))
            .args(["logs", "worker", "--endpoint", &ep])
            .env("AWS_ACCESS_KEY_ID", "AKIDALICE")
            .env("AWS_SECRET_ACCESS_KEY", "alice-secret")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(line) = text.lines().find_map(|l| l.strip_prefix("EVENT ")) {
            let e: Value = serde_json::from_str(line).unwrap();
            let s = &e["Records"][0]["Sns"];
            assert_eq!(s["MessageId"], id.as_str());
            assert_eq!(s["Subject"], "Job");
            assert_eq!(
                s["MessageAttributes"]["n"],
                json!({"Type": "Number", "Value": "3"})
            );
            assert!(!text.contains("skip me"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the message never arrived: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    lamina(&["topic", "rm", "jobs"]);
    assert_eq!(lamina(&["topic", "ls"]), json!([]));
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
