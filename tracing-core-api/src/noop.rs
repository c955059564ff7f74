//! The no-op tracer.

use std::borrow::Cow;

use crate::propagation::{NoopPropagator, Propagator};
use crate::{Span, StartSpanOptions, Tracer};

/// A tracer that does nothing: its spans carry an empty context, record
/// nothing, allocate nothing, and it injects and extracts nothing. The
/// global tracer until one is set.
///
/// ```
/// use opentracing_api::{NoopTracer, Tracer, TracerExt};
/// let span = NoopTracer.span("anything").tag("k", "v").start();
/// assert!(!span.is_recording());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopTracer;

impl Tracer for NoopTracer {
    fn start_span_with_options(&self, _: Cow<'static, str>, _: &mut StartSpanOptions) -> Span {
        Span::noop()
    }

    fn propagator(&self) -> &dyn Propagator {
        &NoopPropagator
    }

    fn is_noop(&self) -> bool {
        true
    }
}
