//! The `evaluator._evaluator` extension module: conversions, exceptions and entry points.
//!
//! Every entry point runs inside [`guard`], so a Rust panic becomes `EvaluatorError` instead of
//! crossing into Python.

use crate::edge_devcycle::KeyKind;
use crate::error::{EvalError, RuleError as CoreRuleError, MAX_DATA_DEPTH};
use crate::snapshot::{self, Context, FlagResult, Options};
use crate::{context, devcycle, hash, jsonlogic, ofrep, semver};
use pyo3::create_exception;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

thread_local! {
    /// The answer buffer of this thread's evaluations: an answer is written here and copied once
    /// into its Python bytes, so a worker allocates its buffer once instead of growing a new one
    /// (tens of kB for a W2 answer) per request.
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Buffers above this are dropped after use (a 100,000-flag answer should not stay resident).
const BUFFER_KEEP: usize = 1 << 20;

/// Run `write` on this thread's empty answer buffer and return what `finish` makes of it.
fn with_buffer<R>(write: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    BUFFER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut out) => {
            out.clear();
            let r = write(&mut out);
            if out.capacity() > BUFFER_KEEP {
                *out = Vec::new();
            }
            r
        }
        // Re-entered (not expected: nothing inside calls back into Python): a buffer of its own.
        Err(_) => write(&mut Vec::new()),
    })
}

create_exception!(_evaluator, EvaluatorError, PyValueError, "Base class of evaluator errors.");
create_exception!(
    _evaluator,
    RuleError,
    EvaluatorError,
    "A rule or snapshot that does not compile; `.path` names the node."
);
create_exception!(_evaluator, BudgetExceededError, EvaluatorError, "Evaluation exceeded its step or size budget.");

fn guard<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err(EvaluatorError::new_err("internal evaluator error")),
    }
}

fn rule_error(py: Python<'_>, e: CoreRuleError) -> PyErr {
    let err = RuleError::new_err(format!("{}: {}", e.path, e.message));
    let value = err.value(py);
    let _ = value.setattr("path", e.path);
    let _ = value.setattr("reason", e.message);
    err
}

fn eval_error(e: EvalError) -> PyErr {
    match e {
        EvalError::Budget(m) => BudgetExceededError::new_err(m),
        EvalError::Invalid(m) => EvaluatorError::new_err(m),
    }
}

fn now_ms() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_millis() as f64)
}

/// Python object → JSON value. Rejects NaN/Infinity, non-string keys, lone surrogates, unknown
/// types and nesting deeper than `MAX_DATA_DEPTH`.
pub fn to_value(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    to_value_at(obj, 0)
}

/// A DevCycle user as the bucketing reads it: a dict, converted (`TypeError` otherwise).
fn devcycle_user(user: &Bound<'_, PyAny>) -> PyResult<Value> {
    let user = to_value(user)?;
    if !user.is_object() {
        return Err(PyTypeError::new_err("user must be a dict"));
    }
    Ok(user)
}

fn to_value_at(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > MAX_DATA_DEPTH {
        return Err(PyValueError::new_err(format!("value nested deeper than {MAX_DATA_DEPTH} levels")));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(s) = obj.downcast::<PyString>() {
        let s = s.to_str().map_err(|_| PyValueError::new_err("string is not valid Unicode (lone surrogate)"))?;
        return Ok(Value::String(s.to_owned()));
    }
    if let Ok(b) = obj.downcast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::Number(u.into()));
        }
        let f: f64 = obj.extract()?;
        return Number::from_f64(f).map(Value::Number).ok_or_else(|| PyValueError::new_err("integer too large"));
    }
    if let Ok(f) = obj.downcast::<PyFloat>() {
        return Number::from_f64(f.value())
            .map(Value::Number)
            .ok_or_else(|| PyValueError::new_err("NaN and Infinity are not valid JSON numbers"));
    }
    if let Ok(d) = obj.downcast::<PyDict>() {
        let mut m = Map::with_capacity(d.len());
        for (k, v) in d.iter() {
            let key = k.downcast::<PyString>().map_err(|_| PyTypeError::new_err("object keys must be strings"))?;
            let key = key.to_str().map_err(|_| PyValueError::new_err("key is not valid Unicode (lone surrogate)"))?;
            m.insert(key.to_owned(), to_value_at(&v, depth + 1)?);
        }
        return Ok(Value::Object(m));
    }
    if let Ok(l) = obj.downcast::<PyList>() {
        return l.iter().map(|x| to_value_at(&x, depth + 1)).collect::<PyResult<_>>().map(Value::Array);
    }
    if let Ok(t) = obj.downcast::<PyTuple>() {
        return t.iter().map(|x| to_value_at(&x, depth + 1)).collect::<PyResult<_>>().map(Value::Array);
    }
    Err(PyTypeError::new_err(format!("unsupported type {} in JSON value", obj.get_type().name()?)))
}

/// JSON value → Python object.
pub fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(m) => {
            let dict = PyDict::new(py);
            for (k, item) in m {
                dict.set_item(k, to_py(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

/// Flattened context pairs from a mapping or an iterable of `(name, value)` string pairs.
fn to_pairs(obj: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    let items = if let Ok(m) = obj.downcast::<PyMapping>() { m.items()?.into_any() } else { obj.clone() };
    let mut pairs = Vec::new();
    for item in items.try_iter()? {
        let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) =
            item?.extract().map_err(|_| PyTypeError::new_err("flat context items must be (name, value) pairs"))?;
        let name = k.downcast::<PyString>().map_err(|_| PyTypeError::new_err("flat context names must be strings"))?;
        let value =
            v.downcast::<PyString>().map_err(|_| PyTypeError::new_err("flat context values must be strings"))?;
        let name = name.to_str().map_err(|_| PyValueError::new_err("name is not valid Unicode"))?;
        let value = value.to_str().map_err(|_| PyValueError::new_err("value is not valid Unicode"))?;
        pairs.push((name.to_owned(), value.to_owned()));
    }
    Ok(pairs)
}

fn context_value(context: Option<&Bound<'_, PyAny>>) -> PyResult<Value> {
    match context {
        None => Ok(Value::Object(Map::new())),
        Some(c) if c.is_none() => Ok(Value::Object(Map::new())),
        Some(c) => match to_value(c)? {
            v @ Value::Object(_) => Ok(v),
            _ => Err(PyTypeError::new_err("context must be a dict")),
        },
    }
}

/// The `key_kind` argument: `"client"`, `"mobile"`, `"server"` or `None` (no `sdkVisibility`).
fn key_kind(kind: Option<&str>) -> PyResult<Option<KeyKind>> {
    kind.map(|k| KeyKind::parse(k).ok_or_else(|| PyValueError::new_err(format!("unknown key kind {k:?}")))).transpose()
}

/// A compiled environment snapshot.
#[pyclass(frozen, module = "evaluator._evaluator", name = "Snapshot")]
pub struct PySnapshot {
    inner: Arc<snapshot::Snapshot>,
}

fn flag_result<'py>(py: Python<'py>, key: &str, r: FlagResult) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("key", key)?;
    d.set_item("value", r.enabled)?;
    d.set_item("variant", r.variant)?;
    d.set_item("reason", r.reason)?;
    d.set_item("targetingVersion", r.targeting_version)?;
    match r.config {
        Some((k, payload)) => {
            let c = PyDict::new(py);
            c.set_item("key", k)?;
            c.set_item("payload", to_py(py, &payload)?)?;
            d.set_item("config", c)?;
        }
        None => d.set_item("config", py.None())?,
    }
    d.set_item("ruleEvaluationResults", r.rule_results)?;
    d.set_item("missingContextFields", r.missing)?;
    Ok(d)
}

#[pymethods]
impl PySnapshot {
    #[new]
    #[pyo3(signature = (data, format = "json"))]
    fn new(py: Python<'_>, data: &[u8], format: &str) -> PyResult<Self> {
        guard(|| {
            let compiled = match format {
                "json" => py.allow_threads(|| snapshot::Snapshot::from_json(data)),
                "msgpack" => py.allow_threads(|| snapshot::Snapshot::from_msgpack(data)),
                other => return Err(PyValueError::new_err(format!("unknown snapshot format {other:?}"))),
            };
            compiled.map(|s| Self { inner: Arc::new(s) }).map_err(|e| rule_error(py, e))
        })
    }

    /// A snapshot from the document's members beside `features` (`extras`, a JSON object) and
    /// its flags as stored entries (each `{"order", "definition", …}` as JSON), sorted by order.
    #[staticmethod]
    fn assemble(py: Python<'_>, extras: &[u8], entries: Vec<Bound<'_, PyBytes>>) -> PyResult<Self> {
        guard(|| {
            let raw: Vec<&[u8]> = entries.iter().map(|b| b.as_bytes()).collect();
            py.allow_threads(|| {
                let parsed = raw.iter().map(|b| snapshot::Entry::from_stored(b)).collect::<Result<Vec<_>, _>>()?;
                snapshot::Snapshot::assemble(extras, parsed)
            })
            .map(|s| Self { inner: Arc::new(s) })
            .map_err(|e| rule_error(py, e))
        })
    }

    /// This snapshot with `upserts` (stored entries, as for `assemble`) compiled in and the
    /// flags keyed `removed` left out; unchanged flags are shared, not recompiled. With `extras`
    /// (the document's members beside `features`, as for `assemble`) the document-wide members
    /// are replaced too: they compile, the flags do not.
    #[pyo3(signature = (upserts, removed, extras = None))]
    fn patch(
        &self,
        py: Python<'_>,
        upserts: Vec<Bound<'_, PyBytes>>,
        removed: Vec<String>,
        extras: Option<&[u8]>,
    ) -> PyResult<Self> {
        guard(|| {
            let raw: Vec<&[u8]> = upserts.iter().map(|b| b.as_bytes()).collect();
            let removed: Vec<&str> = removed.iter().map(String::as_str).collect();
            let inner = &self.inner;
            py.allow_threads(|| {
                let parsed = raw.iter().map(|b| snapshot::Entry::from_stored(b)).collect::<Result<Vec<_>, _>>()?;
                match extras {
                    Some(extras) => inner.patch_document(extras, parsed, &removed),
                    None => inner.patch(parsed, &removed),
                }
            })
            .map(|s| Self { inner: Arc::new(s) })
            .map_err(|e| rule_error(py, e))
        })
    }

    /// Whether this snapshot and `other` share flag `key`'s compiled form (a patch left it alone).
    fn shares_flag(&self, other: &PySnapshot, key: &str) -> bool {
        self.inner.shares_flag(&other.inner, key)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __contains__(&self, key: &str) -> bool {
        self.inner.flag_keys().any(|k| k == key)
    }

    fn flag_keys(&self) -> Vec<String> {
        self.inner.flag_keys().map(str::to_owned).collect()
    }

    /// The document's `features` array, as JSON bytes, from the flags' `stored` entries (as for
    /// `assemble`, in any order): `None` unless they hold every flag as compiled.
    fn definitions_json<'py>(&self, py: Python<'py>, stored: Vec<Bound<'py, PyBytes>>) -> Option<Bound<'py, PyBytes>> {
        let raw: Vec<&[u8]> = stored.iter().map(|b| b.as_bytes()).collect();
        let inner = &self.inner;
        let body = py.allow_threads(|| inner.definitions_json(stored_texts(&raw).iter().copied()))?;
        Some(PyBytes::new(py, &body))
    }

    /// The `features` array of `GET /features` (what Reflag SDKs evaluate locally), as JSON bytes,
    /// from the flags' `stored` entries (as for `assemble`, in any order): `None` unless they
    /// hold every flag as compiled (the store has moved on since). Releases the GIL.
    fn local_definitions_json<'py>(
        &self,
        py: Python<'py>,
        stored: Vec<Bound<'py, PyBytes>>,
    ) -> Option<Bound<'py, PyBytes>> {
        let raw: Vec<&[u8]> = stored.iter().map(|b| b.as_bytes()).collect();
        let inner = &self.inner;
        let body = py.allow_threads(|| inner.local_definitions_json(stored_texts(&raw).iter().copied()))?;
        Some(PyBytes::new(py, &body))
    }

    /// `(key, reason)` of every flag `GET /features` leaves out: remote evaluation only.
    fn remote_only(&self) -> Vec<(String, String)> {
        self.inner.remote_only().into_iter().map(|(k, r)| (k.into(), r)).collect()
    }

    /// The `features` object of `/features/evaluated` for a nested context, as JSON bytes.
    #[pyo3(signature = (context = None, *, enabled_only = false, debug = false, now_ms = None, key_kind = None))]
    fn evaluate_all<'py>(
        &self,
        py: Python<'py>,
        context: Option<&Bound<'py, PyAny>>,
        enabled_only: bool,
        debug: bool,
        now_ms: Option<f64>,
        key_kind: Option<&str>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        guard(|| {
            let ctx = context_value(context)?;
            let kind = self::key_kind(key_kind)?;
            let opts = Options { enabled_only, debug, now_ms: now_ms.unwrap_or_else(self::now_ms), kind };
            Ok(with_buffer(|out| {
                self.inner.evaluate_all::<String>(&Context::Nested(&ctx), opts, out);
                PyBytes::new(py, out)
            }))
        })
    }

    /// Same as `evaluate_all` for an already-flattened context (`context.*` query parameters
    /// with the prefix removed): a mapping or `(name, value)` pairs, later pairs win.
    #[pyo3(signature = (pairs, *, enabled_only = false, debug = false, now_ms = None, key_kind = None))]
    fn evaluate_all_flat<'py>(
        &self,
        py: Python<'py>,
        pairs: &Bound<'py, PyAny>,
        enabled_only: bool,
        debug: bool,
        now_ms: Option<f64>,
        key_kind: Option<&str>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        guard(|| {
            let pairs = to_pairs(pairs)?;
            let kind = self::key_kind(key_kind)?;
            let opts = Options { enabled_only, debug, now_ms: now_ms.unwrap_or_else(self::now_ms), kind };
            Ok(with_buffer(|out| {
                self.inner.evaluate_all(&Context::Flat(&pairs), opts, out);
                PyBytes::new(py, out)
            }))
        })
    }

    /// Evaluate many nested contexts with the GIL released; one JSON body per context.
    #[pyo3(signature = (contexts, *, enabled_only = false, debug = false, now_ms = None, key_kind = None))]
    fn evaluate_batch<'py>(
        &self,
        py: Python<'py>,
        contexts: &Bound<'py, PyAny>,
        enabled_only: bool,
        debug: bool,
        now_ms: Option<f64>,
        key_kind: Option<&str>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        guard(|| {
            let values = contexts.try_iter()?.map(|c| context_value(Some(&c?))).collect::<PyResult<Vec<Value>>>()?;
            let kind = self::key_kind(key_kind)?;
            let opts = Options { enabled_only, debug, now_ms: now_ms.unwrap_or_else(self::now_ms), kind };
            let inner = Arc::clone(&self.inner);
            let bodies = py.allow_threads(move || {
                catch_unwind(AssertUnwindSafe(|| {
                    values
                        .iter()
                        .map(|v| {
                            let mut out = Vec::new();
                            inner.evaluate_all::<String>(&Context::Nested(v), opts, &mut out);
                            out
                        })
                        .collect::<Vec<_>>()
                }))
            });
            let bodies = bodies.map_err(|_| EvaluatorError::new_err("internal evaluator error"))?;
            Ok(bodies.iter().map(|b| PyBytes::new(py, b)).collect())
        })
    }

    /// One flag for a nested context: `{key, value, variant, reason, targetingVersion, config,
    /// ruleEvaluationResults, missingContextFields}`, or `None` for an unknown key.
    /// A flag hidden from `key_kind` keys (`sdkVisibility`) is `None` too.
    #[pyo3(signature = (key, context = None, *, now_ms = None, key_kind = None))]
    fn evaluate_flag<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        context: Option<&Bound<'py, PyAny>>,
        now_ms: Option<f64>,
        key_kind: Option<&str>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        guard(|| {
            let kind = self::key_kind(key_kind)?;
            let ctx = context_value(context)?;
            let now = now_ms.unwrap_or_else(self::now_ms);
            let r = self.inner.evaluate_flag::<String>(key, &Context::Nested(&ctx), now, kind);
            r.map(|r| flag_result(py, key, r)).transpose()
        })
    }

    /// `evaluate_flag` for a flattened context.
    #[pyo3(signature = (key, pairs, *, now_ms = None, key_kind = None))]
    fn evaluate_flag_flat<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        pairs: &Bound<'py, PyAny>,
        now_ms: Option<f64>,
        key_kind: Option<&str>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        guard(|| {
            let kind = self::key_kind(key_kind)?;
            let pairs = to_pairs(pairs)?;
            let now = now_ms.unwrap_or_else(self::now_ms);
            let r = self.inner.evaluate_flag(key, &Context::Flat(&pairs), now, kind);
            r.map(|r| flag_result(py, key, r)).transpose()
        })
    }

    /// The OFREP bulk answer for a nested context (module `ofrep`): `{"flags":[...]`, then
    /// `tail` (further members, each with its leading comma), then `}`. `has_targeting_key`:
    /// the OFREP context named its subject; flags hidden from `key_kind` keys are left out.
    #[pyo3(signature = (context = None, *, flag_state_version, has_targeting_key, tail = None, now_ms = None, key_kind = None))]
    #[allow(clippy::too_many_arguments)]
    fn ofrep_all<'py>(
        &self,
        py: Python<'py>,
        context: Option<&Bound<'py, PyAny>>,
        flag_state_version: u64,
        has_targeting_key: bool,
        tail: Option<&[u8]>,
        now_ms: Option<f64>,
        key_kind: Option<&str>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        guard(|| {
            let ctx = context_value(context)?;
            let kind = self::key_kind(key_kind)?;
            let now_ms = now_ms.unwrap_or_else(self::now_ms);
            let opts = ofrep::Options { flag_state_version, has_targeting_key, now_ms, kind };
            Ok(with_buffer(|out| {
                self.inner.ofrep_all::<String>(&Context::Nested(&ctx), opts, tail.unwrap_or_default(), out);
                PyBytes::new(py, out)
            }))
        })
    }

    /// One flag's OFREP answer for a nested context: `(True, success object with tail before
    /// its closing brace)`, `(False, its TARGETING_KEY_MISSING failure object)`, or `None` for an
    /// unknown flag (or one hidden from `key_kind` keys).
    #[pyo3(signature = (key, context = None, *, flag_state_version, has_targeting_key, tail = None, now_ms = None, key_kind = None))]
    #[allow(clippy::too_many_arguments)]
    fn ofrep_flag<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        context: Option<&Bound<'py, PyAny>>,
        flag_state_version: u64,
        has_targeting_key: bool,
        tail: Option<&[u8]>,
        now_ms: Option<f64>,
        key_kind: Option<&str>,
    ) -> PyResult<Option<(bool, Bound<'py, PyBytes>)>> {
        guard(|| {
            let ctx = context_value(context)?;
            let kind = self::key_kind(key_kind)?;
            let now_ms = now_ms.unwrap_or_else(self::now_ms);
            let opts = ofrep::Options { flag_state_version, has_targeting_key, now_ms, kind };
            Ok(with_buffer(|out| {
                let ok =
                    self.inner.ofrep_flag::<String>(key, &Context::Nested(&ctx), opts, tail.unwrap_or_default(), out);
                ok.map(|ok| (ok, PyBytes::new(py, out)))
            }))
        })
    }

    /// The keys of the flags `sdkVisibility` hides from `key_kind` keys, in snapshot order.
    fn hidden_from(&self, key_kind: &str) -> PyResult<Vec<String>> {
        let kind = self::key_kind(Some(key_kind))?.ok_or_else(|| PyValueError::new_err("a key kind is required"))?;
        Ok(self.inner.hidden_from(kind).map(str::to_owned).collect())
    }

    /// `(flag or feature key, variation key, evaluations)` counted since the last call, on every
    /// route (`crate::counts`); each counter is reset as it is read.
    fn drain_counts(&self) -> Vec<(String, String, u32)> {
        self.inner.drain_counts().into_iter().map(|(f, v, n)| (f.to_owned(), v.to_owned(), n)).collect()
    }

    /// Per flag decided by DevCycle's bucketing: per target, whether serving from it is a SPLIT.
    fn devcycle_splits(&self) -> Vec<(String, Vec<bool>)> {
        self.inner.devcycle_splits().map(|(k, s)| (k.to_owned(), s.to_vec())).collect()
    }

    /// DevCycle bucketed config of the snapshot's `devcycle` section, or `None` without one;
    /// features `sdkVisibility` hides from `key_kind` keys are left out.
    #[pyo3(signature = (user, now_ms, *, key_kind = None))]
    fn devcycle_bucket<'py>(
        &self,
        py: Python<'py>,
        user: &Bound<'py, PyAny>,
        now_ms: i64,
        key_kind: Option<&str>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        guard(|| {
            let kind = self::key_kind(key_kind)?;
            let user = to_value(user)?;
            if !user.is_object() {
                return Err(PyTypeError::new_err("user must be a dict"));
            }
            self.inner.devcycle_bucket(&user, now_ms, kind).map(|v| to_py(py, &design_shape(v))).transpose()
        })
    }

    /// The answer bytes of a DevCycle route for one user (`devcycle::answer`): `part` is
    /// `config`, `variables`, `features`, `variable` (with `key`), `ofrep` or `ofrep_flag` (with
    /// `key`); features whose `_id` is in `hidden` are left out (`sdkVisibility`). `None`
    /// without a `devcycle` section, or for a variable the user is not served.
    #[pyo3(signature = (user, now_ms, part = "config", key = None, hidden = None))]
    fn devcycle_json<'py>(
        &self,
        py: Python<'py>,
        user: &Bound<'py, PyAny>,
        now_ms: i64,
        part: &str,
        key: Option<&str>,
        hidden: Option<HashSet<String>>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        guard(|| {
            let part = devcycle::Part::parse(part, key).map_err(PyValueError::new_err)?;
            let user = devcycle_user(user)?;
            let hidden = hidden.unwrap_or_default();
            let out = self.inner.devcycle_answer(&user, now_ms, part, &hidden);
            Ok(out.map(|bytes| PyBytes::new(py, &bytes)))
        })
    }

    /// One DevCycle variable's OFREP answer (`devcycle::ofrep_flag_answer`): the success object
    /// with `flagStateVersion` in its `metadata` and `tail` before its closing brace; `None`
    /// without a `devcycle` section or when the user is not served the variable.
    #[pyo3(signature = (user, now_ms, key, hidden = None, *, flag_state_version, tail = None))]
    #[allow(clippy::too_many_arguments)]
    fn devcycle_ofrep_flag<'py>(
        &self,
        py: Python<'py>,
        user: &Bound<'py, PyAny>,
        now_ms: i64,
        key: &str,
        hidden: Option<HashSet<String>>,
        flag_state_version: u64,
        tail: Option<&[u8]>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        guard(|| {
            let user = devcycle_user(user)?;
            let hidden = hidden.unwrap_or_default();
            let out = self.inner.devcycle_answer(&user, now_ms, devcycle::Part::OfrepFlag(key), &hidden);
            Ok(out.map(|flag| {
                PyBytes::new(py, &devcycle::ofrep_flag_answer(flag, flag_state_version, tail.unwrap_or_default()))
            }))
        })
    }
}

/// Reflag rollout hash of a string: 0..=100000.
#[pyfunction]
fn reflag_hash(value: &str) -> u32 {
    hash::reflag_hash(value)
}

/// Whether snapshots compiled from now on count their evaluations (on by default).
#[pyfunction]
fn set_counting(enabled: bool) {
    crate::counts::set_enabled(enabled);
}

/// MurmurHash3 x86 32-bit of the UTF-8 bytes of `data`, unsigned.
#[pyfunction]
#[pyo3(signature = (data, seed = 0))]
fn murmur3_32(data: &str, seed: u32) -> u32 {
    hash::murmur3_32(data.as_bytes(), seed)
}

/// The `(name, value)` pairs of a raw query string, as Starlette's `QueryParams` reads them.
#[pyfunction]
fn parse_query(qs: &[u8]) -> Vec<(String, String)> {
    crate::query::parse_query(qs)
}

/// The definitions' texts of stored flag entries (those that do not parse are left out).
fn stored_texts<'a>(raw: &[&'a [u8]]) -> Vec<&'a [u8]> {
    raw.iter()
        .filter_map(|b| snapshot::Entry::from_stored(b).ok())
        .filter_map(|e| match e.text {
            std::borrow::Cow::Borrowed(text) => Some(text),
            std::borrow::Cow::Owned(_) => None,
        })
        .collect()
}

/// XXH3-128 of `data` as 32 hex digits (ETags of evaluated answers).
#[pyfunction]
fn fingerprint(data: &[u8]) -> String {
    format!("{:032x}", hash::fingerprint(data))
}

/// `evaluateFlagRules` of `@reflag/flag-evaluation` 1.0.1.
#[pyfunction]
#[pyo3(signature = (flag_key, rules, context, *, now_ms = None))]
fn reflag_evaluate<'py>(
    py: Python<'py>,
    flag_key: &str,
    rules: &Bound<'py, PyAny>,
    context: &Bound<'py, PyAny>,
    now_ms: Option<f64>,
) -> PyResult<Bound<'py, PyDict>> {
    guard(|| {
        let rules = to_value(rules)?;
        let ctx = context_value(Some(context))?;
        let out = snapshot::evaluate_rules(flag_key, &rules, &ctx, now_ms.unwrap_or_else(self::now_ms))
            .map_err(|e| rule_error(py, e))?;
        let d = PyDict::new(py);
        d.set_item("value", out.value.as_ref().map(|v| to_py(py, v)).transpose()?)?;
        d.set_item("flagKey", flag_key)?;
        d.set_item("context", to_py(py, &Value::Object(context::flatten_all(&ctx)))?)?;
        d.set_item("ruleEvaluationResults", out.rule_results)?;
        d.set_item("reason", out.reason)?;
        d.set_item("missingContextFields", out.missing)?;
        Ok(d)
    })
}

/// DESIGN.md section 5 shape of a bucketed config: `variables` maps each key straight to its
/// value (DevCycle's own output nests it as `{_id, key, type, value}`).
fn design_shape(mut bucketed: Value) -> Value {
    if let Some(Value::Object(vars)) = bucketed.get_mut("variables") {
        for v in vars.values_mut() {
            if let Some(value) = v.get_mut("value").map(Value::take) {
                *v = value;
            }
        }
    }
    bucketed
}

/// DevCycle `generateBucketedConfig` for one user at `now_ms`.
#[pyfunction]
fn devcycle_bucket<'py>(
    py: Python<'py>,
    config: &Bound<'py, PyAny>,
    user: &Bound<'py, PyAny>,
    now_ms: i64,
) -> PyResult<Bound<'py, PyAny>> {
    guard(|| {
        let config = to_value(config)?;
        let user = to_value(user)?;
        let out = devcycle::bucket(&config, &user, now_ms).map_err(eval_error)?;
        to_py(py, &design_shape(out))
    })
}

/// JSON Logic `apply(rule, data)` with the flagd and Airborne operators.
#[pyfunction]
#[pyo3(signature = (rule, data = None))]
fn jsonlogic_apply<'py>(
    py: Python<'py>,
    rule: &Bound<'py, PyAny>,
    data: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    guard(|| {
        let rule = to_value(rule)?;
        let data = match data {
            Some(d) => to_value(d)?,
            None => Value::Null,
        };
        let logic = jsonlogic::Logic::compile(&rule, "$").map_err(|e| rule_error(py, e))?;
        let out = logic.eval(&data, &mut crate::error::Budget::default()).map_err(eval_error)?;
        to_py(py, &out)
    })
}

/// SemVer 2.0 precedence of two versions (`v` prefix and short forms accepted): -1, 0 or 1.
#[pyfunction]
fn semver_compare(a: &str, b: &str) -> PyResult<i32> {
    guard(|| semver::compare_str(a, b).map(|o| o as i32).map_err(PyValueError::new_err))
}

#[pymodule]
fn _evaluator(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("EvaluatorError", py.get_type::<EvaluatorError>())?;
    m.add("RuleError", py.get_type::<RuleError>())?;
    m.add("BudgetExceededError", py.get_type::<BudgetExceededError>())?;
    m.add_class::<PySnapshot>()?;
    m.add_function(wrap_pyfunction!(reflag_hash, m)?)?;
    m.add_function(wrap_pyfunction!(set_counting, m)?)?;
    m.add_function(wrap_pyfunction!(murmur3_32, m)?)?;
    m.add_function(wrap_pyfunction!(fingerprint, m)?)?;
    m.add_function(wrap_pyfunction!(parse_query, m)?)?;
    m.add_function(wrap_pyfunction!(reflag_evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(devcycle_bucket, m)?)?;
    m.add_function(wrap_pyfunction!(jsonlogic_apply, m)?)?;
    m.add_function(wrap_pyfunction!(semver_compare, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
