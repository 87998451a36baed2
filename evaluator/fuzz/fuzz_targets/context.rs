//! Arbitrary query-string-like contexts (`name=value&...`) against a fixed mixed-dialect snapshot.
#![no_main]

use evaluator::snapshot::{Context, Options, Snapshot};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn snapshot() -> &'static Snapshot {
    static S: OnceLock<Snapshot> = OnceLock::new();
    S.get_or_init(|| {
        let doc = serde_json::json!({"features": [
            {"key": "a", "targeting": {"version": 1, "rules": [{"filter": {"type": "group", "operator": "or", "filters": [
                {"type": "context", "field": "user.email", "operator": "CONTAINS", "values": ["@acme"]},
                {"type": "context", "field": "company.seats", "operator": "GT", "values": ["10"]},
                {"type": "context", "field": "company.created", "operator": "DATE_AFTER", "values": ["2024-01-01"]},
                {"type": "context", "field": "user.seen", "operator": "AFTER", "values": ["3"]},
                {"type": "rolloutPercentage", "partialRolloutAttribute": "user.id", "partialRolloutThreshold": 50000},
                {"type": "user", "subType": "appVersion", "comparator": ">", "values": ["1.2.3"]},
                {"type": "jsonLogic", "rule": {"sem_ver": [{"var": "user.appVersion"}, "^", "2.0.0"]}}
            ]}}]}}
        ]});
        match Snapshot::compile(doc) {
            Ok(s) => s,
            Err(e) => panic!("fixed snapshot must compile: {e}"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(String, String)> = text
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let mut out = Vec::new();
    let opts = Options { enabled_only: false, debug: true, now_ms: 1_700_000_000_000.0, kind: None };
    snapshot().evaluate_all(&Context::Flat(&pairs), opts, &mut out);
    assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
});
