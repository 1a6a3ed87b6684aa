//! The cgroup trees under the configured root: which hierarchies there are (discovered
//! from the directory layout on every run), which cgroups match the include and exclude
//! globs (a bounded walk of each hierarchy), and the values of one cgroup, read from the
//! hierarchies that hold it.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::parse;

/// Deepest cgroup path walked, in components (`system.slice/nginx.service` is 2).
pub const MAX_DEPTH: usize = 16;

/// Most directories one run walks over all hierarchies; past it the walk stops there.
pub const MAX_WALKED: usize = 100_000;

/// Most hierarchies looked at under the root (a v1 host mounts about a dozen).
const MAX_HIERARCHIES: usize = 32;

/// Largest cgroup file read whole (a v1 `memory.stat` is about 1.5 KiB).
const MAX_FILE: u64 = 64 * 1024;

/// How globs match: `*`, `?` and classes never match `/`.
const MATCH: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// One component of a glob: `**`, or a pattern within one path component.
#[derive(Clone)]
enum Part {
    AnyDepth,
    One(glob::Pattern),
}

/// An include or exclude glob over cgroup paths (`system.slice/*.service`): `*`, `?` and
/// classes match within one path component, `**` (a whole component) any number of them.
#[derive(Clone)]
pub struct CgroupGlob {
    text: String,
    whole: glob::Pattern,
    parts: Vec<Part>,
}

impl std::fmt::Debug for CgroupGlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl CgroupGlob {
    /// Compiles a glob whose syntax was checked by `config::units::check_glob`; refuses
    /// what can never match a cgroup path (a leading or trailing `/`, an empty component).
    pub fn new(text: &str) -> Result<Self, String> {
        if text.starts_with('/') {
            return Err(format!(
                "{text:?} starts with `/`: cgroup paths are relative to the hierarchy root, \
                 as in system.slice/nginx.service"
            ));
        }
        if text.ends_with('/') || text.contains("//") {
            return Err(format!(
                "{text:?} has an empty path component: it can never match a cgroup path"
            ));
        }
        let invalid = |e: glob::PatternError| format!("invalid glob {text:?}: {}", e.msg);
        let whole = glob::Pattern::new(text).map_err(invalid)?;
        let parts = text
            .split('/')
            .map(|component| {
                if component == "**" {
                    Ok(Part::AnyDepth)
                } else {
                    glob::Pattern::new(component)
                        .map(Part::One)
                        .map_err(invalid)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CgroupGlob {
            text: text.to_string(),
            whole,
            parts,
        })
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the cgroup path `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        self.whole.matches_with(path, MATCH)
    }

    /// Whether a cgroup below `dir` could match: `false` only when none can, so that the
    /// walk skips that subtree.
    pub fn may_match_below(&self, dir: &str) -> bool {
        let mut depth = 0;
        for component in dir.split('/') {
            match self.parts.get(depth) {
                None => return false,
                Some(Part::AnyDepth) => return true,
                Some(Part::One(p)) if !p.matches_with(component, MATCH) => return false,
                Some(Part::One(_)) => depth += 1,
            }
        }
        self.parts.len() > depth
    }
}

/// Which cgroup version a hierarchy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// A per-controller hierarchy (`/sys/fs/cgroup/memory`).
    V1,
    /// The unified hierarchy (the root itself, or `unified` on a hybrid host).
    V2,
}

/// One cgroup hierarchy under the root, and what this collector reads from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Its directory: the root, or the root joined with [`Self::name`].
    pub dir: PathBuf,
    /// The entry under the root it was found through (`memory`, `cpu,cpuacct`); empty for
    /// a v2 hierarchy at the root.
    pub name: String,
    /// v1 or v2.
    pub version: Version,
    /// The memory figures: v1 with `memory.usage_in_bytes`; v2 with `memory` among the
    /// controllers of its root (`cgroup.controllers`).
    pub memory: bool,
    /// v1 with `cpuacct.usage`: CPU time (a v2 one has `cpu.stat` in every cgroup).
    pub cpuacct: bool,
    /// Task counts: v1 `pids` (its root has no `pids.current`: found by the name, or by
    /// `pids.current` at a root that is itself a cgroup, as in a container); v2 with `pids`
    /// among the controllers of its root.
    pub pids: bool,
}

impl Hierarchy {
    /// Whether this collector reads anything from it (a v2 one always has `cpu.stat`).
    fn useful(&self) -> bool {
        self.version == Version::V2 || self.memory || self.cpuacct || self.pids
    }
}

/// The hierarchies under `root`: the v2 one at `root` itself when it holds
/// `cgroup.controllers` (a pure v2 host; nothing else then), else every directory directly
/// under `root`, symlinks followed, that holds `cgroup.controllers` (v2, `unified` on a
/// hybrid host) or `cgroup.procs` (v1) and something this collector reads. The same
/// hierarchy reached twice (`cpuacct -> cpu,cpuacct`) counts once. Sorted by name.
pub fn discover(root: &Path) -> Result<Vec<Hierarchy>, String> {
    if root.join("cgroup.controllers").exists() {
        return Ok(vec![unified(root.to_path_buf(), String::new())]);
    }
    let entries =
        std::fs::read_dir(root).map_err(|e| format!("reading {}: {e}", root.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort_unstable();
    let mut seen = HashSet::new();
    let mut found = Vec::new();
    let mut any_hierarchy = false;
    for name in names {
        let dir = root.join(&name);
        // Follows symlinks: `cpuacct -> cpu,cpuacct` is the same directory.
        let Ok(meta) = std::fs::metadata(&dir) else {
            continue;
        };
        if !meta.is_dir() {
            continue;
        }
        let version = if dir.join("cgroup.controllers").exists() {
            Version::V2
        } else if dir.join("cgroup.procs").exists() {
            Version::V1
        } else {
            continue;
        };
        any_hierarchy = true;
        if !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        let hierarchy = match version {
            Version::V2 => unified(dir, name),
            Version::V1 => Hierarchy {
                memory: dir.join("memory.usage_in_bytes").exists(),
                cpuacct: dir.join("cpuacct.usage").exists(),
                pids: name.split(',').any(|c| c == "pids") || dir.join("pids.current").exists(),
                dir,
                name,
                version,
            },
        };
        if hierarchy.useful() && found.len() < MAX_HIERARCHIES {
            found.push(hierarchy);
        }
    }
    if !any_hierarchy {
        return Err(format!(
            "no cgroup hierarchy under {}: no cgroup.controllers there (cgroup v2) and no \
             directory with cgroup.procs below it (cgroup v1)",
            root.display()
        ));
    }
    Ok(found)
}

/// The unified hierarchy at `dir`. Its memory and pids files are looked for only when its
/// root lists those controllers (a hybrid host often has none there: no file to try per
/// cgroup); when that list cannot be read, they are looked for anyway.
fn unified(dir: PathBuf, name: String) -> Hierarchy {
    let controllers = std::fs::read_to_string(dir.join("cgroup.controllers"));
    let has = |controller: &str| {
        controllers.as_ref().map_or(true, |list| {
            list.split_whitespace().any(|c| c == controller)
        })
    };
    Hierarchy {
        memory: has("memory"),
        cpuacct: false,
        pids: has("pids"),
        dir,
        name,
        version: Version::V2,
    }
}

/// The cgroups a walk found: each matching path, with the hierarchies holding it (bit `i`
/// for `hierarchies[i]`), in path order.
#[derive(Debug, Default)]
pub struct Found {
    /// Matching cgroup paths and the hierarchies they were seen in.
    pub paths: BTreeMap<String, u32>,
    /// Directories that could not be listed (other than vanished ones).
    pub unreadable: Vec<String>,
    /// Whether the walk stopped at [`MAX_WALKED`] directories.
    pub truncated: bool,
}

/// Walks every hierarchy down to [`MAX_DEPTH`] components, into the subtrees where an
/// include glob may match, and keeps the paths that match an include glob and no exclude
/// glob. A directory that vanishes while walked is skipped; one that cannot be listed is
/// skipped and named in [`Found::unreadable`].
pub fn walk(hierarchies: &[Hierarchy], include: &[CgroupGlob], exclude: &[CgroupGlob]) -> Found {
    let mut found = Found::default();
    let mut walked = 0usize;
    for (index, hierarchy) in hierarchies.iter().enumerate().take(MAX_HIERARCHIES) {
        let bit = 1u32 << index;
        let mut stack: Vec<(PathBuf, String, usize)> =
            vec![(hierarchy.dir.clone(), String::new(), 0)];
        while let Some((dir, rel, depth)) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if vanished(&e) => continue,
                Err(e) => {
                    if found.unreadable.len() < 8 {
                        found.unreadable.push(format!("{}: {e}", dir.display()));
                    }
                    continue;
                }
            };
            for entry in entries.filter_map(Result::ok) {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                // Label values are text: a name that is not UTF-8 is left out.
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                walked += 1;
                if walked > MAX_WALKED {
                    found.truncated = true;
                    return found;
                }
                let path = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                if include.iter().any(|g| g.matches(&path))
                    && !exclude.iter().any(|g| g.matches(&path))
                {
                    *found.paths.entry(path.clone()).or_default() |= bit;
                }
                if depth + 1 < MAX_DEPTH && include.iter().any(|g| g.may_match_below(&path)) {
                    stack.push((entry.path(), path, depth + 1));
                }
            }
        }
    }
    found
}

/// What one cgroup shows; `None` where its hierarchies do not say.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Values {
    /// CPU time used, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Working set: usage minus inactive file cache, in bytes.
    pub memory_bytes: Option<u64>,
    /// Memory limit in bytes; `None` also when unlimited.
    pub memory_limit: Option<u64>,
    /// Processes killed by the OOM killer in it.
    pub oom_kills: Option<u64>,
    /// Tasks (`pids.current`) or, without it, processes (`cgroup.procs`).
    pub pids: Option<u64>,
}

impl Values {
    /// Whether nothing was read (the cgroup vanished, or no hierarchy says anything).
    pub fn is_empty(&self) -> bool {
        self.cpu_seconds.is_none()
            && self.memory_bytes.is_none()
            && self.oom_kills.is_none()
            && self.pids.is_none()
    }
}

/// Why a file gave no value.
#[derive(Debug)]
enum Missing {
    /// Not there: the cgroup vanished, or its controller is not enabled there.
    Absent,
    /// Unreadable, or content that did not parse: the message names the file.
    Problem(String),
}

/// Reads the values of cgroups, reusing one buffer; problems met are kept (the first few)
/// for the collector to log.
#[derive(Debug)]
pub struct Reader {
    buf: Vec<u8>,
    page_size: u64,
    /// Messages of the problems met since the last [`Reader::take_problems`] (at most 8).
    problems: Vec<String>,
    /// How many problems, counting those not kept.
    problem_count: usize,
}

impl Reader {
    /// A reader for a system with pages of `page_size` bytes (for the "no limit" value).
    pub fn new(page_size: u64) -> Self {
        Reader {
            buf: Vec::with_capacity(4096),
            page_size,
            problems: Vec::new(),
            problem_count: 0,
        }
    }

    /// The problems met since the last call (the first few messages) and their number.
    pub fn take_problems(&mut self) -> (Vec<String>, usize) {
        let count = std::mem::take(&mut self.problem_count);
        (std::mem::take(&mut self.problems), count)
    }

    /// The values of cgroup `path`, held by the hierarchies of `mask` (see [`Found`]):
    /// - CPU: v1 `cpuacct.usage`, else v2 `cpu.stat` `usage_usec`;
    /// - memory: v1 `memory.usage_in_bytes` minus `total_inactive_file` of `memory.stat`,
    ///   `memory.limit_in_bytes`, `oom_kill` of `memory.oom_control`; else v2
    ///   `memory.current` minus `inactive_file`, `memory.max`, `oom_kill` of
    ///   `memory.events` (none when the memory controller is not enabled there);
    /// - pids: v1 or v2 `pids.current`, else the lines of the first `cgroup.procs`.
    pub fn read(&mut self, hierarchies: &[Hierarchy], path: &str, mask: u32) -> Values {
        let held: Vec<&Hierarchy> = hierarchies
            .iter()
            .enumerate()
            .filter(|(i, _)| *i < 32 && mask & (1 << i) != 0)
            .map(|(_, h)| h)
            .collect();
        let v1 = |want: fn(&Hierarchy) -> bool| {
            held.iter()
                .copied()
                .find(|h| h.version == Version::V1 && want(h))
        };
        let v2 = held.iter().copied().find(|h| h.version == Version::V2);
        let mut values = Values::default();

        if let Some(h) = v1(|h| h.cpuacct) {
            values.cpu_seconds = self
                .file(h, path, "cpuacct.usage", parse::single_number)
                .map(|ns| ns as f64 / 1e9);
        } else if let Some(h) = v2 {
            values.cpu_seconds = self
                .file(h, path, "cpu.stat", |d| required(d, "usage_usec"))
                .map(|us| us as f64 / 1e6);
        }

        let memory = match v1(|h| h.memory) {
            Some(h) => Some((
                h,
                [
                    "memory.usage_in_bytes",
                    "total_inactive_file",
                    "memory.limit_in_bytes",
                    "memory.oom_control",
                ],
            )),
            None => v2.filter(|h| h.memory).map(|h| {
                (
                    h,
                    [
                        "memory.current",
                        "inactive_file",
                        "memory.max",
                        "memory.events",
                    ],
                )
            }),
        };
        if let Some((h, [usage_file, inactive_key, limit_file, events_file])) = memory {
            let page_size = self.page_size;
            if let Some(usage) = self.file(h, path, usage_file, parse::single_number) {
                values.memory_bytes = self
                    .file(h, path, "memory.stat", |d| required(d, inactive_key))
                    .map(|inactive| parse::working_set(usage, inactive));
                values.memory_limit = self
                    .file(h, path, limit_file, |d| parse::memory_limit(d, page_size))
                    .flatten();
                values.oom_kills = self
                    .file(h, path, events_file, |d| parse::flat_keyed(d, "oom_kill"))
                    .flatten();
            }
        }

        values.pids = v1(|h| h.pids)
            .or(v2.filter(|h| h.pids))
            .and_then(|h| self.file(h, path, "pids.current", parse::single_number))
            .or_else(|| {
                let h = v2.or_else(|| held.first().copied())?;
                self.count_procs(h, path)
            });
        values
    }

    /// The parsed content of `file` of cgroup `path` in `h`; `None` when it is absent or
    /// was a problem (kept).
    fn file<T>(
        &mut self,
        h: &Hierarchy,
        path: &str,
        file: &str,
        parse: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Option<T> {
        let full = h.dir.join(path).join(file);
        let outcome = match read_small(&full, &mut self.buf) {
            Ok(()) => {
                parse(&self.buf).map_err(|m| Missing::Problem(format!("{}: {m}", full.display())))
            }
            Err(e) if vanished(&e) => Err(Missing::Absent),
            Err(e) => Err(Missing::Problem(format!("{}: {e}", full.display()))),
        };
        match outcome {
            Ok(value) => Some(value),
            Err(Missing::Absent) => None,
            Err(Missing::Problem(message)) => {
                self.problem(message);
                None
            }
        }
    }

    /// The number of processes listed in `cgroup.procs`, read in pieces.
    fn count_procs(&mut self, h: &Hierarchy, path: &str) -> Option<u64> {
        let full = h.dir.join(path).join("cgroup.procs");
        let mut count = parse::LineCount::default();
        let outcome = std::fs::File::open(&full).and_then(|mut file| {
            let mut piece = [0u8; 8192];
            loop {
                match file.read(&mut piece)? {
                    0 => return Ok(()),
                    n => count.feed(piece.get(..n).unwrap_or_default()),
                }
            }
        });
        match outcome {
            Ok(()) => Some(count.finish()),
            Err(e) if vanished(&e) => None,
            Err(e) => {
                self.problem(format!("{}: {e}", full.display()));
                None
            }
        }
    }

    fn problem(&mut self, message: String) {
        self.problem_count += 1;
        if self.problems.len() < 8 {
            self.problems.push(message);
        }
    }
}

/// `key` of a flat-keyed file, which must be there.
fn required(data: &[u8], key: &str) -> Result<u64, String> {
    parse::flat_keyed(data, key)?.ok_or_else(|| format!("no `{key}` line"))
}

/// Reads `path` whole into `buf` (cleared first); refuses files over [`MAX_FILE`].
fn read_small(path: &Path, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    std::fs::File::open(path)?
        .take(MAX_FILE + 1)
        .read_to_end(buf)?;
    if buf.len() as u64 > MAX_FILE {
        return Err(std::io::Error::other(format!(
            "larger than {} KiB",
            MAX_FILE / 1024
        )));
    }
    Ok(())
}

/// Whether an error means the file or directory is not there (any more): not found, or
/// `ENODEV` from a cgroup removed while it was open.
fn vanished(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
        || e.raw_os_error() == Some(rustix::io::Errno::NODEV.raw_os_error())
}
