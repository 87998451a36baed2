//! Heap allocations per evaluation on the hot paths, counted with a counting global allocator:
//! W2 (350 flags), one context, into a buffer that already has room (as the Python binding's
//! reused buffer does). Each remaining allocation is accounted for below; the bounds make a new
//! per-flag allocation fail this test.

use evaluator::ofrep;
use evaluator::snapshot::{Context, Options, Snapshot};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

#[path = "../benches/support/workloads.rs"]
mod workloads;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counted(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    f();
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

const NOW: f64 = 1_718_452_800_000.0;

#[test]
fn allocations_per_w2_evaluation() {
    let snapshot = Snapshot::compile(workloads::w2()).expect("W2 compiles");
    let opts = Options { enabled_only: false, debug: false, now_ms: NOW, kind: None };
    let mut out = Vec::with_capacity(1 << 20);
    let mut worst_flat = 0;
    let mut worst_nested = 0;
    let mut worst_ofrep = 0;
    for i in 0..64 {
        let flat = workloads::flat_context(i);
        let nested = workloads::context(i);
        out.clear();
        worst_flat = worst_flat.max(counted(|| snapshot.evaluate_all(&Context::Flat(&flat), opts, &mut out)));
        out.clear();
        worst_nested =
            worst_nested.max(counted(|| snapshot.evaluate_all::<String>(&Context::Nested(&nested), opts, &mut out)));
        out.clear();
        let o = ofrep::Options { flag_state_version: 1, has_targeting_key: true, now_ms: NOW, kind: None };
        worst_ofrep =
            worst_ofrep.max(counted(|| snapshot.ofrep_all::<String>(&Context::Nested(&nested), o, b"", &mut out)));
    }
    println!("allocations per W2 evaluation: flat {worst_flat}, nested {worst_nested}, ofrep {worst_ofrep}");
    // None is per flag; all are per context field. Nested (OFREP's JSON context): the flat
    // context's slots and the key buffer of its walk (2), the DevCycle user view of the context
    // (W2 has DevCycle `user` filters): a clone of `context.user` (its map, keys and string
    // values) plus `user_id` (about 15), the rule-result, missing-field and DevCycle scratch
    // buffers, each grown once (about 5). Flat (the `/features/evaluated` query): the same, and
    // the nested context rebuilt from the pairs for the JSON Logic and DevCycle filters (its
    // objects, one key and one value per pair: about 28).
    assert!(worst_flat <= 56, "flat: {worst_flat} allocations");
    assert!(worst_nested <= 28, "nested: {worst_nested} allocations");
    assert!(worst_ofrep <= 28, "ofrep: {worst_ofrep} allocations");
}
