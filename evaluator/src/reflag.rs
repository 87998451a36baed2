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
use rustc_hash::{FxHashMap, FxHashSet};
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

/// `ANY_OF` lists at least this long use a hash set.
const SET_THRESHOLD: usize = 8;

/// Strings a snapshot's compiled filters share (values compared with, rollout keys, variant keys),
/// and the ANY_OF lists and sets: the same value (a plan, a country, an account id, a flag key)
/// or list of values (plans, beta accounts) is held once however many filters use it.
/// An ANY_OF list of interned values.
type List = Arc<[Arc<str>]>;
/// The set of a long ANY_OF list.
// Fx: the set is the snapshot's values; a context value is only looked up, never inserted.
type Set = Arc<FxHashSet<Arc<str>>>;

#[derive(Debug, Default)]
pub struct Strings {
    strings: FxHashSet<Arc<str>>,
    lists: FxHashSet<List>,
    /// The set of each long list, by the list.
    sets: FxHashMap<List, Set>,
}

impl Strings {
    pub fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(found) = self.strings.get(s) {
            return Arc::clone(found);
        }
        let new: Arc<str> = Arc::from(s);
        self.strings.insert(Arc::clone(&new));
        new
    }

    /// The list of `values`, each interned.
    fn list(&mut self, values: &[&str]) -> List {
        let items: Vec<Arc<str>> = values.iter().map(|v| self.intern(v)).collect();
        if let Some(found) = self.lists.get(&items[..]) {
            return Arc::clone(found);
        }
        let new: List = Arc::from(items);
        self.lists.insert(Arc::clone(&new));
        new
    }

    /// The set of `values`, each interned.
    fn set(&mut self, values: &[&str]) -> Set {
        let list = self.list(values);
        if let Some(found) = self.sets.get(&list) {
            return Arc::clone(found);
        }
        let new: Set = Arc::new(list.iter().cloned().collect());
        self.sets.insert(list, Arc::clone(&new));
        new
    }
}

/// One node of a compiled filter tree, in its flag's [`Filters`]. A snapshot holds one per filter
/// node of every flag in every worker, so a node is 24 bytes (`node_is_24_bytes`): a `context`
/// filter keeps only what its operator reads of its values, pre-parsed, and a group's children
/// are the nodes after it (up to `end`) instead of a box of their own.
#[derive(Debug, Clone)]
enum Node {
    Constant(bool),
    /// IS (`negate` false) / IS_NOT: the first value, `None` when there is none.
    Is {
        field: u32,
        negate: bool,
        value: Option<Arc<str>>,
    },
    /// ANY_OF / NOT_ANY_OF with fewer than [`SET_THRESHOLD`] values.
    AnyOf {
        field: u32,
        negate: bool,
        values: List,
    },
    /// ANY_OF / NOT_ANY_OF with more.
    AnyOfSet {
        field: u32,
        negate: bool,
        set: Set,
    },
    /// CONTAINS / NOT_CONTAINS: the first value lower-cased, `None` when there is none.
    Contains {
        field: u32,
        negate: bool,
        lower: Option<Arc<str>>,
    },
    /// GT / LT (`less`): `Number(values[0])`, NaN when absent.
    Number {
        field: u32,
        less: bool,
        number: f64,
    },
    /// AFTER / BEFORE: `Number(values[0])` days before now, NaN when absent.
    DaysAgo {
        field: u32,
        before: bool,
        days: f64,
    },
    /// DATE_AFTER / DATE_BEFORE: `new Date(values[0])` in epoch ms, NaN when not a date (every
    /// comparison with NaN is false, as the reference's with an invalid date).
    Date {
        field: u32,
        before: bool,
        at: f64,
    },
    /// SET (`negate` false) / NOT_SET.
    Set {
        field: u32,
        negate: bool,
    },
    /// IS_TRUE / IS_FALSE (`value`).
    Bool {
        field: u32,
        value: bool,
    },
    /// `hash(key "." attribute) < threshold`, with the threshold as [`Threshold`].
    Rollout {
        attribute: u32,
        threshold: Threshold,
        key: Arc<str>,
    },
    /// The children are the nodes from the next one up to `end` (exclusive).
    Group {
        and: bool,
        end: u32,
    },
    /// The inner filter is the next node; `end` is where its subtree ends.
    Negation {
        end: u32,
    },
    DevCycle(Box<UserFilter>),
    JsonLogic(Box<Logic>),
}

/// A rollout threshold as the least hash that fails it, in 3 bytes (so that the rollout node
/// keeps its key and attribute in 24). The hash is an integer in 0..=100000, so
/// `hash < threshold` is `hash < ceil(threshold)`, clamped to 0..=100001 (NaN: nothing passes).
#[derive(Debug, Clone, Copy)]
struct Threshold([u8; 3]);

impl Threshold {
    fn new(threshold: f64) -> Self {
        let bound = if threshold.is_nan() { 0.0 } else { threshold.ceil().clamp(0.0, 100_001.0) };
        let [a, b, c, _] = (bound as u32).to_le_bytes();
        Self([a, b, c])
    }

    #[inline]
    fn passes(self, hash: u32) -> bool {
        let [a, b, c] = self.0;
        hash < u32::from_le_bytes([a, b, c, 0])
    }
}

impl Node {
    /// The `context` node for `op` over `values` (taken from or added to `strings`).
    fn context(field: u32, op: Operator, values: &[&str], strings: &mut Strings) -> Self {
        let first = values.first().copied();
        let number = first.map_or(f64::NAN, string_to_number);
        match op {
            Operator::Is | Operator::IsNot => {
                Node::Is { field, negate: op == Operator::IsNot, value: first.map(|v| strings.intern(v)) }
            }
            Operator::AnyOf | Operator::NotAnyOf => {
                let negate = op == Operator::NotAnyOf;
                if values.len() >= SET_THRESHOLD {
                    Node::AnyOfSet { field, negate, set: strings.set(values) }
                } else {
                    Node::AnyOf { field, negate, values: strings.list(values) }
                }
            }
            Operator::Contains | Operator::NotContains => Node::Contains {
                field,
                negate: op == Operator::NotContains,
                lower: first.map(|v| strings.intern(&v.to_lowercase())),
            },
            Operator::Gt | Operator::Lt => Node::Number { field, less: op == Operator::Lt, number },
            Operator::After | Operator::Before => Node::DaysAgo { field, before: op == Operator::Before, days: number },
            Operator::DateAfter | Operator::DateBefore => Node::Date {
                field,
                before: op == Operator::DateBefore,
                at: first.and_then(parse_date).unwrap_or(f64::NAN),
            },
            Operator::Set | Operator::NotSet => Node::Set { field, negate: op == Operator::NotSet },
            Operator::IsTrue | Operator::IsFalse => Node::Bool { field, value: op == Operator::IsTrue },
        }
    }

    /// The context field a `context` node reads.
    #[inline]
    fn field(&self) -> Option<u32> {
        match self {
            Node::Is { field, .. }
            | Node::AnyOf { field, .. }
            | Node::AnyOfSet { field, .. }
            | Node::Contains { field, .. }
            | Node::Number { field, .. }
            | Node::DaysAgo { field, .. }
            | Node::Date { field, .. }
            | Node::Set { field, .. }
            | Node::Bool { field, .. } => Some(*field),
            _ => None,
        }
    }

    /// A `context` node's comparison of its field's value already parsed as a date (`at`,
    /// `None` when not a date); false for the operators that do not compare dates.
    fn compare_date(&self, at: Option<f64>, now_ms: f64) -> bool {
        let Some(at) = at else {
            return false;
        };
        match *self {
            Node::DaysAgo { before, days, .. } => match days_ago(now_ms, days) {
                Some(then) if before => at < then,
                Some(then) => at > then,
                None => false,
            },
            Node::Date { before: true, at: v, .. } => at <= v,
            Node::Date { before: false, at: v, .. } => at >= v,
            _ => false,
        }
    }

    /// A `context` node's `evaluate(fieldValue, operator, values)`; `now_ms` is the clock for
    /// AFTER/BEFORE. False for other nodes.
    fn compare(&self, field: &str, now_ms: f64) -> bool {
        match self {
            Node::Is { negate, value, .. } => (value.as_deref() == Some(field)) != *negate,
            Node::AnyOf { negate, values, .. } => values.iter().any(|v| **v == *field) != *negate,
            Node::AnyOfSet { negate, set, .. } => set.contains(field) != *negate,
            Node::Contains { negate, lower, .. } => {
                lower.as_deref().is_some_and(|v| contains_lower(field, v) != *negate)
            }
            Node::Number { less, number, .. } => {
                let f = string_to_number(field);
                !f.is_nan() && !number.is_nan() && if *less { f < *number } else { f > *number }
            }
            Node::DaysAgo { .. } | Node::Date { .. } => self.compare_date(parse_date(field), now_ms),
            Node::Set { negate, .. } => field.is_empty() == *negate,
            Node::Bool { value: true, .. } => field == "true",
            Node::Bool { value: false, .. } => field == "false",
            _ => false,
        }
    }
}

/// A compiled context comparison on its own (the reference's `evaluate(fieldValue, operator,
/// values)`, which the test vectors check).
#[derive(Debug, Clone)]
pub struct Comparison(Node);

impl Comparison {
    pub fn new(op: Operator, values: Vec<String>) -> Self {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        Self(Node::context(0, op, &values, &mut Strings::default()))
    }

    /// `evaluate(fieldValue, operator, values)`; `now_ms` is the clock for AFTER/BEFORE.
    pub fn eval(&self, field: &str, now_ms: f64) -> bool {
        self.0.compare(field, now_ms)
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

/// The compiled filter trees of one flag (its rules', then its config variants'), in one
/// allocation: each tree's nodes in pre-order, one tree after another. A tree is named by the
/// index of its root ([`Compiler::filter`]).
#[derive(Debug, Clone, Default)]
pub struct Filters(Box<[Node]>);

/// The roots of consecutive trees of a [`Filters`].
#[derive(Clone)]
pub struct Roots<'a> {
    filters: &'a Filters,
    at: usize,
    to: usize,
}

impl Iterator for Roots<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        let root = self.at;
        if root >= self.to || root >= self.filters.0.len() {
            return None;
        }
        self.at = self.filters.end(root);
        Some(root)
    }
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

impl Filters {
    /// Where the tree rooted at `i` ends (the index after its last node); always past `i`.
    #[inline]
    fn end(&self, i: usize) -> usize {
        match self.0.get(i) {
            Some(Node::Group { end, .. } | Node::Negation { end }) => (*end as usize).max(i + 1),
            _ => i + 1,
        }
    }

    /// The roots of the trees from the one rooted at `from` up to (not including) index `to`.
    pub fn roots(&self, from: usize, to: usize) -> Roots<'_> {
        Roots { filters: self, at: from, to }
    }

    /// `evaluateRecursively` of the tree rooted at `i`: groups short-circuit; missing fields are
    /// recorded.
    pub fn eval(&self, i: usize, scope: &Scope<'_, '_>, missing: &mut Missing, budget: &mut Budget) -> bool {
        let Some(node) = self.0.get(i) else {
            return false;
        };
        match node {
            Node::Constant(b) => *b,
            Node::Rollout { attribute, threshold, key } => match scope.flat.get(*attribute) {
                Some(v) => threshold.passes(reflag_hash_parts(key, v)),
                None => {
                    missing.add(*attribute);
                    false
                }
            },
            Node::Group { and, end } => {
                let (and, end) = (*and, *end as usize);
                let mut child = i + 1;
                while child < end {
                    // `and` stops at the first false, `or` at the first true.
                    if self.eval(child, scope, missing, budget) != and {
                        return !and;
                    }
                    child = self.end(child);
                }
                and
            }
            Node::Negation { .. } => !self.eval(i + 1, scope, missing, budget),
            Node::DevCycle(f) => f.matches(scope.user),
            // A rule that blows its budget on this context counts as not matching.
            Node::JsonLogic(logic) => logic.eval_truthy(scope.nested, budget).unwrap_or(false),
            context => {
                let Some(field) = context.field() else {
                    return false;
                };
                match scope.flat.get(field) {
                    Some(_) if matches!(context, Node::DaysAgo { .. } | Node::Date { .. }) => {
                        context.compare_date(scope.flat.date(field, parse_date), scope.now_ms)
                    }
                    Some(v) => context.compare(v, scope.now_ms),
                    None if matches!(context, Node::Set { .. }) => context.compare("", scope.now_ms),
                    None => {
                        missing.add(field);
                        false
                    }
                }
            }
        }
    }

    /// True when some tree contains a node that reads the nested context.
    pub fn needs_nested(&self) -> bool {
        self.0.iter().any(|n| matches!(n, Node::DevCycle(_) | Node::JsonLogic(_)))
    }

    /// True when the tree rooted at `i` contains a percentage rollout (OFREP reports SPLIT).
    pub fn has_rollout(&self, i: usize) -> bool {
        let nodes = self.0.get(i..self.end(i)).unwrap_or_default();
        nodes.iter().any(|n| matches!(n, Node::Rollout { .. }))
    }

    /// True when the tree rooted at `i` is a constant filter.
    pub fn is_constant(&self, i: usize) -> bool {
        matches!(self.0.get(i), Some(Node::Constant(_)))
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

/// Compiles one flag's filter trees into its [`Filters`], interning the context fields they read
/// and the strings they hold.
pub struct Compiler<'f> {
    fields: &'f mut Fields,
    strings: &'f mut Strings,
    /// The flag key: the default `key` of rollout filters.
    flag_key: &'f str,
    nodes: Vec<Node>,
}

impl<'f> Compiler<'f> {
    pub fn new(fields: &'f mut Fields, strings: &'f mut Strings, flag_key: &'f str) -> Self {
        Self { fields, strings, flag_key, nodes: Vec::new() }
    }

    /// The strings the trees are interned into.
    pub fn strings(&mut self) -> &mut Strings {
        self.strings
    }

    /// Compile the filter `v` (at JSONPath `path`) as the next tree: its root's index.
    pub fn filter(&mut self, v: &Value, path: &str) -> Result<usize, RuleError> {
        let root = self.nodes.len();
        self.filter_at(v, path, 0)?;
        Ok(root)
    }

    /// A constant filter as the next tree: its root's index.
    pub fn constant(&mut self, value: bool) -> usize {
        self.nodes.push(Node::Constant(value));
        self.nodes.len() - 1
    }

    /// The trees compiled, in one allocation of their size (a fresh one: shrinking the growing
    /// vector's in place could leave its chunk larger).
    pub fn finish(mut self) -> Filters {
        let mut nodes = Vec::with_capacity(self.nodes.len());
        nodes.append(&mut self.nodes);
        Filters(nodes.into_boxed_slice())
    }

    /// The index the next node gets, as a group's or negation's `end`.
    fn next_index(&self, path: &str) -> Result<u32, RuleError> {
        u32::try_from(self.nodes.len()).map_err(|_| RuleError::new(path, "too many filter nodes"))
    }

    /// Compile `v` and its subtree, in pre-order, onto the end of `nodes`.
    fn filter_at(&mut self, v: &Value, path: &str, depth: usize) -> Result<(), RuleError> {
        if depth > MAX_RULE_DEPTH {
            return Err(RuleError::new(path, format!("filter nesting deeper than {MAX_RULE_DEPTH}")));
        }
        let m = obj(v, path)?;
        let kind = req_str(m, "type", path)?;
        let node = match kind {
            "constant" => match m.get("value") {
                Some(Value::Bool(b)) => Node::Constant(*b),
                _ => return Err(RuleError::new(format!("{path}.value"), "constant filter needs a boolean value")),
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
                Node::context(field, op, &values, self.strings)
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
                Node::Rollout { attribute, threshold: Threshold::new(threshold), key: self.strings.intern(key) }
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
                let at = self.nodes.len();
                self.nodes.push(Node::Group { and, end: 0 });
                for (i, f) in items.iter().enumerate() {
                    self.filter_at(f, &format!("{path}.filters[{i}]"), depth + 1)?;
                }
                let end = self.next_index(path)?;
                if let Some(Node::Group { end: slot, .. }) = self.nodes.get_mut(at) {
                    *slot = end;
                }
                return Ok(());
            }
            "negation" => {
                let inner = m.get("filter").ok_or_else(|| RuleError::new(format!("{path}.filter"), "is required"))?;
                let at = self.nodes.len();
                self.nodes.push(Node::Negation { end: 0 });
                self.filter_at(inner, &format!("{path}.filter"), depth + 1)?;
                let end = self.next_index(path)?;
                if let Some(Node::Negation { end: slot }) = self.nodes.get_mut(at) {
                    *slot = end;
                }
                return Ok(());
            }
            "all" | "user" | "optIn" => Node::DevCycle(Box::new(UserFilter::compile(v, path)?)),
            "jsonLogic" => {
                let rule = m.get("rule").ok_or_else(|| RuleError::new(format!("{path}.rule"), "is required"))?;
                Node::JsonLogic(Box::new(Logic::compile(rule, &format!("{path}.rule"))?))
            }
            other => return Err(RuleError::new(format!("{path}.type"), format!("unknown filter type {other:?}"))),
        };
        self.nodes.push(node);
        Ok(())
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
    use proptest::strategy::Strategy;
    use serde_json::json;

    fn compile(v: Value) -> Result<(Fields, Filters), RuleError> {
        let mut fields = Fields::default();
        let mut strings = Strings::default();
        let mut compiler = Compiler::new(&mut fields, &mut strings, "flag");
        compiler.filter(&v, "$")?;
        let filters = compiler.finish();
        Ok((fields, filters))
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
        assert!(f.eval(0, &scope, &mut missing, &mut Budget::default()));
        assert!(missing.0.is_empty());
    }

    #[test]
    fn node_is_24_bytes() {
        // A snapshot holds one per filter node of every flag in every worker.
        assert_eq!(std::mem::size_of::<Node>(), 24);
    }

    #[test]
    fn groups_skip_their_children_subtrees() {
        // or(and(a, not(b)), and(c, d)): the second child starts after the first's subtree.
        let ctx = |field: &str| json!({"type": "context", "field": field, "operator": "IS", "values": ["1"]});
        let tree = json!({"type": "group", "operator": "or", "filters": [
            {"type": "group", "operator": "and", "filters": [ctx("a"), {"type": "negation", "filter": ctx("b")}]},
            {"type": "group", "operator": "and", "filters": [ctx("c"), ctx("d")]}
        ]});
        let (fields, f) = compile(tree).unwrap_or_else(|e| panic!("{e}"));
        let eval = |c: Value| {
            let flat = FlatContext::from_nested(&fields, &c);
            let scope = Scope { flat: &flat, nested: &Value::Null, user: &Value::Null, now_ms: 0.0 };
            let mut missing = Missing::default();
            let hit = f.eval(0, &scope, &mut missing, &mut Budget::default());
            (hit, missing.0.iter().map(|id| fields.name(*id).to_string()).collect::<Vec<_>>())
        };
        assert_eq!(eval(json!({"a": 1, "b": 2})), (true, vec![]));
        assert_eq!(eval(json!({"a": 1, "b": 1, "c": 1, "d": 1})), (true, vec![]));
        assert_eq!(eval(json!({"a": 1, "b": 1, "c": 1})), (false, vec!["d".to_string()]));
        assert_eq!(eval(json!({"b": 1, "d": 1})), (false, vec!["a".to_string(), "c".to_string()]));
        assert_eq!(f.roots(0, usize::MAX).collect::<Vec<_>>(), [0]);
        assert!(!f.has_rollout(0) && !f.is_constant(0));
    }

    #[test]
    fn equal_lists_are_held_once() {
        let mut strings = Strings::default();
        let (short, long) = (["a", "b"], ["1", "2", "3", "4", "5", "6", "7", "8", "9"]);
        assert!(Arc::ptr_eq(&strings.list(&short), &strings.list(&short)));
        assert!(!Arc::ptr_eq(&strings.list(&short), &strings.list(&["b", "a"])));
        assert!(Arc::ptr_eq(&strings.set(&long), &strings.set(&long)));
        let lower = |s: &mut Strings, v: &str| match Node::context(0, Operator::Contains, &[v], s) {
            Node::Contains { lower, .. } => lower,
            _ => None,
        };
        let (x, y) = (lower(&mut strings, "@ACME"), lower(&mut strings, "@acme"));
        assert!(matches!((x, y), (Some(x), Some(y)) if Arc::ptr_eq(&x, &y)));
    }

    #[test]
    fn contains_is_case_insensitive() {
        assert!(contains_lower("Hello World", "o w"));
        assert!(contains_lower("ÄBC", "äb"));
        assert!(!contains_lower("abc", "abcd"));
        assert!(contains_lower("abc", ""));
    }

    proptest::proptest! {
        /// The 3-byte threshold passes exactly the hashes `f64::from(hash) < threshold` passes.
        #[test]
        fn threshold_is_the_float_comparison(
            t in proptest::prop_oneof![
                proptest::num::f64::ANY,
                -2.0..100_003.0f64,
                (-2i64..100_003).prop_map(|n| n as f64),
            ],
            hash in 0u32..=100_000,
        ) {
            proptest::prop_assert_eq!(Threshold::new(t).passes(hash), f64::from(hash) < t);
            for edge in [0, 1, 99_999, 100_000] {
                proptest::prop_assert_eq!(Threshold::new(t).passes(edge), f64::from(edge) < t);
            }
        }

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
