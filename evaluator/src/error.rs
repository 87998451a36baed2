//! Error types of the evaluator layer and the evaluation budget.

use std::fmt;

/// A rule or snapshot that cannot be compiled. `path` is a JSONPath-like pointer to the node
/// that is wrong (for example `$.flags[3].targeting.rules[0].filter.filters[1].operator`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub path: String,
    pub message: String,
}

impl RuleError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for RuleError {}

/// Failures while evaluating an already-valid rule against hostile data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalError {
    /// The step or size budget ran out (JSON Logic bombs: huge `map`/`reduce`, deep recursion).
    Budget(String),
    /// Input that cannot be evaluated at all (wrong shape, unknown operator in a one-shot rule).
    Invalid(String),
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::Budget(m) => write!(f, "evaluation budget exceeded: {m}"),
            EvalError::Invalid(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for EvalError {}

impl From<RuleError> for EvalError {
    fn from(e: RuleError) -> Self {
        EvalError::Invalid(e.to_string())
    }
}

/// Maximum nesting depth of a rule tree (filters, JSON Logic expressions).
pub const MAX_RULE_DEPTH: usize = 64;
/// Maximum nesting depth of data (contexts, payloads, users).
pub const MAX_DATA_DEPTH: usize = 128;
/// Default number of evaluation steps one call may take.
pub const DEFAULT_STEP_BUDGET: u64 = 2_000_000;
/// Largest value (in elements / bytes, roughly) one evaluation may build.
pub const MAX_VALUE_SIZE: usize = 1 << 20;

/// Counts evaluation steps so that a hostile rule/data pair terminates quickly.
#[derive(Debug, Clone)]
pub struct Budget {
    remaining: u64,
}

impl Budget {
    pub fn new(steps: u64) -> Self {
        Self { remaining: steps }
    }

    /// Spend `n` steps; fails once the budget is exhausted.
    #[inline]
    pub fn spend(&mut self, n: u64) -> Result<(), EvalError> {
        if self.remaining < n {
            self.remaining = 0;
            return Err(EvalError::Budget("too many evaluation steps".into()));
        }
        self.remaining -= n;
        Ok(())
    }

    /// Fails when a value being built would exceed [`MAX_VALUE_SIZE`].
    #[inline]
    pub fn check_size(&self, size: usize) -> Result<(), EvalError> {
        if size > MAX_VALUE_SIZE {
            return Err(EvalError::Budget(format!("value of size {size} exceeds {MAX_VALUE_SIZE}")));
        }
        Ok(())
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self::new(DEFAULT_STEP_BUDGET)
    }
}
