//! Compressed history: a day of every series at its collection interval, in a hard memory
//! cap, persisted to disk.
//!
//! A [`SeriesHistory`] holds one series' points in blocks of at most
//! [`chunk::BLOCK_POINTS`] points, each a compressed bit stream (the codec is in
//! [`chunk`]): sealed blocks, oldest first, and one open block (the *head*) that grows.
//! [`enforce`] keeps many series within a retention and a byte budget, thinning old blocks
//! before dropping any; [`persist`] writes and reads snapshots of many series.
//!
//! Pure data structures: the store owns the series, decides when to push, enforce and
//! save, and takes its locks.

pub mod chunk;
pub mod config;
pub mod persist;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chunk::{Block, Head};

/// Milliseconds since the Unix epoch (the store's clock; the same as `store::Millis`).
pub type Millis = i64;

/// Prometheus's staleness marker: a NaN with this exact bit pattern says "this series
/// ended here". Stored and returned bit for bit.
pub const STALE_NAN: u64 = 0x7ff0000000000002;

/// Whether `v` is the staleness marker (not just any NaN).
pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN
}

/// How many times a block may be thinned (each time keeps every other point): twice, so
/// the oldest data goes down to a quarter of its points before any is dropped.
pub const MAX_THIN: u8 = 2;

/// Heap bytes an allocation of `n` bytes takes (glibc malloc's chunk: the size plus an
/// 8-byte header, rounded up to 16, at least 32; nothing for 0).
fn alloc_size(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        ((n + 8 + 15) & !15).max(32)
    }
}

/// The head's points as a block would hold them: first and last time, count, stream.
pub(crate) type OpenBlock<'a> = (Millis, Millis, u16, &'a [u8]);

/// The history of one series: sealed blocks, oldest first, then the open head block.
#[derive(Debug, Clone, Default)]
pub struct SeriesHistory {
    sealed: Vec<Block>,
    head: Head,
    /// Sum of `alloc_size` of the sealed blocks' data.
    sealed_bytes: usize,
}

impl SeriesHistory {
    /// An empty history.
    pub fn new() -> Self {
        SeriesHistory::default()
    }

    /// Appends a point. Ignored (false) unless `t` is after the last point's time.
    pub fn push(&mut self, t: Millis, v: f64) -> bool {
        if self.last_time().is_some_and(|last| t <= last) {
            return false;
        }
        if self.head.is_full() {
            self.seal_head();
        }
        self.head.push(t, v);
        true
    }

    /// Appends the staleness marker ([`STALE_NAN`]) at `t`; false as [`Self::push`].
    pub fn push_stale(&mut self, t: Millis) -> bool {
        self.push(t, f64::from_bits(STALE_NAN))
    }

    /// Appends every point with `from <= t <= to` to `out`, oldest first, staleness markers
    /// included. Blocks wholly outside the range are not decoded.
    pub fn points(&self, from: Millis, to: Millis, out: &mut Vec<(Millis, f64)>) {
        if from > to {
            return;
        }
        let start = self.sealed.partition_point(|b| b.last < from);
        for block in &self.sealed[start..] {
            if block.first > to {
                return;
            }
            block.points(from, to, out);
        }
        self.head.points(from, to, out);
    }

    /// The newest point.
    pub fn last(&self) -> Option<(Millis, f64)> {
        self.head
            .last()
            .or_else(|| self.sealed.last().and_then(Block::last_point))
    }

    /// Time of the newest point.
    fn last_time(&self) -> Option<Millis> {
        match self.head.last() {
            Some((t, _)) => Some(t),
            None => self.sealed.last().map(|b| b.last),
        }
    }

    /// Time of the oldest point.
    pub fn oldest(&self) -> Option<Millis> {
        match self.sealed.first() {
            Some(b) => Some(b.first),
            None => (!self.head.is_empty()).then(|| self.head.first()),
        }
    }

    /// Number of points held.
    pub fn len(&self) -> usize {
        self.sealed
            .iter()
            .map(|b| usize::from(b.count))
            .sum::<usize>()
            + self.head.len()
    }

    /// Whether it holds no point.
    pub fn is_empty(&self) -> bool {
        self.sealed.is_empty() && self.head.is_empty()
    }

    /// Heap bytes held: the list of sealed blocks (its capacity times a block's 40-byte
    /// header), each block's stream and the head's buffer, each allocation counted as
    /// malloc sizes it (its own header and rounding included). Not the `SeriesHistory`
    /// itself, which lives wherever its owner puts it.
    pub fn bytes(&self) -> usize {
        alloc_size(self.sealed.capacity() * std::mem::size_of::<Block>())
            + self.sealed_bytes
            + alloc_size(self.head.capacity())
    }

    /// Number of sealed blocks (the head not counted).
    pub fn sealed_blocks(&self) -> usize {
        self.sealed.len()
    }

    /// Drops the blocks whose last point is before `t`: sealed ones, and the head too when
    /// its last point is (a series that stopped a retention ago). Returns the bytes freed.
    pub fn drop_before(&mut self, t: Millis) -> usize {
        let n = self.sealed.partition_point(|b| b.last < t);
        let head_old = self.head.last().is_some_and(|(last, _)| last < t);
        if n == 0 && !head_old {
            return 0;
        }
        let before = self.bytes();
        self.drop_front(n);
        if head_old {
            self.head = Head::default();
        }
        before - self.bytes()
    }

    /// Drops the `n` oldest sealed blocks.
    fn drop_front(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        for b in self.sealed.drain(..n) {
            self.sealed_bytes -= alloc_size(b.data.len());
        }
        self.sealed.shrink_to_fit();
    }

    /// Seals the head (when it holds points) into the sealed list.
    fn seal_head(&mut self) {
        if let Some(block) = self.head.seal() {
            self.push_sealed(block);
        }
    }

    fn push_sealed(&mut self, block: Block) {
        self.sealed_bytes += alloc_size(block.data.len());
        // One slot at a time: the list's spare capacity is memory too, and it grows once
        // every BLOCK_POINTS points.
        self.sealed.reserve_exact(1);
        self.sealed.push(block);
    }

    /// Thins sealed block `i` (every other point kept); the bytes freed, `None` when it
    /// could not be thinned (no such block, or nothing to drop from it). The block is
    /// marked thinned either way.
    fn thin(&mut self, i: usize) -> Option<usize> {
        let block = self.sealed.get_mut(i)?;
        let Some(thinner) = block.thinned() else {
            block.thinned = block.thinned.saturating_add(1);
            return None;
        };
        let old = alloc_size(block.data.len());
        let new = alloc_size(thinner.data.len());
        *block = thinner;
        self.sealed_bytes = self.sealed_bytes - old + new;
        Some(old.saturating_sub(new))
    }

    /// The sealed blocks, oldest first, and the head's points as a block would hold them
    /// (for a snapshot).
    pub(crate) fn blocks(&self) -> (&[Block], Option<OpenBlock<'_>>) {
        let head = self.head.last().map(|(last, _)| {
            let count = u16::try_from(self.head.len()).unwrap_or(u16::MAX);
            (self.head.first(), last, count, self.head.bytes())
        });
        (&self.sealed, head)
    }

    /// A history from blocks read back (checked, in time order, each after the one before).
    /// A last block that was not thinned becomes the head again, so points keep going into
    /// it (a full one is sealed at the next point, as it would have been).
    pub(crate) fn from_blocks(blocks: Vec<Block>) -> SeriesHistory {
        let mut h = SeriesHistory::default();
        let reopen = blocks.last().is_some_and(|b| b.thinned == 0);
        let n = blocks.len();
        for (i, block) in blocks.into_iter().enumerate() {
            if reopen && i + 1 == n {
                let mut points = Vec::with_capacity(usize::from(block.count));
                block.points(Millis::MIN, Millis::MAX, &mut points);
                for (t, v) in points {
                    h.head.push(t, v);
                }
            } else {
                h.push_sealed(block);
            }
        }
        h
    }
}

/// What [`enforce`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enforced {
    /// Bytes held by all the series before and after.
    pub bytes_before: usize,
    pub bytes_after: usize,
    /// Blocks dropped for being older than the retention.
    pub expired: usize,
    /// Blocks thinned to fit the budget.
    pub thinned: usize,
    /// Blocks dropped to fit the budget.
    pub dropped: usize,
    /// Heads sealed early to be thinned or dropped (when the sealed blocks were not enough).
    pub sealed_early: usize,
}

/// Keeps many series within `retention_ms` and `max_bytes`.
///
/// 1. Every block whose last point is before `now - retention_ms` is dropped (one pass over
///    the series, summing their bytes; when the sum is within `max_bytes`, that is all).
/// 2. While over: thins sealed blocks, oldest first across all series, each at most
///    [`MAX_THIN`] times and level by level: every sealed block is thinned once before the
///    oldest is thinned a second time. Each thinning keeps every other point, the first
///    and the last ones and every staleness marker, so a counter still gives rates; a
///    thinned block covers the same time with half the points.
/// 3. While still over: drops the globally oldest sealed blocks.
/// 4. While still over (the open heads alone exceed the budget, as early in a day with many
///    series): seals every head early and does 2 and 3 again on them, so the newest points
///    too are thinned before any is dropped.
///
/// Each phase keeps one candidate per series in a heap (the series' next block in that
/// phase's order), so the work is linear in the series plus logarithmic per block touched,
/// never quadratic.
pub fn enforce<'a>(
    series: impl Iterator<Item = &'a mut SeriesHistory>,
    now: Millis,
    retention_ms: Millis,
    max_bytes: usize,
) -> Enforced {
    let cutoff = now.saturating_sub(retention_ms);
    let mut done = Enforced::default();
    let mut all: Vec<&'a mut SeriesHistory> = Vec::new();
    let mut total = 0;
    for s in series {
        let sealed = s.sealed.len();
        let had_head = !s.head.is_empty();
        let freed = s.drop_before(cutoff);
        done.bytes_before += s.bytes() + freed;
        total += s.bytes();
        done.expired += sealed - s.sealed.len() + usize::from(had_head && s.head.is_empty());
        all.push(s);
    }
    if total > max_bytes {
        total = thin_oldest(&mut all, total, max_bytes, &mut done);
    }
    if total > max_bytes {
        total = drop_oldest(&mut all, total, max_bytes, &mut done);
    }
    if total > max_bytes {
        for s in all.iter_mut().filter(|s| !s.head.is_empty()) {
            let before = s.bytes();
            s.seal_head();
            total = total - before + s.bytes();
            done.sealed_early += 1;
        }
        total = thin_oldest(&mut all, total, max_bytes, &mut done);
        if total > max_bytes {
            total = drop_oldest(&mut all, total, max_bytes, &mut done);
        }
    }
    done.bytes_after = total;
    done
}

/// Phase 2 of [`enforce`]; returns the new total.
fn thin_oldest(
    all: &mut [&mut SeriesHistory],
    mut total: usize,
    max_bytes: usize,
    done: &mut Enforced,
) -> usize {
    // The next block of series `s` at thinning level `level`, from block `from` on.
    let next = |s: &SeriesHistory, level: u8, from: usize| {
        s.sealed
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, b)| b.thinned == level)
            .map(|(j, b)| (b.first, j))
    };
    for level in 0..MAX_THIN {
        let mut heap = BinaryHeap::new();
        for (i, s) in all.iter().enumerate() {
            if let Some((first, j)) = next(s, level, 0) {
                heap.push(Reverse((first, i, j)));
            }
        }
        while total > max_bytes {
            let Some(Reverse((_, i, j))) = heap.pop() else {
                break;
            };
            let Some(s) = all.get_mut(i) else { continue };
            if let Some(freed) = s.thin(j) {
                total = total.saturating_sub(freed);
                done.thinned += 1;
            }
            if let Some((first, j)) = next(s, level, j + 1) {
                heap.push(Reverse((first, i, j)));
            }
        }
        if total <= max_bytes {
            break;
        }
    }
    total
}

/// Phase 3 of [`enforce`]; returns the new total.
fn drop_oldest(
    all: &mut [&mut SeriesHistory],
    mut total: usize,
    max_bytes: usize,
    done: &mut Enforced,
) -> usize {
    let mut heap: BinaryHeap<_> = all
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.sealed.first().map(|b| Reverse((b.first, i))))
        .collect();
    while total > max_bytes {
        let Some(Reverse((_, i))) = heap.pop() else {
            break;
        };
        let Some(s) = all.get_mut(i) else { continue };
        let before = s.bytes();
        s.drop_front(1);
        total = total.saturating_sub(before - s.bytes());
        done.dropped += 1;
        if let Some(b) = s.sealed.first() {
            heap.push(Reverse((b.first, i)));
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::props;
    use chunk::BLOCK_POINTS;
    use proptest::prelude::*;

    fn bits(points: &[(Millis, f64)]) -> Vec<(Millis, u64)> {
        points.iter().map(|&(t, v)| (t, v.to_bits())).collect()
    }

    fn all(h: &SeriesHistory) -> Vec<(Millis, f64)> {
        let mut out = Vec::new();
        h.points(Millis::MIN, Millis::MAX, &mut out);
        out
    }

    /// A series of `n` points every 10 s from `start`, a counter with some jitter.
    fn counter(start: Millis, n: usize) -> SeriesHistory {
        let mut h = SeriesHistory::new();
        for i in 0..n {
            let t = start + i as Millis * 10_000 + (i as Millis * 7) % 5;
            assert!(h.push(t, (i * i % 977) as f64 + i as f64 * 4096.0));
        }
        h
    }

    #[test]
    fn points_go_in_time_order_only() {
        let mut h = SeriesHistory::new();
        assert!(h.is_empty() && h.last().is_none() && h.oldest().is_none());
        assert_eq!(h.bytes(), 0);
        assert!(h.push(1000, 1.0));
        assert!(!h.push(1000, 2.0), "same time");
        assert!(!h.push(999, 2.0), "older");
        assert!(h.push_stale(2000));
        assert!(h.push(3000, 3.0));
        let got = all(&h);
        assert_eq!(got.len(), 3);
        assert!(is_stale(got[1].1) && !is_stale(f64::NAN));
        assert_eq!(h.last(), Some((3000, 3.0)));
        assert_eq!(h.oldest(), Some(1000));
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn range_reads_at_block_boundaries() {
        let n = BLOCK_POINTS * 3 + 17;
        let h = counter(1_000_000, n);
        assert_eq!(h.sealed_blocks(), 3);
        assert_eq!(h.len(), n);
        let every = all(&h);
        assert_eq!(every.len(), n);
        // Around each block's first and last point, and the head's.
        let mut edges = Vec::new();
        for b in &h.sealed {
            edges.extend([b.first, b.last]);
        }
        edges.push(h.head.first());
        for &edge in &edges {
            for (from, to) in [
                (edge - 1, edge + 1),
                (edge, edge),
                (edge + 1, edge + 30_000),
                (edge - 30_000, edge - 1),
                (Millis::MIN, edge),
                (edge, Millis::MAX),
            ] {
                let mut got = Vec::new();
                h.points(from, to, &mut got);
                let want: Vec<_> = every
                    .iter()
                    .copied()
                    .filter(|p| from <= p.0 && p.0 <= to)
                    .collect();
                assert_eq!(bits(&got), bits(&want), "{from}..={to}");
            }
        }
        let mut got = vec![(0, 0.0)];
        h.points(5, 4, &mut got);
        assert_eq!(
            got.len(),
            1,
            "an empty range appends nothing, keeps what was there"
        );
    }

    #[test]
    fn drop_before_drops_whole_blocks_and_says_what_it_freed() {
        let mut h = counter(0, BLOCK_POINTS * 4 + 5);
        let every = all(&h);
        let second = h.sealed[1].clone();
        // Inside the second block: the first goes, the second stays whole.
        let before = h.bytes();
        let freed = h.drop_before(second.first + 20_000);
        assert_eq!(freed, before - h.bytes());
        assert!(freed > 0);
        assert_eq!(h.oldest(), Some(second.first));
        assert_eq!(h.sealed_blocks(), 3);
        assert_eq!(bits(&all(&h)), bits(&every[BLOCK_POINTS..]));
        assert_eq!(h.drop_before(second.first), 0, "nothing older left");
        // Past the last point: everything goes, the head too.
        let freed = h.drop_before(Millis::MAX);
        assert!(freed > 0);
        assert!(h.is_empty());
        assert_eq!(h.bytes(), 0);
    }

    #[test]
    fn bytes_count_every_allocation() {
        let h = counter(0, BLOCK_POINTS * 2 + 1);
        let data: usize = h.sealed.iter().map(|b| alloc_size(b.data.len())).sum();
        assert_eq!(
            h.bytes(),
            alloc_size(2 * std::mem::size_of::<Block>()) + data + alloc_size(h.head.capacity())
        );
        assert_eq!(h.sealed.capacity(), 2, "no spare block slots");
        assert_eq!(std::mem::size_of::<Block>(), 40);
        assert_eq!(alloc_size(1), 32);
        assert_eq!(alloc_size(24), 32);
        assert_eq!(alloc_size(25), 48);
    }

    /// `count` series of `points` points each at 10 s, series `i` offset by `i` ms.
    fn many(count: usize, points: usize) -> Vec<SeriesHistory> {
        (0..count).map(|i| counter(i as Millis, points)).collect()
    }

    fn total(series: &[SeriesHistory]) -> usize {
        series.iter().map(SeriesHistory::bytes).sum()
    }

    #[test]
    fn enforce_within_the_budget_only_expires() {
        let mut series = many(20, BLOCK_POINTS * 3 + 10);
        let bytes = total(&series);
        let now = (BLOCK_POINTS * 3 + 10) as Millis * 10_000;
        let done = enforce(series.iter_mut(), now, Millis::MAX / 2, bytes);
        assert_eq!(
            done,
            Enforced {
                bytes_before: bytes,
                bytes_after: bytes,
                ..Enforced::default()
            }
        );
        // A retention of 1.5 blocks: the first block of each series ends before it.
        let retention = BLOCK_POINTS as Millis * 10_000 * 3 / 2;
        let done = enforce(series.iter_mut(), now, retention, bytes);
        assert_eq!(done.expired, 20);
        assert_eq!((done.thinned, done.dropped), (0, 0));
        assert_eq!(done.bytes_after, total(&series));
        assert!(
            series
                .iter()
                .all(|s| s.oldest() >= Some(now - retention - 2_400_000))
        );
        // A series that stopped a retention ago goes entirely, its head included.
        let mut stopped = counter(0, 10);
        let done = enforce(std::iter::once(&mut stopped), now, 1000, usize::MAX);
        assert_eq!((done.expired, stopped.is_empty()), (1, true));
    }

    #[test]
    fn enforce_thins_the_oldest_before_dropping_anything() {
        let n = BLOCK_POINTS * 6 + 10;
        let mut series = many(10, n);
        let before: Vec<_> = series.iter().map(all).collect();
        let bytes = total(&series);
        let cap = bytes * 85 / 100;
        let done = enforce(
            series.iter_mut(),
            n as Millis * 10_000,
            Millis::MAX / 2,
            cap,
        );
        assert!(done.bytes_after <= cap, "{done:?}");
        assert_eq!(done.bytes_after, total(&series));
        assert!(done.thinned > 0 && done.dropped == 0, "{done:?}");
        for (s, was) in series.iter().zip(&before) {
            // Nothing dropped: the same span, the newest points all there.
            assert_eq!(s.oldest(), Some(was[0].0));
            let now = all(s);
            assert_eq!(now.last(), was.last());
            let head_first = s.head.first();
            let newest: Vec<_> = was.iter().copied().filter(|p| p.0 >= head_first).collect();
            assert_eq!(bits(&now[now.len() - newest.len()..]), bits(&newest));
            // Thinned blocks are the oldest ones: levels never go up with time.
            let levels: Vec<_> = s.sealed.iter().map(|b| b.thinned).collect();
            assert!(levels.windows(2).all(|w| w[0] >= w[1]), "{levels:?}");
            // Every kept point is one that was collected, and the block ends are kept.
            for b in &s.sealed {
                assert!(was.iter().any(|p| p.0 == b.first) && was.iter().any(|p| p.0 == b.last));
            }
            for p in &now {
                assert!(was.iter().any(|q| q.0 == p.0 && q.1 == p.1));
            }
        }
        // The oldest blocks across all series went first: series 0's first block (the
        // oldest of all) is thinned.
        assert_eq!(series[0].sealed[0].thinned, 1);
    }

    #[test]
    fn enforce_drops_the_oldest_when_thinning_is_not_enough() {
        let n = BLOCK_POINTS * 6 + 10;
        let mut series = many(10, n);
        let newest: Vec<_> = series.iter().map(|s| s.last()).collect();
        let cap = total(&series) / 5;
        let done = enforce(
            series.iter_mut(),
            n as Millis * 10_000,
            Millis::MAX / 2,
            cap,
        );
        assert!(done.bytes_after <= cap, "{done:?}");
        assert_eq!(done.bytes_after, total(&series));
        assert!(done.thinned > 0 && done.dropped > 0, "{done:?}");
        // Every sealed block was thinned to the limit before any was dropped.
        assert_eq!(done.thinned, 10 * 6 * usize::from(MAX_THIN), "{done:?}");
        for (s, last) in series.iter().zip(&newest) {
            assert_eq!(&s.last(), last, "the newest point survives");
            assert!(
                !s.head.is_empty(),
                "heads are kept while sealed blocks can go"
            );
        }
        // The oldest remaining block is no older than any dropped one's end would allow:
        // what is left of all series starts at about the same time.
        let starts: Vec<_> = series.iter().filter_map(SeriesHistory::oldest).collect();
        let spread = starts.iter().max().unwrap() - starts.iter().min().unwrap();
        assert!(spread <= BLOCK_POINTS as Millis * 10_000, "{starts:?}");
        // Only heads left when the cap is tiny: they are sealed, thinned and dropped too.
        let done = enforce(series.iter_mut(), n as Millis * 10_000, Millis::MAX / 2, 1);
        assert_eq!(done.bytes_after, 0);
        assert_eq!(done.sealed_early, 10);
        assert!(series.iter().all(SeriesHistory::is_empty));
    }

    #[test]
    fn enforce_seals_heads_early_when_they_alone_are_over() {
        // Early in a day: no series has a full block yet.
        let n = BLOCK_POINTS / 2;
        let mut series = many(50, n);
        let newest: Vec<_> = series.iter().map(|s| s.last()).collect();
        assert!(series.iter().all(|s| s.sealed_blocks() == 0));
        let cap = total(&series) * 7 / 10;
        let done = enforce(
            series.iter_mut(),
            n as Millis * 10_000,
            Millis::MAX / 2,
            cap,
        );
        assert!(done.bytes_after <= cap, "{done:?}");
        assert_eq!(done.bytes_after, total(&series));
        assert_eq!((done.sealed_early, done.dropped), (50, 0), "{done:?}");
        assert!(done.thinned > 0);
        for (s, last) in series.iter().zip(&newest) {
            assert_eq!(&s.last(), last, "the newest point survives");
            assert_eq!(s.oldest(), Some(s.sealed[0].first));
        }
        // Points keep going in after a head was sealed early.
        let t = series[0].last().unwrap().0 + 10_000;
        assert!(series[0].push(t, 1.0));
        assert_eq!(series[0].last(), Some((t, 1.0)));
    }

    #[test]
    fn enforce_on_many_series_is_not_quadratic() {
        // 5000 series of a day at 10 s would be 43M points; 5000 of 4 blocks test the
        // same paths. In a debug build this takes about a second when linear.
        let mut series = many(5000, BLOCK_POINTS * 4 + 1);
        let cap = total(&series) / 3;
        let started = std::time::Instant::now();
        let done = enforce(series.iter_mut(), 0, Millis::MAX / 2, cap);
        assert!(done.bytes_after <= cap);
        let quiet = std::time::Instant::now();
        let again = enforce(series.iter_mut(), 0, Millis::MAX / 2, cap);
        assert_eq!((again.thinned, again.dropped), (0, 0));
        assert!(quiet.elapsed() < started.elapsed());
    }

    proptest! {
        #![proptest_config(props::config(64))]

        #[test]
        fn any_series_round_trips_and_reads_any_range(
            points in chunk::tests::series(BLOCK_POINTS * 3),
            a in any::<prop::sample::Index>(),
            b in any::<prop::sample::Index>(),
        ) {
            let mut h = SeriesHistory::new();
            for &(t, v) in &points {
                prop_assert!(h.push(t, v));
            }
            prop_assert_eq!(h.len(), points.len());
            prop_assert_eq!(bits(&all(&h)), bits(&points));
            let (i, j) = (a.index(points.len()), b.index(points.len()));
            let (from, to) = (points[i.min(j)].0, points[i.max(j)].0);
            let mut got = Vec::new();
            h.points(from, to, &mut got);
            prop_assert_eq!(bits(&got), bits(&points[i.min(j)..=i.max(j)]));
            prop_assert_eq!(h.last().map(|p| p.1.to_bits()), points.last().map(|p| p.1.to_bits()));
        }
    }
}
