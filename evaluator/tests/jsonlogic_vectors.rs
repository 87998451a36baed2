//! Conformance vectors for JSON Logic (jsonlogic.com suite) and flagd's `fractional` and
//! `sem_ver`, plus a property test that arbitrary rules and data never panic.

mod common;

use evaluator::jsonlogic;
use proptest::prelude::*;
use serde_json::Value;

use common::vectors_dir;

fn load(name: &str) -> Vec<Value> {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read vectors file {} (set VECTORS_DIR): {e}", path.display()));
    match serde_json::from_str(&text) {
        Ok(Value::Array(cases)) => cases,
        Ok(_) => panic!("{} is not a JSON array", path.display()),
        Err(e) => panic!("{} is not valid JSON: {e}", path.display()),
    }
}

/// JSON equality where numbers compare by value (`1 == 1.0`) and object key order is ignored.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(i), Some(j)) => i == j,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn run(name: &str, expected_count: usize) {
    let cases = load(name);
    assert_eq!(cases.len(), expected_count, "{name}: unexpected number of cases");
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let rule = &case["rule"];
        let data = &case["data"];
        let expected = &case["expected"];
        let label = case.get("description").or_else(|| case.get("section")).cloned().unwrap_or(Value::Null);
        match jsonlogic::apply(rule, data) {
            Ok(got) if json_eq(&got, expected) => {}
            Ok(got) => failures.push(format!("#{i} {label}: rule {rule} data {data}: expected {expected}, got {got}")),
            Err(e) => failures.push(format!("#{i} {label}: rule {rule} data {data}: expected {expected}, error {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn json_eq_is_numeric_aware() {
    assert!(json_eq(&serde_json::json!([1, {"a": 2.0}]), &serde_json::json!([1.0, {"a": 2}])));
    assert!(!json_eq(&serde_json::json!(1), &serde_json::json!("1")));
    assert!(!json_eq(&serde_json::json!({"a": 1}), &serde_json::json!({"a": 1, "b": 2})));
}

#[test]
fn jsonlogic_official_suite() {
    run("jsonlogic-official.json", 278);
}

#[test]
fn flagd_fractional_suite() {
    run("flagd-fractional.json", 47);
}

#[test]
fn flagd_semver_suite() {
    run("flagd-semver.json", 43);
}

// ---------------------------------------------------------------------------------------------
// Property test: nothing panics.

const OPS: &[&str] = &[
    "var",
    "missing",
    "missing_some",
    "if",
    "?:",
    "==",
    "===",
    "!=",
    "!==",
    "!",
    "!!",
    "or",
    "and",
    "<",
    "<=",
    ">",
    ">=",
    "max",
    "min",
    "+",
    "-",
    "*",
    "/",
    "%",
    "cat",
    "substr",
    "in",
    "merge",
    "map",
    "filter",
    "reduce",
    "all",
    "none",
    "some",
    "log",
    "fractional",
    "sem_ver",
    "starts_with",
    "ends_with",
    "jp_ver_gt",
    "jp_ver_ge",
    "jp_ver_lt",
    "jp_ver_le",
    "jp_ver_eq",
    "str_gt",
    "str_ge",
    "str_lt",
    "str_le",
    "nope",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-5i64..20).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just(""),
            Just("a"),
            Just("a.b"),
            Just("0"),
            Just("1.2.3"),
            Just("v1.0"),
            Just("current"),
            Just("accumulator"),
            Just("targetingKey"),
            Just("$flagd.flagKey"),
            Just("é😀x"),
            Just(" 12 "),
            Just("-1"),
            Just("length"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
        "[a-z0-9.\\-]{0,6}".prop_map(Value::String),
    ]
}

fn json_data() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (prop_oneof![Just("a"), Just("b"), Just("0"), Just("targetingKey"), Just("$flagd")], inner),
                0..4
            )
            .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

fn rule() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(6, 64, 4, |inner| {
        prop_oneof![
            4 => (prop::sample::select(OPS), prop::collection::vec(inner.clone(), 0..4))
                .prop_map(|(op, args)| serde_json::json!({ op: args })),
            1 => (prop::sample::select(OPS), inner.clone()).prop_map(|(op, arg)| serde_json::json!({ op: arg })),
            1 => prop::collection::vec(inner, 0..4).prop_map(Value::Array),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_rules_never_panic(r in rule(), d in json_data()) {
        let _ = jsonlogic::apply(&r, &d);
        if let Ok(logic) = jsonlogic::Logic::compile(&r, "$.rule") {
            let mut budget = evaluator::Budget::new(10_000);
            let _ = logic.eval(&d, &mut budget);
            let _ = logic.eval_truthy(&d, &mut evaluator::Budget::new(100));
        }
    }
}
