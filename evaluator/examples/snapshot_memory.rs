//! Heap a compiled snapshot holds per flag, counted with a counting global allocator: the W2-mix
//! scale sets (`n` flags) as the edge compiles them, from stored entries
//! (`{"order", "definition"}`, [`Entry::from_stored`]) through [`Snapshot::assemble`].
//!
//! `cargo run --release --example snapshot_memory -- 10000 100000`
//!
//! Bytes are counted as glibc malloc holds them (a chunk is the request plus an 8-byte header,
//! rounded up to 16, at least 32), which is what the worker's RSS pays; `requested` is what Rust
//! asked for. `peak` is the most the heap held while the snapshot was built, entries included.

use evaluator::snapshot::{Entry, Snapshot};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

#[path = "../benches/support/workloads.rs"]
mod workloads;

struct Counting;

static COUNT: AtomicIsize = AtomicIsize::new(0);
static REQUESTED: AtomicIsize = AtomicIsize::new(0);
static CHUNKS: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

/// The bytes glibc's malloc takes for a request of `size` on 64-bit Linux.
fn chunk(size: usize) -> isize {
    (((size + 8 + 15) & !15).max(32)) as isize
}

fn add(size: usize) {
    COUNT.fetch_add(1, Relaxed);
    REQUESTED.fetch_add(size as isize, Relaxed);
    let now = CHUNKS.fetch_add(chunk(size), Relaxed) + chunk(size);
    PEAK.fetch_max(now, Relaxed);
}

fn sub(size: usize) {
    COUNT.fetch_sub(1, Relaxed);
    REQUESTED.fetch_sub(size as isize, Relaxed);
    CHUNKS.fetch_sub(chunk(size), Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        sub(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        sub(layout.size());
        add(new_size);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// (allocations, requested bytes, chunk bytes) live now.
fn live() -> (isize, isize, isize) {
    (COUNT.load(Relaxed), REQUESTED.load(Relaxed), CHUNKS.load(Relaxed))
}

/// The snapshot of `features` as the edge compiles it: per flag (allocations, requested bytes,
/// chunk bytes) it holds, the most the heap held while building it, and the stored text.
fn measure(features: &[serde_json::Value]) -> ([f64; 3], f64, f64) {
    let stored: Vec<Vec<u8>> = features
        .iter()
        .enumerate()
        .map(|(i, f)| {
            // The control plane's order key: `{created_at}/{feature id}`.
            let order = format!("2026-12-05T00:00:00.{i:06}Z/{:024x}", i * 7919);
            serde_json::to_vec(&serde_json::json!({"project": "p", "order": order, "definition": f}))
                .unwrap_or_default()
        })
        .collect();
    let stored_bytes: usize = stored.iter().map(Vec::len).sum();
    let before = live();
    PEAK.store(before.2, Relaxed);
    let entries: Vec<Entry<'_>> =
        stored.iter().map(|b| Entry::from_stored(b).unwrap_or_else(|e| panic!("{e}"))).collect();
    let snapshot = Snapshot::assemble(b"{}", entries).unwrap_or_else(|e| panic!("{e}"));
    let after = live();
    let peak = PEAK.load(Relaxed) - before.2;
    drop(snapshot);
    let n = features.len().max(1) as f64;
    let per = [after.0 - before.0, after.1 - before.1, after.2 - before.2].map(|v| v as f64 / n);
    (per, peak as f64, stored_bytes as f64 / n)
}

fn main() {
    let counts: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    for n in if counts.is_empty() { vec![10_000, 100_000] } else { counts } {
        let doc = workloads::scale(n);
        let features = doc["features"].as_array().cloned().unwrap_or_default();
        drop(doc);
        let ([allocations, requested, chunks], peak, stored) = measure(&features);
        println!(
            "{n} flags: {allocations:.1} allocations, {requested:.0} B requested, {chunks:.0} B in malloc chunks \
             per flag ({:.1} MB); peak while building {:.1} MB; stored entries {stored:.0} B per flag",
            chunks * n as f64 / 1e6,
            peak / 1e6,
        );
        // The same flags without their config variants: what the variants cost.
        let bare: Vec<serde_json::Value> = features
            .iter()
            .map(|f| {
                let mut f = f.clone();
                if let Some(m) = f.as_object_mut() {
                    m.remove("config");
                }
                f
            })
            .collect();
        let with_config = features.iter().filter(|f| f.get("config").is_some()).count();
        let ([_, _, bare_chunks], _, bare_stored) = measure(&bare);
        println!(
            "  without config variants: {bare_chunks:.0} B per flag, stored {bare_stored:.0} B; \
             the variants of the {with_config} flags with a config: {:.0} B per such flag",
            (chunks - bare_chunks) * n as f64 / with_config.max(1) as f64,
        );
    }
}
