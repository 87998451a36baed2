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

/// The answer bytes the DevCycle routes send (`Config::answer`, written without a value tree)
/// are exactly the parts of the bucketed config (`write_part` over `Config::bucket`), for every
/// part, every vector user and user variants, with and without features hidden.
#[test]
fn devcycle_answers_equal_the_parts_of_the_bucketed_config() {
    let file = load();
    let config = &file["config"];
    let now = file["now"]["epochMs"].as_i64().expect("now.epochMs is an integer");
    let compiled = devcycle::Config::compile(config, "$.config").expect("the example config compiles");
    let feature_ids: Vec<String> = config["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f["_id"].as_str().expect("_id").to_owned())
        .collect();
    let variable_keys: Vec<String> = config["variables"]
        .as_array()
        .expect("variables")
        .iter()
        .map(|v| v["key"].as_str().expect("key").to_owned())
        .collect();
    let hidden_sets: Vec<std::collections::HashSet<String>> = vec![
        Default::default(),
        feature_ids.iter().take(1).cloned().collect(),
        feature_ids.iter().skip(1).step_by(2).cloned().collect(),
    ];
    let mut users: Vec<Value> = file["cases"].as_array().expect("cases").iter().map(|c| c["user"].clone()).collect();
    users.extend((0..40).map(|i| serde_json::json!({"user_id": format!("user-{i}"), "country": "DE"})));
    let missing = "missing".to_owned();
    let mut checked = 0;
    for user in &users {
        for hidden in &hidden_sets {
            let mut parts = vec![devcycle::Part::Config, devcycle::Part::Variables, devcycle::Part::Features];
            parts.push(devcycle::Part::Ofrep);
            for key in variable_keys.iter().chain(std::iter::once(&missing)) {
                parts.push(devcycle::Part::Variable(key));
                parts.push(devcycle::Part::OfrepFlag(key));
            }
            for part in parts {
                let direct = compiled.answer(user, now, part, hidden);
                let reference = devcycle::write_part(compiled.bucket(user, now), part, hidden);
                assert_eq!(
                    direct.as_deref().map(String::from_utf8_lossy),
                    reference.as_deref().map(String::from_utf8_lossy),
                    "{part:?} for {user} hiding {hidden:?}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 1000);
}
