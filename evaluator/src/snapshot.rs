//! A compiled environment snapshot: every flag's targeting and config variants, evaluated for one
//! context at a time straight into the Reflag `/features/evaluated` JSON.
//!
//! Document shape (the Reflag `GET /features` body, plus an optional DevCycle SDK config):
//! `{"features": [{"key", "targeting": {"version", "rules": [{"filter"}]},
//!   "config"?: {"version", "variants": [{"filter", "key", "payload"}]}}], "devcycle"?: {...}}`.

use crate::context::{unflatten, Fields, FlatContext};
use crate::devcycle;
use crate::error::{Budget, RuleError};
use crate::reflag::{devcycle_user, Compiler, Filter, Missing, Scope};
use crate::reflag_sdk;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::HashMap;

/// One config variant: its filter and its pre-serialized `,"config":{...}` member.
#[derive(Debug, Clone)]
struct Variant {
    filter: Filter,
    key: Box<str>,
    payload: Value,
    /// `,"config":{"key":…,"version":…,"payload":…` without the closing brace.
    json: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Flag {
    key: Box<str>,
    targeting_version: Option<i64>,
    rules: Vec<Filter>,
    variants: Vec<Variant>,
    config_version: Option<i64>,
    /// `"key":{"isEnabled":`
    head: Vec<u8>,
    /// `,"key":"…","targetingVersion":…`
    tail: Vec<u8>,
}

/// How to evaluate all flags.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Only flags that evaluate to enabled (`/features/enabled`).
    pub enabled_only: bool,
    /// Also write an empty `missingContextFields`, and the per-variant results when no config
    /// variant matched (`ruleEvaluationResults` and non-empty `missingContextFields` are always
    /// written).
    pub debug: bool,
    /// The clock for AFTER/BEFORE and DevCycle schedules, epoch milliseconds.
    pub now_ms: f64,
}

/// A context in one of the two forms the edge receives.
pub enum Context<'a, S: AsRef<str>> {
    Nested(&'a Value),
    Flat(&'a [(S, S)]),
}

/// The OFREP-style result of one flag.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagResult {
    pub enabled: bool,
    /// `"on"`/`"off"`, or the matched config variant's key.
    pub variant: String,
    /// STATIC, TARGETING_MATCH, SPLIT, DEFAULT or DISABLED.
    pub reason: &'static str,
    pub targeting_version: Option<i64>,
    pub config: Option<(String, Value)>,
    pub rule_results: Vec<bool>,
    pub missing: Vec<String>,
}

/// The top level of a JSON snapshot with `features` left as text.
#[derive(serde::Deserialize)]
struct RawTop<'a> {
    #[serde(borrow, default)]
    features: Option<&'a serde_json::value::RawValue>,
    #[serde(default)]
    devcycle: Option<Value>,
}

#[derive(Debug)]
pub struct Snapshot {
    fields: Fields,
    flags: Vec<Flag>,
    by_key: HashMap<Box<str>, usize>,
    needs_nested: bool,
    devcycle: Option<devcycle::Config>,
    // The `features` array as JSON, kept as bytes: a `Value` tree of it would cost several times
    // the compiled flags' memory for a body that is only ever sent as is.
    definitions_json: Vec<u8>,
    /// What `GET /features` serves Reflag SDKs when it differs from `definitions_json`
    /// (module [`reflag_sdk`]); `None` when they are the same.
    local_json: Option<Vec<u8>>,
    /// Flags left out of `local_json`, with the reason.
    remote_only: Vec<(Box<str>, String)>,
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn opt_int(m: &Map<String, Value>, key: &str, path: &str) -> Result<Option<i64>, RuleError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            n.as_i64().map(Some).ok_or_else(|| RuleError::new(format!("{path}.{key}"), "expected an integer"))
        }
        Some(_) => Err(RuleError::new(format!("{path}.{key}"), "expected an integer")),
    }
}

fn array<'v>(m: &'v Map<String, Value>, key: &str, path: &str) -> Result<&'v [Value], RuleError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(RuleError::new(format!("{path}.{key}"), "expected an array")),
    }
}

impl Snapshot {
    pub fn from_json(bytes: &[u8]) -> Result<Self, RuleError> {
        // Fast path: borrow the `features` text as it came, so `GET /features` can send it
        // without a re-serialization. Anything unusual takes the general path, whose errors
        // name the offending node.
        if let Ok(top) = serde_json::from_slice::<RawTop<'_>>(bytes) {
            if let Some(raw) = top.features {
                if let Ok(Value::Array(features)) = serde_json::from_str::<Value>(raw.get()) {
                    return Self::build(&features, top.devcycle.as_ref(), raw.get().as_bytes().to_vec());
                }
            }
        }
        let v: Value = serde_json::from_slice(bytes).map_err(|e| RuleError::new("$", format!("invalid JSON: {e}")))?;
        Self::compile(v)
    }

    pub fn from_msgpack(bytes: &[u8]) -> Result<Self, RuleError> {
        let v: Value =
            rmp_serde::from_slice(bytes).map_err(|e| RuleError::new("$", format!("invalid MessagePack: {e}")))?;
        Self::compile(v)
    }

    pub fn compile(doc: Value) -> Result<Self, RuleError> {
        let root = doc.as_object().ok_or_else(|| RuleError::new("$", "snapshot must be an object"))?;
        let features = array(root, "features", "$")?;
        let definitions = serde_json::to_vec(features).unwrap_or_else(|_| b"[]".to_vec());
        Self::build(features, root.get("devcycle"), definitions)
    }

    fn build(features: &[Value], devcycle: Option<&Value>, definitions_json: Vec<u8>) -> Result<Self, RuleError> {
        let mut fields = Fields::default();
        let mut flags = Vec::with_capacity(features.len());
        let mut by_key = HashMap::with_capacity(features.len());
        let mut local_differs = false;
        let mut remote_only = Vec::new();
        let mut local: Vec<Cow<'_, Value>> = Vec::with_capacity(features.len());
        for (i, f) in features.iter().enumerate() {
            let path = format!("$.features[{i}]");
            let flag = compile_flag(&mut fields, f, &path)?;
            if by_key.insert(flag.key.clone(), i).is_some() {
                return Err(RuleError::new(format!("{path}.key"), format!("duplicate flag key {:?}", flag.key)));
            }
            if let Some(reason) = reflag_sdk::remote_only_reason(f) {
                remote_only.push((flag.key.clone(), reason));
            } else if let Some(fixed) = reflag_sdk::normalized(f) {
                local_differs = true;
                local.push(Cow::Owned(fixed));
            } else {
                local.push(Cow::Borrowed(f));
            }
            flags.push(flag);
        }
        local_differs |= !remote_only.is_empty();
        let local_json = local_differs.then(|| serde_json::to_vec(&local).unwrap_or_else(|_| b"[]".to_vec()));
        let devcycle = match devcycle {
            None | Some(Value::Null) => None,
            Some(cfg) => Some(devcycle::Config::compile(cfg, "$.devcycle")?),
        };
        let needs_nested =
            flags.iter().any(|f| f.rules.iter().chain(f.variants.iter().map(|v| &v.filter)).any(Filter::needs_nested));
        Ok(Self { fields, flags, by_key, needs_nested, devcycle, definitions_json, local_json, remote_only })
    }

    pub fn len(&self) -> usize {
        self.flags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    pub fn flag_keys(&self) -> impl Iterator<Item = &str> {
        self.flags.iter().map(|f| &*f.key)
    }

    pub fn has_devcycle(&self) -> bool {
        self.devcycle.is_some()
    }

    /// The `features` array of the document as JSON, serialized once.
    pub fn definitions_json(&self) -> &[u8] {
        &self.definitions_json
    }

    /// The `features` array of `GET /features`: every flag a Reflag SDK evaluates locally exactly
    /// as the edge does, in the shape those SDKs require (module [`reflag_sdk`]).
    pub fn local_definitions_json(&self) -> &[u8] {
        self.local_json.as_deref().unwrap_or(&self.definitions_json)
    }

    /// The flags `GET /features` leaves out, each with the reason (remote evaluation only).
    pub fn remote_only(&self) -> &[(Box<str>, String)] {
        &self.remote_only
    }

    /// DevCycle bucketed config for a DevCycle-shaped user, when the snapshot carries one.
    pub fn devcycle_bucket(&self, user: &Value, now_ms: i64) -> Option<Value> {
        self.devcycle.as_ref().map(|c| c.bucket(user, now_ms))
    }

    fn with_scope<S: AsRef<str>, R>(
        &self,
        ctx: &Context<'_, S>,
        now_ms: f64,
        f: impl FnOnce(&Scope<'_, '_>) -> R,
    ) -> R {
        let unflattened;
        let (flat, nested) = match ctx {
            Context::Nested(v) => (FlatContext::from_nested(&self.fields, v), *v),
            Context::Flat(pairs) => {
                let nested = if self.needs_nested {
                    unflattened = unflatten(pairs);
                    &unflattened
                } else {
                    &Value::Null
                };
                (FlatContext::from_pairs(&self.fields, pairs), nested)
            }
        };
        let user = if self.needs_nested { devcycle_user(nested) } else { Value::Null };
        f(&Scope { flat: &flat, nested, user: &user, now_ms })
    }

    /// Append the `features` object of `/features/evaluated` for one context to `out`.
    pub fn evaluate_all<S: AsRef<str>>(&self, ctx: &Context<'_, S>, opts: Options, out: &mut Vec<u8>) {
        self.with_scope(ctx, opts.now_ms, |scope| {
            out.reserve(self.flags.len() * 96);
            out.push(b'{');
            let mut first = true;
            let (mut missing, mut cfg_missing) = (Missing::default(), Missing::default());
            let (mut results, mut cfg_results): (Vec<bool>, Vec<bool>) = (Vec::new(), Vec::new());
            for flag in &self.flags {
                missing.0.clear();
                results.clear();
                let mut budget = Budget::default();
                // Every rule and every variant is evaluated, as `rules.map(...)` in the reference,
                // because SDKs read the per-rule results and missing fields (check events, warnings).
                let enabled = eval_rules(&flag.rules, scope, &mut missing, &mut budget, Some(&mut results));
                if opts.enabled_only && !enabled {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                out.extend_from_slice(&flag.head);
                out.extend_from_slice(if enabled { b"true" } else { b"false" });
                out.extend_from_slice(&flag.tail);
                write_details(out, &results, &missing, &self.fields, opts.debug);
                if !flag.variants.is_empty() {
                    cfg_missing.0.clear();
                    cfg_results.clear();
                    let matched =
                        pick_variant(&flag.variants, scope, &mut cfg_missing, &mut budget, Some(&mut cfg_results));
                    if let Some(v) = matched {
                        out.extend_from_slice(&v.json);
                        write_details(out, &cfg_results, &cfg_missing, &self.fields, opts.debug);
                        out.push(b'}');
                    } else if opts.debug {
                        out.extend_from_slice(b",\"config\":{");
                        if let Some(ver) = flag.config_version {
                            out.extend_from_slice(format!("\"version\":{ver}").as_bytes());
                        } else {
                            out.extend_from_slice(b"\"version\":null");
                        }
                        write_details(out, &cfg_results, &cfg_missing, &self.fields, true);
                        out.push(b'}');
                    }
                }
                out.push(b'}');
            }
            out.push(b'}');
        });
    }

    /// Evaluate one flag (OFREP); `None` when the snapshot has no such flag.
    pub fn evaluate_flag<S: AsRef<str>>(&self, key: &str, ctx: &Context<'_, S>, now_ms: f64) -> Option<FlagResult> {
        let flag = self.flags.get(*self.by_key.get(key)?)?;
        Some(self.with_scope(ctx, now_ms, |scope| {
            let mut missing = Missing::default();
            let mut results = Vec::new();
            let mut budget = Budget::default();
            let enabled = eval_rules(&flag.rules, scope, &mut missing, &mut budget, Some(&mut results));
            let static_flag = flag.rules.iter().all(|r| matches!(r, Filter::Constant(_)));
            let reason = if flag.rules.is_empty() {
                "DISABLED"
            } else if static_flag {
                "STATIC"
            } else if !enabled {
                "DEFAULT"
            } else if results.iter().position(|r| *r).and_then(|i| flag.rules.get(i)).is_some_and(Filter::has_rollout) {
                "SPLIT"
            } else {
                "TARGETING_MATCH"
            };
            let config = pick_variant(&flag.variants, scope, &mut Missing::default(), &mut budget, None)
                .map(|v| (v.key.to_string(), v.payload.clone()));
            let variant = match (&config, enabled) {
                (Some((k, _)), true) => k.clone(),
                (_, true) => "on".to_string(),
                (_, false) => "off".to_string(),
            };
            FlagResult {
                enabled,
                variant,
                reason,
                targeting_version: flag.targeting_version,
                config,
                rule_results: results,
                missing: missing.0.iter().map(|id| self.fields.name(*id).to_string()).collect(),
            }
        }))
    }
}

fn eval_rules(
    rules: &[Filter],
    scope: &Scope<'_, '_>,
    missing: &mut Missing,
    budget: &mut Budget,
    results: Option<&mut Vec<bool>>,
) -> bool {
    match results {
        // Every rule is evaluated, as `rules.map(...)` in the reference, so that the missing
        // fields and per-rule results are complete.
        Some(results) => {
            let mut any = false;
            for r in rules {
                let hit = r.eval(scope, missing, budget);
                results.push(hit);
                any |= hit;
            }
            any
        }
        None => rules.iter().any(|r| r.eval(scope, missing, budget)),
    }
}

fn pick_variant<'v>(
    variants: &'v [Variant],
    scope: &Scope<'_, '_>,
    missing: &mut Missing,
    budget: &mut Budget,
    mut results: Option<&mut Vec<bool>>,
) -> Option<&'v Variant> {
    let mut picked = None;
    for v in variants {
        let hit = v.filter.eval(scope, missing, budget);
        if let Some(r) = results.as_deref_mut() {
            r.push(hit);
        } else if hit {
            return Some(v);
        }
        if hit && picked.is_none() {
            picked = Some(v);
        }
    }
    picked
}

/// `ruleEvaluationResults` and `missingContextFields`, which Reflag's SDKs read without asking
/// (check events carry them; the browser SDK warns about missing fields). An empty
/// `missingContextFields` is left out unless `debug`: the SDKs only read its length, and on the
/// hot path it would add 25 bytes per flag.
fn write_details(out: &mut Vec<u8>, results: &[bool], missing: &Missing, fields: &Fields, debug: bool) {
    out.extend_from_slice(b",\"ruleEvaluationResults\":[");
    for (i, r) in results.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(if *r { b"true" } else { b"false" });
    }
    if missing.0.is_empty() && !debug {
        out.push(b']');
        return;
    }
    out.extend_from_slice(b"],\"missingContextFields\":[");
    for (i, id) in missing.0.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_str(out, fields.name(*id));
    }
    out.push(b']');
}

fn compile_flag(fields: &mut Fields, v: &Value, path: &str) -> Result<Flag, RuleError> {
    let m = v.as_object().ok_or_else(|| RuleError::new(path, "flag must be an object"))?;
    let key = match m.get("key") {
        Some(Value::String(s)) if !s.is_empty() => s.as_str(),
        _ => return Err(RuleError::new(format!("{path}.key"), "flag key must be a non-empty string")),
    };
    let tpath = format!("{path}.targeting");
    let (targeting_version, rule_values) = match m.get("targeting") {
        None | Some(Value::Null) => (None, &[][..]),
        Some(Value::Object(t)) => (opt_int(t, "version", &tpath)?, array(t, "rules", &tpath)?),
        Some(_) => return Err(RuleError::new(tpath, "expected an object")),
    };
    let mut compiler = Compiler { fields, flag_key: key };
    let mut rules = Vec::with_capacity(rule_values.len());
    for (i, r) in rule_values.iter().enumerate() {
        let rpath = format!("{tpath}.rules[{i}]");
        let filter = r.get("filter").ok_or_else(|| RuleError::new(format!("{rpath}.filter"), "is required"))?;
        rules.push(compiler.filter(filter, &format!("{rpath}.filter"))?);
    }
    let cpath = format!("{path}.config");
    let (config_version, variant_values) = match m.get("config") {
        None | Some(Value::Null) => (None, &[][..]),
        Some(Value::Object(c)) => (opt_int(c, "version", &cpath)?, array(c, "variants", &cpath)?),
        Some(_) => return Err(RuleError::new(cpath, "expected an object")),
    };
    let mut variants = Vec::with_capacity(variant_values.len());
    for (i, var) in variant_values.iter().enumerate() {
        let vpath = format!("{cpath}.variants[{i}]");
        let vm = var.as_object().ok_or_else(|| RuleError::new(&vpath, "expected an object"))?;
        let vkey = match vm.get("key") {
            Some(Value::String(s)) => s.as_str(),
            _ => return Err(RuleError::new(format!("{vpath}.key"), "variant key must be a string")),
        };
        let filter = match vm.get("filter") {
            Some(f) => compiler.filter(f, &format!("{vpath}.filter"))?,
            None => Filter::Constant(true),
        };
        let payload = vm.get("payload").cloned().unwrap_or(Value::Null);
        let mut json = b",\"config\":{\"key\":".to_vec();
        json_str(&mut json, vkey);
        json.extend_from_slice(b",\"version\":");
        match config_version {
            Some(ver) => json.extend_from_slice(ver.to_string().as_bytes()),
            None => json.extend_from_slice(b"null"),
        }
        json.extend_from_slice(b",\"payload\":");
        serde_json::to_writer(&mut json, &payload)
            .map_err(|e| RuleError::new(format!("{vpath}.payload"), e.to_string()))?;
        variants.push(Variant { filter, key: vkey.into(), payload, json });
    }
    let mut head = Vec::with_capacity(key.len() + 16);
    json_str(&mut head, key);
    head.extend_from_slice(b":{\"isEnabled\":");
    let mut tail = b",\"key\":".to_vec();
    json_str(&mut tail, key);
    tail.extend_from_slice(b",\"targetingVersion\":");
    match targeting_version {
        Some(ver) => tail.extend_from_slice(ver.to_string().as_bytes()),
        None => tail.extend_from_slice(b"null"),
    }
    Ok(Flag { key: key.into(), targeting_version, rules, variants, config_version, head, tail })
}

/// `evaluateFlagRules` for a list of `{filter, value}` rules (the `reflag_evaluate` entry point).
#[derive(Debug, Clone, PartialEq)]
pub struct RulesOutcome {
    pub value: Option<Value>,
    pub rule_results: Vec<bool>,
    pub reason: String,
    pub missing: Vec<String>,
}

pub fn evaluate_rules(flag_key: &str, rules: &Value, context: &Value, now_ms: f64) -> Result<RulesOutcome, RuleError> {
    let items = rules.as_array().ok_or_else(|| RuleError::new("$", "rules must be an array"))?;
    let mut fields = Fields::default();
    let mut compiled = Vec::with_capacity(items.len());
    {
        let mut compiler = Compiler { fields: &mut fields, flag_key };
        for (i, r) in items.iter().enumerate() {
            let filter = r.get("filter").ok_or_else(|| RuleError::new(format!("$[{i}].filter"), "is required"))?;
            compiled.push((compiler.filter(filter, &format!("$[{i}].filter"))?, r.get("value")));
        }
    }
    let flat = FlatContext::from_nested(&fields, context);
    let needs_nested = compiled.iter().any(|(f, _)| f.needs_nested());
    let user = if needs_nested { devcycle_user(context) } else { Value::Null };
    let scope = Scope { flat: &flat, nested: context, user: &user, now_ms };
    let mut missing = Missing::default();
    let mut budget = Budget::default();
    let rule_results: Vec<bool> = compiled.iter().map(|(f, _)| f.eval(&scope, &mut missing, &mut budget)).collect();
    let first = rule_results.iter().position(|r| *r);
    Ok(RulesOutcome {
        value: first.and_then(|i| compiled.get(i)).and_then(|(_, v)| v.cloned()),
        reason: match first {
            Some(i) => format!("rule #{i} matched"),
            None => "no matched rules".to_string(),
        },
        rule_results,
        missing: missing.0.iter().map(|id| fields.name(*id).to_string()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::Snapshot;
    use serde_json::json;

    const DOC: &str = r#"{"features": [{"key": "a", "targeting": {"version": 1, "rules": [{"filter": {"type": "constant", "value": true}}]}}], "extra": 1}"#;

    #[test]
    fn definitions_from_bytes_are_the_features_text_as_sent() {
        let s = Snapshot::from_json(DOC.as_bytes()).unwrap();
        let sent: serde_json::Value = serde_json::from_str(DOC).unwrap();
        let served: serde_json::Value = serde_json::from_slice(s.definitions_json()).unwrap();
        assert_eq!(served, sent["features"]);
        assert!(std::str::from_utf8(s.definitions_json()).unwrap().starts_with("[{\"key\": \"a\""));
    }

    #[test]
    fn parsed_documents_and_unusual_bytes_give_the_same_definitions() {
        let parsed = Snapshot::compile(serde_json::from_str(DOC).unwrap()).unwrap();
        let from_bytes = Snapshot::from_json(DOC.as_bytes()).unwrap();
        let a: serde_json::Value = serde_json::from_slice(parsed.definitions_json()).unwrap();
        let b: serde_json::Value = serde_json::from_slice(from_bytes.definitions_json()).unwrap();
        assert_eq!(a, b);
        // Duplicate top-level keys and a missing `features` take the general path.
        let dup = Snapshot::from_json(br#"{"features": [], "features": []}"#).unwrap();
        assert_eq!(dup.definitions_json(), b"[]");
        assert_eq!(Snapshot::from_json(b"{}").unwrap().definitions_json(), b"[]");
    }

    #[test]
    fn general_path_errors_still_name_the_node() {
        let e = Snapshot::from_json(br#"{"features": {"key": "a"}}"#).unwrap_err();
        assert_eq!(e.path, "$.features");
        let e = Snapshot::from_json(b"[1]").unwrap_err();
        assert_eq!(e.path, "$");
        let e = Snapshot::from_json(json!({"features": [{"key": 1}]}).to_string().as_bytes()).unwrap_err();
        assert!(e.path.starts_with("$.features[0]"), "{}", e.path);
    }
}
