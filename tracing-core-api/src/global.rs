//! The process-wide tracer.

use std::sync::{Arc, OnceLock};

use crate::{NoopTracer, Tracer};

static GLOBAL: OnceLock<Arc<dyn Tracer>> = OnceLock::new();

/// The global tracer was already set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the global tracer is already set")]
pub struct GlobalTracerAlreadySet;

/// Sets the global tracer, once per process.
///
/// ```
/// use std::sync::Arc;
/// use opentracing_api::{global_tracer, set_global_tracer, MockTracer, TracerExt};
/// let tracer = MockTracer::new();
/// let _ = set_global_tracer(Arc::new(tracer.clone()));
/// global_tracer().span("work").start().finish();
/// ```
pub fn set_global_tracer(tracer: Arc<dyn Tracer>) -> Result<(), GlobalTracerAlreadySet> {
    GLOBAL.set(tracer).map_err(|_| GlobalTracerAlreadySet)
}

/// The global tracer: the one set with [`set_global_tracer`], or
/// [`NoopTracer`].
pub fn global_tracer() -> &'static dyn Tracer {
    match GLOBAL.get() {
        Some(t) => &**t,
        None => &NoopTracer,
    }
}

/// Whether a global tracer was set.
pub fn is_global_tracer_set() -> bool {
    GLOBAL.get().is_some()
}
