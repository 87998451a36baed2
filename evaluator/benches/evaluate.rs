//! Evaluator micro-benchmarks against the DESIGN.md section 6 targets:
//! W2 one context → JSON bytes (≤ 15 µs), single simple flag (≤ 100 ns), compile 10,000 flags
//! (≤ 100 ms). Run with `./dev bench` (pinned to one core).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use evaluator::snapshot::{Context, Options, Snapshot};
use serde_json::{json, Value};
use std::hint::black_box;
use std::time::Duration;

#[path = "support/workloads.rs"]
mod workloads;

const OPTS: Options = Options { enabled_only: false, debug: false, now_ms: 1_718_452_800_000.0, kind: None };

fn compile(doc: &Value) -> Snapshot {
    Snapshot::compile(doc.clone()).unwrap_or_else(|e| panic!("workload does not compile: {e}"))
}

fn bench_w2(c: &mut Criterion) {
    let snapshot = compile(&workloads::w2());
    let nested: Vec<Value> = (0..1024).map(workloads::context).collect();
    let flat: Vec<Vec<(String, String)>> = (0..1024).map(workloads::flat_context).collect();
    let mut out = Vec::with_capacity(64 * 1024);
    let mut i = 0usize;
    c.bench_function("w2_350_flags_flat_context_to_json", |b| {
        b.iter(|| {
            out.clear();
            i = (i + 1) % flat.len();
            snapshot.evaluate_all(&Context::Flat(&flat[i]), OPTS, &mut out);
            black_box(out.len())
        })
    });
    c.bench_function("w2_350_flags_nested_context_to_json", |b| {
        b.iter(|| {
            out.clear();
            i = (i + 1) % nested.len();
            snapshot.evaluate_all::<String>(&Context::Nested(&nested[i]), OPTS, &mut out);
            black_box(out.len())
        })
    });
    let w1 = compile(&workloads::w1());
    c.bench_function("w1_5_flags_flat_context_to_json", |b| {
        b.iter(|| {
            out.clear();
            i = (i + 1) % flat.len();
            w1.evaluate_all(&Context::Flat(&flat[i]), OPTS, &mut out);
            black_box(out.len())
        })
    });
}

fn bench_single(c: &mut Criterion) {
    let snapshot = compile(&json!({"features": [{"key": "simple", "targeting": {"version": 1, "rules": [
        {"filter": {"type": "context", "field": "company.plan", "operator": "IS", "values": ["pro"]}}]}}]}));
    let pairs = vec![("company.plan".to_string(), "pro".to_string()), ("user.id".to_string(), "u-1".to_string())];
    let mut out = Vec::with_capacity(256);
    c.bench_function("single_simple_flag_to_json", |b| {
        b.iter(|| {
            out.clear();
            snapshot.evaluate_all(&Context::Flat(black_box(&pairs)), OPTS, &mut out);
            black_box(out.len())
        })
    });
}

fn bench_compile(c: &mut Criterion) {
    let doc = workloads::scale(10_000);
    let bytes = serde_json::to_vec(&doc).unwrap_or_default();
    let mut g = c.benchmark_group("compile_10000_flags");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("from_parsed_document", |b| {
        b.iter_batched(|| doc.clone(), |d| black_box(Snapshot::compile(d).map(|s| s.len())), BatchSize::LargeInput)
    });
    g.bench_function("from_json_bytes", |b| b.iter(|| black_box(Snapshot::from_json(&bytes).map(|s| s.len()))));
    g.finish();
}

criterion_group!(benches, bench_w2, bench_single, bench_compile);
criterion_main!(benches);
