//! A compiled environment snapshot: every flag's targeting and config variants, evaluated for one
//! context at a time straight into the Reflag `/features/evaluated` JSON.
//!
//! Document shape (the Reflag `GET /features` body, plus an optional DevCycle SDK config):
//! `{"features": [{"key", "targeting": {"version", "rules": [{"filter"}]},
//!   "config"?: {"version", "variants": [{"filter", "key", "payload"}]}}], "devcycle"?: {...},
//!   "customDataTypes"?: {...}, "sdkVisibility"?: {...}}` ([`crate::edge_devcycle`]).
//!
//! A flag whose key names a feature of the `devcycle` config is decided by DevCycle's bucketing
//! ([`devcycle::Config::serve`], at the request's clock), not by its Reflag-shape rules: it is
//! enabled when a target serves the user, and its `config` is the served variation (key and
//! variable values), with the definition's `targetingVersion` and config `version`. Its
//! `ruleEvaluationResults` has one entry per target. Other flags take the Reflag path.

use crate::context::{unflatten, Fields, FlatContext};
use crate::counts::{self, index_in, Counts};
use crate::devcycle;
use crate::edge_devcycle::{CustomTypes, DevcycleFlag, Hidden, KeyKind};
use crate::error::{Budget, RuleError};
use crate::ofrep;
use crate::reflag::{devcycle_user, Compiler, Filters, Missing, Roots, Scope, Strings};
use key_index::KeyIndex;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

mod key_index;
mod patch;
pub use patch::Entry;

/// One config variant: its filter and its pre-serialized `,"config":{...}` member. Its payload
/// is kept only as that JSON text (a parsed tree would cost several times the text in every
/// worker); the rare caller that wants the value parses it back ([`Variant::payload`]).
#[derive(Debug, Clone)]
struct Variant {
    /// The root of its filter among the flag's [`Flag::filters`].
    filter: u32,
    /// Interned: variant keys repeat from flag to flag.
    key: Arc<str>,
    /// `,"config":{"key":…,"version":…,"payload":…` without the closing brace.
    json: Box<[u8]>,
    /// Where the payload's JSON text starts in `json`.
    payload_at: u32,
    /// How OFREP answers show it.
    ofrep: ofrep::VariantBytes,
}

impl Variant {
    fn payload(&self) -> Value {
        let text = self.json.get(self.payload_at as usize..).unwrap_or_default();
        serde_json::from_slice(text).unwrap_or(Value::Null)
    }
}

/// A compiled flag. Every snapshot of every worker holds one per flag, so its constant bytes
/// share one allocation ([`Flag::text`]) and rarely used parts are boxed.
#[derive(Debug, Clone)]
struct Flag {
    /// Shared with the snapshot's key index.
    key: Arc<str>,
    /// The targeting and config versions, set when `versions` says so ([`Flag::targeting_version`],
    /// [`Flag::config_version`]): two `Option<i64>` would take 16 bytes more in every flag.
    targeting: i64,
    config: i64,
    /// Bits: [`TARGETING_VERSION`], [`CONFIG_VERSION`], [`HAS_CONFIG`].
    versions: u8,
    /// Its rules' filters, then its variants' ([`Variant::filter`]), in one allocation.
    filters: Filters,
    variants: Box<[Variant]>,
    /// Set when a DevCycle feature decides this flag.
    devcycle: Option<Box<DevcycleFlag>>,
    /// The SDK key kinds that never see this flag (`sdkVisibility`).
    hidden: Hidden,
    /// In one allocation, ending at `ends[i]`: `"key":{"isEnabled":false,"key":"…",
    /// "targetingVersion":…` and the same with `true` (one copy per flag into the answer
    /// instead of three); its order key (where the flag sits among the environment's flags,
    /// see [`Entry`]; flags are kept sorted); then, when some rule holds a percentage rollout,
    /// one byte per rule ([`ofrep::FlagBytes::rollout`]).
    text: Box<[u8]>,
    ends: [u32; 3],
    /// XXH3-64 of the definition's JSON text as received. The text itself is not kept (about
    /// 300 bytes a flag, in every worker): `GET /features` is assembled from the stored
    /// definitions ([`Snapshot::local_definitions_json`]), which this checks are the ones compiled.
    definition_hash: u64,
    /// DISABLED (no rules) or STATIC (constant rules only) in OFREP answers; `None` when the
    /// context decides.
    fixed: Option<ofrep::Fixed>,
    /// What `GET /features` serves Reflag SDKs of this flag.
    local: Local,
    /// Some rule, variant or DevCycle link reads the nested context.
    nested: bool,
}

/// The part of [`Flag::text`] after the two openings.
const ORDER: usize = 2;

/// Bits of [`Flag::versions`].
const TARGETING_VERSION: u8 = 1;
const CONFIG_VERSION: u8 = 2;
/// The definition has a `config` object (the answer then shows a matched variant's config). A
/// bit here, not a `bool` field: that byte took the flag's `Arc` into the next malloc size (16
/// bytes more a flag).
const HAS_CONFIG: u8 = 4;

impl Flag {
    #[inline]
    fn targeting_version(&self) -> Option<i64> {
        (self.versions & TARGETING_VERSION != 0).then_some(self.targeting)
    }

    #[inline]
    fn has_config(&self) -> bool {
        self.versions & HAS_CONFIG != 0
    }

    #[inline]
    fn config_version(&self) -> Option<i64> {
        (self.versions & CONFIG_VERSION != 0).then_some(self.config)
    }

    /// The roots of its rules' filters: the trees before the first variant's.
    #[inline]
    fn rules(&self) -> Roots<'_> {
        let to = self.variants.first().map_or(usize::MAX, |v| v.filter as usize);
        self.filters.roots(0, to)
    }

    /// No rule (OFREP: DISABLED).
    fn no_rules(&self) -> bool {
        self.rules().next().is_none()
    }

    /// Every rule a constant filter (OFREP: STATIC).
    fn constant_rules(&self) -> bool {
        self.rules().all(|r| self.filters.is_constant(r))
    }

    fn part(&self, i: usize) -> &[u8] {
        let start = match i.checked_sub(1) {
            Some(before) => self.ends.get(before).copied().unwrap_or(0),
            None => 0,
        };
        let end = self.ends.get(i).copied().unwrap_or(0);
        self.text.get(start as usize..end as usize).unwrap_or_default()
    }

    /// `"key":{"isEnabled":<enabled>,"key":"…","targetingVersion":…`.
    #[inline]
    fn open(&self, enabled: bool) -> &[u8] {
        let [false_end, true_end, ..] = self.ends;
        let (start, end) = if enabled { (false_end, true_end) } else { (0, false_end) };
        self.text.get(start as usize..end as usize).unwrap_or_default()
    }

    /// The constant parts of its OFREP answers, from its text: the opening
    /// `<k>:{"isEnabled":false,"key":<k>,"targetingVersion":<n or null>` holds the JSON key `<k>`
    /// twice around 26 constant bytes, and its last comma is the one before `"targetingVersion"`.
    fn ofrep(&self) -> ofrep::FlagBytes<'_> {
        let open = self.open(false);
        let comma = open.iter().rposition(|&b| b == b',').unwrap_or(0);
        let key_len = comma.saturating_sub(26) / 2;
        let targeting_version =
            if self.versions & TARGETING_VERSION != 0 { open.get(comma..).unwrap_or_default() } else { &[] };
        let order_end = self.ends.get(ORDER).copied().unwrap_or(0) as usize;
        ofrep::FlagBytes {
            key_member: open.get(comma.saturating_sub(6 + key_len)..comma).unwrap_or_default(),
            targeting_version,
            rollout: self.text.get(order_end..).unwrap_or_default(),
            fixed: self.fixed,
        }
    }

    /// Where the flag sits among the environment's flags (compared as the order strings are).
    fn order(&self) -> &[u8] {
        self.part(ORDER)
    }
}

/// How a flag appears in `GET /features` (module [`reflag_sdk`]).
#[derive(Debug, Clone)]
enum Local {
    /// As its definition.
    Same,
    /// Rewritten into the shape Reflag SDKs require.
    Normalized(Box<[u8]>),
    /// Left out, for this reason: Reflag SDKs cannot evaluate it as the edge does (the reasons
    /// are few distinct texts, interned per compile).
    Remote(Arc<str>),
    /// Left out: DevCycle's bucketing decides it. Holds what it was before, for a document
    /// patch that unlinks it (the definition text is not kept, only its hash).
    Decided(Box<Local>),
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
    /// The kind of SDK key asking: flags `sdkVisibility` hides from it are left out.
    pub kind: Option<KeyKind>,
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
    #[serde(default, rename = "customDataTypes")]
    custom_data_types: Option<Value>,
    #[serde(default, rename = "sdkVisibility")]
    sdk_visibility: Option<Value>,
    #[serde(default, rename = "devcycleOverrides")]
    devcycle_overrides: Option<Value>,
}

/// The top-level members beside `features`.
#[derive(Default)]
struct Extras<'a> {
    devcycle: Option<&'a Value>,
    custom_data_types: Option<&'a Value>,
    sdk_visibility: Option<&'a Value>,
    devcycle_overrides: Option<&'a Value>,
}

/// The document's members beside `features`, given as a JSON object.
fn extras_root(extras: &[u8]) -> Result<Map<String, Value>, RuleError> {
    match serde_json::from_slice(extras).map_err(|e| RuleError::new("$", format!("invalid JSON: {e}")))? {
        Value::Object(root) => Ok(root),
        _ => Err(RuleError::new("$", "snapshot must be an object")),
    }
}

impl<'a> Extras<'a> {
    fn of(root: &'a Map<String, Value>) -> Self {
        Extras {
            devcycle: root.get("devcycle"),
            custom_data_types: root.get("customDataTypes"),
            sdk_visibility: root.get("sdkVisibility"),
            devcycle_overrides: root.get("devcycleOverrides"),
        }
    }
}

/// What every flag of a snapshot is compiled against: the document's members beside `features`.
/// A patch ([`Snapshot::patch`]) shares it with the snapshot it starts from.
#[derive(Debug, Default)]
struct Shared {
    devcycle: Option<devcycle::Config>,
    custom_types: CustomTypes,
    /// `sdkVisibility`, by flag key.
    hidden: HashMap<String, Hidden>,
}

/// A compiled environment. Flags are behind `Arc`s and the document-wide parts in [`Shared`], so
/// a patch clones a vector of pointers and compiles only the flags that changed.
#[derive(Debug)]
pub struct Snapshot {
    fields: Fields,
    flags: Vec<Arc<Flag>>,
    /// Flag key → index in `flags`; shared with the previous snapshot when no flag moved.
    by_key: Arc<KeyIndex>,
    needs_nested: bool,
    shared: Arc<Shared>,
    /// Evaluations per Reflag-path flag and variation ([`counts::reflag_slot`]), by this
    /// snapshot's flag positions: every snapshot (a patched one too) counts afresh. DevCycle-decided
    /// flags count in their DevCycle config's counters, which a patch shares with the snapshot it
    /// starts from (each evaluation is still drained once, for the same environment).
    counts: Counts,
    /// The field OFREP's targeting key stands for (`user.id`), when a rule reads it.
    user_id_field: Option<u32>,
}

/// What one flag answers in OFREP.
enum OfrepOutcome<'s> {
    Success {
        enabled: bool,
        reason: &'static str,
        config: Option<&'s ofrep::VariantBytes>,
    },
    /// Off because it reads `user.id` and the context has no targeting key.
    TargetingKeyMissing,
}

/// Buffers one OFREP answer reuses from flag to flag.
#[derive(Default)]
struct OfrepScratch {
    missing: Missing,
    variant_missing: Missing,
    results: Vec<bool>,
    devcycle: Option<devcycle::Scratch>,
}

/// `[a,b,…]` from JSON texts.
fn join_json<'a>(items: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = vec![b'['];
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.push(b']');
    out
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
        // Fast path: borrow each flag's text as it came, so `GET /features` can send it without
        // a re-serialization. Anything unusual takes the general path, whose errors name the
        // offending node.
        if let Ok(top) = serde_json::from_slice::<RawTop<'_>>(bytes) {
            if let Some(raw) = top.features {
                if let Ok(items) = serde_json::from_str::<Vec<&serde_json::value::RawValue>>(raw.get()) {
                    // Each flag is parsed as it is compiled: one parsed tree at a time.
                    let entries = items
                        .iter()
                        .map(|item| Entry { order: "".into(), text: Cow::Borrowed(item.get().as_bytes()), value: None })
                        .collect();
                    let extras = Extras {
                        devcycle: top.devcycle.as_ref(),
                        custom_data_types: top.custom_data_types.as_ref(),
                        sdk_visibility: top.sdk_visibility.as_ref(),
                        devcycle_overrides: top.devcycle_overrides.as_ref(),
                    };
                    return Self::build(entries, &extras);
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
        let entries = features
            .iter()
            .map(|f| Entry {
                order: "".into(),
                text: Cow::Owned(serde_json::to_vec(f).unwrap_or_else(|_| b"null".to_vec())),
                value: Some(f.clone()),
            })
            .collect();
        Self::build(entries, &Extras::of(root))
    }

    /// A snapshot from the document's members beside `features` (`extras`, a JSON object) and
    /// its flags as stored entries ([`Entry::from_stored`]), in any order: they are sorted by
    /// their `order`.
    pub fn assemble(extras: &[u8], entries: Vec<Entry<'_>>) -> Result<Self, RuleError> {
        let root = extras_root(extras)?;
        let mut entries = entries;
        entries.sort_by(|a, b| a.order.cmp(&b.order));
        Self::build(entries, &Extras::of(&root))
    }

    fn build(entries: Vec<Entry<'_>>, extras: &Extras<'_>) -> Result<Self, RuleError> {
        let mut fields = Fields::default();
        let mut strings = Strings::default();
        let mut by_key = KeyIndex::with_capacity(entries.len());
        let mut compiled: Vec<Flag> = Vec::with_capacity(entries.len());
        for (i, entry) in entries.into_iter().enumerate() {
            let path = format!("$.features[{i}]");
            let flag = compile_entry(&mut fields, &mut strings, entry, &path)?;
            if !by_key.insert(i, &flag.key, |j| &compiled[j].key) {
                return Err(RuleError::new(format!("{path}.key"), format!("duplicate flag key {:?}", flag.key)));
            }
            compiled.push(flag);
        }
        let shared = Shared::compile(extras)?;
        // Not `collect()`: collecting from the `Vec<Flag>` reuses its buffer, which would keep
        // 136 bytes a flag where a pointer takes 8, for the snapshot's whole life.
        let mut flags = Vec::with_capacity(compiled.len());
        flags.extend(compiled.into_iter().map(|flag| Arc::new(shared.finish(flag))));
        Ok(Self::from_parts(fields, flags, Arc::new(by_key), Arc::new(shared)))
    }

    /// The compiled flag `key`.
    fn flag(&self, key: &str) -> Option<&Arc<Flag>> {
        self.flags.get(self.by_key.get(key, |i| &self.flags[i].key)?)
    }

    /// The snapshot over compiled flags: what is derived from all of them.
    fn from_parts(fields: Fields, flags: Vec<Arc<Flag>>, by_key: Arc<KeyIndex>, shared: Arc<Shared>) -> Self {
        let needs_nested = flags.iter().any(|f| f.nested);
        let counts = Counts::new(flags.iter().map(|f| {
            if f.devcycle.is_some() {
                0
            } else {
                counts::reflag_slots(f.variants.len())
            }
        }));
        let user_id_field = fields.get(USER_ID);
        Self { fields, flags, by_key, needs_nested, shared, counts, user_id_field }
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
        self.shared.devcycle.is_some()
    }

    /// Each flag's definition text among `texts` (definitions' JSON texts, in any order; others
    /// ignored), in the snapshot's order; `None` unless every flag's text is there, exactly as
    /// compiled (the store has moved on, or was given other definitions).
    fn definitions_of<'t>(&self, texts: impl IntoIterator<Item = &'t [u8]>) -> Option<Vec<&'t [u8]>> {
        #[derive(serde::Deserialize)]
        struct Keyed<'a> {
            #[serde(borrow)]
            key: Cow<'a, str>,
        }
        let by_key: HashMap<Cow<'t, str>, &'t [u8]> = texts
            .into_iter()
            .filter_map(|text| serde_json::from_slice::<Keyed<'t>>(text).ok().map(|k| (k.key, text)))
            .collect();
        self.flags
            .iter()
            .map(|f| by_key.get(&*f.key).copied().filter(|text| definition_hash(text) == f.definition_hash))
            .collect()
    }

    /// The `features` array of the document as JSON: each flag's text among `texts` (as
    /// [`Snapshot::local_definitions_json`]), `None` unless they are the compiled ones.
    pub fn definitions_json<'t>(&self, texts: impl IntoIterator<Item = &'t [u8]>) -> Option<Vec<u8>> {
        Some(join_json(self.definitions_of(texts)?.into_iter()))
    }

    /// The `features` array of `GET /features`: every flag a Reflag SDK evaluates locally exactly
    /// as the edge does, in the shape those SDKs require (module [`reflag_sdk`]), from the
    /// definitions' texts (`texts`: the stored ones, in any order). `None` when some flag's text
    /// is missing or is not the one compiled (the store has moved on since).
    pub fn local_definitions_json<'t>(&self, texts: impl IntoIterator<Item = &'t [u8]>) -> Option<Vec<u8>> {
        let definitions = self.definitions_of(texts)?;
        Some(join_json(self.flags.iter().zip(definitions).filter_map(|(f, text)| match &f.local {
            Local::Same => Some(text),
            Local::Normalized(normalized) => Some(&**normalized),
            Local::Remote(_) | Local::Decided(_) => None,
        })))
    }

    /// The flags `GET /features` leaves out, each with the reason (remote evaluation only).
    /// Listed on every call, not kept (as [`Snapshot::definitions_json`]): the edge asks when it
    /// builds a version's `GET /features` body, which it keeps, and when it compiles anew.
    pub fn remote_only(&self) -> Vec<(Box<str>, String)> {
        let mut out: Vec<(Box<str>, String)> = self
            .flags
            .iter()
            .filter_map(|f| match &f.local {
                Local::Remote(reason) => Some((Box::from(&*f.key), reason.to_string())),
                _ => None,
            })
            .collect();
        // A DevCycle-decided flag is bucketed with DevCycle's murmur3 on the edge; its
        // Reflag-shape translation in `features` uses Reflag's hash, so a Reflag SDK
        // evaluating it locally would put users elsewhere. Remote evaluation only.
        let reason = "DevCycle targets: bucketed by DevCycle's algorithm (murmur3) on the edge";
        out.extend(
            self.flags
                .iter()
                .filter(|f| matches!(f.local, Local::Decided(_)))
                .map(|f| (Box::from(&*f.key), reason.to_string())),
        );
        out
    }

    /// DevCycle bucketed config for a DevCycle-shaped user, when the snapshot carries one (custom
    /// data coerced to the declared types first, as on every route), without the features
    /// `sdkVisibility` hides from `kind` keys.
    pub fn devcycle_bucket(&self, user: &Value, now_ms: i64, kind: Option<KeyKind>) -> Option<Value> {
        let config = self.shared.devcycle.as_ref()?;
        let visible = |key: &str| !self.flag(key).is_some_and(|f| f.hidden.hides(kind));
        if self.shared.custom_types.is_empty() {
            return Some(config.bucket_visible(user, now_ms, visible));
        }
        let mut user = user.clone();
        if let Some(m) = user.as_object_mut() {
            self.shared.custom_types.coerce(m);
        }
        Some(config.bucket_visible(&user, now_ms, visible))
    }

    /// The keys of the flags that `sdkVisibility` hides from `kind` keys, in snapshot order.
    pub fn hidden_from(&self, kind: KeyKind) -> impl Iterator<Item = &str> {
        self.flags.iter().filter(move |f| f.hidden.hides(Some(kind))).map(|f| &*f.key)
    }

    /// Per DevCycle-decided flag: whether serving from each of its targets is a `SPLIT`.
    pub fn devcycle_splits(&self) -> impl Iterator<Item = (&str, &[bool])> {
        self.flags.iter().filter_map(|f| f.devcycle.as_ref().map(|d| (&*f.key, &*d.splits)))
    }

    /// A DevCycle route's answer bytes for a DevCycle-shaped user (`devcycle::Config::answer`),
    /// when the snapshot carries a DevCycle config; `None` also for a variable not served.
    pub fn devcycle_answer(
        &self,
        user: &Value,
        now_ms: i64,
        part: devcycle::Part<'_>,
        hidden: &std::collections::HashSet<String>,
    ) -> Option<Vec<u8>> {
        self.shared.devcycle.as_ref().and_then(|c| c.answer(user, now_ms, part, hidden))
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
        let mut user = if self.needs_nested { devcycle_user(nested) } else { Value::Null };
        if let Value::Object(m) = &mut user {
            self.shared.custom_types.coerce(m);
        }
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
            let mut dc_scratch = None;
            for flag in &self.flags {
                if flag.hidden.hides(opts.kind) {
                    continue;
                }
                missing.0.clear();
                results.clear();
                if let Some(dc) = &flag.devcycle {
                    let served = self.serve(dc, scope, &mut dc_scratch, opts.debug.then_some(&mut results));
                    if opts.enabled_only && served.is_none() {
                        continue;
                    }
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    self.write_devcycle(out, flag, dc, served.as_ref(), opts.debug.then_some(&results[..]));
                    self.count_served(dc, served.as_ref());
                    continue;
                }
                let mut budget = Budget::default();
                // Every rule and every variant is evaluated, as `rules.map(...)` in the reference,
                // because SDKs read the per-rule results and missing fields (check events, warnings).
                let enabled = eval_rules(flag, scope, &mut missing, &mut budget, Some(&mut results));
                if opts.enabled_only && !enabled {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                out.extend_from_slice(flag.open(enabled));
                write_details(out, &results, &missing, &self.fields, opts.debug);
                if !flag.variants.is_empty() {
                    cfg_missing.0.clear();
                    cfg_results.clear();
                    let matched = pick_variant(flag, scope, &mut cfg_missing, &mut budget, Some(&mut cfg_results));
                    if let Some(v) = matched {
                        out.extend_from_slice(&v.json);
                        write_details(out, &cfg_results, &cfg_missing, &self.fields, opts.debug);
                        out.push(b'}');
                    } else if opts.debug {
                        out.extend_from_slice(b",\"config\":{");
                        if let Some(ver) = flag.config_version() {
                            out.extend_from_slice(format!("\"version\":{ver}").as_bytes());
                        } else {
                            out.extend_from_slice(b"\"version\":null");
                        }
                        write_details(out, &cfg_results, &cfg_missing, &self.fields, true);
                        out.push(b'}');
                    }
                }
                self.count(flag, enabled, flag.variants.first().and(cfg_results.iter().position(|hit| *hit)));
                out.push(b'}');
            }
            out.push(b'}');
        });
    }

    /// Evaluate one flag (OFREP); `None` when the snapshot has no such flag.
    /// A flag `sdkVisibility` hides from `kind` is `None` too.
    pub fn evaluate_flag<S: AsRef<str>>(
        &self,
        key: &str,
        ctx: &Context<'_, S>,
        now_ms: f64,
        kind: Option<KeyKind>,
    ) -> Option<FlagResult> {
        let flag = self.flag(key)?;
        if flag.hidden.hides(kind) {
            return None;
        }
        if let Some(dc) = &flag.devcycle {
            return Some(self.with_scope(ctx, now_ms, |scope| self.devcycle_result(flag, dc, scope)));
        }
        Some(self.with_scope(ctx, now_ms, |scope| {
            let mut missing = Missing::default();
            let mut results = Vec::new();
            let mut budget = Budget::default();
            let enabled = eval_rules(flag, scope, &mut missing, &mut budget, Some(&mut results));
            let reason = if flag.no_rules() {
                "DISABLED"
            } else if flag.constant_rules() {
                "STATIC"
            } else if !enabled {
                "DEFAULT"
            } else if results
                .iter()
                .position(|r| *r)
                .and_then(|i| flag.rules().nth(i))
                .is_some_and(|r| flag.filters.has_rollout(r))
            {
                "SPLIT"
            } else {
                "TARGETING_MATCH"
            };
            let config = pick_variant(flag, scope, &mut Missing::default(), &mut budget, None)
                .map(|v| (v.key.to_string(), v.payload()));
            let variant = match (&config, enabled) {
                (Some((k, _)), true) => k.clone(),
                (_, true) => "on".to_string(),
                (_, false) => "off".to_string(),
            };
            self.count(
                flag,
                enabled,
                config.as_ref().and_then(|(k, _)| flag.variants.iter().position(|v| *v.key == **k)),
            );
            FlagResult {
                enabled,
                variant,
                reason,
                targeting_version: flag.targeting_version(),
                config,
                rule_results: results,
                missing: missing.0.iter().map(|id| self.fields.name(*id).to_string()).collect(),
            }
        }))
    }
}

impl Snapshot {
    /// DevCycle's serving of a linked flag for the scope's user (`results`: one per target).
    fn serve(
        &self,
        dc: &DevcycleFlag,
        scope: &Scope<'_, '_>,
        scratch: &mut Option<devcycle::Scratch>,
        results: Option<&mut Vec<bool>>,
    ) -> Option<devcycle::Served> {
        let config = self.shared.devcycle.as_ref()?;
        let empty = Map::new();
        let user = scope.user.as_object().unwrap_or(&empty);
        let scratch = scratch.get_or_insert_with(|| config.scratch());
        config.serve(dc.feature, user, scope.now_ms, scratch, results)
    }

    /// One DevCycle-decided flag of `/features/evaluated`, in the shape of the Reflag path.
    fn write_devcycle(
        &self,
        out: &mut Vec<u8>,
        flag: &Flag,
        dc: &DevcycleFlag,
        served: Option<&devcycle::Served>,
        results: Option<&[bool]>,
    ) {
        out.extend_from_slice(flag.open(served.is_some()));
        let no_missing = Missing::default();
        if let Some(results) = results {
            write_details(out, results, &no_missing, &self.fields, true);
        }
        if flag.has_config() {
            if let Some(cfg) = served.and_then(|s| dc.config_of(s)) {
                out.extend_from_slice(&cfg.json);
                if let Some(results) = results {
                    write_details(out, results, &no_missing, &self.fields, true);
                }
                out.push(b'}');
            } else if let Some(results) = results {
                out.extend_from_slice(b",\"config\":{");
                match flag.config_version() {
                    Some(ver) => out.extend_from_slice(format!("\"version\":{ver}").as_bytes()),
                    None => out.extend_from_slice(b"\"version\":null"),
                }
                write_details(out, results, &no_missing, &self.fields, true);
                out.push(b'}');
            }
        }
        out.push(b'}');
    }

    /// The OFREP-style result of a DevCycle-decided flag.
    fn devcycle_result(&self, flag: &Flag, dc: &DevcycleFlag, scope: &Scope<'_, '_>) -> FlagResult {
        let mut results = Vec::new();
        let served = self.serve(dc, scope, &mut None, Some(&mut results));
        self.count_served(dc, served.as_ref());
        let config = served.as_ref().and_then(|s| dc.config_of(s)).map(|c| (c.key.to_string(), c.payload.clone()));
        let reason = if flag.no_rules() {
            "DISABLED"
        } else if flag.constant_rules() {
            "STATIC"
        } else {
            match &served {
                None => "DEFAULT",
                Some(s) if s.overridden => "OVERRIDE",
                Some(s) if s.split => "SPLIT",
                Some(_) => "TARGETING_MATCH",
            }
        };
        let enabled = served.is_some();
        let variant = match (&config, enabled) {
            (Some((k, _)), true) => k.clone(),
            (_, true) => "on".to_string(),
            (_, false) => "off".to_string(),
        };
        FlagResult {
            enabled,
            variant,
            reason,
            targeting_version: flag.targeting_version(),
            config,
            rule_results: results,
            missing: Vec::new(),
        }
    }
}

/// Evaluation counts ([`crate::counts`]).
impl Snapshot {
    /// Count a Reflag-path flag's evaluation: enabled or not, and the config variant it matched.
    /// `flag` is an element of `self.flags` (its slot, not the shared `Flag`): the slot's address
    /// gives this snapshot's position of the flag, which a patch may have moved.
    fn count(&self, flag: &Arc<Flag>, enabled: bool, variant: Option<usize>) {
        if let Some(i) = index_in(&self.flags, flag) {
            self.counts.hit(i, counts::reflag_slot(enabled, variant));
        }
    }

    fn count_served(&self, dc: &DevcycleFlag, served: Option<&devcycle::Served>) {
        if let Some(config) = &self.shared.devcycle {
            config.count_served(dc.feature, served);
        }
    }

    /// `(flag or feature key, variation key, evaluations)` counted on every route since the
    /// last drain, each counter reset as it is read. A Reflag-path flag's variation is what its
    /// OFREP answer reports as `variant`: `"off"` (disabled), `"on"` (enabled, no config
    /// variant) or the matched config variant's key; a DevCycle feature's is the served
    /// variation's key (its `_id` without one). Unserved DevCycle features are not counted.
    pub fn drain_counts(&self) -> Vec<(&str, &str, u32)> {
        let mut out = Vec::new();
        for (i, slot, n) in self.counts.drain() {
            let Some(flag) = self.flags.get(i) else { continue };
            let variation = match slot {
                0 => Some(counts::OFF),
                1 => Some(counts::ON),
                _ => flag.variants.get(slot - 2).map(|v| &*v.key),
            };
            if let Some(variation) = variation {
                out.push((&*flag.key, variation, n));
            }
        }
        if let Some(config) = &self.shared.devcycle {
            out.extend(config.drain_counts());
        }
        out
    }
}

/// The context field OFREP's `targetingKey` stands for.
const USER_ID: &str = "user.id";

impl Snapshot {
    /// The OFREP bulk answer for one context: `{"flags":[...]` (every flag the key's kind
    /// sees, in snapshot order; module [`ofrep`]), then `tail` (the caller's further members,
    /// each with its leading comma), then `}`.
    pub fn ofrep_all<S: AsRef<str>>(&self, ctx: &Context<'_, S>, opts: ofrep::Options, tail: &[u8], out: &mut Vec<u8>) {
        self.with_scope(ctx, opts.now_ms, |scope| {
            out.reserve(self.flags.len() * 128 + tail.len() + 16);
            out.extend_from_slice(b"{\"flags\":[");
            let mut scratch = OfrepScratch::default();
            let mut first = true;
            for flag in &self.flags {
                if flag.hidden.hides(opts.kind) {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                self.write_ofrep(out, flag, scope, opts, &mut scratch);
            }
            out.push(b']');
            out.extend_from_slice(tail);
            out.push(b'}');
        });
    }

    /// One flag's OFREP answer for one context: `Some(true)` after writing its success object
    /// with `tail` before the closing brace, `Some(false)` after writing its
    /// TARGETING_KEY_MISSING failure object (no `tail`); `None` for a flag the snapshot does not
    /// have or hides from `opts.kind` keys.
    pub fn ofrep_flag<S: AsRef<str>>(
        &self,
        key: &str,
        ctx: &Context<'_, S>,
        opts: ofrep::Options,
        tail: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<bool> {
        let flag = self.flag(key)?;
        if flag.hidden.hides(opts.kind) {
            return None;
        }
        Some(self.with_scope(ctx, opts.now_ms, |scope| {
            let start = out.len();
            let ok = self.write_ofrep(out, flag, scope, opts, &mut OfrepScratch::default());
            if ok {
                // Reopen the object for the caller's members.
                out.truncate(out.len() - 1);
                out.extend_from_slice(tail);
                out.push(b'}');
            }
            debug_assert!(out.len() > start);
            ok
        }))
    }

    /// One flag's OFREP object; false when it is the TARGETING_KEY_MISSING failure.
    fn write_ofrep(
        &self,
        out: &mut Vec<u8>,
        flag: &Arc<Flag>,
        scope: &Scope<'_, '_>,
        opts: ofrep::Options,
        scratch: &mut OfrepScratch,
    ) -> bool {
        match self.ofrep_outcome(flag, scope, opts, scratch) {
            OfrepOutcome::Success { enabled, reason, config } => {
                flag.ofrep().write_success(out, enabled, reason, config, opts.flag_state_version);
                true
            }
            OfrepOutcome::TargetingKeyMissing => {
                flag.ofrep().write_missing_key(out, &flag.key);
                false
            }
        }
    }

    /// The outcome [`Snapshot::evaluate_flag`] gives, without building its result.
    fn ofrep_outcome<'s>(
        &'s self,
        flag: &'s Arc<Flag>,
        scope: &Scope<'_, '_>,
        opts: ofrep::Options,
        scratch: &mut OfrepScratch,
    ) -> OfrepOutcome<'s> {
        if let Some(dc) = &flag.devcycle {
            let served = self.serve(dc, scope, &mut scratch.devcycle, None);
            self.count_served(dc, served.as_ref());
            let reason = flag.fixed.map(ofrep::Fixed::reason).unwrap_or(match &served {
                None => "DEFAULT",
                Some(s) if s.split => "SPLIT",
                Some(_) => "TARGETING_MATCH",
            });
            let config = served.as_ref().and_then(|s| dc.config_of(s)).map(|c| &c.ofrep);
            return OfrepOutcome::Success { enabled: served.is_some(), reason, config };
        }
        scratch.missing.0.clear();
        scratch.results.clear();
        let mut budget = Budget::default();
        // Every rule is evaluated, as for `/features/evaluated`, so that the missing fields are
        // complete and the budget left for the variants is the same.
        let enabled = eval_rules(flag, scope, &mut scratch.missing, &mut budget, Some(&mut scratch.results));
        if !enabled && !opts.has_targeting_key && self.user_id_field.is_some_and(|id| scratch.missing.0.contains(&id)) {
            self.count(flag, false, None);
            return OfrepOutcome::TargetingKeyMissing;
        }
        let reason = flag.ofrep().reason(scratch.results.iter().position(|r| *r));
        scratch.variant_missing.0.clear();
        let config = pick_variant(flag, scope, &mut scratch.variant_missing, &mut budget, None);
        self.count(flag, enabled, config.and_then(|v| index_in(&flag.variants, v)));
        OfrepOutcome::Success { enabled, reason, config: config.map(|v| &v.ofrep) }
    }
}

/// `,"config":{"key":…,"version":…,"payload":…` (without the closing brace).
fn variant_json(key: &str, version: Option<i64>, payload: &Value) -> Vec<u8> {
    variant_json_at(key, version, payload).0
}

/// [`variant_json`], and where the payload's text starts in it.
fn variant_json_at(key: &str, version: Option<i64>, payload: &Value) -> (Vec<u8>, usize) {
    let mut json = b",\"config\":{\"key\":".to_vec();
    json_str(&mut json, key);
    json.extend_from_slice(b",\"version\":");
    match version {
        Some(ver) => json.extend_from_slice(ver.to_string().as_bytes()),
        None => json.extend_from_slice(b"null"),
    }
    json.extend_from_slice(b",\"payload\":");
    let at = json.len();
    // Writing a `Value` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut json, payload);
    (json, at)
}

/// Whether some rule of `flag` matches.
fn eval_rules(
    flag: &Flag,
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
            for r in flag.rules() {
                let hit = flag.filters.eval(r, scope, missing, budget);
                results.push(hit);
                any |= hit;
            }
            any
        }
        None => flag.rules().any(|r| flag.filters.eval(r, scope, missing, budget)),
    }
}

/// The first config variant of `flag` whose filter matches.
fn pick_variant<'v>(
    flag: &'v Flag,
    scope: &Scope<'_, '_>,
    missing: &mut Missing,
    budget: &mut Budget,
    mut results: Option<&mut Vec<bool>>,
) -> Option<&'v Variant> {
    let mut picked = None;
    for v in flag.variants.iter() {
        let hit = flag.filters.eval(v.filter as usize, scope, missing, budget);
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
    if missing.0.is_empty() && !debug {
        // The common case, one rule and nothing missing, as one fixed-size copy.
        match results {
            [true] => return out.extend_from_slice(b",\"ruleEvaluationResults\":[true]"),
            [false] => return out.extend_from_slice(b",\"ruleEvaluationResults\":[false]"),
            _ => {}
        }
    }
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

/// Compile one stored flag, parsing its definition now if it is not parsed yet: building a
/// snapshot holds one parsed tree at a time, dropped as soon as its flag is compiled.
fn compile_entry(fields: &mut Fields, strings: &mut Strings, entry: Entry<'_>, path: &str) -> Result<Flag, RuleError> {
    let value = match entry.value {
        Some(value) => value,
        None => serde_json::from_slice(&entry.text).map_err(|e| RuleError::new(path, format!("invalid JSON: {e}")))?,
    };
    let mut flag = compile_flag(fields, strings, &value, path, &entry.text, &entry.order)?;
    flag.local = Local::of(&value, strings);
    Ok(flag)
}

/// Compile one flag definition `v` (`definition`: its JSON text, `order`: its order key).
fn compile_flag(
    fields: &mut Fields,
    strings: &mut Strings,
    v: &Value,
    path: &str,
    definition: &[u8],
    order: &str,
) -> Result<Flag, RuleError> {
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
    let mut compiler = Compiler::new(fields, strings, key);
    for (i, r) in rule_values.iter().enumerate() {
        let rpath = format!("{tpath}.rules[{i}]");
        let filter = r.get("filter").ok_or_else(|| RuleError::new(format!("{rpath}.filter"), "is required"))?;
        compiler.filter(filter, &format!("{rpath}.filter"))?;
    }
    let cpath = format!("{path}.config");
    let has_config = matches!(m.get("config"), Some(Value::Object(_)));
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
            None => compiler.constant(true),
        };
        let filter = u32::try_from(filter).map_err(|_| RuleError::new(&vpath, "too many filter nodes"))?;
        let null = Value::Null;
        let payload = vm.get("payload").unwrap_or(&null);
        let (json, payload_at) = variant_json_at(vkey, config_version, payload);
        let ofrep = ofrep::VariantBytes::new(vkey, payload);
        let payload_at = u32::try_from(payload_at).unwrap_or(u32::MAX);
        variants.push(Variant { filter, key: compiler.strings().intern(vkey), json: json.into(), payload_at, ofrep });
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
    let flag_key = compiler.strings().intern(key);
    let filters = compiler.finish();
    let rules = filters.roots(0, variants.first().map_or(usize::MAX, |v| v.filter as usize));
    let fixed = if rules.clone().next().is_none() {
        Some(ofrep::Fixed::Disabled)
    } else if rules.clone().all(|r| filters.is_constant(r)) {
        Some(ofrep::Fixed::Static)
    } else {
        None
    };
    let rollout: Vec<u8> = rules.map(|r| u8::from(filters.has_rollout(r))).collect();
    let rollout = if rollout.contains(&1) { rollout } else { Vec::new() };
    // `text`: the two openings, the order key and the rollout marks (see `Flag::text`).
    let open_len = head.len() + tail.len();
    let mut text = Vec::with_capacity(2 * open_len + 9 + order.len() + rollout.len());
    let mut ends = [0u32; 3];
    for (i, end) in ends.iter_mut().enumerate() {
        match i {
            0 | 1 => {
                text.extend_from_slice(&head);
                text.extend_from_slice(if i == 1 { b"true" } else { b"false" });
                text.extend_from_slice(&tail);
            }
            _ => text.extend_from_slice(order.as_bytes()),
        }
        *end = u32::try_from(text.len()).map_err(|_| RuleError::new(path, "flag definition too large"))?;
    }
    text.extend_from_slice(&rollout);
    Ok(Flag {
        key: flag_key,
        targeting: targeting_version.unwrap_or_default(),
        config: config_version.unwrap_or_default(),
        versions: u8::from(targeting_version.is_some()) * TARGETING_VERSION
            + u8::from(config_version.is_some()) * CONFIG_VERSION
            + u8::from(has_config) * HAS_CONFIG,
        filters,
        variants: variants.into(),
        devcycle: None,
        hidden: Hidden::default(),
        text: text.into(),
        ends,
        definition_hash: definition_hash(definition),
        fixed,
        local: Local::Same,
        nested: false,
    })
}

/// What [`Flag::definition_hash`] holds of a definition's text.
fn definition_hash(text: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(text)
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
    let mut strings = Strings::default();
    let mut compiler = Compiler::new(&mut fields, &mut strings, flag_key);
    let mut compiled = Vec::with_capacity(items.len());
    for (i, r) in items.iter().enumerate() {
        let filter = r.get("filter").ok_or_else(|| RuleError::new(format!("$[{i}].filter"), "is required"))?;
        compiled.push((compiler.filter(filter, &format!("$[{i}].filter"))?, r.get("value")));
    }
    let filters = compiler.finish();
    let flat = FlatContext::from_nested(&fields, context);
    let user = if filters.needs_nested() { devcycle_user(context) } else { Value::Null };
    let scope = Scope { flat: &flat, nested: context, user: &user, now_ms };
    let mut missing = Missing::default();
    let mut budget = Budget::default();
    let rule_results: Vec<bool> =
        compiled.iter().map(|(root, _)| filters.eval(*root, &scope, &mut missing, &mut budget)).collect();
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

    const TEXT: &[u8] =
        br#"{"key": "a", "targeting": {"version": 1, "rules": [{"filter": {"type": "constant", "value": true}}]}}"#;

    #[test]
    fn definitions_from_bytes_are_the_features_text_as_sent() {
        let s = Snapshot::from_json(DOC.as_bytes()).unwrap();
        assert_eq!(s.definitions_json([TEXT]).unwrap(), [b"[", TEXT, b"]"].concat());
        assert_eq!(s.local_definitions_json([TEXT]).unwrap(), [b"[", TEXT, b"]"].concat());
        // The same definition written otherwise is not the text compiled.
        let compact = serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(TEXT).unwrap()).unwrap();
        assert_eq!(s.definitions_json([&compact[..]]), None);
    }

    #[test]
    fn parsed_documents_and_unusual_bytes_give_the_same_definitions() {
        let parsed = Snapshot::compile(serde_json::from_str(DOC).unwrap()).unwrap();
        let compact = serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(TEXT).unwrap()).unwrap();
        let a: serde_json::Value = serde_json::from_slice(&parsed.definitions_json([&compact[..]]).unwrap()).unwrap();
        let b: serde_json::Value = serde_json::from_slice(TEXT).unwrap();
        assert_eq!(a, serde_json::json!([b]));
        // Duplicate top-level keys and a missing `features` take the general path.
        let dup = Snapshot::from_json(br#"{"features": [], "features": []}"#).unwrap();
        assert_eq!(dup.definitions_json([]).unwrap(), b"[]");
        assert_eq!(Snapshot::from_json(b"{}").unwrap().definitions_json([]).unwrap(), b"[]");
    }

    #[test]
    fn ofrep_parts_are_read_from_the_openings_whatever_the_key() {
        let keys = ["f", "a,b", "x\",\"y", "é,", "tab\t,", ",", "1,\"targetingVersion\":2"];
        for version in [Some(-3), Some(12345), None] {
            let features: Vec<_> = keys
                .iter()
                .map(|key| match version {
                    Some(v) => json!({"key": key, "targeting": {"version": v, "rules": []}}),
                    None => json!({"key": key, "targeting": {"rules": []}}),
                })
                .collect();
            let s = Snapshot::compile(json!({ "features": features })).unwrap();
            for key in keys {
                let flag = s.flag(key).unwrap();
                let parts = flag.ofrep();
                let mut member = b"\"key\":".to_vec();
                serde_json::to_writer(&mut member, key).unwrap();
                assert_eq!(String::from_utf8_lossy(parts.key_member), String::from_utf8_lossy(&member), "{key:?}");
                let want = version.map(|v| format!(",\"targetingVersion\":{v}")).unwrap_or_default();
                assert_eq!(String::from_utf8_lossy(parts.targeting_version), want, "{key:?}");
                assert!(parts.rollout.is_empty());
            }
        }
    }

    #[test]
    fn the_flag_list_holds_no_spare_room() {
        let features: Vec<_> = (0..100).map(|i| json!({"key": format!("f{i}"), "targeting": {"rules": []}})).collect();
        let s = Snapshot::compile(json!({ "features": features })).unwrap();
        assert_eq!(s.flags.capacity(), s.flags.len());
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
