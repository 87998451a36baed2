//! SemVer 2.0 (placeholder: being implemented).
use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version;

/// flagd-style parse: one leading `v`/`V`, short forms `1` and `1.2`.
pub fn parse_loose(_s: &str) -> Option<Version> {
    None
}

/// Compare two version strings (loose parse); Err names the invalid side.
pub fn compare_str(_a: &str, _b: &str) -> Result<Ordering, String> {
    Err("not implemented".into())
}
