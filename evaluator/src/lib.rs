//! Feature-flag evaluator: Reflag filters, DevCycle targeting, JSON Logic (with flagd and
//! Airborne operators) and SemVer, compiled once per snapshot and evaluated many times.
//!
//! The crate is usable from Rust directly; with the `python` feature it is also the
//! `evaluator._evaluator` extension module.

pub mod context;
pub mod counts;
pub mod dates;
pub mod devcycle;
pub mod edge_devcycle;
pub mod error;
pub mod hash;
pub mod jsnum;
pub mod jsonlogic;
pub mod member;
pub mod ofrep;
pub mod query;
pub mod reflag;
pub mod reflag_sdk;
pub mod semver;
pub mod snapshot;

pub use error::{Budget, EvalError, RuleError};

#[cfg(feature = "python")]
mod python;
