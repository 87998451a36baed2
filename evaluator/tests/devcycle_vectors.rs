//! DevCycle conformance: `tests/vectors/devcycle-example.json` (one config, 10 users, the
//! reference assignments of @devcycle/bucketing 1.38.7 at a frozen clock).

mod common;

use common::vectors_dir;
use evaluator::devcycle;
use serde_json::{Map, Value};

fn load() -> Value {
    let path = vectors_dir().join("devcycle-example.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read DevCycle vectors at {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

#[test]
fn devcycle_example_vectors() {
    let file = load();
    let config = &file["config"];
    let now = file["now"]["epochMs"].as_i64().expect("now.epochMs is an integer");
    let cases = file["cases"].as_array().expect("cases is an array");
    assert_eq!(cases.len(), 10, "expected 10 DevCycle cases");

    let compiled = devcycle::Config::compile(config, "$.config").expect("the example config compiles");
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let user = &case["user"];
        let expected = &case["expected"];
        let out = devcycle::bucket(config, user, now).expect("one-shot bucketing succeeds");
        assert_eq!(out, compiled.bucket(user, now), "case {i}: compiled and one-shot results differ");

        let features: Map<String, Value> = out["features"]
            .as_object()
            .expect("features is an object")
            .iter()
            .map(|(key, f)| {
                let picked = serde_json::json!({"_variation": f["_variation"], "variationKey": f["variationKey"]});
                (key.clone(), picked)
            })
            .collect();
        let variables: Map<String, Value> = out["variables"]
            .as_object()
            .expect("variables is an object")
            .iter()
            .map(|(key, v)| (key.clone(), v["value"].clone()))
            .collect();
        if Value::Object(features.clone()) != expected["features"] {
            failures.push(format!(
                "case {i} ({}): features {} != expected {}",
                user["user_id"],
                Value::Object(features),
                expected["features"]
            ));
        }
        if Value::Object(variables.clone()) != expected["variables"] {
            failures.push(format!(
                "case {i} ({}): variables {} != expected {}",
                user["user_id"],
                Value::Object(variables),
                expected["variables"]
            ));
        }
    }
    assert!(failures.is_empty(), "{} DevCycle mismatches:\n{}", failures.len(), failures.join("\n"));
}
