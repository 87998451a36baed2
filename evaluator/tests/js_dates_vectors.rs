//! `new Date(string)` conformance: `tests/vectors/js-dates.json`, generated from Node (V8) by
//! `tests/vectors/generators/js_dates.mjs`, must be reproduced exactly by the date parser.

mod common;

use evaluator::dates::parse_date;
use serde_json::Value;

#[test]
fn every_vector_parses_as_v8_does() {
    let cases = common::load("js-dates.json");
    let cases = cases.as_array().expect("array");
    assert!(cases.len() >= 1500, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for c in cases {
        let input = c["input"].as_str().expect("input");
        let expected = match &c["expected"] {
            Value::Null => None,
            v => Some(v.as_f64().expect("expected is a number or null")),
        };
        let got = parse_date(input);
        if got != expected {
            failures.push(format!("{input:?}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
