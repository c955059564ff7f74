//! What the server and client layers share about one call: its side and
//! deadline, and how a call that ends early is recorded.

use std::time::{Duration, Instant};

/// How early a call may end and still count as having run out of time:
/// the server's own deadline timer (tonic's) starts a moment before the
/// layer reads `grpc-timeout`, so it fires a moment before the layer's
/// deadline.
const DEADLINE_SLACK: Duration = Duration::from_millis(10);

use opentracing_tower::lifecycle::{RequestSpan, Side};
use tonic::Code;

use crate::status::{record, GRPC_STATUS_CODE};

/// One traced call, besides its span.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Call {
    pub(crate) side: Side,
    /// When the call's `grpc-timeout` runs out.
    pub(crate) deadline: Option<Instant>,
}

impl Call {
    pub(crate) fn deadline_passed(self) -> bool {
        self.deadline
            .is_some_and(|d| Instant::now() + DEADLINE_SLACK >= d)
    }

    /// Records the call's status. A `CANCELLED` or `DEADLINE_EXCEEDED`
    /// status that comes after the call's deadline is logged as a
    /// `deadline_exceeded` error (servers report a deadline they enforce
    /// with either code; tonic's says `CANCELLED`). The server span records
    /// `DEADLINE_EXCEEDED`, what the call ran into; the client span the
    /// code it received.
    pub(crate) fn record(self, t: &mut RequestSpan, code: Code, message: &str) {
        if matches!(code, Code::Cancelled | Code::DeadlineExceeded) && self.deadline_passed() {
            let code = match self.side {
                Side::Server => Code::DeadlineExceeded,
                _ => code,
            };
            let n = i32::from(code);
            t.span().set_tag(GRPC_STATUS_CODE, n);
            t.record_status(u16::try_from(n).unwrap_or(u16::MAX));
            t.fail(
                "deadline_exceeded",
                format!("the deadline passed: {message}"),
            );
        } else {
            record(t, code, message);
        }
    }

    /// Records a failure that is not a gRPC status (a transport or body
    /// error): the deadline if it has passed, else `kind` and `message`.
    pub(crate) fn fail(self, t: &mut RequestSpan, kind: &'static str, message: String) {
        if self.deadline_passed() {
            t.fail(
                "deadline_exceeded",
                format!("the deadline passed: {message}"),
            );
        } else {
            t.fail(kind, message);
        }
    }

    /// Finishes a call whose response future or body was dropped before
    /// the call's status: a panic unwinding, the deadline, or a
    /// cancellation (the client went away, or the caller dropped the call).
    pub(crate) fn end_early(self, mut t: Box<RequestSpan>) {
        if std::thread::panicking() {
            t.fail("panic", "the service panicked");
        } else if self.deadline_passed() {
            self.record(
                &mut t,
                Code::DeadlineExceeded,
                "the call did not end before its deadline",
            );
        } else {
            let message = match self.side {
                Side::Server => "the client cancelled the call",
                _ => "the call was dropped before its end",
            };
            record(&mut t, Code::Cancelled, message);
        }
        t.finish();
    }
}
