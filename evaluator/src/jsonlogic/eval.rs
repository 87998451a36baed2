//! Evaluation of a compiled tree.

use std::cmp::Ordering;

use serde_json::Value;

use super::value::{
    add_number, js_le, js_lt, js_string, js_truthy, loose_eq, make_arr, make_obj, parse_float_value, push_join,
    spend_bytes, spend_compare, strict_eq, substr, to_integer, to_number, truthy, utf16_at, utf16_len, Items, K, V,
};
use super::{Cmp, IterKind, IterNode, Node, Op, SemOp, SemVerConst, VarNode, VarPath};
use crate::error::{Budget, EvalError, MAX_VALUE_SIZE};
use crate::hash::murmur3_32;
use crate::member;
use crate::semver;

type R<'a> = Result<V<'a>, EvalError>;

pub(super) fn eval<'a>(node: &'a Node, scope: &V<'a>, b: &mut Budget) -> R<'a> {
    b.spend(1)?;
    match node {
        Node::Const(v) => Ok(V::Ref(v)),
        Node::Array(nodes) => eval_array(nodes, scope, b),
        Node::Var(vn) => eval_var(vn, scope, b),
        Node::VarDyn(args) => eval_var_dyn(args, scope, b),
        Node::If(args) => eval_if(args, scope, b),
        Node::And(args) => eval_and_or(args, false, scope, b),
        Node::Or(args) => eval_and_or(args, true, scope, b),
        Node::Iter(kind, it) => eval_iter(*kind, it, scope, b),
        Node::SemVerConst(sv) => eval_sem_ver_const(sv, scope, b),
        Node::Op(op, args) => eval_op(*op, args, scope, b),
    }
}

fn eval_sem_ver_const<'a>(sv: &'a SemVerConst, scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let x = eval(&sv.subject, scope, b)?;
    let xs = js_string(&x, b)?;
    spend_bytes(b, xs.len() + sv.version_len)?;
    Ok(match semver::parse_loose(&xs) {
        Some(vx) => V::Bool(sv.op.test(&vx, &sv.version)),
        None => V::Null,
    })
}

fn eval_array<'a>(nodes: &'a [Node], scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let mut out = Vec::with_capacity(nodes.len());
    for n in nodes {
        out.push(eval(n, scope, b)?);
    }
    make_arr(out)
}

fn eval_var_dyn<'a>(args: &'a [Node], scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let a = arg(args, 0, scope, b)?;
    let d = arg(args, 1, scope, b)?;
    rest(args, 2, scope, b)?;
    var_dynamic(scope, &a, d, b)
}

fn eval_if<'a>(args: &'a [Node], scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let mut pairs = args.chunks_exact(2);
    for pair in &mut pairs {
        if let [cond, then] = pair {
            if truthy(&eval(cond, scope, b)?) {
                return eval(then, scope, b);
            }
        }
    }
    match pairs.remainder() {
        [otherwise] => eval(otherwise, scope, b),
        _ => Ok(V::Null),
    }
}

/// `and` returns the first falsy value (`or`: truthy), else the last one (`undefined` if none).
fn eval_and_or<'a>(args: &'a [Node], is_or: bool, scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let mut cur = V::Undef;
    for n in args {
        cur = eval(n, scope, b)?;
        if truthy(&cur) == is_or {
            return Ok(cur);
        }
    }
    Ok(cur)
}

fn eval_opt<'a>(node: Option<&'a Node>, scope: &V<'a>, b: &mut Budget) -> R<'a> {
    match node {
        Some(n) => eval(n, scope, b),
        None => Ok(V::Undef),
    }
}

/// Argument `i`, or `undefined` when absent.
fn arg<'a>(args: &'a [Node], i: usize, scope: &V<'a>, b: &mut Budget) -> R<'a> {
    eval_opt(args.get(i), scope, b)
}

/// Evaluate (and discard) the arguments from `from` on: json-logic-js evaluates every argument.
fn rest<'a>(args: &'a [Node], from: usize, scope: &V<'a>, b: &mut Budget) -> Result<(), EvalError> {
    for n in args.iter().skip(from) {
        eval(n, scope, b)?;
    }
    Ok(())
}

fn eval_all<'a>(args: &'a [Node], scope: &V<'a>, b: &mut Budget) -> Result<Vec<V<'a>>, EvalError> {
    let mut out = Vec::with_capacity(args.len());
    for n in args {
        out.push(eval(n, scope, b)?);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// var

/// `data[key]` in JavaScript, for the value types JSON can produce; `None` is `undefined`.
fn child<'a>(cur: &V<'a>, key: &str, index: Option<usize>) -> Option<V<'a>> {
    match cur {
        V::Ref(Value::Object(m)) => member::get(m, key).map(V::Ref),
        V::Ref(Value::Array(a)) => match index {
            Some(i) => a.get(i).map(V::Ref),
            None if key == "length" => Some(V::Num(a.len() as f64)),
            None => None,
        },
        V::Arr(a) => match index {
            Some(i) => a.items.get(i).cloned(),
            None if key == "length" => Some(V::Num(a.items.len() as f64)),
            None => None,
        },
        V::Obj(o) => o.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone()),
        V::Ref(Value::String(s)) => string_child(s, key, index),
        V::Str(s) => string_child(s, key, index),
        _ => None,
    }
}

fn string_child<'a>(s: &str, key: &str, index: Option<usize>) -> Option<V<'a>> {
    match index {
        Some(i) => utf16_at(s, i).map(V::str),
        None if key == "length" => Some(V::Num(utf16_len(s) as f64)),
        None => None,
    }
}

/// Walk a path; `None` when a step is `undefined` or steps into `null`/`undefined`.
fn walk<'a, 's>(scope: &V<'a>, segs: impl Iterator<Item = (&'s str, Option<usize>)>) -> Option<V<'a>> {
    let mut cur = scope.clone();
    for (key, index) in segs {
        if cur.is_nullish() {
            return None;
        }
        cur = child(&cur, key, index)?;
        if matches!(cur, V::Undef) {
            return None;
        }
    }
    Some(cur)
}

fn or_default<'a>(found: Option<V<'a>>, default: V<'a>) -> V<'a> {
    match found {
        Some(v) => v,
        None => match default {
            V::Undef => V::Null,
            d => d,
        },
    }
}

fn eval_var<'a>(vn: &'a VarNode, scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let default = eval_opt(vn.default.as_ref(), scope, b)?;
    let found = match &vn.path {
        VarPath::Whole => return Ok(scope.clone()),
        VarPath::Segs(segs) => walk(scope, segs.iter().map(|s| (&*s.key, s.index))),
    };
    Ok(or_default(found, default))
}

fn var_dynamic<'a>(scope: &V<'a>, a: &V<'a>, default: V<'a>, b: &mut Budget) -> R<'a> {
    match a.kind() {
        K::Undef | K::Null => return Ok(scope.clone()),
        K::Str("") => return Ok(scope.clone()),
        _ => {}
    }
    let path = js_string(a, b)?;
    let found = walk(scope, path.split('.').map(|s| (s, super::array_index(s))));
    Ok(or_default(found, default))
}

// ---------------------------------------------------------------------------------------------
// map, filter, reduce, all, none, some

fn eval_iter<'a>(kind: IterKind, it: &'a IterNode, scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let src = eval_opt(it.src.as_ref(), scope, b)?;
    let body = it.body.as_ref();
    match kind {
        IterKind::Reduce => iter_reduce(src, body, it.init.as_ref(), scope, b),
        IterKind::Map => iter_map(src.items(), body, b),
        IterKind::Filter => iter_filter(src.items(), body, b),
        IterKind::All | IterKind::None | IterKind::Some => iter_quantifier(kind, src.items(), body, b),
    }
}

fn iter_reduce<'a>(src: V<'a>, body: Option<&'a Node>, init: Option<&'a Node>, scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let init = match init {
        Some(n) => eval(n, scope, b)?,
        None => V::Null,
    };
    let Some(items) = src.items() else {
        return Ok(init);
    };
    let mut acc = init;
    for el in items.iter() {
        b.spend(1)?;
        let sc = make_obj(vec![("current", el), ("accumulator", acc)])?;
        acc = eval_opt(body, &sc, b)?;
    }
    Ok(acc)
}

fn iter_map<'a>(items: Option<Items<'a, '_>>, body: Option<&'a Node>, b: &mut Budget) -> R<'a> {
    let Some(items) = items else {
        return make_arr(Vec::new());
    };
    let mut out = Vec::with_capacity(items.len());
    for el in items.iter() {
        b.spend(1)?;
        out.push(eval_opt(body, &el, b)?);
    }
    make_arr(out)
}

fn iter_filter<'a>(items: Option<Items<'a, '_>>, body: Option<&'a Node>, b: &mut Budget) -> R<'a> {
    let Some(items) = items else {
        return make_arr(Vec::new());
    };
    let mut out = Vec::new();
    for el in items.iter() {
        b.spend(1)?;
        if truthy(&eval_opt(body, &el, b)?) {
            out.push(el);
        }
    }
    make_arr(out)
}

/// `all` (false on an empty array), `none`, `some`, short-circuiting.
fn iter_quantifier<'a>(kind: IterKind, items: Option<Items<'a, '_>>, body: Option<&'a Node>, b: &mut Budget) -> R<'a> {
    let items = match items {
        Some(i) if i.len() > 0 => i,
        _ => return Ok(V::Bool(kind == IterKind::None)),
    };
    for el in items.iter() {
        b.spend(1)?;
        let t = truthy(&eval_opt(body, &el, b)?);
        match kind {
            IterKind::All if !t => return Ok(V::Bool(false)),
            IterKind::None if t => return Ok(V::Bool(false)),
            IterKind::Some if t => return Ok(V::Bool(true)),
            _ => {}
        }
    }
    Ok(V::Bool(kind != IterKind::Some))
}

// ---------------------------------------------------------------------------------------------
// Operators

fn eval_op<'a>(op: Op, args: &'a [Node], scope: &V<'a>, b: &mut Budget) -> R<'a> {
    match op {
        Op::Eq | Op::Ne | Op::StrictEq | Op::StrictNe | Op::Gt | Op::Ge | Op::In => op_binary(op, args, scope, b),
        Op::Lt | Op::Le => op_lt_le(op, args, scope, b),
        Op::Not | Op::NotNot => op_not(op, args, scope, b),
        Op::Log => op_log(op, args, scope, b),
        Op::Max | Op::Min => op_max_min(op, args, scope, b),
        Op::Add => op_add(op, args, scope, b),
        Op::Mul => op_mul(op, args, scope, b),
        Op::Sub => op_sub(op, args, scope, b),
        Op::Div | Op::Mod => op_div_mod(op, args, scope, b),
        Op::Cat => op_cat(op, args, scope, b),
        Op::Substr => op_substr_args(op, args, scope, b),
        Op::Merge => op_merge(op, args, scope, b),
        Op::Missing => op_missing(op, args, scope, b),
        Op::MissingSome => op_missing_some_args(op, args, scope, b),
        Op::Fractional => op_fractional(op, args, scope, b),
        Op::SemVer => op_sem_ver(op, args, scope, b),
        Op::StartsWith | Op::EndsWith => op_starts_ends(op, args, scope, b),
        Op::JpVer(_) => op_jp_ver(op, args, scope, b),
        Op::StrCmp(_) => op_str_cmp(op, args, scope, b),
    }
}

fn op_binary<'a>(op: Op, args: &'a [Node], scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let x = arg(args, 0, scope, b)?;
    let y = arg(args, 1, scope, b)?;
    rest(args, 2, scope, b)?;
    if op != Op::In {
        spend_compare(&x, &y, b)?;
    }
    Ok(V::Bool(match op {
        Op::Eq => loose_eq(&x, &y, b)?,
        Op::Ne => !loose_eq(&x, &y, b)?,
        Op::StrictEq => strict_eq(&x, &y),
        Op::StrictNe => !strict_eq(&x, &y),
        Op::Gt => js_lt(&y, &x, b)?,
        Op::Ge => js_le(&y, &x, b)?,
        _ => op_in(&x, &y, b)?,
    }))
}

fn op_lt_le<'a>(op: Op, args: &'a [Node], scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let x = arg(args, 0, scope, b)?;
    let y = arg(args, 1, scope, b)?;
    let z = arg(args, 2, scope, b)?;
    rest(args, 3, scope, b)?;
    spend_compare(&x, &y, b)?;
    spend_compare(&y, &z, b)?;
    let cmp = if op == Op::Lt { js_lt } else { js_le };
    let r = if matches!(z, V::Undef) { cmp(&x, &y, b)? } else { cmp(&x, &y, b)? && cmp(&y, &z, b)? };
    Ok(V::Bool(r))
}

fn op_not<'a>(op: Op, args: &'a [Node], scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let x = arg(args, 0, scope, b)?;
    rest(args, 1, scope, b)?;
    Ok(V::Bool(truthy(&x) == (op == Op::NotNot)))
}

fn op_log<'a>(_op: Op, args: &'a [Node], scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let x = arg(args, 0, scope, b)?;
    rest(args, 1, scope, b)?;
    Ok(x)
}

fn op_max_min<'a>(op: Op, args: &'a [Node], scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let mut acc = if op == Op::Max { f64::NEG_INFINITY } else { f64::INFINITY };
    for n in args {
        let x = to_number(&eval(n, scope, b)?, b)?;
        acc = if op == Op::Max { js_max(acc, x) } else { js_min(acc, x) };
    }
    Ok(V::Num(acc))
}

fn op_add<'a>(_op: Op, args: &'a [Node], scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let mut acc = 0.0;
    for n in args {
        let x = parse_float_value(&eval(n, scope, b)?, b)?;
        acc = parse_float_value(&V::Num(acc), b)? + x;
    }
    Ok(V::Num(acc))
}

fn op_mul<'a>(_op: Op, args: &'a [Node], scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let mut it = args.iter();
    let Some(first) = it.next() else {
        return Err(EvalError::Invalid("*: reduce of empty array with no initial value".into()));
    };
    let first = eval(first, scope, b)?;
    if args.len() == 1 {
        return Ok(first);
    }
    let mut acc = first;
    for n in it {
        let y = eval(n, scope, b)?;
        acc = V::Num(parse_float_value(&acc, b)? * parse_float_value(&y, b)?);
    }
    Ok(acc)
}

fn op_sub<'a>(_op: Op, args: &'a [Node], scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let x = arg(args, 0, scope, b)?;
    let y = arg(args, 1, scope, b)?;
    rest(args, 2, scope, b)?;
    let xn = to_number(&x, b)?;
    Ok(V::Num(if matches!(y, V::Undef) { -xn } else { xn - to_number(&y, b)? }))
}

fn op_div_mod<'a>(op: Op, args: &'a [Node], scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let x = arg(args, 0, scope, b)?;
    let y = arg(args, 1, scope, b)?;
    rest(args, 2, scope, b)?;
    let (xn, yn) = (to_number(&x, b)?, to_number(&y, b)?);
    Ok(V::Num(if op == Op::Div { xn / yn } else { xn % yn }))
}

fn op_cat<'a>(_op: Op, args: &'a [Node], scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let mut out = String::new();
    for n in args {
        let v = eval(n, scope, b)?;
        let before = out.len();
        push_join(&v, &mut out)?;
        spend_bytes(b, out.len() - before)?;
    }
    Ok(V::str(out))
}

fn op_substr_args<'a>(_op: Op, args: &'a [Node], scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let src = arg(args, 0, scope, b)?;
    let start = arg(args, 1, scope, b)?;
    let end = arg(args, 2, scope, b)?;
    rest(args, 3, scope, b)?;
    op_substr(&src, &start, &end, b)
}

fn op_merge<'a>(_op: Op, args: &'a [Node], scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let mut out = Vec::new();
    for n in args {
        let v = eval(n, scope, b)?;
        match v.items() {
            Some(items) => {
                b.spend(items.len() as u64)?;
                if out.len().saturating_add(items.len()) > MAX_VALUE_SIZE {
                    return Err(EvalError::Budget(format!("merge result exceeds {MAX_VALUE_SIZE}")));
                }
                out.extend(items.iter());
            }
            None => out.push(v),
        }
    }
    make_arr(out)
}

fn op_missing<'a>(_op: Op, args: &'a [Node], scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let first = arg(args, 0, scope, b)?;
    let mut missing = Vec::new();
    if let Some(items) = first.items() {
        rest(args, 1, scope, b)?;
        for key in items.iter() {
            check_missing(scope, key, &mut missing, b)?;
        }
    } else if !args.is_empty() {
        check_missing(scope, first, &mut missing, b)?;
        for n in args.iter().skip(1) {
            let key = eval(n, scope, b)?;
            check_missing(scope, key, &mut missing, b)?;
        }
    }
    make_arr(missing)
}

fn op_missing_some_args<'a>(_op: Op, args: &'a [Node], scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let need = arg(args, 0, scope, b)?;
    let options = arg(args, 1, scope, b)?;
    rest(args, 2, scope, b)?;
    op_missing_some(scope, &need, &options, b)
}

fn op_fractional<'a>(_op: Op, args: &'a [Node], scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let vals = eval_all(args, scope, b)?;
    fractional(vals, scope)
}

fn op_sem_ver<'a>(_op: Op, args: &'a [Node], scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let vals = eval_all(args, scope, b)?;
    sem_ver(&vals, b)
}

fn op_starts_ends<'a>(op: Op, args: &'a [Node], scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let vals = eval_all(args, scope, b)?;
    let [x, y] = vals.as_slice() else {
        return Ok(V::Null);
    };
    let (K::Str(s), K::Str(p)) = (x.kind(), y.kind()) else {
        return Ok(V::Null);
    };
    spend_bytes(b, p.len())?;
    Ok(V::Bool(if op == Op::StartsWith { s.starts_with(p) } else { s.ends_with(p) }))
}

fn op_jp_ver<'a>(op: Op, args: &'a [Node], scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let cmp = match op {
        Op::JpVer(c) | Op::StrCmp(c) => c,
        _ => Cmp::Eq,
    };
    let vals = eval_all(args, scope, b)?;
    let [x, y] = vals.as_slice() else {
        return Ok(V::Bool(false));
    };
    let (xs, ys) = (js_string(x, b)?, js_string(y, b)?);
    spend_bytes(b, xs.len() + ys.len())?;
    Ok(V::Bool(semver::compare_str(&xs, &ys).is_ok_and(|o| cmp_matches(cmp, o))))
}

fn op_str_cmp<'a>(op: Op, args: &'a [Node], scope: &V<'a>, b: &mut Budget) -> R<'a> {
    let cmp = match op {
        Op::JpVer(c) | Op::StrCmp(c) => c,
        _ => Cmp::Eq,
    };
    let vals = eval_all(args, scope, b)?;
    let [x, y] = vals.as_slice() else {
        return Ok(V::Bool(false));
    };
    let (xs, ys) = (js_string(x, b)?, js_string(y, b)?);
    spend_bytes(b, xs.len().min(ys.len()))?;
    Ok(V::Bool(cmp_matches(cmp, xs.as_ref().cmp(ys.as_ref()))))
}

fn cmp_matches(cmp: Cmp, o: Ordering) -> bool {
    match cmp {
        Cmp::Gt => o == Ordering::Greater,
        Cmp::Ge => o != Ordering::Less,
        Cmp::Lt => o == Ordering::Less,
        Cmp::Le => o != Ordering::Greater,
        Cmp::Eq => o == Ordering::Equal,
    }
}

/// `Math.max` step (NaN wins, `+0` beats `-0`).
fn js_max(acc: f64, x: f64) -> f64 {
    if acc.is_nan() || x.is_nan() {
        f64::NAN
    } else if x > acc || (x == 0.0 && acc == 0.0 && acc.is_sign_negative()) {
        x
    } else {
        acc
    }
}

/// `Math.min` step (NaN wins, `-0` beats `+0`).
fn js_min(acc: f64, x: f64) -> f64 {
    if acc.is_nan() || x.is_nan() {
        f64::NAN
    } else if x < acc || (x == 0.0 && acc == 0.0 && x.is_sign_negative()) {
        x
    } else {
        acc
    }
}

/// `b.indexOf(a) !== -1` guarded by `!b || typeof b.indexOf === "undefined"`.
fn op_in(a: &V<'_>, hay: &V<'_>, b: &mut Budget) -> Result<bool, EvalError> {
    if !js_truthy(hay) {
        return Ok(false);
    }
    if let Some(items) = hay.items() {
        b.spend(items.len() as u64)?;
        return Ok(items.iter().any(|it| strict_eq(&it, a)));
    }
    if let K::Str(s) = hay.kind() {
        spend_bytes(b, s.len())?;
        let needle = js_string(a, b)?;
        return Ok(s.contains(needle.as_ref()));
    }
    Ok(false)
}

/// json-logic-js `substr`: `String(source).substr(start, end)`, and a negative `end` drops that
/// many characters from the end (computed as `temp.length + end`, with JavaScript's `+`).
fn op_substr<'a>(src: &V<'a>, start: &V<'a>, end: &V<'a>, b: &mut Budget) -> R<'a> {
    let s = js_string(src, b)?;
    spend_bytes(b, s.len())?;
    let start_n = to_integer(to_number(start, b)?);
    let zero = V::Num(0.0);
    if js_lt(end, &zero, b)? {
        let temp = substr(&s, start_n, None);
        let len = add_number(utf16_len(&temp) as f64, end, b)?;
        return Ok(V::str(substr(&temp, 0.0, Some(to_integer(len)))));
    }
    let length = match end {
        V::Undef => None,
        e => Some(to_integer(to_number(e, b)?)),
    };
    Ok(V::str(substr(&s, start_n, length)))
}

/// One key of `missing`: `{"var": key}` is `null` or `""`.
fn check_missing<'a>(scope: &V<'a>, key: V<'a>, out: &mut Vec<V<'a>>, b: &mut Budget) -> Result<(), EvalError> {
    b.spend(1)?;
    // `{"var": key}` with an array key takes [path, default] from it.
    let found = match key.items() {
        Some(items) => {
            let a = items.get(0).unwrap_or(V::Undef);
            let d = items.get(1).unwrap_or(V::Undef);
            var_dynamic(scope, &a, d, b)?
        }
        None => var_dynamic(scope, &key, V::Undef, b)?,
    };
    if matches!(found.kind(), K::Null | K::Str("")) {
        out.push(key);
    }
    Ok(())
}

fn op_missing_some<'a>(scope: &V<'a>, need: &V<'a>, options: &V<'a>, b: &mut Budget) -> R<'a> {
    if options.is_nullish() {
        return Err(EvalError::Invalid("missing_some: options must be an array".into()));
    }
    let mut missing = Vec::new();
    let count = match options.items() {
        Some(items) => {
            // `{"missing": options}`: a leading array is the key list.
            match items.get(0).as_ref().and_then(V::items) {
                Some(inner) => {
                    for key in inner.iter() {
                        check_missing(scope, key, &mut missing, b)?;
                    }
                }
                None => {
                    for key in items.iter() {
                        check_missing(scope, key, &mut missing, b)?;
                    }
                }
            }
            items.len() as f64
        }
        None => {
            check_missing(scope, options.clone(), &mut missing, b)?;
            match options.kind() {
                K::Str(s) => utf16_len(s) as f64,
                _ => f64::NAN,
            }
        }
    };
    let present = V::Num(count - missing.len() as f64);
    if js_le(need, &present, b)? {
        make_arr(Vec::new())
    } else {
        make_arr(missing)
    }
}

// ---------------------------------------------------------------------------------------------
// flagd

fn fractional<'a>(args: Vec<V<'a>>, scope: &V<'a>) -> R<'a> {
    let Some(first) = args.first() else {
        return Ok(V::Null);
    };
    let (hash, buckets) = match first.kind() {
        K::Str(key) => (murmur3_32(key.as_bytes(), 0), args.get(1..).unwrap_or_default()),
        kind => {
            let buckets =
                if matches!(kind, K::Null | K::Undef) { args.get(1..).unwrap_or_default() } else { &args[..] };
            let Some(key) = shorthand_key(scope) else {
                return Ok(V::Null);
            };
            (murmur3_32(key.as_bytes(), 0), buckets)
        }
    };
    let mut parsed: Vec<(V<'a>, u64)> = Vec::with_capacity(buckets.len());
    let mut total: u64 = 0;
    for bucket in buckets {
        let Some(items) = bucket.items() else {
            return Ok(V::Null);
        };
        let weight = match items.len() {
            1 => 1,
            2 => match items.get(1).as_ref().map(V::kind) {
                Some(K::Num(w)) if w.is_finite() && w.fract() == 0.0 => {
                    if w <= 0.0 {
                        0
                    } else if w > f64::from(i32::MAX) {
                        return Ok(V::Null);
                    } else {
                        w as u64
                    }
                }
                _ => return Ok(V::Null),
            },
            _ => return Ok(V::Null),
        };
        total += weight;
        if total > i32::MAX as u64 {
            return Ok(V::Null);
        }
        parsed.push((items.get(0).unwrap_or(V::Null), weight));
    }
    if total == 0 {
        return Ok(V::Null);
    }
    let bucket = (u64::from(hash) * total) >> 32;
    let mut sum = 0;
    for (variant, weight) in parsed {
        sum += weight;
        if sum > bucket {
            return Ok(variant);
        }
    }
    Ok(V::Null)
}

/// `$flagd.flagKey + targetingKey`, when the context has a non-empty string `targetingKey`.
fn shorthand_key(scope: &V<'_>) -> Option<String> {
    let tk = child(scope, "targetingKey", None)?;
    let K::Str(tk) = tk.kind() else {
        return None;
    };
    if tk.is_empty() {
        return None;
    }
    let flagd = child(scope, "$flagd", None)?;
    if !matches!(flagd.kind(), K::Obj) {
        return None;
    }
    let mut key = match child(&flagd, "flagKey", None) {
        None => String::new(),
        Some(fk) => match fk.kind() {
            K::Str(s) => s.to_owned(),
            _ => return None,
        },
    };
    key.push_str(tk);
    Some(key)
}

fn sem_ver<'a>(args: &[V<'a>], b: &mut Budget) -> R<'a> {
    let [x, op, y] = args else {
        return Ok(V::Null);
    };
    let (xs, ops, ys) = (js_string(x, b)?, js_string(op, b)?, js_string(y, b)?);
    spend_bytes(b, xs.len() + ys.len())?;
    let (Some(vx), Some(vy)) = (semver::parse_loose(&xs), semver::parse_loose(&ys)) else {
        return Ok(V::Null);
    };
    Ok(match SemOp::parse(&ops) {
        Some(op) => V::Bool(op.test(&vx, &vy)),
        None => V::Null,
    })
}
