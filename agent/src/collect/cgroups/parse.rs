//! Pure parsers of cgroup files, and the labels a cgroup's path gives.
//!
//! Everything here takes bytes or a path string and touches no file, so it is tested on
//! the files captured under `tests/fixtures/cgroup/captured` and on hand-made edge cases.
//! Errors say what was wrong and, for line-based files, on which line; the caller adds the
//! file's path.

/// Page size assumed when the system does not say (a 0 page size).
const FALLBACK_PAGE_SIZE: u64 = 4096;

/// Parses a file holding one whole number (`cpuacct.usage`, `memory.usage_in_bytes`,
/// `memory.current`, `pids.current`), surrounding whitespace allowed.
pub fn single_number(data: &[u8]) -> Result<u64, String> {
    let text = data.trim_ascii();
    if text.is_empty() {
        return Err("empty, expected a whole number".to_string());
    }
    number(text).ok_or_else(|| {
        format!(
            "expected a whole number, found {:?}",
            String::from_utf8_lossy(cut(text))
        )
    })
}

/// The smallest value a memory limit file shows for "no limit": the largest signed 64-bit
/// number rounded down to a whole page (`9223372036854771712` with 4 KiB pages), which is
/// what the kernel prints for an unset v1 `memory.limit_in_bytes`.
pub fn unlimited_from(page_size: u64) -> u64 {
    let page = if page_size == 0 {
        FALLBACK_PAGE_SIZE
    } else {
        page_size
    };
    (i64::MAX as u64 / page) * page
}

/// Parses a memory limit (v1 `memory.limit_in_bytes`, v2 `memory.max`): `Some(bytes)`, or
/// `None` when there is no limit (`max`, or a value at or above [`unlimited_from`]).
pub fn memory_limit(data: &[u8], page_size: u64) -> Result<Option<u64>, String> {
    if data.trim_ascii() == b"max" {
        return Ok(None);
    }
    let bytes = single_number(data)?;
    Ok((bytes < unlimited_from(page_size)).then_some(bytes))
}

/// The value of `key` in a flat-keyed file (`key value` on each line: `memory.stat`,
/// `memory.events`, `memory.oom_control`, `cpu.stat`); `None` when no line has that key.
///
/// Only the line of `key` has to parse: the kernel adds keys over time, and lines this
/// collector does not read are never a reason to refuse the file. The first line of a key
/// counts.
pub fn flat_keyed(data: &[u8], key: &str) -> Result<Option<u64>, String> {
    for (index, line) in data.split(|&b| b == b'\n').enumerate() {
        let mut fields = line
            .split(u8::is_ascii_whitespace)
            .filter(|f| !f.is_empty());
        if fields.next() != Some(key.as_bytes()) {
            continue;
        }
        let line_no = index + 1;
        let value = fields
            .next()
            .ok_or_else(|| format!("line {line_no}: `{key}` has no value"))?;
        if let Some(extra) = fields.next() {
            return Err(format!(
                "line {line_no}: `{key}` has more than one value (then {:?})",
                String::from_utf8_lossy(cut(extra))
            ));
        }
        return number(value).map(Some).ok_or_else(|| {
            format!(
                "line {line_no}: `{key}` value {:?} is not a whole number",
                String::from_utf8_lossy(cut(value))
            )
        });
    }
    Ok(None)
}

/// Counts the non-empty lines of a file read in pieces (`cgroup.procs`: one process id a
/// line), without holding the file: feed each piece, then [`LineCount::finish`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LineCount {
    lines: u64,
    /// The current line has a byte other than whitespace.
    in_line: bool,
}

impl LineCount {
    /// Counts the lines of one more piece.
    pub fn feed(&mut self, piece: &[u8]) {
        for &b in piece {
            if b == b'\n' {
                if self.in_line {
                    self.lines += 1;
                }
                self.in_line = false;
            } else if !b.is_ascii_whitespace() {
                self.in_line = true;
            }
        }
    }

    /// The number of non-empty lines, the last one counted even without a final newline.
    pub fn finish(self) -> u64 {
        self.lines + u64::from(self.in_line)
    }
}

/// The number of non-empty lines of `data` (what [`LineCount`] gives in one piece).
pub fn count_lines(data: &[u8]) -> u64 {
    let mut count = LineCount::default();
    count.feed(data);
    count.finish()
}

/// The working set from a memory usage and the inactive file cache in it: what the kubelet
/// and cAdvisor call the working set, and what this collector reports as a cgroup's memory.
/// Page cache that has not been used lately is the first thing the kernel reclaims, so it
/// is left out; it never exceeds the usage, but the two are read one after the other.
pub fn working_set(usage: u64, inactive_file: u64) -> u64 {
    usage.saturating_sub(inactive_file)
}

/// The number of online CPUs in a `/proc/stat` content: its `cpuN` lines.
pub fn online_cpus(stat: &[u8]) -> u64 {
    stat.split(|&b| b == b'\n')
        .filter(|line| {
            line.strip_prefix(b"cpu")
                .and_then(|rest| rest.first())
                .is_some_and(u8::is_ascii_digit)
        })
        .count() as u64
}

/// Suffixes of the systemd units that have a cgroup of their own.
const UNIT_SUFFIXES: [&str; 4] = [".service", ".scope", ".socket", ".slice"];

/// The systemd unit a cgroup is: its last path component when that ends in `.service`,
/// `.scope`, `.socket` or `.slice` (`system.slice/nginx.service` -> `nginx.service`), else
/// empty.
pub fn unit(path: &str) -> &str {
    let last = last_component(path);
    if UNIT_SUFFIXES
        .iter()
        .any(|s| last.len() > s.len() && last.ends_with(s))
    {
        last
    } else {
        ""
    }
}

/// The 64-hex-digit id of the container a cgroup is, from its last path component, else
/// empty. Recognized: the id alone (`docker/<id>`, cgroupfs Kubernetes
/// `kubepods/burstable/pod<uid>/<id>`), and a systemd scope `<prefix>-<id>.scope`
/// (`docker-`, `cri-containerd-`, `crio-`, `libpod-`). The scopes of the `conmon` monitor
/// of CRI-O and Podman (`crio-conmon-<id>.scope`) carry the id of the container they
/// watch but are not it: they give none.
pub fn container_id(path: &str) -> &str {
    let last = last_component(path);
    let name = last.strip_suffix(".scope").unwrap_or(last);
    if name.contains("conmon-") {
        return "";
    }
    let id = name.rsplit('-').next().unwrap_or(name);
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        id
    } else {
        ""
    }
}

fn last_component(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Parses decimal digits, at most `u64::MAX`.
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// At most the first 40 bytes of a field, for messages.
fn cut(field: &[u8]) -> &[u8] {
    field.get(..40).unwrap_or(field)
}

#[cfg(test)]
mod tests {
    //! The captured files are described in `tests/fixtures/cgroup/README.md`.

    use super::*;
    use std::path::PathBuf;

    fn fixture(rel: &str) -> Vec<u8> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/cgroup")
            .join(rel);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The value of `key` in a fixture, read independently of the parser.
    fn key_in(rel: &str, key: &str) -> u64 {
        String::from_utf8(fixture(rel))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("{rel}: no {key}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn captured_v1_files() {
        // The Python process spun one CPU for a second: a bit more than 1e9 ns.
        let usage = single_number(&fixture("captured/cpuacct/cpuacct.usage")).unwrap();
        assert_eq!(usage, 1_146_752_014);
        assert_eq!(
            single_number(&fixture("captured/memory/memory.usage_in_bytes")).unwrap(),
            80_998_400
        );
        // 16 MiB written to a file sit in the inactive file cache: the working set is the
        // 60 MiB allocation and the interpreter, not the cache.
        let inactive = flat_keyed(
            &fixture("captured/memory/memory.stat"),
            "total_inactive_file",
        )
        .unwrap();
        assert_eq!(
            inactive,
            Some(key_in("captured/memory/memory.stat", "total_inactive_file"))
        );
        assert_eq!(inactive, Some(16_785_408));
        let set = working_set(80_998_400, 16_785_408);
        assert!(((60 << 20)..(64 << 20)).contains(&set), "{set}");
        // the 128 MiB limit written by the capture; the root's unset limit
        assert_eq!(
            memory_limit(&fixture("captured/memory/memory.limit_in_bytes"), 4096).unwrap(),
            Some(128 << 20)
        );
        assert_eq!(
            memory_limit(&fixture("captured/memory-root/memory.limit_in_bytes"), 4096).unwrap(),
            None
        );
        // one process killed by the OOM killer in the 32 MiB cgroup, none in the other
        for (rel, kills) in [
            ("captured/memory-oom/memory.oom_control", 1),
            ("captured/memory/memory.oom_control", 0),
        ] {
            assert_eq!(flat_keyed(&fixture(rel), "oom_kill").unwrap(), Some(kills));
        }
        // `oom_kill_disable` and `under_oom` are other keys, not prefixes of it
        assert_eq!(
            flat_keyed(&fixture("captured/memory-oom/memory.oom_control"), "oom").unwrap(),
            None
        );
        // the Python process, its thread and its `sleep` child: three tasks, two processes
        assert_eq!(
            single_number(&fixture("captured/pids/pids.current")).unwrap(),
            3
        );
        assert_eq!(count_lines(&fixture("captured/pids/cgroup.procs")), 2);
    }

    #[test]
    fn captured_v2_files() {
        // The same process seen from the unified hierarchy: cpu.stat counts microseconds of
        // the same CPU time cpuacct.usage counts in nanoseconds.
        let usec = flat_keyed(&fixture("captured/unified/cpu.stat"), "usage_usec").unwrap();
        assert_eq!(usec, Some(1_146_752));
        assert_eq!(count_lines(&fixture("captured/unified/cgroup.procs")), 2);
        // The unified hierarchy of this host has no controller enabled but hugetlb.
        assert_eq!(
            fixture("captured/unified-root/cgroup.controllers").trim_ascii(),
            b"hugetlb"
        );
        assert!(
            flat_keyed(&fixture("captured/unified-root/cpu.stat"), "usage_usec")
                .unwrap()
                .is_some()
        );
        // Hand-written from the kernel's format (no v2 memory controller here).
        assert_eq!(
            single_number(&fixture("v2-memory/limited/memory.current")).unwrap(),
            80_998_400
        );
        assert_eq!(
            flat_keyed(&fixture("v2-memory/limited/memory.stat"), "inactive_file").unwrap(),
            Some(key_in("v2-memory/limited/memory.stat", "inactive_file"))
        );
        assert_eq!(
            memory_limit(&fixture("v2-memory/limited/memory.max"), 4096).unwrap(),
            Some(128 << 20)
        );
        assert_eq!(
            memory_limit(&fixture("v2-memory/unlimited/memory.max"), 4096).unwrap(),
            None
        );
        assert_eq!(
            flat_keyed(&fixture("v2-memory/oom/memory.events"), "oom_kill").unwrap(),
            Some(1)
        );
        // `oom_group_kill` comes after `oom_kill` and is not it
        assert_eq!(
            flat_keyed(&fixture("v2-memory/oom/memory.events"), "oom_group_kill").unwrap(),
            Some(0)
        );
    }

    #[test]
    fn single_number_edge_cases() {
        let rows: &[(&[u8], Result<u64, &str>)] = &[
            // no trailing newline
            (b"42", Ok(42)),
            // surrounding whitespace
            (b"  7 \n\n", Ok(7)),
            // the largest value
            (b"18446744073709551615\n", Ok(u64::MAX)),
            // one past it
            (b"18446744073709551616\n", Err("expected a whole number")),
            // empty file
            (b"", Err("empty")),
            (b"\n", Err("empty")),
            // negative, decimal, a word, two numbers
            (b"-1\n", Err("expected a whole number, found \"-1\"")),
            (b"1.5\n", Err("expected a whole number")),
            (b"max\n", Err("found \"max\"")),
            (b"1 2\n", Err("expected a whole number")),
        ];
        for (data, want) in rows {
            match (single_number(data), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{data:?}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{data:?}: {got}"),
                (got, want) => panic!("{data:?}: got {got:?}, want {want:?}"),
            }
        }
        // a long garbage value is cut in the message
        let long = vec![b'x'; 10_000];
        assert!(single_number(&long).unwrap_err().len() < 100);
    }

    #[test]
    fn memory_limit_edge_cases() {
        let unlimited_4k = unlimited_from(4096);
        assert_eq!(unlimited_4k, 9_223_372_036_854_771_712);
        // 64 KiB pages round further down
        assert_eq!(unlimited_from(65536), 0x7FFF_FFFF_FFFF_0000);
        // an unknown page size counts as 4 KiB
        assert_eq!(unlimited_from(0), unlimited_4k);
        /// A file, the page size, and the limit or the start of the error.
        type Row<'a> = (&'a [u8], u64, Result<Option<u64>, &'a str>);
        let rows: &[Row] = &[
            (b"max\n", 4096, Ok(None)),
            (b"9223372036854771712\n", 4096, Ok(None)),
            // anything above the page-rounded maximum is no limit either
            (b"9223372036854775807\n", 4096, Ok(None)),
            // one page below it is a (huge) limit
            (
                b"9223372036854767616\n",
                4096,
                Ok(Some(9_223_372_036_854_767_616)),
            ),
            // the 64 KiB-page maximum is no limit there, a limit with 4 KiB pages
            (b"9223372036854710272\n", 65536, Ok(None)),
            (
                b"9223372036854710272\n",
                4096,
                Ok(Some(9_223_372_036_854_710_272)),
            ),
            (b"0\n", 4096, Ok(Some(0))),
            (b"33554432\n", 4096, Ok(Some(32 << 20))),
            (b"Max\n", 4096, Err("expected a whole number")),
            (b"", 4096, Err("empty")),
        ];
        for (data, page, want) in rows {
            match (memory_limit(data, *page), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{data:?}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{data:?}: {got}"),
                (got, want) => panic!("{data:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn flat_keyed_edge_cases() {
        let rows: &[(&str, Result<Option<u64>, &str>)] = &[
            // absent key
            ("a 1\nb 2\n", Ok(None)),
            // empty file
            ("", Ok(None)),
            // the key on any line, tabs and spaces, no final newline
            ("a 1\nkey\t\t5", Ok(Some(5))),
            // the first line of a key counts
            ("key 1\nkey 2\n", Ok(Some(1))),
            // other lines need not parse
            ("garbage line here\nkey 3\nx\n", Ok(Some(3))),
            // a key that only starts with the wanted one is another key
            ("key_total 9\n", Ok(None)),
            // no value
            ("a 1\nkey\n", Err("line 2: `key` has no value")),
            // a value that is not a number
            (
                "key -3\n",
                Err("line 1: `key` value \"-3\" is not a whole number"),
            ),
            // two values
            ("key 1 2\n", Err("line 1: `key` has more than one value")),
        ];
        for (text, want) in rows {
            match (flat_keyed(text.as_bytes(), "key"), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{text:?}"),
                (Err(got), Err(want)) => assert!(got.starts_with(want), "{text:?}: {got}"),
                (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn line_counts_in_pieces() {
        let rows: &[(&[u8], u64)] = &[
            (b"", 0),
            (b"\n\n", 0),
            (b"12\n", 1),
            (b"12\n34", 2),
            (b"12\n \n34\n", 2),
        ];
        for (data, want) in rows {
            assert_eq!(count_lines(data), *want, "{data:?}");
            // any split into two pieces counts the same
            for at in 0..=data.len() {
                let mut c = LineCount::default();
                c.feed(&data[..at]);
                c.feed(&data[at..]);
                assert_eq!(c.finish(), *want, "{data:?} split at {at}");
            }
        }
    }

    #[test]
    fn online_cpus_count_cpun_lines() {
        let stat = std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/proc/t0/stat"),
        )
        .unwrap();
        assert_eq!(online_cpus(&stat), 2);
        assert_eq!(
            online_cpus(b"cpu  1 2 3\ncpu0 1\ncpu7 1\ncpufreq 1\nintr 1\n"),
            2
        );
        assert_eq!(online_cpus(b""), 0);
    }

    #[test]
    fn units_and_container_ids() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let rows: Vec<(String, &str, &str)> = vec![
            // a service, a socket, a slice, a scope
            ("system.slice/nginx.service".into(), "nginx.service", ""),
            ("system.slice/sshd.socket".into(), "sshd.socket", ""),
            ("user.slice".into(), "user.slice", ""),
            (
                "user.slice/user-0.slice/session-3.scope".into(),
                "session-3.scope",
                "",
            ),
            // cgroupfs Docker: the id alone
            (format!("docker/{id}"), "", id),
            // systemd-driven Docker, containerd, CRI-O and Podman scopes
            (format!("system.slice/docker-{id}.scope"), "", id),
            (
                format!(
                    "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-{id}.scope"
                ),
                "",
                id,
            ),
            (
                format!("kubepods.slice/kubepods-pod1.slice/crio-{id}.scope"),
                "",
                id,
            ),
            (format!("machine.slice/libpod-{id}.scope"), "", id),
            // cgroupfs Kubernetes: pod<uid>/<id>
            (
                format!("kubepods/burstable/pod8c7a6c2e-1b0c-4c8e-9a6a-0e2c1d3f4a5b/{id}"),
                "",
                id,
            ),
            // the pod itself is no container
            (
                "kubepods/burstable/pod8c7a6c2e-1b0c-4c8e-9a6a-0e2c1d3f4a5b".into(),
                "",
                "",
            ),
            // conmon monitors are not containers
            (format!("machine.slice/crio-conmon-{id}.scope"), "", ""),
            // 63 or 65 hex digits, or a non-hex character, are no id
            (format!("docker/{}", &id[1..]), "", ""),
            (format!("docker/{id}0"), "", ""),
            (format!("docker/{}g", &id[1..]), "", ""),
            // an id in a middle component is not the last component's
            (format!("docker/{id}/child"), "", ""),
            // a bare suffix is no unit
            (".service".into(), "", ""),
            ("".into(), "", ""),
        ];
        for (path, want_unit, want_id) in &rows {
            // a scope is both a unit and, for containers, an id
            let want_unit = if want_unit.is_empty() && path.ends_with(".scope") {
                path.rsplit('/').next().unwrap()
            } else {
                want_unit
            };
            assert_eq!(unit(path), want_unit, "{path}");
            assert_eq!(container_id(path), *want_id, "{path}");
        }
    }
}
