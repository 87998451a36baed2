//! Evaluation counters: how often each flag (or DevCycle feature) of one compiled snapshot
//! evaluated to each of its variations, kept beside the compiled rules and drained by the edge
//! every few seconds into `evaluation-counts` intake records (`server/evaluation_counts.py`).
//!
//! A counter is a cell of a flat array (item × slot, `offsets` says where each item starts), so
//! counting one evaluation costs two bounds-checked loads and a store: no lock, no allocation,
//! no I/O. Cells are bumped with a relaxed load and store, not `fetch_add` (a locked instruction,
//! about 3× the cost: ~10 ns against ~3 ns per hit measured, and a `/features/evaluated` answer
//! evaluates hundreds of flags). That is exact while callers are serialized, which they are in
//! the edge: every evaluating entry point and the drain run under the Python GIL. Evaluations
//! running in parallel (the GIL-free `evaluate_batch`, or Rust callers on several threads) may
//! lose or repeat a few counts, never more than the racing hits.
//!
//! Counting is process-wide on by default; [`set_enabled`]`(false)` makes snapshots compiled
//! afterwards allocate no counters, so counting them is a bounds check that finds nothing.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Whether snapshots compiled from now on count their evaluations.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Relaxed)
}

/// Counters of `items` with a fixed number of slots each (a flag's possible variations).
#[derive(Debug, Default)]
pub struct Counts {
    /// Item `i`'s slots are `cells[offsets[i]..offsets[i + 1]]`.
    offsets: Box<[usize]>,
    cells: Box<[AtomicU32]>,
}

impl Clone for Counts {
    /// A copy counts its own evaluations: same shape, every counter at zero.
    fn clone(&self) -> Self {
        Self { offsets: self.offsets.clone(), cells: self.cells.iter().map(|_| AtomicU32::new(0)).collect() }
    }
}

impl Counts {
    /// Zeroed counters, `sizes` slots per item in order; none at all while counting is off.
    pub fn new(sizes: impl IntoIterator<Item = usize>) -> Self {
        if !enabled() {
            return Self::default();
        }
        let mut offsets = vec![0];
        let mut total = 0;
        for size in sizes {
            total += size;
            offsets.push(total);
        }
        Self { offsets: offsets.into(), cells: (0..total).map(|_| AtomicU32::new(0)).collect() }
    }

    /// Count one evaluation of `item` to `slot`; out-of-range indexes count nothing.
    #[inline]
    pub fn hit(&self, item: usize, slot: usize) {
        let (Some(&start), Some(&end)) = (self.offsets.get(item), self.offsets.get(item + 1)) else {
            return;
        };
        if slot < end - start {
            if let Some(cell) = self.cells.get(start + slot) {
                // Wrapping: a snapshot nobody drains must not panic after 4 billion hits.
                cell.store(cell.load(Relaxed).wrapping_add(1), Relaxed);
            }
        }
    }

    /// Every non-zero counter as `(item, slot, count)`, each reset to zero as it is read.
    pub fn drain(&self) -> Vec<(usize, usize, u32)> {
        let mut out = Vec::new();
        for (item, bounds) in self.offsets.windows(2).enumerate() {
            if let [start, end] = *bounds {
                for (slot, cell) in self.cells.get(start..end).unwrap_or_default().iter().enumerate() {
                    if cell.load(Relaxed) != 0 {
                        out.push((item, slot, cell.swap(0, Relaxed)));
                    }
                }
            }
        }
        out
    }
}

/// The position of `item` in `slice` when it is one of its elements (compared by address): an
/// evaluation site holding `&slice[i]` names its counter without having to carry `i` along.
pub fn index_in<T>(slice: &[T], item: &T) -> Option<usize> {
    let size = std::mem::size_of::<T>();
    let offset = (item as *const T as usize).checked_sub(slice.as_ptr() as usize)?;
    (size > 0 && offset % size == 0 && offset / size < slice.len()).then_some(offset / size)
}

/// A Reflag-path flag's variations, as counted and reported: slot 0 is `"off"` (disabled), slot
/// 1 `"on"` (enabled without a matching config variant), slot `2 + i` config variant `i` (enabled
/// with it): the `variant` its OFREP answer reports.
pub const OFF: &str = "off";
pub const ON: &str = "on";

pub fn reflag_slots(variants: usize) -> usize {
    2 + variants
}

pub fn reflag_slot(enabled: bool, variant: Option<usize>) -> usize {
    match (enabled, variant) {
        (false, _) => 0,
        (true, None) => 1,
        (true, Some(i)) => 2 + i,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_slot_and_drains_to_zero() {
        let c = Counts::new([2, 3, 0]);
        for _ in 0..5 {
            c.hit(0, 1);
        }
        c.hit(1, 2);
        c.hit(1, 0);
        c.hit(1, 2);
        // Out of range: the item has no such slot, or there is no such item.
        c.hit(0, 2);
        c.hit(2, 0);
        c.hit(7, 0);
        assert_eq!(c.drain(), vec![(0, 1, 5), (1, 0, 1), (1, 2, 2)]);
        assert_eq!(c.drain(), vec![]);
        c.hit(1, 1);
        assert_eq!(c.drain(), vec![(1, 1, 1)]);
    }

    #[test]
    fn a_clone_starts_from_zero_with_the_same_shape() {
        let c = Counts::new([2]);
        c.hit(0, 0);
        let copy = c.clone();
        copy.hit(0, 1);
        assert_eq!(c.drain(), vec![(0, 0, 1)]);
        assert_eq!(copy.drain(), vec![(0, 1, 1)]);
    }

    #[test]
    fn index_in_finds_elements_only() {
        let v = vec![10u64, 20, 30];
        assert_eq!(index_in(&v, &v[2]), Some(2));
        assert_eq!(index_in(&v, &v[0]), Some(0));
        let other = 20u64;
        assert_eq!(index_in(&v, &other), None);
        assert_eq!(index_in(&v[..1], &v[1]), None);
    }

    #[test]
    fn reflag_slots_follow_the_ofrep_variant() {
        assert_eq!(reflag_slot(false, Some(3)), 0);
        assert_eq!(reflag_slot(true, None), 1);
        assert_eq!(reflag_slot(true, Some(0)), 2);
        assert_eq!(reflag_slots(2), 4);
    }
}
