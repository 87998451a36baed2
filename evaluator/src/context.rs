//! Reflag context flattening onto a field table, and its inverse for nested-rule dialects.

use crate::error::MAX_DATA_DEPTH;
use crate::jsnum::json_number_to_string;
use rustc_hash::FxHashMap;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::cell::Cell;

/// Interned names of the flattened context fields that a set of rules reads.
///
/// FxHash: the keys are fixed when the snapshot compiles, so request-chosen names only look up
/// (no insertion, hence no hash-flooding of the table).
#[derive(Debug, Clone, Default)]
pub struct Fields {
    index: FxHashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Fields {
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.into());
        self.index.insert(name.into(), id);
        id
    }

    #[inline]
    pub fn get(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    #[inline]
    pub fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", |n| n)
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.names.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// A context flattened the way `@reflag/flag-evaluation` `flattenJSON` does, keeping only the
/// fields a compiled snapshot reads. Slot `i` holds the value of field `i`, if present.
#[derive(Debug, Default)]
pub struct FlatContext<'a> {
    slots: Vec<Slot<'a>>,
}

#[derive(Debug, Clone, Default)]
struct Slot<'a> {
    value: Option<Cow<'a, str>>,
    /// The value as a date (epoch ms), parsed at the first date comparison that reads it: W2
    /// compares the same `company.createdAt` in dozens of flags, and parsing it each time was a
    /// tenth of the evaluation.
    date: Cell<DateMemo>,
}

#[derive(Debug, Clone, Copy, Default)]
enum DateMemo {
    #[default]
    Unparsed,
    Invalid,
    At(f64),
}

impl<'a> FlatContext<'a> {
    pub fn empty(fields: &Fields) -> Self {
        Self { slots: vec![Slot::default(); fields.len()] }
    }

    /// Flatten a nested context (an object; anything else flattens to nothing).
    pub fn from_nested(fields: &Fields, ctx: &'a Value) -> Self {
        let mut flat = Self::empty(fields);
        if fields.is_empty() {
            return flat;
        }
        let slots = &mut flat.slots;
        flatten_into(ctx, &|k| fields.get(k).is_some(), &mut |k, v| {
            if let Some(slot) = fields.get(k).and_then(|id| slots.get_mut(id as usize)) {
                slot.value = Some(v);
            }
        });
        flat
    }

    /// Use already-flattened `(field, value)` pairs (query parameters); later pairs win.
    pub fn from_pairs<S: AsRef<str>>(fields: &Fields, pairs: &'a [(S, S)]) -> Self {
        let mut flat = Self::empty(fields);
        for (k, v) in pairs {
            if let Some(id) = fields.get(k.as_ref()) {
                flat.set(id, Cow::Borrowed(v.as_ref()));
            }
        }
        flat
    }

    #[inline]
    fn set(&mut self, id: u32, v: Cow<'a, str>) {
        if let Some(slot) = self.slots.get_mut(id as usize) {
            slot.value = Some(v);
        }
    }

    #[inline]
    pub fn get(&self, id: u32) -> Option<&str> {
        self.slots.get(id as usize).and_then(|s| s.value.as_deref())
    }

    /// Field `id`'s value parsed with `parse` as a date (`None` when absent or not a date),
    /// parsed once per context.
    #[inline]
    pub fn date(&self, id: u32, parse: impl FnOnce(&str) -> Option<f64>) -> Option<f64> {
        let slot = self.slots.get(id as usize)?;
        match slot.date.get() {
            DateMemo::At(at) => Some(at),
            DateMemo::Invalid => None,
            DateMemo::Unparsed => {
                let at = parse(slot.value.as_deref()?);
                slot.date.set(at.map_or(DateMemo::Invalid, DateMemo::At));
                at
            }
        }
    }
}

/// Visit every `(flattened name, string value)` pair of a context in `flattenJSON` order.
/// Number values are only formatted when `wants(name)` says the pair is needed.
pub fn flatten_into<'a>(ctx: &'a Value, wants: &dyn Fn(&str) -> bool, sink: &mut dyn FnMut(&str, Cow<'a, str>)) {
    if let Value::Object(map) = ctx {
        if !map.is_empty() {
            let mut key = String::with_capacity(64);
            walk(ctx, &mut key, 0, wants, sink);
        }
    }
}

/// Every flattened pair of a context (the reference's `flattenJSON` result), later names win.
pub fn flatten_all(ctx: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    flatten_into(ctx, &|_| true, &mut |k, v| {
        out.insert(k.to_owned(), Value::String(v.into_owned()));
    });
    out
}

fn walk<'a>(
    v: &'a Value,
    key: &mut String,
    depth: usize,
    wants: &dyn Fn(&str) -> bool,
    sink: &mut dyn FnMut(&str, Cow<'a, str>),
) {
    if depth > MAX_DATA_DEPTH {
        return;
    }
    match v {
        Value::Null => sink(key, Cow::Borrowed("")),
        Value::Bool(b) => sink(key, Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Number(n) => {
            if wants(key) {
                sink(key, Cow::Owned(json_number_to_string(n)));
            }
        }
        Value::String(s) => sink(key, Cow::Borrowed(s.as_str())),
        Value::Array(items) => {
            if items.is_empty() {
                sink(key, Cow::Borrowed(""));
            }
            let mut buf = String::with_capacity(20);
            for (i, item) in items.iter().enumerate() {
                let len = key.len();
                if len > 0 {
                    key.push('.');
                }
                key.push_str(index_str(i, &mut buf));
                walk(item, key, depth + 1, wants, sink);
                key.truncate(len);
            }
        }
        Value::Object(map) => {
            if map.is_empty() {
                sink(key, Cow::Borrowed(""));
            }
            for (k, item) in ordered_entries(map) {
                let len = key.len();
                if len > 0 {
                    key.push('.');
                }
                key.push_str(k);
                walk(item, key, depth + 1, wants, sink);
                key.truncate(len);
            }
        }
    }
}
fn index_str(i: usize, buf: &mut String) -> &str {
    use std::fmt::Write;
    buf.clear();
    let _ = write!(buf, "{i}");
    buf.as_str()
}

/// JavaScript property order: array-index-like keys first in ascending order, then the rest in
/// insertion order. It decides which value wins when flattened names collide.
fn ordered_entries(map: &Map<String, Value>) -> Vec<(&str, &Value)> {
    let is_index = |k: &str| {
        !k.is_empty()
            && k.len() <= 10
            && k.bytes().all(|b| b.is_ascii_digit())
            && (k == "0" || !k.starts_with('0'))
            && k.parse::<u64>().is_ok_and(|n| n < u64::from(u32::MAX))
    };
    let mut out: Vec<(&str, &Value)> = Vec::with_capacity(map.len());
    let mut indexes: Vec<(u64, &str, &Value)> = Vec::new();
    for (k, v) in map {
        if is_index(k) {
            indexes.push((k.parse().unwrap_or(0), k.as_str(), v));
        } else {
            out.push((k.as_str(), v));
        }
    }
    if indexes.is_empty() {
        return out;
    }
    indexes.sort_by_key(|e| e.0);
    let mut all: Vec<(&str, &Value)> = indexes.into_iter().map(|(_, k, v)| (k, v)).collect();
    all.extend(out);
    all
}

/// The object at the dotted path `parents` under `node`, made where missing; `None` when a
/// non-object sits on the way. Keys are only allocated for objects it creates.
fn descend<'m>(mut node: &'m mut Map<String, Value>, parents: Option<&str>) -> Option<&'m mut Map<String, Value>> {
    for seg in parents.into_iter().flat_map(|p| p.split('.')) {
        if !node.contains_key(seg) {
            node.insert(seg.to_owned(), Value::Object(Map::new()));
        }
        node = match node.get_mut(seg) {
            Some(Value::Object(m)) => m,
            _ => return None,
        };
    }
    Some(node)
}

/// `@reflag/flag-evaluation` `unflattenJSON`: dotted names back into nested objects, skipping
/// prototype-polluting segments, so JSON Logic and DevCycle nodes can read a query-string context.
pub fn unflatten<S: AsRef<str>>(pairs: &[(S, S)]) -> Value {
    let mut root = Map::new();
    for (name, value) in pairs {
        let name = name.as_ref();
        if name.split('.').any(|s| matches!(s, "__proto__" | "constructor" | "prototype")) {
            continue;
        }
        let (parents, leaf) = match name.rsplit_once('.') {
            Some((parents, leaf)) => (Some(parents), leaf),
            None => (None, name),
        };
        // A string already sits on the way: JS assigns into a primitive, which is a no-op.
        if let Some(node) = descend(&mut root, parents) {
            node.insert(leaf.to_owned(), Value::String(value.as_ref().to_owned()));
        }
    }
    Value::Object(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(names: &[&str]) -> Fields {
        let mut f = Fields::default();
        for n in names {
            f.intern(n);
        }
        f
    }

    #[test]
    fn flattens_like_reflag() {
        let f = fields(&["a.b.c", "n", "f", "z", "e", "arr.0", "arr.1", "t", "big", "neg"]);
        let ctx = json!({"a": {"b": {"c": "x"}}, "n": null, "f": 1.5e-7, "z": 10.0, "e": {}, "arr": [1, true], "t": [], "big": 1e21, "neg": -0.0});
        let flat = FlatContext::from_nested(&f, &ctx);
        let got: Vec<Option<&str>> = (0..f.len() as u32).map(|i| flat.get(i)).collect();
        assert_eq!(
            got,
            vec![
                Some("x"),
                Some(""),
                Some("1.5e-7"),
                Some("10"),
                Some(""),
                Some("1"),
                Some("true"),
                Some(""),
                Some("1e+21"),
                Some("0")
            ]
        );
    }

    #[test]
    fn empty_context_has_nothing() {
        let f = fields(&[""]);
        let ctx = json!({});
        let flat = FlatContext::from_nested(&f, &ctx);
        assert_eq!(flat.get(0), None);
    }

    /// `unflatten` as it was before it stopped allocating per segment: the reference.
    fn unflatten_before(pairs: &[(&str, &str)]) -> Value {
        let mut root = Map::new();
        for (name, value) in pairs {
            let segments: Vec<&str> = name.split('.').collect();
            if segments.iter().any(|s| matches!(*s, "__proto__" | "constructor" | "prototype")) {
                continue;
            }
            let mut node = &mut root;
            let last = segments.len().saturating_sub(1);
            for (i, seg) in segments.iter().enumerate() {
                if i == last {
                    node.insert((*seg).to_owned(), Value::String((*value).to_owned()));
                    break;
                }
                let entry = node.entry((*seg).to_owned()).or_insert_with(|| Value::Object(Map::new()));
                match entry {
                    Value::Object(m) => node = m,
                    _ => break,
                }
            }
        }
        Value::Object(root)
    }

    proptest::proptest! {
        #[test]
        fn unflatten_is_what_it_was(pairs in proptest::collection::vec(("[ab.]{0,5}", "[0-9]"), 0..8)) {
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let (got, want) = (unflatten(&pairs), unflatten_before(&pairs));
            proptest::prop_assert_eq!(serde_json::to_string(&got).ok(), serde_json::to_string(&want).ok());
        }
    }

    #[test]
    fn unflatten_skips_pollution() {
        let pairs = vec![
            ("a.b".to_string(), "1".to_string()),
            ("__proto__.x".into(), "2".into()),
            ("c".into(), "3".into()),
            ("c.d".into(), "4".into()),
        ];
        assert_eq!(unflatten(&pairs), json!({"a": {"b": "1"}, "c": "3"}));
        // Empty segments are keys; a later leaf replaces an object in place; a primitive blocks.
        let odd = [(".b", "1"), ("a..c", "2"), ("", "3"), ("c.d", "4"), ("x.y", "5"), ("x", "6"), ("x.z", "7")];
        let got = unflatten(&odd);
        assert_eq!(got, unflatten_before(&odd));
        assert_eq!(got, json!({"": "3", "a": {"": {"c": "2"}}, "c": {"d": "4"}, "x": "6"}));
        let keys: Vec<&String> = got.as_object().map(|m| m.keys().collect()).unwrap_or_default();
        assert_eq!(keys, ["", "a", "c", "x"]);
    }
}
