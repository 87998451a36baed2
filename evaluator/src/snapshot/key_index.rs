//! Flag key → position in the snapshot's flag vector, as a hash table of `u32` positions that
//! compares against the flags' own keys: 5 bytes a slot, where a map holding a key pointer and a
//! `usize` took 25 (2.6 MB less at 100,000 flags).

use hashbrown::HashTable;
use std::hash::{BuildHasher, RandomState};

#[derive(Debug, Default)]
pub(super) struct KeyIndex {
    table: HashTable<u32>,
    // SipHash with a per-process key, as `std::collections::HashMap`: the keys asked for come
    // from requests.
    hasher: RandomState,
}

impl KeyIndex {
    pub(super) fn with_capacity(n: usize) -> Self {
        Self { table: HashTable::with_capacity(n), hasher: RandomState::new() }
    }

    /// Position `i` for `key`, whose keys so far `key_of` gives; `false` (nothing added) when
    /// `key` is already there.
    pub(super) fn insert<'k>(&mut self, i: usize, key: &str, key_of: impl Fn(usize) -> &'k str) -> bool {
        let hash = self.hasher.hash_one(key);
        if self.table.find(hash, |&j| key_of(j as usize) == key).is_some() {
            return false;
        }
        let hasher = &self.hasher;
        // Positions are below `u32::MAX`: a snapshot holds far fewer flags than that.
        self.table.insert_unique(hash, u32::try_from(i).expect("flag position fits u32"), |&j| {
            hasher.hash_one(key_of(j as usize))
        });
        true
    }

    /// Every key of `keys` at its position (the keys are distinct).
    pub(super) fn of(keys: &[&str]) -> Self {
        let mut index = Self::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            index.insert(i, key, |j| keys[j]);
        }
        index
    }

    /// The position of `key`, whose keys `key_of` gives.
    pub(super) fn get<'k>(&self, key: &str, key_of: impl Fn(usize) -> &'k str) -> Option<usize> {
        self.table.find(self.hasher.hash_one(key), |&j| key_of(j as usize) == key).map(|&j| j as usize)
    }
}
