//! A mutex that tells the trace who it waits for.
//!
//! It reads the `request` baggage item of the current span (set by the web
//! page, carried to every service by the trace context), so the span of a
//! blocked query names the requests ahead of it in the queue, although no
//! request id was ever passed as a parameter.

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
    /// The holder first, then the waiters, by their `request` baggage.
    queue: StdMutex<Vec<String>>,
}

/// Holds the lock; leaves the queue when dropped.
pub(crate) struct TracedGuard<'a> {
    owner: &'a TracedMutex,
    request: String,
    _guard: MutexGuard<'a, ()>,
}

impl TracedMutex {
    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
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
        {
            let mut queue = self.queue();
            if !queue.is_empty() {
                let blockers = format!("[{}]", queue.join(" "));
                tracing::info!(
                    blockers = %blockers,
                    "Waiting for lock behind {} transactions",
                    queue.len()
                );
            }
            queue.push(request.clone());
        }
        let guard = self.lock.lock().await;
        let behind = self.queue().len().saturating_sub(1);
        tracing::info!("Acquired lock with {behind} transactions waiting behind");
        TracedGuard {
            owner: self,
            request,
            _guard: guard,
        }
    }
}

impl Drop for TracedGuard<'_> {
    fn drop(&mut self) {
        let mut queue = self.owner.queue();
        if let Some(i) = queue.iter().position(|r| *r == self.request) {
            queue.remove(i);
        }
    }
}
