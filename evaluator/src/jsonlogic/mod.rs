//! JSON Logic with the semantics of json-logic-js 2.0.5, plus flagd's `fractional`, `sem_ver`,
//! `starts_with`, `ends_with` and Airborne's `jp_ver_*` / `str_*` cohort operators.
//!
//! A rule is compiled once into a [`Logic`] tree (operators resolved, constant `var` paths
//! pre-split, constant arrays pre-built) and evaluated many times without re-parsing.
//!
//! Semantics that are decided here rather than by the reference:
//! * **NaN and infinities** (`{"/": [1, 0]}`, `{"max": []}`) are kept as JavaScript numbers
//!   while evaluating, so `==`, truthiness and further arithmetic behave as in JavaScript, and
//!   become `null` in the returned JSON (JSON has no representation for them). `undefined`
//!   (`{"and": []}`, missing arguments) likewise becomes `null` in the output.
//! * **Integral numbers** computed by the rule come back as JSON integers (`1 + 1` is `2`).
//! * **Unknown operators** are rejected when compiling, with the path of the operator key,
//!   even in branches json-logic-js would never evaluate.
//! * **Runtime errors** json-logic-js throws (`{"*": []}`, `missing_some` without a list of
//!   options) are [`EvalError::Invalid`]. `log` returns its argument without printing.
//! * **Identity**: arrays and objects compare by reference in `==`/`===`/`in` as in
//!   JavaScript; constant array literals are built once per compile, so one literal compared
//!   with a later evaluation of itself (only possible inside `reduce`) counts as the same array.
//! * **Limits**: rules deeper than [`MAX_RULE_DEPTH`] do not compile; every node visited and
//!   every element iterated spends the [`Budget`]; values the rule builds (arrays, strings)
//!   larger than `MAX_VALUE_SIZE` or nested deeper than `MAX_DATA_DEPTH` give
//!   [`EvalError::Budget`]; data deeper than `MAX_DATA_DEPTH` that would have to be copied into
//!   the result gives [`EvalError::Invalid`].
//! * **`missing` / `missing_some` keys** are used as data. json-logic-js re-applies keys that
//!   are arrays (or objects) as rules; here they are never evaluated as logic.
//! * **Lone surrogates**: indexing or `substr` that splits a UTF-16 surrogate pair yields
//!   U+FFFD (Rust strings cannot hold half a pair).
//! * `*` uses `parseFloat` per argument (and one argument is returned unchanged), as
//!   json-logic-js 2.0.5 does; `-`, `/`, `%`, `min`, `max` use `Number()`.
//! * **flagd `fractional`**: the shorthand key needs `$flagd` to be an object and
//!   `targetingKey` a non-empty string (as flagd's Go code); a missing `$flagd.flagKey` counts
//!   as `""`. The sum of weights must not exceed `i32::MAX`.

mod eval;
mod value;

use serde_json::Value;

use crate::error::{Budget, EvalError, RuleError, MAX_RULE_DEPTH};
use crate::jsnum;

/// A compiled JSON Logic expression.
#[derive(Debug, Clone)]
pub struct Logic {
    root: Node,
}

impl Logic {
    /// Compile `rule`; `path` is the JSONPath of `rule` itself (for example `$.flags[2].rule`).
    pub fn compile(rule: &Value, path: &str) -> Result<Self, RuleError> {
        let root = compile_node(rule, &Path::Root(path), 1)?;
        Ok(Logic { root })
    }

    /// Evaluate against `data`.
    pub fn eval(&self, data: &Value, budget: &mut Budget) -> Result<Value, EvalError> {
        let scope = value::V::Ref(data);
        let out = eval::eval(&self.root, &scope, budget)?;
        value::to_output(&out)
    }

    /// Evaluate against `data` and return the JSON Logic truthiness of the result, without
    /// converting the result to JSON.
    pub fn eval_truthy(&self, data: &Value, budget: &mut Budget) -> Result<bool, EvalError> {
        let scope = value::V::Ref(data);
        let out = eval::eval(&self.root, &scope, budget)?;
        Ok(value::truthy(&out))
    }
}

/// Compile and evaluate once with the default budget.
pub fn apply(rule: &Value, data: &Value) -> Result<Value, EvalError> {
    let logic = Logic::compile(rule, "$")?;
    logic.eval(data, &mut Budget::default())
}

/// JSON Logic truthiness: `[]`, `""`, `0`, `null` and `false` are false, everything else true.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => jsnum::json_number_to_f64(n) != 0.0,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(_) => true,
    }
}

// ---------------------------------------------------------------------------------------------
// Compiled form

#[derive(Debug, Clone)]
enum Node {
    /// A literal (scalar, non-operator object, or array without operators).
    Const(Value),
    /// An array literal containing operators, evaluated element-wise.
    Array(Vec<Node>),
    /// `var` with a constant path.
    Var(Box<VarNode>),
    /// `var` with computed arguments.
    VarDyn(Vec<Node>),
    If(Vec<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
    /// `map`, `filter`, `all`, `none`, `some`, `reduce`: the body runs with each element as data.
    Iter(IterKind, Box<IterNode>),
    /// `sem_ver` whose operator and right-hand version are constants, parsed once at compile time.
    SemVerConst(Box<SemVerConst>),
    /// Every other operator: arguments are evaluated first, in order.
    Op(Op, Vec<Node>),
}

#[derive(Debug, Clone)]
struct SemVerConst {
    subject: Node,
    op: SemOp,
    version: crate::semver::Version,
    /// Byte length of the constant's string form (charged to the budget like the general path).
    version_len: usize,
}

/// The comparison operators of flagd's `sem_ver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SemOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Caret,
    Tilde,
}

impl SemOp {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "=" => Self::Eq,
            "!=" => Self::Ne,
            "<" => Self::Lt,
            "<=" => Self::Le,
            ">" => Self::Gt,
            ">=" => Self::Ge,
            "^" => Self::Caret,
            "~" => Self::Tilde,
            _ => return None,
        })
    }

    fn test(self, x: &crate::semver::Version, y: &crate::semver::Version) -> bool {
        use std::cmp::Ordering;
        let o = crate::semver::compare(x, y);
        match self {
            Self::Eq => o == Ordering::Equal,
            Self::Ne => o != Ordering::Equal,
            Self::Lt => o == Ordering::Less,
            Self::Le => o != Ordering::Greater,
            Self::Gt => o == Ordering::Greater,
            Self::Ge => o != Ordering::Less,
            Self::Caret => crate::semver::caret(x, y),
            Self::Tilde => crate::semver::tilde(x, y),
        }
    }
}

/// `{"sem_ver": [subject, "<op>", "<version>"]}` with a constant operator and a valid constant
/// version: pre-parse both. Anything else keeps the general path (and its null results).
fn fold_sem_ver(args: Vec<Node>) -> Node {
    if let [_, Node::Const(Value::String(op)), Node::Const(v @ (Value::String(_) | Value::Number(_)))] = args.as_slice()
    {
        let text = jsnum::value_to_js_string(v);
        if let (Some(op), Some(version)) = (SemOp::parse(op), crate::semver::parse_loose(&text)) {
            if let Some(subject) = args.into_iter().next() {
                return Node::SemVerConst(Box::new(SemVerConst { subject, op, version, version_len: text.len() }));
            }
            return Node::Const(Value::Null);
        }
    }
    Node::Op(Op::SemVer, args)
}

#[derive(Debug, Clone)]
struct VarNode {
    path: VarPath,
    default: Option<Node>,
}

#[derive(Debug, Clone)]
enum VarPath {
    /// `""`, `null` or no argument: the whole data.
    Whole,
    Segs(Vec<Seg>),
}

/// One `.`-separated part of a `var` path, with its array index when it is one.
#[derive(Debug, Clone)]
struct Seg {
    key: Box<str>,
    index: Option<usize>,
}

impl Seg {
    fn new(key: &str) -> Self {
        Seg { key: key.into(), index: array_index(key) }
    }
}

/// A canonical JavaScript array index (`0`, `17`, not `01` or `-1`).
fn array_index(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 10 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if b.len() > 1 && s.starts_with('0') {
        return None;
    }
    let n: u64 = s.parse().ok()?;
    if n >= u64::from(u32::MAX) {
        return None;
    }
    usize::try_from(n).ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IterKind {
    Map,
    Filter,
    All,
    None,
    Some,
    Reduce,
}

#[derive(Debug, Clone)]
struct IterNode {
    src: Option<Node>,
    body: Option<Node>,
    init: Option<Node>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    StrictEq,
    Ne,
    StrictNe,
    Not,
    NotNot,
    Lt,
    Le,
    Gt,
    Ge,
    Max,
    Min,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Cat,
    Substr,
    In,
    Merge,
    Missing,
    MissingSome,
    Log,
    Fractional,
    SemVer,
    StartsWith,
    EndsWith,
    JpVer(Cmp),
    StrCmp(Cmp),
}

fn lookup_op(name: &str) -> Option<Op> {
    Some(match name {
        "==" => Op::Eq,
        "===" => Op::StrictEq,
        "!=" => Op::Ne,
        "!==" => Op::StrictNe,
        "!" => Op::Not,
        "!!" => Op::NotNot,
        "<" => Op::Lt,
        "<=" => Op::Le,
        ">" => Op::Gt,
        ">=" => Op::Ge,
        "max" => Op::Max,
        "min" => Op::Min,
        "+" => Op::Add,
        "-" => Op::Sub,
        "*" => Op::Mul,
        "/" => Op::Div,
        "%" => Op::Mod,
        "cat" => Op::Cat,
        "substr" => Op::Substr,
        "in" => Op::In,
        "merge" => Op::Merge,
        "missing" => Op::Missing,
        "missing_some" => Op::MissingSome,
        "log" => Op::Log,
        "fractional" => Op::Fractional,
        "sem_ver" => Op::SemVer,
        "starts_with" => Op::StartsWith,
        "ends_with" => Op::EndsWith,
        "jp_ver_gt" => Op::JpVer(Cmp::Gt),
        "jp_ver_ge" => Op::JpVer(Cmp::Ge),
        "jp_ver_lt" => Op::JpVer(Cmp::Lt),
        "jp_ver_le" => Op::JpVer(Cmp::Le),
        "jp_ver_eq" => Op::JpVer(Cmp::Eq),
        "str_gt" => Op::StrCmp(Cmp::Gt),
        "str_ge" => Op::StrCmp(Cmp::Ge),
        "str_lt" => Op::StrCmp(Cmp::Lt),
        "str_le" => Op::StrCmp(Cmp::Le),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Compilation

/// A JSONPath under construction, rendered only when reporting an error.
enum Path<'p> {
    Root(&'p str),
    Key(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl Path<'_> {
    fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) {
        match self {
            Path::Root(r) => out.push_str(r),
            Path::Key(parent, key) => {
                parent.render_into(out);
                let ident = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
                    && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
                if ident {
                    out.push('.');
                    out.push_str(key);
                } else {
                    out.push('[');
                    out.push_str(&serde_json::to_string(key).unwrap_or_default());
                    out.push(']');
                }
            }
            Path::Index(parent, i) => {
                parent.render_into(out);
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
}

fn too_deep(path: &Path<'_>) -> RuleError {
    RuleError::new(path.render(), format!("rule nested deeper than {MAX_RULE_DEPTH} levels"))
}

/// Reject literals nested deeper than the rule limit before copying them.
fn check_literal(v: &Value, path: &Path<'_>, depth: usize) -> Result<(), RuleError> {
    if depth > MAX_RULE_DEPTH {
        return Err(too_deep(path));
    }
    match v {
        Value::Array(items) => {
            for (i, it) in items.iter().enumerate() {
                check_literal(it, &Path::Index(path, i), depth + 1)?;
            }
        }
        Value::Object(map) => {
            for (k, it) in map {
                check_literal(it, &Path::Key(path, k), depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// `depth` is the nesting level of `rule` (the root is 1).
fn compile_node(rule: &Value, path: &Path<'_>, depth: usize) -> Result<Node, RuleError> {
    if depth > MAX_RULE_DEPTH {
        return Err(too_deep(path));
    }
    match rule {
        Value::Array(items) => {
            let mut nodes = Vec::with_capacity(items.len());
            for (i, it) in items.iter().enumerate() {
                nodes.push(compile_node(it, &Path::Index(path, i), depth + 1)?);
            }
            if nodes.iter().all(|n| matches!(n, Node::Const(_))) {
                let values = nodes
                    .into_iter()
                    .map(|n| match n {
                        Node::Const(v) => v,
                        _ => Value::Null,
                    })
                    .collect();
                Ok(Node::Const(Value::Array(values)))
            } else {
                Ok(Node::Array(nodes))
            }
        }
        Value::Object(map) if map.len() == 1 => match map.iter().next() {
            Some((op, values)) => compile_op(op, values, &Path::Key(path, op), depth + 1),
            None => Ok(Node::Const(Value::Null)),
        },
        Value::Object(_) => {
            check_literal(rule, path, depth)?;
            Ok(Node::Const(rule.clone()))
        }
        other => Ok(Node::Const(other.clone())),
    }
}

/// Compile the arguments of an operator: an array is the argument list, anything else is the
/// single argument (json-logic-js wraps it).
fn compile_args(values: &Value, path: &Path<'_>, depth: usize) -> Result<Vec<Node>, RuleError> {
    match values {
        Value::Array(items) => {
            if depth > MAX_RULE_DEPTH {
                return Err(too_deep(path));
            }
            let mut nodes = Vec::with_capacity(items.len());
            for (i, it) in items.iter().enumerate() {
                nodes.push(compile_node(it, &Path::Index(path, i), depth + 1)?);
            }
            Ok(nodes)
        }
        single => Ok(vec![compile_node(single, path, depth)?]),
    }
}

fn compile_op(op: &str, values: &Value, path: &Path<'_>, depth: usize) -> Result<Node, RuleError> {
    let iter_kind = match op {
        "map" => Some(IterKind::Map),
        "filter" => Some(IterKind::Filter),
        "all" => Some(IterKind::All),
        "none" => Some(IterKind::None),
        "some" => Some(IterKind::Some),
        "reduce" => Some(IterKind::Reduce),
        _ => None,
    };
    let known = iter_kind.is_some() || matches!(op, "var" | "if" | "?:" | "and" | "or") || lookup_op(op).is_some();
    if !known {
        return Err(RuleError::new(path.render(), format!("unrecognized operation {op:?}")));
    }
    let args = compile_args(values, path, depth)?;
    if let Some(kind) = iter_kind {
        let mut it = args.into_iter();
        let src = it.next();
        let body = it.next();
        let init = if kind == IterKind::Reduce { it.next() } else { None };
        return Ok(Node::Iter(kind, Box::new(IterNode { src, body, init })));
    }
    Ok(match op {
        "var" => compile_var(args),
        "if" | "?:" => Node::If(args),
        "and" => Node::And(args),
        "or" => Node::Or(args),
        "sem_ver" => fold_sem_ver(args),
        _ => match lookup_op(op) {
            Some(o) => Node::Op(o, args),
            None => return Err(RuleError::new(path.render(), format!("unrecognized operation {op:?}"))),
        },
    })
}

fn compile_var(args: Vec<Node>) -> Node {
    if args.len() > 2 {
        return Node::VarDyn(args);
    }
    let path = match args.first() {
        None => VarPath::Whole,
        Some(Node::Const(Value::Null)) => VarPath::Whole,
        Some(Node::Const(Value::String(s))) if s.is_empty() => VarPath::Whole,
        Some(Node::Const(v)) => VarPath::Segs(jsnum::value_to_js_string(v).split('.').map(Seg::new).collect()),
        Some(_) => return Node::VarDyn(args),
    };
    let default = args.into_iter().nth(1);
    Node::Var(Box::new(VarNode { path, default }))
}

#[cfg(test)]
mod tests;
