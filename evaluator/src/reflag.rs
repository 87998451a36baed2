//! Reflag targeting filters (`@reflag/flag-evaluation` 1.0.1), compiled onto a field table.
//!
//! A filter tree may embed DevCycle user filters (`all`, `user`, `optIn`) and JSON Logic nodes
//! (`{"type": "jsonLogic", "rule": ...}`); each keeps its own dialect's semantics and reads the
//! nested context.

use crate::context::{Fields, FlatContext};
use crate::dates::{days_ago, parse_date};
use crate::devcycle::UserFilter;
use crate::error::{Budget, RuleError, MAX_RULE_DEPTH};
use crate::hash::reflag_hash_parts;
use crate::jsnum::{json_number_to_f64, string_to_number};
use crate::jsonlogic::Logic;
use rustc_hash::FxHashSet;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Context operators of Reflag's `context` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Is,
    IsNot,
    AnyOf,
    NotAnyOf,
    Contains,
    NotContains,
    Gt,
    Lt,
    After,
    Before,
    DateAfter,
    DateBefore,
    Set,
    NotSet,
    IsTrue,
    IsFalse,
}

impl Operator {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "IS" => Self::Is,
            "IS_NOT" => Self::IsNot,
            "ANY_OF" => Self::AnyOf,
            "NOT_ANY_OF" => Self::NotAnyOf,
            "CONTAINS" => Self::Contains,
            "NOT_CONTAINS" => Self::NotContains,
            "GT" => Self::Gt,
            "LT" => Self::Lt,
            "AFTER" => Self::After,
            "BEFORE" => Self::Before,
            "DATE_AFTER" => Self::DateAfter,
            "DATE_BEFORE" => Self::DateBefore,
            "SET" => Self::Set,
            "NOT_SET" => Self::NotSet,
            "IS_TRUE" => Self::IsTrue,
            "IS_FALSE" => Self::IsFalse,
            _ => return None,
        })
    }
}

/// A compiled context comparison: what the operator reads of its values, pre-parsed. A snapshot
/// holds one per `context` filter in every worker, so only what the operator reads is kept.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub op: Operator,
    /// The values IS/IS_NOT (the first) and ANY_OF/NOT_ANY_OF (all, unless `set` holds them)
    /// compare with; empty for the other operators.
    values: Box<[Arc<str>]>,
    // Fx: the set is the snapshot's values; a context value is only looked up, never inserted.
    set: Option<Box<FxHashSet<Arc<str>>>>,
    /// `values[0]` lower-cased (CONTAINS/NOT_CONTAINS), or `None` when absent.
    lower: Option<Box<str>>,
    /// `Number(values[0])` (GT/LT, AFTER/BEFORE days); NaN when absent.
    number: f64,
    /// `new Date(values[0])` in epoch ms (DATE_AFTER/DATE_BEFORE).
    date: Option<f64>,
}

/// `ANY_OF` lists at least this long use a hash set.
const SET_THRESHOLD: usize = 8;

/// Strings a snapshot's compiled filters share (values compared with, rollout keys): the same
/// value (a plan, a country, an account id, a flag key) is held once however many filters use it.
#[derive(Debug, Default)]
pub struct Strings(FxHashSet<Arc<str>>);

impl Strings {
    pub fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(found) = self.0.get(s) {
            return Arc::clone(found);
        }
        let new: Arc<str> = Arc::from(s);
        self.0.insert(Arc::clone(&new));
        new
    }
}

impl Comparison {
    pub fn new(op: Operator, values: Vec<String>) -> Self {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        Self::interned(op, &values, &mut Strings::default())
    }

    /// A comparison whose values are taken from (or added to) `strings`.
    pub fn interned(op: Operator, values: &[&str], strings: &mut Strings) -> Self {
        let first = values.first().copied();
        let contains = matches!(op, Operator::Contains | Operator::NotContains);
        let lower = first.filter(|_| contains).map(|v| v.to_lowercase().into_boxed_str());
        let number = first.map_or(f64::NAN, string_to_number);
        let date = first.and_then(parse_date);
        let any_of = matches!(op, Operator::AnyOf | Operator::NotAnyOf);
        let mut interned = |v: &&str| strings.intern(v);
        let (values, set) = match op {
            _ if any_of && values.len() >= SET_THRESHOLD => {
                (Box::default(), Some(Box::new(values.iter().map(&mut interned).collect())))
            }
            _ if any_of => (values.iter().map(&mut interned).collect(), None),
            Operator::Is | Operator::IsNot => (values.iter().take(1).map(&mut interned).collect(), None),
            _ => (Box::default(), None),
        };
        Self { op, values, set, lower, number, date }
    }

    fn any_of(&self, field: &str) -> bool {
        match &self.set {
            Some(set) => set.contains(field),
            None => self.values.iter().any(|v| **v == *field),
        }
    }

    /// The operator compares dates (the field's value is parsed as one).
    #[inline]
    pub fn reads_date(&self) -> bool {
        matches!(self.op, Operator::After | Operator::Before | Operator::DateAfter | Operator::DateBefore)
    }

    /// A date comparison of the field's value already parsed (`at`, `None` when not a date).
    pub fn eval_date(&self, at: Option<f64>, now_ms: f64) -> bool {
        let Some(at) = at else {
            return false;
        };
        match self.op {
            Operator::After | Operator::Before => {
                let Some(then) = days_ago(now_ms, self.number) else {
                    return false;
                };
                if self.op == Operator::After {
                    at > then
                } else {
                    at < then
                }
            }
            Operator::DateAfter | Operator::DateBefore => {
                let Some(v) = self.date else {
                    return false;
                };
                if self.op == Operator::DateAfter {
                    at >= v
                } else {
                    at <= v
                }
            }
            _ => false,
        }
    }

    /// `evaluate(fieldValue, operator, values)`; `now_ms` is the clock for AFTER/BEFORE.
    pub fn eval(&self, field: &str, now_ms: f64) -> bool {
        let first = self.values.first().map(|v| &**v);
        match self.op {
            Operator::Contains => self.lower.as_deref().is_some_and(|v| contains_lower(field, v)),
            Operator::NotContains => self.lower.as_deref().is_some_and(|v| !contains_lower(field, v)),
            Operator::Gt => {
                let f = string_to_number(field);
                !f.is_nan() && !self.number.is_nan() && f > self.number
            }
            Operator::Lt => {
                let f = string_to_number(field);
                !f.is_nan() && !self.number.is_nan() && f < self.number
            }
            Operator::After | Operator::Before | Operator::DateAfter | Operator::DateBefore => {
                self.eval_date(parse_date(field), now_ms)
            }
            Operator::Set => !field.is_empty(),
            Operator::NotSet => field.is_empty(),
            Operator::Is => first == Some(field),
            Operator::IsNot => first != Some(field),
            Operator::AnyOf => self.any_of(field),
            Operator::NotAnyOf => !self.any_of(field),
            Operator::IsTrue => field == "true",
            Operator::IsFalse => field == "false",
        }
    }
}

/// `haystack.toLowerCase().includes(needle_lower)`, without allocating for ASCII input.
fn contains_lower(haystack: &str, needle_lower: &str) -> bool {
    if haystack.is_ascii() {
        let (h, n) = (haystack.as_bytes(), needle_lower.as_bytes());
        let Some(&first) = n.first() else {
            return true;
        };
        // `needle_lower` has no ASCII upper case, so comparing both sides lower-cased is the
        // same test; a window is only compared when its first byte matches.
        return h
            .windows(n.len())
            .any(|w| w.first().map(u8::to_ascii_lowercase) == Some(first) && w.eq_ignore_ascii_case(n));
    }
    haystack.to_lowercase().contains(needle_lower)
}

/// A compiled filter node.
#[derive(Debug, Clone)]
pub enum Filter {
    Constant(bool),
    Context { field: u32, cmp: Comparison },
    Rollout { key: Arc<str>, attribute: u32, threshold: f64 },
    Group { and: bool, filters: Box<[Filter]> },
    Negation(Box<Filter>),
    DevCycle(Box<UserFilter>),
    JsonLogic(Box<Logic>),
}

/// What evaluating a filter may read.
pub struct Scope<'a, 'c> {
    pub flat: &'a FlatContext<'c>,
    /// The nested context (DevCycle and JSON Logic nodes); `Value::Null` when none is needed.
    pub nested: &'a Value,
    /// The nested context seen as a DevCycle user.
    pub user: &'a Value,
    pub now_ms: f64,
}

/// Ordered, de-duplicated missing context fields (insertion order, as JS `Set`).
#[derive(Debug, Default)]
pub struct Missing(pub Vec<u32>);

impl Missing {
    #[inline]
    fn add(&mut self, id: u32) {
        if !self.0.contains(&id) {
            self.0.push(id);
        }
    }
}

impl Filter {
    /// `evaluateRecursively`: groups short-circuit; missing fields are recorded.
    pub fn eval(&self, scope: &Scope<'_, '_>, missing: &mut Missing, budget: &mut Budget) -> bool {
        match self {
            Filter::Constant(b) => *b,
            Filter::Context { field, cmp } => match scope.flat.get(*field) {
                Some(_) if cmp.reads_date() => cmp.eval_date(scope.flat.date(*field, parse_date), scope.now_ms),
                Some(v) => cmp.eval(v, scope.now_ms),
                None if matches!(cmp.op, Operator::Set | Operator::NotSet) => cmp.eval("", scope.now_ms),
                None => {
                    missing.add(*field);
                    false
                }
            },
            Filter::Rollout { key, attribute, threshold } => match scope.flat.get(*attribute) {
                Some(v) => f64::from(reflag_hash_parts(key, v)) < *threshold,
                None => {
                    missing.add(*attribute);
                    false
                }
            },
            Filter::Group { and, filters } => {
                if *and {
                    filters.iter().all(|f| f.eval(scope, missing, budget))
                } else {
                    filters.iter().any(|f| f.eval(scope, missing, budget))
                }
            }
            Filter::Negation(inner) => !inner.eval(scope, missing, budget),
            Filter::DevCycle(f) => f.matches(scope.user),
            // A rule that blows its budget on this context counts as not matching.
            Filter::JsonLogic(logic) => logic.eval_truthy(scope.nested, budget).unwrap_or(false),
        }
    }

    /// True when the tree contains a node that reads the nested context.
    pub fn needs_nested(&self) -> bool {
        match self {
            Filter::DevCycle(_) | Filter::JsonLogic(_) => true,
            Filter::Group { filters, .. } => filters.iter().any(Filter::needs_nested),
            Filter::Negation(inner) => inner.needs_nested(),
            _ => false,
        }
    }

    /// True when the tree contains a percentage rollout (OFREP reports SPLIT).
    pub fn has_rollout(&self) -> bool {
        match self {
            Filter::Rollout { .. } => true,
            Filter::Group { filters, .. } => filters.iter().any(Filter::has_rollout),
            Filter::Negation(inner) => inner.has_rollout(),
            _ => false,
        }
    }
}

fn obj<'v>(v: &'v Value, path: &str) -> Result<&'v Map<String, Value>, RuleError> {
    v.as_object().ok_or_else(|| RuleError::new(path, "expected an object"))
}

fn req_str<'v>(m: &'v Map<String, Value>, key: &str, path: &str) -> Result<&'v str, RuleError> {
    match m.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(RuleError::new(format!("{path}.{key}"), "expected a string")),
        None => Err(RuleError::new(format!("{path}.{key}"), "is required")),
    }
}

/// Compiles filter trees, interning the context fields they read and the strings they hold.
pub struct Compiler<'f> {
    pub fields: &'f mut Fields,
    pub strings: &'f mut Strings,
    /// The flag key: the default `key` of rollout filters.
    pub flag_key: &'f str,
}

impl Compiler<'_> {
    pub fn filter(&mut self, v: &Value, path: &str) -> Result<Filter, RuleError> {
        self.filter_at(v, path, 0)
    }

    fn filter_at(&mut self, v: &Value, path: &str, depth: usize) -> Result<Filter, RuleError> {
        if depth > MAX_RULE_DEPTH {
            return Err(RuleError::new(path, format!("filter nesting deeper than {MAX_RULE_DEPTH}")));
        }
        let m = obj(v, path)?;
        let kind = req_str(m, "type", path)?;
        match kind {
            "constant" => match m.get("value") {
                Some(Value::Bool(b)) => Ok(Filter::Constant(*b)),
                _ => Err(RuleError::new(format!("{path}.value"), "constant filter needs a boolean value")),
            },
            "context" => {
                let field = req_str(m, "field", path)?;
                let op_name = req_str(m, "operator", path)?;
                let op = Operator::parse(op_name).ok_or_else(|| {
                    RuleError::new(format!("{path}.operator"), format!("unknown operator {op_name:?}"))
                })?;
                let values: Vec<&str> = match m.get("values") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(items)) => items
                        .iter()
                        .enumerate()
                        .map(|(i, x)| match x {
                            Value::String(s) => Ok(s.as_str()),
                            _ => Err(RuleError::new(format!("{path}.values[{i}]"), "expected a string")),
                        })
                        .collect::<Result<_, _>>()?,
                    Some(_) => return Err(RuleError::new(format!("{path}.values"), "expected an array of strings")),
                };
                // The reference throws on CONTAINS without a value; reject it up front.
                if matches!(op, Operator::Contains | Operator::NotContains) && values.is_empty() {
                    return Err(RuleError::new(format!("{path}.values"), format!("{op_name} needs a value")));
                }
                let field = self.fields.intern(field);
                Ok(Filter::Context { field, cmp: Comparison::interned(op, &values, self.strings) })
            }
            "rolloutPercentage" => {
                let key = match m.get("key") {
                    None | Some(Value::Null) => self.flag_key,
                    Some(Value::String(s)) => s.as_str(),
                    Some(_) => return Err(RuleError::new(format!("{path}.key"), "expected a string")),
                };
                let attribute = self.fields.intern(req_str(m, "partialRolloutAttribute", path)?);
                let threshold = match m.get("partialRolloutThreshold") {
                    Some(Value::Number(n)) => json_number_to_f64(n),
                    _ => {
                        return Err(RuleError::new(
                            format!("{path}.partialRolloutThreshold"),
                            "expected a number (0..100000)",
                        ))
                    }
                };
                Ok(Filter::Rollout { key: self.strings.intern(key), attribute, threshold })
            }
            "group" => {
                let and = match req_str(m, "operator", path)? {
                    "and" => true,
                    "or" => false,
                    other => {
                        return Err(RuleError::new(
                            format!("{path}.operator"),
                            format!("group operator must be \"and\" or \"or\", not {other:?}"),
                        ))
                    }
                };
                let items = m
                    .get("filters")
                    .and_then(Value::as_array)
                    .ok_or_else(|| RuleError::new(format!("{path}.filters"), "expected an array of filters"))?;
                let filters = items
                    .iter()
                    .enumerate()
                    .map(|(i, f)| self.filter_at(f, &format!("{path}.filters[{i}]"), depth + 1))
                    .collect::<Result<_, _>>()?;
                Ok(Filter::Group { and, filters })
            }
            "negation" => {
                let inner = m.get("filter").ok_or_else(|| RuleError::new(format!("{path}.filter"), "is required"))?;
                Ok(Filter::Negation(Box::new(self.filter_at(inner, &format!("{path}.filter"), depth + 1)?)))
            }
            "all" | "user" | "optIn" => Ok(Filter::DevCycle(Box::new(UserFilter::compile(v, path)?))),
            "jsonLogic" => {
                let rule = m.get("rule").ok_or_else(|| RuleError::new(format!("{path}.rule"), "is required"))?;
                Ok(Filter::JsonLogic(Box::new(Logic::compile(rule, &format!("{path}.rule"))?)))
            }
            other => Err(RuleError::new(format!("{path}.type"), format!("unknown filter type {other:?}"))),
        }
    }
}

/// The DevCycle user view of a nested Reflag context: `context.user` with `id` as `user_id`.
pub fn devcycle_user(nested: &Value) -> Value {
    let mut user = match nested.get("user") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    if !user.contains_key("user_id") {
        if let Some(id) = user.get("id").cloned() {
            let id = match id {
                Value::String(s) => Value::String(s),
                other => Value::String(crate::jsnum::value_to_js_string(&other)),
            };
            user.insert("user_id".into(), id);
        }
    }
    Value::Object(user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile(v: Value) -> Result<(Fields, Filter), RuleError> {
        let mut fields = Fields::default();
        let f = Compiler { fields: &mut fields, strings: &mut Strings::default(), flag_key: "flag" }.filter(&v, "$")?;
        Ok((fields, f))
    }

    #[test]
    fn compile_errors_have_paths() {
        let e = compile(
            json!({"type": "group", "operator": "and", "filters": [{"type": "context", "field": "a", "operator": "NOPE"}]}),
        );
        assert_eq!(e.err().map(|e| e.path), Some("$.filters[0].operator".to_string()));
        let e = compile(json!({"type": "context", "field": "a", "operator": "IS", "values": [1]}));
        assert_eq!(e.err().map(|e| e.path), Some("$.values[0]".to_string()));
        let e = compile(json!({"type": "what"}));
        assert_eq!(e.err().map(|e| e.path), Some("$.type".to_string()));
        let mut deep = json!({"type": "constant", "value": true});
        for _ in 0..100 {
            deep = json!({"type": "negation", "filter": deep});
        }
        assert!(compile(deep).is_err());
    }

    #[test]
    fn short_circuit_skips_missing() {
        let (fields, f) = compile(json!({"type": "group", "operator": "or", "filters": [
            {"type": "context", "field": "a", "operator": "IS", "values": ["1"]},
            {"type": "context", "field": "b", "operator": "IS", "values": ["1"]}
        ]}))
        .unwrap_or_else(|e| panic!("{e}"));
        let ctx = json!({"a": 1});
        let flat = FlatContext::from_nested(&fields, &ctx);
        let scope = Scope { flat: &flat, nested: &Value::Null, user: &Value::Null, now_ms: 0.0 };
        let mut missing = Missing::default();
        assert!(f.eval(&scope, &mut missing, &mut Budget::default()));
        assert!(missing.0.is_empty());
    }

    #[test]
    fn contains_is_case_insensitive() {
        assert!(contains_lower("Hello World", "o w"));
        assert!(contains_lower("ÄBC", "äb"));
        assert!(!contains_lower("abc", "abcd"));
        assert!(contains_lower("abc", ""));
    }

    proptest::proptest! {
        /// The first-byte filter finds what the plain window scan found.
        #[test]
        fn contains_lower_is_the_window_scan(h in "[a-cA-C@.]{0,12}", needle in "[a-cA-C@.\u{212A}]{0,4}") {
            let n = needle.to_lowercase();
            let scan = h.is_ascii().then(|| {
                n.is_empty()
                    || h.as_bytes().windows(n.len()).any(|w| w.iter().zip(n.as_bytes()).all(|(a, b)| a.to_ascii_lowercase() == *b))
            });
            if let Some(scan) = scan {
                proptest::prop_assert_eq!(contains_lower(&h, &n), scan);
            }
        }
    }
}
