//! The `Tracer` trait and the span builder.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use crate::current;
use crate::propagation::{ExtractError, InjectError, Propagator};
use crate::{Extractor, Format, Injector, Reference, Span, SpanContext, Tag, TagValue};

/// The references of a span being started: one is kept inline, so the
/// common case (one parent) does not allocate.
pub type References = smallvec::SmallVec<[Reference; 1]>;

/// The initial tags of a span being started: four are kept inline, so
/// tracers that record nothing never allocate for them.
pub type StartTags = smallvec::SmallVec<[Tag; 4]>;

/// What a tracer needs to start a span, after the [`SpanBuilder`] has
/// resolved the parent (explicit references, else the current span).
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct StartSpanOptions {
    /// References to other spans; the first `ChildOf` is the parent.
    pub references: References,
    /// Initial tags (a sampler may look at them, e.g. `sampling.priority`).
    pub tags: StartTags,
    /// Explicit start time; `None` means now.
    pub start_time: Option<SystemTime>,
}

/// A tracer: starts spans and moves their contexts in and out of carriers.
///
/// The trait is object-safe: adapters take any `T: Tracer`, including
/// `Arc<dyn Tracer>` and `&dyn Tracer`. Implementations provide
/// [`start_span_with_options`](Self::start_span_with_options) and
/// [`propagator`](Self::propagator); users call [`TracerExt::span`].
///
/// ```
/// use std::sync::Arc;
/// use opentracing_api::{MockTracer, Tracer, TracerExt};
/// let tracer: Arc<dyn Tracer> = Arc::new(MockTracer::new());
/// let parent = tracer.span("parent").start();
/// let child = tracer.span("child").child_of(parent.context()).start();
/// assert_eq!(child.context().trace_id(), parent.context().trace_id());
/// ```
pub trait Tracer: Send + Sync {
    /// Starts a span with resolved options.
    ///
    /// The options are lent rather than moved: a tracer that records the
    /// span takes what it keeps (`std::mem::take`), one that records
    /// nothing does not pay for moving them.
    fn start_span_with_options(
        &self,
        operation_name: Cow<'static, str>,
        options: &mut StartSpanOptions,
    ) -> Span;

    /// Starts a span whose operation name is built only if the tracer
    /// needs it: for a span it records, or for a sampler that decides by
    /// name. Instrumentation that assembles a name on every call (a route
    /// template joined to the method) then spends nothing on it for the
    /// requests a tracer does not sample. The default builds the name
    /// first.
    #[doc(hidden)]
    fn start_span_with_lazy_name(
        &self,
        operation_name: &mut dyn FnMut() -> Cow<'static, str>,
        options: &mut StartSpanOptions,
    ) -> Span {
        self.start_span_with_options(operation_name(), options)
    }

    /// The propagator used by [`inject`](Self::inject) and
    /// [`extract`](Self::extract).
    fn propagator(&self) -> &dyn Propagator;

    /// Whether this tracer records and propagates nothing, whatever it is
    /// given (the [`NoopTracer`](crate::NoopTracer)). Instrumentation may
    /// skip its own work when it is; the default is `false`.
    fn is_noop(&self) -> bool {
        false
    }

    /// Writes a context into a text carrier.
    fn inject(&self, cx: &SpanContext, format: Format, carrier: &mut dyn Injector) {
        self.propagator().inject(cx, format, carrier);
    }

    /// Reads a context from a text carrier.
    fn extract(
        &self,
        format: Format,
        carrier: &dyn Extractor,
    ) -> Result<Option<SpanContext>, ExtractError> {
        self.propagator().extract(format, carrier)
    }

    /// Writes a context in the binary format.
    fn inject_binary(&self, cx: &SpanContext, out: &mut Vec<u8>) -> Result<(), InjectError> {
        self.propagator().inject_binary(cx, out)
    }

    /// Reads a context from the binary format.
    fn extract_binary(&self, data: &[u8]) -> Result<Option<SpanContext>, ExtractError> {
        self.propagator().extract_binary(data)
    }
}

/// Starting spans: `tracer.span("name")...start()`.
///
/// Implemented for every [`Tracer`], including `dyn Tracer`.
pub trait TracerExt: Tracer {
    /// A builder for a span named `operation_name`.
    fn span(&self, operation_name: impl Into<Cow<'static, str>>) -> SpanBuilder<'_>;

    /// A builder for a span whose name `make_name` builds, called only if
    /// the tracer needs the name (see
    /// [`Tracer::start_span_with_lazy_name`]).
    ///
    /// ```
    /// use opentracing_api::{MockTracer, TracerExt};
    /// let tracer = MockTracer::new();
    /// let (method, route) = ("GET", "/users/{id}");
    /// let mut name = || format!("{method} {route}").into();
    /// let span = tracer.span_with_lazy_name(&mut name).start();
    /// assert_eq!(span.operation_name(), Some("GET /users/{id}"));
    /// ```
    #[doc(hidden)]
    fn span_with_lazy_name<'a>(
        &'a self,
        make_name: &'a mut dyn FnMut() -> Cow<'static, str>,
    ) -> SpanBuilder<'a>;
}

impl<T: Tracer> TracerExt for T {
    fn span(&self, operation_name: impl Into<Cow<'static, str>>) -> SpanBuilder<'_> {
        SpanBuilder::new(self, operation_name.into())
    }

    fn span_with_lazy_name<'a>(
        &'a self,
        make_name: &'a mut dyn FnMut() -> Cow<'static, str>,
    ) -> SpanBuilder<'a> {
        SpanBuilder::with_lazy_name(self, make_name)
    }
}

impl TracerExt for dyn Tracer + '_ {
    fn span(&self, operation_name: impl Into<Cow<'static, str>>) -> SpanBuilder<'_> {
        SpanBuilder::new(self, operation_name.into())
    }

    fn span_with_lazy_name<'a>(
        &'a self,
        make_name: &'a mut dyn FnMut() -> Cow<'static, str>,
    ) -> SpanBuilder<'a> {
        SpanBuilder::with_lazy_name(self, make_name)
    }
}

macro_rules! forward_tracer {
    ($($ty:ty),*) => {$(
        impl<T: Tracer + ?Sized> Tracer for $ty {
            fn start_span_with_options(&self, name: Cow<'static, str>, options: &mut StartSpanOptions) -> Span {
                (**self).start_span_with_options(name, options)
            }
            fn start_span_with_lazy_name(&self, name: &mut dyn FnMut() -> Cow<'static, str>, options: &mut StartSpanOptions) -> Span {
                (**self).start_span_with_lazy_name(name, options)
            }
            fn propagator(&self) -> &dyn Propagator {
                (**self).propagator()
            }
            fn is_noop(&self) -> bool {
                (**self).is_noop()
            }
            fn inject(&self, cx: &SpanContext, format: Format, carrier: &mut dyn Injector) {
                (**self).inject(cx, format, carrier);
            }
            fn extract(&self, format: Format, carrier: &dyn Extractor) -> Result<Option<SpanContext>, ExtractError> {
                (**self).extract(format, carrier)
            }
            fn inject_binary(&self, cx: &SpanContext, out: &mut Vec<u8>) -> Result<(), InjectError> {
                (**self).inject_binary(cx, out)
            }
            fn extract_binary(&self, data: &[u8]) -> Result<Option<SpanContext>, ExtractError> {
                (**self).extract_binary(data)
            }
        }
    )*};
}
forward_tracer!(Arc<T>, Box<T>, &T);

/// Builds and starts a span: references, tags, start time.
///
/// With no explicit reference, the span is a `ChildOf` the
/// [current span](crate::current_span) if there is one (OpenTracing's
/// `StartSpanFromContext`), unless
/// [`ignore_current_span`](Self::ignore_current_span) is called. Once a
/// parent is given explicitly (even `None`, or an invalid context) the
/// current span is not used: a server span whose caller sent nothing is a
/// new root. References to invalid contexts are skipped, so passing the
/// result of a failed extraction is safe.
///
/// For server spans, pass the extraction result with
/// [`with_extracted`](Self::with_extracted): it also hands the tracer the
/// contexts that are not a parent but carry a debug id, lone baggage or a
/// sampling decision.
#[must_use = "a span builder does nothing until `start` is called"]
pub struct SpanBuilder<'a> {
    tracer: &'a dyn Tracer,
    name: SpanName<'a>,
    options: StartSpanOptions,
    ignore_current: bool,
    explicit_parent: bool,
}

/// The name of a span being built: given, or built on demand.
enum SpanName<'a> {
    Ready(Cow<'static, str>),
    Lazy(&'a mut dyn FnMut() -> Cow<'static, str>),
}

impl std::fmt::Debug for SpanName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpanName::Ready(name) => name.fmt(f),
            SpanName::Lazy(_) => f.write_str("<built on demand>"),
        }
    }
}

impl std::fmt::Debug for SpanBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanBuilder")
            .field("name", &self.name)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<'a> SpanBuilder<'a> {
    /// A builder for `tracer`.
    #[inline]
    pub fn new(tracer: &'a dyn Tracer, name: Cow<'static, str>) -> Self {
        SpanBuilder {
            tracer,
            name: SpanName::Ready(name),
            options: StartSpanOptions::default(),
            ignore_current: false,
            explicit_parent: false,
        }
    }

    /// A builder for `tracer` whose name `make_name` builds if the tracer
    /// needs it (see [`Tracer::start_span_with_lazy_name`]).
    #[inline]
    #[doc(hidden)]
    pub fn with_lazy_name(
        tracer: &'a dyn Tracer,
        make_name: &'a mut dyn FnMut() -> Cow<'static, str>,
    ) -> Self {
        SpanBuilder {
            tracer,
            name: SpanName::Lazy(make_name),
            options: StartSpanOptions::default(),
            ignore_current: false,
            explicit_parent: false,
        }
    }

    fn reference(mut self, r: Reference) -> Self {
        self.explicit_parent = true;
        if r.context.is_valid() {
            self.options.references.push(r);
        }
        self
    }

    /// Adds a `ChildOf` reference (skipped if the context is invalid).
    #[inline]
    pub fn child_of(self, cx: &SpanContext) -> Self {
        self.reference(Reference::child_of(cx.clone()))
    }

    /// Adds a `FollowsFrom` reference (skipped if the context is invalid).
    #[inline]
    pub fn follows_from(self, cx: &SpanContext) -> Self {
        self.reference(Reference::follows_from(cx.clone()))
    }

    /// Adds `ChildOf(cx)` if `cx` is `Some` and valid. For the result of an
    /// extraction use [`with_extracted`](Self::with_extracted) instead,
    /// which also keeps a debug id, lone baggage or a sampling decision
    /// that came without a parent.
    pub fn child_of_opt(mut self, cx: Option<&SpanContext>) -> Self {
        self.explicit_parent = true;
        if let Some(cx) = cx {
            self = self.child_of(cx);
        }
        self
    }

    /// Continues what an extraction returned: the way to start a server
    /// span. A valid context becomes the parent (`ChildOf`); one that is
    /// not a valid parent but carries something the tracer must see (a
    /// `jaeger-debug-id`, lone baggage, a sampling decision) is passed on
    /// too, and `None` makes a new root (the current span is not used).
    ///
    /// ```
    /// use opentracing_api::{Format, MockTracer, Tracer, TracerExt};
    /// # let headers = http::HeaderMap::new();
    /// let tracer = MockTracer::new();
    /// let parent = tracer.extract(Format::HttpHeaders, &headers).ok().flatten();
    /// let span = tracer.span("GET /customer").with_extracted(parent).start();
    /// # drop(span);
    /// ```
    #[inline]
    pub fn with_extracted(mut self, cx: Option<SpanContext>) -> Self {
        self.explicit_parent = true;
        if let Some(cx) = cx {
            self.options.references.push(Reference::child_of(cx));
        }
        self
    }

    /// Adds an initial tag.
    #[inline]
    pub fn tag(mut self, key: impl Into<Cow<'static, str>>, value: impl Into<TagValue>) -> Self {
        self.options.tags.push(Tag::new(key, value));
        self
    }

    /// Sets an explicit start time.
    #[inline]
    pub fn start_time(mut self, time: SystemTime) -> Self {
        self.options.start_time = Some(time);
        self
    }

    /// Does not parent the span on the current span.
    #[inline]
    pub fn ignore_current_span(mut self) -> Self {
        self.ignore_current = true;
        self
    }

    /// Starts the span.
    #[inline]
    pub fn start(mut self) -> Span {
        if !self.explicit_parent && !self.ignore_current {
            if let Some(cx) = current::current_context() {
                if cx.is_valid() {
                    self.options.references.push(Reference::child_of(cx));
                }
            }
        }
        match self.name {
            SpanName::Ready(name) => self.tracer.start_span_with_options(name, &mut self.options),
            SpanName::Lazy(make_name) => self
                .tracer
                .start_span_with_lazy_name(make_name, &mut self.options),
        }
    }

    /// Starts the span and makes it shareable.
    #[inline]
    pub fn start_shared(self) -> crate::SharedSpan {
        self.start().into_shared()
    }
}
