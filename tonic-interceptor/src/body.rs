//! The response body of the server and client layers.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use opentracing_tower::lifecycle::{run_in_span, RequestSpan};
use tonic::Code;

use crate::call::Call;
use crate::status::{read_status, record};

pin_project_lite::pin_project! {
    /// A gRPC response body whose trailers finish the call's span with the
    /// status they carry: unary and streaming responses alike are traced
    /// to their end. The span is current while the body is polled (a
    /// server's response stream runs the handler's code then, so calls it
    /// makes nest under the span). A body error fails the span; a body
    /// dropped before its trailers is a cancelled call (or one whose
    /// deadline passed).
    pub struct GrpcBody<B> {
        #[pin]
        inner: B,
        tracked: Option<Box<RequestSpan>>,
        call: Call,
    }

    impl<B> PinnedDrop for GrpcBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(t) = this.tracked.take() {
                this.call.end_early(t);
            }
        }
    }
}

impl<B> GrpcBody<B> {
    pub(crate) fn new(inner: B, tracked: Option<Box<RequestSpan>>, call: Call) -> Self {
        GrpcBody {
            inner,
            tracked,
            call,
        }
    }
}

impl<B> fmt::Debug for GrpcBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcBody")
            .field("finished", &self.tracked.is_none())
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for GrpcBody<B>
where
    B::Error: fmt::Display,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let inner = this.inner;
        let result = run_in_span(this.tracked, || inner.poll_frame(cx));
        if this.tracked.is_none() {
            return result;
        }
        match &result {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    if let Some(mut t) = this.tracked.take() {
                        match read_status(trailers) {
                            Some((code, message)) => this.call.record(&mut t, code, &message),
                            None => record(&mut t, Code::Unknown, "trailers without grpc-status"),
                        }
                        t.finish();
                    }
                }
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(mut t) = this.tracked.take() {
                    this.call.fail(&mut t, "stream_error", e.to_string());
                    t.finish();
                }
            }
            Poll::Ready(None) => {
                if let Some(mut t) = this.tracked.take() {
                    record(
                        &mut t,
                        Code::Unknown,
                        "the response ended without a grpc-status",
                    );
                    t.finish();
                }
            }
            Poll::Pending => {}
        }
        result
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
