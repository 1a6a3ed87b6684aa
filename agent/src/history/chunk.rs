//! The block codec: up to [`BLOCK_POINTS`] points of one series in a bit stream, after
//! Facebook's Gorilla (Pelkonen et al., VLDB 2015), with two changes: timestamps are coded
//! against the block's nominal interval, and short decimals are coded as integers.
//!
//! A block knows its first and last timestamp and its point count outside the stream, so a
//! range read skips whole blocks without decoding them. The stream starts with a header
//! saying how the values are encoded, then holds each point as its timestamp code (none for
//! the first point, whose time is the block's first timestamp) followed by its value code.
//! Bits are written most significant first; the last byte is padded with zeros.
//!
//! **Timestamps** (`i64` milliseconds, strictly increasing): before the second point, the
//! block's nominal interval `D` as a 6-bit width (minus one) and that many bits; then each
//! point's interval minus `D`, zigzagged, as `0` (zero), `10` + 3 bits, `110` + 5 bits,
//! `1110` + 9 bits, `11110` + 16 bits or `11111` + 64 bits. Intervals are computed with
//! wrapping arithmetic, so any increasing `i64`s round-trip, `i64::MIN` to `i64::MAX`
//! included. An open block takes `D` from the series' previous block (or its own first
//! interval); a sealed one is coded with its median interval when that is smaller. A
//! collection's timing jitter is noise around a fixed interval, so coding each interval's
//! distance from `D` costs about a bit less than Gorilla's delta-of-delta (which doubles the
//! noise): 3.9 bits a point against 5.0 on a real 10 s scrape.
//!
//! **Values**, one of two encodings per block (header bit 0 = XOR, 1 = integer):
//!
//! - *Integer*: when every value of the block is a short decimal, an integer `n` times
//!   `10^-k` for one `k` in `0..=9` that round-trips bit-exactly (`n as f64 / 10^k` gives the
//!   value's very bits), with `|n| <= 2^53`. Byte counters (`k` = 0), CPU seconds in
//!   hundredths (`k` = 2), load averages and durations in whole nanoseconds (`k` = 9) are.
//!   The header holds `k` (4 bits), a shift `s` (6 bits): every `n` of the block is a
//!   multiple of `2^s` (page-sized byte counts are multiples of 4096), and `m = n >> s` is
//!   coded; and the predictor (1 bit): `m` is predicted as `prev + (prev - prev2)` (delta of
//!   delta: counters, smooth gauges) or as `prev` (delta: noisy gauges), whichever codes the
//!   block smaller when it is sealed (the first `m` is predicted as 0, the second as the
//!   first). The zigzagged residual is coded `0` for zero; `10` + `w` bits when it fits the
//!   current width `w` (and wastes at most [`WIDTH_SLACK`] bits of it); else `11` + the new
//!   width in 6 bits (1..=63) + that many bits. `11 000000` is the staleness marker
//!   ([`STALE_NAN`]), which leaves the prediction alone, so a series that goes stale keeps
//!   its block in integers.
//! - *XOR* (Gorilla's): the first value's 64 bits, then each value XORed with the previous
//!   one's bits: `0` when equal; `10` + the meaningful bits when they fall inside the
//!   previous window of leading and trailing zeros; else `11` + leading zeros (6 bits) +
//!   meaningful length minus one (6 bits) + the meaningful bits. Lossless for every bit
//!   pattern: NaN payloads, -0.0, infinities.
//!
//! An open block ([`Head`]) starts in the cheapest encoding that holds its first value.
//! When a value does not fit (a decimal with more digits, an odd number under a shift, or
//! no short decimal at all), the block so far is decoded and encoded again from its start
//! in the encoding that holds every value: at most a handful of times per block, each
//! costing one pass over at most [`BLOCK_POINTS`] points. A full block is sealed into a
//! [`Block`] whose bytes are a `Box<[u8]>` of exactly the stream's length, after trying
//! the other parameters (median interval, other predictor) and keeping the smallest.

use super::{Millis, STALE_NAN};

/// Most points in one block. 240 points is 40 minutes at 10 s, 4 minutes at 1 s: large
/// enough that the per-block cost (its 40-byte header in the series' list, the allocation's
/// own overhead and the first value's full code) stays near a fifth of a byte per point,
/// small enough that a range read decodes little outside the range and that thinning and
/// dropping work on fine slices of a day.
pub const BLOCK_POINTS: usize = 240;

/// Largest decimal exponent `k` of the integer encoding.
const MAX_K: usize = 9;
/// `10^k` for every `k` of the integer encoding; all exact in an `f64`.
const POW10: [f64; MAX_K + 1] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
/// Largest magnitude of an integer `n` of the integer encoding (every such `n` is an exact
/// `f64`, and residuals stay below 2^56, so a width always fits in 6 bits).
const MAX_INT: i64 = 1 << 53;
/// How many bits of the current width a residual may leave unused before a new, narrower
/// width is written (a new width costs 6 bits more than reusing one).
const WIDTH_SLACK: u32 = 4;
/// Bits of the timestamp residual buckets after `10`, `110`, `1110` and `11110`
/// (`11111` is followed by 64 bits).
const TS_BUCKETS: [u32; 4] = [3, 5, 9, 16];

// ---------------------------------------------------------------------------------------
// Bits

/// Appends bits to a byte buffer, most significant first.
#[derive(Debug, Clone, Default)]
struct BitWriter {
    buf: Vec<u8>,
    /// Bits used in the last byte of `buf` (0: the last byte is full, or there is none).
    used: u32,
}

impl BitWriter {
    /// Appends the low `n` bits of `value` (`n` <= 64).
    fn write(&mut self, value: u64, n: u32) {
        if n == 0 {
            return;
        }
        if self.buf.capacity() - self.buf.len() < 9 {
            // Grow by a little at a time: the open block's slack is memory too.
            self.buf.reserve_exact(32.max(self.buf.len() / 4));
        }
        let mut left = n;
        // Fill the last byte's free bits.
        if self.used > 0 {
            let free = 8 - self.used;
            let take = free.min(left);
            let chunk = (value >> (left - take)) & ((1u64 << take) - 1);
            if let Some(last) = self.buf.last_mut() {
                *last |= (chunk << (free - take)) as u8;
            }
            self.used = (self.used + take) % 8;
            left -= take;
        }
        // Whole bytes, then the rest at the top of a new byte.
        while left >= 8 {
            left -= 8;
            self.buf.push((value >> left) as u8);
        }
        if left > 0 {
            self.buf.push((value << (8 - left)) as u8);
            self.used = left;
        }
    }

    fn bit(&mut self, b: bool) {
        self.write(u64::from(b), 1);
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.used = 0;
    }
}

/// Why a block's stream could not be decoded, and at which bit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What was wrong.
    pub what: &'static str,
    /// Bit offset in the block's bytes where it was found.
    pub bit: usize,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at bit {}", self.what, self.bit)
    }
}

/// Reads bits from a byte slice, most significant first.
struct BitReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        BitReader { buf, pos: 0 }
    }

    fn error(&self, what: &'static str) -> DecodeError {
        DecodeError {
            what,
            bit: self.pos,
        }
    }

    /// The 8 bytes from `at` as a big-endian integer, zeros past the end.
    fn word(&self, at: usize) -> u64 {
        match self.buf.get(at..at + 8) {
            Some(bytes) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(bytes);
                u64::from_be_bytes(a)
            }
            None => {
                let mut a = [0u8; 8];
                let tail = self.buf.get(at..).unwrap_or(&[]);
                a[..tail.len()].copy_from_slice(tail);
                u64::from_be_bytes(a)
            }
        }
    }

    /// The next `n` bits (`n` <= 64).
    fn read(&mut self, n: u32) -> Result<u64, DecodeError> {
        if n == 0 {
            return Ok(0);
        }
        let n_us = n as usize;
        if self.pos + n_us > self.buf.len() * 8 {
            return Err(self.error("stream ends inside a point"));
        }
        let byte = self.pos / 8;
        let off = (self.pos % 8) as u32;
        let w = self.word(byte);
        let value = if off + n <= 64 {
            (w << off) >> (64 - n)
        } else {
            // 64 - off bits from this word, the rest (< 8) from the byte after it.
            let lo = off + n - 64;
            let next = u64::from(self.buf.get(byte + 8).copied().unwrap_or(0));
            ((w << off) >> (off - lo)) | (next >> (8 - lo))
        };
        self.pos += n_us;
        Ok(value)
    }

    fn bit(&mut self) -> Result<bool, DecodeError> {
        let byte = self
            .buf
            .get(self.pos / 8)
            .ok_or_else(|| self.error("stream ends inside a point"))?;
        let b = (byte >> (7 - self.pos % 8)) & 1 == 1;
        self.pos += 1;
        Ok(b)
    }

    /// Counts `1` bits up to the first `0` or up to `max` ones.
    fn ones(&mut self, max: u32) -> Result<u32, DecodeError> {
        let mut n = 0;
        while n < max && self.bit()? {
            n += 1;
        }
        Ok(n)
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

/// Bits needed for `z` (0 for 0).
fn width(z: u64) -> u32 {
    64 - z.leading_zeros()
}

// ---------------------------------------------------------------------------------------
// Encodings

/// How a block's values are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Mode {
    /// Gorilla's XOR of the values' bits.
    #[default]
    Xor,
    /// Integers `n = m << shift` of value `n / 10^k`, as deltas-of-deltas of `m`.
    Int { k: u8, shift: u8 },
}

/// The integer `n` with `n / 10^k` bit-identical to `v`, if there is one within
/// [`MAX_INT`]. Never for NaN, infinities or -0.0 (0 / 10^k is +0.0).
fn to_int(v: f64, k: usize) -> Option<i64> {
    let p = POW10.get(k)?;
    let m = (v * p).round();
    // NaN fails the comparison; the bound keeps `n` exact and the residuals small.
    if m.is_nan() || m.abs() > MAX_INT as f64 {
        return None;
    }
    let n = m as i64;
    ((n as f64 / p).to_bits() == v.to_bits()).then_some(n)
}

/// The cheapest encoding that holds every value of `values` (staleness markers aside).
fn mode_for(values: impl Iterator<Item = f64> + Clone) -> Mode {
    let mut k = 0;
    for v in values.clone().filter(|v| v.to_bits() != STALE_NAN) {
        match (k..=MAX_K).find(|&k| to_int(v, k).is_some()) {
            Some(kv) => k = kv,
            None => return Mode::Xor,
        }
    }
    let mut shift = 63u32;
    for v in values.filter(|v| v.to_bits() != STALE_NAN) {
        match to_int(v, k) {
            Some(0) => {}
            Some(n) => shift = shift.min(n.trailing_zeros()),
            None => return Mode::Xor,
        }
    }
    if shift == 63 {
        shift = 0; // only zeros (or no values): nothing to gain
    }
    Mode::Int {
        k: k as u8,
        shift: shift as u8,
    }
}

// ---------------------------------------------------------------------------------------
// The open block

/// The encoder's state after the last point written: what the next point is coded against.
#[derive(Debug, Clone, Copy, Default)]
struct State {
    /// Last timestamp, and the block's nominal interval (from its second point on).
    t: Millis,
    interval: i64,
    /// XOR: bits of the last value, and the current window (`lead` = 64: none yet).
    bits: u64,
    lead: u32,
    trail: u32,
    /// Integer: the last `m` and its delta from the one before, the current width, and
    /// whether a value (not a staleness marker) was written yet.
    m: i64,
    dm: i64,
    width: u32,
    seen: bool,
}

/// How a block predicts: the nominal interval its timestamps are coded against (the
/// block's median interval once sealed; `None`: its first interval) and, in the integer
/// encoding, whether a value is predicted from the last value and its trend (delta of
/// delta, right for counters and smooth gauges) or from the last value alone (delta, right
/// for noisy gauges). A sealed block keeps whichever codes it smaller, and the next block of
/// the series starts with the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Params {
    interval: Option<Millis>,
    dod: bool,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            interval: None,
            dod: true,
        }
    }
}

/// The open block of a series: its stream so far and the encoder's state.
#[derive(Debug, Clone, Default)]
pub struct Head {
    w: BitWriter,
    mode: Mode,
    params: Params,
    state: State,
    first: Millis,
    count: u16,
    /// Bits of the last value (the staleness marker included).
    last_bits: u64,
}

impl Head {
    /// Number of points.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether it holds no point.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether it holds [`BLOCK_POINTS`] points.
    pub fn is_full(&self) -> bool {
        self.len() >= BLOCK_POINTS
    }

    /// First timestamp (meaningful when not empty).
    pub fn first(&self) -> Millis {
        self.first
    }

    /// The last point, if any.
    pub fn last(&self) -> Option<(Millis, f64)> {
        (self.count > 0).then(|| (self.state.t, f64::from_bits(self.last_bits)))
    }

    /// Capacity of its buffer in bytes (what it holds on the heap).
    pub fn capacity(&self) -> usize {
        self.w.buf.capacity()
    }

    /// Appends a point. The caller ensures the block is not full and `t` is after the
    /// last point.
    pub fn push(&mut self, t: Millis, v: f64) {
        if self.count == 0 {
            self.w.clear();
            self.mode = mode_for(std::iter::once(v));
            self.first = t;
            self.write_header();
        } else if !self.fits(v) {
            self.rebuild_with(t, v);
            return;
        }
        self.write_point(t, v);
    }

    /// Whether `v` can be written in the current encoding.
    fn fits(&self, v: f64) -> bool {
        match self.mode {
            Mode::Xor => true,
            Mode::Int { k, shift } => {
                v.to_bits() == STALE_NAN
                    || to_int(v, usize::from(k))
                        .is_some_and(|n| n.trailing_zeros() >= u32::from(shift))
            }
        }
    }

    /// Encodes the block again from its start, with `(t, v)` appended, in the encoding that
    /// holds all of its values.
    fn rebuild_with(&mut self, t: Millis, v: f64) {
        let mut points = Vec::with_capacity(self.len() + 1);
        // The stream is our own: it decodes. Should it not, what decoded is kept.
        let _ = decode(&self.w.buf, self.first, self.count, |t, v| {
            points.push((t, v))
        });
        points.push((t, v));
        let params = self.params;
        self.encode_all(&points, params);
    }

    /// Replaces the block's content with `points` (at most [`BLOCK_POINTS`], increasing
    /// times) coded with `params`, choosing the encoding that holds all their values.
    fn encode_all(&mut self, points: &[(Millis, f64)], params: Params) {
        self.count = 0;
        self.w.clear();
        self.params = params;
        let Some(&(first, _)) = points.first() else {
            return;
        };
        self.mode = mode_for(points.iter().map(|p| p.1));
        self.first = first;
        self.write_header();
        for &(t, v) in points {
            self.write_point(t, v);
        }
    }

    /// `points` coded with the parameters that code them smallest among their median
    /// interval with either predictor (one in XOR, where there is no predictor), and
    /// `current`, a coding of them already made (not made again); `None` when `current`
    /// is the smallest.
    fn encode_best(points: &[(Millis, f64)], current: Option<(&Head, usize)>) -> Option<Head> {
        let mut deltas: Vec<Millis> = points
            .windows(2)
            .map(|w| w[1].0.wrapping_sub(w[0].0))
            .collect();
        let interval = if deltas.is_empty() {
            None
        } else {
            let middle = deltas.len() / 2;
            deltas.select_nth_unstable(middle);
            deltas.get(middle).copied()
        };
        let mode = mode_for(points.iter().map(|p| p.1));
        let predictors: &[bool] = match mode {
            Mode::Int { .. } => &[true, false],
            Mode::Xor => &[true],
        };
        let mut best: Option<Head> = None;
        let mut best_len = current.map_or(usize::MAX, |(_, len)| len);
        for &dod in predictors {
            let params = Params { interval, dod };
            if current.is_some_and(|(h, _)| h.mode == mode && h.params == params) {
                continue; // that is the current coding
            }
            let mut h = Head::default();
            h.encode_all(points, params);
            if h.w.buf.len() < best_len {
                best_len = h.w.buf.len();
                best = Some(h);
            }
        }
        best
    }

    fn write_header(&mut self) {
        match self.mode {
            Mode::Xor => self.w.bit(false),
            Mode::Int { k, shift } => {
                self.w.bit(true);
                self.w.write(u64::from(k), 4);
                self.w.write(u64::from(shift), 6);
                self.w.bit(self.params.dod);
            }
        }
    }

    fn write_point(&mut self, t: Millis, v: f64) {
        let s = &mut self.state;
        let w = &mut self.w;
        // Timestamp: none for the first point; the nominal interval before the second.
        if self.count == 0 {
            *s = State::default();
        } else {
            let delta = t.wrapping_sub(s.t);
            if self.count == 1 {
                s.interval = self.params.interval.unwrap_or(delta);
                self.params.interval = Some(s.interval);
                let n = width(s.interval as u64).max(1);
                w.write(u64::from(n - 1), 6);
                w.write(s.interval as u64, n);
            }
            let z = zigzag(delta.wrapping_sub(s.interval));
            let n = width(z);
            if z == 0 {
                w.bit(false);
            } else if let Some(i) = TS_BUCKETS.iter().position(|&b| n <= b) {
                // `i + 1` ones then a zero, then the bucket's bits.
                w.write((1 << (i + 2)) - 2, i as u32 + 2);
                w.write(z, TS_BUCKETS[i]);
            } else {
                w.write(0b11111, 5);
                w.write(z, 64);
            }
        }
        s.t = t;
        // Value.
        let bits = v.to_bits();
        match self.mode {
            Mode::Xor => {
                if self.count == 0 {
                    w.write(bits, 64);
                    s.lead = 64;
                } else {
                    let x = bits ^ s.bits;
                    if x == 0 {
                        w.bit(false);
                    } else {
                        let lead = x.leading_zeros();
                        let trail = x.trailing_zeros();
                        if s.lead < 64 && lead >= s.lead && trail >= s.trail {
                            w.write(0b10, 2);
                            w.write(x >> s.trail, 64 - s.lead - s.trail);
                        } else {
                            let len = 64 - lead - trail;
                            w.write(0b11, 2);
                            w.write(u64::from(lead), 6);
                            w.write(u64::from(len - 1), 6);
                            w.write(x >> trail, len);
                            s.lead = lead;
                            s.trail = trail;
                        }
                    }
                }
                s.bits = bits;
            }
            Mode::Int { k, shift } => {
                if bits == STALE_NAN {
                    w.write(0b11, 2);
                    w.write(0, 6);
                } else {
                    let n = to_int(v, usize::from(k)).unwrap_or(0);
                    let m = n >> shift;
                    let predicted = if self.params.dod { s.m + s.dm } else { s.m };
                    let z = zigzag(m - predicted);
                    let n = width(z);
                    if z == 0 {
                        w.bit(false);
                    } else if n <= s.width && s.width - n <= WIDTH_SLACK {
                        w.write(0b10, 2);
                        w.write(z, s.width);
                    } else {
                        w.write(0b11, 2);
                        w.write(u64::from(n), 6);
                        w.write(z, n);
                        s.width = n;
                    }
                    // The first value's delta is not a trend: predict the second as the first.
                    s.dm = if s.seen { m - s.m } else { 0 };
                    s.m = m;
                    s.seen = true;
                }
            }
        }
        self.last_bits = bits;
        self.count += 1;
    }

    /// The block as sealed: its stream in a box of exactly its length. The head is left
    /// empty.
    pub fn seal(&mut self) -> Option<Block> {
        if self.count == 0 {
            return None;
        }
        if self.count > 2 {
            let mut points = Vec::with_capacity(self.len());
            let _ = decode(&self.w.buf, self.first, self.count, |t, v| {
                points.push((t, v))
            });
            let current = Some((&*self, self.w.buf.len()));
            if let Some(best) = Head::encode_best(&points, current)
                && best.count == self.count
            {
                self.w = best.w;
                self.params = best.params;
                self.mode = best.mode;
            }
        }
        let w = std::mem::take(&mut self.w);
        let block = Block {
            first: self.first,
            last: self.state.t,
            count: self.count,
            thinned: 0,
            data: w.buf.into_boxed_slice(),
        };
        // The next block starts where this one ended up.
        let params = self.params;
        *self = Head::default();
        self.params = params;
        Some(block)
    }

    /// Appends its points with `from <= t <= to` to `out`.
    pub fn points(&self, from: Millis, to: Millis, out: &mut Vec<(Millis, f64)>) {
        if self.count == 0 || self.state.t < from || self.first > to {
            return;
        }
        let _ = decode(&self.w.buf, self.first, self.count, |t, v| {
            if from <= t && t <= to {
                out.push((t, v));
            }
        });
    }

    /// Its stream so far, as a block would hold it (for a snapshot).
    pub fn bytes(&self) -> &[u8] {
        &self.w.buf
    }
}

// ---------------------------------------------------------------------------------------
// Sealed blocks

/// A sealed block: at most [`BLOCK_POINTS`] points, their time span and count, the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// First and last timestamp.
    pub first: Millis,
    pub last: Millis,
    /// Number of points.
    pub count: u16,
    /// How many times it was thinned (0: every point collected is there).
    pub thinned: u8,
    /// The stream.
    pub data: Box<[u8]>,
}

impl Block {
    /// A block from its parts as stored (a snapshot), checked: the stream must decode to
    /// `count` points (1..=[`BLOCK_POINTS`]) with strictly increasing timestamps from
    /// `first` to `last`, and end in its last byte.
    pub fn from_parts(
        first: Millis,
        last: Millis,
        count: u16,
        thinned: u8,
        data: Box<[u8]>,
    ) -> Result<Block, DecodeError> {
        let at_end = |what| DecodeError { what, bit: 0 };
        if count == 0 || usize::from(count) > BLOCK_POINTS {
            return Err(at_end("point count out of range"));
        }
        let mut prev: Option<Millis> = None;
        let mut ordered = true;
        let used = decode(&data, first, count, |t, _| {
            ordered &= prev.is_none_or(|p| t > p);
            prev = Some(t);
        })?;
        if !ordered {
            return Err(at_end("timestamps not increasing"));
        }
        if prev != Some(last) {
            return Err(at_end("last timestamp differs from the header's"));
        }
        if used.div_ceil(8) != data.len() {
            return Err(DecodeError {
                what: "bytes left after the last point",
                bit: used,
            });
        }
        Ok(Block {
            first,
            last,
            count,
            thinned,
            data,
        })
    }

    /// Appends its points with `from <= t <= to` to `out`.
    pub fn points(&self, from: Millis, to: Millis, out: &mut Vec<(Millis, f64)>) {
        if self.last < from || self.first > to {
            return;
        }
        // Blocks are built here or checked by `from_parts`: they decode.
        if from <= self.first && self.last <= to {
            out.reserve(usize::from(self.count));
            let _ = decode(&self.data, self.first, self.count, |t, v| out.push((t, v)));
        } else {
            let _ = decode(&self.data, self.first, self.count, |t, v| {
                if from <= t && t <= to {
                    out.push((t, v));
                }
            });
        }
    }

    /// The last point.
    pub fn last_point(&self) -> Option<(Millis, f64)> {
        let mut last = None;
        let _ = decode(&self.data, self.first, self.count, |t, v| {
            last = Some((t, v))
        });
        last
    }

    /// The block with every other point (the first and the last kept, and every staleness
    /// marker), marked thinned once more; `None` when that would keep every point.
    pub fn thinned(&self) -> Option<Block> {
        let n = usize::from(self.count);
        let mut kept = Vec::with_capacity(n / 2 + 1);
        let mut i = 0;
        let _ = decode(&self.data, self.first, self.count, |t, v| {
            if i % 2 == 0 || i + 1 == n || v.to_bits() == STALE_NAN {
                kept.push((t, v));
            }
            i += 1;
        });
        if kept.len() >= n {
            return None;
        }
        let mut head = Head::encode_best(&kept, None)?;
        let mut block = head.seal()?;
        block.thinned = self.thinned.saturating_add(1);
        Some(block)
    }
}

/// Decodes `count` points of a stream whose first timestamp is `first`, calling `f` with
/// each; returns the number of bits read. Arithmetic wraps: a corrupt stream gives wrong
/// points or an error, never a panic.
pub fn decode(
    data: &[u8],
    first: Millis,
    count: u16,
    mut f: impl FnMut(Millis, f64),
) -> Result<usize, DecodeError> {
    if count == 0 {
        return Ok(0);
    }
    let mut r = BitReader::new(data);
    let mut dod = false;
    let mode = if r.bit()? {
        let k = r.read(4)? as u8;
        if usize::from(k) > MAX_K {
            return Err(r.error("decimal exponent over 9"));
        }
        let shift = r.read(6)? as u8;
        dod = r.bit()?;
        Mode::Int { k, shift }
    } else {
        Mode::Xor
    };
    let mut s = State {
        t: first,
        lead: 64,
        ..State::default()
    };
    for i in 0..count {
        // Timestamp.
        if i == 1 {
            let n = r.read(6)? as u32 + 1;
            s.interval = r.read(n)? as i64;
        }
        if i > 0 {
            let z = match r.ones(5)? {
                0 => 0,
                5 => r.read(64)?,
                b => r.read(TS_BUCKETS[b as usize - 1])?,
            };
            s.t = s.t.wrapping_add(s.interval).wrapping_add(unzigzag(z));
        }
        // Value.
        let v = match mode {
            Mode::Xor => {
                if i == 0 {
                    s.bits = r.read(64)?;
                } else if r.bit()? {
                    if r.bit()? {
                        let lead = r.read(6)? as u32;
                        let len = r.read(6)? as u32 + 1;
                        if lead + len > 64 {
                            return Err(r.error("XOR window past 64 bits"));
                        }
                        s.lead = lead;
                        s.trail = 64 - lead - len;
                    } else if s.lead >= 64 {
                        return Err(r.error("XOR window reused before one was set"));
                    }
                    let x = r.read(64 - s.lead - s.trail)? << s.trail;
                    s.bits ^= x;
                }
                f64::from_bits(s.bits)
            }
            Mode::Int { k, shift } => {
                let z = if !r.bit()? {
                    Some(0)
                } else if !r.bit()? {
                    Some(r.read(s.width)?)
                } else {
                    match r.read(6)? as u32 {
                        0 => None,
                        n => {
                            s.width = n;
                            Some(r.read(n)?)
                        }
                    }
                };
                match z {
                    None => f64::from_bits(STALE_NAN),
                    Some(z) => {
                        let predicted = if dod { s.m.wrapping_add(s.dm) } else { s.m };
                        let m = predicted.wrapping_add(unzigzag(z));
                        s.dm = if s.seen { m.wrapping_sub(s.m) } else { 0 };
                        s.m = m;
                        s.seen = true;
                        let n = m.wrapping_shl(u32::from(shift));
                        n as f64 / POW10[usize::from(k)]
                    }
                }
            }
        };
        f(s.t, v);
    }
    Ok(r.pos)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::props;
    use proptest::prelude::*;

    /// Encodes `points` into one head (at most BLOCK_POINTS), seals it and decodes it back.
    fn round_trip(points: &[(Millis, f64)]) -> (Block, Vec<(Millis, f64)>) {
        let mut head = Head::default();
        for &(t, v) in points {
            head.push(t, v);
        }
        let mut open = Vec::new();
        head.points(Millis::MIN, Millis::MAX, &mut open);
        let block = head.seal().unwrap();
        let mut out = Vec::new();
        block.points(Millis::MIN, Millis::MAX, &mut out);
        assert_eq!(
            bits(&open),
            bits(&out),
            "the open block reads as the sealed one"
        );
        // What was built passes the checks of a block read from disk.
        let checked =
            Block::from_parts(block.first, block.last, block.count, 0, block.data.clone()).unwrap();
        assert_eq!(checked, block);
        (block, out)
    }

    fn bits(points: &[(Millis, f64)]) -> Vec<(Millis, u64)> {
        points.iter().map(|&(t, v)| (t, v.to_bits())).collect()
    }

    fn mode_of(block: &Block) -> Mode {
        let mut r = BitReader::new(&block.data);
        if r.bit().unwrap() {
            Mode::Int {
                k: r.read(4).unwrap() as u8,
                shift: r.read(6).unwrap() as u8,
            }
        } else {
            Mode::Xor
        }
    }

    #[test]
    fn bits_round_trip_at_every_width_and_offset() {
        let mut w = BitWriter::default();
        let mut expected = Vec::new();
        for n in 0..=64u32 {
            for offset in 0..3u64 {
                let v = if n == 0 {
                    0
                } else {
                    (0x9e37_79b9_7f4a_7c15u64.rotate_left(n + offset as u32)) >> (64 - n)
                };
                w.write(v, n);
                expected.push((v, n));
            }
        }
        let mut r = BitReader::new(&w.buf);
        for (v, n) in expected {
            assert_eq!(r.read(n).unwrap(), v, "{n} bits");
        }
        assert!(r.read(9).is_err(), "reading past the end is an error");
    }

    #[test]
    fn special_values_round_trip_bit_exactly() {
        let values = [
            f64::from_bits(STALE_NAN),
            -0.0,
            0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f64::from_bits(0x7ff8_dead_beef_0001), // NaN with a payload
            f64::from_bits(0xfff0_0000_0000_0001), // negative signalling NaN
            f64::MIN_POSITIVE,
            f64::from_bits(1), // smallest subnormal
            f64::MAX,
            f64::MIN,
            1e-300,
        ];
        let points: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as Millis * 10_000, v))
            .collect();
        let (_, out) = round_trip(&points);
        assert_eq!(bits(&out), bits(&points));
    }

    #[test]
    fn short_decimals_are_integers_and_widen_as_needed() {
        // (values, the mode the block ends in)
        let rows: [(&[f64], Mode); 8] = [
            // byte counters
            (&[4096.0, 8192.0, 12288.0], Mode::Int { k: 0, shift: 12 }),
            // an odd value after page-sized ones narrows the shift
            (&[4096.0, 8192.0, 12289.0], Mode::Int { k: 0, shift: 0 }),
            // CPU seconds in hundredths
            (&[6910.74, 6920.7, 6930.71], Mode::Int { k: 2, shift: 0 }),
            // more digits come later: the block is encoded again with k = 9
            (&[0.0, 0.5, 0.25, 0.000066971], Mode::Int { k: 9, shift: 0 }),
            // a staleness marker keeps the block in integers
            (
                &[1.0, f64::from_bits(STALE_NAN), 2.0],
                Mode::Int { k: 0, shift: 0 },
            ),
            (
                &[f64::from_bits(STALE_NAN), 3.0],
                Mode::Int { k: 0, shift: 0 },
            ),
            // a ratio with every digit is not a short decimal
            (&[0.5, 0.43488483835087943], Mode::Xor),
            // -0.0 would come back as 0.0 from an integer
            (&[1.0, -0.0], Mode::Xor),
        ];
        for (values, mode) in rows {
            let points: Vec<_> = values
                .iter()
                .enumerate()
                .map(|(i, &v)| (i as Millis * 1000, v))
                .collect();
            let (block, out) = round_trip(&points);
            assert_eq!(bits(&out), bits(&points), "{values:?}");
            assert_eq!(mode_of(&block), mode, "{values:?}");
        }
    }

    #[test]
    fn a_steady_counter_at_a_steady_interval_costs_about_two_bits_a_point() {
        let points: Vec<_> = (0..BLOCK_POINTS)
            .map(|i| {
                (
                    1_700_000_000_000 + i as Millis * 10_000,
                    1e9 + i as f64 * 1234.0,
                )
            })
            .collect();
        let (block, out) = round_trip(&points);
        assert_eq!(bits(&out), bits(&points));
        let per_point = block.data.len() as f64 * 8.0 / BLOCK_POINTS as f64;
        assert!(per_point < 2.5, "{per_point} bits a point");
    }

    /// The nominal interval and the integer predictor (true: delta of delta) of a block.
    fn params_of(block: &Block) -> (Millis, Option<bool>) {
        let mut r = BitReader::new(&block.data);
        let dod = if r.bit().unwrap() {
            r.read(10).unwrap();
            Some(r.bit().unwrap())
        } else {
            r.read(64).unwrap();
            None
        };
        if dod.is_some() {
            // The first value: `0`, or `10`/`11` and its width and bits.
            if r.bit().unwrap() {
                assert!(r.bit().unwrap(), "no width to reuse yet");
                let n = r.read(6).unwrap() as u32;
                r.read(n).unwrap();
            }
        }
        let n = r.read(6).unwrap() as u32 + 1;
        (r.read(n).unwrap() as Millis, dod)
    }

    #[test]
    fn sealing_keeps_the_parameters_that_code_the_block_smallest() {
        let mut rng = fastrand::Rng::with_seed(1);
        // (values, timestamps' jitter, the predictor kept)
        let noisy: Vec<f64> = (0..BLOCK_POINTS)
            .map(|_| rng.u32(..1_000_000) as f64)
            .collect();
        let mut total = 5e9;
        let counter: Vec<f64> = (0..BLOCK_POINTS)
            .map(|_| {
                total += 100_000.0 + rng.u32(..20) as f64;
                total
            })
            .collect();
        let ratio: Vec<f64> = (0..BLOCK_POINTS).map(|_| rng.f64()).collect();
        for (values, predictor) in [(noisy, Some(false)), (counter, Some(true)), (ratio, None)] {
            // The first interval is off by 37 ms; the others by at most 2.
            let points: Vec<_> = values
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let jitter = match i {
                        0 => 0,
                        1 => 37,
                        _ => rng.i64(-2..=2),
                    };
                    (i as Millis * 10_000 + jitter, v)
                })
                .collect();
            let mut head = Head::default();
            for &(t, v) in &points {
                head.push(t, v);
            }
            let open_len = head.bytes().len();
            let (interval, _) = params_of(&{
                let mut copy = head.clone();
                copy.w.buf.shrink_to_fit();
                Block {
                    first: copy.first,
                    last: copy.state.t,
                    count: copy.count,
                    thinned: 0,
                    data: copy.w.buf.into_boxed_slice(),
                }
            });
            assert_eq!(interval, 10_037, "the open block took its first interval");
            let block = head.seal().unwrap();
            assert!(
                block.data.len() < open_len,
                "{} >= {open_len}",
                block.data.len()
            );
            assert_eq!(params_of(&block), (10_000, predictor), "{predictor:?}");
            let mut out = Vec::new();
            block.points(Millis::MIN, Millis::MAX, &mut out);
            assert_eq!(bits(&out), bits(&points));
            // The next block starts with what this one ended with.
            assert_eq!(head.params.interval, Some(10_000));
        }
    }

    #[test]
    fn extreme_timestamps_round_trip() {
        let rows: [&[Millis]; 4] = [
            &[Millis::MIN, Millis::MAX],
            &[Millis::MIN, 0, 1, Millis::MAX],
            &[-5, -4, 1 << 62, (1 << 62) + 1, Millis::MAX - 1, Millis::MAX],
            &[
                0,
                1,
                2,
                10_000,
                10_001,
                4_000_000_000_000,
                4_000_000_000_001,
            ],
        ];
        for times in rows {
            let points: Vec<_> = times.iter().map(|&t| (t, t as f64)).collect();
            let (_, out) = round_trip(&points);
            assert_eq!(bits(&out), bits(&points));
        }
    }

    #[test]
    fn thinning_keeps_every_other_point_the_ends_and_stale_markers() {
        let mut points: Vec<_> = (0..11).map(|i| (i * 1000, i as f64 * 3.0)).collect();
        points[5].1 = f64::from_bits(STALE_NAN);
        let (block, _) = round_trip(&points);
        let thin = block.thinned().unwrap();
        assert_eq!(thin.thinned, 1);
        let mut out = Vec::new();
        thin.points(Millis::MIN, Millis::MAX, &mut out);
        let times: Vec<_> = out.iter().map(|p| p.0).collect();
        assert_eq!(times, [0, 2000, 4000, 5000, 6000, 8000, 10_000]);
        assert!(f64::from_bits(STALE_NAN).is_nan() && out[3].1.to_bits() == STALE_NAN);
        // Two points: nothing to thin.
        let (two, _) = round_trip(&points[..2]);
        assert_eq!(two.thinned(), None);
    }

    #[test]
    fn corrupt_blocks_are_errors() {
        let points: Vec<_> = (0..50).map(|i| (i * 10_000, i as f64 * 0.1)).collect();
        let (b, _) = round_trip(&points);
        let parts = |first, last, count, data: &[u8]| {
            Block::from_parts(first, last, count, 0, data.into()).map(|_| ())
        };
        // An XOR block whose second value reuses a window before any was set.
        let mut reuse = BitWriter::default();
        reuse.bit(false); // XOR
        reuse.write(1.5f64.to_bits(), 64);
        reuse.write(0, 6); // the nominal interval: 1 bit...
        reuse.write(1, 1); // ...of 1 ms
        reuse.bit(false); // the second timestamp: on the interval
        reuse.write(0b10, 2); // value: reuse the window
        reuse.write(0, 8);
        // (result, what it must say)
        let rows = [
            (parts(b.first, b.last, 0, &b.data), "count"),
            (parts(b.first, b.last, 241, &b.data), "count"),
            (parts(b.first, b.last, b.count + 4, &b.data), "ends inside"),
            (
                parts(b.first, b.last + 1, b.count, &b.data),
                "last timestamp",
            ),
            (
                parts(b.first, b.last, b.count - 1, &b.data),
                "last timestamp",
            ),
            (
                parts(b.first, b.last, b.count, &b.data[..b.data.len() - 1]),
                "ends inside",
            ),
            (
                parts(b.first, b.last, b.count, &[&b.data[..], &[0]].concat()),
                "bytes left",
            ),
            (parts(b.first, b.last, b.count, &[]), "ends inside"),
            // an integer header with a decimal exponent of 15
            (parts(0, 0, 1, &[0xff, 0xff]), "exponent"),
            // an XOR value reusing a window before any was set
            (parts(0, 1, 2, &reuse.buf), "window"),
        ];
        for (i, (result, want)) in rows.into_iter().enumerate() {
            let err = result.unwrap_err();
            assert!(err.what.contains(want), "row {i}: {err}");
        }
    }

    /// Values of every kind: raw bit patterns, the special ones, short decimals, counters.
    pub(crate) fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            3 => any::<u64>().prop_map(f64::from_bits),
            1 => prop::sample::select(vec![
                f64::from_bits(STALE_NAN), -0.0, 0.0, f64::NAN, f64::INFINITY,
                f64::NEG_INFINITY, f64::from_bits(0x7ff0_0000_0000_0001), f64::MAX,
            ]),
            3 => (-(MAX_INT)..=MAX_INT, 0..=MAX_K).prop_map(|(n, k)| n as f64 / POW10[k]),
            3 => (0i64..1_000_000, 0..=3usize).prop_map(|(n, k)| n as f64 / POW10[k]),
            1 => any::<f64>(),
        ]
    }

    /// Strictly increasing timestamps from a random start: 1 ms gaps, collection intervals
    /// with jitter, random gaps and huge jumps; cut where they would pass `i64::MAX`.
    pub(crate) fn times(max: usize) -> impl Strategy<Value = Vec<Millis>> {
        let gap = prop_oneof![
            2 => Just(1u64),
            4 => 9_990u64..10_010,
            2 => 1u64..100_000,
            1 => 1u64..u64::MAX,
        ];
        (any::<i64>(), prop::collection::vec(gap, 0..max)).prop_map(|(start, gaps)| {
            let mut t = start;
            let mut out = vec![t];
            for g in gaps {
                match t.checked_add_unsigned(g) {
                    Some(next) => {
                        t = next;
                        out.push(t);
                    }
                    None => break,
                }
            }
            out
        })
    }

    /// Series of one kind of value (decimals stay a decimal block until something else
    /// comes, as real series do) or of mixed values.
    pub(crate) fn series(max: usize) -> impl Strategy<Value = Vec<(Millis, f64)>> {
        (times(max), prop::collection::vec(value(), max), 0..4u8).prop_map(
            |(times, values, kind)| {
                times
                    .into_iter()
                    .zip(values)
                    .enumerate()
                    .map(|(i, (t, v))| match kind {
                        0 => (t, i as f64 * 1234.5), // a counter
                        1 => (t, (v * 100.0).round() / 100.0),
                        _ => (t, v),
                    })
                    .collect()
            },
        )
    }

    proptest! {
        #![proptest_config(props::config(256))]

        #[test]
        fn any_block_round_trips_bit_exactly(points in series(BLOCK_POINTS)) {
            let (block, out) = round_trip(&points);
            prop_assert_eq!(bits(&out), bits(&points));
            prop_assert_eq!(usize::from(block.count), points.len());
        }

        #[test]
        fn any_bytes_decode_to_an_error_or_points_never_a_panic(
            data in prop::collection::vec(any::<u8>(), 0..200),
            count in 0u16..300,
            first in any::<i64>(),
            last in any::<i64>(),
        ) {
            let _ = decode(&data, first, count, |_, _| {});
            let _ = Block::from_parts(first, last, count, 0, data.into());
        }
    }
}
