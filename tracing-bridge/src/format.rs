//! Trace and span ids on `fmt` lines.

use std::fmt;

use opentracing_api::{current_context, SpanContext};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::layer::{bridged_in_scope, BridgedSpan};

/// An event formatter for `tracing_subscriber::fmt` that starts every line
/// written inside an OpenTracing span with `trace_id=… span_id=…`, then
/// lets the formatter it wraps write the rest.
///
/// The ids are those of the span the event is logged on: the current
/// OpenTracing span (a server span, a client span, one the
/// [`OpenTracingLayer`](crate::OpenTracingLayer) started for a `tracing`
/// span), or, for an event with an explicit `parent:`, that span's. Lines
/// written outside any trace are left as they are. The ids are printed
/// whether the trace is sampled or not, so the lines of one request can be
/// found either way; search a trace by the `trace_id`.
///
/// ```
/// use opentracing_api::MockTracer;
/// use opentracing_tracing_bridge::{OpenTracingLayer, WithTraceIds};
/// use tracing_subscriber::{fmt, prelude::*};
///
/// # let tracer = MockTracer::new();
/// let subscriber = tracing_subscriber::registry()
///     .with(OpenTracingLayer::new(tracer))
///     .with(fmt::layer().event_format(WithTraceIds::new(fmt::format().compact())));
/// # let _ = subscriber;
/// ```
///
/// prints lines like
///
/// ```text
/// trace_id=3f2a9c0d11b4e7a2 span_id=9b1e44c07d2f5a31 2024-05-01T09:12:03.114Z  INFO shop::orders: order placed order_id=17
/// ```
///
/// It wraps line-oriented formats (`full`, `compact`, `pretty`, or your
/// own); a JSON formatter wants the ids as fields instead.
#[derive(Clone, Debug, Default)]
pub struct WithTraceIds<F = Format> {
    inner: F,
}

impl<F> WithTraceIds<F> {
    /// Wraps `inner`, for example `tracing_subscriber::fmt::format()`.
    pub fn new(inner: F) -> Self {
        WithTraceIds { inner }
    }

    /// The wrapped formatter.
    pub fn inner(&self) -> &F {
        &self.inner
    }

    /// The wrapped formatter, to configure it.
    pub fn inner_mut(&mut self) -> &mut F {
        &mut self.inner
    }
}

/// The context of the span `event` is logged on, if it is in a trace.
fn event_context<S, N>(ctx: &FmtContext<'_, S, N>, event: &Event<'_>) -> Option<SpanContext>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    if event.is_root() {
        return None;
    }
    if let Some(parent) = event.parent().and_then(|id| ctx.span(id)) {
        if let Some(BridgedSpan(state)) = bridged_in_scope(&parent) {
            return Some(state.context());
        }
    }
    current_context()
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if let Some(cx) = event_context(ctx, event).filter(SpanContext::is_valid) {
            let (dim, reset) = if writer.has_ansi_escapes() {
                ("\x1b[2m", "\x1b[0m")
            } else {
                ("", "")
            };
            write!(
                writer,
                "{dim}trace_id={} span_id={}{reset} ",
                cx.trace_id(),
                cx.span_id()
            )?;
        }
        self.inner.format_event(ctx, writer, event)
    }
}
