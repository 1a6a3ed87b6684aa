//! Filesystem usage per mount point: `lookout_filesystem_{size_bytes,avail_bytes,usage_ratio,
//! inodes_usage_ratio}{mountpoint,device,fstype}`.
//!
//! Reads the mount table from `<proc>/1/mountinfo` (the host's view even when the agent runs
//! in its own mount namespace with the host's `/proc` mounted in), falling back to
//! `<proc>/self/mountinfo` when PID 1's file is unreadable (an unprivileged agent may not pass
//! the ptrace access check on PID 1). [`parse_mountinfo`] is a small pure parser: procfs-core's
//! `MountInfos` leaves the kernel's octal escapes (`\040` for a space) in mount points and
//! cannot report line numbers.
//!
//! Which mounts are reported ([`select_mounts`]), in this order:
//! 1. mounts hidden by a later mount on the same point (`/dev/shm` mounted twice) or under a
//!    hidden mount are dropped: `statvfs` on their path would describe the mount on top, and
//!    the alert would name the wrong filesystem;
//! 2. `exclude_fstypes` (exact names) and `exclude_mounts` (whole mount point patterns);
//! 3. one mount per device (`major:minor`): bind mounts of one filesystem (kubelet volumes,
//!    container bind mounts) report once, from the mount whose root within the filesystem is
//!    `/`, and among those the shortest mount point.
//!
//! Sizes come from `statvfs(3)` on the mount point under `rootfs` (`/`, or `/host/root` in a
//! container), through the [`StatFs`] trait so tests can replay captured values
//! ([`FixtureStatFs`]). Ratios are what `df` prints: `used / (used + avail)`, where `avail`
//! excludes the blocks reserved for root. Filesystems with no blocks (proc, sysfs, cgroup)
//! are skipped as `df` does; the inode ratio is skipped when a filesystem has no inode count
//! (btrfs, vfat report `f_files = 0`).
//!
//! `statvfs` can block forever on a dead NFS or FUSE server. Each call runs on its own
//! short-lived thread and all of a run's calls share one deadline; a mount that misses it is
//! remembered as stuck and skipped (one warning) until its blocked call finally returns, as
//! node_exporter does. A failing `statvfs` (EACCES, ENOENT) skips that mount only.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use regex::Regex;

use super::Schedule;
use super::{CollectError, Collector, ProcFs, Sample};
use crate::catalogue::{
    FILESYSTEM_AVAIL_BYTES, FILESYSTEM_INODES_USAGE_RATIO, FILESYSTEM_SIZE_BYTES,
    FILESYSTEM_USAGE_RATIO,
};
use crate::config::units::matches_any;

/// Longest wait for the `statvfs` calls of one run, before the schedule's own timeout caps it.
const MAX_STAT_TIMEOUT: Duration = Duration::from_secs(5);

/// One line of `/proc/<pid>/mountinfo`, with the kernel's octal escapes decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Unique id of the mount (field 1).
    pub mount_id: u64,
    /// Id of the mount it is mounted on (field 2).
    pub parent_id: u64,
    /// Device number `(major, minor)`; shared by every bind mount of one filesystem.
    pub device: (u32, u32),
    /// Directory of the filesystem that this mount shows (`/` unless a bind mount of a subtree).
    pub root: String,
    /// Where it is mounted, relative to the reading process's root.
    pub mount_point: PathBuf,
    /// Filesystem type, e.g. `ext4`, `fuse.sshfs`.
    pub fstype: String,
    /// Mount source as the kernel shows it (`/dev/vda`, `tmpfs`, `server:/export`).
    pub source: String,
}

/// Parses the content of a `mountinfo` file. Errors name the 1-based line.
///
/// Line format (proc(5)): `id parent major:minor root mountpoint options [optional...] - fstype
/// source superoptions`. Fields are separated by single spaces; space, tab, newline and
/// backslash inside a field are written as `\040`, `\011`, `\012`, `\134`.
pub fn parse_mountinfo(data: &[u8]) -> Result<Vec<Mount>, String> {
    let mut mounts = Vec::new();
    for (index, line) in data.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let mount = parse_mountinfo_line(line).map_err(|e| format!("line {}: {e}", index + 1))?;
        mounts.push(mount);
    }
    Ok(mounts)
}

fn parse_mountinfo_line(line: &[u8]) -> Result<Mount, String> {
    let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let field = |i: usize, what: &str| -> Result<&[u8], String> {
        fields
            .get(i)
            .copied()
            .ok_or_else(|| format!("missing {what} (field {})", i + 1))
    };
    let mount_id = parse_dec::<u64>(field(0, "mount id")?).ok_or("mount id is not a number")?;
    let parent_id = parse_dec::<u64>(field(1, "parent id")?).ok_or("parent id is not a number")?;
    let majmin = field(2, "major:minor")?;
    let device = majmin
        .iter()
        .position(|&b| b == b':')
        .and_then(|colon| {
            let major = parse_dec::<u32>(majmin.get(..colon)?)?;
            let minor = parse_dec::<u32>(majmin.get(colon + 1..)?)?;
            Some((major, minor))
        })
        .ok_or_else(|| format!("bad major:minor {:?}", String::from_utf8_lossy(majmin)))?;
    let root = field(3, "root")?;
    let mount_point = field(4, "mount point")?;
    field(5, "mount options")?;
    // Optional fields (`shared:N`, `master:N`, ...) run up to a lone `-`.
    let dash = fields
        .iter()
        .skip(6)
        .position(|f| *f == b"-")
        .map(|p| p + 6)
        .ok_or("missing \"-\" separator before the filesystem type")?;
    let fstype = field(dash + 1, "filesystem type")?;
    let source = field(dash + 2, "mount source")?;
    if fstype.is_empty() {
        return Err("empty filesystem type".into());
    }
    Ok(Mount {
        mount_id,
        parent_id,
        device,
        root: lossy(&unescape(root)),
        mount_point: PathBuf::from(OsString::from_vec(unescape(mount_point))),
        fstype: lossy(&unescape(fstype)),
        source: lossy(&unescape(source)),
    })
}

/// Decodes the kernel's `\ooo` octal escapes; a backslash not followed by three octal digits
/// (of a byte value) is kept as it is.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while let Some(&b) = field.get(i) {
        if b == b'\\'
            && let Some(digits) = field.get(i + 1..i + 4)
            && digits.iter().all(|d| (b'0'..=b'7').contains(d))
        {
            let value = digits
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn parse_dec<T: std::str::FromStr>(bytes: &[u8]) -> Option<T> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Picks the mounts to report (see the module doc): drops hidden mounts, applies the
/// excludes, then keeps one mount per device. Keeps the mountinfo order.
pub fn select_mounts(
    mounts: Vec<Mount>,
    exclude_fstypes: &[String],
    exclude_mounts: &[Regex],
) -> Vec<Mount> {
    let visible = visible_mounts(&mounts);
    let candidates: Vec<Mount> = mounts
        .into_iter()
        .zip(visible)
        .filter(|(_, visible)| *visible)
        .map(|(mount, _)| mount)
        .filter(|m| !exclude_fstypes.contains(&m.fstype))
        .filter(|m| !matches_any(exclude_mounts, &m.mount_point.to_string_lossy()))
        .collect();

    // Best mount per device: root "/" first, then the shortest mount point, then the
    // lexically smallest, so the choice does not depend on mount order.
    let rank = |m: &Mount| {
        (
            m.root != "/",
            m.mount_point.as_os_str().len(),
            m.mount_point.clone(),
        )
    };
    let mut best: HashMap<(u32, u32), usize> = HashMap::new();
    for (i, mount) in candidates.iter().enumerate() {
        let better = match best.get(&mount.device).and_then(|&b| candidates.get(b)) {
            Some(current) => rank(mount) < rank(current),
            None => true,
        };
        if better {
            best.insert(mount.device, i);
        }
    }
    candidates
        .into_iter()
        .enumerate()
        .filter(|(i, m)| best.get(&m.device) == Some(i))
        .map(|(_, m)| m)
        .collect()
}

/// Whether each mount can be reached by path. A mount is hidden when another mount sits on
/// its root at the same mount point (an over-mount), or when it hangs below a hidden mount.
/// Two visible mounts on one point keep only the later one: that is the one a path reaches.
fn visible_mounts(mounts: &[Mount]) -> Vec<bool> {
    let by_id: HashMap<u64, usize> = mounts
        .iter()
        .enumerate()
        .map(|(i, m)| (m.mount_id, i))
        .collect();
    let covered: HashSet<u64> = mounts
        .iter()
        .filter_map(|m| {
            let parent = mounts.get(*by_id.get(&m.parent_id)?)?;
            (parent.mount_id != m.mount_id && parent.mount_point == m.mount_point)
                .then_some(parent.mount_id)
        })
        .collect();
    // reachable(m): every mount on the way up is uncovered, except where the step up is
    // from an over-mount to the mount it covers. The step limit guards against cycles.
    let reachable = |start: usize| -> bool {
        let mut current = start;
        for _ in 0..mounts.len() {
            let Some(mount) = mounts.get(current) else {
                return true;
            };
            let Some(&parent_index) = by_id.get(&mount.parent_id) else {
                return true;
            };
            let Some(parent) = mounts.get(parent_index) else {
                return true;
            };
            if parent_index == current {
                return true;
            }
            if parent.mount_point != mount.mount_point && covered.contains(&parent.mount_id) {
                return false;
            }
            current = parent_index;
        }
        true
    };
    let mut last_on_point: HashMap<&Path, usize> = HashMap::new();
    let mut visible: Vec<bool> = (0..mounts.len())
        .map(|i| {
            mounts
                .get(i)
                .is_some_and(|m| !covered.contains(&m.mount_id))
                && reachable(i)
        })
        .collect();
    for (i, mount) in mounts.iter().enumerate() {
        if visible.get(i) == Some(&true) {
            last_on_point.insert(mount.mount_point.as_path(), i);
        }
    }
    for (i, mount) in mounts.iter().enumerate() {
        if last_on_point.get(mount.mount_point.as_path()) != Some(&i)
            && let Some(v) = visible.get_mut(i)
        {
            *v = false;
        }
    }
    visible
}

/// The `statvfs(3)` numbers lookout uses, in blocks of `frsize` bytes and in inodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsStat {
    /// Size of the filesystem in blocks (`f_blocks`).
    pub blocks: u64,
    /// Free blocks, including those reserved for root (`f_bfree`).
    pub bfree: u64,
    /// Blocks available to unprivileged users (`f_bavail`).
    pub bavail: u64,
    /// Block size in bytes for the counts above (`f_frsize`).
    pub frsize: u64,
    /// Inodes in total (`f_files`); 0 when the filesystem has no fixed inode count.
    pub files: u64,
    /// Free inodes (`f_ffree`).
    pub ffree: u64,
}

/// Something that answers `statvfs` for a path: the real system call, or captured values.
///
/// Implementations may block (a dead NFS mount); the collector calls them on a separate
/// thread with a timeout.
pub trait StatFs: Send + Sync {
    /// Filesystem numbers for the filesystem containing `path`.
    fn stat(&self, path: &Path) -> io::Result<FsStat>;
}

/// The real `statvfs(3)` (through rustix).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemStatFs;

impl StatFs for SystemStatFs {
    fn stat(&self, path: &Path) -> io::Result<FsStat> {
        let st = rustix::fs::statvfs(path)?;
        Ok(FsStat {
            blocks: st.f_blocks,
            bfree: st.f_bfree,
            bavail: st.f_bavail,
            // Linux always fills f_frsize; older kernels and some FUSE servers leave it 0,
            // and then the counts are in f_bsize units.
            frsize: if st.f_frsize == 0 {
                st.f_bsize
            } else {
                st.f_frsize
            },
            files: st.f_files,
            ffree: st.f_ffree,
        })
    }
}

/// Captured `statvfs` answers, for tests and offline replay (the golden `/metrics` test).
///
/// File format (`tests/fixtures/proc/statvfs.txt`): one mount point a line,
/// `path blocks bfree bavail frsize files ffree`, whitespace-separated; the path is escaped
/// like mountinfo (`\040` for a space); blank lines and lines starting with `#` are ignored.
/// [`StatFs::stat`] looks paths up verbatim (so replay with `rootfs` = `/`) and answers
/// `NotFound` for any other path.
#[derive(Debug, Clone, Default)]
pub struct FixtureStatFs {
    stats: HashMap<PathBuf, FsStat>,
}

impl FixtureStatFs {
    /// Reads a fixture file; an unreadable or malformed file is an error naming it.
    pub fn load(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        let data = std::fs::read(path)?;
        Self::parse(&data).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })
    }

    /// Parses fixture content (format above). Errors name the 1-based line.
    pub fn parse(data: &[u8]) -> Result<Self, String> {
        let mut stats = HashMap::new();
        for (index, line) in data.split(|&b| b == b'\n').enumerate() {
            let mut fields = line
                .split(u8::is_ascii_whitespace)
                .filter(|f| !f.is_empty());
            let Some(path) = fields.next() else { continue };
            if path.starts_with(b"#") {
                continue;
            }
            let numbers: Vec<u64> = fields
                .map(parse_dec::<u64>)
                .collect::<Option<_>>()
                .ok_or_else(|| format!("line {}: counts must be unsigned integers", index + 1))?;
            let &[blocks, bfree, bavail, frsize, files, ffree] = numbers.as_slice() else {
                return Err(format!(
                    "line {}: expected `path blocks bfree bavail frsize files ffree`, found {} numbers",
                    index + 1,
                    numbers.len()
                ));
            };
            let path = PathBuf::from(OsString::from_vec(unescape(path)));
            stats.insert(
                path,
                FsStat {
                    blocks,
                    bfree,
                    bavail,
                    frsize,
                    files,
                    ffree,
                },
            );
        }
        Ok(FixtureStatFs { stats })
    }
}

impl StatFs for FixtureStatFs {
    fn stat(&self, path: &Path) -> io::Result<FsStat> {
        self.stats.get(path).copied().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} not in the statvfs fixture", path.display()),
            )
        })
    }
}

/// Reports usage of every selected mount (see the module doc).
pub struct FilesystemCollector {
    proc: ProcFs,
    rootfs: PathBuf,
    schedule: Schedule,
    exclude_fstypes: Vec<String>,
    exclude_mounts: Vec<Regex>,
    statfs: Arc<dyn StatFs>,
    stat_timeout: Duration,
    /// Paths (under `rootfs`) whose `statvfs` has not returned yet; shared with the threads
    /// that are blocked on them, which remove their path when they finally return.
    stuck: Arc<Mutex<HashSet<PathBuf>>>,
}

impl fmt::Debug for FilesystemCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilesystemCollector")
            .field("proc", &self.proc)
            .field("rootfs", &self.rootfs)
            .field("schedule", &self.schedule)
            .field("exclude_fstypes", &self.exclude_fstypes)
            .field("exclude_mounts", &self.exclude_mounts)
            .field("stat_timeout", &self.stat_timeout)
            .field("stuck", &self.stuck_mounts())
            .finish_non_exhaustive()
    }
}

impl FilesystemCollector {
    /// A collector reading mounts under `proc` and calling `statvfs` on them under `rootfs`,
    /// with the host section's schedule and excludes.
    ///
    /// `statvfs` calls of one run wait at most 5 s or half the schedule timeout, whichever is
    /// shorter, so a hung mount never makes the whole run time out.
    pub fn new(
        proc: ProcFs,
        rootfs: PathBuf,
        schedule: Schedule,
        exclude_fstypes: Vec<String>,
        exclude_mounts: Vec<Regex>,
    ) -> Self {
        FilesystemCollector {
            proc,
            rootfs,
            schedule,
            exclude_fstypes,
            exclude_mounts,
            statfs: Arc::new(SystemStatFs),
            stat_timeout: MAX_STAT_TIMEOUT.min(schedule.timeout / 2),
            stuck: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// Replaces the `statvfs` source (captured values, or a fake in tests).
    pub fn with_statfs(self, statfs: impl StatFs + 'static) -> Self {
        self.with_statfs_arc(Arc::new(statfs))
    }

    /// Measures filesystems through a shared `statfs` (the collector registry's).
    pub fn with_statfs_arc(mut self, statfs: Arc<dyn StatFs>) -> Self {
        self.statfs = statfs;
        self
    }

    /// Sets how long one run waits for its `statvfs` calls.
    pub fn with_stat_timeout(mut self, timeout: Duration) -> Self {
        self.stat_timeout = timeout;
        self
    }

    /// Paths (under `rootfs`) currently skipped because their `statvfs` never returned.
    pub fn stuck_mounts(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = lock(&self.stuck).iter().cloned().collect();
        paths.sort();
        paths
    }

    /// Reads and parses the mount table, preferring PID 1's.
    fn read_mounts(&self) -> Result<Vec<Mount>, CollectError> {
        let (rel, data) = match self.proc.read("1/mountinfo") {
            Ok(data) => ("1/mountinfo", data),
            Err(err) => {
                tracing::debug!(error = %err, "falling back to self/mountinfo");
                ("self/mountinfo", self.proc.read("self/mountinfo")?)
            }
        };
        parse_mountinfo(&data).map_err(|message| self.proc.parse_error(rel, message))
    }

    /// Where `mount_point` is found from this process: under `rootfs`.
    fn host_path(&self, mount_point: &Path) -> PathBuf {
        match mount_point.strip_prefix("/") {
            Ok(relative) => self.rootfs.join(relative),
            Err(_) => self.rootfs.join(mount_point),
        }
    }

    /// `statvfs` of every path, in parallel, all sharing one deadline. `None` for a path that
    /// failed, is stuck, or just became stuck.
    fn stat_all(&self, paths: &[PathBuf]) -> Vec<Option<FsStat>> {
        let mut results: Vec<Option<FsStat>> = vec![None; paths.len()];
        let mut waiting: Vec<bool> = vec![false; paths.len()];
        let already_stuck = lock(&self.stuck).clone();
        let (tx, rx) = mpsc::channel::<(usize, io::Result<FsStat>)>();
        for (i, path) in paths.iter().enumerate() {
            if already_stuck.contains(path) {
                tracing::debug!(path = %path.display(), "skipping mount: statvfs still blocked from an earlier run");
                continue;
            }
            let statfs = Arc::clone(&self.statfs);
            let stuck = Arc::clone(&self.stuck);
            let tx = tx.clone();
            let thread_path = path.clone();
            let spawned = std::thread::Builder::new().name("lookout-statvfs".into()).spawn(move || {
                let result = statfs.stat(&thread_path);
                // Under the lock, so the collector either sees this result or has already
                // marked the path stuck (and then it is cleared here).
                let mut stuck = lock(&stuck);
                if stuck.remove(&thread_path) {
                    tracing::info!(path = %thread_path.display(), "statvfs returned again; mount no longer skipped");
                }
                let _ = tx.send((i, result));
                drop(stuck);
            });
            match spawned {
                Ok(_) => {
                    if let Some(w) = waiting.get_mut(i) {
                        *w = true;
                    }
                }
                Err(err) => {
                    tracing::warn!(path = %path.display(), error = %err, "cannot start statvfs thread")
                }
            }
        }
        drop(tx);

        let deadline = Instant::now() + self.stat_timeout;
        let mut pending = waiting.iter().filter(|w| **w).count();
        while pending > 0 {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(message) => {
                    accept(message, paths, &mut waiting, &mut results);
                    pending -= 1;
                }
                Err(_) => break,
            }
        }
        if pending > 0 {
            let mut stuck = lock(&self.stuck);
            while let Ok(message) = rx.try_recv() {
                accept(message, paths, &mut waiting, &mut results);
            }
            for (path, _) in paths.iter().zip(&waiting).filter(|(_, w)| **w) {
                tracing::warn!(
                    path = %path.display(),
                    timeout = ?self.stat_timeout,
                    "statvfs did not return; skipping this mount until it does"
                );
                stuck.insert(path.clone());
            }
        }
        results
    }
}

/// Records one `statvfs` answer for `paths[i]`.
fn accept(
    (i, result): (usize, io::Result<FsStat>),
    paths: &[PathBuf],
    waiting: &mut [bool],
    results: &mut [Option<FsStat>],
) {
    if let Some(w) = waiting.get_mut(i) {
        *w = false;
    }
    match result {
        Ok(stat) => {
            if let Some(slot) = results.get_mut(i) {
                *slot = Some(stat);
            }
        }
        Err(err) => {
            let path = paths
                .get(i)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            tracing::debug!(path = %path, error = %err, "skipping mount: statvfs failed");
        }
    }
}

/// Locks the stuck set; a panic while it was held cannot leave it inconsistent.
fn lock(set: &Mutex<HashSet<PathBuf>>) -> MutexGuard<'_, HashSet<PathBuf>> {
    set.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The samples of one mount; none for a filesystem without blocks.
fn mount_samples(mount: &Mount, stat: &FsStat, out: &mut Vec<Sample>) {
    if stat.blocks == 0 {
        return;
    }
    let labels = || {
        [
            (
                "mountpoint",
                mount.mount_point.to_string_lossy().into_owned(),
            ),
            ("device", mount.source.clone()),
            ("fstype", mount.fstype.clone()),
        ]
    };
    let frsize = stat.frsize as f64;
    let used = stat.blocks.saturating_sub(stat.bfree) as f64;
    let avail = stat.bavail as f64;
    let usage = if used + avail > 0.0 {
        used / (used + avail)
    } else {
        0.0
    };
    for (metric, value) in [
        (&FILESYSTEM_SIZE_BYTES, stat.blocks as f64 * frsize),
        (&FILESYSTEM_AVAIL_BYTES, avail * frsize),
        (&FILESYSTEM_USAGE_RATIO, usage),
    ] {
        out.push(Sample::with_labels(metric, labels(), value));
    }
    if stat.files > 0 {
        let used_inodes = stat.files.saturating_sub(stat.ffree) as f64;
        out.push(Sample::with_labels(
            &FILESYSTEM_INODES_USAGE_RATIO,
            labels(),
            used_inodes / stat.files as f64,
        ));
    }
}

impl Collector for FilesystemCollector {
    fn name(&self) -> &str {
        "filesystem"
    }

    fn schedule(&self) -> Schedule {
        self.schedule
    }

    fn collect(&mut self, _now: Instant) -> Result<Vec<Sample>, CollectError> {
        let mounts = select_mounts(
            self.read_mounts()?,
            &self.exclude_fstypes,
            &self.exclude_mounts,
        );
        let paths: Vec<PathBuf> = mounts
            .iter()
            .map(|m| self.host_path(&m.mount_point))
            .collect();
        let stats = self.stat_all(&paths);
        let mut samples = Vec::with_capacity(mounts.len() * 4);
        for (mount, stat) in mounts.iter().zip(&stats) {
            if let Some(stat) = stat {
                mount_samples(mount, stat, &mut samples);
            }
        }
        Ok(samples)
    }
}

#[cfg(test)]
mod tests {
    //! Fixtures (`tests/fixtures/proc/`), captured on this host (kernel 6.18, x86_64):
    //! - `t0/1/mountinfo`: `/proc/1/mountinfo` as is. `/dev/shm` and `/dev/pts` are each
    //!   mounted twice on the same point (the second on top of the first).
    //! - `t1/1/mountinfo`: `/proc/self/mountinfo` inside `unshare -m` after adding a 64 MiB
    //!   tmpfs `lookout-tmp` on `/tmp/lookout-fixture/data vol` holding a 1 MiB file in
    //!   `sub/dir/`, a bind mount of its `sub` on `/tmp/lookout-fixture/b`, a bind mount of its
    //!   root on `/tmp/lookout-fixture/data vol-rebind`, a bind mount of `/` on
    //!   `/tmp/lookout-fixture/rootbind`, and a 1 MiB tmpfs `lookout odd` with 100 inodes on
    //!   `/tmp/lookout-fixture/odd<TAB>tab\slash`.
    //! - `statvfs.txt`: Python's `os.statvfs` of every mount point of both, in the same namespace.

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Condvar, Mutex};

    use super::*;
    use crate::catalogue::Metric;
    use crate::collect::procfs::{ScratchProc, whole_names};

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/proc")
    }

    fn read_fixture(rel: &str) -> Vec<u8> {
        std::fs::read(fixtures().join(rel)).unwrap()
    }

    fn fixture_statfs() -> FixtureStatFs {
        FixtureStatFs::load(fixtures().join("statvfs.txt")).unwrap()
    }

    /// The host section's settings the collector takes.
    struct Host {
        schedule: Schedule,
        exclude_fstypes: Vec<String>,
        exclude_mounts: Vec<Regex>,
    }

    fn host(fstypes: &[&str], mounts: &[&str]) -> Host {
        Host {
            schedule: Schedule {
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(10),
            },
            exclude_fstypes: fstypes.iter().map(|s| s.to_string()).collect(),
            exclude_mounts: whole_names(mounts),
        }
    }

    /// A collector with `host`'s settings.
    fn with_host(proc: ProcFs, rootfs: PathBuf, host: &Host) -> FilesystemCollector {
        FilesystemCollector::new(
            proc,
            rootfs,
            host.schedule,
            host.exclude_fstypes.clone(),
            host.exclude_mounts.clone(),
        )
    }

    /// The pseudo filesystems of the fixtures.
    const PSEUDO: &[&str] = &["proc", "sysfs", "cgroup", "cgroup2", "devpts"];

    fn collector(t: &str, host: &Host) -> FilesystemCollector {
        with_host(ProcFs::new(&fixtures().join(t)), PathBuf::from("/"), host)
            .with_statfs(fixture_statfs())
    }

    fn find<'a>(samples: &'a [Sample], metric: &Metric, mountpoint: &str) -> Option<&'a Sample> {
        samples.iter().find(|s| {
            std::ptr::eq(s.metric, metric)
                && s.labels.first().map(|(_, v)| v.as_str()) == Some(mountpoint)
        })
    }

    fn mountpoints(samples: &[Sample]) -> Vec<String> {
        samples
            .iter()
            .filter(|s| std::ptr::eq(s.metric, &FILESYSTEM_SIZE_BYTES))
            .map(|s| s.labels.first().map(|(_, v)| v.clone()).unwrap())
            .collect()
    }

    #[test]
    fn unescape_decodes_kernel_octal_escapes() {
        let rows: &[(&[u8], &[u8])] = &[
            // plain text is unchanged
            (b"/var/lib", b"/var/lib"),
            // space, tab, newline, backslash: what the kernel's mangle() escapes
            (br"/a\040b\011c\012d\134e", b"/a b\tc\nd\\e"),
            // escape at the very end
            (br"/x\040", b"/x "),
            // a backslash without three octal digits stays
            (br"/x\04", br"/x\04"),
            (br"/x\8ab", br"/x\8ab"),
            // \777 is not a byte value: kept literally
            (br"/x\777", br"/x\777"),
        ];
        for (input, want) in rows {
            assert_eq!(unescape(input), *want, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn parses_captured_mountinfo_with_escapes_and_bind_roots() {
        // 20 lines on the host, 25 in the namespace (see the module note).
        assert_eq!(
            parse_mountinfo(&read_fixture("t0/1/mountinfo"))
                .unwrap()
                .len(),
            20
        );
        let mounts = parse_mountinfo(&read_fixture("t1/1/mountinfo")).unwrap();
        assert_eq!(mounts.len(), 25);
        let by_id = |id: u64| mounts.iter().find(|m| m.mount_id == id).unwrap();
        // line 1: `43 42 254:0 / / rw,relatime - ext4 /dev/vda rw,...`
        assert_eq!(
            *by_id(43),
            Mount {
                mount_id: 43,
                parent_id: 42,
                device: (254, 0),
                root: "/".into(),
                mount_point: "/".into(),
                fstype: "ext4".into(),
                source: "/dev/vda".into(),
            }
        );
        // `data\040vol` is a space
        assert_eq!(
            by_id(63).mount_point,
            Path::new("/tmp/lookout-fixture/data vol")
        );
        // the bind mount of `sub` has that as its root within the tmpfs
        assert_eq!(
            (by_id(64).root.as_str(), by_id(64).device),
            ("/sub", (0, 39))
        );
        // tab and backslash in the mount point, space in the source
        let odd = by_id(67);
        assert_eq!(
            odd.mount_point,
            Path::new("/tmp/lookout-fixture/odd\ttab\\slash")
        );
        assert_eq!(
            (odd.source.as_str(), odd.fstype.as_str()),
            ("lookout odd", "tmpfs")
        );
    }

    #[test]
    fn mountinfo_optional_fields_are_skipped() {
        // From proc(5): optional fields before the `-` separator.
        let line = b"36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue\n";
        let mounts = parse_mountinfo(line).unwrap();
        assert_eq!(mounts.len(), 1);
        let m = &mounts[0];
        assert_eq!(
            (
                m.device,
                m.root.as_str(),
                m.fstype.as_str(),
                m.source.as_str()
            ),
            ((98, 0), "/mnt1", "ext3", "/dev/root")
        );
        assert_eq!(m.mount_point, Path::new("/mnt2"));
    }

    #[test]
    fn mountinfo_errors_name_the_line() {
        let good = "22 27 0:21 / /proc rw,relatime - proc proc rw\n";
        let rows: &[(&str, &str)] = &[
            // a garbage second line
            ("garbage here\n", "line 2: mount id is not a number"),
            // no `-` separator
            (
                "1 2 3:4 / /x rw master:1 ext4 /dev/x rw\n",
                "line 2: missing \"-\" separator",
            ),
            // major:minor without a colon
            (
                "1 2 34 / /x rw - ext4 /dev/x rw\n",
                "line 2: bad major:minor \"34\"",
            ),
            // line cut after the separator
            ("1 2 3:4 / /x rw -\n", "line 2: missing filesystem type"),
            // line cut before the options
            ("1 2 3:4 / /x\n", "line 2: missing mount options"),
        ];
        for (bad, want) in rows {
            let err = parse_mountinfo(format!("{good}{bad}").as_bytes()).unwrap_err();
            assert!(err.starts_with(want), "{bad:?}: {err}");
        }
        // blank lines (the trailing newline) are not mounts
        assert_eq!(parse_mountinfo(b"").unwrap(), Vec::new());
        assert_eq!(
            parse_mountinfo(format!("{good}\n\n").as_bytes())
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn selection_on_captured_mountinfo() {
        let t0_all: &[&str] = &[
            "/proc",
            "/sys",
            "/dev",
            "/",
            "/mnt/sandboxing/model_tools_env/v1/python",
            "/dev/pts",
            "/dev/shm",
            "/sys/fs/cgroup",
            "/sys/fs/cgroup/cpu",
            "/sys/fs/cgroup/cpuacct",
            "/sys/fs/cgroup/cpuset",
            "/sys/fs/cgroup/memory",
            "/sys/fs/cgroup/devices",
            "/sys/fs/cgroup/freezer",
            "/sys/fs/cgroup/blkio",
            "/sys/fs/cgroup/pids",
            "/sys/fs/cgroup/systemd",
            "/sys/fs/cgroup/unified",
        ];
        // (snapshot, excluded fstypes, excluded mount patterns, reported mount points)
        type Row<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a [&'a str]);
        let rows: &[Row] = &[
            // no excludes: every line but the two lower mounts of /dev/pts and /dev/shm (ids
            // 25, 26, each covered by the mount on top of it), in file order
            ("t0", &[], &[], t0_all),
            // pseudo filesystems and the sandbox tmpfs excluded; the /dev/shm kept is the
            // upper one; the bind of `/` on rootbind and the two tmpfs binds (`/sub` on b,
            // the longer data vol-rebind) fold into `/` and `data vol`
            (
                "t1",
                PSEUDO,
                &["/mnt/sandboxing/.*"],
                &[
                    "/",
                    "/sys/fs/cgroup",
                    "/dev",
                    "/dev/shm",
                    "/tmp/lookout-fixture/data vol",
                    "/tmp/lookout-fixture/odd\ttab\\slash",
                ],
            ),
            // excluding `/` itself: its bind mount on rootbind is then the one left for 254:0
            // (excludes apply before the bind-mount folding)
            (
                "t1",
                &[
                    "tmpfs", "devtmpfs", "proc", "sysfs", "cgroup", "cgroup2", "devpts",
                ],
                &["/"],
                &["/tmp/lookout-fixture/rootbind"],
            ),
            // without `data vol`, the bind of the tmpfs root wins over the shorter bind of `/sub`
            (
                "t1",
                &[
                    "ext4", "devtmpfs", "proc", "sysfs", "cgroup", "cgroup2", "devpts",
                ],
                &[
                    "/tmp/lookout-fixture/data vol",
                    "/tmp/lookout-fixture/odd.*",
                    "/dev/shm|/sys/fs/cgroup|/mnt/.*",
                ],
                &["/tmp/lookout-fixture/data vol-rebind"],
            ),
            // with only the `/sub` bind left, it is reported
            (
                "t1",
                &[
                    "ext4", "devtmpfs", "proc", "sysfs", "cgroup", "cgroup2", "devpts",
                ],
                &[
                    "/tmp/lookout-fixture/data vol.*",
                    "/tmp/lookout-fixture/odd.*",
                    "/dev/shm|/sys/fs/cgroup|/mnt/.*",
                ],
                &["/tmp/lookout-fixture/b"],
            ),
        ];
        for (t, fstypes, mounts, want) in rows {
            let all = parse_mountinfo(&read_fixture(&format!("{t}/1/mountinfo"))).unwrap();
            let fstypes: Vec<String> = fstypes.iter().map(|s| s.to_string()).collect();
            let got: Vec<String> = select_mounts(all, &fstypes, &whole_names(mounts))
                .iter()
                .map(|m| m.mount_point.to_string_lossy().into_owned())
                .collect();
            assert_eq!(got, *want, "{t} excluding {fstypes:?} {mounts:?}");
        }
    }

    #[test]
    fn selection_edge_cases() {
        let rows: &[(&str, &str, &[&str])] = &[
            (
                // btrfs subvolumes: one device, no mount of the top-level root: the shortest
                // mount point stands for the filesystem
                "btrfs subvolumes",
                "1 0 0:40 /@ / rw - btrfs /dev/sda2 rw\n\
                 2 1 0:40 /@home /home rw - btrfs /dev/sda2 rw\n\
                 3 1 0:40 /@var /var rw - btrfs /dev/sda2 rw\n",
                &["/"],
            ),
            (
                // /a is mounted over after /a/b: /a/b hangs below a hidden mount
                "over-mounted parent",
                "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
                 2 1 8:2 / /a rw - ext4 /dev/sda2 rw\n\
                 3 2 8:3 / /a/b rw - ext4 /dev/sda3 rw\n\
                 4 2 8:4 / /a rw - ext4 /dev/sda4 rw\n",
                &["/", "/a"],
            ),
            (
                // mounts below the over-mount itself are visible
                "child of the upper mount",
                "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
                 2 1 0:50 / /m rw - tmpfs a rw\n\
                 3 2 0:51 / /m rw - tmpfs b rw\n\
                 4 3 0:52 / /m/x rw - tmpfs c rw\n",
                &["/", "/m", "/m/x"],
            ),
            (
                // a kubelet-style volume: the device's own mount is reported, its binds into
                // pod directories are not, whatever the order
                "kubelet binds",
                "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
                 2 1 8:16 / /var/lib/kubelet/pods/p1/volumes/v rw - ext4 /dev/sdb rw\n\
                 3 1 8:16 / /mnt/disks/sdb rw - ext4 /dev/sdb rw\n\
                 4 1 8:16 / /var/lib/kubelet/pods/p2/volumes/v rw - ext4 /dev/sdb rw\n",
                &["/", "/mnt/disks/sdb"],
            ),
            (
                // equal lengths: the lexically smaller mount point, independent of order
                "tie",
                "1 0 8:1 / /zz rw - ext4 /dev/sda1 rw\n\
                 2 0 8:1 / /aa rw - ext4 /dev/sda1 rw\n",
                &["/aa"],
            ),
            (
                // a mount whose parent id is itself (the namespace root) does not loop
                "self parent",
                "7 7 8:1 / / rw - ext4 /dev/sda1 rw\n",
                &["/"],
            ),
            (
                // a parent cycle in corrupt input terminates
                "cycle",
                "1 2 8:1 / /p rw - ext4 /dev/sda1 rw\n\
                 2 1 8:2 / /q rw - ext4 /dev/sda2 rw\n",
                &["/p", "/q"],
            ),
        ];
        for (name, text, want) in rows {
            let mounts = parse_mountinfo(text.as_bytes()).unwrap();
            let got: Vec<String> = select_mounts(mounts, &[], &[])
                .iter()
                .map(|m| m.mount_point.to_string_lossy().into_owned())
                .collect();
            assert_eq!(got, *want, "{name}");
        }
    }

    #[test]
    fn fixture_statfs_format() {
        let fs =
            FixtureStatFs::parse(b"# comment\n\n/a\\040b 10 4 3 4096 100 90\n/ 1 1 1 512 0 0\n")
                .unwrap();
        // escaped path decoded, numbers in file order
        assert_eq!(
            fs.stat(Path::new("/a b")).unwrap(),
            FsStat {
                blocks: 10,
                bfree: 4,
                bavail: 3,
                frsize: 4096,
                files: 100,
                ffree: 90
            }
        );
        // an unknown path is NotFound
        assert_eq!(
            fs.stat(Path::new("/nope")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        let rows: &[(&str, &str)] = &[
            // too few numbers
            (
                "# x\n/ 1 2 3\n",
                "line 2: expected `path blocks bfree bavail frsize files ffree`, found 3",
            ),
            // not a number
            (
                "/ 1 2 3 4 5 x\n",
                "line 1: counts must be unsigned integers",
            ),
        ];
        for (text, want) in rows {
            let err = FixtureStatFs::parse(text.as_bytes()).unwrap_err();
            assert!(err.starts_with(want), "{text:?}: {err}");
        }
        // load names the file
        let err = FixtureStatFs::load(fixtures().join("t0/1/mountinfo")).unwrap_err();
        assert!(err.to_string().contains("t0/1/mountinfo: line 1"), "{err}");
    }

    #[test]
    fn collects_fixture_values() {
        let mut c = collector("t1", &host(PSEUDO, &["/mnt/sandboxing/.*"]));
        let samples = c.collect(Instant::now()).unwrap();
        assert_eq!(
            mountpoints(&samples),
            [
                "/",
                "/sys/fs/cgroup",
                "/dev",
                "/dev/shm",
                "/tmp/lookout-fixture/data vol",
                "/tmp/lookout-fixture/odd\ttab\\slash"
            ]
        );
        // statvfs.txt: `/ 66053021 62797155 20565606 4096 16777216 16379052`; the labels
        // come from mountinfo line 1
        let root = find(&samples, &FILESYSTEM_SIZE_BYTES, "/").unwrap();
        assert_eq!(
            root.labels,
            vec![
                ("mountpoint", "/".to_string()),
                ("device", "/dev/vda".into()),
                ("fstype", "ext4".into())
            ]
        );
        assert_eq!(root.value, 66053021.0 * 4096.0);
        assert_eq!(
            find(&samples, &FILESYSTEM_AVAIL_BYTES, "/").unwrap().value,
            20565606.0 * 4096.0
        );
        let used = 66053021.0 - 62797155.0;
        assert_eq!(
            find(&samples, &FILESYSTEM_USAGE_RATIO, "/").unwrap().value,
            used / (used + 20565606.0)
        );
        assert_eq!(
            find(&samples, &FILESYSTEM_INODES_USAGE_RATIO, "/")
                .unwrap()
                .value,
            (16777216.0 - 16379052.0) / 16777216.0
        );
        // the 64 MiB tmpfs (size=65536k) holding one 1 MiB file; 4 inodes: root, sub, dir, file
        let data = "/tmp/lookout-fixture/data vol";
        assert_eq!(
            find(&samples, &FILESYSTEM_SIZE_BYTES, data).unwrap().value,
            64.0 * 1024.0 * 1024.0
        );
        assert_eq!(
            find(&samples, &FILESYSTEM_USAGE_RATIO, data).unwrap().value,
            1.0 / 64.0
        );
        assert_eq!(
            find(&samples, &FILESYSTEM_INODES_USAGE_RATIO, data)
                .unwrap()
                .value,
            4.0 / 3085510.0
        );
        assert_eq!(
            find(&samples, &FILESYSTEM_SIZE_BYTES, data).unwrap().labels[1].1,
            "lookout-tmp"
        );
        // the 1 MiB tmpfs with nr_inodes=100: empty but its root directory
        let odd = "/tmp/lookout-fixture/odd\ttab\\slash";
        assert_eq!(
            find(&samples, &FILESYSTEM_SIZE_BYTES, odd).unwrap().value,
            1024.0 * 1024.0
        );
        assert_eq!(
            find(&samples, &FILESYSTEM_USAGE_RATIO, odd).unwrap().value,
            0.0
        );
        assert_eq!(
            find(&samples, &FILESYSTEM_INODES_USAGE_RATIO, odd)
                .unwrap()
                .value,
            1.0 / 100.0
        );
        assert_eq!(
            find(&samples, &FILESYSTEM_SIZE_BYTES, odd).unwrap().labels[1].1,
            "lookout odd"
        );
        // 6 mounts x 4 series, no (metric, labels) twice
        assert_eq!(samples.len(), 24);
        let mut keys: Vec<_> = samples
            .iter()
            .map(|s| (s.metric.name, s.labels.clone()))
            .collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 24);
    }

    #[test]
    fn filesystems_without_blocks_are_not_reported() {
        // no excludes on t0: statvfs.txt has 0 blocks for /proc, /sys, /dev/pts and the
        // cgroup hierarchies; /dev/shm (mounted twice) is reported once
        let samples = collector("t0", &host(&[], &[]))
            .collect(Instant::now())
            .unwrap();
        assert_eq!(
            mountpoints(&samples),
            [
                "/dev",
                "/",
                "/mnt/sandboxing/model_tools_env/v1/python",
                "/dev/shm",
                "/sys/fs/cgroup"
            ]
        );
    }

    #[test]
    fn ratios_in_corner_cases() {
        let rows: &[(FsStat, f64, Option<f64>)] = &[
            // no inode count (btrfs, vfat): no inode series
            (
                FsStat {
                    blocks: 100,
                    bfree: 50,
                    bavail: 50,
                    frsize: 4096,
                    files: 0,
                    ffree: 0,
                },
                0.5,
                None,
            ),
            // full for users although root still has reserved blocks: 1.0, as df prints 100%
            (
                FsStat {
                    blocks: 100,
                    bfree: 5,
                    bavail: 0,
                    frsize: 4096,
                    files: 10,
                    ffree: 0,
                },
                1.0,
                Some(1.0),
            ),
            // nothing used and nothing available (all reserved): 0, not NaN
            (
                FsStat {
                    blocks: 100,
                    bfree: 100,
                    bavail: 0,
                    frsize: 4096,
                    files: 10,
                    ffree: 10,
                },
                0.0,
                Some(0.0),
            ),
            // inconsistent bfree > blocks (racing counters) does not underflow
            (
                FsStat {
                    blocks: 100,
                    bfree: 101,
                    bavail: 90,
                    frsize: 4096,
                    files: 10,
                    ffree: 11,
                },
                0.0,
                Some(0.0),
            ),
        ];
        let mount = parse_mountinfo(b"1 0 8:1 / /x rw - xfs /dev/sdz rw")
            .unwrap()
            .remove(0);
        for (stat, usage, inodes) in rows {
            let mut out = Vec::new();
            mount_samples(&mount, stat, &mut out);
            assert_eq!(
                find(&out, &FILESYSTEM_USAGE_RATIO, "/x").unwrap().value,
                *usage,
                "{stat:?}"
            );
            assert_eq!(
                find(&out, &FILESYSTEM_INODES_USAGE_RATIO, "/x").map(|s| s.value),
                *inodes,
                "{stat:?}"
            );
        }
    }

    #[test]
    fn garbage_mountinfo_fails_with_file_and_line() {
        let dir = ScratchProc::new("fs-garbage");
        dir.write(
            "1/mountinfo",
            b"22 27 0:21 / /proc rw,relatime - proc proc rw\nnot a mount line\n",
        );
        let mut c =
            with_host(dir.proc(), "/".into(), &host(&[], &[])).with_statfs(fixture_statfs());
        match c.collect(Instant::now()) {
            Err(CollectError::Parse { path, message }) => {
                assert!(path.ends_with("1/mountinfo"), "{path}");
                assert!(message.starts_with("line 2:"), "{message}");
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn falls_back_to_self_mountinfo() {
        let dir = ScratchProc::new("fs-fallback");
        dir.write(
            "self/mountinfo",
            b"27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n",
        );
        let mut c =
            with_host(dir.proc(), "/".into(), &host(&[], &[])).with_statfs(fixture_statfs());
        assert_eq!(mountpoints(&c.collect(Instant::now()).unwrap()), ["/"]);
        // neither file: a read error naming the fallback
        let empty = ScratchProc::new("fs-none");
        let mut c = with_host(empty.proc(), "/".into(), &host(&[], &[]));
        match c.collect(Instant::now()) {
            Err(CollectError::Read { path, .. }) => {
                assert!(path.ends_with("self/mountinfo"), "{path}")
            }
            other => panic!("expected a read error, got {other:?}"),
        }
    }

    /// Answers from the fixture, but fails for one path and records every path asked.
    struct FailingStatFs {
        inner: FixtureStatFs,
        fail: PathBuf,
        asked: Mutex<Vec<PathBuf>>,
    }

    impl StatFs for Arc<FailingStatFs> {
        fn stat(&self, path: &Path) -> io::Result<FsStat> {
            self.asked.lock().unwrap().push(path.to_path_buf());
            if path == self.fail {
                return Err(io::Error::from(io::ErrorKind::PermissionDenied));
            }
            self.inner.stat(path)
        }
    }

    #[test]
    fn failing_statvfs_skips_only_that_mount() {
        let statfs = Arc::new(FailingStatFs {
            inner: fixture_statfs(),
            fail: "/".into(),
            asked: Mutex::new(Vec::new()),
        });
        let mut c = collector("t1", &host(PSEUDO, &["/mnt/sandboxing/.*"]))
            .with_statfs(Arc::clone(&statfs));
        let got = mountpoints(&c.collect(Instant::now()).unwrap());
        assert!(!got.contains(&"/".to_string()), "{got:?}");
        assert_eq!(got.len(), 5, "{got:?}");
        // a failure is not "stuck": the next run asks again
        assert!(c.stuck_mounts().is_empty());
    }

    #[test]
    fn mount_points_are_resolved_under_rootfs() {
        let statfs = Arc::new(FailingStatFs {
            inner: FixtureStatFs::default(),
            fail: PathBuf::new(),
            asked: Mutex::new(Vec::new()),
        });
        let mut c = with_host(
            ProcFs::new(&fixtures().join("t1")),
            "/host/root".into(),
            &host(
                PSEUDO,
                &["/mnt/sandboxing/.*|/dev.*|/sys.*|/tmp/lookout-fixture/odd.*"],
            ),
        )
        .with_statfs(Arc::clone(&statfs));
        c.collect(Instant::now()).unwrap();
        let mut asked = statfs.asked.lock().unwrap().clone();
        asked.sort();
        // `/` is rootfs itself, other mount points sit below it
        assert_eq!(
            asked,
            [
                PathBuf::from("/host/root"),
                PathBuf::from("/host/root/tmp/lookout-fixture/data vol")
            ]
        );
    }

    /// Blocks on one path until released, like statvfs on a dead NFS server.
    struct HangingStatFs {
        inner: FixtureStatFs,
        hang: PathBuf,
        hanging: Mutex<bool>,
        released: Condvar,
        calls: AtomicUsize,
    }

    impl StatFs for Arc<HangingStatFs> {
        fn stat(&self, path: &Path) -> io::Result<FsStat> {
            if path == self.hang {
                self.calls.fetch_add(1, Ordering::SeqCst);
                let mut hanging = self.hanging.lock().unwrap();
                while *hanging {
                    hanging = self.released.wait(hanging).unwrap();
                }
            }
            self.inner.stat(path)
        }
    }

    #[test]
    fn stuck_mount_is_skipped_until_statvfs_returns() {
        let hang = PathBuf::from("/tmp/lookout-fixture/data vol");
        let statfs = Arc::new(HangingStatFs {
            inner: fixture_statfs(),
            hang: hang.clone(),
            hanging: Mutex::new(true),
            released: Condvar::new(),
            calls: AtomicUsize::new(0),
        });
        let mut c = collector("t1", &host(PSEUDO, &["/mnt/sandboxing/.*"]))
            .with_statfs(Arc::clone(&statfs))
            .with_stat_timeout(Duration::from_millis(200));
        let all = 6;

        // run 1: the call hangs past the timeout; the other mounts are reported
        let got = mountpoints(&c.collect(Instant::now()).unwrap());
        assert!(
            !got.contains(&"/tmp/lookout-fixture/data vol".to_string()),
            "{got:?}"
        );
        assert_eq!(got.len(), all - 1);
        assert_eq!(c.stuck_mounts(), vec![hang.clone()]);

        // run 2: skipped without calling statvfs again
        assert_eq!(
            mountpoints(&c.collect(Instant::now()).unwrap()).len(),
            all - 1
        );
        assert_eq!(statfs.calls.load(Ordering::SeqCst), 1);

        // the server comes back: the blocked call returns and clears the mark
        *statfs.hanging.lock().unwrap() = false;
        statfs.released.notify_all();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !c.stuck_mounts().is_empty() {
            assert!(
                Instant::now() < deadline,
                "the stuck mark was never cleared"
            );
            std::thread::sleep(Duration::from_millis(5));
        }

        // run 3: reported again
        assert_eq!(mountpoints(&c.collect(Instant::now()).unwrap()).len(), all);
        assert_eq!(statfs.calls.load(Ordering::SeqCst), 2);
    }
}
