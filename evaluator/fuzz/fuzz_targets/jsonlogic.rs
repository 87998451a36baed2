//! Arbitrary bytes split into a JSON Logic rule and its data.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let (rule, rest) = data.split_at(split);
    let Ok(rule) = serde_json::from_slice::<serde_json::Value>(rule) else { return };
    let data = serde_json::from_slice::<serde_json::Value>(rest.get(1..).unwrap_or(&[])).unwrap_or_default();
    let _ = evaluator::jsonlogic::apply(&rule, &data);
});
