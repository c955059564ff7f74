//! Trace and span identifiers, and the trace flags byte.

use std::fmt;

/// A 128-bit trace identifier.
///
/// Jaeger historically used 64-bit trace ids; such ids are 128-bit ids whose
/// [`high`](TraceId::high) half is zero, and they are written as 16 hex
/// digits in Jaeger and B3 headers (32 digits otherwise). W3C `traceparent`
/// always carries all 32 digits. The zero id is invalid.
///
/// ```
/// use opentracing_api::TraceId;
/// let id = TraceId::from_u64(0xa1b2_c3d4);
/// assert_eq!(id.to_string(), "00000000a1b2c3d4");
/// assert_eq!(id.to_hex32(), "000000000000000000000000a1b2c3d4");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId(u128);

impl TraceId {
    /// The invalid, all-zero trace id.
    pub const INVALID: TraceId = TraceId(0);

    /// A trace id from its 128-bit value.
    #[inline]
    pub const fn from_u128(value: u128) -> Self {
        TraceId(value)
    }

    /// A 64-bit trace id (high half zero).
    #[inline]
    pub const fn from_u64(low: u64) -> Self {
        TraceId(low as u128)
    }

    /// A trace id from its high and low halves.
    #[inline]
    pub const fn from_parts(high: u64, low: u64) -> Self {
        TraceId(((high as u128) << 64) | low as u128)
    }

    /// The 128-bit value.
    #[inline]
    pub const fn to_u128(self) -> u128 {
        self.0
    }

    /// The high 64 bits (zero for a 64-bit id).
    #[inline]
    pub const fn high(self) -> u64 {
        (self.0 >> 64) as u64
    }

    /// The low 64 bits.
    #[inline]
    pub const fn low(self) -> u64 {
        self.0 as u64
    }

    /// Whether the id is non-zero.
    #[inline]
    pub const fn is_valid(self) -> bool {
        self.0 != 0
    }

    /// Whether the id fits in 64 bits.
    #[inline]
    pub const fn is_64bit(self) -> bool {
        self.high() == 0
    }

    /// 32 lowercase hex digits, as in W3C `traceparent`.
    #[inline]
    pub fn to_hex32(self) -> String {
        let mut s = Vec::with_capacity(32);
        push_hex_u128(&mut s, self.0);
        ascii_string(s)
    }

    /// Parses 1 to 32 hex digits (either case), left-padding shorter input
    /// as the Jaeger wire specification requires of receivers.
    ///
    /// Returns `None` for empty, over-long or non-hex input. A zero id is
    /// returned as is; check [`is_valid`](Self::is_valid).
    #[inline]
    pub fn from_hex(hex: &[u8]) -> Option<Self> {
        if hex.is_empty() {
            return None;
        }
        parse_hex_u128(hex).map(TraceId)
    }
}

impl fmt::Display for TraceId {
    /// 16 lowercase hex digits for a 64-bit id, 32 otherwise (Jaeger's form).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_64bit() {
            write!(f, "{:016x}", self.low())
        } else {
            write!(f, "{:032x}", self.0)
        }
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

/// A 64-bit span identifier. The zero id is invalid.
///
/// ```
/// use opentracing_api::SpanId;
/// assert_eq!(SpanId::from_u64(255).to_string(), "00000000000000ff");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SpanId(u64);

impl SpanId {
    /// The invalid, all-zero span id.
    pub const INVALID: SpanId = SpanId(0);

    /// A span id from its value.
    #[inline]
    pub const fn from_u64(value: u64) -> Self {
        SpanId(value)
    }

    /// The 64-bit value.
    #[inline]
    pub const fn to_u64(self) -> u64 {
        self.0
    }

    /// Whether the id is non-zero.
    #[inline]
    pub const fn is_valid(self) -> bool {
        self.0 != 0
    }

    /// Parses 1 to 16 hex digits (either case), left-padding shorter input.
    #[inline]
    pub fn from_hex(hex: &[u8]) -> Option<Self> {
        parse_hex_u64(hex).map(SpanId)
    }
}

impl fmt::Display for SpanId {
    /// 16 lowercase hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

/// The trace flags byte, with Jaeger's bit assignments.
///
/// Bit `0x01` is *sampled* (also W3C's and B3's), `0x02` is *debug* (forced
/// sampling; B3's `X-B3-Flags: 1`, Jaeger's debug bit), `0x08` is Jaeger's
/// *firehose*. Other bits are carried through untouched.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TraceFlags(u8);

impl TraceFlags {
    /// The sampled bit.
    pub const SAMPLED: TraceFlags = TraceFlags(0x01);
    /// The debug bit (forced sampling).
    pub const DEBUG: TraceFlags = TraceFlags(0x02);
    /// Jaeger's firehose bit.
    pub const FIREHOSE: TraceFlags = TraceFlags(0x08);
    /// No flags.
    pub const NONE: TraceFlags = TraceFlags(0);

    /// Flags from their byte.
    #[inline]
    pub const fn from_u8(bits: u8) -> Self {
        TraceFlags(bits)
    }

    /// The byte.
    #[inline]
    pub const fn to_u8(self) -> u8 {
        self.0
    }

    /// Whether the sampled bit is set.
    #[inline]
    pub const fn is_sampled(self) -> bool {
        self.0 & 0x01 != 0
    }

    /// Whether the debug bit is set.
    #[inline]
    pub const fn is_debug(self) -> bool {
        self.0 & 0x02 != 0
    }

    /// These flags with the sampled bit set or cleared.
    #[inline]
    pub const fn with_sampled(self, sampled: bool) -> Self {
        if sampled {
            TraceFlags(self.0 | 0x01)
        } else {
            TraceFlags(self.0 & !0x01)
        }
    }

    /// These flags with the debug bit set or cleared.
    #[inline]
    pub const fn with_debug(self, debug: bool) -> Self {
        if debug {
            TraceFlags(self.0 | 0x02)
        } else {
            TraceFlags(self.0 & !0x02)
        }
    }
}

impl fmt::Debug for TraceFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TraceFlags({:#04x}{}{})",
            self.0,
            if self.is_sampled() { " sampled" } else { "" },
            if self.is_debug() { " debug" } else { "" }
        )
    }
}

/// Nibble value of each byte, or `INVALID`: both cases of hex digits.
const HEX_ANY: [u8; 256] = hex_table(true);
/// Nibble value of each byte, or `INVALID`: lower-case hex digits only.
const HEX_LOWER: [u8; 256] = hex_table(false);
const INVALID: u8 = 0x80;

const fn hex_table(upper: bool) -> [u8; 256] {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        if upper {
            t[b'A' as usize + i] = 10 + i as u8;
        }
        i += 1;
    }
    t
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Per byte of `x` (every byte below 0x80): 0x80 where the byte is at least
/// `c`, else 0. Adding `0x80 - c` to a byte below 0x80 cannot carry into the
/// next byte, so the bytes are compared independently.
#[inline]
const fn ge(x: u64, c: u8) -> u64 {
    x.wrapping_add(ONES * (0x80 - c as u64)) & HIGHS
}

/// Eight ASCII hex digits (big-endian in `x`) to their value, SWAR style;
/// `None` unless every byte is `0-9`, `a-f`, or (when `upper`) `A-F`.
#[inline]
fn parse8(x: u64, upper: bool) -> Option<u32> {
    if x & HIGHS != 0 {
        return None;
    }
    let digit = ge(x, b'0') & !ge(x, b'9' + 1);
    let letters = if upper { x | (ONES * 0x20) } else { x };
    let alpha = ge(letters, b'a') & !ge(letters, b'f' + 1);
    if (digit | alpha) != HIGHS {
        return None;
    }
    // '0'-'9' -> low nibble; 'a'-'f' / 'A'-'F' (bit 6 set) -> low nibble + 9.
    let v = (x & (ONES * 0x0f)) + 9 * ((x >> 6) & ONES);
    let v = (v | (v >> 4)) & 0x00ff_00ff_00ff_00ff;
    let v = (v | (v >> 8)) & 0x0000_ffff_0000_ffff;
    let v = (v | (v >> 16)) & 0x0000_0000_ffff_ffff;
    Some(v as u32)
}

/// Exactly 16 hex digits, eight at a time.
#[inline]
fn parse16(hex: &[u8], upper: bool) -> Option<u64> {
    let (a, b) = hex.split_at(8);
    let hi = parse8(u64::from_be_bytes(a.try_into().ok()?), upper)?;
    let lo = parse8(u64::from_be_bytes(b.try_into().ok()?), upper)?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

/// Parses up to 16 hex digits with a lookup table (16 at once when there
/// are exactly 16, the padded form every Go and W3C sender uses); `None` on
/// any invalid byte. The caller checks the length.
#[inline]
fn parse_u64_with(upper: bool, hex: &[u8]) -> Option<u64> {
    if hex.len() == 16 {
        return parse16(hex, upper);
    }
    let table = if upper { &HEX_ANY } else { &HEX_LOWER };
    let mut v: u64 = 0;
    let mut bad: u8 = 0;
    for &b in hex {
        let n = table[usize::from(b)];
        bad |= n;
        v = (v << 4) | u64::from(n);
    }
    (bad & INVALID == 0).then_some(v)
}

/// Parses 1..=16 hex digits of either case.
#[inline]
pub(crate) fn parse_hex_u64(hex: &[u8]) -> Option<u64> {
    if hex.is_empty() || hex.len() > 16 {
        return None;
    }
    parse_u64_with(true, hex)
}

/// Parses 1..=32 hex digits of either case.
#[inline]
pub(crate) fn parse_hex_u128(hex: &[u8]) -> Option<u128> {
    if hex.len() <= 16 {
        return parse_hex_u64(hex).map(u128::from);
    }
    if hex.len() > 32 {
        return None;
    }
    let (high, low) = hex.split_at(hex.len() - 16);
    Some((u128::from(parse_u64_with(true, high)?) << 64) | u128::from(parse_u64_with(true, low)?))
}

/// Parses exactly 16 lower-case hex digits (W3C's strict form).
#[inline]
pub(crate) fn parse_lower_hex_u64(hex: &[u8]) -> Option<u64> {
    if hex.len() != 16 {
        return None;
    }
    parse_u64_with(false, hex)
}

/// Parses exactly 2 lower-case hex digits.
#[inline]
pub(crate) fn parse_lower_hex_u8(hex: &[u8]) -> Option<u8> {
    if hex.len() != 2 {
        return None;
    }
    parse_u64_with(false, hex).map(|v| v as u8)
}

/// Nibble value of one hex digit of either case.
#[cfg(test)]
pub(crate) fn hex_val(b: u8) -> Option<u8> {
    let n = HEX_ANY[usize::from(b)];
    (n & INVALID == 0).then_some(n)
}

/// The two lower-case hex digits of every byte value.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let digits = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [digits[i >> 4], digits[i & 0xf]];
        i += 1;
    }
    t
};

/// Appends exactly 16 lowercase hex digits.
#[inline]
pub(crate) fn push_hex_u64(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 16];
    for (pair, byte) in buf.chunks_exact_mut(2).zip(v.to_be_bytes()) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
    }
    out.extend_from_slice(&buf);
}

/// Appends exactly 32 lowercase hex digits.
#[inline]
pub(crate) fn push_hex_u128(out: &mut Vec<u8>, v: u128) {
    push_hex_u64(out, (v >> 64) as u64);
    push_hex_u64(out, v as u64);
}

/// Appends a trace id as Jaeger and B3 write it: 16 digits when 64-bit.
#[inline]
pub(crate) fn push_trace_id(out: &mut Vec<u8>, id: TraceId) {
    if id.is_64bit() {
        push_hex_u64(out, id.low());
    } else {
        push_hex_u128(out, id.to_u128());
    }
}

/// Turns a buffer of ASCII built by the `push_*` functions into a `String`.
/// The buffer is ASCII by construction; should that ever not hold, the
/// result is empty rather than a panic.
#[inline]
pub(crate) fn ascii_string(buf: Vec<u8>) -> String {
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_parsing_pads_and_rejects() {
        assert_eq!(TraceId::from_hex(b"1"), Some(TraceId::from_u64(1)));
        assert_eq!(
            TraceId::from_hex(b"4bf92f3577b34da6a3ce929d0e0e4736"),
            Some(TraceId::from_parts(
                0x4bf9_2f35_77b3_4da6,
                0xa3ce_929d_0e0e_4736
            ))
        );
        assert_eq!(TraceId::from_hex(b""), None);
        assert_eq!(TraceId::from_hex(&[b'1'; 33]), None);
        assert_eq!(TraceId::from_hex(b"12g4"), None);
        assert_eq!(
            SpanId::from_hex(b"ABCDEF"),
            Some(SpanId::from_u64(0x00ab_cdef))
        );
        assert_eq!(SpanId::from_hex(&[b'f'; 17]), None);
    }

    #[test]
    fn display_forms() {
        assert_eq!(TraceId::from_u64(0xabc).to_string(), "0000000000000abc");
        assert_eq!(
            TraceId::from_parts(1, 2).to_string(),
            "00000000000000010000000000000002"
        );
        let mut s = Vec::new();
        push_trace_id(&mut s, TraceId::from_parts(0, 0xff));
        assert_eq!(ascii_string(s), "00000000000000ff");
        assert_eq!(
            parse_lower_hex_u64(b"00f067aa0ba902b7"),
            Some(0x00f0_67aa_0ba9_02b7)
        );
        assert_eq!(parse_lower_hex_u64(b"00F067aa0ba902b7"), None);
        assert_eq!(
            SpanId::from_hex(b"00F067AA0BA902B7"),
            Some(SpanId::from_u64(0x00f0_67aa_0ba9_02b7))
        );
        assert_eq!(
            TraceId::from_hex(b"4BF92F3577B34DA6A3CE929D0E0E4736").map(TraceId::to_u128),
            Some(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736)
        );
        assert_eq!(parse_lower_hex_u8(b"0g"), None);
        assert_eq!(hex_val(b'F'), Some(15));
    }

    /// The 16-digit fast path agrees with the byte-at-a-time table on every
    /// valid input shape and on every single-byte corruption of one.
    #[test]
    fn swar_matches_the_table() {
        fn table(t: &[u8; 256], hex: &[u8]) -> Option<u64> {
            let mut v = 0u64;
            for &b in hex {
                let n = t[usize::from(b)];
                if n & INVALID != 0 {
                    return None;
                }
                v = (v << 4) | u64::from(n);
            }
            Some(v)
        }
        let samples = [
            *b"0123456789abcdef",
            *b"ABCDEF0123456789",
            *b"ffffffffffffffff",
            *b"0000000000000000",
            *b"00f067aa0ba902b7",
            *b"4bf92f3577b34da6",
            *b"a3CE929d0E0e4736",
        ];
        for sample in samples {
            for upper in [true, false] {
                let t = if upper { &HEX_ANY } else { &HEX_LOWER };
                assert_eq!(parse16(&sample, upper), table(t, &sample), "{sample:?}");
                for i in 0..16 {
                    for b in 0..=255u8 {
                        let mut m = sample;
                        m[i] = b;
                        assert_eq!(parse16(&m, upper), table(t, &m), "{m:?} upper={upper}");
                    }
                }
            }
        }
        assert!(TraceFlags::from_u8(3).is_debug());
        assert_eq!(TraceFlags::NONE.with_sampled(true), TraceFlags::SAMPLED);
    }
}
