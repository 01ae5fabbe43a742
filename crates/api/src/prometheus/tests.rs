use super::*;

/// `f` run with `recorder` as the thread's recorder.
fn with(recorder: &Arc<Recorder>, f: impl FnOnce()) {
    metrics::with_local_recorder(&Shared(recorder.clone()), f);
}

/// The value of the series `line` (its name and labels), if rendered.
fn value(text: &str, line: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.strip_prefix(' '))
        .map(str::to_owned)
}

#[test]
fn a_deleted_functions_series_go_and_a_namesakes_in_another_account_stay() {
    let r = Arc::new(Recorder::default());
    let mut kept = None;
    with(&r, || {
        for account in ["111111111111", "222222222222"] {
            let l = function_labels(account, "us-east-1", "orders");
            metrics::counter!("lamina_requests_total", l.iter()).increment(2);
            metrics::histogram!("lamina_invoke_duration_seconds", l.iter()).record(0.01);
            metrics::gauge!("lamina_billed_gb_seconds_total", l.iter()).set(1.5);
        }
        kept = Some(metrics::counter!(
            "lamina_requests_total",
            function_labels("111111111111", "us-east-1", "orders").to_vec()
        ));
        metrics::counter!("lamina_sns_deliveries_total", "topic" => "t").increment(1);
    });
    let a = r#"{function="orders",account="111111111111",region="us-east-1"}"#;
    let b = r#"{function="orders",account="222222222222",region="us-east-1"}"#;
    let text = r.render();
    assert_eq!(
        value(&text, &format!("lamina_requests_total{a}")).as_deref(),
        Some("2"),
        "{text}"
    );
    assert_eq!(
        value(&text, &format!("lamina_requests_total{b}")).as_deref(),
        Some("2")
    );
    assert_eq!(r.functions().len(), 2);

    r.forget(&[
        ("function", "orders"),
        ("account", "111111111111"),
        ("region", "us-east-1"),
    ]);
    // A handle made before still records, into nothing the registry shows.
    kept.unwrap().increment(5);
    let text = r.render();
    assert!(!text.contains("111111111111"), "{text}");
    assert_eq!(
        value(&text, &format!("lamina_requests_total{b}")).as_deref(),
        Some("2")
    );
    assert_eq!(
        value(&text, &format!("lamina_invoke_duration_seconds_count{b}")).as_deref(),
        Some("1")
    );
    assert_eq!(
        value(&text, &format!("lamina_billed_gb_seconds_total{b}")).as_deref(),
        Some("1.5")
    );
    assert_eq!(
        value(&text, r#"lamina_sns_deliveries_total{topic="t"}"#).as_deref(),
        Some("1")
    );
    let left: Vec<_> = r.functions().into_iter().map(|(_, a, _)| a).collect();
    assert_eq!(left, ["222222222222"]);

    // Made again, it starts from nothing.
    r.revive(&[
        ("function", "orders"),
        ("account", "111111111111"),
        ("region", "us-east-1"),
    ]);
    with(&r, || {
        let l = function_labels("111111111111", "us-east-1", "orders");
        metrics::counter!("lamina_requests_total", l.to_vec()).increment(1);
    });
    assert_eq!(
        value(&r.render(), &format!("lamina_requests_total{a}")).as_deref(),
        Some("1")
    );
}

#[test]
fn a_histogram_renders_cumulative_buckets_its_sum_and_its_count() {
    let r = Arc::new(Recorder::default());
    with(&r, || {
        let h = metrics::histogram!("lamina_test_seconds", "id" => "a\"b\\c\nd");
        // Below the first bound, on a bound (`le` is inclusive), between two, past the last.
        for v in [0.0003, 0.001, 2.0, 1000.0] {
            h.record(v);
        }
    });
    let text = r.render();
    let l = r#"id="a\"b\\c\nd""#;
    assert!(
        text.contains("# TYPE lamina_test_seconds histogram\n"),
        "{text}"
    );
    for (le, n) in [
        ("0.0005", 1),
        ("0.001", 2),
        ("0.0025", 2),
        ("1", 2),
        ("2.5", 3),
        ("900", 3),
        ("+Inf", 4),
    ] {
        let line = format!("lamina_test_seconds_bucket{{{l},le=\"{le}\"}}");
        assert_eq!(value(&text, &line), Some(n.to_string()), "{line} in {text}");
    }
    assert_eq!(
        value(&text, &format!("lamina_test_seconds_count{{{l}}}")).as_deref(),
        Some("4")
    );
    let sum: f64 = value(&text, &format!("lamina_test_seconds_sum{{{l}}}"))
        .unwrap()
        .parse()
        .unwrap();
    assert!((sum - 1002.0013).abs() < 1e-9, "{sum}");
}

/// What still runs of a deleted function (an invocation, a request) makes none of its series
/// again; a function made again under its name does.
#[test]
fn a_forgotten_series_is_not_made_again_until_its_name_is_taken_again() {
    let r = Arc::new(Recorder::default());
    let l = function_labels("111111111111", "us-east-1", "orders");
    let gone = [
        ("function", "orders"),
        ("account", "111111111111"),
        ("region", "us-east-1"),
    ];
    with(&r, || {
        metrics::counter!("lamina_requests_total", l.iter()).increment(1);
    });
    r.forget(&gone);
    with(&r, || {
        // Made after the deletion: by an invocation that was still running, say.
        metrics::counter!("lamina_requests_total", l.iter()).increment(1);
        metrics::histogram!("lamina_invoke_duration_seconds", l.iter()).record(0.1);
        // A namesake in another account, and series of nothing deleted, are made as ever.
        let other = function_labels("222222222222", "us-east-1", "orders");
        metrics::counter!("lamina_requests_total", other.iter()).increment(1);
        metrics::counter!("lamina_sns_deliveries_total", "topic" => "t").increment(1);
    });
    let text = r.render();
    assert!(!text.contains("111111111111"), "{text}");
    assert!(text.contains("222222222222"), "{text}");
    assert!(text.contains(r#"topic="t""#), "{text}");

    r.revive(&gone);
    with(&r, || {
        metrics::counter!("lamina_requests_total", l.iter()).increment(1);
    });
    let a = r#"{function="orders",account="111111111111",region="us-east-1"}"#;
    assert_eq!(
        value(&r.render(), &format!("lamina_requests_total{a}")).as_deref(),
        Some("1")
    );
}

/// A tombstone stands for its time, then falls, and with the last one the recorder registers
/// series without a lock again.
#[test]
fn tombstones_fall_after_their_time() {
    let mut stones = gone::Tombstones::default();
    let t0 = std::time::Instant::now();
    let key = metrics::Key::from_parts(
        "lamina_requests_total",
        function_labels("1", "r", "f").to_vec(),
    );
    stones.bury(&[("function", "f"), ("account", "1"), ("region", "r")], t0);
    assert!(stones.covers(&key, t0 + gone::KEPT - std::time::Duration::from_secs(1)));
    assert!(!stones.covers(&key, t0 + gone::KEPT));
    stones.prune(t0 + gone::KEPT);
    assert!(stones.is_empty());

    let r = Recorder::default();
    r.forget(&[("function", "f"), ("account", "1"), ("region", "r")]);
    assert_ne!(r.standing_until.load(Ordering::Relaxed), 0);
    assert!(r.buried(&key));
    r.revive(&[("function", "f"), ("account", "1"), ("region", "r")]);
    assert_eq!(
        r.standing_until.load(Ordering::Relaxed),
        0,
        "none stands: no lock"
    );
    assert!(!r.buried(&key));
}
