//! CloudWatch Logs over function logs, through clients we did not write (boto3, the AWS CLI):
//! groups and streams of real invocations, `GetLogEvents` paged both ways, `FilterLogEvents`
//! with every kind of pattern and botocore's paginator, retention policies, deleting a group,
//! CloudWatch Logs' errors, and one account never seeing another's logs.
//!
//! Live tail sessions are in `logs_live_tail.rs`.
//!
//! The installed AWS CLI is v1, which has no `aws logs tail`; its `filter-log-events` and
//! `describe-log-groups` (which page through botocore's paginators) stand in for it.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};
use serde_json::{Value, json};

use crate::helpers::*;

/// Prints each of `event["lines"]` as one log line (objects as JSON).
const PRINTER: &[u8] = b"import json\n\
def handler(event, context):\n    for line in event.get('lines', []):\n        print(line if isinstance(line, str) else json.dumps(line))\n    return len(event.get('lines', []))\n";

/// How long any one client process may run.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs a command, killing it if it runs past `limit`.
fn run_timed(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the client starts");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the client ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// Runs a boto3 script with `logs`, a CloudWatch Logs client for `endpoint` (short timeouts,
/// no retries), and `err(f)`, which returns `[code, message]` of the error `f()` raises; parses
/// the JSON it prints last.
pub(crate) fn boto3(endpoint: &str, key: (&str, &str), script: &str) -> Value {
    let program = format!(
        "import boto3, json, sys, botocore.config, botocore.exceptions\n\
         cfg = botocore.config.Config(connect_timeout=5, read_timeout=20, retries={{'total_max_attempts': 1}})\n\
         logs = boto3.client('logs', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='{}', aws_secret_access_key='{}', config=cfg)\n\
         def err(f):\n    try:\n        f()\n    except botocore.exceptions.ClientError as e:\n        return [e.response['Error']['Code'], e.response['Error']['Message']]\n    raise AssertionError('no error')\n\
         {script}",
        key.0, key.1
    );
    let mut cmd = Command::new(python_venv().join("bin/python"));
    cmd.args(["-c", &program, endpoint])
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    let out = run_timed(cmd, CLIENT_TIMEOUT);
    assert!(
        out.status.success(),
        "boto3 script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or("null");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("boto3 printed non-JSON ({e}): {text}"))
}

/// Runs the AWS CLI; its JSON output, or its error text.
fn aws(endpoint: &str, args: &[&str]) -> Result<Value, String> {
    let mut cmd = Command::new(crate::awscli::aws_cli());
    cmd.args([
        "--endpoint-url",
        endpoint,
        "--region",
        "us-east-1",
        "--output",
        "json",
        "--cli-read-timeout",
        "20",
        "--cli-connect-timeout",
        "5",
    ])
    .args(args)
    .env("AWS_ACCESS_KEY_ID", "test")
    .env("AWS_SECRET_ACCESS_KEY", "test")
    .env("AWS_CONFIG_FILE", "/dev/null")
    .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    let out = run_timed(cmd, CLIENT_TIMEOUT);
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

pub(crate) async fn deploy(client: &Client, name: &str) -> String {
    let f = tokio::time::timeout(
        Duration::from_secs(60),
        client
            .create_function()
            .function_name(name)
            .runtime(Runtime::from(host_python().as_str()))
            .handler("app.handler")
            .role(ROLE)
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(zip_of(&[("app.py", PRINTER)])))
                    .build(),
            )
            .send(),
    )
    .await
    .expect("create in time")
    .unwrap_or_else(|e| panic!("create {name}: {}", describe(&e)));
    f.function_arn().unwrap().to_owned()
}

pub(crate) async fn invoke(client: &Client, name: &str, lines: Value) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        client
            .invoke()
            .function_name(name)
            .payload(Blob::new(json!({ "lines": lines }).to_string()))
            .send(),
    )
    .await
    .expect("invoke in time")
    .unwrap_or_else(|e| panic!("invoke {name}: {}", describe(&e)));
    assert!(out.function_error().is_none(), "{out:?}");
}

/// Waits until a function's stored log holds `n` REPORT lines (so every line of `n`
/// invocations is stored).
pub(crate) async fn wait_for_reports(endpoint: &str, function: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = tokio::time::timeout(Duration::from_secs(10), log_lines(endpoint, function))
            .await
            .expect("logs in time");
        if lines.iter().filter(|l| l.starts_with("REPORT ")).count() >= n {
            return lines;
        }
        assert!(Instant::now() < deadline, "{function} logged {lines:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_reads_groups_streams_and_events_of_real_invocations() {
    let app = spawn_app().await;
    let ep = app.endpoint();
    deploy(&app.client, "printer").await;
    deploy(&app.client, "quiet").await;
    invoke(
        &app.client,
        "printer",
        json!([
            "ERROR disk full",
            "WARN disk low",
            "INFO all good",
            "ERROR network down",
            "say \"hi\" there",
            r#"{"level": "ERROR", "latency": 1500, "user": "alice"}"#,
            r#"{"level": "INFO", "latency": 20, "user": "bob"}"#,
        ]),
    )
    .await;
    let many: Vec<Value> = (0..30).map(|i| json!(format!("line {i:02}"))).collect();
    invoke(&app.client, "printer", Value::Array(many)).await;
    let stored = wait_for_reports(&ep, "printer", 2).await;

    let out = boto3(
        &ep,
        ("test", "test"),
        r#"
G = '/aws/lambda/printer'
out = {}
out['groups'] = logs.describe_log_groups()['logGroups']
out['by_prefix'] = [g['logGroupName'] for g in logs.describe_log_groups(logGroupNamePrefix='/aws/lambda/pr')['logGroups']]
out['by_pattern'] = logs.describe_log_groups(logGroupNamePattern='quie')['logGroups']
out['group_pages'] = [[g['logGroupName'] for g in p['logGroups']] for p in logs.get_paginator('describe_log_groups').paginate(PaginationConfig={'PageSize': 1})]
streams = logs.describe_log_streams(logGroupName=G)['logStreams']
out['streams'] = streams
out['by_time'] = logs.describe_log_streams(logGroupName=G, orderBy='LastEventTime', descending=True)['logStreams']
stream = streams[0]['logStreamName']

# Everything, in one page: the reference the other reads are held to.
every = logs.filter_log_events(logGroupName=G)
out['every'] = every
assert 'nextToken' not in every, every.get('nextToken')

# GetLogEvents forward from the head, five at a time, until the token comes back unchanged.
fwd, token, pages = [], None, 0
while True:
    kw = {'nextToken': token} if token else {'startFromHead': True}
    r = logs.get_log_events(logGroupName=G, logStreamName=stream, limit=5, **kw)
    fwd += [e['message'] for e in r['events']]
    pages += 1
    assert pages < 100
    if r['nextForwardToken'] == token:
        break
    token = r['nextForwardToken']
out['forward'] = fwd
out['forward_token'] = token
# Backward from the newest page, until the backward token comes back unchanged.
r = logs.get_log_events(logGroupName=G, logStreamName=stream, limit=5)
out['newest'] = [e['message'] for e in r['events']]
back, token = [e['message'] for e in r['events']], r['nextBackwardToken']
while True:
    r = logs.get_log_events(logGroupName=G, logStreamName=stream, limit=5, nextToken=token)
    back = [e['message'] for e in r['events']] + back
    if r['nextBackwardToken'] == token:
        break
    token = r['nextBackwardToken']
out['backward'] = back
out['event_keys'] = sorted(logs.get_log_events(logGroupName=G, logStreamName=stream, limit=1)['events'][0].keys())
ts = [e['timestamp'] for e in every['events']]
# Start inclusive, end exclusive.
out['window'] = [e['timestamp'] for e in logs.get_log_events(logGroupName=G, logStreamName=stream, startTime=ts[1], endTime=ts[-1], startFromHead=True)['events']]
out['ts'] = ts

def f(p, **kw):
    return [e['message'] for e in logs.filter_log_events(logGroupName=G, filterPattern=p, **kw)['events']]
out['term'] = f('ERROR')
out['both'] = f('ERROR disk')
out['either'] = f('?WARN ?INFO')
out['not'] = f('disk -ERROR')
out['quoted'] = f('"say \\"hi\\""')
out['phrase'] = f('"network down"')
out['regex'] = f('%^(WARN|ERROR) (disk|network)%')
out['json'] = f('{ $.level = "ERROR" }')
out['json_num'] = f('{ $.latency > 100 }')
out['json_and'] = f('{ $.latency < 100 && $.user = "b*" }')
out['json_or'] = f('{ $.user = "alice" || $.user = "bob" }')
out['json_ne'] = f('{ $.level != "ERROR" }')
out['by_stream'] = f('ERROR', logStreamNames=[stream])
out['by_prefix_stream'] = f('ERROR', logStreamNamePrefix=stream[:8])
out['none_stream'] = f('ERROR', logStreamNamePrefix='nope')
out['filter_keys'] = sorted(every['events'][0].keys())
out['searched'] = every['searchedLogStreams']
# Inclusive start and end.
out['filter_window'] = [e['timestamp'] for e in logs.filter_log_events(logGroupName=G, startTime=ts[1], endTime=ts[1])['events']]

# The paginator over pages of five: every event once, no PaginationError.
paged, n = [], 0
for page in logs.get_paginator('filter_log_events').paginate(logGroupName=G, PaginationConfig={'PageSize': 5}):
    paged += page['events']
    n += 1
out['paged'] = paged
out['pages'] = n
paged_lines = [e['message'] for p in logs.get_paginator('filter_log_events').paginate(logGroupName=G, filterPattern='line', PaginationConfig={'PageSize': 4}) for e in p['events']]
out['paged_lines'] = paged_lines

out['errors'] = {
  'missing': err(lambda: logs.filter_log_events(logGroupName='/aws/lambda/nothing')),
  'missing_get': err(lambda: logs.get_log_events(logGroupName='/aws/lambda/nothing', logStreamName='x')),
  'missing_stream': err(lambda: logs.get_log_events(logGroupName=G, logStreamName='x')),
  'not_lambda': err(lambda: logs.describe_log_streams(logGroupName='/ecs/thing')),
  'limit': err(lambda: logs.get_log_events(logGroupName=G, logStreamName=stream, limit=10001)),
  'filter_limit': err(lambda: logs.filter_log_events(logGroupName=G, limit=10001)),
  'groups_limit': err(lambda: logs.describe_log_groups(limit=51)),
  'prefix_and_pattern': err(lambda: logs.describe_log_groups(logGroupNamePrefix='/aws', logGroupNamePattern='x')),
  'token': err(lambda: logs.filter_log_events(logGroupName=G, nextToken='garbage')),
  'pattern': err(lambda: logs.filter_log_events(logGroupName=G, filterPattern='ERROR (x)')),
  'json_pattern': err(lambda: logs.filter_log_events(logGroupName=G, filterPattern='{ $.a = }')),
  'name_and_arn': err(lambda: logs.describe_log_streams(logGroupName=G, logGroupIdentifier=G)),
  'order_prefix': err(lambda: logs.describe_log_streams(logGroupName=G, orderBy='LastEventTime', logStreamNamePrefix='2')),
}
print(json.dumps(out))
"#,
    );

    // Groups: both functions, with AWS's members.
    let groups = out["groups"].as_array().unwrap();
    let names: Vec<&str> = groups
        .iter()
        .map(|g| g["logGroupName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/aws/lambda/printer", "/aws/lambda/quiet"]);
    let g = &groups[0];
    let arn = "arn:aws:logs:us-east-1:000000000000:log-group:/aws/lambda/printer";
    assert_eq!(g["arn"], format!("{arn}:*"));
    assert_eq!(g["logGroupArn"], arn);
    assert!(g["storedBytes"].as_i64().unwrap() > 0, "{g}");
    assert!(
        g["creationTime"].as_i64().unwrap() > 1_600_000_000_000,
        "{g}"
    );
    assert_eq!(g["logGroupClass"], "STANDARD");
    assert!(g.get("retentionInDays").is_none(), "{g}");
    assert_eq!(groups[1]["storedBytes"], 0);
    assert_eq!(out["by_prefix"], json!(["/aws/lambda/printer"]));
    assert_eq!(
        out["by_pattern"],
        json!([{
            "logGroupName": "/aws/lambda/quiet",
            "creationTime": groups[1]["creationTime"],
            "arn": "arn:aws:logs:us-east-1:000000000000:log-group:/aws/lambda/quiet:*",
        }])
    );
    assert_eq!(
        out["group_pages"],
        json!([["/aws/lambda/printer"], ["/aws/lambda/quiet"]])
    );

    // Streams: one per environment, named as Lambda names them.
    let streams = out["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 1, "{streams:?}");
    let s = &streams[0];
    let name = s["logStreamName"].as_str().unwrap();
    let (date, rest) = name.split_at(11);
    assert!(
        date.len() == 11 && date.chars().filter(|c| *c == '/').count() == 3,
        "{name}"
    );
    let hex = rest
        .strip_prefix("[$LATEST]")
        .unwrap_or_else(|| panic!("{name}"));
    assert!(
        hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{name}"
    );
    assert!(s["firstEventTimestamp"].as_i64() <= s["lastEventTimestamp"].as_i64());
    assert_eq!(s["lastIngestionTime"], s["lastEventTimestamp"]);
    assert_eq!(s["arn"], format!("{arn}:log-stream:{name}"));
    assert_eq!(out["by_time"][0]["logStreamName"], name);

    // Every stored line, once, in order, with the members `aws logs tail` needs.
    let every: Vec<&Value> = out["every"]["events"].as_array().unwrap().iter().collect();
    let messages: Vec<&str> = every
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    // The same lines as `lamina logs` reads (which orders by arrival, not time).
    let (mut sorted, mut expected) = (messages.clone(), stored.clone());
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected, "FilterLogEvents against the stored log");
    assert!(messages.contains(&"line 29"));
    assert_eq!(
        out["filter_keys"],
        json!([
            "eventId",
            "ingestionTime",
            "logStreamName",
            "message",
            "timestamp"
        ])
    );
    assert_eq!(out["searched"], json!([]));
    let ids: std::collections::HashSet<&str> = every
        .iter()
        .map(|e| e["eventId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), every.len(), "event ids are unique");
    assert!(ids.iter().all(|i| i.bytes().all(|b| b.is_ascii_digit())));

    // GetLogEvents, both ways, with the same token at either end.
    assert_eq!(out["forward"], json!(messages));
    assert_eq!(out["backward"], json!(messages));
    assert_eq!(out["newest"], json!(messages[messages.len() - 5..]));
    assert!(
        out["forward_token"].as_str().unwrap().starts_with("f/"),
        "{}",
        out["forward_token"]
    );
    assert_eq!(
        out["event_keys"],
        json!(["ingestionTime", "message", "timestamp"])
    );
    let ts: Vec<i64> = out["ts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap())
        .collect();
    let window: Vec<i64> = ts
        .iter()
        .copied()
        .filter(|t| *t >= ts[1] && *t < ts[ts.len() - 1])
        .collect();
    assert_eq!(out["window"], json!(window));
    let at_one: Vec<i64> = ts.iter().copied().filter(|t| *t == ts[1]).collect();
    assert_eq!(out["filter_window"], json!(at_one));

    // Filter patterns.
    let alice = r#"{"level": "ERROR", "latency": 1500, "user": "alice"}"#;
    let bob = r#"{"level": "INFO", "latency": 20, "user": "bob"}"#;
    assert_eq!(
        out["term"],
        json!(["ERROR disk full", "ERROR network down", alice])
    );
    assert_eq!(out["both"], json!(["ERROR disk full"]));
    assert_eq!(
        out["either"],
        json!(["WARN disk low", "INFO all good", bob])
    );
    assert_eq!(out["not"], json!(["WARN disk low"]));
    assert_eq!(out["quoted"], json!(["say \"hi\" there"]));
    assert_eq!(out["phrase"], json!(["ERROR network down"]));
    assert_eq!(
        out["regex"],
        json!(["ERROR disk full", "WARN disk low", "ERROR network down"]),
        "{out}"
    );
    assert_eq!(out["json"], json!([alice]));
    assert_eq!(out["json_num"], json!([alice]));
    assert_eq!(out["json_and"], json!([bob]));
    assert_eq!(out["json_or"], json!([alice, bob]));
    assert_eq!(out["json_ne"], json!([bob]));
    assert_eq!(out["by_stream"], out["term"]);
    assert_eq!(out["by_prefix_stream"], out["term"]);
    assert_eq!(out["none_stream"], json!([]));

    // The paginator: pages of five, every event exactly once, in order.
    assert_eq!(out["paged"], out["every"]["events"]);
    assert!(out["pages"].as_u64().unwrap() >= every.len() as u64 / 5);
    let lines: Vec<String> = (0..30).map(|i| format!("line {i:02}")).collect();
    assert_eq!(out["paged_lines"], json!(lines));

    // Errors, in CloudWatch Logs' words.
    let e = &out["errors"];
    let not_found = json!([
        "ResourceNotFoundException",
        "The specified log group does not exist."
    ]);
    assert_eq!(e["missing"], not_found);
    assert_eq!(e["missing_get"], not_found);
    assert_eq!(e["not_lambda"], not_found);
    assert_eq!(
        e["missing_stream"],
        json!([
            "ResourceNotFoundException",
            "The specified log stream does not exist."
        ])
    );
    let too_many = json!([
        "InvalidParameterException",
        "1 validation error detected: Value '10001' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 10000"
    ]);
    assert_eq!(e["limit"], too_many);
    assert_eq!(e["filter_limit"], too_many);
    assert_eq!(e["groups_limit"][0], "InvalidParameterException");
    assert_eq!(
        e["prefix_and_pattern"],
        json!([
            "InvalidParameterException",
            "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters."
        ])
    );
    assert_eq!(
        e["token"],
        json!([
            "InvalidParameterException",
            "The specified nextToken is invalid."
        ])
    );
    assert_eq!(
        e["pattern"],
        json!([
            "InvalidParameterException",
            "Invalid character(s) in term '(x)'"
        ])
    );
    assert_eq!(e["json_pattern"][0], "InvalidParameterException");
    assert_eq!(
        e["name_and_arn"],
        json!([
            "ValidationException",
            "LogGroup name and LogGroup ARN are mutually exclusive parameters."
        ])
    );
    assert_eq!(e["order_prefix"][0], "InvalidParameterException");

    // An operation this server does not implement, over plain HTTP.
    let resp = reqwest::Client::new()
        .post(&ep)
        .header("x-amz-target", "Logs_20140328.PutLogEvents")
        .header("content-type", "application/x-amz-json-1.1")
        .body("{}")
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["__type"], "UnknownOperationException", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_policies_and_deleting_a_group() {
    let app = spawn_app().await;
    let ep = app.endpoint();
    deploy(&app.client, "kept").await;
    invoke(&app.client, "kept", json!(["first", "second"])).await;
    wait_for_reports(&ep, "kept", 1).await;
    let out = boto3(
        &ep,
        ("test", "test"),
        r#"
G = '/aws/lambda/kept'
arn = 'arn:aws:logs:us-east-1:000000000000:log-group:' + G
out = {}
logs.put_retention_policy(logGroupName=G, retentionInDays=14)
out['set'] = logs.describe_log_groups(logGroupNamePrefix=G)['logGroups'][0]
out['bad'] = err(lambda: logs.put_retention_policy(logGroupName=G, retentionInDays=2))
out['missing'] = err(lambda: logs.put_retention_policy(logGroupName='/aws/lambda/none', retentionInDays=7))
logs.delete_retention_policy(logGroupName=G)
out['unset'] = logs.describe_log_groups(logGroupNamePrefix=G)['logGroups'][0]
# By ARN, with and without ':*'.
out['by_arn'] = len(logs.filter_log_events(logGroupIdentifier=arn, filterPattern='first')['events'])
out['by_arn_star'] = len(logs.describe_log_streams(logGroupIdentifier=arn + ':*')['logStreams'])
out['before'] = [e['message'] for e in logs.filter_log_events(logGroupName=G, filterPattern='?first ?second')['events']]
logs.delete_log_group(logGroupName=G)
out['after'] = logs.filter_log_events(logGroupName=G)['events']
out['streams_after'] = logs.describe_log_streams(logGroupName=G)['logStreams']
out['group_after'] = logs.describe_log_groups(logGroupNamePrefix=G)['logGroups'][0]
out['delete_missing'] = err(lambda: logs.delete_log_group(logGroupName='/aws/lambda/none'))
print(json.dumps(out))
"#,
    );
    assert_eq!(out["set"]["retentionInDays"], 14, "{}", out["set"]);
    assert_eq!(out["bad"][0], "InvalidParameterException");
    assert!(
        out["bad"][1]
            .as_str()
            .unwrap()
            .contains("Member must satisfy enum value set: [1, 3, 5, 7, 14, 30"),
        "{}",
        out["bad"]
    );
    assert_eq!(out["missing"][0], "ResourceNotFoundException");
    assert!(
        out["unset"].get("retentionInDays").is_none(),
        "{}",
        out["unset"]
    );
    assert_eq!(out["by_arn"], 1);
    assert_eq!(out["by_arn_star"], 1);
    assert_eq!(out["before"], json!(["first", "second"]));
    // The lines are gone; the group stays while its function exists, empty.
    assert_eq!(out["after"], json!([]));
    assert_eq!(out["streams_after"], json!([]));
    assert_eq!(out["group_after"]["storedBytes"], 0);
    assert_eq!(
        out["delete_missing"],
        json!([
            "ResourceNotFoundException",
            "The specified log group does not exist."
        ])
    );
    let lines = tokio::time::timeout(Duration::from_secs(10), log_lines(&ep, "kept"))
        .await
        .unwrap();
    assert!(lines.is_empty(), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_describes_groups_and_filters_events() {
    let app = spawn_app().await;
    let ep = app.endpoint();
    deploy(&app.client, "cli-fn").await;
    let lines: Vec<Value> = (0..25)
        .map(|i| json!(format!("req {i} status=200")))
        .collect();
    invoke(&app.client, "cli-fn", Value::Array(lines)).await;
    invoke(&app.client, "cli-fn", json!(["boom ERROR here"])).await;
    wait_for_reports(&ep, "cli-fn", 2).await;

    let groups = aws(&ep, &["logs", "describe-log-groups"]).unwrap();
    assert_eq!(
        groups["logGroups"][0]["logGroupName"], "/aws/lambda/cli-fn",
        "{groups}"
    );
    // The CLI follows nextToken through every page of three.
    let found = aws(
        &ep,
        &[
            "logs",
            "filter-log-events",
            "--log-group-name",
            "/aws/lambda/cli-fn",
            "--filter-pattern",
            "req",
            "--page-size",
            "3",
        ],
    )
    .unwrap();
    let messages: Vec<&str> = found["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..25).map(|i| format!("req {i} status=200")).collect();
    assert_eq!(messages, expected);
    let errors = aws(
        &ep,
        &[
            "logs",
            "filter-log-events",
            "--log-group-name",
            "/aws/lambda/cli-fn",
            "--filter-pattern",
            "ERROR",
        ],
    )
    .unwrap();
    assert_eq!(errors["events"][0]["message"], "boom ERROR here");
    assert_eq!(errors["events"].as_array().unwrap().len(), 1);
    let missing = aws(
        &ep,
        &[
            "logs",
            "describe-log-streams",
            "--log-group-name",
            "/aws/lambda/none",
        ],
    )
    .unwrap_err();
    assert!(
        missing.contains("ResourceNotFoundException")
            && missing.contains("The specified log group does not exist."),
        "{missing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_account_sees_none_of_the_logs() {
    let app = spawn_app_with(crate::sdk_auth::AUTH).await;
    let ep = app.endpoint();
    let alice = sdk_client(&ep, "AKIDALICE", "alice-secret", "us-east-1");
    deploy(&alice, "private").await;
    invoke(&alice, "private", json!(["secret line"])).await;
    let seen = boto3(
        &ep,
        ("AKIDALICE", "alice-secret"),
        r#"
import time
deadline = time.time() + 30
while True:
    ev = logs.filter_log_events(logGroupName='/aws/lambda/private', filterPattern='REPORT')['events']
    if ev or time.time() > deadline:
        break
    time.sleep(0.1)
groups = [g['logGroupName'] for g in logs.describe_log_groups()['logGroups']]
secret = [e['message'] for e in logs.filter_log_events(logGroupName='/aws/lambda/private', filterPattern='secret')['events']]
print(json.dumps({'groups': groups, 'secret': secret}))
"#,
    );
    assert_eq!(seen["groups"], json!(["/aws/lambda/private"]));
    assert_eq!(seen["secret"], json!(["secret line"]));

    let bob = boto3(
        &ep,
        ("AKIDBOB", "bob-secret"),
        r#"
arn = 'arn:aws:logs:us-east-1:111111111111:log-group:/aws/lambda/private'
print(json.dumps({
  'groups': logs.describe_log_groups()['logGroups'],
  'by_name': err(lambda: logs.filter_log_events(logGroupName='/aws/lambda/private')),
  'by_arn': err(lambda: logs.filter_log_events(logGroupIdentifier=arn)),
  'streams': err(lambda: logs.describe_log_streams(logGroupIdentifier=arn + ':*')),
  'delete': err(lambda: logs.delete_log_group(logGroupName='/aws/lambda/private')),
}))
"#,
    );
    assert_eq!(bob["groups"], json!([]));
    for what in ["by_name", "by_arn", "streams", "delete"] {
        assert_eq!(
            bob[what][0], "ResourceNotFoundException",
            "{what}: {}",
            bob[what]
        );
    }
    // A wrong secret is refused before anything is read.
    let forged = boto3(
        &ep,
        ("AKIDBOB", "wrong"),
        "print(json.dumps(err(lambda: logs.describe_log_groups())))",
    );
    assert_eq!(forged[0], "InvalidSignatureException", "{forged}");
    // Alice's lines are still all there.
    let again = boto3(
        &ep,
        ("AKIDALICE", "alice-secret"),
        "print(json.dumps([e['message'] for e in logs.filter_log_events(logGroupName='/aws/lambda/private', filterPattern='secret')['events']]))",
    );
    assert_eq!(again, json!(["secret line"]));
}
