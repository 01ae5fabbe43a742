//! SNS through clients we did not write (the AWS CLI, boto3, `lamina topic`): topic and
//! subscription life cycles, the exact event a function receives, filter policies, the
//! permission SNS needs with `--auth`, and malformed requests. Deliveries (HTTP endpoints,
//! destinations, crashes, throttles) are in `sns_delivery.rs`.

use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};
use serde_json::{Value, json};

use crate::helpers::*;

pub(crate) const HANDLERS: &[u8] = b"import json\n\
def show(event, context):\n    print('EVENT ' + json.dumps(event))\n    return 1\n\
def fail(event, context):\n    raise RuntimeError('intentional failure')\n\
def slow(event, context):\n    import time\n    time.sleep(0.2)\n    print('EVENT ' + json.dumps(event))\n    return 1\n";

pub(crate) async fn deploy(c: &Client, name: &str, handler: &str) -> String {
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
pub(crate) fn aws(endpoint: &str, key: (&str, &str), args: &[&str]) -> Result<Value, String> {
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

pub(crate) fn cli(endpoint: &str, args: &[&str]) -> Value {
    aws(endpoint, ("test", "test"), args).unwrap_or_else(|e| panic!("aws {args:?}: {e}"))
}

/// Runs a boto3 script (given `sns`, a client for `endpoint`) and parses the JSON it prints last.
pub(crate) fn boto3(endpoint: &str, key: (&str, &str), script: &str) -> Value {
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
pub(crate) fn verify_signature(message: &Value) {
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
pub(crate) async fn events(endpoint: &str, function: &str, n: usize) -> Vec<Value> {
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
pub(crate) fn messages(events: &[Value]) -> Vec<String> {
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
pub(crate) async fn counter(endpoint: &str, name: &str, label: &str) -> f64 {
    let text = metrics(endpoint).await;
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

    // The link in a function's event cannot unsubscribe it without a signature (the
    // subscription was made by a signed call).
    let link = reqwest::get(s["UnsubscribeUrl"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(link.status(), 403);
    assert!(
        link.text()
            .await
            .unwrap()
            .contains("<Code>AuthorizationError</Code>")
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
    // A deleted topic's series go with it.
    cli(&ep, &["sns", "delete-topic", "--topic-arn", &topic]);
    let text = metrics(&ep).await;
    assert!(!text.contains(&format!("topic=\"{topic}\"")), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_takes_at_most_200_filter_policies() {
    let app = spawn_app().await;
    let out = boto3(
        &app.endpoint(),
        ("test", "test"),
        r#"
from botocore.exceptions import ClientError
def refused(call):
    try:
        call()
        return None
    except ClientError as e:
        return [e.response['Error']['Code'], e.response['ResponseMetadata']['HTTPStatusCode'], e.response['Error']['Message']]
t = sns.create_topic(Name='many')['TopicArn']
fn = lambda i: 'arn:aws:lambda:us-east-1:000000000000:function:f%d' % i
policy = json.dumps({'k': ['v']})
arns = [sns.subscribe(TopicArn=t, Protocol='lambda', Endpoint=fn(i), Attributes={'FilterPolicy': policy}, ReturnSubscriptionArn=True)['SubscriptionArn'] for i in range(200)]
out = {'subscribe': refused(lambda: sns.subscribe(TopicArn=t, Protocol='lambda', Endpoint=fn(200), Attributes={'FilterPolicy': policy}))}
plain = sns.subscribe(TopicArn=t, Protocol='lambda', Endpoint=fn(200), ReturnSubscriptionArn=True)['SubscriptionArn']
set_policy = lambda: sns.set_subscription_attributes(SubscriptionArn=plain, AttributeName='FilterPolicy', AttributeValue=policy)
out['set'] = refused(set_policy)
sns.set_subscription_attributes(SubscriptionArn=arns[0], AttributeName='FilterPolicy', AttributeValue='')
out['set_after_one_went'] = refused(set_policy)
other = sns.create_topic(Name='other')['TopicArn']
out['other_topic'] = refused(lambda: sns.subscribe(TopicArn=other, Protocol='lambda', Endpoint=fn(0), Attributes={'FilterPolicy': policy}))
pages = sns.get_paginator('list_subscriptions_by_topic').paginate(TopicArn=t)
out['subscriptions'] = sum(len(p['Subscriptions']) for p in pages)
print(json.dumps(out))
"#,
    );
    let refused = &out["subscribe"];
    assert_eq!(refused[0], "FilterPolicyLimitExceeded", "{out}");
    assert_eq!(refused[1], 403, "{out}");
    assert!(refused[2].as_str().unwrap().contains("200"), "{out}");
    assert_eq!(out["set"][0], "FilterPolicyLimitExceeded", "{out}");
    assert_eq!(out["set_after_one_went"], Value::Null, "{out}");
    assert_eq!(out["other_topic"], Value::Null, "{out}");
    assert_eq!(out["subscriptions"], 201, "{out}");
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
    // Link-local addresses (cloud metadata services) are never delivered to.
    let (status, _, xml) = post("Action=Subscribe&TopicArn=arn:aws:sns:us-east-1:000000000000:real&Protocol=http&Endpoint=http://169.254.169.254/latest".into()).await;
    assert_eq!((status, code(&xml).as_str()), (400, "InvalidParameter"));
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
