//! The filter matcher: the cases recorded from SNS, and properties against simple models.

use proptest::prelude::*;
use serde_json::json;

use super::*;

fn attrs(list: &[(&str, &str, &str)]) -> BTreeMap<String, MessageAttribute> {
    list.iter()
        .map(|(k, t, v)| {
            (
                k.to_string(),
                MessageAttribute {
                    data_type: t.to_string(),
                    value: v.to_string(),
                },
            )
        })
        .collect()
}

fn policy(v: serde_json::Value, scope: Scope) -> FilterPolicy {
    FilterPolicy::parse(&v.to_string(), scope).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn on_attributes(p: serde_json::Value, a: &[(&str, &str, &str)]) -> bool {
    policy(p, Scope::MessageAttributes).matches_attributes(&attrs(a))
}

fn on_body(p: serde_json::Value, body: serde_json::Value) -> bool {
    policy(p, Scope::MessageBody).matches_body(&body.to_string())
}

fn error(p: &str, scope: Scope) -> String {
    FilterPolicy::parse(p, scope).unwrap_err()
}

#[test]
fn recorded_attribute_cases() {
    let p = json!({"store": ["value1"]});
    assert!(on_attributes(p.clone(), &[("store", "String", "value1")]));
    assert!(on_attributes(
        p.clone(),
        &[("store", "String.Array", r#"["value1","value2"]"#)]
    ));
    assert!(!on_attributes(
        p,
        &[("store", "String.Array", r#"["value2","value3"]"#)]
    ));
    let range = json!({"attr1": [{"numeric": [">", 0, "<=", 100]}]});
    assert!(on_attributes(range.clone(), &[("attr1", "Number", "99")]));
    assert!(!on_attributes(range, &[("attr1", "Number", "111")]));
    let exists = json!({"store": [{"exists": true}]});
    assert!(on_attributes(
        exists.clone(),
        &[("store", "Number", "99"), ("def", "Number", "99")]
    ));
    assert!(!on_attributes(exists, &[("attr1", "Number", "111")]));
    let absent = json!({"store": [{"exists": false}]});
    assert!(on_attributes(absent.clone(), &[("def", "Number", "99")]));
    assert!(!on_attributes(
        absent.clone(),
        &[("store", "Number", "99"), ("def", "Number", "99")]
    ));
    // An empty set of attributes does not match `exists: false`.
    assert!(!on_attributes(absent, &[]));
    // Neither `null` nor `anything-but` matches an absent attribute.
    assert!(!on_attributes(
        json!({"attr1": [null, {"anything-but": "whatever"}]}),
        &[]
    ));
}

#[test]
fn types_do_not_cross_and_binary_is_ignored() {
    assert!(!on_attributes(
        json!({"price": [100]}),
        &[("price", "String", "100")]
    ));
    assert!(on_attributes(
        json!({"price": [100]}),
        &[("price", "Number", "1.0e2")]
    ));
    assert!(on_attributes(
        json!({"price": [100, 500]}),
        &[("price", "String.Array", "[100, 50]")]
    ));
    assert!(on_attributes(
        json!({"price": [{"anything-but": ["100"]}]}),
        &[("price", "Number", "100")]
    ));
    assert!(!on_attributes(
        json!({"b": [{"exists": true}]}),
        &[("b", "Binary", "AAE=")]
    ));
    assert!(on_attributes(
        json!({"b": [{"exists": false}]}),
        &[("b", "Binary", "AAE="), ("x", "String", "y")]
    ));
    assert!(!on_attributes(
        json!({"s": ["anything"]}),
        &[("s", "String.Array", "['anything']")]
    ));
    assert!(on_attributes(
        json!({"s": [true]}),
        &[("s", "String.Array", "[true]")]
    ));
    assert!(on_attributes(
        json!({"t": ["x"]}),
        &[("t", "String.custom", "x")]
    ));
}

#[test]
fn string_operators() {
    let ok = |p: serde_json::Value, v: &str| on_attributes(p, &[("sport", "String", v)]);
    assert!(ok(json!({"sport": [{"prefix": "bas"}]}), "baseball"));
    assert!(!ok(json!({"sport": [{"prefix": "bas"}]}), "rugby"));
    assert!(ok(json!({"sport": [{"suffix": "ball"}]}), "baseball"));
    assert!(ok(
        json!({"sport": [{"equals-ignore-case": "tennis"}]}),
        "TeNNis"
    ));
    assert!(ok(json!({"sport": [{"wildcard": "b*b*l"}]}), "baseball"));
    assert!(!ok(json!({"sport": [{"wildcard": "b*x"}]}), "baseball"));
    assert!(ok(
        json!({"sport": [{"anything-but": {"prefix": "bas"}}]}),
        "rugby"
    ));
    assert!(!ok(
        json!({"sport": [{"anything-but": {"prefix": "bas"}}]}),
        "basket"
    ));
    let but = json!({"sport": [{"anything-but": ["rugby", "tennis"]}]});
    assert!(on_attributes(
        but.clone(),
        &[("sport", "String.Array", r#"["rugby", "baseball"]"#)]
    ));
    assert!(!on_attributes(
        but,
        &[("sport", "String.Array", r#"["rugby"]"#)]
    ));
}

#[test]
fn cidr_matches_v4_and_v6() {
    let p = json!({"ip": [{"cidr": "10.0.0.0/24"}]});
    let ip = |p: &serde_json::Value, v: &str| on_attributes(p.clone(), &[("ip", "String", v)]);
    assert!(ip(&p, "10.0.0.255"));
    assert!(!ip(&p, "10.0.0.256"));
    assert!(!ip(&p, "10.1.1.0"));
    let p6 = json!({"ip": [{"cidr": "2001:db8:1234:1a00::/64"}]});
    assert!(ip(&p6, "2001:0db8:1234:1a00:0000:0000:0000:0000"));
    assert!(!ip(&p6, "2001:0db8:123f:1a01::1"));
}

#[test]
fn recorded_body_cases() {
    let p = json!({"object": {"key": [{"prefix": "auto-"}, "hardcodedvalue"], "nested_key": [{"exists": false}]}, "test": [{"exists": false}]});
    assert!(on_body(p.clone(), json!({"object": {"key": "auto-test"}})));
    assert!(on_body(
        p.clone(),
        json!({"object": {"key": "hardcodedvalue"}})
    ));
    for no in [
        json!({"object": {"key": "test-auto"}}),
        json!({"object": {"key": "auto-test"}, "test": "just-exists"}),
        json!({"object": {"key": "auto-test", "nested_key": "just-exists"}}),
        json!({"object": {"test": "auto-test"}}),
        json!({"test": "auto-test"}),
    ] {
        assert!(!on_body(p.clone(), no.clone()), "{no}");
    }
    // Dotted keys equal nested paths, on either side.
    let dotted = json!({"object.nested.test": ["v"]});
    for body in [
        json!({"object": {"nested": {"test": "v"}}}),
        json!({"object.nested.test": "v"}),
        json!({"object.nested": {"test": "v"}}),
        json!({"object": {"nested.test": "v"}}),
    ] {
        assert!(on_body(dotted.clone(), body.clone()), "{body}");
    }
    // Arrays, also of objects.
    let s3 = json!({"Records": {"s3": {"object": {"key": [{"prefix": "auto-"}]}}, "eventName": [{"prefix": "ObjectCreated:"}]}});
    let rec = |event: &str, key: serde_json::Value| json!({"Records": [{"eventName": event, "s3": {"object": key}}]});
    assert!(on_body(
        s3.clone(),
        rec("ObjectCreated:Put", json!({"key": "auto-x"}))
    ));
    assert!(!on_body(
        s3.clone(),
        rec("ObjectRemoved:Delete", json!({"key": "auto-x"}))
    ));
    assert!(!on_body(
        s3.clone(),
        rec("ObjectCreated:Put", json!({"key": "home-x"}))
    ));
    assert!(on_body(
        s3,
        rec("ObjectCreated:Put", json!([[{"key": "auto-x"}]]))
    ));
    assert!(on_body(
        json!({"route": ["q2"]}),
        json!({"route": ["q1", "q2"]})
    ));
    // Only JSON objects pass a body policy.
    let any = policy(json!({"a": [{"exists": false}]}), Scope::MessageBody);
    assert!(!any.matches_body("\"Regular string message\""));
    assert!(!any.matches_body("not json"));
    assert!(any.matches_body("{}"));
    assert!(!on_body(json!({"price": [100]}), json!({"price": "100"})));
    assert!(on_body(
        json!({"price": [{"numeric": ["=", 301.5]}]}),
        json!({"price": 3.015e2})
    ));
}

#[test]
fn recorded_or_case() {
    let p = json!({"$or": [{"metricName": ["CPUUtilization", "ReadLatency"]}, {"namespace": ["AWS/EC2", "AWS/ES"]}], "detail": {"scope": ["Service"], "$or": [{"source": ["aws.cloudwatch"]}, {"type": ["CloudWatch Alarm State Change"]}]}});
    let yes = [
        json!({"metricName": "CPUUtilization", "detail": {"scope": "Service", "source": "aws.cloudwatch"}}),
        json!({"metricName": "CPUUtilization", "detail": {"scope": "Service", "type": "CloudWatch Alarm State Change"}}),
        json!({"namespace": "AWS/ES", "detail": {"scope": "Service", "source": "aws.cloudwatch"}}),
    ];
    let no = [
        json!({"metricName": "CPUUtilization", "scope": "Service", "detail": {"source": "aws.cloudwatch"}}),
        json!({"metricName": "Other", "detail": {"scope": "Service", "source": "aws.cloudwatch"}}),
        json!({"namespace": "AWS/EC2", "detail": {"scope": "Service", "source": "other"}}),
    ];
    for b in yes {
        assert!(on_body(p.clone(), b.clone()), "{b}");
    }
    for b in no {
        assert!(!on_body(p.clone(), b.clone()), "{b}");
    }
    // Not an `$or`: an ordinary property of that name.
    let plain = policy(
        json!({"$or": [{"numeric": ["=", 1]}, {"prefix": "a"}]}),
        Scope::MessageAttributes,
    );
    assert!(plain.matches_attributes(&attrs(&[("$or", "String", "abc")])));
}

#[test]
fn recorded_errors() {
    let a = Scope::MessageAttributes;
    let cases: &[(&str, &str)] = &[
        (
            r#"{"key_a":"value_one"}"#,
            "FilterPolicy: \"key_a\" must be an object or an array",
        ),
        (
            r#"{"key":{"suffix":"value"}}"#,
            "FilterPolicy: \"suffix\" must be an object or an array",
        ),
        (
            r#"{"key":[]}"#,
            "FilterPolicy: Empty arrays are not allowed",
        ),
        (
            r#"{"key":[["value"]]}"#,
            "FilterPolicy: Match value must be String, number, true, false, or null",
        ),
        (
            r#"{"key":[{"wrong-operator":true}]}"#,
            "FilterPolicy: Unrecognized match type wrong-operator",
        ),
        (
            r#"{"key":[{"suffix":"value","prefix":"value2"}]}"#,
            "FilterPolicy: Only one key allowed in match expression",
        ),
        (
            r#"{"key":[{"suffix":100}]}"#,
            "FilterPolicy: suffix match pattern must be a string",
        ),
        (
            r#"{"key":[{"cidr":["bad-filter"]}]}"#,
            "FilterPolicy: prefix match pattern must be a string",
        ),
        (
            r#"{"key":[{"cidr":"bad-filter"}]}"#,
            "FilterPolicy: Malformed CIDR, one '/' required",
        ),
        (
            r#"{"key":[{"cidr":"bad-filter/64"}]}"#,
            "FilterPolicy: Nonstandard IP address: bad-filter",
        ),
        (
            r#"{"key":[{"cidr":"bad-/64filter"}]}"#,
            "FilterPolicy: Malformed CIDR, mask bits must be an integer",
        ),
        (
            r#"{"key":[{"numeric":[]}]}"#,
            "FilterPolicy: Invalid member in numeric match: ]",
        ),
        (
            r#"{"key":[{"numeric":["operator"]}]}"#,
            "FilterPolicy: Unrecognized numeric range operator: operator",
        ),
        (
            r#"{"key":[{"numeric":[1,"<="]}]}"#,
            "FilterPolicy: Invalid member in numeric match: 1",
        ),
        (
            r#"{"key":[{"numeric":["=","000"]}]}"#,
            "FilterPolicy: Value of equals must be numeric",
        ),
        (
            r#"{"key":[{"numeric":[">="]}]}"#,
            "FilterPolicy: Value of >= must be numeric",
        ),
        (
            r#"{"key":[{"numeric":["<",100,">",10]}]}"#,
            "FilterPolicy: Too many elements in numeric expression",
        ),
        (
            r#"{"key":[{"numeric":[">=",1,">",2]}]}"#,
            "FilterPolicy: Bad numeric range operator: >",
        ),
        (
            r#"{"key":[{"numeric":[">",3,"<",1]}]}"#,
            "FilterPolicy: Bottom must be less than top",
        ),
        (
            r#"{"key":[{"numeric":[">",20,"<="]}]}"#,
            "FilterPolicy: Value of <= must be numeric",
        ),
        (
            r#"{"key":[{"numeric":[">",20,30]}]}"#,
            "FilterPolicy: Bad value in numeric range: 30",
        ),
        (
            r#"{"key":[{"numeric":[">",20,"<",30,"<",50]}]}"#,
            "FilterPolicy: Too many terms in numeric range expression",
        ),
        (
            r#"{"key":[{"exists":null}]}"#,
            "FilterPolicy: exists match pattern must be either true or false.",
        ),
        (
            r#"{"key":[{"anything-but":{"wrong-operator":null}}]}"#,
            "FilterPolicy: Unsupported anything-but pattern: wrong-operator",
        ),
        (
            r#"{"key":[{"anything-but":{"exists":false}}]}"#,
            "FilterPolicy: Unsupported anything-but pattern: exists",
        ),
        (
            r#"{"key":[{"anything-but":{"prefix":false}}]}"#,
            "FilterPolicy: prefix match pattern must be a string",
        ),
        (
            r#"{"a":["1"],"b":["1"],"c":["1"],"d":["1"],"e":["1"],"f":["1"]}"#,
            "FilterPolicy: Filter policy can not have more than 5 keys",
        ),
        (
            r#"{"key":{"nested":["v"]}}"#,
            "Filter policy scope MessageAttributes does not support nested filter policy",
        ),
    ];
    for (p, want) in cases {
        assert_eq!(&error(p, a), want, "{p}");
    }
    assert!(error("invalid-json", a).starts_with("FilterPolicy: failed to parse JSON."));
    let many: Vec<String> = (0..151).map(|i| i.to_string()).collect();
    assert_eq!(
        error(&json!({"k": many}).to_string(), a),
        "FilterPolicy: Filter policy is too complex"
    );
    // An `anything-but` list counts each value: matching compares a message's values with each.
    assert_eq!(
        error(&json!({"k": [{"anything-but": many}]}).to_string(), a),
        "FilterPolicy: Filter policy is too complex"
    );
    let some: Vec<String> = (0..150).map(|i| i.to_string()).collect();
    policy(json!({"k": [{"anything-but": some}]}), a);
    let nested = json!({"key_a": {"key_b": {"key_c": ["1", "2", "3", "4"]}}, "key_d": {"key_e": ["1", "2", "3"]}, "key_f": ["1", "2", "3"]});
    assert_eq!(
        error(&nested.to_string(), Scope::MessageBody),
        "FilterPolicy: Filter policy is too complex"
    );
}

/// A policy of exact strings over a few keys, and messages over the same keys and values.
fn keys() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "d"]).prop_map(str::to_owned)
}
fn values() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["red", "green", "blue", "re", ""]).prop_map(str::to_owned)
}

proptest! {
    #[test]
    fn exact_strings_match_as_the_model_says(
        policy_map in prop::collection::btree_map(keys(), prop::collection::vec(values(), 1..4), 1..4),
        message in prop::collection::btree_map(keys(), values(), 0..4),
    ) {
        let p = FilterPolicy::parse(&serde_json::to_string(&policy_map).unwrap(), Scope::MessageAttributes).unwrap();
        let a: Vec<(&str, &str, &str)> = message.iter().map(|(k, v)| (k.as_str(), "String", v.as_str())).collect();
        let model = policy_map.iter().all(|(k, vs)| message.get(k).is_some_and(|m| vs.contains(m)));
        prop_assert_eq!(p.matches_attributes(&attrs(&a)), model);
        // The same policy on a body of the same properties agrees.
        let body = serde_json::to_string(&message).unwrap();
        let b = FilterPolicy::parse(&serde_json::to_string(&policy_map).unwrap(), Scope::MessageBody).unwrap();
        prop_assert_eq!(b.matches_body(&body), model);
    }

    #[test]
    fn anything_but_is_the_complement_of_exact_for_a_present_string(
        excluded in prop::collection::vec(values(), 1..4),
        v in values(),
    ) {
        let exact = on_attributes(json!({"k": excluded}), &[("k", "String", &v)]);
        let but = on_attributes(json!({"k": [{"anything-but": excluded}]}), &[("k", "String", &v)]);
        prop_assert_eq!(but, !exact);
    }

    #[test]
    fn numeric_ranges_agree_with_comparisons(
        low in -1000i32..1000, span in 1i32..1000, v in -2000i32..2000,
        low_inclusive: bool, high_inclusive: bool,
    ) {
        let high = low + span;
        let p = json!({"n": [{"numeric": [if low_inclusive {">="} else {">"}, low, if high_inclusive {"<="} else {"<"}, high]}]});
        let model = (if low_inclusive { v >= low } else { v > low }) && (if high_inclusive { v <= high } else { v < high });
        prop_assert_eq!(on_attributes(p, &[("n", "Number", &v.to_string())]), model);
    }

    #[test]
    fn or_matches_when_either_alternative_does(
        x in values(), y in values(), vx in values(), vy in values(),
    ) {
        let p = json!({"$or": [{"a": [x.clone()]}, {"b": [y.clone()]}]});
        let got = on_attributes(p, &[("a", "String", &vx), ("b", "String", &vy)]);
        prop_assert_eq!(got, vx == x || vy == y);
    }

    #[test]
    fn prefix_and_suffix_agree_with_str(p in "[ab]{0,3}", v in "[ab]{0,5}") {
        prop_assert_eq!(on_attributes(json!({"k": [{"prefix": p}]}), &[("k", "String", &v)]), v.starts_with(&p));
        prop_assert_eq!(on_attributes(json!({"k": [{"suffix": p}]}), &[("k", "String", &v)]), v.ends_with(&p));
    }

    #[test]
    fn parsing_never_panics(text in ".{0,200}") {
        let _ = FilterPolicy::parse(&text, Scope::MessageAttributes);
        let _ = FilterPolicy::parse(&text, Scope::MessageBody);
    }

    #[test]
    fn parsing_random_json_never_panics(v in arb_json()) {
        let text = v.to_string();
        if let Ok(p) = FilterPolicy::parse(&text, Scope::MessageBody) {
            let _ = p.matches_body(&text);
        }
    }
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        (-100i64..100).prop_map(serde_json::Value::from),
        prop::sample::select(vec![
            "prefix",
            "numeric",
            "=",
            ">",
            "<=",
            "exists",
            "anything-but",
            "cidr",
            "10.0.0.0/8",
            "$or",
            "a"
        ])
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "prefix",
                    "numeric",
                    "exists",
                    "anything-but",
                    "cidr",
                    "$or",
                    "a",
                    "b.c",
                    "suffix",
                    "wildcard"
                ])
                .prop_map(str::to_owned),
                inner,
                0..4
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
