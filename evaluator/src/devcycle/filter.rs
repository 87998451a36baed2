//! Audience filters (`segmentation.js` of @devcycle/bucketing): compiled once, evaluated with
//! the reference's exact semantics, including the evaluation-reason strings.

use super::path::{index_path, key_path, truthy, truthy_opt};
use super::version::{compare_parts, parse_parts, parse_user_version, strip_version, Parts};
use crate::error::{RuleError, MAX_RULE_DEPTH};
use crate::jsnum::{json_number_to_f64, value_to_js_string};
use crate::member;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;

/// `EVAL_REASON_DETAILS` of @devcycle/types.
pub(crate) mod detail {
    pub const ALL_USERS: &str = "All Users";
    pub const AUDIENCE_MATCH: &str = "Audience Match";
    pub const NOT_IN_AUDIENCE: &str = "Not in Audience";
    pub const OPT_IN: &str = "Opt-In";
    pub const NOT_OPTED_IN: &str = "Not Opt-In";
    pub const USER_ID: &str = "User ID";
    pub const EMAIL: &str = "Email";
    pub const COUNTRY: &str = "Country";
    pub const PLATFORM: &str = "Platform";
    pub const PLATFORM_VERSION: &str = "Platform Version";
    pub const APP_VERSION: &str = "App Version";
    pub const DEVICE_MODEL: &str = "Device Model";
    pub const CUSTOM_DATA: &str = "Custom Data";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparator {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Exist,
    NotExist,
    Contain,
    NotContain,
    StartWith,
    NotStartWith,
    EndWith,
    NotEndWith,
}

impl Comparator {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "=" => Self::Eq,
            "!=" => Self::Ne,
            ">" => Self::Gt,
            ">=" => Self::Ge,
            "<" => Self::Lt,
            "<=" => Self::Le,
            "exist" => Self::Exist,
            "!exist" => Self::NotExist,
            "contain" => Self::Contain,
            "!contain" => Self::NotContain,
            "startWith" => Self::StartWith,
            "!startWith" => Self::NotStartWith,
            "endWith" => Self::EndWith,
            "!endWith" => Self::NotEndWith,
            _ => return None,
        })
    }
}

/// How a group combines its filters. `Implicit` is a top-level group without an `operator`:
/// it requires every filter (like `and`) but builds its reason the way `or` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupOp {
    And,
    Or,
    Implicit,
}

/// A compiled filter node.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// An operator object. No filters at all never matches.
    Group {
        op: GroupOp,
        children: Box<[Node]>,
    },
    All,
    OptIn,
    /// `=` (`equal`) or `!=` over audiences, resolved to indexes (`None`: unknown id).
    AudienceMatch {
        equal: bool,
        audiences: Box<[Option<usize>]>,
    },
    User(Box<UserCond>),
}

impl Node {
    pub(crate) fn empty_group() -> Self {
        Node::Group { op: GroupOp::Implicit, children: Box::default() }
    }

    /// Whether an `optIn` filter appears in this tree (not following audience references).
    pub(crate) fn has_opt_in(&self) -> bool {
        match self {
            Node::Group { children, .. } => children.iter().any(Node::has_opt_in),
            Node::OptIn => true,
            _ => false,
        }
    }
}

/// A `user` filter.
#[derive(Debug, Clone)]
pub(crate) struct UserCond {
    test: Test,
    /// The reason detail reported when the filter passes.
    detail: Cow<'static, str>,
}

#[derive(Debug, Clone)]
enum Test {
    /// `user_id`, `email`, `country`, `platform`, `deviceModel`.
    Str { field: &'static str, test: StrTest },
    /// `appVersion`, `platformVersion`.
    Version { field: &'static str, test: VersionTest },
    /// `customData` (merged with `privateCustomData`).
    Custom { key: Box<str>, test: CustomTest },
    /// `customData` without a usable `dataKey`: the reference lets everyone through.
    Always,
    /// `ip`: the reference has no filter function for it.
    Never,
}

/// `checkStringsFilter` against precomputed filter values. `None` lists stand for the
/// reference's `values === null` (missing, not an array, or empty once nulls are removed).
#[derive(Debug, Clone)]
enum StrTest {
    In(Option<Box<[Box<str>]>>),
    NotIn(Option<Box<[Box<str>]>>),
    Exist,
    NotExist,
    Contain(Option<Box<[Needle]>>),
    NotContain(Option<Box<[Needle]>>),
    StartWith(Option<Box<[Box<str>]>>),
    NotStartWith(Option<Box<[Box<str>]>>),
    EndWith(Option<Box<[Box<str>]>>),
    NotEndWith(Option<Box<[Box<str>]>>),
    /// `>`, `>=`, `<`, `<=` fall through the reference's switch: true for any string.
    IsString,
}

/// A `contain` value: lodash `includes(string, value)` searches `String(value)`, and the
/// reference keeps the first hit only if that value is truthy (`!!find(...)`).
#[derive(Debug, Clone)]
struct Needle {
    text: Box<str>,
    truthy: bool,
}

#[derive(Debug, Clone)]
enum VersionTest {
    /// `=`: exact string comparison.
    Exact(StrTest),
    /// `!=`: no filter version equal to the raw user version (parts of raw filter versions).
    NotEqual(Option<Box<[Option<Parts>]>>),
    /// `>`, `>=`, `<`, `<=` on prerelease-stripped versions.
    Compare { gt: bool, eq: bool, lt: bool, versions: Option<Box<[Option<Parts>]>> },
    /// Every other comparator never matches a version.
    Never,
}

#[derive(Debug, Clone)]
enum CustomTest {
    Exist,
    NotExist,
    /// The first filter value decides which comparison applies; the user value must have the
    /// same JSON type, else only `!=` against a falsy/missing value passes (`ne_fallback`).
    Typed {
        kind: CustomKind,
        ne_fallback: bool,
    },
}

#[derive(Debug, Clone)]
enum CustomKind {
    Str(StrTest),
    Num(NumTest),
    Bool(BoolTest),
    Other,
}

/// `checkNumberFilter` for a number user value; non-number filter values never match.
#[derive(Debug, Clone)]
struct NumTest {
    op: Option<Comparator>,
    values: Box<[Option<f64>]>,
}

/// `checkBooleanFilter`: `=`/`contain` and `!=`/`!contain` on the boolean filter values.
#[derive(Debug, Clone)]
struct BoolTest {
    /// `Some(true)` for membership, `Some(false)` for non-membership, `None` never matches.
    member: Option<bool>,
    values: Box<[bool]>,
}

impl StrTest {
    fn compile(cmp: Comparator, values: Option<&[&Value]>) -> Self {
        let strings = || -> Option<Box<[Box<str>]>> {
            values.map(|vs| vs.iter().filter_map(|v| v.as_str()).map(Box::from).collect())
        };
        let needles = || -> Option<Box<[Needle]>> {
            values
                .map(|vs| vs.iter().map(|v| Needle { text: value_to_js_string(v).into(), truthy: truthy(v) }).collect())
        };
        match cmp {
            Comparator::Eq => StrTest::In(strings()),
            Comparator::Ne => StrTest::NotIn(strings()),
            Comparator::Exist => StrTest::Exist,
            Comparator::NotExist => StrTest::NotExist,
            Comparator::Contain => StrTest::Contain(needles()),
            Comparator::NotContain => StrTest::NotContain(needles()),
            Comparator::StartWith => StrTest::StartWith(strings()),
            Comparator::NotStartWith => StrTest::NotStartWith(strings()),
            Comparator::EndWith => StrTest::EndWith(strings()),
            Comparator::NotEndWith => StrTest::NotEndWith(strings()),
            Comparator::Gt | Comparator::Ge | Comparator::Lt | Comparator::Le => StrTest::IsString,
        }
    }

    /// `s` is the user value if it is a string.
    fn eval(&self, s: Option<&str>) -> bool {
        fn contains(needles: &[Needle], s: &str) -> bool {
            needles.iter().find(|n| s.contains(&*n.text)).is_some_and(|n| n.truthy)
        }
        fn prefix(values: &[Box<str>], s: &str) -> bool {
            values.iter().find(|v| s.starts_with(&***v)).is_some_and(|v| !v.is_empty())
        }
        fn suffix(values: &[Box<str>], s: &str) -> bool {
            values.iter().find(|v| s.ends_with(&***v)).is_some_and(|v| !v.is_empty())
        }
        /// `!!values && (!isString(s) || !test(values, s))`.
        fn negated<T>(values: &Option<Box<[T]>>, s: Option<&str>, test: fn(&[T], &str) -> bool) -> bool {
            match (values, s) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(vs), Some(s)) => !test(vs, s),
            }
        }
        /// `!!values && isString(s) && test(values, s)`.
        fn positive<T>(values: &Option<Box<[T]>>, s: Option<&str>, test: fn(&[T], &str) -> bool) -> bool {
            match (values, s) {
                (Some(vs), Some(s)) => test(vs, s),
                _ => false,
            }
        }
        fn member(values: &[Box<str>], s: &str) -> bool {
            values.iter().any(|v| &**v == s)
        }
        match self {
            StrTest::In(vs) => positive(vs, s, member),
            StrTest::NotIn(vs) => s.is_some() && negated(vs, s, member),
            StrTest::Exist => s.is_some_and(|s| !s.is_empty()),
            StrTest::NotExist => !s.is_some_and(|s| !s.is_empty()),
            StrTest::Contain(ns) => positive(ns, s, contains),
            StrTest::NotContain(ns) => negated(ns, s, contains),
            StrTest::StartWith(vs) => positive(vs, s, prefix),
            StrTest::NotStartWith(vs) => negated(vs, s, prefix),
            StrTest::EndWith(vs) => positive(vs, s, suffix),
            StrTest::NotEndWith(vs) => negated(vs, s, suffix),
            StrTest::IsString => s.is_some(),
        }
    }
}

impl VersionTest {
    fn compile(cmp: Comparator, values: Option<&[&Value]>) -> Self {
        let versions = |strip: bool| -> Option<Box<[Option<Parts>]>> {
            values.map(|vs| {
                vs.iter()
                    .filter_map(|v| v.as_str())
                    .map(|s| if strip { parse_parts(&strip_version(s)) } else { parse_parts(s) })
                    .collect()
            })
        };
        match cmp {
            Comparator::Eq => VersionTest::Exact(StrTest::compile(cmp, values)),
            Comparator::Ne => VersionTest::NotEqual(versions(false)),
            Comparator::Gt | Comparator::Ge | Comparator::Lt | Comparator::Le => VersionTest::Compare {
                gt: matches!(cmp, Comparator::Gt | Comparator::Ge),
                eq: matches!(cmp, Comparator::Ge | Comparator::Le),
                lt: matches!(cmp, Comparator::Lt | Comparator::Le),
                versions: versions(true),
            },
            _ => VersionTest::Never,
        }
    }

    fn eval(&self, v: Option<&Value>) -> bool {
        let raw = match (self, v) {
            (VersionTest::Exact(t), _) => return t.eval(v.and_then(Value::as_str)),
            (VersionTest::Never, _) => return false,
            // A missing or empty version never passes; the reference throws on non-strings.
            (_, Some(Value::String(s))) if !s.is_empty() => s.as_str(),
            _ => return false,
        };
        match self {
            VersionTest::NotEqual(Some(versions)) => {
                let user = parse_user_version(raw);
                let equal =
                    user.is_some_and(|u| versions.iter().flatten().any(|f| compare_parts(&u, f) == Ordering::Equal));
                !equal
            }
            VersionTest::Compare { gt, eq, lt, versions: Some(versions) } => {
                let Some(user) = parse_user_version(&strip_version(raw)) else {
                    return false;
                };
                versions.iter().flatten().any(|f| match compare_parts(&user, f) {
                    Ordering::Greater => *gt,
                    Ordering::Equal => *eq,
                    Ordering::Less => *lt,
                })
            }
            _ => false,
        }
    }
}

impl NumTest {
    fn eval(&self, num: f64) -> bool {
        let mut numbers = self.values.iter();
        match self.op {
            Some(Comparator::Ne) => numbers.all(|f| f.is_some_and(|f| num != f)),
            Some(op) => numbers.flatten().any(|&f| match op {
                Comparator::Eq => num == f,
                Comparator::Gt => num > f,
                Comparator::Ge => num >= f,
                Comparator::Lt => num < f,
                Comparator::Le => num <= f,
                _ => false,
            }),
            None => false,
        }
    }
}

impl BoolTest {
    fn eval(&self, b: bool) -> bool {
        self.member.is_some_and(|member| self.values.contains(&b) == member)
    }
}

impl CustomTest {
    fn compile(cmp: Comparator, values: Option<&[&Value]>) -> Self {
        match cmp {
            Comparator::Exist => return CustomTest::Exist,
            Comparator::NotExist => return CustomTest::NotExist,
            _ => {}
        }
        let kind = match values.and_then(|vs| vs.first()) {
            Some(Value::String(_)) => CustomKind::Str(StrTest::compile(cmp, values)),
            Some(Value::Number(_)) => CustomKind::Num(NumTest {
                op: matches!(
                    cmp,
                    Comparator::Eq | Comparator::Ne | Comparator::Gt | Comparator::Ge | Comparator::Lt | Comparator::Le
                )
                .then_some(cmp),
                values: values.unwrap_or_default().iter().map(|v| v.as_number().map(json_number_to_f64)).collect(),
            }),
            Some(Value::Bool(_)) => CustomKind::Bool(BoolTest {
                member: match cmp {
                    Comparator::Eq | Comparator::Contain => Some(true),
                    Comparator::Ne | Comparator::NotContain => Some(false),
                    _ => None,
                },
                values: values.unwrap_or_default().iter().filter_map(|v| v.as_bool()).collect(),
            }),
            _ => CustomKind::Other,
        };
        CustomTest::Typed { kind, ne_fallback: cmp == Comparator::Ne }
    }

    fn eval(&self, v: Option<&Value>) -> bool {
        // `checkValueExists`: not undefined, null or "" (JSON has no NaN).
        fn exists(v: Option<&Value>) -> bool {
            match v {
                None | Some(Value::Null) => false,
                Some(Value::String(s)) => !s.is_empty(),
                Some(_) => true,
            }
        }
        match self {
            CustomTest::Exist => exists(v),
            CustomTest::NotExist => !exists(v),
            CustomTest::Typed { kind, ne_fallback } => match (kind, v) {
                (CustomKind::Str(t), Some(Value::String(s))) => t.eval(Some(s)),
                (CustomKind::Num(t), Some(Value::Number(n))) => t.eval(json_number_to_f64(n)),
                (CustomKind::Bool(t), Some(Value::Bool(b))) => t.eval(*b),
                _ => *ne_fallback && !truthy_opt(v),
            },
        }
    }
}

/// The user's custom data value for `key`: `{...customData, ...privateCustomData}[key]`.
fn custom_value<'a>(user: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    let field = |name: &str| member::get(user, name).and_then(Value::as_object).and_then(|o| member::get(o, key));
    field("privateCustomData").or_else(|| field("customData"))
}

impl UserCond {
    fn compile(obj: &Map<String, Value>, path: &str) -> Result<Self, RuleError> {
        let sub_path = key_path(path, "subType");
        let sub_type = match obj.get("subType") {
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(RuleError::new(sub_path, "must be a string")),
            None => return Err(RuleError::new(sub_path, "is required for a user filter")),
        };
        let cmp_path = key_path(path, "comparator");
        let cmp = match obj.get("comparator") {
            Some(Value::String(s)) => {
                Comparator::parse(s).ok_or_else(|| RuleError::new(&cmp_path, format!("unknown comparator {s:?}")))?
            }
            Some(_) => return Err(RuleError::new(cmp_path, "must be a string")),
            None => return Err(RuleError::new(cmp_path, "is required")),
        };
        // `getFilterValues`: the array without null entries, or nothing when that is empty.
        let values: Option<Vec<&Value>> = match obj.get("values") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => {
                let kept: Vec<&Value> = items.iter().filter(|v| !v.is_null()).collect();
                (!kept.is_empty()).then_some(kept)
            }
            Some(_) => return Err(RuleError::new(key_path(path, "values"), "must be an array")),
        };
        let values = values.as_deref();
        let string = |field: &'static str, detail: &'static str| UserCond {
            test: Test::Str { field, test: StrTest::compile(cmp, values) },
            detail: Cow::Borrowed(detail),
        };
        let version = |field: &'static str, detail: &'static str| UserCond {
            test: Test::Version { field, test: VersionTest::compile(cmp, values) },
            detail: Cow::Borrowed(detail),
        };
        Ok(match sub_type {
            "user_id" => string("user_id", detail::USER_ID),
            "email" => string("email", detail::EMAIL),
            "country" => string("country", detail::COUNTRY),
            "platform" => string("platform", detail::PLATFORM),
            "deviceModel" => string("deviceModel", detail::DEVICE_MODEL),
            "appVersion" => version("appVersion", detail::APP_VERSION),
            "platformVersion" => version("platformVersion", detail::PLATFORM_VERSION),
            "ip" => UserCond { test: Test::Never, detail: Cow::Borrowed("") },
            "customData" => {
                let key_path_ = key_path(path, "dataKey");
                // The reason prints `${filter.dataKey}` whatever it is.
                let (key, shown) = match obj.get("dataKey") {
                    None => (None, "undefined".to_owned()),
                    Some(Value::Null) => (None, "null".to_owned()),
                    Some(Value::String(s)) => ((!s.is_empty()).then(|| Box::from(s.as_str())), s.clone()),
                    Some(_) => return Err(RuleError::new(key_path_, "must be a string")),
                };
                match obj.get("dataKeyType") {
                    None | Some(Value::Null | Value::String(_)) => {}
                    Some(_) => return Err(RuleError::new(key_path(path, "dataKeyType"), "must be a string")),
                }
                let detail = Cow::Owned(format!("{} -> {shown}", detail::CUSTOM_DATA));
                match key {
                    Some(key) => {
                        UserCond { test: Test::Custom { key, test: CustomTest::compile(cmp, values) }, detail }
                    }
                    None => UserCond { test: Test::Always, detail },
                }
            }
            other => return Err(RuleError::new(sub_path, format!("unknown subType {other:?}"))),
        })
    }

    pub(crate) fn matches(&self, user: &Map<String, Value>) -> bool {
        match &self.test {
            Test::Str { field, test } => test.eval(member::get(user, field).and_then(Value::as_str)),
            Test::Version { field, test } => test.eval(member::get(user, field)),
            Test::Custom { key, test } => test.eval(custom_value(user, key)),
            Test::Always => true,
            Test::Never => false,
        }
    }
}

/// Compiles filter trees. With `audience_ids` it resolves `audienceMatch` references and
/// records them (with the depth they occur at) for the caller's cycle and depth checks.
pub(crate) struct Compiler<'a> {
    audience_ids: Option<&'a HashMap<String, usize>>,
    /// `(audience index, depth of the audienceMatch node)` seen so far.
    pub refs: Vec<(usize, usize)>,
    /// Deepest node depth seen so far (the top group is depth 1).
    pub max_depth: usize,
}

impl<'a> Compiler<'a> {
    pub(crate) fn new(audience_ids: Option<&'a HashMap<String, usize>>) -> Self {
        Self { audience_ids, refs: Vec::new(), max_depth: 0 }
    }

    fn enter(&mut self, path: &str, depth: usize) -> Result<(), RuleError> {
        if depth > MAX_RULE_DEPTH {
            return Err(RuleError::new(path, format!("filters are nested deeper than {MAX_RULE_DEPTH} levels")));
        }
        self.max_depth = self.max_depth.max(depth);
        Ok(())
    }

    /// An operator object `{"operator": "and"|"or", "filters": [...]}`. At the top level a
    /// missing or falsy operator is allowed (the reference then requires every filter).
    pub(crate) fn group(&mut self, v: &Value, path: &str, depth: usize, top: bool) -> Result<Node, RuleError> {
        self.enter(path, depth)?;
        let obj = v.as_object().ok_or_else(|| RuleError::new(path, "must be an object"))?;
        let op = match obj.get("operator") {
            Some(Value::String(s)) if s == "and" => GroupOp::And,
            Some(Value::String(s)) if s == "or" => GroupOp::Or,
            v if top && !truthy_opt(v) => GroupOp::Implicit,
            _ => return Err(RuleError::new(key_path(path, "operator"), "must be \"and\" or \"or\"")),
        };
        let filters_path = key_path(path, "filters");
        let children = match obj.get("filters") {
            None | Some(Value::Null) => Box::default(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, f)| self.node(f, &index_path(&filters_path, i), depth + 1))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(RuleError::new(filters_path, "must be an array")),
        };
        Ok(Node::Group { op, children })
    }

    /// One entry of a `filters` array: a nested operator object (it has a truthy `operator`)
    /// or a filter of type `all`, `user`, `optIn` or `audienceMatch`.
    pub(crate) fn node(&mut self, v: &Value, path: &str, depth: usize) -> Result<Node, RuleError> {
        self.enter(path, depth)?;
        let obj = v.as_object().ok_or_else(|| RuleError::new(path, "must be an object"))?;
        if truthy_opt(obj.get("operator")) {
            return self.group(v, path, depth, false);
        }
        let type_path = key_path(path, "type");
        let kind = match obj.get("type") {
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(RuleError::new(type_path, "must be a string")),
            None => return Err(RuleError::new(type_path, "is required")),
        };
        match kind {
            "all" => Ok(Node::All),
            "optIn" => Ok(Node::OptIn),
            "user" => Ok(Node::User(Box::new(UserCond::compile(obj, path)?))),
            "audienceMatch" => {
                let Some(ids) = self.audience_ids else {
                    return Err(RuleError::new(
                        type_path,
                        "audienceMatch needs the config's audiences and is not allowed here",
                    ));
                };
                let equal = match obj.get("comparator") {
                    Some(Value::String(s)) if s == "=" => true,
                    Some(Value::String(s)) if s == "!=" => false,
                    _ => {
                        return Err(RuleError::new(
                            key_path(path, "comparator"),
                            "must be \"=\" or \"!=\" for audienceMatch",
                        ))
                    }
                };
                let list_path = key_path(path, "_audiences");
                let Some(Value::Array(items)) = obj.get("_audiences") else {
                    return Err(RuleError::new(list_path, "must be an array of audience ids"));
                };
                let mut audiences = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let id =
                        item.as_str().ok_or_else(|| RuleError::new(index_path(&list_path, i), "must be a string"))?;
                    let idx = ids.get(id).copied();
                    if let Some(idx) = idx {
                        self.refs.push((idx, depth));
                    }
                    audiences.push(idx);
                }
                Ok(Node::AudienceMatch { equal, audiences: audiences.into() })
            }
            other => Err(RuleError::new(type_path, format!("unknown filter type {other:?}"))),
        }
    }
}

/// A compiled audience of the config.
#[derive(Debug, Clone)]
pub(crate) struct Audience {
    pub filters: Node,
}

/// Per-bucketing memo of audience results and reasons (each is a pure function of the user,
/// and for `uses_opt_in` audiences also of the feature).
#[derive(Debug, Clone, Default)]
pub(crate) struct AudienceMemo {
    result: Option<bool>,
    reason: Option<String>,
}

/// What a filter evaluation reads.
pub(crate) struct Ctx<'a> {
    pub user: &'a Map<String, Value>,
    pub feature_id: &'a str,
    pub opt_in_enabled: bool,
    pub audiences: &'a [Audience],
    pub memo: &'a mut [AudienceMemo],
}

fn set(reason: &mut String, text: &str) {
    reason.clear();
    reason.push_str(text);
}

impl Node {
    /// `doesUserPassFilter` / `evaluateOperator(...).result`.
    pub(crate) fn eval(&self, cx: &mut Ctx<'_>) -> bool {
        match self {
            Node::Group { op, children } => {
                if children.is_empty() {
                    false
                } else if *op == GroupOp::Or {
                    children.iter().any(|c| c.eval(cx))
                } else {
                    children.iter().all(|c| c.eval(cx))
                }
            }
            Node::All => true,
            Node::OptIn => {
                cx.opt_in_enabled
                    && cx
                        .user
                        .get("optIns")
                        .and_then(Value::as_object)
                        .is_some_and(|o| truthy_opt(o.get(cx.feature_id)))
            }
            Node::AudienceMatch { equal, audiences } => {
                for a in audiences.iter() {
                    match a {
                        None => return false,
                        Some(i) if audience_result(*i, cx) => return *equal,
                        Some(_) => {}
                    }
                }
                !*equal
            }
            Node::User(c) => c.matches(cx.user),
        }
    }

    /// The `reasonDetails` that `evaluateOperator` returns for a group that passed.
    pub(crate) fn group_reason(&self, cx: &mut Ctx<'_>) -> String {
        let mut reason = String::new();
        let Node::Group { op, children } = self else {
            return reason;
        };
        let last = children.len().saturating_sub(1);
        for (i, child) in children.iter().enumerate() {
            // In `and` groups every filter passed; `or` stops at the first one that does.
            if *op == GroupOp::Or && !child.eval(cx) {
                if matches!(child, Node::OptIn) {
                    set(&mut reason, detail::NOT_OPTED_IN);
                }
                continue;
            }
            match child {
                Node::Group { .. } => {}
                Node::All => set(&mut reason, detail::ALL_USERS),
                Node::OptIn => set(&mut reason, detail::OPT_IN),
                Node::AudienceMatch { equal, audiences } => {
                    let text = audience_match_reason(*equal, audiences, cx);
                    set(&mut reason, &text);
                }
                Node::User(c) if *op == GroupOp::And => {
                    reason.push_str(&c.detail);
                    if i < last {
                        reason.push_str(" AND ");
                    }
                }
                Node::User(c) => set(&mut reason, &c.detail),
            }
            if *op == GroupOp::Or {
                break;
            }
        }
        reason
    }
}

fn audience_result(i: usize, cx: &mut Ctx<'_>) -> bool {
    if let Some(r) = cx.memo.get(i).and_then(|m| m.result) {
        return r;
    }
    let audiences = cx.audiences;
    let r = audiences.get(i).is_some_and(|a| a.filters.eval(cx));
    if let Some(m) = cx.memo.get_mut(i) {
        m.result = Some(r);
    }
    r
}

fn audience_reason(i: usize, cx: &mut Ctx<'_>) -> String {
    if let Some(r) = cx.memo.get(i).and_then(|m| m.reason.clone()) {
        return r;
    }
    let audiences = cx.audiences;
    let r = audiences.get(i).map(|a| a.filters.group_reason(cx)).unwrap_or_default();
    if let Some(m) = cx.memo.get_mut(i) {
        m.reason = Some(r.clone());
    }
    r
}

/// `filterForAudienceMatch(...).reasonDetails` for a filter that passed.
fn audience_match_reason(equal: bool, audiences: &[Option<usize>], cx: &mut Ctx<'_>) -> String {
    if !equal {
        return detail::NOT_IN_AUDIENCE.to_owned();
    }
    for &i in audiences.iter().flatten() {
        if audience_result(i, cx) {
            let inner = audience_reason(i, cx);
            return if inner.is_empty() {
                detail::AUDIENCE_MATCH.to_owned()
            } else {
                format!("{} -> {inner}", detail::AUDIENCE_MATCH)
            };
        }
    }
    detail::AUDIENCE_MATCH.to_owned()
}

/// One DevCycle audience filter (`all`, `user` with any subType, `optIn`, or an `and`/`or`
/// group of those), compiled on its own so that another dialect's filter tree can embed it.
/// `audienceMatch` needs the config's audiences and is rejected.
#[derive(Debug, Clone)]
pub struct UserFilter {
    node: Node,
}

impl UserFilter {
    /// Compile the filter node at JSONPath `path`.
    pub fn compile(node: &Value, path: &str) -> Result<Self, RuleError> {
        let node = Compiler::new(None).node(node, path, 1)?;
        Ok(Self { node })
    }

    /// Whether a DevCycle-shaped user (`user_id`, `email`, `country`, `appVersion`,
    /// `platform`, `platformVersion`, `deviceModel`, `customData`, `privateCustomData`)
    /// passes. `optIn` filters never pass here (no feature has opt-in enabled).
    pub fn matches(&self, user: &Value) -> bool {
        self.matches_in_feature(user, "", false)
    }

    /// As [`matches`](Self::matches), for the feature `feature_id` (whose opt-in is enabled
    /// when `opt_in_enabled`): an `optIn` filter passes when `user.optIns[feature_id]` is truthy.
    pub fn matches_in_feature(&self, user: &Value, feature_id: &str, opt_in_enabled: bool) -> bool {
        let empty = Map::new();
        let user = user.as_object().unwrap_or(&empty);
        let mut cx = Ctx { user, feature_id, opt_in_enabled, audiences: &[], memo: &mut [] };
        self.node.eval(&mut cx)
    }
}
