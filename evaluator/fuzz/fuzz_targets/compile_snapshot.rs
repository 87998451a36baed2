//! Arbitrary bytes as a snapshot (JSON and MessagePack), then evaluation of whatever compiles.
#![no_main]

use evaluator::snapshot::{Context, Options, Snapshot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = Options { enabled_only: false, debug: true, now_ms: 1_700_000_000_000.0, kind: None };
    for snapshot in [Snapshot::from_json(data), Snapshot::from_msgpack(data)].into_iter().flatten() {
        let mut out = Vec::new();
        let ctx = serde_json::json!({"user": {"id": "u1", "email": "a@b.c", "appVersion": "1.2.3"}, "company": {"id": 7}});
        snapshot.evaluate_all::<String>(&Context::Nested(&ctx), opts, &mut out);
        assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok(), "evaluation must produce valid JSON");
        let _ = snapshot.local_definitions_json(std::iter::empty());
    }
});
