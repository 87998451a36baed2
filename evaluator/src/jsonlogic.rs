//! JSON Logic (placeholder: being implemented).
use crate::error::{Budget, EvalError, RuleError};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Logic;

impl Logic {
    pub fn compile(_rule: &Value, path: &str) -> Result<Self, RuleError> {
        Err(RuleError::new(path, "not implemented"))
    }
    pub fn eval(&self, _data: &Value, _budget: &mut Budget) -> Result<Value, EvalError> {
        Err(EvalError::Invalid("not implemented".into()))
    }
}

pub fn apply(_rule: &Value, _data: &Value) -> Result<Value, EvalError> {
    Err(EvalError::Invalid("not implemented".into()))
}

pub fn truthy(_v: &Value) -> bool {
    false
}
