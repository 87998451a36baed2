//! Member lookup in the small JSON objects that rules read per flag (a context's `user`, the
//! DevCycle user view): `serde_json::Map` (insertion-ordered, hence an `IndexMap` with SipHash)
//! hashes the name on every lookup, which for a handful of members costs more than comparing the
//! names in turn. W2 reads such a member in about 100 of its 350 flags per context.

use serde_json::{Map, Value};

/// Objects with at most this many members are scanned instead of hashed.
const SCAN_MAX: usize = 8;

/// `m.get(key)`: the same member (names are unique), found by a scan when `m` is small.
#[inline]
pub fn get<'m>(m: &'m Map<String, Value>, key: &str) -> Option<&'m Value> {
    if m.len() <= SCAN_MAX {
        m.iter().find(|(k, _)| k.as_str() == key).map(|(_, v)| v)
    } else {
        m.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_what_the_map_finds_small_and_large() {
        for n in [0usize, 1, SCAN_MAX, SCAN_MAX + 1, 40] {
            let mut m = Map::new();
            for i in 0..n {
                m.insert(format!("k{i}"), json!(i));
            }
            for probe in ["k0", "k1", "k8", "k9", "k39", "nope", ""] {
                assert_eq!(get(&m, probe), m.get(probe), "{n} members, {probe}");
            }
        }
    }
}
