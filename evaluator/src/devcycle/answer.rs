//! The answer bytes of the routes that serve a DevCycle bucketed config: DevCycle's own SDK
//! routes (the whole config, its `variables` or `features`, one variable) and OFREP over
//! DevCycle variables (every variable, or one). [`Config::answer`] writes them straight from the
//! compiled config; [`write`] slices a [`Config::bucket`] result, the reference it must equal.
//!
//! OFREP flags are keyed by variable key, as DevCycle's OpenFeature providers resolve them:
//! `value` is the variable's typed value, `reason` the bucketing's `eval.reason`
//! (`TARGETING_MATCH` or `SPLIT`, already OpenFeature reasons), `variant` the key of the
//! variation that serves it (its `_id` when the variation has no key), and `metadata` what the
//! providers put in `flagMetadata` (`evalReasonDetails`, `evalReasonTargetId`) plus the feature
//! key and the variable type.
//!
//! Features hidden from the asking SDK's kind (DevCycle's `sdkVisibility`) are left out with
//! their variables, as if the user were not served them.
//!
//! [`Config::bucket`]: super::Config::bucket

use super::{Config, Eval, Feature, Variation};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// Which part of a bucketed config to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part<'a> {
    /// `{project, environment, features, featureVariationMap, variableVariationMap, variables}`.
    Config,
    /// The `variables` object (the bucketing API's `POST /v1/variables`).
    Variables,
    /// The `features` object (`POST /v1/features`).
    Features,
    /// One variable object (`POST /v1/variables/{key}`).
    Variable(&'a str),
    /// OFREP bulk `flags`: an array of success objects, one per variable served.
    Ofrep,
    /// One OFREP success object.
    OfrepFlag(&'a str),
}

impl<'a> Part<'a> {
    /// `name` is `config`, `variables`, `features`, `variable`, `ofrep` or `ofrep_flag`; the
    /// last two singular parts need `key`.
    pub fn parse(name: &str, key: Option<&'a str>) -> Result<Self, String> {
        match (name, key) {
            ("config", None) => Ok(Part::Config),
            ("variables", None) => Ok(Part::Variables),
            ("features", None) => Ok(Part::Features),
            ("ofrep", None) => Ok(Part::Ofrep),
            ("variable", Some(k)) => Ok(Part::Variable(k)),
            ("ofrep_flag", Some(k)) => Ok(Part::OfrepFlag(k)),
            ("variable" | "ofrep_flag", None) => Err(format!("part {name:?} needs a key")),
            ("config" | "variables" | "features" | "ofrep", Some(_)) => Err(format!("part {name:?} takes no key")),
            _ => Err(format!("unknown part {name:?}")),
        }
    }
}

/// `part` of the bucketed config `bucketed` as JSON, without the features whose `_id` is in
/// `hidden`; `None` when `part` names a variable the config does not serve.
pub fn write(mut bucketed: Value, part: Part<'_>, hidden: &HashSet<String>) -> Option<Vec<u8>> {
    if !hidden.is_empty() {
        hide(&mut bucketed, hidden);
    }
    let value = match part {
        Part::Config => bucketed,
        Part::Variables => bucketed.get_mut("variables").map(Value::take).unwrap_or_default(),
        Part::Features => bucketed.get_mut("features").map(Value::take).unwrap_or_default(),
        Part::Variable(key) => bucketed.get_mut("variables").and_then(|v| v.get_mut(key)).map(Value::take)?,
        Part::Ofrep => {
            let features = variations_by_feature(&bucketed);
            let flags = object(&bucketed, "variables")
                .map(|vars| vars.iter().map(|(key, v)| ofrep_entry(key, v, &features)).collect())
                .unwrap_or_default();
            Value::Array(flags)
        }
        Part::OfrepFlag(key) => {
            let variable = object(&bucketed, "variables").and_then(|vars| vars.get(key))?;
            ofrep_entry(key, variable, &variations_by_feature(&bucketed))
        }
    };
    // Serializing a serde_json::Value cannot fail (string keys only).
    serde_json::to_vec(&value).ok()
}

/// The edge's OFREP answer for one DevCycle variable: `flag`, the success object
/// [`Part::OfrepFlag`] writes (by either path; `metadata`, whose values are all strings, is its
/// last member), with `flagStateVersion` last in `metadata` and `tail` (further members, each
/// with its leading comma) before the closing brace.
pub fn ofrep_flag_answer(mut flag: Vec<u8>, flag_state_version: u64, tail: &[u8]) -> Vec<u8> {
    debug_assert!(flag.ends_with(b"}}"), "an OFREP flag object ends with its metadata");
    flag.truncate(flag.len().saturating_sub(2));
    if flag.last() != Some(&b'{') {
        flag.push(b',');
    }
    flag.extend_from_slice(b"\"flagStateVersion\":");
    flag.extend_from_slice(flag_state_version.to_string().as_bytes());
    flag.push(b'}');
    flag.extend_from_slice(tail);
    flag.push(b'}');
    flag
}

/// Remove the hidden features, their variables and their `featureVariationMap` entries.
fn hide(bucketed: &mut Value, hidden: &HashSet<String>) {
    let is_hidden = |v: &Value, field: &str| v.get(field).and_then(Value::as_str).is_some_and(|id| hidden.contains(id));
    if let Some(Value::Object(features)) = bucketed.get_mut("features") {
        features.retain(|_, f| !is_hidden(f, "_id"));
    }
    if let Some(Value::Object(variables)) = bucketed.get_mut("variables") {
        variables.retain(|_, v| !is_hidden(v, "_feature"));
    }
    if let Some(Value::Object(map)) = bucketed.get_mut("featureVariationMap") {
        map.retain(|id, _| !hidden.contains(id));
    }
}

fn object<'v>(v: &'v Value, key: &str) -> Option<&'v Map<String, Value>> {
    v.get(key).and_then(Value::as_object)
}

/// Feature `_id` → (feature key, the variant name of its bucketed variation).
fn variations_by_feature(bucketed: &Value) -> HashMap<&str, (&str, &str)> {
    let mut out = HashMap::new();
    for (key, feature) in object(bucketed, "features").into_iter().flatten() {
        let id = feature.get("_id").and_then(Value::as_str).unwrap_or_default();
        let variant = feature
            .get("variationKey")
            .and_then(Value::as_str)
            .or_else(|| feature.get("_variation").and_then(Value::as_str))
            .unwrap_or_default();
        out.insert(id, (key.as_str(), variant));
    }
    out
}

/// The OFREP success object of the variable `key`, from its value-path entry in a bucketed config.
fn ofrep_entry(key: &str, variable: &Value, features: &HashMap<&str, (&str, &str)>) -> Value {
    let empty = Map::new();
    let feature_id = variable.get("_feature").and_then(Value::as_str).unwrap_or_default();
    let (feature_key, variant) = features.get(feature_id).copied().unwrap_or_default();
    ofrep_flag(key, variable.as_object().unwrap_or(&empty), variable.get("eval"), feature_key, variant)
}

/// The OFREP success object of one variable: its fields (`type`, `value`), the `eval` of its
/// feature's answer, the feature's key and the serving variation's name.
fn ofrep_flag(
    key: &str,
    variable: &Map<String, Value>,
    eval: Option<&Value>,
    feature_key: &str,
    variant: &str,
) -> Value {
    let text = |v: Option<&Value>, name: &str| v.and_then(|e| e.get(name)).and_then(Value::as_str).map(str::to_owned);

    let mut metadata = Map::new();
    if let Some(details) = text(eval, "details").filter(|d| !d.is_empty()) {
        metadata.insert("evalReasonDetails".into(), Value::String(details));
    }
    if let Some(target) = text(eval, "target_id") {
        metadata.insert("evalReasonTargetId".into(), Value::String(target));
    }
    if !feature_key.is_empty() {
        metadata.insert("featureKey".into(), Value::String(feature_key.to_owned()));
    }
    if let Some(Value::String(kind)) = variable.get("type") {
        metadata.insert("variableType".into(), Value::String(kind.clone()));
    }

    let mut flag = Map::new();
    flag.insert("key".into(), Value::String(key.to_owned()));
    flag.insert("value".into(), variable.get("value").cloned().unwrap_or(Value::Null));
    flag.insert("reason".into(), Value::String(text(eval, "reason").unwrap_or_else(|| "TARGETING_MATCH".into())));
    flag.insert("variant".into(), Value::String(variant.to_owned()));
    flag.insert("metadata".into(), Value::Object(metadata));
    Value::Object(flag)
}

/// What one feature serves one user: the feature, the variation and its answer's `eval`.
type Served<'c> = (&'c Feature, &'c Variation, Eval<'c>);

impl Config {
    /// `part` of the user's bucketed config at `now_ms` as JSON, written straight from the
    /// compiled config (no intermediate tree of values): the same bytes as [`write`] over
    /// [`Config::bucket`]. That path remains for configs where two features share a key, an id
    /// or a variable key, or a variable defines `eval` (the bucketed maps then keep the first
    /// position and the last value, which a writer cannot stream).
    pub fn answer(&self, user: &Value, now_ms: i64, part: Part<'_>, hidden: &HashSet<String>) -> Option<Vec<u8>> {
        let mut served: Vec<Served<'_>> = Vec::new();
        self.assign(user, now_ms, |_| true, |feature, variation, eval| served.push((feature, variation, eval)));
        self.count_answered(&served, part, hidden);
        if !streamable(&served) {
            return write(self.bucket(user, now_ms), part, hidden);
        }
        served.retain(|(feature, _, _)| !hidden.contains(&feature.id));
        let mut out = Vec::with_capacity(256 * served.len() + 64);
        match part {
            Part::Config => {
                out.extend_from_slice(b"{\"project\":");
                put(&mut out, &self.project);
                out.extend_from_slice(b",\"environment\":");
                put(&mut out, &self.environment);
                out.extend_from_slice(b",\"features\":");
                features_object(&mut out, &served);
                out.extend_from_slice(b",\"featureVariationMap\":{");
                for (i, (feature, variation, _)) in served.iter().enumerate() {
                    comma(&mut out, i);
                    put(&mut out, feature.id.as_str());
                    out.push(b':');
                    put(&mut out, variation.id.as_str());
                }
                out.extend_from_slice(b"},\"variableVariationMap\":{},\"variables\":");
                variables_object(&mut out, &served);
                out.push(b'}');
            }
            Part::Variables => variables_object(&mut out, &served),
            Part::Features => features_object(&mut out, &served),
            Part::Variable(key) => {
                let (template, eval) = find(&served, key)?;
                variable_entry(&mut out, template, eval);
            }
            Part::Ofrep => {
                out.push(b'[');
                let flags =
                    served.iter().flat_map(|(f, v, eval)| v.variables.iter().map(move |(k, t)| (f, v, eval, k, t)));
                for (i, (feature, variation, eval, key, template)) in flags.enumerate() {
                    comma(&mut out, i);
                    ofrep_flag_bytes(&mut out, key, template, eval, feature, variation);
                }
                out.push(b']');
            }
            Part::OfrepFlag(key) => {
                let (feature, variation, eval) =
                    served.iter().find(|(_, v, _)| v.variables.iter().any(|(k, _)| k == key))?;
                let (_, template) = variation.variables.iter().find(|(k, _)| k == key)?;
                ofrep_flag_bytes(&mut out, key, template, eval, feature, variation);
            }
        }
        Some(out)
    }
}

/// `eval` as [`Eval::to_value`] serializes it.
fn eval_bytes(out: &mut Vec<u8>, eval: &Eval<'_>) {
    out.extend_from_slice(b"{\"reason\":");
    put(out, eval.reason);
    out.extend_from_slice(b",\"details\":");
    put(out, eval.details.as_str());
    if let Some(target) = eval.target_id {
        out.extend_from_slice(b",\"target_id\":");
        put(out, target);
    }
    out.push(b'}');
}

/// One OFREP success object as [`ofrep_flag`] builds it, written directly.
fn ofrep_flag_bytes(
    out: &mut Vec<u8>,
    key: &str,
    template: &Map<String, Value>,
    eval: &Eval<'_>,
    feature: &Feature,
    variation: &Variation,
) {
    out.extend_from_slice(b"{\"key\":");
    put(out, key);
    out.extend_from_slice(b",\"value\":");
    put(out, template.get("value").unwrap_or(&Value::Null));
    out.extend_from_slice(b",\"reason\":");
    put(out, eval.reason);
    out.extend_from_slice(b",\"variant\":");
    put(out, variant_name(variation));
    out.extend_from_slice(b",\"metadata\":{");
    let mut fields = 0;
    let mut field = |out: &mut Vec<u8>, name: &[u8], value: &str| {
        comma(out, fields);
        out.extend_from_slice(name);
        put(out, value);
        fields += 1;
    };
    if !eval.details.is_empty() {
        field(out, b"\"evalReasonDetails\":", &eval.details);
    }
    if let Some(target) = eval.target_id {
        field(out, b"\"evalReasonTargetId\":", target);
    }
    if !feature.key.is_empty() {
        field(out, b"\"featureKey\":", &feature.key);
    }
    if let Some(Value::String(kind)) = template.get("type") {
        field(out, b"\"variableType\":", kind);
    }
    out.extend_from_slice(b"}}");
}

/// Whether the bucketed maps of `served` have no key twice (and no variable its own `eval`).
fn streamable(served: &[Served<'_>]) -> bool {
    let mut features = HashSet::with_capacity(served.len());
    let mut ids = HashSet::with_capacity(served.len());
    let mut variables = HashSet::with_capacity(served.len());
    served.iter().all(|(feature, variation, _)| {
        features.insert(feature.key.as_str())
            && ids.insert(feature.id.as_str())
            && variation.variables.iter().all(|(key, t)| !t.contains_key("eval") && variables.insert(key.as_str()))
    })
}

fn find<'s, 'c>(served: &'s [Served<'c>], key: &str) -> Option<(&'s Map<String, Value>, &'s Eval<'c>)> {
    served.iter().find_map(|(_, variation, eval)| {
        variation.variables.iter().find(|(k, _)| k == key).map(|(_, template)| (template, eval))
    })
}

/// The variation's `variationKey` as OFREP's `variant`, its `_id` when it has no string key.
pub(super) fn variant_name(variation: &Variation) -> &str {
    variation.key.as_ref().and_then(Value::as_str).unwrap_or(&variation.id)
}

fn put<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing JSON of a str or a serde_json::Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

fn comma(out: &mut Vec<u8>, index: usize) {
    if index > 0 {
        out.push(b',');
    }
}

/// `features`: `{key: {_id, key, type?, _variation, variationName?, variationKey?, settings?, eval}}`
/// (the order of `updateMapsWithBucketedFeature`, as `Feature::output` builds it).
fn features_object(out: &mut Vec<u8>, served: &[Served<'_>]) {
    out.push(b'{');
    for (i, (feature, variation, eval)) in served.iter().enumerate() {
        comma(out, i);
        put(out, feature.key.as_str());
        out.extend_from_slice(b":{\"_id\":");
        put(out, feature.id.as_str());
        out.extend_from_slice(b",\"key\":");
        put(out, feature.key.as_str());
        if let Some(kind) = &feature.kind {
            out.extend_from_slice(b",\"type\":");
            put(out, kind);
        }
        out.extend_from_slice(b",\"_variation\":");
        put(out, variation.id.as_str());
        if let Some(name) = &variation.name {
            out.extend_from_slice(b",\"variationName\":");
            put(out, name);
        }
        if let Some(key) = &variation.key {
            out.extend_from_slice(b",\"variationKey\":");
            put(out, key);
        }
        if let Some(settings) = &feature.settings {
            out.extend_from_slice(b",\"settings\":");
            put(out, settings);
        }
        out.extend_from_slice(b",\"eval\":");
        eval_bytes(out, eval);
        out.push(b'}');
    }
    out.push(b'}');
}

/// `variables`: `{key: {...variable, _feature, value, eval}}`.
fn variables_object(out: &mut Vec<u8>, served: &[Served<'_>]) {
    out.push(b'{');
    let entries =
        served.iter().flat_map(|(_, variation, eval)| variation.variables.iter().map(move |(k, t)| (k, t, eval)));
    for (i, (key, template, eval)) in entries.enumerate() {
        comma(out, i);
        put(out, key.as_str());
        out.push(b':');
        variable_entry(out, template, eval);
    }
    out.push(b'}');
}

/// One variable: its template (never empty: it holds `_feature`) with `eval` added last.
fn variable_entry(out: &mut Vec<u8>, template: &Map<String, Value>, eval: &Eval<'_>) {
    put(out, template);
    out.pop(); // the template's closing brace
    out.extend_from_slice(b",\"eval\":");
    eval_bytes(out, eval);
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bucketed() -> Value {
        json!({
            "project": {"_id": "p"},
            "environment": {"_id": "e"},
            "features": {"f": {"_id": "fid", "key": "f", "_variation": "v1", "variationKey": "on",
                               "eval": {"reason": "SPLIT", "details": "Rollout", "target_id": "t"}}},
            "featureVariationMap": {"fid": "v1"},
            "variableVariationMap": {},
            "variables": {"n": {"_id": "vid", "key": "n", "type": "Number", "value": 3, "_feature": "fid",
                                "eval": {"reason": "SPLIT", "details": "Rollout", "target_id": "t"}}}
        })
    }

    fn none() -> HashSet<String> {
        HashSet::new()
    }

    fn parsed(bytes: Option<Vec<u8>>) -> Value {
        serde_json::from_slice(&bytes.expect("a part")).expect("JSON")
    }

    #[test]
    fn parts_slice_the_bucketed_config() {
        assert_eq!(parsed(write(bucketed(), Part::Config, &none())), bucketed());
        assert_eq!(parsed(write(bucketed(), Part::Variables, &none()))["n"]["value"], json!(3));
        assert_eq!(parsed(write(bucketed(), Part::Features, &none()))["f"]["variationKey"], json!("on"));
        assert_eq!(parsed(write(bucketed(), Part::Variable("n"), &none()))["type"], json!("Number"));
        assert_eq!(write(bucketed(), Part::Variable("missing"), &none()), None);
    }

    #[test]
    fn ofrep_flags_carry_value_reason_variant_and_metadata() {
        let expected = json!({
            "key": "n", "value": 3, "reason": "SPLIT", "variant": "on",
            "metadata": {"evalReasonDetails": "Rollout", "evalReasonTargetId": "t", "featureKey": "f",
                         "variableType": "Number"}
        });
        assert_eq!(parsed(write(bucketed(), Part::OfrepFlag("n"), &none())), expected);
        assert_eq!(parsed(write(bucketed(), Part::Ofrep, &none())), json!([expected]));
        assert_eq!(write(bucketed(), Part::OfrepFlag("missing"), &none()), None);
    }

    #[test]
    fn the_edge_answer_ends_metadata_with_the_version_then_the_tail() {
        let flag = write(bucketed(), Part::OfrepFlag("n"), &none()).expect("served");
        let answer = ofrep_flag_answer(flag, 41, b",\"eventStreams\":[]");
        let mut expected = parsed(write(bucketed(), Part::OfrepFlag("n"), &none()));
        expected["metadata"]["flagStateVersion"] = json!(41);
        expected["eventStreams"] = json!([]);
        assert_eq!(serde_json::to_vec(&expected).expect("JSON"), answer);
        let bare = br#"{"key":"k","value":null,"reason":"SPLIT","variant":"v","metadata":{}}"#.to_vec();
        assert_eq!(
            ofrep_flag_answer(bare, 7, b""),
            br#"{"key":"k","value":null,"reason":"SPLIT","variant":"v","metadata":{"flagStateVersion":7}}"#
        );
    }

    #[test]
    fn a_variation_without_a_key_is_named_by_its_id() {
        let mut b = bucketed();
        b["features"]["f"].as_object_mut().map(|f| f.remove("variationKey"));
        assert_eq!(parsed(write(b, Part::OfrepFlag("n"), &none()))["variant"], json!("v1"));
    }

    #[test]
    fn hidden_features_are_left_out_with_their_variables() {
        let hidden: HashSet<String> = ["fid".to_owned()].into();
        let config = parsed(write(bucketed(), Part::Config, &hidden));
        assert_eq!(config["features"], json!({}));
        assert_eq!(config["variables"], json!({}));
        assert_eq!(config["featureVariationMap"], json!({}));
        assert_eq!(write(bucketed(), Part::Variable("n"), &hidden), None);
        assert_eq!(parsed(write(bucketed(), Part::Ofrep, &hidden)), json!([]));
    }

    /// Two features share a variable key: the bucketed map keeps the first position and the
    /// last value, which only the value path reproduces.
    #[test]
    fn configs_with_a_shared_variable_key_take_the_value_path() {
        let variation =
            |id: &str, value: i64| json!({"_id": id, "key": id, "variables": [{"_var": "v", "value": value}]});
        let feature = |id: &str, value: i64| {
            json!({"_id": id, "key": id, "variations": [variation(&format!("{id}-x"), value)],
                   "configuration": {"targets": [{"_id": format!("{id}-t"),
                       "_audience": {"filters": {"operator": "and", "filters": [{"type": "all"}]}},
                       "distribution": [{"_variation": format!("{id}-x"), "percentage": 1}]}]}})
        };
        let config = json!({"project": {"_id": "p", "settings": {}}, "environment": {"_id": "e"},
            "features": [feature("a", 1), feature("b", 2)], "variables": [{"_id": "v", "key": "shared", "type": "Number"}]});
        let compiled = Config::compile(&config, "$").expect("compiles");
        let user = json!({"user_id": "u"});
        for part in [Part::Config, Part::Variables, Part::Ofrep, Part::Variable("shared")] {
            let direct = compiled.answer(&user, 0, part, &none());
            assert_eq!(direct, write(compiled.bucket(&user, 0), part, &none()));
        }
        assert_eq!(parsed(compiled.answer(&user, 0, Part::Variable("shared"), &none()))["value"], json!(2));
    }

    #[test]
    fn part_names_are_checked() {
        assert_eq!(Part::parse("variable", Some("k")), Ok(Part::Variable("k")));
        assert!(Part::parse("variable", None).is_err());
        assert!(Part::parse("config", Some("k")).is_err());
        assert!(Part::parse("everything", None).is_err());
    }
}
