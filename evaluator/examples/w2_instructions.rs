//! Fixed-work W2 run for instruction counting (`perf stat -e instructions`), which stays
//! comparable on a noisy shared machine where wall-clock benchmarks drift.

use evaluator::snapshot::{Context, Options, Snapshot};
use std::hint::black_box;

#[path = "../benches/support/workloads.rs"]
mod workloads;

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let form = std::env::args().nth(2).unwrap_or_else(|| "flat".into());
    let snapshot = Snapshot::compile(workloads::w2()).unwrap_or_else(|e| panic!("{e}"));
    let flat: Vec<Vec<(String, String)>> = (0..1024).map(workloads::flat_context).collect();
    let nested: Vec<serde_json::Value> = (0..1024).map(workloads::context).collect();
    let opts = Options { enabled_only: false, debug: false, now_ms: 1_718_452_800_000.0, kind: None };
    let mut out = Vec::with_capacity(64 * 1024);
    let mut total = 0usize;
    for i in 0..n {
        out.clear();
        if form == "flat" {
            snapshot.evaluate_all(&Context::Flat(&flat[i % 1024]), opts, &mut out);
        } else {
            snapshot.evaluate_all::<String>(&Context::Nested(&nested[i % 1024]), opts, &mut out);
        }
        total += black_box(out.len());
    }
    println!("{total}");
}
