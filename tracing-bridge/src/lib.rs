//! A bridge from [`tracing`](https://docs.rs/tracing) to OpenTracing: a
//! `tracing_subscriber` [`Layer`](tracing_subscriber::Layer) that writes
//! what the application and its libraries emit with `tracing` into the
//! OpenTracing spans of `opentracing-api`.
//!
//! - An **event** (`info!`, `warn!`, `error!`, ...) emitted while an
//!   OpenTracing span is current becomes a **log** on that span.
//! - A **`tracing` span** (`#[instrument]`, `info_span!`) created inside a
//!   trace becomes a **child span**, current while it is entered, so that
//!   outgoing calls made in it nest under it.
//! - [`WithTraceIds`] puts `trace_id=… span_id=…` on every console line
//!   written inside a trace.
//!
//! # Setting it up
//!
//! Add the layer next to your `fmt` layer:
//!
//! ```
//! use opentracing_api::MockTracer;
//! use opentracing_tracing_bridge::{OpenTracingLayer, WithTraceIds};
//! use tracing_subscriber::filter::LevelFilter;
//! use tracing_subscriber::{fmt, prelude::*};
//!
//! let tracer = MockTracer::new(); // the Jaeger tracer, in production
//! let subscriber = tracing_subscriber::registry()
//!     .with(OpenTracingLayer::new(tracer.clone()).with_filter(LevelFilter::INFO))
//!     .with(fmt::layer().event_format(WithTraceIds::new(fmt::format())));
//! # let _ = subscriber;
//! // subscriber.init(); // or `tracing::subscriber::set_global_default`
//! ```
//!
//! Nothing else changes: the server layers of `opentracing-tower` make
//! their span current while the handler runs, and the events and spans of
//! the handler land in it.
//!
//! # Events become span logs
//!
//! An event inside a span adds one log to the current OpenTracing span (a
//! server or client span of the HTTP layers, a `#[trace]` span, a span the
//! application entered, or one this layer started for a `tracing` span),
//! timestamped when the event happened, with these fields:
//!
//! | field    | value |
//! |----------|-------|
//! | `event`  | the message (`info!("cache miss")` → `cache miss`) |
//! | *each field of the event* | its value: integers stay integers, `bool`s bools, floats floats; strings, errors (`Display`) and other values (`Debug`) are strings |
//! | `level`  | `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE` |
//! | `target` | the event's target, by default its module path |
//!
//! An `error!` event also sets `error=true` on the span. Events outside any
//! span are left to the other layers; an event with an explicit `parent:`
//! goes to that span's OpenTracing span.
//!
//! ```
//! use opentracing_api::{MockTracer, TagValue, TracerExt};
//! use opentracing_tracing_bridge::OpenTracingLayer;
//! use tracing_subscriber::prelude::*;
//!
//! let tracer = MockTracer::new();
//! let subscriber = tracing_subscriber::registry().with(OpenTracingLayer::new(tracer.clone()));
//! tracing::subscriber::with_default(subscriber, || {
//!     let request = tracer.span("GET /orders/{id}").start_shared();
//!     request.in_scope(|| {
//!         tracing::info!(order_id = 17, express = true, "order loaded");
//!         tracing::error!("payment declined");
//!     });
//!     request.finish();
//! });
//! let span = &tracer.finished_spans()[0];
//! let log = &span.logs[0].fields;
//! assert_eq!(log[0].key, "event");
//! assert_eq!(log[0].value, TagValue::from("order loaded"));
//! assert!(log.iter().any(|f| f.key == "order_id" && f.value == TagValue::I64(17)));
//! assert!(log.iter().any(|f| f.key == "express" && f.value == TagValue::Bool(true)));
//! assert_eq!(span.tag("error"), Some(&TagValue::Bool(true)));
//! ```
//!
//! ## What it costs
//!
//! In a trace the tracer does not sample, an event costs a check of the
//! current span and nothing more: its fields are not even visited. In a
//! sampled one, each field is converted once, into the log.
//!
//! ## Filtering by level and target
//!
//! The layer records whatever reaches it; choose what does with a
//! *per-layer filter*, so the console and the traces can differ. Any
//! `tracing_subscriber` filter works: [`LevelFilter`], [`Targets`],
//! `EnvFilter` (feature `env-filter` of `tracing-subscriber`), a
//! `filter_fn`.
//!
//! ```
//! # use opentracing_api::MockTracer;
//! use opentracing_tracing_bridge::OpenTracingLayer;
//! use tracing::Level;
//! use tracing_subscriber::filter::Targets;
//! use tracing_subscriber::{fmt, prelude::*};
//!
//! # let tracer = MockTracer::new();
//! let to_traces = Targets::new()
//!     .with_default(Level::INFO)
//!     .with_target("my_app", Level::DEBUG)
//!     .with_target("hyper", Level::WARN);
//! let subscriber = tracing_subscriber::registry()
//!     .with(OpenTracingLayer::new(tracer).with_filter(to_traces))
//!     .with(fmt::layer().with_filter(Targets::new().with_default(Level::WARN)));
//! # let _ = subscriber;
//! ```
//!
//! A filter applies to spans as well as events. To keep the *spans* of a
//! chatty library out of traces while still logging its events, add a span
//! filter ([`OpenTracingLayer::with_span_filter`]), or turn spans off
//! altogether ([`OpenTracingLayer::with_spans`]).
//!
//! [`LevelFilter`]: tracing_subscriber::filter::LevelFilter
//! [`Targets`]: tracing_subscriber::filter::Targets
//!
//! ## A cap on logs per span
//!
//! A span keeps at most [`DEFAULT_MAX_LOGS_PER_SPAN`] logs
//! ([`with_max_logs_per_span`](OpenTracingLayer::with_max_logs_per_span)
//! changes it), so an event in a loop cannot grow a span without bound.
//! Later events are dropped before their fields are visited; the span gets a
//! [`LOGS_DROPPED_TAG`] tag saying how many it lost, and
//! [`OpenTracingLayer::dropped_logs`] counts them over all spans (export it
//! as a metric through [`OpenTracingLayer::dropped_logs_counter`]).
//! Spans the layer started count their own logs; for spans started
//! elsewhere the layer keeps the counts, by trace and span id, for the
//! thousands of spans that log at the same time, and forgets spans that
//! have stopped logging.
//!
//! # `tracing` spans become child spans
//!
//! A `tracing` span created inside a trace starts an OpenTracing span with
//! the layer's tracer: named after the `tracing` span (the function name,
//! for `#[instrument]`), `ChildOf` the current OpenTracing span (or of the
//! OpenTracing span of its explicit `parent:`), with its fields as tags,
//! including those recorded later with `Span::record`. While the `tracing`
//! span is entered its OpenTracing span is the current span: events inside
//! become its logs, and spans started inside, by `opentracing-api`
//! (`#[trace]`) or by the client layers of `opentracing-tower`, become its
//! children. It finishes when the `tracing` span closes.
//!
//! ```
//! use opentracing_api::{MockTracer, TagValue, TracerExt};
//! use opentracing_tracing_bridge::OpenTracingLayer;
//! use tracing_subscriber::prelude::*;
//!
//! #[tracing::instrument]
//! fn load_order(order_id: u64) {
//!     tracing::info!("loaded");
//! }
//!
//! let tracer = MockTracer::new();
//! let subscriber = tracing_subscriber::registry().with(OpenTracingLayer::new(tracer.clone()));
//! tracing::subscriber::with_default(subscriber, || {
//!     let request = tracer.span("GET /orders/{id}").start_shared();
//!     request.in_scope(|| load_order(17));
//!     request.finish();
//! });
//! let spans = tracer.finished_spans();
//! let (child, request) = (&spans[0], &spans[1]);
//! assert_eq!(child.operation_name, "load_order");
//! assert_eq!(child.parent_span_id(), Some(request.context.span_id()));
//! assert_eq!(child.tag("order_id"), Some(&TagValue::I64(17)));
//! assert_eq!(child.logs.len(), 1);
//! ```
//!
//! This works across `.await` (an `Instrumented` future enters its span each
//! time it is polled, on whichever thread polls it) and into
//! `tokio::spawn`: a span created before the spawn is a child of the span
//! current there, and `fut.instrument(span)` makes it current in the task.
//!
//! Only spans inside a trace are bridged: outside one, `tracing` spans are
//! left alone, unless [`with_root_spans(true)`](OpenTracingLayer::with_root_spans)
//! asks for them to start traces. Inside a trace the tracer does not sample,
//! no span is started at all: the enclosing span's context, current
//! already, is what outgoing calls carry. `follows_from` relations between
//! `tracing` spans are not bridged (an OpenTracing span's references are
//! fixed when it starts).
//!
//! # Trace ids on console lines
//!
//! [`WithTraceIds`] wraps a `fmt` event formatter and starts each line
//! written inside a trace with `trace_id=… span_id=…`, the ids to search
//! for in the tracing UI.
//!
//! ```text
//! trace_id=3f2a9c0d11b4e7a2 span_id=9b1e44c07d2f5a31 2024-05-01T09:12:03.114Z  INFO shop::orders: order placed order_id=17
//! ```
//!
//! # Caveat
//!
//! Logs and tags are written into a span under its lock. Do not emit
//! events from inside [`SharedSpan::with`](opentracing_api::SharedSpan::with)
//! on the span they would be logged on: like any other use of that span in
//! there, it would wait for itself.
//!
//! # Features
//!
//! - `fmt` (default): [`WithTraceIds`].

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod fields;
#[cfg(feature = "fmt")]
mod format;
mod layer;

#[cfg(feature = "fmt")]
pub use format::WithTraceIds;
pub use layer::{
    DroppedLogs, OpenTracingLayer, DEFAULT_MAX_LOGS_PER_SPAN, EVENT_FIELD, LEVEL_FIELD,
    LOGS_DROPPED_TAG, TARGET_FIELD,
};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
