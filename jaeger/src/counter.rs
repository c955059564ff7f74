//! Counters for the request path: one slot per thread, so that counting a
//! span takes no `lock`-prefixed instruction and request threads never
//! contend on one cache line.
//!
//! A thread claims a free slot the first time it counts and releases it when
//! it exits. While it owns the slot it is the only writer, so it can update
//! it with a plain load and store. Past `SLOTS` live threads, the rest share
//! one atomic fallback. A reader sums every slot and the fallback.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const SLOTS: usize = 32;

/// Which slots are owned by a live thread (shared by every counter).
static CLAIMED: [AtomicBool; SLOTS] = [const { AtomicBool::new(false) }; SLOTS];

/// This thread's slot; released by the destructor when the thread exits.
struct Claim(Option<usize>);

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            // Counting from a destructor that runs after this one must not
            // touch the slot once it is released: fall back to the shared
            // atomic. (`SLOT` has no destructor, so it is still usable.)
            let _ = SLOT.try_with(|c| c.set(SLOTS));
            // Release: the next owner's claim (Acquire) sees our last writes.
            CLAIMED[i].store(false, Ordering::Release);
        }
    }
}

thread_local! {
    static CLAIM: Claim = Claim(claim());
    /// Cached copy of the claim, readable without touching the destructor
    /// machinery: `usize::MAX` = not yet claimed, `SLOTS` = no slot.
    static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn claim() -> Option<usize> {
    (0..SLOTS).find(|&i| {
        CLAIMED[i]
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    })
}

#[inline]
fn slot() -> usize {
    let cached = SLOT.try_with(Cell::get).unwrap_or(SLOTS);
    if cached != usize::MAX {
        return cached;
    }
    let s = CLAIM.try_with(|c| c.0.unwrap_or(SLOTS)).unwrap_or(SLOTS);
    let _ = SLOT.try_with(|c| c.set(s));
    s
}

#[repr(align(64))]
#[derive(Default)]
struct Padded(AtomicU64);

/// A counter incremented on the request path and read rarely.
pub(crate) struct LocalCounter {
    slots: Box<[Padded; SLOTS]>,
    shared: AtomicU64,
}

impl Default for LocalCounter {
    fn default() -> Self {
        LocalCounter {
            slots: Box::new(std::array::from_fn(|_| Padded::default())),
            shared: AtomicU64::new(0),
        }
    }
}

impl std::fmt::Debug for LocalCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.get())
    }
}

impl LocalCounter {
    #[inline]
    pub(crate) fn inc(&self) {
        match self.slots.get(slot()) {
            // Only this thread writes this slot while it owns it.
            Some(p) => p.0.store(
                p.0.load(Ordering::Relaxed).wrapping_add(1),
                Ordering::Relaxed,
            ),
            None => {
                self.shared.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    #[inline]
    pub(crate) fn add(&self, n: u64) {
        match self.slots.get(slot()) {
            Some(p) => p.0.store(
                p.0.load(Ordering::Relaxed).wrapping_add(n),
                Ordering::Relaxed,
            ),
            None => {
                self.shared.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn get(&self) -> u64 {
        self.slots
            .iter()
            .map(|p| p.0.load(Ordering::Relaxed))
            .sum::<u64>()
            + self.shared.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_exactly_across_more_threads_than_slots() {
        let c = Arc::new(LocalCounter::default());
        let threads: Vec<_> = (0..SLOTS * 2)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.inc();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.get(), (SLOTS * 2 * 1000) as u64);
        // Slots are released when threads exit, and reused.
        std::thread::spawn(move || c.inc()).join().unwrap();
    }
}
