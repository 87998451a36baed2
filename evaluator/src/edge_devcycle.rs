//! What a snapshot needs, besides DevCycle's own config, to answer DevCycle targets on the edge:
//! the link from a Reflag-shape flag to the DevCycle feature that decides it, the coercion of
//! string custom data to the declared types, and which SDK key kinds may see which flags.
//!
//! Snapshot members (all optional, beside `features` and `devcycle`):
//! `"customDataTypes": {dataKey: "String" | "Number" | "Boolean"}` and
//! `"sdkVisibility": {flagKey: {"client"?: false, "mobile"?: false, "server"?: false}}`.

use crate::devcycle::{self, Served};
use crate::error::RuleError;
use serde_json::{Map, Number, Value};
use std::collections::HashMap;

/// The kind of SDK key a request came with (the key index's `client`, `mobile`, `server`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Client,
    Mobile,
    Server,
}

impl KeyKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client" => Some(Self::Client),
            "mobile" => Some(Self::Mobile),
            "server" => Some(Self::Server),
            _ => None,
        }
    }

    fn bit(self) -> u8 {
        match self {
            Self::Client => 1,
            Self::Mobile => 2,
            Self::Server => 4,
        }
    }
}

/// The key kinds a flag is hidden from (`sdkVisibility`), as a bit set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hidden(u8);

impl Hidden {
    pub fn hides(self, kind: Option<KeyKind>) -> bool {
        kind.is_some_and(|k| self.0 & k.bit() != 0)
    }
}

/// `sdkVisibility` of the snapshot: flag key → the kinds it is hidden from.
pub fn visibility(v: Option<&Value>, path: &str) -> Result<HashMap<String, Hidden>, RuleError> {
    let obj = match v {
        None | Some(Value::Null) => return Ok(HashMap::new()),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(RuleError::new(path, "must be an object")),
    };
    let mut out = HashMap::with_capacity(obj.len());
    for (flag, kinds) in obj {
        let p = format!("{path}[{}]", Value::String(flag.clone()));
        let kinds = kinds.as_object().ok_or_else(|| RuleError::new(&p, "must be an object"))?;
        let mut bits = 0u8;
        for (kind, visible) in kinds {
            let k = KeyKind::parse(kind)
                .ok_or_else(|| RuleError::new(format!("{p}.{kind}"), "must be client, mobile or server"))?;
            match visible {
                Value::Bool(false) => bits |= k.bit(),
                Value::Bool(true) => {}
                _ => return Err(RuleError::new(format!("{p}.{kind}"), "must be a boolean")),
            }
        }
        out.insert(flag.clone(), Hidden(bits));
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataType {
    String,
    Number,
    Boolean,
}

/// Declared custom data types: string values of these keys are coerced before evaluation.
#[derive(Debug, Clone, Default)]
pub struct CustomTypes(HashMap<String, DataType>);

impl CustomTypes {
    pub fn compile(v: Option<&Value>, path: &str) -> Result<Self, RuleError> {
        let obj = match v {
            None | Some(Value::Null) => return Ok(Self::default()),
            Some(Value::Object(o)) => o,
            Some(_) => return Err(RuleError::new(path, "must be an object")),
        };
        let mut out = HashMap::with_capacity(obj.len());
        for (key, t) in obj {
            let kind = match t.as_str() {
                Some("String") => DataType::String,
                Some("Number") => DataType::Number,
                Some("Boolean") => DataType::Boolean,
                _ => {
                    return Err(RuleError::new(
                        format!("{path}[{}]", Value::String(key.clone())),
                        "must be \"String\", \"Number\" or \"Boolean\"",
                    ))
                }
            };
            // String properties need no coercion: only the others are kept.
            if kind != DataType::String {
                out.insert(key.clone(), kind);
            }
        }
        Ok(Self(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Coerce the string values of typed keys in `customData` and `privateCustomData`:
    /// Number from a decimal number text (finite), Boolean from `true`/`false`. A value that does
    /// not read as its type is left as it is (and so does not match that type's filters).
    pub fn coerce(&self, user: &mut Map<String, Value>) {
        if self.0.is_empty() {
            return;
        }
        for field in ["customData", "privateCustomData"] {
            let Some(Value::Object(data)) = user.get_mut(field) else {
                continue;
            };
            for (key, value) in data.iter_mut() {
                let (Some(kind), Value::String(text)) = (self.0.get(key), &*value) else {
                    continue;
                };
                if let Some(typed) = coerce_text(text, *kind) {
                    *value = typed;
                }
            }
        }
    }
}

fn coerce_text(text: &str, kind: DataType) -> Option<Value> {
    match kind {
        DataType::String => None,
        DataType::Boolean => match text {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        DataType::Number => {
            let t = text.trim();
            // Rust's parser also reads "inf"/"NaN"; only decimal numbers are numbers here.
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')) {
                return None;
            }
            let f: f64 = t.parse().ok()?;
            if !f.is_finite() {
                return None;
            }
            if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
                Some(Value::Number(Number::from(f as i64)))
            } else {
                Number::from_f64(f).map(Value::Number)
            }
        }
    }
}

/// A Reflag-shape flag decided by a DevCycle feature.
#[derive(Debug, Clone)]
pub struct DevcycleFlag {
    /// Index of the feature in the DevCycle config.
    pub feature: usize,
    /// Per variation: the config the answer shows (`None` when the flag has no config).
    pub variations: Box<[Option<VariationConfig>]>,
    /// Per target: serving from it is a `SPLIT`.
    pub splits: Box<[bool]>,
}

/// One variation's `config` member of the answer.
#[derive(Debug, Clone)]
pub struct VariationConfig {
    pub key: Box<str>,
    pub payload: Value,
    /// `,"config":{"key":…,"version":…,"payload":…` without the closing brace.
    pub json: Vec<u8>,
    /// How OFREP answers show it.
    pub ofrep: crate::ofrep::VariantBytes,
}

impl DevcycleFlag {
    /// Link a flag to feature `feature` of `config`; `config_version` is `Some` when the flag's
    /// definition has a `config` (its answer then shows the served variation).
    pub fn link(
        config: &devcycle::Config,
        feature: usize,
        config_version: Option<Option<i64>>,
        variant_json: impl Fn(&str, Option<i64>, &Value) -> Vec<u8>,
    ) -> Self {
        let variations = config
            .variations(feature)
            .into_iter()
            .map(|v| {
                config_version.map(|version| {
                    let payload = Value::Object(v.payload);
                    let json = variant_json(v.key, version, &payload);
                    let ofrep = crate::ofrep::VariantBytes::new(v.key, &payload);
                    VariationConfig { key: v.key.into(), payload, json, ofrep }
                })
            })
            .collect();
        Self { feature, variations, splits: config.target_splits(feature).into() }
    }

    /// The variation config of a serving, if the flag shows one.
    pub fn config_of(&self, served: &Served) -> Option<&VariationConfig> {
        self.variations.get(served.variation).and_then(Option::as_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn coercion_by_declared_type() {
        let types =
            CustomTypes::compile(Some(&json!({"n": "Number", "b": "Boolean", "s": "String"})), "$").expect("compiles");
        let mut user = json!({"customData": {"n": "12", "b": "true", "s": "7", "x": "3"},
            "privateCustomData": {"n": "1.5", "b": "yes"}});
        types.coerce(user.as_object_mut().expect("object"));
        assert_eq!(
            user,
            json!({"customData": {"n": 12, "b": true, "s": "7", "x": "3"},
                "privateCustomData": {"n": 1.5, "b": "yes"}})
        );
        for bad in ["", "inf", "NaN", "1e999", "0x10", "12abc"] {
            assert_eq!(coerce_text(bad, DataType::Number), None, "{bad}");
        }
        assert_eq!(coerce_text(" -3 ", DataType::Number), Some(json!(-3)));
        assert!(CustomTypes::compile(Some(&json!({"k": "Semver"})), "$.customDataTypes").is_err());
    }

    #[test]
    fn visibility_bits() {
        let v = visibility(Some(&json!({"a": {"client": false, "server": true}})), "$.sdkVisibility").expect("ok");
        let a = v.get("a").copied().unwrap_or_default();
        assert!(a.hides(Some(KeyKind::Client)));
        assert!(!a.hides(Some(KeyKind::Server)));
        assert!(!a.hides(Some(KeyKind::Mobile)));
        assert!(!a.hides(None));
        assert!(visibility(Some(&json!({"a": {"web": false}})), "$").is_err());
    }
}
