use axum::http::{HeaderMap, HeaderName, StatusCode};
use serde_json::json;

use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// The event as a client reads it.
fn json_of(event: impl Serialize) -> Value {
    serde_json::to_value(event).unwrap()
}

fn ctx(route_key: &'static str) -> Context<'static> {
    static PARAMS: std::sync::LazyLock<Map<String, Value>> =
        std::sync::LazyLock::new(|| [("id".to_owned(), json!("7"))].into_iter().collect());
    Context {
        account_id: "123456789012",
        api_id: "abc123",
        domain_name: "abc123.execute-api.localhost",
        stage: "$default",
        route_key,
        request_id: "rid",
        time_ms: 1_583_348_638_390,
        authorizer: None,
        path_parameters: Some(&PARAMS),
        stage_variables: None,
        route_id: "r1",
    }
}

#[test]
fn v2_joins_headers_splits_cookies_and_keeps_the_raw_query() {
    let h = headers(&[
        ("header2", "v1"),
        ("header2", "v2"),
        ("cookie", "c1=v1; c2=v2"),
        ("user-agent", "curl/8"),
    ]);
    let inc = Incoming {
        method: "GET",
        path: "/pets/7",
        raw_query: "a=1&a=2&b=x%20y",
        headers: &h,
        body: b"",
        source_ip: "192.0.2.1",
    };
    let c = ctx("GET /pets/{id}");
    let e = json_of(v2(&inc, &c));
    assert_eq!(e["version"], "2.0");
    assert_eq!(e["routeKey"], "GET /pets/{id}");
    assert_eq!(e["rawQueryString"], "a=1&a=2&b=x%20y");
    assert_eq!(e["queryStringParameters"], json!({"a": "1,2", "b": "x y"}));
    assert_eq!(e["headers"]["header2"], "v1,v2");
    assert!(e["headers"].get("cookie").is_none());
    assert_eq!(e["cookies"], json!(["c1=v1", "c2=v2"]));
    assert_eq!(e["pathParameters"], json!({"id": "7"}));
    assert!(e.get("body").is_none());
    assert!(e.get("stageVariables").is_none());
    assert_eq!(
        e["requestContext"]["timeEpoch"],
        json!(1_583_348_638_390_i64)
    );
    assert_eq!(e["requestContext"]["time"], "04/Mar/2020:19:03:58 +0000");
    assert_eq!(e["requestContext"]["http"]["method"], "GET");
    assert_eq!(e["requestContext"]["http"]["userAgent"], "curl/8");
    assert_eq!(e["requestContext"]["domainPrefix"], "abc123");
    assert!(e.get("httpMethod").is_none());
}

#[test]
fn binary_bodies_are_base64_and_text_bodies_are_not() {
    let h = headers(&[("content-type", "application/octet-stream")]);
    let inc = Incoming {
        method: "POST",
        path: "/",
        raw_query: "",
        headers: &h,
        body: &[0, 159, 146, 150],
        source_ip: "127.0.0.1",
    };
    let c = ctx("$default");
    let e = json_of(v2(&inc, &c));
    assert_eq!(e["isBase64Encoded"], true);
    assert_eq!(e["body"], "AJ+Slg==");
    let h = headers(&[("content-type", "application/json; charset=utf-8")]);
    let inc = Incoming {
        headers: &h,
        body: br#"{"a":1}"#,
        ..inc
    };
    let e = json_of(v2(&inc, &c));
    assert_eq!(e["isBase64Encoded"], false);
    assert_eq!(e["body"], r#"{"a":1}"#);
}

#[test]
fn v1_has_single_and_multi_values() {
    let h = headers(&[("x", "1"), ("x", "2")]);
    let inc = Incoming {
        method: "GET",
        path: "/pets/7",
        raw_query: "q=1&q=2",
        headers: &h,
        body: b"",
        source_ip: "127.0.0.1",
    };
    let c = ctx("GET /pets/{id}");
    let e = json_of(v1(&inc, &c, "/pets/{id}"));
    // Every name is kept, each with its values in order.
    let many: String = (0..30_000).map(|i| format!("n{i}=v&")).collect::<String>() + "n7=w";
    let query = Incoming {
        raw_query: &many,
        ..inc
    };
    let q = json_of(v1(&query, &c, "/pets/{id}"));
    let names: Vec<&String> = q["multiValueQueryStringParameters"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(names.len(), 30_000);
    assert_eq!(
        q["multiValueQueryStringParameters"]["n7"],
        json!(["v", "w"])
    );
    assert_eq!(q["queryStringParameters"]["n7"], "w");
    assert_eq!(e["version"], "1.0");
    assert_eq!(e["httpMethod"], "GET");
    assert_eq!(e["resource"], "/pets/{id}");
    assert_eq!(e["headers"]["x"], "2");
    assert_eq!(e["multiValueHeaders"]["x"], json!(["1", "2"]));
    assert_eq!(e["queryStringParameters"]["q"], "2");
    assert_eq!(e["multiValueQueryStringParameters"]["q"], json!(["1", "2"]));
    assert_eq!(e["body"], Value::Null);
    assert_eq!(e["stageVariables"], Value::Null);
    let identity = e["requestContext"]["identity"].as_object().unwrap();
    assert_eq!(identity.len(), 13);
    assert_eq!(identity["sourceIp"], "127.0.0.1");
    assert_eq!(identity.get("cognitoIdentityId"), Some(&Value::Null));
    assert_eq!(
        e["requestContext"]["requestTimeEpoch"],
        json!(1_583_348_638_390_i64)
    );
}

#[test]
fn bare_results_become_json_bodies() {
    let r = reply_v2(br#"{"hello": "world"}"#).unwrap();
    assert_eq!(
        (r.status, r.body.as_slice()),
        (StatusCode::OK, &br#"{"hello":"world"}"#[..])
    );
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(reply_v2(br#""hello""#).unwrap().body, b"hello");
    assert_eq!(
        reply_v2(br#"["hello",3,true]"#).unwrap().body,
        br#"["hello",3,true]"#
    );
    assert_eq!(reply_v2(b"3.1").unwrap().body, b"3.1");
    assert!(reply_v2(b"not json").is_err());
}

#[test]
fn structured_results_map_status_headers_cookies_and_base64() {
    let r = reply_v2(
        br#"{"statusCode":201,"headers":{"x-a":"1","n":2},"cookies":["a=1","b=2"],"body":"aGk=","isBase64Encoded":true}"#,
    )
    .unwrap();
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.headers["x-a"], "1");
    assert_eq!(r.headers["n"], "2");
    let cookies: Vec<_> = r.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(r.body, b"hi");
    // lambda_http's extra members are accepted.
    let r = reply_v2(br#"{"statusCode":200,"headers":{},"multiValueHeaders":{},"cookies":[],"body":"ok","isBase64Encoded":false}"#).unwrap();
    assert_eq!(r.body, b"ok");
    assert!(reply_v2(br#"{"statusCode":"teapot"}"#).is_err());
    // An informational status cannot be a response's last.
    for informational in [100, 101, 103, 199] {
        let r = format!(r#"{{"statusCode":{informational},"body":"x"}}"#);
        assert!(reply_v2(r.as_bytes()).is_err(), "{informational}");
        assert!(reply_v1(r.as_bytes()).is_err(), "{informational}");
    }
    assert!(reply_v2(br#"{"statusCode":204}"#).is_ok());
    // Framing is the gateway's.
    let r = reply_v2(br#"{"statusCode":200,"headers":{"content-length":"999","Transfer-Encoding":"chunked","x":"y"},"body":"ok"}"#).unwrap();
    assert!(r.headers.get("content-length").is_none());
    assert!(r.headers.get("transfer-encoding").is_none());
    assert_eq!(r.headers["x"], "y");
}

#[test]
fn v1_merges_headers_and_requires_a_status() {
    let r = reply_v1(
        br#"{"statusCode":200,"headers":{"a":"1"},"multiValueHeaders":{"a":["1","2"],"b":["x"]},"body":"ok"}"#,
    )
    .unwrap();
    let a: Vec<_> = r.headers.get_all("a").iter().collect();
    assert_eq!(a, ["1", "2"]);
    assert_eq!(r.headers["b"], "x");
    assert!(reply_v1(br#"{"hello":"world"}"#).is_err());
}

#[test]
fn a_response_with_too_many_header_fields_is_refused_in_linear_time() {
    // 30,000 distinct names would overflow a `HeaderMap` (a panic); 600,000 values of one name
    // were compared pairwise.
    let names: Vec<String> = (0..30_000).map(|i| format!(r#""h{i}":"x""#)).collect();
    let many = format!(r#"{{"statusCode":200,"headers":{{{}}}}}"#, names.join(","));
    assert!(reply_v2(many.as_bytes()).is_err());
    let values: Vec<String> = (0..600_000).map(|i| format!(r#""{i}""#)).collect();
    let many = format!(
        r#"{{"statusCode":200,"multiValueHeaders":{{"x":[{}]}}}}"#,
        values.join(",")
    );
    let started = std::time::Instant::now();
    assert!(reply_v1(many.as_bytes()).is_err());
    eprintln!("refused in {:?}", started.elapsed());
    // Up to the bound, every field is sent.
    let values: Vec<String> = (0..super::reply::MAX_HEADER_FIELDS)
        .map(|i| format!(r#""{i}""#))
        .collect();
    let most = format!(
        r#"{{"statusCode":200,"multiValueHeaders":{{"x":[{}]}}}}"#,
        values.join(",")
    );
    let r = reply_v1(most.as_bytes()).unwrap();
    assert_eq!(r.headers.len(), super::reply::MAX_HEADER_FIELDS);
}

#[test]
fn a_function_urls_event_has_its_empty_members_as_null() {
    let h = headers(&[("user-agent", "curl/8")]);
    let inc = Incoming {
        method: "GET",
        path: "/",
        raw_query: "",
        headers: &h,
        body: b"",
        source_ip: "127.0.0.1",
    };
    let c = Context {
        path_parameters: None,
        ..ctx("$default")
    };
    let e = json_of(v2(&inc, &c).for_url());
    let members = e.as_object().unwrap();
    for name in ["pathParameters", "stageVariables"] {
        assert_eq!(members.get(name), Some(&Value::Null), "{name}");
    }
    let rc = e["requestContext"].as_object().unwrap();
    assert_eq!(rc.get("authentication"), Some(&Value::Null));
    assert_eq!(rc.get("authorizer"), Some(&Value::Null));
    assert!(members.get("queryStringParameters").is_none());
    assert!(members.get("cookies").is_none());
    // Behind an API, absent members are left out.
    let e = json_of(v2(&inc, &c));
    assert!(e.get("stageVariables").is_none());
    assert!(e["requestContext"].get("authentication").is_none());
    assert!(e["requestContext"].get("authorizer").is_none());
}

#[test]
fn bare_results_keep_their_order_and_lose_only_whitespace() {
    let r = reply_v2(b" {\"b\": [1, 2],\n\t\"a\": \"x y \\\" z\"} ").unwrap();
    assert_eq!(r.body, br#"{"b":[1,2],"a":"x y \" z"}"#);
    let r = reply_v2(br#"{"body": 1, "headers": "not an object"}"#).unwrap();
    assert_eq!(r.body, br#"{"body":1,"headers":"not an object"}"#);
    assert!(reply_v2(br#"{"a": 1} trailing"#).is_err());
    assert!(reply_v2(br#"{"a": tru}"#).is_err());
    assert!(reply_v2(b"").is_err());
}

#[test]
fn structured_results_are_read_member_by_member() {
    // `statusCode` makes the result structured, even when it is not a status.
    assert!(reply_v2(br#"{"statusCode": null, "body": "x"}"#).is_err());
    assert!(reply_v2(br#"{"statusCode": 99}"#).is_err());
    assert!(reply_v2(br#"{"statusCode": 200.5}"#).is_err());
    let r = reply_v2(br#"{"statusCode": "404", "body": null, "headers": null}"#).unwrap();
    assert_eq!((r.status, r.body.len()), (StatusCode::NOT_FOUND, 0));
    // A body that is not a string is sent as JSON.
    let r = reply_v2(br#"{"statusCode": 200, "body": {"k": [1, true]}}"#).unwrap();
    assert_eq!(r.body, br#"{"k":[1,true]}"#);
    // Values are unescaped; numbers and booleans are header text.
    let r = reply_v2(
        br#"{"statusCode": 200, "headers": {"x": "a\u0041", "n": 1.5, "b": false}, "body": "\u00e9\n"}"#,
    )
    .unwrap();
    assert_eq!(
        (&r.headers["x"], &r.headers["n"], &r.headers["b"]),
        (
            &"aA".parse::<HeaderValue>().unwrap(),
            &"1.5".parse::<HeaderValue>().unwrap(),
            &"false".parse::<HeaderValue>().unwrap()
        )
    );
    assert_eq!(r.body, "é\n".as_bytes());
    // So does a member the gateway reads written twice.
    assert!(reply_v2(br#"{"statusCode": 200, "body": "a", "body": "b"}"#).is_err());
    // A header whose value is neither text nor a number makes the response invalid.
    assert!(reply_v2(br#"{"statusCode": 200, "headers": {"x": {}}}"#).is_err());
    assert!(reply_v1(br#"{"statusCode": 200, "multiValueHeaders": {"x": "a"}}"#).is_err());
    assert!(reply_v2(br#"{"statusCode": 200, "cookies": [1]}"#).is_err());
    assert!(reply_v2(br#"{"statusCode": 200, "body": "@@", "isBase64Encoded": true}"#).is_err());
}
