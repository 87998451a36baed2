//! DevCycle bucketing: `generateBucketedConfig` of @devcycle/bucketing 1.38.7, bit for bit.
//!
//! A config is compiled once ([`Config::compile`]: dates parsed, distributions sorted, target
//! seeds hashed, audience ids resolved) and then bucketed per user ([`Config::bucket`]).
//!
//! For each feature (config order) the first target whose audience passes and whose rollout
//! lets the user through is chosen; with `project.settings.disablePassthroughRollouts` the
//! rollout is not part of target selection, and a user outside the chosen target's rollout
//! gets no variation for that feature. The variation comes from the distribution walked in
//! descending `_variation` order (UTF-16 code units, as lodash `orderBy` compares) against
//! `murmur3(bucketingValue, murmur3(target._id, 1)) / 4294967295`; the rollout uses the hash
//! of `bucketingValue + "_rollout"`.
//!
//! Where the reference would throw or behave by accident, this module decides instead:
//! configs it cannot bucket (missing variables or variations, distributions that do not add up
//! to 1, wrong JSON types, unknown filter types, subTypes or comparators, audience reference
//! cycles, filter trees deeper than [`MAX_RULE_DEPTH`]) fail to compile; a non-string version
//! on the user never matches a version filter; a `user_id` that is not a string buckets as
//! `String(user_id)` when truthy and as `"null"` otherwise. Rollout dates are read like
//! `new Date(string)` on a UTC clock ([`crate::dates::parse_date`]). Custom data comparisons
//! follow the JSON types of the first filter value and of the user's value (the reference
//! ignores `dataKeyType`).

mod answer;
mod counting;
mod filter;
mod path;
mod rollout;
mod version;

#[cfg(test)]
mod tests;

pub use answer::{ofrep_flag_answer, write as write_part, Part};
pub use filter::UserFilter;
pub use version::version_compare;

use crate::counts::Counts;
use crate::error::{EvalError, RuleError, MAX_DATA_DEPTH, MAX_RULE_DEPTH};
use crate::hash::murmur3_32;
use crate::jsnum::{json_number_to_f64, json_number_to_string};
use filter::{Audience, AudienceMemo, Compiler, Ctx, Node};
use path::{depth_exceeds, index_path, key_path, truthy, truthy_opt};
use rollout::Rollout;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::HashMap;

/// `murmurhash.v3` results are divided by this (the largest unsigned 32-bit value).
const MAX_HASH_VALUE: f64 = 4_294_967_295.0;
/// `baseSeed`: the seed used to hash a target id into that target's seed.
const BASE_SEED: u32 = 1;
/// `DEFAULT_BUCKETING_VALUE`.
const DEFAULT_BUCKETING_VALUE: &str = "null";
/// How far a distribution's percentages may add up away from 1.
const DISTRIBUTION_TOLERANCE: f64 = 1e-6;

/// A compiled DevCycle SDK config.
#[derive(Debug, Clone)]
pub struct Config {
    /// `pick(project, ['_id', 'key', 'a0_organization', 'settings'])`.
    project: Value,
    /// `pick(environment, ['_id', 'key'])`.
    environment: Value,
    disable_passthrough: bool,
    audiences: Box<[Audience]>,
    /// Audiences whose result can depend on the feature (an `optIn` filter in them or in an
    /// audience they reference): their memoized results are dropped between features.
    opt_in_audiences: Box<[usize]>,
    features: Box<[Feature]>,
    /// Self-targeting overrides: DevCycle `user_id` → `(feature index, variation index)`
    /// ([`Config::set_overrides`]); empty in most environments, so a request pays one
    /// `is_empty` check.
    overrides: HashMap<Box<str>, Box<[(usize, usize)]>>,
    /// Evaluations per feature and variation ([`crate::counts`], module `counting`).
    counts: Counts,
}

#[derive(Debug, Clone)]
struct Feature {
    id: String,
    key: String,
    kind: Option<Value>,
    settings: Option<Value>,
    /// `feature.settings.optInEnabled && project.settings.optIn.enabled`.
    opt_in_enabled: bool,
    variations: Box<[Variation]>,
    targets: Box<[Target]>,
}

#[derive(Debug, Clone)]
struct Variation {
    id: String,
    name: Option<Value>,
    key: Option<Value>,
    /// `(variable key, {...variable, _feature, value})` in the variation's order.
    variables: Box<[(String, Map<String, Value>)]>,
}

#[derive(Debug, Clone)]
struct Target {
    id: String,
    /// `murmur3(_id, 1)`.
    seed: u32,
    filters: Node,
    rollout: Option<Rollout>,
    /// `(running percentage, variation index)` in descending `_variation` order.
    distribution: Box<[(f64, usize)]>,
    /// `None` buckets by `user_id`.
    bucketing_key: Option<String>,
    /// The details prefix of a `SPLIT` evaluation (several variations and/or a rollout).
    split_prefix: Option<&'static str>,
}

/// What compiling a feature needs from the rest of the config.
struct Shared<'a> {
    audience_ids: &'a HashMap<String, usize>,
    /// Nesting depth of each audience, counting the audiences it references.
    audience_depth: &'a [usize],
    variables: &'a [&'a Map<String, Value>],
    variable_ids: &'a HashMap<&'a str, usize>,
    project_opt_in: bool,
}

fn object_at<'a>(v: Option<&'a Value>, path: &str) -> Result<&'a Map<String, Value>, RuleError> {
    match v {
        Some(Value::Object(o)) => Ok(o),
        Some(_) => Err(RuleError::new(path, "must be an object")),
        None => Err(RuleError::new(path, "is required")),
    }
}

fn array_at<'a>(v: Option<&'a Value>, path: &str) -> Result<&'a [Value], RuleError> {
    match v {
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(RuleError::new(path, "must be an array")),
        None => Err(RuleError::new(path, "is required")),
    }
}

fn string_at<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, RuleError> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(RuleError::new(key_path(path, key), "must be a string")),
        None => Err(RuleError::new(key_path(path, key), "is required")),
    }
}

/// A value copied into the output, refused when nested too deeply to handle safely.
fn copied(v: Option<&Value>, path: &str) -> Result<Option<Value>, RuleError> {
    match v {
        Some(v) if depth_exceeds(v, MAX_DATA_DEPTH) => {
            Err(RuleError::new(path, format!("is nested deeper than {MAX_DATA_DEPTH} levels")))
        }
        v => Ok(v.cloned()),
    }
}

/// lodash `pick(obj, keys)`.
fn pick(obj: &Map<String, Value>, keys: &[&str], path: &str) -> Result<Value, RuleError> {
    let mut out = Map::new();
    for &k in keys {
        if let Some(v) = copied(obj.get(k), &key_path(path, k))? {
            out.insert(k.to_owned(), v);
        }
    }
    Ok(Value::Object(out))
}

/// What resolving audience references needs to know about one compiled audience.
struct AudienceTree {
    /// Nesting depth of its own filters.
    depth: usize,
    /// `(referenced audience, depth of the audienceMatch node)`.
    refs: Vec<(usize, usize)>,
    /// Whether its own filters contain `optIn`.
    opt_in: bool,
}

/// Checks audience references for cycles and returns each audience's depth including the
/// audiences it references, and whether its result can depend on `optIn`.
fn resolve_audiences(trees: &[AudienceTree], paths: &[String]) -> Result<(Vec<usize>, Vec<bool>), RuleError> {
    const NEW: u8 = 0;
    const OPEN: u8 = 1;
    const DONE: u8 = 2;
    let n = trees.len();
    let mut state = vec![NEW; n];
    let mut depth = vec![0usize; n];
    let mut opt_in = vec![false; n];
    let path_of = |i: usize| paths.get(i).map_or("$", String::as_str).to_owned();
    for root in 0..n {
        if state.get(root) != Some(&NEW) {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        if let Some(s) = state.get_mut(root) {
            *s = OPEN;
        }
        while let Some(&(a, k)) = stack.last() {
            let Some(AudienceTree { depth: own_depth, refs, opt_in: own_opt_in }) = trees.get(a) else {
                stack.pop();
                continue;
            };
            if let Some(&(b, _)) = refs.get(k) {
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                }
                match state.get(b) {
                    Some(&NEW) => {
                        if let Some(s) = state.get_mut(b) {
                            *s = OPEN;
                        }
                        stack.push((b, 0));
                    }
                    Some(&OPEN) => {
                        return Err(RuleError::new(
                            key_path(&path_of(a), "filters"),
                            "audienceMatch references form a cycle",
                        ))
                    }
                    _ => {}
                }
                continue;
            }
            let mut d = *own_depth;
            let mut o = *own_opt_in;
            for &(b, at) in refs {
                d = d.max(at + depth.get(b).copied().unwrap_or(0));
                o |= opt_in.get(b).copied().unwrap_or(false);
            }
            if d > MAX_RULE_DEPTH {
                return Err(RuleError::new(
                    key_path(&path_of(a), "filters"),
                    format!("filters are nested deeper than {MAX_RULE_DEPTH} levels (counting referenced audiences)"),
                ));
            }
            if let (Some(slot_d), Some(slot_o), Some(s)) = (depth.get_mut(a), opt_in.get_mut(a), state.get_mut(a)) {
                *slot_d = d;
                *slot_o = o;
                *s = DONE;
            }
            stack.pop();
        }
    }
    Ok((depth, opt_in))
}

impl Config {
    /// Validate and compile the config once. `path` is the JSONPath of `config` (e.g. `"$"`);
    /// errors name the bad node, e.g.
    /// `$.features[2].configuration.targets[0].distribution[1].percentage`.
    pub fn compile(config: &Value, path: &str) -> Result<Self, RuleError> {
        let root = config.as_object().ok_or_else(|| RuleError::new(path, "must be an object"))?;

        let project_path = key_path(path, "project");
        let project = object_at(root.get("project"), &project_path)?;
        let settings_path = key_path(&project_path, "settings");
        let settings = match project.get("settings") {
            None | Some(Value::Null) => None,
            Some(Value::Object(s)) => Some(s),
            Some(_) => return Err(RuleError::new(settings_path, "must be an object")),
        };
        let disable_passthrough = settings.is_some_and(|s| truthy_opt(s.get("disablePassthroughRollouts")));
        let project_opt_in = settings
            .and_then(|s| s.get("optIn"))
            .and_then(Value::as_object)
            .is_some_and(|o| truthy_opt(o.get("enabled")));
        let project_out = pick(project, &["_id", "key", "a0_organization", "settings"], &project_path)?;

        let env_path = key_path(path, "environment");
        let environment_out = match root.get("environment") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(Value::Object(e)) => pick(e, &["_id", "key"], &env_path)?,
            Some(_) => return Err(RuleError::new(env_path, "must be an object")),
        };

        // Audiences, keyed by id.
        let aud_path = key_path(path, "audiences");
        let empty = Map::new();
        let audience_objs = match root.get("audiences") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(o)) => o,
            Some(_) => return Err(RuleError::new(aud_path, "must be an object")),
        };
        let audience_ids: HashMap<String, usize> =
            audience_objs.keys().enumerate().map(|(i, k)| (k.clone(), i)).collect();
        let mut audience_nodes = Vec::with_capacity(audience_objs.len());
        let mut trees = Vec::with_capacity(audience_objs.len());
        let mut audience_paths = Vec::with_capacity(audience_objs.len());
        for (id, a) in audience_objs {
            let p = key_path(&aud_path, id);
            let a = object_at(Some(a), &p)?;
            let mut c = Compiler::new(Some(&audience_ids));
            let filters = match a.get("filters") {
                None | Some(Value::Null) => Node::empty_group(),
                Some(f) => c.group(f, &key_path(&p, "filters"), 1, true)?,
            };
            trees.push(AudienceTree { depth: c.max_depth, refs: c.refs, opt_in: filters.has_opt_in() });
            audience_nodes.push(filters);
            audience_paths.push(p);
        }
        let (audience_depth, audience_opt_in) = resolve_audiences(&trees, &audience_paths)?;
        let audiences: Box<[Audience]> = audience_nodes.into_iter().map(|filters| Audience { filters }).collect();
        let opt_in_audiences = audience_opt_in.iter().enumerate().filter(|(_, &o)| o).map(|(i, _)| i).collect();

        // Variables; `config.variables.find(v => v._id === _var)` takes the first match.
        let vars_path = key_path(path, "variables");
        let variable_values: &[Value] = match root.get("variables") {
            None | Some(Value::Null) => &[],
            v => array_at(v, &vars_path)?,
        };
        let mut variables = Vec::with_capacity(variable_values.len());
        let mut variable_ids: HashMap<&str, usize> = HashMap::new();
        for (i, v) in variable_values.iter().enumerate() {
            let p = index_path(&vars_path, i);
            let obj = object_at(Some(v), &p)?;
            let id = string_at(obj, "_id", &p)?;
            string_at(obj, "key", &p)?;
            if depth_exceeds(v, MAX_DATA_DEPTH) {
                return Err(RuleError::new(p, format!("is nested deeper than {MAX_DATA_DEPTH} levels")));
            }
            variable_ids.entry(id).or_insert(i);
            variables.push(obj);
        }

        let shared = Shared {
            audience_ids: &audience_ids,
            audience_depth: &audience_depth,
            variables: &variables,
            variable_ids: &variable_ids,
            project_opt_in,
        };
        let features_path = key_path(path, "features");
        let features = array_at(root.get("features"), &features_path)?
            .iter()
            .enumerate()
            .map(|(i, f)| Feature::compile(f, &index_path(&features_path, i), &shared))
            .collect::<Result<Box<[Feature]>, _>>()?;
        let counts = Counts::new(features.iter().map(|f| f.variations.len()));

        Ok(Config {
            project: project_out,
            environment: environment_out,
            disable_passthrough,
            audiences,
            opt_in_audiences,
            features,
            overrides: HashMap::new(),
            counts,
        })
    }

    /// Take the snapshot's `devcycleOverrides`, `{user_id: {feature _id: variation _id}}`:
    /// those users get those variations (reason `OVERRIDE`) wherever this config is evaluated,
    /// as `generateBucketedConfig(..., overrides)` applies them after bucketing. Overrides of a
    /// feature or variation the config does not have are ignored, as DevCycle ignores them.
    pub fn set_overrides(&mut self, v: Option<&Value>, path: &str) -> Result<(), RuleError> {
        let users = match v {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::Object(o)) => o,
            Some(_) => return Err(RuleError::new(path, "must be an object")),
        };
        let mut out = HashMap::with_capacity(users.len());
        for (user, features) in users {
            let p = key_path(path, user);
            let features = object_at(Some(features), &p)?;
            let mut pairs = Vec::with_capacity(features.len());
            for (feature_id, variation) in features {
                let variation =
                    variation.as_str().ok_or_else(|| RuleError::new(key_path(&p, feature_id), "must be a string"))?;
                let Some(fi) = self.features.iter().position(|f| f.id == *feature_id) else {
                    continue;
                };
                if let Some(vi) =
                    self.features.get(fi).and_then(|f| f.variations.iter().position(|x| x.id == variation))
                {
                    pairs.push((fi, vi));
                }
            }
            if !pairs.is_empty() {
                out.insert(user.as_str().into(), pairs.into_boxed_slice());
            }
        }
        self.overrides = out;
        Ok(())
    }

    /// The variation index overriding `feature` for `user`, if any.
    fn overridden(&self, feature: usize, user: &Map<String, Value>) -> Option<usize> {
        if self.overrides.is_empty() {
            return None;
        }
        let id = user.get("user_id")?.as_str()?;
        self.overrides.get(id)?.iter().find(|(f, _)| *f == feature).map(|&(_, v)| v)
    }

    /// The bucketed config for one user at `now_ms` (epoch milliseconds): the JSON that
    /// `generateBucketedConfig` returns, `{project, environment, features, featureVariationMap,
    /// variableVariationMap, variables}`. A user that is not an object is treated as `{}`.
    pub fn bucket(&self, user: &Value, now_ms: i64) -> Value {
        self.bucket_visible(user, now_ms, |_| true)
    }

    /// [`Config::bucket`] over only the features whose key `visible` accepts (the others are
    /// treated as absent from the config, as a config built without them would be).
    pub fn bucket_visible(&self, user: &Value, now_ms: i64, visible: impl Fn(&str) -> bool) -> Value {
        let mut features = Map::new();
        let mut feature_variations = Map::new();
        let mut variables = Map::new();
        self.assign(user, now_ms, visible, |feature, variation, eval| {
            let eval = eval.to_value();
            feature.output(variation, &eval, &mut features, &mut feature_variations, &mut variables);
        });
        let mut out = Map::new();
        out.insert("project".into(), self.project.clone());
        out.insert("environment".into(), self.environment.clone());
        out.insert("features".into(), Value::Object(features));
        out.insert("featureVariationMap".into(), Value::Object(feature_variations));
        out.insert("variableVariationMap".into(), Value::Object(Map::new()));
        out.insert("variables".into(), Value::Object(variables));
        Value::Object(out)
    }

    /// Each feature whose key `visible` accepts that serves the user a variation at `now_ms`,
    /// in config order, with that variation and the `eval` of its answer: what
    /// [`Config::bucket_visible`] outputs, and what [`answer`] writes as bytes without building it.
    fn assign<'c>(
        &'c self,
        user: &Value,
        now_ms: i64,
        visible: impl Fn(&str) -> bool,
        mut served: impl FnMut(&'c Feature, &'c Variation, Eval<'c>),
    ) {
        let empty = Map::new();
        let user = user.as_object().unwrap_or(&empty);
        let now = now_ms as f64;
        let mut memo = vec![AudienceMemo::default(); self.audiences.len()];
        let mut scratch = String::new();

        for (index, feature) in self.features.iter().enumerate().filter(|(_, f)| visible(&f.key)) {
            if let Some(variation) = self.overridden(index, user).and_then(|v| feature.variations.get(v)) {
                served(feature, variation, Eval::overridden());
                continue;
            }
            for &i in self.opt_in_audiences.iter() {
                if let Some(m) = memo.get_mut(i) {
                    *m = AudienceMemo::default();
                }
            }
            let mut cx = Ctx {
                user,
                feature_id: &feature.id,
                opt_in_enabled: feature.opt_in_enabled,
                audiences: &self.audiences,
                memo: &mut memo,
            };
            let Some((target, reason_details)) = self.select_target(feature, &mut cx, now, &mut scratch) else {
                continue;
            };
            let value = bucketing_value(user, target.bucketing_key.as_deref());
            if let Some(rollout) = target.rollout.as_ref().filter(|_| self.disable_passthrough) {
                if !rollout.passes(rollout_hash(&value, target.seed, &mut scratch), now) {
                    continue;
                }
            }
            let hash = bounded_hash(murmur3_32(value.as_bytes(), target.seed));
            let Some(variation) = target.pick(hash).and_then(|i| feature.variations.get(i)) else {
                continue;
            };
            served(feature, variation, target.eval_reason(reason_details));
        }
    }

    /// The first target the user is segmented into, with the feature's reason details (the
    /// reason of the last passing audience that had one, even if its rollout failed).
    fn select_target<'f>(
        &self,
        feature: &'f Feature,
        cx: &mut Ctx<'_>,
        now: f64,
        scratch: &mut String,
    ) -> Option<(&'f Target, String)> {
        let mut reason_details = String::new();
        for target in feature.targets.iter() {
            if !target.filters.eval(cx) {
                continue;
            }
            let reason = target.filters.group_reason(cx);
            if !reason.is_empty() {
                reason_details = reason;
            }
            if let Some(rollout) = target.rollout.as_ref().filter(|_| !self.disable_passthrough) {
                let value = bucketing_value(cx.user, target.bucketing_key.as_deref());
                if !rollout.passes(rollout_hash(&value, target.seed, scratch), now) {
                    continue;
                }
            }
            return Some((target, reason_details));
        }
        None
    }
}

/// Which target and variation one feature serves one user ([`Config::serve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// Index of the target in the feature's configuration.
    pub target: usize,
    /// Index of the variation in the feature's `variations`.
    pub variation: usize,
    /// DevCycle's reason is `SPLIT` (several variations and/or a rollout), not `TARGETING_MATCH`.
    pub split: bool,
    /// A self-targeting override served it (`target` is then `usize::MAX`): reason `OVERRIDE`.
    pub overridden: bool,
}

/// Per-user working memory of [`Config::serve`]: audience results shared by the features
/// evaluated for one user, and a hashing buffer. One per request, reused for every feature.
#[derive(Debug, Clone)]
pub struct Scratch {
    memo: Vec<AudienceMemo>,
    text: String,
}

/// One variation as the Reflag-shape answer shows it.
#[derive(Debug, Clone)]
pub struct VariationView<'c> {
    /// The variation's `key` (its `_id` when it has no string key).
    pub key: &'c str,
    /// `{variable key: value}` in the variation's order.
    pub payload: Map<String, Value>,
}

impl Config {
    /// The index of the feature with this key (the first, as `features.find` would).
    pub fn feature_index(&self, key: &str) -> Option<usize> {
        self.features.iter().position(|f| f.key == key)
    }

    /// Working memory for evaluating features for one user.
    pub fn scratch(&self) -> Scratch {
        Scratch { memo: vec![AudienceMemo::default(); self.audiences.len()], text: String::new() }
    }

    /// The variations of a feature as the Reflag-shape answer shows them.
    pub fn variations(&self, feature: usize) -> Vec<VariationView<'_>> {
        let Some(f) = self.features.get(feature) else {
            return Vec::new();
        };
        f.variations
            .iter()
            .map(|v| VariationView {
                key: v.key.as_ref().and_then(Value::as_str).unwrap_or(&v.id),
                payload: v
                    .variables
                    .iter()
                    .map(|(k, t)| (k.clone(), t.get("value").cloned().unwrap_or(Value::Null)))
                    .collect(),
            })
            .collect()
    }

    /// Per target of a feature: whether serving from it is a `SPLIT`.
    pub fn target_splits(&self, feature: usize) -> Vec<bool> {
        self.features
            .get(feature)
            .map_or_else(Vec::new, |f| f.targets.iter().map(|t| t.split_prefix.is_some()).collect())
    }

    /// Number of targets of a feature.
    pub fn target_count(&self, feature: usize) -> usize {
        self.features.get(feature).map_or(0, |f| f.targets.len())
    }

    /// What [`Config::bucket`] assigns `user` for one feature at `now_ms`, without building its
    /// output objects (no allocation once `scratch` has grown). With `results`, one entry per
    /// target: whether the user qualifies for it (audience and rollout passing, and with
    /// `disablePassthroughRollouts` no earlier audience passing), which is what the Reflag-shape
    /// answer reports as `ruleEvaluationResults`; every target is then evaluated.
    pub fn serve(
        &self,
        feature: usize,
        user: &Map<String, Value>,
        now_ms: f64,
        scratch: &mut Scratch,
        mut results: Option<&mut Vec<bool>>,
    ) -> Option<Served> {
        let feature_obj = self.features.get(feature)?;
        if let Some(variation) = self.overridden(feature, user) {
            return Some(Served { target: usize::MAX, variation, split: false, overridden: true });
        }
        for &i in self.opt_in_audiences.iter() {
            if let Some(m) = scratch.memo.get_mut(i) {
                *m = AudienceMemo::default();
            }
        }
        let mut cx = Ctx {
            user,
            feature_id: &feature_obj.id,
            opt_in_enabled: feature_obj.opt_in_enabled,
            audiences: &self.audiences,
            memo: &mut scratch.memo,
        };
        let mut chosen: Option<(usize, bool)> = None;
        let mut audience_seen = false;
        for (i, target) in feature_obj.targets.iter().enumerate() {
            if chosen.is_some() && results.is_none() {
                break;
            }
            let in_audience = (!self.disable_passthrough || !audience_seen) && target.filters.eval(&mut cx);
            let passes = in_audience && {
                match &target.rollout {
                    None => true,
                    Some(r) => {
                        let value = bucketing_value(user, target.bucketing_key.as_deref());
                        r.passes(rollout_hash(&value, target.seed, &mut scratch.text), now_ms)
                    }
                }
            };
            if let Some(r) = results.as_deref_mut() {
                r.push(passes);
            }
            if chosen.is_none() {
                if self.disable_passthrough && in_audience {
                    // The first audience that passes decides, its rollout only gates.
                    chosen = Some((i, passes));
                } else if passes {
                    chosen = Some((i, true));
                }
            }
            audience_seen |= in_audience;
        }
        let (index, served) = chosen?;
        if !served {
            return None;
        }
        let target = feature_obj.targets.get(index)?;
        let value = bucketing_value(user, target.bucketing_key.as_deref());
        let variation = target.pick(bounded_hash(murmur3_32(value.as_bytes(), target.seed)))?;
        Some(Served { target: index, variation, split: target.split_prefix.is_some(), overridden: false })
    }
}

fn bounded_hash(h: u32) -> f64 {
    f64::from(h) / MAX_HASH_VALUE
}

fn rollout_hash(value: &str, seed: u32, scratch: &mut String) -> f64 {
    scratch.clear();
    scratch.push_str(value);
    scratch.push_str("_rollout");
    bounded_hash(murmur3_32(scratch.as_bytes(), seed))
}

/// `getUserValueForBucketingKey`: `customData[key] || privateCustomData[key] || "null"` as a
/// string (objects and arrays give `"null"`), or `user_id` without a bucketing key.
fn bucketing_value<'a>(user: &'a Map<String, Value>, key: Option<&str>) -> Cow<'a, str> {
    let value = match key {
        Some(k) => {
            let field =
                |name: &str| user.get(name).and_then(Value::as_object).and_then(|o| o.get(k)).filter(|v| truthy(v));
            field("customData").or_else(|| field("privateCustomData"))
        }
        None => user.get("user_id").filter(|v| v.is_string() || truthy(v)),
    };
    match value {
        Some(Value::String(s)) => Cow::Borrowed(s),
        Some(Value::Number(n)) => Cow::Owned(json_number_to_string(n)),
        Some(Value::Bool(true)) => Cow::Borrowed("true"),
        _ => Cow::Borrowed(DEFAULT_BUCKETING_VALUE),
    }
}

/// lodash `orderBy(..., 'desc')` on strings compares UTF-16 code units.
fn cmp_utf16(a: &str, b: &str) -> std::cmp::Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

impl Feature {
    fn compile(v: &Value, path: &str, shared: &Shared<'_>) -> Result<Self, RuleError> {
        let obj = object_at(Some(v), path)?;
        let id = string_at(obj, "_id", path)?.to_owned();
        let key = string_at(obj, "key", path)?.to_owned();
        let kind = copied(obj.get("type"), &key_path(path, "type"))?;
        let settings = copied(obj.get("settings"), &key_path(path, "settings"))?;
        let opt_in_enabled = shared.project_opt_in
            && settings.as_ref().and_then(Value::as_object).is_some_and(|s| truthy_opt(s.get("optInEnabled")));

        let variations_path = key_path(path, "variations");
        let variations: Box<[Variation]> = array_at(obj.get("variations"), &variations_path)?
            .iter()
            .enumerate()
            .map(|(i, v)| Variation::compile(v, &index_path(&variations_path, i), &id, shared))
            .collect::<Result<_, _>>()?;

        let conf_path = key_path(path, "configuration");
        let configuration = object_at(obj.get("configuration"), &conf_path)?;
        let targets_path = key_path(&conf_path, "targets");
        let targets = array_at(configuration.get("targets"), &targets_path)?
            .iter()
            .enumerate()
            .map(|(i, t)| Target::compile(t, &index_path(&targets_path, i), &variations, shared))
            .collect::<Result<_, _>>()?;

        Ok(Feature { id, key, kind, settings, opt_in_enabled, variations, targets })
    }

    /// `updateMapsWithBucketedFeature`.
    fn output(
        &self,
        variation: &Variation,
        eval: &Value,
        features: &mut Map<String, Value>,
        feature_variations: &mut Map<String, Value>,
        variables: &mut Map<String, Value>,
    ) {
        let mut f = Map::new();
        f.insert("_id".into(), Value::String(self.id.clone()));
        f.insert("key".into(), Value::String(self.key.clone()));
        if let Some(kind) = &self.kind {
            f.insert("type".into(), kind.clone());
        }
        f.insert("_variation".into(), Value::String(variation.id.clone()));
        if let Some(name) = &variation.name {
            f.insert("variationName".into(), name.clone());
        }
        if let Some(key) = &variation.key {
            f.insert("variationKey".into(), key.clone());
        }
        if let Some(settings) = &self.settings {
            f.insert("settings".into(), settings.clone());
        }
        f.insert("eval".into(), eval.clone());
        features.insert(self.key.clone(), Value::Object(f));
        feature_variations.insert(self.id.clone(), Value::String(variation.id.clone()));
        for (key, template) in variation.variables.iter() {
            let mut v = template.clone();
            v.insert("eval".into(), eval.clone());
            variables.insert(key.clone(), Value::Object(v));
        }
    }
}

impl Variation {
    fn compile(v: &Value, path: &str, feature_id: &str, shared: &Shared<'_>) -> Result<Self, RuleError> {
        let obj = object_at(Some(v), path)?;
        let id = string_at(obj, "_id", path)?.to_owned();
        let name = copied(obj.get("name"), &key_path(path, "name"))?;
        let key = copied(obj.get("key"), &key_path(path, "key"))?;
        let vars_path = key_path(path, "variables");
        let mut variables = Vec::new();
        for (i, entry) in array_at(obj.get("variables"), &vars_path)?.iter().enumerate() {
            let p = index_path(&vars_path, i);
            let entry = object_at(Some(entry), &p)?;
            let var_id = string_at(entry, "_var", &p)?;
            let variable = shared
                .variable_ids
                .get(var_id)
                .and_then(|&i| shared.variables.get(i))
                .ok_or_else(|| RuleError::new(key_path(&p, "_var"), format!("unknown variable {var_id:?}")))?;
            let value = copied(entry.get("value"), &key_path(&p, "value"))?;
            // `{...variable, _feature, value}`: existing keys keep their place.
            let mut template = (*variable).clone();
            template.insert("_feature".into(), Value::String(feature_id.to_owned()));
            match value {
                Some(value) => {
                    template.insert("value".into(), value);
                }
                None => {
                    template.shift_remove("value");
                }
            }
            let key = string_at(variable, "key", &p)?.to_owned();
            variables.push((key, template));
        }
        Ok(Variation { id, name, key, variables: variables.into() })
    }
}

impl Target {
    fn compile(v: &Value, path: &str, variations: &[Variation], shared: &Shared<'_>) -> Result<Self, RuleError> {
        let obj = object_at(Some(v), path)?;
        let id = string_at(obj, "_id", path)?.to_owned();
        let seed = murmur3_32(id.as_bytes(), BASE_SEED);

        let aud_path = key_path(path, "_audience");
        let audience = object_at(obj.get("_audience"), &aud_path)?;
        let filters_path = key_path(&aud_path, "filters");
        let mut c = Compiler::new(Some(shared.audience_ids));
        let filters = match audience.get("filters") {
            None | Some(Value::Null) => Node::empty_group(),
            Some(f) => c.group(f, &filters_path, 1, true)?,
        };
        let depth = c
            .refs
            .iter()
            .map(|&(b, at)| at + shared.audience_depth.get(b).copied().unwrap_or(0))
            .fold(c.max_depth, usize::max);
        if depth > MAX_RULE_DEPTH {
            return Err(RuleError::new(
                filters_path,
                format!("filters are nested deeper than {MAX_RULE_DEPTH} levels (counting referenced audiences)"),
            ));
        }

        let rollout_path = key_path(path, "rollout");
        let (rollout, has_rollout) = match obj.get("rollout") {
            None => (None, false),
            // `target.rollout !== undefined` still reports a rollout in the reason.
            Some(Value::Null) => (None, true),
            Some(Value::Object(r)) => (Some(Rollout::compile(r, &rollout_path)?), true),
            Some(_) => return Err(RuleError::new(rollout_path, "must be an object")),
        };

        let dist_path = key_path(path, "distribution");
        let entries = array_at(obj.get("distribution"), &dist_path)?;
        if entries.is_empty() {
            return Err(RuleError::new(dist_path, "must not be empty"));
        }
        let mut dist: Vec<(&str, f64, usize)> = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let p = index_path(&dist_path, i);
            let entry = object_at(Some(entry), &p)?;
            let var_id = string_at(entry, "_variation", &p)?;
            let idx = variations
                .iter()
                .position(|v| v.id == var_id)
                .ok_or_else(|| RuleError::new(key_path(&p, "_variation"), format!("unknown variation {var_id:?}")))?;
            let pct = match entry.get("percentage") {
                Some(Value::Number(n)) => json_number_to_f64(n),
                _ => return Err(RuleError::new(key_path(&p, "percentage"), "must be a number")),
            };
            if !(0.0..=1.0).contains(&pct) {
                return Err(RuleError::new(key_path(&p, "percentage"), "must be between 0 and 1"));
            }
            dist.push((var_id, pct, idx));
        }
        // Stable, like lodash: equal ids keep their config order.
        dist.sort_by(|a, b| cmp_utf16(b.0, a.0));
        let mut running = 0.0;
        let distribution: Box<[(f64, usize)]> = dist
            .iter()
            .map(|&(_, pct, idx)| {
                running += pct;
                (running, idx)
            })
            .collect();
        if (running - 1.0).abs() > DISTRIBUTION_TOLERANCE {
            return Err(RuleError::new(dist_path, format!("percentages add up to {running}, not 1")));
        }

        let bucketing_key = match obj.get("bucketingKey") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() || s == "user_id" => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(RuleError::new(key_path(path, "bucketingKey"), "must be a string")),
        };
        let split_prefix = match (distribution.len() != 1, has_rollout) {
            (true, true) => Some("Random Distribution | Rollout"),
            (true, false) => Some("Random Distribution"),
            (false, true) => Some("Rollout"),
            (false, false) => None,
        };
        Ok(Target { id, seed, filters, rollout, distribution, bucketing_key, split_prefix })
    }

    /// `decideTargetVariation`: the first variation whose running percentage exceeds the hash
    /// (a hash of exactly 1 lands on a running total of exactly 1).
    fn pick(&self, hash: f64) -> Option<usize> {
        self.distribution
            .iter()
            .find(|&&(running, _)| hash >= 0.0 && (hash < running || (running == 1.0 && hash == 1.0)))
            .map(|&(_, idx)| idx)
    }

    /// The `eval` of the bucketed feature and its variables.
    fn eval_reason(&self, reason_details: String) -> Eval<'_> {
        match self.split_prefix {
            Some(prefix) => {
                Eval { reason: "SPLIT", details: format!("{prefix} | {reason_details}"), target_id: Some(&self.id) }
            }
            None => Eval { reason: "TARGETING_MATCH", details: reason_details, target_id: Some(&self.id) },
        }
    }
}

/// The `eval` object of a bucketed feature and its variables: `{reason, details, target_id}`
/// (an override has no target: `{reason, details}`, as DevCycle writes it).
#[derive(Debug, Clone)]
struct Eval<'c> {
    reason: &'static str,
    details: String,
    target_id: Option<&'c str>,
}

impl Eval<'_> {
    /// DevCycle's `EVAL_REASONS.OVERRIDE` with `EVAL_REASON_DETAILS.OVERRIDE`.
    fn overridden() -> Eval<'static> {
        Eval { reason: "OVERRIDE", details: "Override".to_owned(), target_id: None }
    }

    fn to_value(&self) -> Value {
        let mut eval = Map::new();
        eval.insert("reason".into(), Value::String(self.reason.into()));
        eval.insert("details".into(), Value::String(self.details.clone()));
        if let Some(target) = self.target_id {
            eval.insert("target_id".into(), Value::String(target.to_owned()));
        }
        Value::Object(eval)
    }
}

/// One-shot [`Config::compile`] + [`Config::bucket`]. A bad config or a user that is not an
/// object is an [`EvalError::Invalid`].
pub fn bucket(config: &Value, user: &Value, now_ms: i64) -> Result<Value, EvalError> {
    if !user.is_object() {
        return Err(EvalError::Invalid("DevCycle user must be an object".into()));
    }
    let config = Config::compile(config, "$")?;
    Ok(config.bucket(user, now_ms))
}
