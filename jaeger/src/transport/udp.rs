//! UDP to a Jaeger agent: `Agent.emitBatch` in the Thrift compact protocol.

use std::sync::Arc;

use opentracing_api::FinishedSpan;
use tokio::net::UdpSocket;

use super::thrift::{self, ClientStats, Compact};
use super::{SendFuture, SendOutcome, Transport, TransportError};
use crate::metrics::Metrics;
use crate::process::Process;

/// The largest datagram the agent accepts by default.
pub const DEFAULT_MAX_PACKET_SIZE: usize = 65_000;

/// Room in a packet for everything but the process and the spans: message
/// header, batch and list headers, sequence number and client stats
/// (jaeger-client-go reserves 70 bytes the same way).
const BATCH_OVERHEAD: usize = 70;

/// Sends spans to a Jaeger agent (port 6831) as compact-Thrift
/// `emitBatch` datagrams, splitting batches to fit `max_packet_size`.
///
/// A span too large to fit a packet on its own is dropped and counted. The
/// agent address is resolved again whenever a send fails, so a restarted
/// agent with a new address is found.
#[derive(Debug)]
pub struct UdpAgentTransport {
    addr: String,
    max_packet_size: usize,
    socket: Option<UdpSocket>,
    seq_no: i64,
    process: Option<(Process, Vec<u8>)>,
    too_large: i64,
    failed: i64,
    metrics: Option<Arc<Metrics>>,
}

impl UdpAgentTransport {
    /// A transport to `host:port`, with the default packet size.
    pub fn new(addr: impl Into<String>) -> Self {
        Self::with_max_packet_size(addr, DEFAULT_MAX_PACKET_SIZE)
    }

    /// A transport with another maximum packet size.
    pub fn with_max_packet_size(addr: impl Into<String>, max_packet_size: usize) -> Self {
        UdpAgentTransport {
            addr: addr.into(),
            max_packet_size: max_packet_size.max(BATCH_OVERHEAD + 64),
            socket: None,
            seq_no: 0,
            process: None,
            too_large: 0,
            failed: 0,
            metrics: None,
        }
    }

    pub(crate) fn set_metrics(&mut self, metrics: Arc<Metrics>) {
        self.metrics = Some(metrics);
    }

    async fn socket(&mut self) -> Result<&UdpSocket, TransportError> {
        if self.socket.is_none() {
            let target = tokio::net::lookup_host(&self.addr)
                .await
                .map_err(|e| TransportError::Retryable(format!("resolving {}: {e}", self.addr)))?
                .next()
                .ok_or_else(|| {
                    TransportError::Retryable(format!("{} resolves to nothing", self.addr))
                })?;
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
    ) -> Result<SendOutcome, TransportError> {
        let process = self.encoded_process(process);
        let budget = self
            .max_packet_size
            .saturating_sub(process.len() + BATCH_OVERHEAD);
        let encoded = thrift::encode_spans::<Compact>(spans);
        let mut outcome = SendOutcome::default();
        // Each packet with the number of spans in it.
        let mut packets: Vec<(Vec<u8>, usize)> = Vec::new();
        let mut current: Vec<&[u8]> = Vec::new();
        let mut current_len = 0;
        for span in &encoded {
            if span.len() > budget {
                outcome.too_large += 1;
                self.too_large += 1;
                continue;
            }
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
            let socket = match self.socket().await {
                Ok(s) => s,
                Err(e) if outcome.sent == 0 => return Err(e),
                Err(_) => {
                    outcome.failed = total - outcome.sent;
                    return Ok(outcome);
                }
            };
            if let Err(e) = socket.send(packet).await {
                // Re-resolve next time: the agent may have moved.
                self.socket = None;
                let unsent = total - outcome.sent;
                self.failed += i64::try_from(unsent).unwrap_or(i64::MAX);
                if outcome.sent == 0 {
                    return Err(TransportError::Permanent(format!(
                        "sending to {}: {e}",
                        self.addr
                    )));
                }
                outcome.failed = unsent;
                return Ok(outcome);
            }
            outcome.sent += n;
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
        Box::pin(self.send_batch(process, spans))
    }

    fn name(&self) -> &'static str {
        "udp"
    }
}
