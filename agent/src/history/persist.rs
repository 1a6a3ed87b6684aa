//! Snapshots of many series' histories: a binary file written atomically and read back
//! with every byte checked.
//!
//! Format (integers little-endian):
//!
//! ```text
//! magic      8 bytes  "LKHIST\r\n" (the CR LF catches a text-mode copy)
//! version    u32      1
//! series     u32      how many series follow
//! per series:
//!   name     u32 length + UTF-8 bytes
//!   part     u8 tag (0 value, 1 bucket, 2 sum, 3 count) + u64 (the bucket's bound as
//!            f64 bits, 0 otherwise)
//!   labels   u32 count, each: u32 length + UTF-8 name, u32 length + UTF-8 value
//!   blocks   u32 count, each: i64 first time, i64 last time, u16 points, u8 times
//!            thinned, u32 length + the block's stream as held in memory
//! checksum   32 bytes: SHA-256 of everything before it
//! ```
//!
//! The open block of a series is written as one more block; reading it back reopens it
//! when it is not full. [`decode`] reports every malformed input as an error naming what
//! and the byte offset (a truncated file, a bad magic, an unknown version, a checksum
//! mismatch, a count larger than the bytes left can hold, invalid UTF-8, a block whose
//! stream does not decode to its header), never panics, and allocates no more than the
//! input's size justifies.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::chunk::{BLOCK_POINTS, Block};
use super::{MAX_THIN, Millis, SeriesHistory};
use crate::sample::Part;

/// First bytes of a snapshot.
pub const MAGIC: &[u8; 8] = b"LKHIST\r\n";
/// The format version written and read.
pub const VERSION: u32 = 1;
/// Length of the SHA-256 checksum at the end.
const CHECKSUM_LEN: usize = 32;
/// Fewest bytes a series takes (empty name, part, no labels, no blocks).
const MIN_SERIES: usize = 4 + 1 + 8 + 4 + 4;
/// Fewest bytes a label takes.
const MIN_LABEL: usize = 4 + 4;
/// Fewest bytes a block takes (an empty stream: rejected later, but that is its size).
const MIN_BLOCK: usize = 8 + 8 + 2 + 1 + 4;

/// Identity of a series in a snapshot, as the caller names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesId {
    /// Metric name.
    pub name: String,
    /// Which part of a histogram, or the value of a gauge or counter.
    pub part: Part,
    /// Label names and values, in the caller's order.
    pub labels: Vec<(String, String)>,
}

/// Why a snapshot could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("history snapshot {}: read: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file's content is not a valid snapshot (move it aside and start empty).
    #[error("history snapshot {} is corrupt: {reason}", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, and at which byte offset.
        reason: String,
    },
}

/// The snapshot of `entries`.
pub fn encode(entries: &[(SeriesId, &SeriesHistory)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    put_len(&mut out, entries.len());
    for (id, history) in entries {
        put_str(&mut out, &id.name);
        let (tag, bound) = match id.part {
            Part::Value => (0u8, 0u64),
            Part::Bucket(b) => (1, b),
            Part::Sum => (2, 0),
            Part::Count => (3, 0),
        };
        out.push(tag);
        out.extend_from_slice(&bound.to_le_bytes());
        put_len(&mut out, id.labels.len());
        for (k, v) in &id.labels {
            put_str(&mut out, k);
            put_str(&mut out, v);
        }
        let (sealed, head) = history.blocks();
        put_len(&mut out, sealed.len() + usize::from(head.is_some()));
        for b in sealed {
            put_block(&mut out, b.first, b.last, b.count, b.thinned, &b.data);
        }
        if let Some((first, last, count, data)) = head {
            put_block(&mut out, first, last, count, 0, data);
        }
    }
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    // Lengths here are of strings, lists of series, labels and blocks held in memory by
    // one agent: far below 4 GiB. Saturating keeps a count that could not be written
    // from being written wrong silently: the file would then fail its own reading.
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_block(out: &mut Vec<u8>, first: Millis, last: Millis, count: u16, thinned: u8, d: &[u8]) {
    out.extend_from_slice(&first.to_le_bytes());
    out.extend_from_slice(&last.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.push(thinned);
    put_len(out, d.len());
    out.extend_from_slice(d);
}

/// Reads a snapshot; every malformed input is an error naming what and where.
pub fn decode(bytes: &[u8]) -> Result<Vec<(SeriesId, SeriesHistory)>, String> {
    if bytes.len() < MAGIC.len() {
        return Err(format!(
            "truncated at byte {}: shorter than the 8-byte magic",
            bytes.len()
        ));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err("bad magic at byte 0: not a lookout history snapshot".into());
    }
    if bytes.len() < MAGIC.len() + 4 {
        return Err(format!(
            "truncated at byte {}: the version at byte 8 is cut",
            bytes.len()
        ));
    }
    let mut r = Reader { bytes, pos: 8 };
    let version = r.u32("version")?;
    if version != VERSION {
        return Err(format!(
            "unknown version {version} at byte 8 (this agent reads version {VERSION})"
        ));
    }
    let Some(body_len) = bytes.len().checked_sub(CHECKSUM_LEN) else {
        return Err(format!(
            "truncated at byte {}: too short for the 32-byte checksum",
            bytes.len()
        ));
    };
    if body_len < r.pos + 4 {
        return Err(format!(
            "truncated at byte {}: too short for a series count and the checksum",
            bytes.len()
        ));
    }
    let (body, sum) = bytes.split_at(body_len);
    if Sha256::digest(body).as_slice() != sum {
        return Err(format!(
            "checksum mismatch at byte {body_len}: the file is truncated or damaged"
        ));
    }
    let mut r = Reader {
        bytes: body,
        pos: r.pos,
    };
    let n = r.count("series count", MIN_SERIES)?;
    // Counts are checked against the bytes left, but an entry in memory is larger than its
    // fewest bytes on disk: lists grow with what is actually read, not with a count.
    let mut out = Vec::new();
    for i in 0..n {
        let at = r.pos;
        let series = r
            .series()
            .map_err(|e| format!("series {i} at byte {at}: {e}"))?;
        out.push(series);
    }
    if r.pos != body.len() {
        return Err(format!(
            "{} bytes after the last series at byte {}",
            body.len() - r.pos,
            r.pos
        ));
    }
    Ok(out)
}

/// A cursor over a snapshot's body.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], String> {
        let slice = self
            .pos
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.pos..end))
            .ok_or_else(|| format!("truncated: {what} at byte {} is cut", self.pos))?;
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        self.array(what).map(u32::from_le_bytes)
    }

    /// A count of items of at least `min_size` bytes each, checked against the bytes left.
    fn count(&mut self, what: &str, min_size: usize) -> Result<usize, String> {
        let at = self.pos;
        let n = self.u32(what)? as usize;
        let left = self.bytes.len() - self.pos;
        if n.saturating_mul(min_size) > left {
            return Err(format!(
                "{what} {n} at byte {at} is more than the {left} bytes left can hold"
            ));
        }
        Ok(n)
    }

    fn string(&mut self, what: &str) -> Result<String, String> {
        let at = self.pos;
        let n = self.u32(what)? as usize;
        let bytes = self.take(n, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| format!("{what} at byte {at} is not UTF-8: {e}"))
    }

    fn series(&mut self) -> Result<(SeriesId, SeriesHistory), String> {
        let name = self.string("name")?;
        let at = self.pos;
        let [tag] = self.array("part")?;
        let bound = u64::from_le_bytes(self.array("part")?);
        let part = match tag {
            0 => Part::Value,
            1 => Part::Bucket(bound),
            2 => Part::Sum,
            3 => Part::Count,
            t => return Err(format!("unknown part tag {t} at byte {at}")),
        };
        let n = self.count("label count", MIN_LABEL)?;
        let mut labels = Vec::new();
        for _ in 0..n {
            let k = self.string("label name")?;
            let v = self.string("label value")?;
            labels.push((k, v));
        }
        let n = self.count("block count", MIN_BLOCK)?;
        let mut blocks: Vec<Block> = Vec::new();
        for j in 0..n {
            let at = self.pos;
            let block = self
                .block()
                .map_err(|e| format!("block {j} at byte {at}: {e}"))?;
            if let Some(prev) = blocks.last()
                && block.first <= prev.last
            {
                return Err(format!(
                    "block {j} at byte {at} starts at {} ms, not after the previous block's end {} ms",
                    block.first, prev.last
                ));
            }
            blocks.push(block);
        }
        Ok((
            SeriesId { name, part, labels },
            SeriesHistory::from_blocks(blocks),
        ))
    }

    fn block(&mut self) -> Result<Block, String> {
        let first = i64::from_le_bytes(self.array("first time")?);
        let last = i64::from_le_bytes(self.array("last time")?);
        let count = u16::from_le_bytes(self.array("point count")?);
        let [thinned] = self.array("thinned")?;
        if usize::from(count) > BLOCK_POINTS || count == 0 {
            return Err(format!(
                "point count {count} is not within 1..={BLOCK_POINTS}"
            ));
        }
        if thinned > MAX_THIN {
            return Err(format!(
                "thinned {thinned} times, more than the {MAX_THIN} a block can be"
            ));
        }
        let at = self.pos;
        let n = self.u32("stream length")? as usize;
        let data = self.take(n, "stream")?;
        Block::from_parts(first, last, count, thinned, data.into())
            .map_err(|e| format!("stream at byte {} does not decode: {e}", at + 4))
    }
}

/// Writes the snapshot `bytes` to `path` atomically (see [`crate::durable::write_atomic`]).
pub fn save(path: &Path, bytes: &[u8]) -> io::Result<()> {
    crate::durable::write_atomic(path, bytes)
}

/// Reads the snapshot at `path`: `None` when there is none, an error when it cannot be
/// read or is corrupt (the caller moves a corrupt one aside with
/// `quarantine::move_aside`).
pub fn load(path: &Path) -> Result<Option<Vec<(SeriesId, SeriesHistory)>>, LoadError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LoadError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    decode(&bytes)
        .map(Some)
        .map_err(|reason| LoadError::Corrupt {
            path: path.to_path_buf(),
            reason,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::chunk::tests::series;
    use crate::props::{self, Scratch};
    use proptest::prelude::*;

    fn id(name: &str, part: Part, labels: &[(&str, &str)]) -> SeriesId {
        SeriesId {
            name: name.into(),
            part,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn all(h: &SeriesHistory) -> Vec<(Millis, u64)> {
        let mut out = Vec::new();
        h.points(Millis::MIN, Millis::MAX, &mut out);
        out.into_iter().map(|(t, v)| (t, v.to_bits())).collect()
    }

    /// Histories of every shape: empty, a head only, sealed blocks and a head, a full last
    /// block, thinned blocks, and odd values.
    fn sample() -> Vec<(SeriesId, SeriesHistory)> {
        let mut histories = Vec::new();
        for n in [0, 1, 7, BLOCK_POINTS, BLOCK_POINTS * 2 + 3] {
            let mut h = SeriesHistory::new();
            for i in 0..n {
                h.push(1_700_000_000_000 + i as Millis * 10_000, i as f64 * 0.25);
            }
            histories.push(h);
        }
        let mut odd = SeriesHistory::new();
        for (i, v) in [f64::NAN, -0.0, f64::INFINITY, 1e-300]
            .into_iter()
            .enumerate()
        {
            odd.push(i as Millis, v);
        }
        odd.push_stale(10);
        histories.push(odd);
        let mut thinned = histories[4].clone();
        let cap = thinned.bytes() - 1;
        crate::history::enforce(std::iter::once(&mut thinned), 0, Millis::MAX / 2, cap);
        assert!(thinned.sealed.iter().any(|b| b.thinned > 0));
        histories.push(thinned);
        let ids = [
            id("lookout_load1", Part::Value, &[]),
            id(
                "lookout_cpu_seconds_total",
                Part::Value,
                &[("mode", "idle")],
            ),
            id(
                "req",
                Part::Bucket(0.25f64.to_bits()),
                &[("route", "/é"), ("m", "")],
            ),
            id(
                "req",
                Part::Bucket(f64::INFINITY.to_bits()),
                &[("route", "/é")],
            ),
            id("req", Part::Sum, &[]),
            id("req", Part::Count, &[("a", "1"), ("b", "2"), ("c", "3")]),
            id("", Part::Value, &[("", "")]),
        ];
        ids.into_iter().zip(histories).collect()
    }

    fn refs(entries: &[(SeriesId, SeriesHistory)]) -> Vec<(SeriesId, &SeriesHistory)> {
        entries.iter().map(|(id, h)| (id.clone(), h)).collect()
    }

    /// Re-signs a body (everything but the checksum) with a valid checksum.
    fn signed(mut body: Vec<u8>) -> Vec<u8> {
        let sum = Sha256::digest(&body);
        body.extend_from_slice(&sum);
        body
    }

    fn body(bytes: &[u8]) -> Vec<u8> {
        bytes[..bytes.len() - CHECKSUM_LEN].to_vec()
    }

    #[test]
    fn snapshots_round_trip_and_keep_growing() {
        let entries = sample();
        let bytes = encode(&refs(&entries));
        let back = decode(&bytes).unwrap();
        assert_eq!(back.len(), entries.len());
        for ((id, h), (id2, h2)) in entries.iter().zip(&back) {
            assert_eq!(id, id2);
            assert_eq!(all(h), all(h2), "{id:?}");
            assert_eq!(h.last().map(|p| p.0), h2.last().map(|p| p.0));
            let levels = |h: &SeriesHistory| h.sealed.iter().map(|b| b.thinned).collect::<Vec<_>>();
            assert_eq!(levels(h), levels(h2));
        }
        // The open block came back open: points keep going into it, not into a new block.
        let (_, mut h) = back.into_iter().nth(2).unwrap();
        assert_eq!(h.sealed_blocks(), 0);
        assert!(h.push(1_800_000_000_000, 3.0));
        assert_eq!((h.sealed_blocks(), h.len()), (0, 8));
        // Encoding is deterministic, and stable through a round trip.
        let again = decode(&bytes).unwrap();
        assert_eq!(encode(&refs(&again)), bytes);
        assert!(decode(&encode(&[])).unwrap().is_empty());
    }

    /// Bytes of the first series' first block's stream in `sample()`'s snapshot, and the
    /// offset of its block count.
    fn offsets(bytes: &[u8]) -> (usize, usize) {
        // magic, version, series count; series 0: name, part, labels (0), block count.
        let name = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
        let labels = 20 + name + 9;
        let blocks = labels + 4;
        (blocks, blocks + 4 + 8 + 8 + 2 + 1 + 4)
    }

    #[test]
    fn every_kind_of_corruption_is_an_error_saying_where() {
        let entries = sample();
        let good = encode(&refs(&entries));
        let one = encode(&[(id("lookout_load1", Part::Value, &[]), &entries[2].1)]);
        let (block_count, stream) = offsets(&one);
        let edit = |bytes: &[u8], at: usize, new: &[u8]| {
            let mut b = body(bytes);
            b.splice(at..at + new.len(), new.iter().copied());
            signed(b)
        };
        let mut flipped = good.clone();
        flipped[40] ^= 1;
        let mut bad_utf8 = body(&one);
        bad_utf8[20] = 0xff; // first byte of the name
        // (input, words the error must hold)
        let rows: Vec<(Vec<u8>, &[&str])> = vec![
            (Vec::new(), &["truncated"]),
            (b"LKHI".to_vec(), &["truncated at byte 4"]),
            (b"GIF89a\0\0\0\0\0\0".to_vec(), &["bad magic", "byte 0"]),
            ([&MAGIC[..], &[1, 0]].concat(), &["truncated", "byte 8"]),
            (
                edit(&good, 8, &2u32.to_le_bytes()),
                &["unknown version 2", "byte 8"],
            ),
            (
                [&MAGIC[..], &1u32.to_le_bytes()].concat(),
                &["truncated", "checksum"],
            ),
            (flipped, &["checksum mismatch", "byte"]),
            (good[..good.len() - 1].to_vec(), &["checksum mismatch"]),
            (
                edit(&good, 12, &u32::MAX.to_le_bytes()),
                &["series count", "byte 12"],
            ),
            (
                edit(&one, block_count, &u32::MAX.to_le_bytes()),
                &["block count", "byte"],
            ),
            (
                edit(&one, 16, &u32::MAX.to_le_bytes()),
                &["name", "cut", "byte 20"],
            ),
            (signed(bad_utf8), &["name", "not UTF-8", "byte 16"]),
            (edit(&one, 33, &[9]), &["unknown part tag 9", "byte 33"]),
            (edit(&one, stream, &[0xff]), &["block 0", "does not decode"]),
            (
                edit(&one, stream - 4 - 1, &[7]),
                &["block 0", "thinned 7 times"],
            ),
            (edit(&one, stream - 4 - 1 - 2, &[0, 0]), &["point count 0"]),
            (
                signed([&body(&one)[..], &[0]].concat()),
                &["1 bytes after the last series"],
            ),
        ];
        for (i, (bytes, words)) in rows.iter().enumerate() {
            let err = decode(bytes).unwrap_err();
            assert!(err.contains("at byte"), "row {i}: {err:?} says not where");
            for w in *words {
                assert!(err.contains(w), "row {i}: {err:?} lacks {w:?}");
            }
        }
        // Every truncation of a valid snapshot is an error.
        for n in 0..good.len() {
            let err = decode(&good[..n]).unwrap_err();
            assert!(err.contains("at byte"), "cut at {n}: {err}");
        }
    }

    #[test]
    fn blocks_out_of_order_are_an_error() {
        let mut h = SeriesHistory::new();
        for i in 0..(BLOCK_POINTS + 5) as Millis {
            h.push(i * 1000, 1.0);
        }
        let entries = [(id("x", Part::Value, &[]), &h)];
        let bytes = encode(&entries);
        // The second block (the head) moved before the first: swap their first times.
        let (_, stream) = offsets(&bytes);
        let first_at = stream - 4 - 1 - 2 - 8 - 8;
        let len = u32::from_le_bytes(bytes[stream - 4..stream].try_into().unwrap()) as usize;
        let second_first_at = stream + len;
        let mut b = body(&bytes);
        b[second_first_at..second_first_at + 8].copy_from_slice(&0i64.to_le_bytes());
        let _ = first_at;
        let err = decode(&signed(b)).unwrap_err();
        assert!(err.contains("block 1"), "{err}");
    }

    #[test]
    fn save_is_atomic_and_load_tells_missing_from_corrupt() {
        let dir = Scratch::new("history");
        let path = dir.path().join("history.bin");
        assert!(load(&path).unwrap().is_none());
        let entries = sample();
        let bytes = encode(&refs(&entries));
        save(&path, &bytes).unwrap();
        save(&path, &bytes).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["history.bin"], "no temp file left");
        assert_eq!(load(&path).unwrap().unwrap().len(), entries.len());
        // A temp file where the temp file goes: the old snapshot is untouched.
        fs::create_dir(dir.path().join("history.bin.tmp")).unwrap();
        let err = save(&path, b"new").unwrap_err();
        assert!(err.to_string().contains("history.bin.tmp"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), bytes);
        fs::write(&path, &bytes[..100]).unwrap();
        match load(&path) {
            Err(LoadError::Corrupt { reason, .. }) => assert!(reason.contains("checksum")),
            other => panic!("{other:?}"),
        }
        match load(dir.path()) {
            Err(LoadError::Io { .. }) => {}
            other => panic!("a directory is unreadable, not corrupt: {other:?}"),
        }
    }

    /// Edits of a snapshot: bytes replaced, runs inserted or removed, a cut.
    #[derive(Debug, Clone)]
    enum Edit {
        Byte(prop::sample::Index, u8),
        Insert(prop::sample::Index, Vec<u8>),
        Remove(prop::sample::Index, usize),
        Cut(prop::sample::Index),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            4 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Byte(i, b)),
            1 => (any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..16))
                .prop_map(|(i, b)| Edit::Insert(i, b)),
            1 => (any::<prop::sample::Index>(), 1usize..16).prop_map(|(i, n)| Edit::Remove(i, n)),
            1 => any::<prop::sample::Index>().prop_map(Edit::Cut),
        ]
    }

    fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
        for e in edits {
            if bytes.is_empty() {
                break;
            }
            match e {
                Edit::Byte(i, b) => {
                    let i = i.index(bytes.len());
                    bytes[i] = *b;
                }
                Edit::Insert(i, new) => {
                    let i = i.index(bytes.len());
                    bytes.splice(i..i, new.iter().copied());
                }
                Edit::Remove(i, n) => {
                    let i = i.index(bytes.len());
                    bytes.drain(i..(i + n).min(bytes.len()));
                }
                Edit::Cut(i) => bytes.truncate(i.index(bytes.len())),
            }
        }
        bytes
    }

    proptest! {
        #![proptest_config(props::config(256))]

        #[test]
        fn mutated_snapshots_are_errors_or_snapshots_never_panics(
            points in series(BLOCK_POINTS + 20),
            edits in prop::collection::vec(edit(), 1..4),
            resign in any::<bool>(),
        ) {
            let mut h = SeriesHistory::new();
            for (t, v) in points {
                h.push(t, v);
            }
            let entries = [
                (id("lookout_memory_available_bytes", Part::Value, &[]), &h),
                (id("h", Part::Bucket(1), &[("le", "1")]), &h),
            ];
            let good = encode(&entries);
            // Without re-signing, the checksum catches the edit; re-signed, the parser
            // must find it (or read a snapshot that happens to be valid).
            let mut bad = apply(body(&good), &edits);
            if resign {
                bad = signed(bad);
            } else {
                bad.extend_from_slice(&good[good.len() - CHECKSUM_LEN..]);
            }
            let result = props::timed("decode", || decode(&bad))?;
            if let Err(e) = &result {
                prop_assert!(e.contains("at byte"), "{}", e);
            }
            if !resign && bad != good {
                prop_assert!(result.is_err(), "an edit passed the checksum");
            }
        }
    }
}
