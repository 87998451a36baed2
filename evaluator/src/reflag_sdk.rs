//! What `GET /features` may hand to Reflag's server SDKs, which evaluate flags locally with
//! `@reflag/flag-evaluation` 1.0.1.
//!
//! A snapshot may hold definitions those SDKs cannot evaluate as the edge does, in two ways:
//!
//! - **Shapes they crash on.** `compileFlagDefinitions` calls `targeting.rules.map` and
//!   `config.variants.map`, and `newEvaluator` reads `filter.type` of every variant, so one
//!   variant without a filter makes `refreshFlags()` throw for the whole environment (stale
//!   flags; a fresh SDK serves none). The evaluator reads a missing variant filter as "everyone",
//!   missing rules as none: [`normalized`] writes exactly that out, so the SDK evaluates it alike.
//!   `{"type": "all"}` (a DevCycle node with the exact Reflag equivalent) becomes a constant.
//! - **Nodes they evaluate as false.** Their evaluator answers `false` for any filter type it
//!   does not know: DevCycle `user` and `optIn` filters (typed comparisons on a DevCycle user,
//!   which a Reflag `context` filter over flattened strings cannot express exactly) and
//!   `jsonLogic` rules. A flag that contains one is left out of `GET /features`
//!   ([`remote_only_reason`] says why, and the edge lists it under `remoteEvaluationOnly`):
//!   the SDK then treats it as an unknown flag (disabled) instead of silently evaluating a
//!   different rule, and remote evaluation (`getFlagRemote`, `/features/evaluated`, OFREP) gives
//!   the right answer.

use serde_json::{json, Map, Value};

/// Why a Reflag SDK cannot evaluate this flag definition locally, or `None` when it can.
pub fn remote_only_reason(flag: &Value) -> Option<String> {
    let mut trees: Vec<(String, &Value)> = Vec::new();
    if let Some(rules) = flag.pointer("/targeting/rules").and_then(Value::as_array) {
        for (i, r) in rules.iter().enumerate() {
            if let Some(f) = r.get("filter") {
                trees.push((format!("targeting.rules[{i}].filter"), f));
            }
        }
    }
    if let Some(variants) = flag.pointer("/config/variants").and_then(Value::as_array) {
        for (i, v) in variants.iter().enumerate() {
            if let Some(f) = v.get("filter") {
                trees.push((format!("config.variants[{i}].filter"), f));
            }
        }
    }
    trees.into_iter().find_map(|(path, tree)| foreign_node(tree, path))
}

/// The first node of a filter tree that Reflag's evaluator does not know, described.
fn foreign_node(node: &Value, path: String) -> Option<String> {
    let kind = node.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "context" | "rolloutPercentage" | "constant" | "all" => None,
        "group" => node.get("filters").and_then(Value::as_array).and_then(|filters| {
            filters.iter().enumerate().find_map(|(i, f)| foreign_node(f, format!("{path}.filters[{i}]")))
        }),
        "negation" => node.get("filter").and_then(|f| foreign_node(f, format!("{path}.filter"))),
        "jsonLogic" => Some(format!("{path} is a JSON Logic rule, which Reflag SDKs evaluate as false")),
        other => Some(format!(
            "{path} is a DevCycle {other:?} filter, which Reflag SDKs evaluate as false (no exact Reflag translation)"
        )),
    }
}

/// The definition as a Reflag SDK must receive it to evaluate it as the edge does, or `None`
/// when it already is: `targeting.rules` and `config.variants` present, every variant with a
/// filter, `{"type": "all"}` as a constant. The evaluator reads the result as it reads the
/// original.
pub fn normalized(flag: &Value) -> Option<Value> {
    if !needs_normalizing(flag) {
        return None;
    }
    let mut out = flag.clone();
    normalize(&mut out);
    Some(out)
}

/// Whether [`normalize`] would change anything (checked first so that the usual, already
/// complete definition is not copied).
fn needs_normalizing(flag: &Value) -> bool {
    let Some(m) = flag.as_object() else { return false };
    let rules = match m.get("targeting") {
        Some(Value::Object(t)) => t.get("rules").and_then(Value::as_array),
        _ => None,
    };
    let Some(rules) = rules else { return true };
    if rules.iter().filter_map(|r| r.get("filter")).any(has_all) {
        return true;
    }
    match m.get("config") {
        Some(Value::Object(c)) => match c.get("variants").and_then(Value::as_array) {
            None => true,
            Some(variants) => variants.iter().filter(|v| v.is_object()).any(|v| match v.get("filter") {
                None | Some(Value::Null) => true,
                Some(f) => has_all(f),
            }),
        },
        _ => false,
    }
}

fn has_all(node: &Value) -> bool {
    match node.get("type").and_then(Value::as_str) {
        Some("all") => true,
        Some("group") => node.get("filters").and_then(Value::as_array).is_some_and(|fs| fs.iter().any(has_all)),
        Some("negation") => node.get("filter").is_some_and(has_all),
        _ => false,
    }
}

fn normalize(flag: &mut Value) -> bool {
    let Some(m) = flag.as_object_mut() else { return false };
    let mut changed = false;
    let targeting = m.entry("targeting").or_insert(Value::Null);
    if !targeting.is_object() {
        *targeting = json!({});
        changed = true;
    }
    changed |= ensure_array(targeting, "rules");
    if let Some(rules) = targeting.get_mut("rules").and_then(Value::as_array_mut) {
        for r in rules {
            if let Some(f) = r.get_mut("filter") {
                changed |= constants_for_all(f);
            }
        }
    }
    if let Some(config) = m.get_mut("config").filter(|c| c.is_object()) {
        changed |= ensure_array(config, "variants");
        if let Some(variants) = config.get_mut("variants").and_then(Value::as_array_mut) {
            for v in variants.iter_mut().filter_map(Value::as_object_mut) {
                changed |= fill_filter(v);
            }
        }
    }
    changed
}

fn ensure_array(parent: &mut Value, key: &str) -> bool {
    match parent.as_object_mut().map(|m| m.entry(key).or_insert(Value::Null)) {
        Some(v) if !v.is_array() => {
            *v = Value::Array(Vec::new());
            true
        }
        _ => false,
    }
}

fn fill_filter(variant: &mut Map<String, Value>) -> bool {
    match variant.get_mut("filter") {
        Some(f) if !f.is_null() => constants_for_all(f),
        _ => {
            variant.insert("filter".into(), json!({"type": "constant", "value": true}));
            true
        }
    }
}

/// Replaces every `{"type": "all"}` with `{"type": "constant", "value": true}`.
fn constants_for_all(node: &mut Value) -> bool {
    match node.get("type").and_then(Value::as_str) {
        Some("all") => {
            *node = json!({"type": "constant", "value": true});
            true
        }
        Some("group") => node
            .get_mut("filters")
            .and_then(Value::as_array_mut)
            .is_some_and(|fs| fs.iter_mut().fold(false, |acc, f| constants_for_all(f) | acc)),
        Some("negation") => node.get_mut("filter").is_some_and(constants_for_all),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_variant_filters_and_rules_are_filled_in() {
        let flag = json!({"key": "f", "config": {"version": 1, "variants": [{"key": "a", "payload": 1}]}});
        let fixed = normalized(&flag).expect("changed");
        assert_eq!(fixed["targeting"], json!({"rules": []}));
        assert_eq!(fixed["config"]["variants"][0]["filter"], json!({"type": "constant", "value": true}));
        assert_eq!(normalized(&fixed), None);
        assert_eq!(normalized(&json!({"key": "f", "targeting": {"rules": []}, "config": null})), None);
        let all =
            json!({"key": "f", "targeting": {"rules": [{"filter": {"type": "negation", "filter": {"type": "all"}}}]}});
        assert_eq!(
            normalized(&all).expect("changed")["targeting"]["rules"][0]["filter"]["filter"],
            json!({"type": "constant", "value": true})
        );
    }

    #[test]
    fn foreign_nodes_are_named_with_their_path() {
        let ok = json!({"key": "f", "targeting": {"rules": [{"filter": {"type": "group", "operator": "and",
            "filters": [{"type": "all"}, {"type": "context", "field": "a", "operator": "SET"}]}}]}});
        assert_eq!(remote_only_reason(&ok), None);
        let user = json!({"key": "f", "targeting": {"rules": [{"filter": {"type": "constant", "value": true}}]},
            "config": {"variants": [{"key": "a", "filter": {"type": "negation", "filter": {"type": "group",
                "operator": "or", "filters": [{"type": "constant", "value": false},
                {"type": "user", "subType": "email", "comparator": "=", "values": ["a"]}]}}}]}});
        let reason = remote_only_reason(&user).expect("foreign");
        assert!(
            reason.starts_with("config.variants[0].filter.filter.filters[1] is a DevCycle \"user\" filter"),
            "{reason}"
        );
        let logic = json!({"key": "f", "targeting": {"rules": [{"filter": {"type": "jsonLogic", "rule": true}}]}});
        assert!(remote_only_reason(&logic).expect("foreign").contains("JSON Logic"));
    }
}
