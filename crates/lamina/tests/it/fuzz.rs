//! Fuzzing every wire decoder of a real server: random bytes, random JSON and mutated valid
//! requests at every route with a body (Lambda, function URLs, API Gateway), random query
//! strings, random `Authorization` headers, random SNS and EC2 actions and CloudWatch Logs
//! operations, and random requests to
//! the HTTP gateways. Each answer must be a client error with an AWS error type (or a success), never a
//! 500 or a dropped connection, and the server must keep serving. The zip extractor and the
//! SigV4 parser have their own property tests in their crates.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::helpers::*;

/// (method, path) of every route that decodes a body, with a valid body to mutate.
fn routes() -> Vec<(&'static str, &'static str, serde_json::Value)> {
    use serde_json::json;
    vec![
        (
            "POST",
            "/2015-03-31/functions",
            json!({"FunctionName": "f", "Runtime": "provided.al2023", "Role": ROLE, "Handler": "x",
                   "Code": {"ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="}, "MemorySize": 128,
                   "Environment": {"Variables": {"AB": "c"}}, "Tags": {"k": "v"}}),
        ),
        (
            "PUT",
            "/2015-03-31/functions/fz/configuration",
            json!({"MemorySize": 256, "Timeout": 5, "Layers": [], "EphemeralStorage": {"Size": 1024}}),
        ),
        (
            "PUT",
            "/2015-03-31/functions/fz/code",
            json!({"ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==", "DryRun": true}),
        ),
        (
            "POST",
            "/2015-03-31/functions/fz/invocations",
            json!({"any": ["json", 1, null]}),
        ),
        (
            "POST",
            "/2015-03-31/functions/fz/versions",
            json!({"Description": "d", "RevisionId": "r"}),
        ),
        (
            "POST",
            "/2015-03-31/functions/fz/aliases",
            json!({"Name": "live", "FunctionVersion": "1",
                   "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.5}}}),
        ),
        (
            "PUT",
            "/2015-03-31/functions/fz/aliases/live",
            json!({"FunctionVersion": "$LATEST"}),
        ),
        (
            "POST",
            "/2018-10-31/layers/lz/versions",
            json!({"Content": {"ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="},
                   "CompatibleRuntimes": ["python3.12"]}),
        ),
        (
            "POST",
            "/2018-10-31/layers/lz/versions/1/policy",
            json!({"StatementId": "s", "Action": "lambda:GetLayerVersion", "Principal": "*"}),
        ),
        (
            "PUT",
            "/2017-10-31/functions/fz/concurrency",
            json!({"ReservedConcurrentExecutions": 3}),
        ),
        (
            "POST",
            "/2017-03-31/tags/arn:aws:lambda:us-east-1:000000000000:function:fz",
            json!({"Tags": {"a": "b"}}),
        ),
        (
            "PUT",
            "/2019-09-25/functions/fz/event-invoke-config",
            json!({"MaximumRetryAttempts": 1, "MaximumEventAgeInSeconds": 60,
                   "DestinationConfig": {"OnFailure": {"Destination": "arn:aws:lambda:us-east-1:000000000000:function:g"}}}),
        ),
        (
            "POST",
            "/2019-09-25/functions/fz/event-invoke-config",
            json!({"MaximumRetryAttempts": 0}),
        ),
        (
            "POST",
            "/2015-03-31/functions/fz/policy",
            json!({"StatementId": "s", "Action": "lambda:InvokeFunction", "Principal": "sns.amazonaws.com",
                   "SourceArn": "arn:aws:sns:us-east-1:000000000000:t", "SourceAccount": "000000000000"}),
        ),
        (
            "POST",
            "/2014-11-13/functions/fz/invoke-async",
            json!({"legacy": true}),
        ),
        (
            "POST",
            "/2021-10-31/functions/fz/url",
            json!({"AuthType": "NONE", "Cors": {"AllowOrigins": ["*"], "AllowMethods": ["GET"], "MaxAge": 5}}),
        ),
        (
            "PUT",
            "/2021-10-31/functions/fz/url",
            json!({"AuthType": "AWS_IAM", "Cors": {"ExposeHeaders": ["x"]}, "InvokeMode": "BUFFERED"}),
        ),
        // API Gateway v2; `API` is the id of an API made for the run.
        (
            "POST",
            "/v2/apis",
            json!({"name": "n", "protocolType": "HTTP", "target": FZ, "routeKey": "GET /a"}),
        ),
        (
            "PATCH",
            "/v2/apis/API",
            json!({"name": "m", "corsConfiguration": {"allowOrigins": ["*"], "maxAge": 5}, "routeKey": "GET /b"}),
        ),
        (
            "POST",
            "/v2/apis/API/routes",
            json!({"routeKey": "GET /x/{y}", "authorizationType": "NONE", "target": "integrations/x"}),
        ),
        (
            "POST",
            "/v2/apis/API/integrations",
            json!({"integrationType": "AWS_PROXY", "integrationUri": FZ, "payloadFormatVersion": "2.0", "timeoutInMillis": 1000}),
        ),
        (
            "POST",
            "/v2/apis/API/authorizers",
            json!({"authorizerType": "REQUEST", "name": "a", "identitySource": ["$request.header.Authorization"],
                   "authorizerUri": FZ, "authorizerPayloadFormatVersion": "2.0", "enableSimpleResponses": true,
                   "authorizerResultTtlInSeconds": 5}),
        ),
        (
            "POST",
            "/v2/apis/API/stages",
            json!({"stageName": "s1", "autoDeploy": true, "stageVariables": {"a": "b"}}),
        ),
        (
            "POST",
            "/v2/apis/API/deployments",
            json!({"stageName": "s1", "description": "d"}),
        ),
        (
            "POST",
            "/v2/tags/arn:aws:apigateway:us-east-1::%2Fapis%2FAPI",
            json!({"tags": {"k": "v"}}),
        ),
    ]
}

const FZ: &str = "arn:aws:lambda:us-east-1:000000000000:function:fz";

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        ".{0,40}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    "[A-Z][a-zA-Z]{0,20}",
                    Just("FunctionName".to_owned()),
                    Just("Code".to_owned()),
                    Just("MemorySize".to_owned()),
                    Just("Environment".to_owned()),
                    Just("Layers".to_owned()),
                ],
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A body: random bytes, random JSON, or a valid request with one field replaced.
fn body(valid: serde_json::Value) -> impl Strategy<Value = Vec<u8>> {
    let fields: Vec<String> = valid
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        (prop::sample::select(fields.clone()), json_value()).prop_map(move |(k, v)| {
            let mut m = valid.clone();
            m[k] = v;
            serde_json::to_vec(&m).unwrap()
        }),
    ]
}

/// Sends one request; the answer must be a well-formed success or client error.
async fn check(
    http: &reqwest::Client,
    endpoint: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<(), TestCaseError> {
    let mut req = http.request(method.parse().unwrap(), format!("{endpoint}{path}"));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req
        .body(body)
        .send()
        .await
        .map_err(|e| TestCaseError::fail(format!("{method} {path}: no answer: {e}")))?;
    let status = resp.status().as_u16();
    let error_type = resp
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let text = resp.text().await.unwrap_or_default();
    prop_assert!(status < 500, "{method} {path} answered {status}: {text}");
    if status >= 400 {
        prop_assert!(
            error_type.is_some(),
            "{method} {path}: {status} without an error type: {text}"
        );
    }
    Ok(())
}

#[test]
fn every_decoder_answers_garbage_with_a_client_error() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = rt.block_on(spawn_app());
    let endpoint = app.endpoint();
    let http = reqwest::Client::new();
    // The function the per-function routes act on exists (with no code worth running).
    rt.block_on(create(&app.client, "fz", shell_runtime_zip()));
    // A runner counts its cases: one per property.
    let runner = || {
        TestRunner::new(Config {
            cases: 100,
            failure_persistence: None,
            ..Config::default()
        })
    };
    let api: serde_json::Value = rt.block_on(async {
        http.post(format!("{endpoint}/v2/apis"))
            .body(serde_json::json!({"name": "fz", "protocolType": "HTTP"}).to_string())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let api_id = api["apiId"].as_str().unwrap().to_owned();
    for (method, path, valid) in routes() {
        let path = path.replace("API", &api_id);
        runner()
            .run(&body(valid), |bytes| {
                rt.block_on(check(&http, &endpoint, method, &path, &[], bytes))
            })
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    }
    // Query strings and the SigV4 header: every route that reads them.
    let query = "[ -~]{0,60}";
    runner()
        .run(&query, |q| {
            let q = q.replace(' ', "%20").replace('#', "%23");
            rt.block_on(async {
                for path in [
                    "/2015-03-31/functions",
                    "/2015-03-31/functions/fz/versions",
                    "/2019-09-25/functions/fz/event-invoke-config/list",
                    "/2015-03-31/functions/fz/policy",
                    "/2018-10-31/layers",
                    "/_lamina/logs/fz",
                    "/_lamina/bill",
                    "/_lamina/metrics/history",
                    "/_lamina/metrics/history/fz",
                    "/2021-10-31/functions/fz/urls",
                    "/v2/apis",
                    "/v2/apis/API/routes",
                ] {
                    let path = path.replace("API", &api_id);
                    check(&http, &endpoint, "GET", &format!("{path}?{q}"), &[], vec![]).await?;
                }
                check(
                    &http,
                    &endpoint,
                    "DELETE",
                    &format!("/v2/tags/x?{q}"),
                    &[],
                    vec![],
                )
                .await?;
                Ok(())
            })
        })
        .unwrap();
    let authorization = "AWS4-HMAC-SHA256 [ -~]{0,120}";
    runner()
        .run(&authorization, |auth| {
            rt.block_on(check(
                &http,
                &endpoint,
                "GET",
                "/2015-03-31/functions",
                &[
                    ("authorization", auth),
                    ("x-amz-date", "20261129T000000Z".into()),
                ],
                vec![],
            ))
        })
        .unwrap();
    // SNS: random actions with random and plausible parameters, as forms and as links.
    rt.block_on(async {
        http.post(format!("{endpoint}/"))
            .body("Action=CreateTopic&Name=fz")
            .header("content-type", "application/x-www-form-urlencoded")
            .send()
            .await
            .unwrap();
    });
    runner()
        .run(&sns_request(), |(action, pairs, as_link)| {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("Action", action);
            for (k, v) in &pairs {
                form.append_pair(k, v);
            }
            let encoded = form.finish();
            rt.block_on(async {
                let req = if as_link {
                    http.get(format!("{endpoint}/?{encoded}"))
                } else {
                    http.post(format!("{endpoint}/"))
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(encoded)
                };
                let resp = req
                    .send()
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{action}: no answer: {e}")))?;
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                prop_assert!(status < 500, "{action} {pairs:?} answered {status}: {text}");
                if status >= 400 {
                    prop_assert!(
                        text.starts_with("<ErrorResponse") && text.contains("<Code>"),
                        "{action}: {status} without an SNS error: {text}"
                    );
                }
                Ok(())
            })
        })
        .unwrap();
    // EC2: random actions with random and plausible parameters (real ids among them), signed
    // for the `ec2` scope (verification is off: the scope picks the service).
    let ec2 = |form: String| {
        http.post(format!("{endpoint}/"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=test/20261129/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature={}",
                    "0".repeat(64)
                ),
            )
            .body(form)
    };
    let made: Vec<String> = rt.block_on(async {
        let make = |form: String, tag: &'static str| {
            let req = ec2(form);
            async move { between(&req.send().await.unwrap().text().await.unwrap(), tag) }
        };
        let vpc = make("Action=CreateVpc&CidrBlock=10.9.0.0%2F16".into(), "vpcId").await;
        let subnet = make(
            format!("Action=CreateSubnet&VpcId={vpc}&CidrBlock=10.9.1.0%2F24"),
            "subnetId",
        )
        .await;
        let group = make(
            format!("Action=CreateSecurityGroup&VpcId={vpc}&GroupName=fz&GroupDescription=fz"),
            "groupId",
        )
        .await;
        vec![vpc, subnet, group]
    });
    runner()
        .run(&ec2_request(made), |(action, pairs)| {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("Action", action);
            for (k, v) in &pairs {
                form.append_pair(k, v);
            }
            rt.block_on(async {
                let resp = ec2(form.finish())
                    .send()
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{action}: no answer: {e}")))?;
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                prop_assert!(status < 500, "{action} {pairs:?} answered {status}: {text}");
                if status >= 400 {
                    prop_assert!(
                        text.starts_with("<Response><Errors><Error><Code>"),
                        "{action}: {status} without an EC2 error: {text}"
                    );
                } else {
                    prop_assert!(
                        text.starts_with(&format!("<{action}Response")),
                        "{action}: {text}"
                    );
                }
                Ok(())
            })
        })
        .unwrap();
    // CloudWatch Logs: random operations with random and plausible members (the function's
    // group among them), as JSON objects or garbage. `StartLiveTail` is left out: a session
    // that starts streams for hours.
    runner()
        .run(&logs_request(), |(op, body)| {
            rt.block_on(async {
                let resp = http
                    .post(format!("{endpoint}/"))
                    .header("x-amz-target", format!("Logs_20140328.{op}"))
                    .header("content-type", "application/x-amz-json-1.1")
                    .body(body.clone())
                    .send()
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{op}: no answer: {e}")))?;
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                let body = String::from_utf8_lossy(&body);
                prop_assert!(status < 500, "{op} {body} answered {status}: {text}");
                let v: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|_| TestCaseError::fail(format!("{op} {body}: not JSON: {text}")))?;
                if status >= 400 {
                    prop_assert!(
                        v["__type"].is_string() && v["message"].is_string(),
                        "{op} {body}: {status} without a CloudWatch Logs error: {text}"
                    );
                }
                Ok(())
            })
        })
        .unwrap();
    // The gateways: random methods, paths, hosts and headers never get a 500 from a gateway
    // that has nothing to run (no URL or API by that id, no stage, no route).
    let gateway = (
        prop::sample::select(vec!["GET", "POST", "OPTIONS", "DELETE", "PATCH"]),
        "(/[ -~&&[^?#/%]]{0,12}){0,4}",
        prop::sample::select(vec![true, false]),
        "[a-z0-9]{0,40}",
    );
    runner()
        .run(&gateway, |(method, path, by_host, id)| {
            let path = path.replace(' ', "%20");
            let (url, host) = if by_host {
                (
                    format!("{endpoint}{path}"),
                    format!("{id}.execute-api.localhost"),
                )
            } else {
                (
                    format!("{endpoint}/_aws/lambda-url/{id}{path}"),
                    "127.0.0.1".to_owned(),
                )
            };
            rt.block_on(async {
                let resp = http
                    .request(method.parse().unwrap(), &url)
                    .header("host", host)
                    .header("origin", "https://x.example")
                    .header("access-control-request-method", "GET")
                    .send()
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{method} {url}: no answer: {e}")))?;
                let status = resp.status().as_u16();
                prop_assert!(status < 500, "{method} {url} answered {status}");
                Ok(())
            })
        })
        .unwrap();
    // Still serving.
    rt.block_on(async {
        app.client.list_functions().send().await.unwrap();
    });
    drop(app);
}

/// An SNS action with parameters drawn from its real names (some malformed) and values from
/// garbage and plausible ones; sent as a form, or as a link.
fn sns_request() -> impl Strategy<Value = (&'static str, Vec<(String, String)>, bool)> {
    let actions = prop::sample::select(vec![
        "CreateTopic",
        "DeleteTopic",
        "ListTopics",
        "GetTopicAttributes",
        "SetTopicAttributes",
        "Subscribe",
        "ConfirmSubscription",
        "Unsubscribe",
        "ListSubscriptions",
        "ListSubscriptionsByTopic",
        "GetSubscriptionAttributes",
        "SetSubscriptionAttributes",
        "Publish",
        "PublishBatch",
        "TagResource",
        "UntagResource",
        "ListTagsForResource",
        "Nope",
    ]);
    let keys = prop::sample::select(vec![
        "Name",
        "TopicArn",
        "TargetArn",
        "Protocol",
        "Endpoint",
        "Message",
        "Subject",
        "MessageStructure",
        "Attributes.entry.1.key",
        "Attributes.entry.1.value",
        "Attributes.entry.0.key",
        "Tags.member.1.Key",
        "Tags.member.1.Value",
        "Tags.member.x.Key",
        "MessageAttributes.entry.1.Name",
        "MessageAttributes.entry.1.Value.DataType",
        "MessageAttributes.entry.1.Value.StringValue",
        "MessageAttributes.entry.1.Value.BinaryValue",
        "PublishBatchRequestEntries.member.1.Id",
        "PublishBatchRequestEntries.member.1.Message",
        "PublishBatchRequestEntries.member.2.Id",
        "SubscriptionArn",
        "AttributeName",
        "AttributeValue",
        "NextToken",
        "Token",
        "ResourceArn",
        "TagKeys.member.1",
        "MessageGroupId",
        "MessageDeduplicationId",
        "ReturnSubscriptionArn",
        "Junk.1.2.3",
    ])
    .prop_map(str::to_owned);
    let values = prop_oneof![
        "[ -~]{0,40}",
        Just("arn:aws:sns:us-east-1:000000000000:fz".to_string()),
        Just(
            "arn:aws:sns:us-east-1:000000000000:fz:00000000-0000-0000-0000-000000000000"
                .to_string()
        ),
        Just("arn:aws:lambda:us-east-1:000000000000:function:fz".to_string()),
        Just("http://127.0.0.1:9/hook".to_string()),
        prop::sample::select(vec![
            "lambda",
            "http",
            "sqs",
            "true",
            "json",
            "String",
            "Number",
            "Binary",
            "String.Array",
            "FilterPolicy",
            "FilterPolicyScope",
            "MessageBody",
            "RawMessageDelivery",
            "DeliveryPolicy",
            r#"{"a":[{"numeric":[">",1]}]}"#,
            r#"{"default":"x"}"#,
            "[1,2",
            "DisplayName",
            "Policy",
            "FifoTopic",
        ])
        .prop_map(str::to_owned),
    ];
    (
        actions,
        prop::collection::vec((keys, values), 0..8),
        any::<bool>(),
    )
}

/// The text of the first `<tag>` element of an XML answer.
fn between(xml: &str, tag: &str) -> String {
    let start = xml
        .find(&format!("<{tag}>"))
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"))
        + tag.len()
        + 2;
    let end = xml[start..].find('<').unwrap() + start;
    xml[start..end].to_owned()
}

/// An EC2 action with parameters drawn from its real names (some malformed) and values from
/// garbage, plausible ones and the ids of real objects (`ids`).
fn ec2_request(ids: Vec<String>) -> impl Strategy<Value = (&'static str, Vec<(String, String)>)> {
    // Every action the server answers, and one it does not.
    let mut known = lamina_api::ec2::ACTIONS.to_vec();
    known.push("RunInstances");
    let actions = prop::sample::select(known);
    let keys = prop::sample::select(vec![
        "VpcId",
        "VpcId.1",
        "SubnetId",
        "SubnetId.1",
        "GroupId",
        "GroupId.1",
        "GroupName",
        "GroupDescription",
        "CidrBlock",
        "AvailabilityZone",
        "NatGatewayId",
        "NatGatewayId.1",
        "ConnectivityType",
        "ResourceId.1",
        "Tag.1.Key",
        "Tag.1.Value",
        "Tag.0.Key",
        "Filter.1.Name",
        "Filter.1.Value.1",
        "Filter.x.Name",
        "TagSpecification.1.ResourceType",
        "TagSpecification.1.Tag.1.Key",
        "TagSpecification.1.Tag.1.Value",
        "IpPermissions.1.IpProtocol",
        "IpPermissions.1.FromPort",
        "IpPermissions.1.ToPort",
        "IpPermissions.1.IpRanges.1.CidrIp",
        "IpPermissions.1.Ipv6Ranges.1.CidrIpv6",
        "IpPermissions.1.Groups.1.GroupId",
        "IpProtocol",
        "FromPort",
        "ToPort",
        "CidrIp",
        "SecurityGroupRuleId.1",
        "DryRun",
        "AttributeName.1",
        "Junk.1.2.3",
    ])
    .prop_map(str::to_owned);
    let values = prop_oneof![
        "[ -~]{0,40}",
        prop::sample::select(ids),
        prop::sample::select(vec![
            "10.9.2.0/24",
            "10.9.0.0/16",
            "0.0.0.0/0",
            "10.9.1.0/24",
            "::/0",
            "tcp",
            "-1",
            "icmp",
            "udp",
            "5432",
            "-1",
            "70000",
            "vpc-id",
            "tag:lamina:interface",
            "lamina:interface",
            "br-db",
            "subnet",
            "vpc",
            "public",
            "private",
            "true",
            "us-east-1a",
            "default",
        ])
        .prop_map(str::to_owned),
    ];
    (actions, prop::collection::vec((keys, values), 0..8))
}

/// A CloudWatch Logs operation (and one the server does not answer) with a body: an object of
/// real member names and garbage or plausible values, or random bytes.
fn logs_request() -> impl Strategy<Value = (&'static str, Vec<u8>)> {
    use serde_json::json;
    let ops = prop::sample::select(vec![
        "DescribeLogGroups",
        "DescribeLogStreams",
        "GetLogEvents",
        "FilterLogEvents",
        "PutRetentionPolicy",
        "DeleteRetentionPolicy",
        "DeleteLogGroup",
        "PutLogEvents",
    ]);
    let keys = prop::sample::select(vec![
        "logGroupName",
        "logGroupIdentifier",
        "logGroupIdentifiers",
        "logGroupNamePrefix",
        "logGroupNamePattern",
        "logStreamName",
        "logStreamNames",
        "logStreamNamePrefix",
        "filterPattern",
        "startTime",
        "endTime",
        "limit",
        "nextToken",
        "startFromHead",
        "descending",
        "orderBy",
        "retentionInDays",
    ]);
    let values = prop_oneof![
        Just(json!("/aws/lambda/fz")),
        Just(json!(
            "arn:aws:logs:us-east-1:000000000000:log-group:/aws/lambda/fz:*"
        )),
        Just(json!(["/aws/lambda/fz", 1])),
        Just(json!("{ $.a = ")),
        Just(json!("{ ($.a[0].b >= -1e400) || $.c NOT EXISTS }")),
        Just(json!("?\"a ?-b")),
        Just(json!("f/9223372036854775807/-9223372036854775808")),
        Just(json!("LastEventTime")),
        Just(json!(null)),
        Just(json!({"x": 1})),
        "[ -~]{0,30}".prop_map(|s| json!(s)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        any::<bool>().prop_map(|b| json!(b)),
    ];
    (
        ops,
        prop::collection::vec((keys, values), 0..6),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(op, members, garbage, bytes)| {
            let body = if garbage {
                bytes
            } else {
                let object: serde_json::Map<String, serde_json::Value> = members
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect();
                serde_json::to_vec(&object).unwrap()
            };
            (op, body)
        })
}
