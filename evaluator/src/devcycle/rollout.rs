//! Target rollouts (`getCurrentRolloutPercentage` / `doesUserPassRollout`).
//!
//! Rollout dates arrive as ISO strings in JSON configs; the reference compares them as `Date`
//! instants, so they are parsed once, with JavaScript `Date` semantics, to epoch milliseconds.

use super::path::{index_path, key_path};
use crate::dates::parse_date;
use crate::error::RuleError;
use crate::jsnum::json_number_to_f64;
use serde_json::{Map, Value};

/// Largest time value a JavaScript `Date` holds (ECMAScript TimeClip), in epoch milliseconds.
const MAX_TIME_MS: f64 = 8.64e15;

/// A rollout date: a date string as `new Date(string)` reads it (ISO 8601 on a UTC clock), or
/// a number of epoch milliseconds as `new Date(number)` takes it.
fn date_value(v: &Value) -> Result<f64, &'static str> {
    match v {
        Value::String(s) => parse_date(s).ok_or("must be an ISO-8601 date"),
        Value::Number(n) => {
            let t = json_number_to_f64(n).trunc();
            if t.is_finite() && t.abs() <= MAX_TIME_MS {
                Ok(t + 0.0)
            } else {
                Err("is outside the range of dates")
            }
        }
        _ => Err("must be an ISO-8601 date string"),
    }
}

/// A compiled rollout. Dates are epoch milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Rollout {
    /// Everyone from `start` on.
    Schedule { start: f64 },
    /// `gradual` and `stepped`: `start_pct` from `start`, then the stages.
    Staged { start_pct: f64, start: f64, stages: Box<[Stage]> },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stage {
    /// `discrete` stages jump; `linear` ones are interpolated towards.
    pub discrete: bool,
    pub date: f64,
    pub pct: f64,
}

impl Rollout {
    pub(crate) fn compile(obj: &Map<String, Value>, path: &str) -> Result<Self, RuleError> {
        let type_path = key_path(path, "type");
        let kind = match obj.get("type") {
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(RuleError::new(type_path, "must be a string")),
            None => return Err(RuleError::new(type_path, "is required")),
        };
        let start_path = key_path(path, "startDate");
        let start = match obj.get("startDate") {
            Some(v) => date_value(v).map_err(|m| RuleError::new(&start_path, m))?,
            None => return Err(RuleError::new(start_path, "is required")),
        };
        match kind {
            "schedule" => Ok(Rollout::Schedule { start }),
            "gradual" | "stepped" => {
                let pct_path = key_path(path, "startPercentage");
                let start_pct = match obj.get("startPercentage") {
                    Some(Value::Number(n)) => json_number_to_f64(n),
                    _ => return Err(RuleError::new(pct_path, "must be a number")),
                };
                let stages_path = key_path(path, "stages");
                let stages = match obj.get("stages") {
                    None | Some(Value::Null) => Box::default(),
                    Some(Value::Array(items)) => items
                        .iter()
                        .enumerate()
                        .map(|(i, s)| Stage::compile(s, &index_path(&stages_path, i)))
                        .collect::<Result<_, _>>()?,
                    Some(_) => return Err(RuleError::new(stages_path, "must be an array")),
                };
                Ok(Rollout::Staged { start_pct, start, stages })
            }
            _ => Err(RuleError::new(type_path, "must be \"schedule\", \"gradual\" or \"stepped\"")),
        }
    }

    /// The share of users (0..1) the rollout lets through at `now` (epoch ms).
    pub(crate) fn current_percentage(&self, now: f64) -> f64 {
        let (start_pct, start, stages) = match self {
            Rollout::Schedule { start } => return if now >= *start { 1.0 } else { 0.0 },
            Rollout::Staged { start_pct, start, stages } => (*start_pct, *start, stages),
        };
        // The last stage (in config order) that has begun, and the first that has not.
        let current = stages.iter().rev().find(|s| s.date <= now).map(|s| (s.pct, s.date));
        let next = stages.iter().find(|s| s.date > now);
        let (cur_pct, cur_date) = match current {
            Some(c) => c,
            None if start < now => (start_pct, start),
            None => return 0.0,
        };
        let next = match next {
            Some(n) if !n.discrete => n,
            _ => return cur_pct,
        };
        let progress = (now - cur_date) / (next.date - cur_date);
        if progress == 0.0 {
            return 0.0;
        }
        cur_pct + (next.pct - cur_pct) * progress
    }

    /// `doesUserPassRollout`: a zero (or NaN) percentage lets nobody through.
    pub(crate) fn passes(&self, bounded_hash: f64, now: f64) -> bool {
        let pct = self.current_percentage(now);
        pct != 0.0 && bounded_hash <= pct
    }
}

impl Stage {
    fn compile(v: &Value, path: &str) -> Result<Self, RuleError> {
        let obj = v.as_object().ok_or_else(|| RuleError::new(path, "must be an object"))?;
        let discrete = match obj.get("type") {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) if s == "linear" => false,
            Some(Value::String(s)) if s == "discrete" => true,
            Some(_) => return Err(RuleError::new(key_path(path, "type"), "must be \"linear\" or \"discrete\"")),
        };
        let date_path = key_path(path, "date");
        let date = match obj.get("date") {
            Some(v) => date_value(v).map_err(|m| RuleError::new(&date_path, m))?,
            None => return Err(RuleError::new(date_path, "is required")),
        };
        let pct = match obj.get("percentage") {
            Some(Value::Number(n)) => json_number_to_f64(n),
            _ => return Err(RuleError::new(key_path(path, "percentage"), "must be a number")),
        };
        Ok(Stage { discrete, date, pct })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DAY: f64 = 86_400_000.0;

    fn compile(v: Value) -> Result<Rollout, RuleError> {
        Rollout::compile(v.as_object().expect("object"), "$.rollout")
    }

    fn ms(s: &str) -> f64 {
        parse_date(s).expect("date")
    }

    #[test]
    fn dates_are_instants() {
        assert_eq!(date_value(&json!("2024-06-14T08:00:00.000Z")), Ok(1_718_352_000_000.0));
        assert_eq!(date_value(&json!("2024-06-14T10:00:00+02:00")), Ok(1_718_352_000_000.0));
        assert_eq!(date_value(&json!("2024-06-14")), Ok(1_718_323_200_000.0));
        assert_eq!(date_value(&json!(1_718_352_000_000i64)), Ok(1_718_352_000_000.0));
        assert_eq!(date_value(&json!(1.9)), Ok(1.0));
        assert!(date_value(&json!(9e15)).is_err());
        assert!(date_value(&json!(true)).is_err());
        assert!(date_value(&json!("soon")).is_err());
        // `new Date` rolls day 29..=31 over into the next month, as the reference does.
        assert_eq!(date_value(&json!("2023-02-29T00:00:00Z")), date_value(&json!("2023-03-01")));
    }

    #[test]
    fn schedule_opens_at_start() {
        let r = compile(json!({"type": "schedule", "startDate": "2024-06-14T08:00:00.000Z"})).expect("compiles");
        let start = ms("2024-06-14T08:00:00.000Z");
        assert_eq!(r.current_percentage(start - 1.0), 0.0);
        assert_eq!(r.current_percentage(start), 1.0);
        assert!(!r.passes(0.0, start - 1.0));
        assert!(r.passes(1.0, start));
    }

    #[test]
    fn gradual_without_stages_holds_start_percentage_after_start() {
        let r = compile(json!({"type": "gradual", "startPercentage": 0.3,
            "startDate": "2024-06-01T00:00:00Z"}))
        .expect("compiles");
        let start = ms("2024-06-01T00:00:00Z");
        // At exactly the start date `startDate < currentDate` is false: nobody yet.
        assert_eq!(r.current_percentage(start), 0.0);
        assert_eq!(r.current_percentage(start + 1.0), 0.3);
        assert!(r.passes(0.3, start + 1.0));
        assert!(!r.passes(0.3000001, start + 1.0));
    }

    #[test]
    fn linear_stage_interpolates() {
        let r = compile(json!({"type": "gradual", "startPercentage": 0.0,
            "startDate": "2024-06-01T00:00:00Z",
            "stages": [{"type": "linear", "date": "2024-06-11T00:00:00Z", "percentage": 1}]}))
        .expect("compiles");
        let start = ms("2024-06-01T00:00:00Z");
        assert!((r.current_percentage(start + 2.5 * DAY) - 0.25).abs() < 1e-12);
        assert_eq!(r.current_percentage(start + 10.0 * DAY), 1.0);
        assert_eq!(r.current_percentage(start + 20.0 * DAY), 1.0);
        assert_eq!(r.current_percentage(start - DAY), 0.0);
    }

    #[test]
    fn interpolation_at_a_stage_boundary_is_zero() {
        // The reference returns 0 when the current stage began exactly now and the next one is
        // linear, whatever the current percentage.
        let r = compile(json!({"type": "gradual", "startPercentage": 0.1,
            "startDate": "2024-06-01T00:00:00Z",
            "stages": [
                {"type": "linear", "date": "2024-06-05T00:00:00Z", "percentage": 0.5},
                {"type": "linear", "date": "2024-06-09T00:00:00Z", "percentage": 0.9}]}))
        .expect("compiles");
        let s1 = ms("2024-06-05T00:00:00Z");
        assert_eq!(r.current_percentage(s1), 0.0);
        assert!((r.current_percentage(s1 + 2.0 * DAY) - 0.7).abs() < 1e-12);
        // Between start and the first stage: from 0.1 towards 0.5.
        assert!((r.current_percentage(s1 - 2.0 * DAY) - 0.3).abs() < 1e-12);
    }

    #[test]
    fn stepped_stages_jump() {
        let r = compile(json!({"type": "stepped", "startPercentage": 0,
            "startDate": "2024-05-16T13:00:00.000Z",
            "stages": [
                {"type": "discrete", "date": "2024-05-22T11:00:00.000Z", "percentage": 0.5},
                {"type": "discrete", "date": "2024-05-24T09:00:00.000Z", "percentage": 1}]}))
        .expect("compiles");
        assert_eq!(r.current_percentage(ms("2024-05-20T00:00:00Z")), 0.0);
        assert_eq!(r.current_percentage(ms("2024-05-22T11:00:00Z")), 0.5);
        assert_eq!(r.current_percentage(ms("2024-05-23T00:00:00Z")), 0.5);
        assert_eq!(r.current_percentage(ms("2024-06-15T12:00:00Z")), 1.0);
        // Before the first stage with startPercentage 0 nobody passes, even hash 0.
        assert!(!r.passes(0.0, ms("2024-05-20T00:00:00Z")));
    }

    #[test]
    fn stages_are_taken_in_config_order() {
        // `last(filter(date <= now))` and `first(filter(date > now))` over the config order.
        let r = compile(json!({"type": "stepped", "startPercentage": 0.1,
            "startDate": "2024-01-01T00:00:00Z",
            "stages": [
                {"type": "discrete", "date": "2024-03-01T00:00:00Z", "percentage": 0.9},
                {"type": "discrete", "date": "2024-02-01T00:00:00Z", "percentage": 0.4}]}))
        .expect("compiles");
        assert_eq!(r.current_percentage(ms("2024-04-01T00:00:00Z")), 0.4);
    }

    #[test]
    fn compile_errors_name_the_field() {
        let err = |v: Value| compile(v).expect_err("must fail");
        assert_eq!(err(json!({"startDate": "2024-01-01"})).path, "$.rollout.type");
        assert_eq!(err(json!({"type": "linear", "startDate": "2024-01-01"})).path, "$.rollout.type");
        assert_eq!(err(json!({"type": "schedule"})).path, "$.rollout.startDate");
        assert_eq!(err(json!({"type": "schedule", "startDate": "tomorrow"})).path, "$.rollout.startDate");
        assert_eq!(err(json!({"type": "gradual", "startDate": "2024-01-01"})).path, "$.rollout.startPercentage");
        assert_eq!(
            err(json!({"type": "gradual", "startDate": "2024-01-01", "startPercentage": 0,
                "stages": {}}))
            .path,
            "$.rollout.stages"
        );
        assert_eq!(
            err(json!({"type": "gradual", "startDate": "2024-01-01", "startPercentage": 0,
                "stages": [{"type": "discrete", "date": "2024-02-01", "percentage": "1"}]}))
            .path,
            "$.rollout.stages[0].percentage"
        );
        assert_eq!(
            err(json!({"type": "gradual", "startDate": "2024-01-01", "startPercentage": 0,
                "stages": [{"type": "step", "date": "2024-02-01", "percentage": 1}]}))
            .path,
            "$.rollout.stages[0].type"
        );
        assert_eq!(
            err(json!({"type": "gradual", "startDate": "2024-01-01", "startPercentage": 0,
                "stages": [{"type": "discrete", "date": "2024-02-32", "percentage": 1}]}))
            .path,
            "$.rollout.stages[0].date"
        );
    }
}
