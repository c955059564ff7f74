//! A mutex that tells the trace who it waits for.
//!
//! It reads the `request` baggage item of the current span (set by the web
//! page, carried to every service by the trace context), so the span of a
//! blocked query names the requests ahead of it in the queue, although no
//! request id was ever passed as a parameter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex as StdMutex, PoisonError};

use opentracing_api::current_span;
use tokio::sync::{Mutex, MutexGuard};

/// The baggage item naming a request.
const REQUEST_BAGGAGE: &str = "request";

/// A FIFO mutex logging on the current span how many transactions are ahead
/// of it, and which.
#[derive(Debug, Default)]
pub(crate) struct TracedMutex {
    lock: Mutex<()>,
    /// The holder first, then the waiters: a ticket each, with its
    /// `request` baggage.
    queue: StdMutex<Vec<(u64, String)>>,
    next_ticket: AtomicU64,
}

/// A place in the queue, left when dropped: when the lock is released, and
/// also when a waiter is cancelled (its caller gone, a timeout) before it
/// got the lock.
struct Ticket<'a> {
    owner: &'a TracedMutex,
    id: u64,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut queue = self.owner.queue();
        if let Some(i) = queue.iter().position(|(id, _)| *id == self.id) {
            queue.remove(i);
        }
    }
}

/// Holds the lock; leaves the queue when dropped (first, so that the next
/// holder does not count this one behind it).
pub(crate) struct TracedGuard<'a> {
    _ticket: Ticket<'a>,
    _guard: MutexGuard<'a, ()>,
}

impl TracedMutex {
    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<(u64, String)>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for the lock, logging on the current span the transactions it
    /// waits behind and, once it has the lock, how many wait behind it.
    pub(crate) async fn lock(&self) -> TracedGuard<'_> {
        let span = current_span();
        let request = span
            .as_ref()
            .and_then(|s| s.baggage_item(REQUEST_BAGGAGE))
            .unwrap_or_default();
        if let Some(span) = &span {
            if !request.is_empty() {
                span.set_tag(REQUEST_BAGGAGE, request.clone());
            }
        }
        let ticket = Ticket {
            owner: self,
            id: self.next_ticket.fetch_add(1, Ordering::Relaxed),
        };
        {
            let mut queue = self.queue();
            if !queue.is_empty() {
                let ahead: Vec<&str> = queue.iter().map(|(_, r)| r.as_str()).collect();
                let blockers = format!("[{}]", ahead.join(" "));
                tracing::info!(
                    blockers = %blockers,
                    "Waiting for lock behind {} transactions",
                    queue.len()
                );
            }
            queue.push((ticket.id, request));
        }
        let guard = self.lock.lock().await;
        let behind = self.queue().len().saturating_sub(1);
        tracing::info!("Acquired lock with {behind} transactions waiting behind");
        TracedGuard {
            _ticket: ticket,
            _guard: guard,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_cancelled_before_it_gets_the_lock_leaves_the_queue() {
        let mutex = TracedMutex::default();
        let held = mutex.lock().await;
        for _ in 0..3 {
            // Polled once (queued, then blocked on the lock), then dropped.
            let waiter = mutex.lock();
            let _ = tokio::time::timeout(std::time::Duration::from_millis(5), waiter).await;
        }
        assert_eq!(mutex.queue().len(), 1, "only the holder stays queued");
        drop(held);
        assert!(mutex.queue().is_empty());
        let _again = mutex.lock().await;
        assert_eq!(mutex.queue().len(), 1);
    }
}
