//! UDP to a Jaeger agent: `Agent.emitBatch` in the Thrift compact protocol.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use opentracing_api::FinishedSpan;
use tokio::net::UdpSocket;

use super::thrift::{self, ClientStats, Compact};
use super::{SendFuture, SendOutcome, Transport, TransportError};
use crate::metrics::Metrics;
use crate::process::Process;

/// The largest datagram the agent accepts by default.
pub const DEFAULT_MAX_PACKET_SIZE: usize = 65_000;

/// The largest UDP payload over IPv4 (65 535 bytes, less the 20-byte IP
/// and 8-byte UDP headers): the ceiling of
/// [`UdpAgentTransport::with_max_packet_size`]. A larger datagram can never
/// be sent, so packing spans up to a larger size would only make every
/// full-sized send fail.
pub const MAX_PACKET_SIZE: usize = 65_507;

/// How long resolving the agent's address may take by default (see
/// [`UdpAgentTransport::with_resolve_timeout`]).
pub const DEFAULT_RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Room in a packet for everything but the process and the spans: message
/// header, batch and list headers, sequence number and client stats
/// (jaeger-client-go reserves 70 bytes the same way).
const BATCH_OVERHEAD: usize = 70;

/// The smallest packet size accepted: room for the overhead and a small
/// span.
const MIN_PACKET_SIZE: usize = BATCH_OVERHEAD + 64;

/// A pending address lookup.
type LookupFuture = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

/// Resolves `host:port` with the system resolver (on a blocking thread,
/// through tokio).
fn system_lookup(addr: String) -> LookupFuture {
    Box::pin(async move { tokio::net::lookup_host(addr).await.map(Iterator::collect) })
}

/// Whether a failed `send` is worth retrying with a new socket. A
/// connected UDP socket reports the ICMP error a previous datagram drew
/// (port or host unreachable: the agent is restarting, or a route is
/// flapping) on the next send, which then sends nothing.
fn retryable_send_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::NetworkDown
            | io::ErrorKind::TimedOut
            | io::ErrorKind::Interrupted
    )
}

/// Sends spans to a Jaeger agent (port 6831) as compact-Thrift
/// `emitBatch` datagrams, splitting batches to fit `max_packet_size`.
///
/// A span too large to fit a packet on its own is dropped and counted
/// (once per batch, however often the batch is retried). The agent
/// address is resolved again whenever a send fails, so a restarted agent
/// with a new address is found; resolving it is bounded by a timeout
/// ([`with_resolve_timeout`](Self::with_resolve_timeout)), and a lookup
/// that times out is a retryable failure. A send refused because the
/// previous datagram found no agent listening (ICMP port unreachable, as
/// while the agent restarts) is retryable too.
#[derive(Debug)]
pub struct UdpAgentTransport {
    addr: String,
    max_packet_size: usize,
    resolve_timeout: Duration,
    lookup: fn(String) -> LookupFuture,
    socket: Option<UdpSocket>,
    seq_no: i64,
    process: Option<(Process, Vec<u8>)>,
    /// Client stats: spans dropped as too large, counted when a batch is
    /// first sent (not again when it is resent).
    too_large: i64,
    /// Client stats: spans that could not be sent, in batches that are
    /// final (sent in part, or given up on).
    failed: i64,
    /// Spans of the last batch that failed with an error: final only once
    /// the reporter moves on to another batch instead of resending it.
    pending_failed: i64,
    metrics: Option<Arc<Metrics>>,
}

/// Whether a send is a batch's first attempt or a retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attempt {
    First,
    Retry,
}

impl UdpAgentTransport {
    /// A transport to `host:port`, with the default packet size.
    pub fn new(addr: impl Into<String>) -> Self {
        Self::with_max_packet_size(addr, DEFAULT_MAX_PACKET_SIZE)
    }

    /// A transport with another maximum packet size (default
    /// [`DEFAULT_MAX_PACKET_SIZE`], 65 000 bytes).
    ///
    /// The size is clamped to between 134 bytes (room for the batch
    /// overhead and a small span) and [`MAX_PACKET_SIZE`] (65 507 bytes,
    /// the largest UDP payload over IPv4): a larger value is treated as
    /// 65 507. Read the value in effect with
    /// [`max_packet_size`](Self::max_packet_size).
    pub fn with_max_packet_size(addr: impl Into<String>, max_packet_size: usize) -> Self {
        UdpAgentTransport {
            addr: addr.into(),
            max_packet_size: max_packet_size.clamp(MIN_PACKET_SIZE, MAX_PACKET_SIZE),
            resolve_timeout: DEFAULT_RESOLVE_TIMEOUT,
            lookup: system_lookup,
            socket: None,
            seq_no: 0,
            process: None,
            too_large: 0,
            failed: 0,
            pending_failed: 0,
            metrics: None,
        }
    }

    /// Bounds each lookup of the agent's address (default
    /// [`DEFAULT_RESOLVE_TIMEOUT`], 5 s; at least 1 ms). A lookup that
    /// takes longer fails the send with a retryable error (the lookup
    /// itself may go on in the background: the system resolver cannot be
    /// interrupted).
    pub fn with_resolve_timeout(mut self, timeout: Duration) -> Self {
        self.resolve_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The maximum packet size in effect, after clamping.
    pub fn max_packet_size(&self) -> usize {
        self.max_packet_size
    }

    pub(crate) fn set_metrics(&mut self, metrics: Arc<Metrics>) {
        self.metrics = Some(metrics);
    }

    async fn socket(&mut self) -> Result<&UdpSocket, TransportError> {
        if self.socket.is_none() {
            let lookup = (self.lookup)(self.addr.clone());
            let target = match tokio::time::timeout(self.resolve_timeout, lookup).await {
                Err(_) => {
                    return Err(TransportError::Retryable(format!(
                        "resolving {}: timed out after {:?}",
                        self.addr, self.resolve_timeout
                    )))
                }
                Ok(Err(e)) => {
                    return Err(TransportError::Retryable(format!(
                        "resolving {}: {e}",
                        self.addr
                    )))
                }
                Ok(Ok(addrs)) => addrs.into_iter().next().ok_or_else(|| {
                    TransportError::Retryable(format!("{} resolves to nothing", self.addr))
                })?,
            };
            let local = if target.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            let socket = UdpSocket::bind(local)
                .await
                .map_err(|e| TransportError::Retryable(format!("binding a UDP socket: {e}")))?;
            socket
                .connect(target)
                .await
                .map_err(|e| TransportError::Retryable(format!("connecting to {target}: {e}")))?;
            self.socket = Some(socket);
        }
        self.socket
            .as_ref()
            .ok_or_else(|| TransportError::Retryable("no socket".into()))
    }

    fn encoded_process(&mut self, process: &Process) -> Vec<u8> {
        match &self.process {
            Some((p, bytes)) if p == process => bytes.clone(),
            _ => {
                let bytes =
                    thrift::encode::<Compact>(|p, out| thrift::write_process(p, out, process));
                self.process = Some((process.clone(), bytes.clone()));
                bytes
            }
        }
    }

    fn packet(&mut self, process: &[u8], spans: &[&[u8]]) -> Vec<u8> {
        self.seq_no += 1;
        let stats = ClientStats {
            full_queue_dropped: self.metrics.as_ref().map_or(0, |m| {
                i64::try_from(m.snapshot().spans_dropped_queue_full).unwrap_or(i64::MAX)
            }),
            too_large_dropped: self.too_large,
            failed_to_emit: self.failed,
        };
        let size = process.len() + spans.iter().map(|s| s.len()).sum::<usize>() + BATCH_OVERHEAD;
        let mut out = Vec::with_capacity(size);
        thrift::emit_batch_header(
            &mut out,
            u32::try_from(self.seq_no & 0x7fff_ffff).unwrap_or(0),
        );
        let mut p = Compact::default();
        // The batch is field 1 of emitBatch_args, already opened by the header.
        thrift::write_batch(
            &mut p,
            &mut out,
            process,
            spans,
            Some(self.seq_no),
            Some(stats),
        );
        thrift::emit_batch_footer(&mut out);
        out
    }

    async fn send_batch(
        &mut self,
        process: &Process,
        spans: &[Box<FinishedSpan>],
        attempt: Attempt,
    ) -> Result<SendOutcome, TransportError> {
        // The last batch's failure is final once the reporter moves on to
        // another batch, and void if it resends that batch.
        let pending = std::mem::take(&mut self.pending_failed);
        if attempt == Attempt::First {
            self.failed = self.failed.saturating_add(pending);
        }
        let process = self.encoded_process(process);
        let budget = self
            .max_packet_size
            .saturating_sub(process.len() + BATCH_OVERHEAD);
        let encoded = thrift::encode_spans::<Compact>(spans);
        let mut outcome = SendOutcome::default();
        for span in &encoded {
            if span.len() > budget {
                outcome.too_large += 1;
            }
        }
        // Counted in the client stats once per batch: a resend meets the
        // same spans again.
        if attempt == Attempt::First {
            self.too_large = self
                .too_large
                .saturating_add(i64::try_from(outcome.too_large).unwrap_or(i64::MAX));
        }
        // Each packet with the number of spans in it.
        let mut packets: Vec<(Vec<u8>, usize)> = Vec::new();
        let mut current: Vec<&[u8]> = Vec::new();
        let mut current_len = 0;
        for span in encoded.iter().filter(|s| s.len() <= budget) {
            if current_len + span.len() > budget {
                packets.push((self.packet(&process, &current), current.len()));
                current.clear();
                current_len = 0;
            }
            current.push(span);
            current_len += span.len();
        }
        if !current.is_empty() {
            packets.push((self.packet(&process, &current), current.len()));
        }
        let total = spans.len() - outcome.too_large;
        for (packet, n) in &packets {
            let error = match self.socket().await {
                Ok(socket) => match socket.send(packet).await {
                    Ok(_) => {
                        outcome.sent += n;
                        continue;
                    }
                    Err(e) => {
                        // Re-resolve next time: the agent may have moved.
                        self.socket = None;
                        let msg = format!("sending to {}: {e}", self.addr);
                        if retryable_send_error(&e) {
                            TransportError::Retryable(msg)
                        } else {
                            TransportError::Permanent(msg)
                        }
                    }
                },
                Err(e) => e,
            };
            let unsent = i64::try_from(total - outcome.sent).unwrap_or(i64::MAX);
            if outcome.sent == 0 {
                // The reporter may resend the whole batch.
                self.pending_failed = unsent;
                return Err(error);
            }
            // Part of the batch went out: the rest is lost (resending
            // would duplicate what was sent).
            log::debug!("udp transport: {error}");
            self.failed = self.failed.saturating_add(unsent);
            outcome.failed = total - outcome.sent;
            return Ok(outcome);
        }
        Ok(outcome)
    }
}

impl Transport for UdpAgentTransport {
    fn send<'a>(
        &'a mut self,
        process: &'a Process,
        spans: &'a [Box<FinishedSpan>],
    ) -> SendFuture<'a> {
        Box::pin(self.send_batch(process, spans, Attempt::First))
    }

    fn resend<'a>(
        &'a mut self,
        process: &'a Process,
        spans: &'a [Box<FinishedSpan>],
    ) -> SendFuture<'a> {
        Box::pin(self.send_batch(process, spans, Attempt::Retry))
    }

    fn name(&self) -> &'static str {
        "udp"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use opentracing_api::{MockTracer, TracerExt};

    fn process() -> Process {
        Process {
            service_name: "svc".into(),
            tags: Vec::new(),
        }
    }

    /// Spans with about this many bytes of tags each (in tags of at most
    /// 4000 bytes: longer values are truncated).
    #[allow(clippy::vec_box)] // batches are boxes, as the reporter hands them over
    fn spans(payloads: &[usize]) -> Vec<Box<FinishedSpan>> {
        let t = MockTracer::new();
        for (i, n) in payloads.iter().enumerate() {
            let mut s = t.span(format!("span-{i}"));
            for j in 0..n.div_ceil(4000) {
                s = s.tag(format!("p{j}"), "x".repeat((n - j * 4000).min(4000)));
            }
            s.start().finish();
        }
        t.finished_spans().into_iter().map(Box::new).collect()
    }

    /// A local agent: a bound socket, and its address.
    fn agent() -> (std::net::UdpSocket, String) {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let addr = s.local_addr().unwrap().to_string();
        (s, addr)
    }

    /// A socket whose next send fails with ECONNREFUSED: connected to a
    /// port nothing listens on, after a datagram that drew an ICMP port
    /// unreachable (what the transport's socket sees after the agent went
    /// away for a moment).
    async fn refusing_socket() -> UdpSocket {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.connect(("127.0.0.1", port)).await.unwrap();
        s.send(b"anyone?").await.unwrap();
        // On loopback the ICMP error is queued before `send` returns; give
        // a slow machine a moment anyway.
        tokio::time::sleep(Duration::from_millis(50)).await;
        s
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_refused_send_is_retryable_and_the_retry_reaches_the_agent() {
        let (agent, addr) = agent();
        let mut t = UdpAgentTransport::new(addr);
        let batch = spans(&[10]);
        block_on(async {
            t.socket = Some(refusing_socket().await);
            match t.send(&process(), &batch).await {
                Err(TransportError::Retryable(e)) => assert!(e.contains("sending to"), "{e}"),
                other => panic!("expected a retryable error, got {other:?}"),
            }
            let out = t.resend(&process(), &batch).await.unwrap();
            assert_eq!(out, SendOutcome::sent(1));
        });
        let mut buf = [0; 2048];
        assert!(
            agent.recv(&mut buf).unwrap() > 0,
            "the retry reached the agent"
        );
        assert_eq!(t.failed, 0, "delivered in the end: not a failure");
    }

    #[test]
    fn too_large_spans_are_counted_once_per_batch_not_per_attempt() {
        let (agent, addr) = agent();
        let mut t = UdpAgentTransport::with_max_packet_size(addr, 1000);
        // One span that fits, one too large for any packet.
        let batch = spans(&[10, 5000]);
        block_on(async {
            t.socket = Some(refusing_socket().await);
            assert!(t.send(&process(), &batch).await.is_err());
            t.socket = Some(refusing_socket().await);
            assert!(t.resend(&process(), &batch).await.is_err());
            let out = t.resend(&process(), &batch).await.unwrap();
            assert_eq!((out.sent, out.too_large, out.failed), (1, 1, 0));
        });
        assert_eq!(t.too_large, 1, "three attempts at one batch");
        assert_eq!(t.failed, 0);
        let mut buf = [0; 2048];
        assert!(agent.recv(&mut buf).unwrap() > 0);

        // A batch given up on after its retries counts its spans as failed
        // once, when the next batch is sent.
        block_on(async {
            t.socket = Some(refusing_socket().await);
            assert!(t.send(&process(), &batch).await.is_err());
            t.socket = Some(refusing_socket().await);
            assert!(t.resend(&process(), &batch).await.is_err());
            assert_eq!(t.failed, 0, "not final while it may be resent");
            t.send(&process(), &spans(&[10])).await.unwrap();
        });
        assert_eq!((t.too_large, t.failed), (2, 1));
    }

    #[test]
    fn a_packet_size_beyond_the_largest_udp_payload_is_capped() {
        let (agent, addr) = agent();
        let mut t = UdpAgentTransport::with_max_packet_size(addr, 1 << 20);
        assert_eq!(t.max_packet_size(), MAX_PACKET_SIZE);
        assert_eq!(
            UdpAgentTransport::with_max_packet_size("h:1", 1).max_packet_size(),
            MIN_PACKET_SIZE
        );
        // Together they would exceed any datagram: two packets, not one
        // that the kernel refuses.
        let batch = spans(&[40_000, 40_000]);
        let out = block_on(t.send(&process(), &batch)).unwrap();
        assert_eq!(out, SendOutcome::sent(2));
        let mut buf = vec![0; 1 << 17];
        for _ in 0..2 {
            let n = agent.recv(&mut buf).unwrap();
            assert!(n > 40_000 && n <= MAX_PACKET_SIZE, "{n}");
        }
    }

    #[test]
    fn a_lookup_that_hangs_times_out_as_a_retryable_error() {
        let mut t = UdpAgentTransport::new("agent.invalid:6831")
            .with_resolve_timeout(Duration::from_millis(100));
        t.lookup = |_| Box::pin(std::future::pending());
        let batch = spans(&[10]);
        let result = block_on(async {
            tokio::time::timeout(Duration::from_secs(10), t.send(&process(), &batch)).await
        });
        match result {
            Ok(Err(TransportError::Retryable(e))) => assert!(e.contains("timed out"), "{e}"),
            Ok(other) => panic!("expected a retryable error, got {other:?}"),
            Err(elapsed) => panic!("the lookup was not bounded: {elapsed}"),
        }
        // The next attempt resolves again (and works once the resolver does).
        t.lookup = |_| Box::pin(async { Ok(vec![SocketAddr::from(([127, 0, 0, 1], 9))]) });
        assert!(block_on(t.resend(&process(), &batch)).is_ok());
    }
}
