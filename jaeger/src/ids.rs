//! Random trace and span ids from a per-thread generator.
//!
//! Ids need to be unique, not secret: a per-thread wyrand generator, seeded
//! from the standard library's randomly keyed hasher, costs a few
//! nanoseconds and no synchronization between request threads.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish()
}

/// A random non-zero 64-bit value.
pub(crate) fn random_u64() -> u64 {
    STATE
        .try_with(|s| loop {
            let x = s.get().wrapping_add(0xa076_1d64_78bd_642f);
            s.set(x);
            let t = u128::from(x) * u128::from(x ^ 0xe703_7ed1_a0b4_28db);
            let v = ((t >> 64) as u64) ^ (t as u64);
            if v != 0 {
                return v;
            }
        })
        // Only while the thread is being torn down: fall back to a fresh seed.
        .unwrap_or_else(|_| seed() | 1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_non_zero_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(super::random_u64()));
        }
        assert!(!seen.contains(&0));
    }
}
