//! Reflag conformance: the rollout hash table and the operator tables of
//! `@reflag/flag-evaluation` 1.0.1, plus snapshot-level behaviour.

mod common;

use evaluator::dates::parse_date;
use evaluator::hash::reflag_hash;
use evaluator::reflag::{Comparison, Operator};
use evaluator::snapshot::{evaluate_rules, Context, Options, Snapshot};
use serde_json::{json, Value};

fn now_ms() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_millis() as f64)
}

#[test]
fn rollout_hash_table() {
    let cases = common::load("reflag-hash.json");
    let cases = cases.as_array().expect("array");
    assert_eq!(cases.len(), 50);
    for c in cases {
        let input = c["input"].as_str().expect("input");
        assert_eq!(u64::from(reflag_hash(input)), c["expected"].as_u64().expect("expected"), "{input}");
    }
}

#[test]
fn operator_tables() {
    let cases = common::load("reflag-operators.json");
    let cases = cases.as_array().expect("array");
    assert_eq!(cases.len(), 52);
    let mut failures = Vec::new();
    for c in cases {
        let op = Operator::parse(c["operator"].as_str().expect("op")).expect("known operator");
        let values: Vec<String> =
            c["values"].as_array().expect("values").iter().map(|v| v.as_str().unwrap_or("").to_string()).collect();
        let now = c.get("now").and_then(Value::as_str).and_then(parse_date).unwrap_or_else(now_ms);
        let got = Comparison::new(op, values).eval(c["fieldValue"].as_str().expect("field"), now);
        if got != c["expected"].as_bool().expect("expected") {
            failures.push(c.to_string());
        }
    }
    assert!(failures.is_empty(), "failing cases:\n{}", failures.join("\n"));
}

#[test]
fn evaluate_rules_matches_reference_shape() {
    let rules = json!([
        {"filter": {"type": "context", "field": "company.id", "operator": "IS", "values": ["acme"]}, "value": true},
        {"filter": {"type": "group", "operator": "and", "filters": [
            {"type": "context", "field": "user.email", "operator": "CONTAINS", "values": ["@Acme"]},
            {"type": "context", "field": "user.plan", "operator": "IS", "values": ["pro"]}
        ]}, "value": "second"}
    ]);
    let out = evaluate_rules("f", &rules, &json!({"user": {"email": "x@acme.com"}}), 0.0).expect("compiles");
    assert_eq!(out.value, None);
    assert_eq!(out.reason, "no matched rules");
    assert_eq!(out.rule_results, vec![false, false]);
    assert_eq!(out.missing, vec!["company.id".to_string(), "user.plan".to_string()]);
    let out =
        evaluate_rules("f", &rules, &json!({"user": {"email": "x@ACME.com", "plan": "pro"}}), 0.0).expect("compiles");
    assert_eq!(out.value, Some(json!("second")));
    assert_eq!(out.reason, "rule #1 matched");
}

fn snapshot() -> Snapshot {
    Snapshot::compile(json!({"features": [
        {"key": "huddle", "targeting": {"version": 42, "rules": [{"filter": {"type": "group", "operator": "and", "filters": [
            {"type": "context", "field": "company.id", "operator": "IS", "values": ["acme_inc"]},
            {"type": "rolloutPercentage", "partialRolloutAttribute": "company.id", "partialRolloutThreshold": 100000}
        ]}}]},
         "config": {"version": 3, "variants": [
            {"key": "big", "filter": {"type": "context", "field": "user.tier", "operator": "IS", "values": ["gold"]}, "payload": {"size": 10}},
            {"key": "small", "filter": {"type": "constant", "value": true}, "payload": {"size": 1}}
         ]}},
        {"key": "off", "targeting": {"version": 1, "rules": []}}
    ]}))
    .expect("compiles")
}

fn eval(s: &Snapshot, ctx: &Value, opts: Options) -> Value {
    let mut out = Vec::new();
    s.evaluate_all::<String>(&Context::Nested(ctx), opts, &mut out);
    serde_json::from_slice(&out).expect("valid JSON")
}

#[test]
fn snapshot_evaluates_to_reflag_body() {
    let s = snapshot();
    let opts = Options { enabled_only: false, debug: false, now_ms: 0.0, kind: None };
    let got = eval(&s, &json!({"company": {"id": "acme_inc"}, "user": {"tier": "gold"}}), opts);
    assert_eq!(
        got,
        json!({
            "huddle": {"isEnabled": true, "key": "huddle", "targetingVersion": 42, "ruleEvaluationResults": [true],
                "config": {"key": "big", "version": 3, "payload": {"size": 10}, "ruleEvaluationResults": [true, true]}},
            "off": {"isEnabled": false, "key": "off", "targetingVersion": 1, "ruleEvaluationResults": []}
        })
    );
    // Without debug, a non-empty missingContextFields is still sent (the browser SDK warns).
    let partial = eval(&s, &json!({"user": {"tier": "gold"}}), opts);
    assert_eq!(partial["huddle"]["ruleEvaluationResults"], json!([false]));
    assert_eq!(partial["huddle"]["missingContextFields"], json!(["company.id"]));
    assert_eq!(partial["huddle"]["config"]["ruleEvaluationResults"], json!([true, true]));
    assert_eq!(partial["huddle"]["config"].get("missingContextFields"), None);
    let enabled = eval(&s, &json!({"company": {"id": "other"}}), Options { enabled_only: true, ..opts });
    assert_eq!(enabled, json!({}));
    let debug = eval(&s, &json!({}), Options { debug: true, ..opts });
    assert_eq!(debug["huddle"]["ruleEvaluationResults"], json!([false]));
    assert_eq!(debug["huddle"]["missingContextFields"], json!(["company.id"]));
}

#[test]
fn get_features_serves_what_reflag_sdks_evaluate_alike() {
    let doc = json!({"features": [
        {"key": "plain", "targeting": {"version": 1, "rules": [{"filter": {"type": "constant", "value": true}}]}},
        {"key": "no-filter", "targeting": {"version": 1, "rules": []},
         "config": {"version": 1, "variants": [{"key": "a", "payload": 1}]}},
        {"key": "devcycle", "targeting": {"version": 1, "rules": [{"filter": {"type": "group", "operator": "and",
            "filters": [{"type": "all"}, {"type": "user", "subType": "email", "comparator": "=", "values": ["a@b.c"]}]}}]}},
        {"key": "logic", "targeting": {"version": 1, "rules": [{"filter": {"type": "jsonLogic", "rule": {"==": [1, 1]}}}]}}
    ]});
    let s = Snapshot::compile(doc.clone()).expect("compiles");
    // The definitions' texts, as the store keeps them (the snapshot keeps only their hashes).
    let texts: Vec<Vec<u8>> =
        doc["features"].as_array().expect("array").iter().map(|f| serde_json::to_vec(f).expect("json")).collect();
    let texts = || texts.iter().map(Vec::as_slice);
    let served: Value = serde_json::from_slice(&s.local_definitions_json(texts()).expect("texts")).expect("json");
    let keys: Vec<&str> = served.as_array().expect("array").iter().filter_map(|f| f["key"].as_str()).collect();
    assert_eq!(keys, ["plain", "no-filter"]);
    assert_eq!(served[1]["config"]["variants"][0]["filter"], json!({"type": "constant", "value": true}));
    let remote_only = s.remote_only();
    let remote: Vec<&str> = remote_only.iter().map(|(k, _)| &**k).collect();
    assert_eq!(remote, ["devcycle", "logic"]);
    assert!(remote_only[0].1.contains("targeting.rules[0].filter.filters[1]"), "{}", remote_only[0].1);
    // The document itself is unchanged (OFREP reads it), and a clean one is served as sent.
    let all: Value = serde_json::from_slice(&s.definitions_json(texts()).expect("texts")).expect("json");
    assert_eq!(all, doc["features"]);
    // Texts other than the compiled ones (a store that moved on) give nothing.
    let other = br#"{"key": "plain", "targeting": {"version": 2, "rules": []}}"#;
    assert_eq!(s.local_definitions_json(texts().skip(1).chain([&other[..]])), None);
    assert_eq!(s.definitions_json(texts().skip(1)), None);
    let text = br#"{"key": "a", "targeting": {"version": 1, "rules": []}}"#;
    let clean = Snapshot::from_json(&[&br#"{"features": ["#[..], text, b"]}"].concat()).expect("compiles");
    assert_eq!(clean.local_definitions_json([&text[..]]), clean.definitions_json([&text[..]]));
    assert!(clean.local_definitions_json([&text[..]]).is_some());
    assert!(clean.remote_only().is_empty());
}

#[test]
fn flat_and_nested_contexts_agree() {
    let s = snapshot();
    let opts = Options { enabled_only: false, debug: true, now_ms: 0.0, kind: None };
    let pairs =
        vec![("company.id".to_string(), "acme_inc".to_string()), ("user.tier".to_string(), "silver".to_string())];
    let mut flat = Vec::new();
    s.evaluate_all(&Context::Flat(&pairs), opts, &mut flat);
    let nested = eval(&s, &json!({"company": {"id": "acme_inc"}, "user": {"tier": "silver"}}), opts);
    assert_eq!(serde_json::from_slice::<Value>(&flat).expect("json"), nested);
}

#[test]
fn single_flag_reasons() {
    let s = snapshot();
    let r = s
        .evaluate_flag::<String>("huddle", &Context::Nested(&json!({"company": {"id": "acme_inc"}})), 0.0, None)
        .expect("flag");
    assert!(r.enabled);
    assert_eq!(r.reason, "SPLIT");
    assert_eq!(r.variant, "small");
    let r = s.evaluate_flag::<String>("huddle", &Context::Nested(&json!({})), 0.0, None).expect("flag");
    assert_eq!((r.enabled, r.reason, r.variant.as_str()), (false, "DEFAULT", "off"));
    let r = s.evaluate_flag::<String>("off", &Context::Nested(&json!({})), 0.0, None).expect("flag");
    assert_eq!(r.reason, "DISABLED");
    assert!(s.evaluate_flag::<String>("nope", &Context::Nested(&json!({})), 0.0, None).is_none());
}

#[test]
fn bad_snapshots_name_the_node() {
    let e = Snapshot::compile(json!({"features": [{"key": "a"}, {"key": "b", "targeting": {"rules": [{"filter": {"type": "context", "field": "x", "operator": "GT!"}}]}}]}))
        .expect_err("rejected");
    assert_eq!(e.path, "$.features[1].targeting.rules[0].filter.operator");
    let e = Snapshot::compile(json!({"features": [{"key": "a"}, {"key": "a"}]})).expect_err("duplicate");
    assert_eq!(e.path, "$.features[1].key");
    assert!(Snapshot::from_json(b"{\"features\": [").is_err());
}
