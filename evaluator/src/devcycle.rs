//! DevCycle bucketing (placeholder: being implemented).
use crate::error::{EvalError, RuleError};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Config;

impl Config {
    pub fn compile(_config: &Value, path: &str) -> Result<Self, RuleError> {
        Err(RuleError::new(path, "not implemented"))
    }
    pub fn bucket(&self, _user: &Value, _now_ms: i64) -> Value {
        Value::Null
    }
}

#[derive(Debug, Clone)]
pub struct UserFilter;

impl UserFilter {
    pub fn compile(_node: &Value, path: &str) -> Result<Self, RuleError> {
        Err(RuleError::new(path, "not implemented"))
    }
    pub fn matches(&self, _user: &Value) -> bool {
        false
    }
}

pub fn bucket(_config: &Value, _user: &Value, _now_ms: i64) -> Result<Value, EvalError> {
    Err(EvalError::Invalid("not implemented".into()))
}
