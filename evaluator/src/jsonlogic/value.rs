//! Evaluation-time values and the JavaScript coercions json-logic-js relies on.
//!
//! Values borrow from the data and from the compiled rule wherever possible (`V::Ref`), so a
//! `var` lookup never copies data. Values built during evaluation are reference counted so that
//! scopes (`map`, `reduce`) can share them; every built container records its nesting depth and
//! a logical size, which bounds what a hostile rule can build even through sharing.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::rc::Rc;

use serde_json::{Number, Value};

use crate::error::{Budget, EvalError, MAX_DATA_DEPTH, MAX_VALUE_SIZE};
use crate::jsnum;

/// A JavaScript value as json-logic-js sees it. `Num` may be NaN or infinite.
#[derive(Debug, Clone)]
pub(crate) enum V<'a> {
    Undef,
    Null,
    Bool(bool),
    Num(f64),
    Str(Rc<str>),
    /// Borrowed from the data or from a constant of the compiled rule.
    Ref(&'a Value),
    Arr(Rc<Arr<'a>>),
    /// Only the `{current, accumulator}` scope of `reduce`.
    Obj(Rc<Obj<'a>>),
}

#[derive(Debug)]
pub(crate) struct Arr<'a> {
    pub items: Vec<V<'a>>,
    depth: usize,
    size: usize,
}

#[derive(Debug)]
pub(crate) struct Obj<'a> {
    pub entries: Vec<(&'static str, V<'a>)>,
    depth: usize,
    size: usize,
}

/// The JavaScript type of a value, with scalars unpacked.
#[derive(Debug, Clone, Copy)]
pub(crate) enum K<'v> {
    Undef,
    Null,
    Bool(bool),
    Num(f64),
    Str(&'v str),
    Arr,
    Obj,
}

/// A view of an array value (data array or built array).
#[derive(Clone, Copy)]
pub(crate) enum Items<'a, 'v> {
    Data(&'a [Value]),
    Own(&'v [V<'a>]),
}

impl<'a, 'v> Items<'a, 'v> {
    pub fn len(&self) -> usize {
        match self {
            Items::Data(s) => s.len(),
            Items::Own(s) => s.len(),
        }
    }

    pub fn get(&self, i: usize) -> Option<V<'a>> {
        match self {
            Items::Data(s) => s.get(i).map(V::Ref),
            Items::Own(s) => s.get(i).cloned(),
        }
    }

    pub fn iter(self) -> ItemsIter<'a, 'v> {
        ItemsIter { items: self, next: 0 }
    }
}

pub(crate) struct ItemsIter<'a, 'v> {
    items: Items<'a, 'v>,
    next: usize,
}

impl<'a> Iterator for ItemsIter<'a, '_> {
    type Item = V<'a>;

    fn next(&mut self) -> Option<V<'a>> {
        let v = self.items.get(self.next)?;
        self.next += 1;
        Some(v)
    }
}

fn too_big(size: usize) -> EvalError {
    EvalError::Budget(format!("value of size {size} exceeds {MAX_VALUE_SIZE}"))
}

fn too_deep() -> EvalError {
    EvalError::Budget(format!("value nested deeper than {MAX_DATA_DEPTH} levels"))
}

impl<'a> V<'a> {
    pub fn str(s: impl Into<Rc<str>>) -> Self {
        V::Str(s.into())
    }

    pub fn kind(&self) -> K<'_> {
        match self {
            V::Undef => K::Undef,
            V::Null => K::Null,
            V::Bool(b) => K::Bool(*b),
            V::Num(n) => K::Num(*n),
            V::Str(s) => K::Str(s),
            V::Arr(_) => K::Arr,
            V::Obj(_) => K::Obj,
            V::Ref(v) => match v {
                Value::Null => K::Null,
                Value::Bool(b) => K::Bool(*b),
                Value::Number(n) => K::Num(jsnum::json_number_to_f64(n)),
                Value::String(s) => K::Str(s),
                Value::Array(_) => K::Arr,
                Value::Object(_) => K::Obj,
            },
        }
    }

    pub fn items(&self) -> Option<Items<'a, '_>> {
        match self {
            V::Ref(Value::Array(a)) => Some(Items::Data(a)),
            V::Arr(a) => Some(Items::Own(&a.items)),
            _ => None,
        }
    }

    pub fn is_nullish(&self) -> bool {
        matches!(self.kind(), K::Null | K::Undef)
    }

    /// (nesting depth of built containers, logical size) for size accounting.
    fn weight(&self) -> (usize, usize) {
        match self {
            V::Arr(a) => (a.depth, a.size),
            V::Obj(o) => (o.depth, o.size),
            V::Str(s) => (0, s.len()),
            V::Ref(Value::String(s)) => (0, s.len()),
            _ => (0, 0),
        }
    }
}

/// Build an array, enforcing [`MAX_DATA_DEPTH`] and [`MAX_VALUE_SIZE`].
pub(crate) fn make_arr<'a>(items: Vec<V<'a>>) -> Result<V<'a>, EvalError> {
    let mut depth = 0;
    let mut size = items.len();
    for it in &items {
        let (d, s) = it.weight();
        depth = depth.max(d);
        size = size.saturating_add(s);
    }
    let depth = depth + 1;
    if depth > MAX_DATA_DEPTH {
        return Err(too_deep());
    }
    if size > MAX_VALUE_SIZE {
        return Err(too_big(size));
    }
    Ok(V::Arr(Rc::new(Arr { items, depth, size })))
}

/// Build an object (the `reduce` scope), with the same limits as [`make_arr`].
pub(crate) fn make_obj<'a>(entries: Vec<(&'static str, V<'a>)>) -> Result<V<'a>, EvalError> {
    let mut depth = 0;
    let mut size = entries.len();
    for (_, it) in &entries {
        let (d, s) = it.weight();
        depth = depth.max(d);
        size = size.saturating_add(s);
    }
    let depth = depth + 1;
    if depth > MAX_DATA_DEPTH {
        return Err(too_deep());
    }
    if size > MAX_VALUE_SIZE {
        return Err(too_big(size));
    }
    Ok(V::Obj(Rc::new(Obj { entries, depth, size })))
}

/// JSON Logic truthiness: `[]` is false, otherwise JavaScript `!!value`.
pub(crate) fn truthy(v: &V<'_>) -> bool {
    match v.kind() {
        K::Undef | K::Null => false,
        K::Bool(b) => b,
        K::Num(n) => n != 0.0 && !n.is_nan(),
        K::Str(s) => !s.is_empty(),
        K::Arr => v.items().is_some_and(|i| i.len() > 0),
        K::Obj => true,
    }
}

/// Plain JavaScript truthiness (`[]` is true).
pub(crate) fn js_truthy(v: &V<'_>) -> bool {
    match v.kind() {
        K::Arr | K::Obj => true,
        _ => truthy(v),
    }
}

/// Same object (JavaScript reference identity) for arrays and objects.
pub(crate) fn same_object(a: &V<'_>, b: &V<'_>) -> bool {
    match (a, b) {
        (V::Ref(x), V::Ref(y)) => std::ptr::eq(*x, *y),
        (V::Arr(x), V::Arr(y)) => Rc::ptr_eq(x, y),
        (V::Obj(x), V::Obj(y)) => Rc::ptr_eq(x, y),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// String conversion

/// Charge for `len` bytes of string work.
#[inline]
pub(crate) fn spend_bytes(budget: &mut Budget, len: usize) -> Result<(), EvalError> {
    budget.spend(1 + (len / 16) as u64)
}

/// Charge for comparing two long strings (the work is proportional to the shorter one).
#[inline]
pub(crate) fn spend_compare(a: &V<'_>, b: &V<'_>, budget: &mut Budget) -> Result<(), EvalError> {
    if let (K::Str(x), K::Str(y)) = (a.kind(), b.kind()) {
        let len = x.len().min(y.len());
        if len >= 64 {
            spend_bytes(budget, len)?;
        }
    }
    Ok(())
}

fn push_checked(out: &mut String, s: &str) -> Result<(), EvalError> {
    out.push_str(s);
    if out.len() > MAX_VALUE_SIZE {
        return Err(too_big(out.len()));
    }
    Ok(())
}

/// Append `String(v)` (`top`) or the `Array.prototype.join` element form (`!top`, where
/// `null`/`undefined` print as nothing).
fn push_js(v: &V<'_>, out: &mut String, top: bool) -> Result<(), EvalError> {
    match v {
        V::Undef => {
            if top {
                push_checked(out, "undefined")?;
            }
        }
        V::Null | V::Ref(Value::Null) => {
            if top {
                push_checked(out, "null")?;
            }
        }
        V::Bool(b) => push_checked(out, if *b { "true" } else { "false" })?,
        V::Num(n) => push_checked(out, &jsnum::number_to_string(*n))?,
        V::Str(s) => push_checked(out, s)?,
        V::Obj(_) | V::Ref(Value::Object(_)) => push_checked(out, "[object Object]")?,
        V::Ref(Value::String(s)) => push_checked(out, s)?,
        V::Ref(r) => push_checked(out, &jsnum::value_to_js_string(r))?,
        V::Arr(a) => {
            for (i, it) in a.items.iter().enumerate() {
                if i > 0 {
                    push_checked(out, ",")?;
                }
                push_js(it, out, false)?;
            }
        }
    }
    Ok(())
}

/// `String(v)`, borrowing when `v` already is a string.
pub(crate) fn js_string<'v>(v: &'v V<'_>, budget: &mut Budget) -> Result<Cow<'v, str>, EvalError> {
    if let K::Str(s) = v.kind() {
        return Ok(Cow::Borrowed(s));
    }
    let mut out = String::new();
    push_js(v, &mut out, true)?;
    spend_bytes(budget, out.len())?;
    Ok(Cow::Owned(out))
}

/// Append `v` as an element of `Array.prototype.join` (used by `cat`).
pub(crate) fn push_join(v: &V<'_>, out: &mut String) -> Result<(), EvalError> {
    push_js(v, out, false)
}

// ---------------------------------------------------------------------------------------------
// Primitives and numbers

/// The result of ToPrimitive.
pub(crate) enum P<'v> {
    Undef,
    Null,
    Bool(bool),
    Num(f64),
    Str(Cow<'v, str>),
}

pub(crate) fn to_prim<'v>(v: &'v V<'_>, budget: &mut Budget) -> Result<P<'v>, EvalError> {
    Ok(match v.kind() {
        K::Undef => P::Undef,
        K::Null => P::Null,
        K::Bool(b) => P::Bool(b),
        K::Num(n) => P::Num(n),
        K::Str(s) => P::Str(Cow::Borrowed(s)),
        K::Arr | K::Obj => P::Str(js_string(v, budget)?),
    })
}

fn prim_number(p: &P<'_>) -> f64 {
    match p {
        P::Undef => f64::NAN,
        P::Null => 0.0,
        P::Bool(b) => f64::from(u8::from(*b)),
        P::Num(n) => *n,
        P::Str(s) => jsnum::string_to_number(s),
    }
}

/// JavaScript `Number(v)`.
pub(crate) fn to_number(v: &V<'_>, budget: &mut Budget) -> Result<f64, EvalError> {
    Ok(match v.kind() {
        K::Undef => f64::NAN,
        K::Null => 0.0,
        K::Bool(b) => f64::from(u8::from(b)),
        K::Num(n) => n,
        K::Str(s) => jsnum::string_to_number(s),
        K::Obj => f64::NAN,
        K::Arr => match v.items().map(|i| i.len()) {
            Some(0) => 0.0,
            Some(1) => jsnum::string_to_number(&js_string(v, budget)?),
            _ => f64::NAN,
        },
    })
}

fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\u{9}' | '\u{a}' | '\u{b}' | '\u{c}' | '\u{d}' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}' | '\u{feff}'
    )
}

/// JavaScript `parseFloat(s)`: the longest decimal-literal prefix after leading whitespace.
pub(crate) fn parse_float(s: &str) -> f64 {
    let t = s.trim_start_matches(is_js_space);
    let b = t.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i = 1;
    }
    let unsigned = b.get(i..).unwrap_or_default();
    if unsigned.starts_with(b"Infinity") {
        return if b.first() == Some(&b'-') { f64::NEG_INFINITY } else { f64::INFINITY };
    }
    let digit = |j: usize| b.get(j).is_some_and(u8::is_ascii_digit);
    let int_start = i;
    while digit(i) {
        i += 1;
    }
    let mut mantissa_digits = i - int_start;
    if b.get(i) == Some(&b'.') {
        let dot = i;
        i += 1;
        while digit(i) {
            i += 1;
        }
        mantissa_digits += i - dot - 1;
        if mantissa_digits == 0 {
            return f64::NAN;
        }
    }
    if mantissa_digits == 0 {
        return f64::NAN;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if digit(j) {
            while digit(j) {
                j += 1;
            }
            i = j;
        }
    }
    t.get(..i).map_or(f64::NAN, jsnum::string_to_number)
}

/// `parseFloat(v)` for any value (`parseFloat(String(v))`).
pub(crate) fn parse_float_value(v: &V<'_>, budget: &mut Budget) -> Result<f64, EvalError> {
    Ok(match v.kind() {
        // parseFloat(String(x)) is x for every number except -0, which prints as "0".
        K::Num(n) => {
            if n == 0.0 {
                0.0
            } else {
                n
            }
        }
        K::Str(s) => parse_float(s),
        _ => parse_float(&js_string(v, budget)?),
    })
}

// ---------------------------------------------------------------------------------------------
// Equality and comparison

/// `a === b`.
pub(crate) fn strict_eq(a: &V<'_>, b: &V<'_>) -> bool {
    match (a.kind(), b.kind()) {
        (K::Undef, K::Undef) | (K::Null, K::Null) => true,
        (K::Bool(x), K::Bool(y)) => x == y,
        (K::Num(x), K::Num(y)) => x == y,
        (K::Str(x), K::Str(y)) => x == y,
        (K::Arr, K::Arr) | (K::Obj, K::Obj) => same_object(a, b),
        _ => false,
    }
}

fn prim_loose_eq(a: &P<'_>, b: &P<'_>) -> bool {
    match (a, b) {
        (P::Undef | P::Null, P::Undef | P::Null) => true,
        (P::Undef | P::Null, _) | (_, P::Undef | P::Null) => false,
        (P::Num(x), P::Num(y)) => x == y,
        (P::Str(x), P::Str(y)) => x == y,
        (P::Bool(x), P::Bool(y)) => x == y,
        (P::Num(x), P::Str(s)) | (P::Str(s), P::Num(x)) => *x == jsnum::string_to_number(s),
        (P::Bool(x), other) | (other, P::Bool(x)) => prim_loose_eq(&P::Num(f64::from(u8::from(*x))), other),
    }
}

/// `a == b` (the abstract equality algorithm).
pub(crate) fn loose_eq(a: &V<'_>, b: &V<'_>, budget: &mut Budget) -> Result<bool, EvalError> {
    let (ka, kb) = (a.kind(), b.kind());
    match (ka, kb) {
        (K::Undef | K::Null, K::Undef | K::Null) => return Ok(true),
        (K::Undef | K::Null, _) | (_, K::Undef | K::Null) => return Ok(false),
        (K::Arr | K::Obj, K::Arr | K::Obj) => return Ok(same_object(a, b)),
        _ => {}
    }
    let pa = to_prim(a, budget)?;
    let pb = to_prim(b, budget)?;
    Ok(prim_loose_eq(&pa, &pb))
}

/// Compare two strings by UTF-16 code units, as JavaScript's `<` does.
pub(crate) fn cmp_utf16(a: &str, b: &str) -> Ordering {
    let (mut ia, mut ib) = (a.chars(), b.chars());
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) => {
                let (mut bx, mut by) = ([0u16; 2], [0u16; 2]);
                let ux: &[u16] = x.encode_utf16(&mut bx);
                let uy: &[u16] = y.encode_utf16(&mut by);
                return ux.cmp(uy);
            }
        }
    }
}

/// The abstract relational comparison `a < b`; `None` is JavaScript's `undefined` (NaN involved).
pub(crate) fn less_than(a: &V<'_>, b: &V<'_>, budget: &mut Budget) -> Result<Option<bool>, EvalError> {
    if let (K::Num(x), K::Num(y)) = (a.kind(), b.kind()) {
        return Ok(if x.is_nan() || y.is_nan() { None } else { Some(x < y) });
    }
    let pa = to_prim(a, budget)?;
    let pb = to_prim(b, budget)?;
    if let (P::Str(x), P::Str(y)) = (&pa, &pb) {
        return Ok(Some(cmp_utf16(x, y) == Ordering::Less));
    }
    let (x, y) = (prim_number(&pa), prim_number(&pb));
    Ok(if x.is_nan() || y.is_nan() { None } else { Some(x < y) })
}

/// JavaScript `a < b`.
pub(crate) fn js_lt(a: &V<'_>, b: &V<'_>, budget: &mut Budget) -> Result<bool, EvalError> {
    Ok(less_than(a, b, budget)? == Some(true))
}

/// JavaScript `a <= b` (true when `b < a` is false, not undefined).
pub(crate) fn js_le(a: &V<'_>, b: &V<'_>, budget: &mut Budget) -> Result<bool, EvalError> {
    Ok(less_than(b, a, budget)? == Some(false))
}

/// JavaScript `n + v` where `n` is a number (string concatenation when `v` is string-like).
pub(crate) fn add_number(n: f64, v: &V<'_>, budget: &mut Budget) -> Result<f64, EvalError> {
    Ok(match to_prim(v, budget)? {
        P::Str(s) => {
            let mut joined = jsnum::number_to_string(n);
            joined.push_str(&s);
            jsnum::string_to_number(&joined)
        }
        p => n + prim_number(&p),
    })
}

// ---------------------------------------------------------------------------------------------
// UTF-16 string helpers

pub(crate) fn utf16_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.encode_utf16().count()
    }
}

/// `s.substring(from, to)` on UTF-16 code units (`from <= to <= len`); lone surrogates become U+FFFD.
pub(crate) fn utf16_slice(s: &str, from: usize, to: usize) -> String {
    if s.is_ascii() {
        return s.get(from..to).unwrap_or_default().to_owned();
    }
    let units: Vec<u16> = s.encode_utf16().collect();
    String::from_utf16_lossy(units.get(from..to).unwrap_or_default())
}

/// `s[i]` on UTF-16 code units.
pub(crate) fn utf16_at(s: &str, i: usize) -> Option<String> {
    if s.is_ascii() {
        return s.get(i..i + 1).map(str::to_owned);
    }
    let unit = s.encode_utf16().nth(i)?;
    Some(String::from_utf16_lossy(&[unit]))
}

/// ToIntegerOrInfinity.
pub(crate) fn to_integer(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.trunc()
    }
}

/// `String.prototype.substr(start, length)` with already-converted integer arguments.
pub(crate) fn substr(s: &str, start: f64, length: Option<f64>) -> String {
    let size = utf16_len(s) as f64;
    let start = if start < 0.0 { (size + start).max(0.0) } else { start.min(size) };
    let length = length.unwrap_or(size).clamp(0.0, size);
    let end = (start + length).min(size);
    if end <= start {
        return String::new();
    }
    // Both are integers in [0, size], so the casts are exact.
    utf16_slice(s, start as usize, end as usize)
}

// ---------------------------------------------------------------------------------------------
// Output

/// A finite number as JSON, integral values as integers (`-0` prints as `0`); NaN and
/// infinities have no JSON form and become `null`.
pub(crate) fn number_value(x: f64) -> Value {
    if !x.is_finite() {
        return Value::Null;
    }
    if x.fract() == 0.0 && x.abs() < 9.2e18 {
        return Value::Number(Number::from(x as i64));
    }
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}

fn data_too_deep() -> EvalError {
    EvalError::Invalid(format!("data nested deeper than {MAX_DATA_DEPTH} levels"))
}

/// Clone data into the output, refusing data deeper than [`MAX_DATA_DEPTH`] (no stack overflow)
/// and, when `weight` is given, outputs heavier than [`MAX_VALUE_SIZE`].
fn clone_data(v: &Value, depth: usize, weight: &mut Option<usize>) -> Result<Value, EvalError> {
    if let Some(w) = weight {
        *w += 1 + if let Value::String(s) = v { s.len() } else { 0 };
        if *w > MAX_VALUE_SIZE {
            return Err(too_big(*w));
        }
    }
    Ok(match v {
        Value::Array(items) => {
            if depth >= MAX_DATA_DEPTH {
                return Err(data_too_deep());
            }
            let mut out = Vec::with_capacity(items.len());
            for it in items {
                out.push(clone_data(it, depth + 1, weight)?);
            }
            Value::Array(out)
        }
        Value::Object(map) => {
            if depth >= MAX_DATA_DEPTH {
                return Err(data_too_deep());
            }
            let mut out = serde_json::Map::with_capacity(map.len());
            for (k, it) in map {
                out.insert(k.clone(), clone_data(it, depth + 1, weight)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

fn to_value_inner(v: &V<'_>, weight: &mut Option<usize>) -> Result<Value, EvalError> {
    Ok(match v {
        V::Ref(r) => clone_data(r, 0, weight)?,
        V::Undef | V::Null => Value::Null,
        V::Bool(b) => Value::Bool(*b),
        V::Num(n) => number_value(*n),
        V::Str(s) => {
            if let Some(w) = weight {
                *w += 1 + s.len();
                if *w > MAX_VALUE_SIZE {
                    return Err(too_big(*w));
                }
            }
            Value::String(s.to_string())
        }
        V::Arr(a) => {
            let mut out = Vec::with_capacity(a.items.len());
            for it in &a.items {
                out.push(to_value_inner(it, weight)?);
            }
            Value::Array(out)
        }
        V::Obj(o) => {
            let mut out = serde_json::Map::with_capacity(o.entries.len());
            for (k, it) in &o.entries {
                out.insert((*k).to_owned(), to_value_inner(it, weight)?);
            }
            Value::Object(out)
        }
    })
}

/// Convert an evaluation result to JSON. A result that is data passed through unchanged is only
/// depth-checked; anything built by the rule must stay within [`MAX_VALUE_SIZE`].
pub(crate) fn to_output(v: &V<'_>) -> Result<Value, EvalError> {
    let mut weight = match v {
        V::Ref(_) => None,
        _ => Some(0),
    };
    to_value_inner(v, &mut weight)
}
