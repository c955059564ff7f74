//! The response future of the server and client layers.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use opentracing_api::tags;
use opentracing_tower::lifecycle::{run_in_span, RequestSpan, Side};

use crate::body::GrpcBody;
use crate::call::Call;
use crate::status::{code_from_http, read_status, record};

pin_project_lite::pin_project! {
    /// The response future of [`GrpcServerService`](crate::GrpcServerService)
    /// and [`GrpcClientService`](crate::GrpcClientService).
    ///
    /// The call's span is current while the inner service runs. A
    /// trailers-only response (a status in the headers) finishes the span
    /// at once; otherwise the span goes with the response body
    /// ([`GrpcBody`]), which finishes it at the trailers. A service error
    /// (a transport failure on the client) fails and finishes the span. If
    /// the future is dropped first, the call was cancelled (or its
    /// deadline passed, or the service panicked): the span says so and
    /// finishes.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        tracked: Option<Box<RequestSpan>>,
        call: Call,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(t) = this.tracked.take() {
                this.call.end_early(t);
            }
        }
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, tracked: Option<Box<RequestSpan>>, call: Call) -> Self {
        ResponseFuture {
            inner,
            tracked,
            call,
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("traced", &self.tracked.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: fmt::Display,
{
    type Output = Result<Response<GrpcBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let call = *this.call;
        let inner = this.inner;
        // A panic in the service is recorded as it unwinds through here.
        let result = ready!(run_in_span(this.tracked, || inner.poll(cx)));
        let Some(mut t) = this.tracked.take() else {
            return Poll::Ready(result.map(|resp| resp.map(|b| GrpcBody::new(b, None, call))));
        };
        Poll::Ready(match result {
            Ok(resp) => {
                if let Some((code, message)) = read_status(resp.headers()) {
                    // Trailers-only: the call is over.
                    call.record(&mut t, code, &message);
                    t.finish();
                    Ok(resp.map(|b| GrpcBody::new(b, None, call)))
                } else if resp.status() != http::StatusCode::OK {
                    // Not a gRPC response (a proxy's error, an HTTP route).
                    let status = resp.status();
                    t.span().set_tag(tags::HTTP_STATUS_CODE, status.as_u16());
                    record(&mut t, code_from_http(status), &format!("HTTP {status}"));
                    t.finish();
                    Ok(resp.map(|b| GrpcBody::new(b, None, call)))
                } else {
                    Ok(resp.map(|b| GrpcBody::new(b, Some(t), call)))
                }
            }
            Err(e) => {
                let kind = match call.side {
                    Side::Server => "service_error",
                    _ => "transport_error",
                };
                call.fail(&mut t, kind, e.to_string());
                t.finish();
                Err(e)
            }
        })
    }
}
