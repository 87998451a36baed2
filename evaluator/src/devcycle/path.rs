//! JSONPath pieces for compile errors and small JSON helpers shared by the submodules.

use serde_json::Value;

/// `path.key`, or `path["key"]` when `key` is not a plain identifier.
pub(crate) fn key_path(path: &str, key: &str) -> String {
    let plain = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", Value::String(key.to_owned()))
    }
}

/// `path[i]`.
pub(crate) fn index_path(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// JavaScript truthiness of a JSON value.
pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// Truthiness of a property that may be absent (`undefined`).
pub(crate) fn truthy_opt(v: Option<&Value>) -> bool {
    v.is_some_and(truthy)
}

/// Nesting depth of a JSON value, counted up to `limit + 1` (so deep values cost little).
pub(crate) fn depth_exceeds(v: &Value, limit: usize) -> bool {
    fn go(v: &Value, remaining: usize) -> bool {
        match v {
            Value::Array(a) => !a.is_empty() && (remaining == 0 || a.iter().any(|c| go(c, remaining - 1))),
            Value::Object(o) => !o.is_empty() && (remaining == 0 || o.values().any(|c| go(c, remaining - 1))),
            _ => false,
        }
    }
    go(v, limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths() {
        assert_eq!(key_path("$", "features"), "$.features");
        assert_eq!(key_path("$.audiences", "9c90"), "$.audiences[\"9c90\"]");
        assert_eq!(key_path("$.a", "x y\""), "$.a[\"x y\\\"\"]");
        assert_eq!(index_path("$.features", 2), "$.features[2]");
    }

    #[test]
    fn truthiness() {
        for v in [json!(null), json!(false), json!(0), json!(-0.0), json!("")] {
            assert!(!truthy(&v), "{v}");
        }
        for v in [json!(true), json!(1), json!(0.1), json!("0"), json!([]), json!({})] {
            assert!(truthy(&v), "{v}");
        }
        assert!(!truthy_opt(None));
    }

    #[test]
    fn depth() {
        assert!(!depth_exceeds(&json!(1), 0));
        assert!(!depth_exceeds(&json!([]), 0));
        assert!(depth_exceeds(&json!([1]), 0));
        assert!(!depth_exceeds(&json!([[1]]), 2));
        assert!(depth_exceeds(&json!({"a": [[1]]}), 2));
    }
}
