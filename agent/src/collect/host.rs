//! `collect.host`: the section that configures the host collectors (CPU, load, memory,
//! filesystems, disks, network, uptime and process count) and the agent's own process
//! metrics, and builds them. The collectors themselves live in their own files; they share
//! this one schedule and the exclude lists.

use regex::Regex;
use serde::Deserialize;

use super::{
    Context, Job, Kind, Schedule, check_schedule, cpu, disk, filesystem, load, memory, network,
    process, system,
};
use crate::config::{Checker, Section, Text};

/// Default `collect.host.exclude_fstypes`: pseudo, virtual and read-only image filesystems.
pub const DEFAULT_EXCLUDE_FSTYPES: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "fuse.lxcfs",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "procfs",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "erofs",
    "sysfs",
    "tracefs",
    "tmpfs",
    "nfsd",
];
/// Default `collect.host.exclude_mounts`: kernel trees, per-user runtime dirs, container
/// and snap storage.
pub const DEFAULT_EXCLUDE_MOUNTS: &[&str] = &[
    "/dev(/.*)?",
    "/proc(/.*)?",
    "/sys(/.*)?",
    "/run/credentials/.*",
    "/run/user/.*",
    "/var/lib/docker/.+",
    "/var/lib/containers/storage/.+",
    "/var/lib/kubelet/.+",
    "/snap/.+",
];
/// Default `collect.host.exclude_disks`: RAM, loop, floppy and zram devices, and partitions
/// (whole disks are reported, their partitions would count the same IO twice).
pub const DEFAULT_EXCLUDE_DISKS: &[&str] = &[
    r"(ram|loop|fd|zram)\d+",
    r"(h|s|v|xv)d[a-z]+\d+",
    r"nvme\d+n\d+p\d+",
    r"mmcblk\d+p\d+",
];
/// Default `collect.host.exclude_interfaces`: none (`lo` is reported).
pub const DEFAULT_EXCLUDE_INTERFACES: &[&str] = &[];

/// `collect.host` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    /// Whether the host collectors run; absent: `true`.
    pub enabled: Option<bool>,
    /// Time between runs; absent: `10s`.
    pub interval: Option<Text>,
    /// Longest a run may take; absent: the smaller of `5s` and the interval.
    pub timeout: Option<Text>,
    /// Filesystem types never reported; absent: the built-in pseudo-filesystem list.
    /// A list given replaces that list.
    pub exclude_fstypes: Option<Vec<Text>>,
    /// Whole-mount-point patterns never reported; absent: the built-in list (`/proc`,
    /// `/sys`, container storage, ...). A list given replaces that list.
    pub exclude_mounts: Option<Vec<Text>>,
    /// Whole-name block device patterns never reported; absent: partitions and pseudo
    /// devices. A list given replaces that list.
    pub exclude_disks: Option<Vec<Text>>,
    /// Whole-name network interface patterns never reported; absent: none.
    pub exclude_interfaces: Option<Vec<Text>>,
}

/// `collect.host`: CPU, load, memory, filesystems, disks, network, uptime, processes.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Whether the host collectors run at all.
    pub enabled: bool,
    /// Shared schedule of the host collectors.
    pub schedule: Schedule,
    /// Filesystem types never reported (exact names).
    pub exclude_fstypes: Vec<String>,
    /// Mount points never reported (each pattern matches the whole mount point).
    pub exclude_mounts: Vec<Regex>,
    /// Block devices never reported (whole-name patterns; partitions by default).
    pub exclude_disks: Vec<Regex>,
    /// Network interfaces never reported (whole-name patterns; none by default).
    pub exclude_interfaces: Vec<Regex>,
}

/// The `collect.host` section.
#[derive(Debug)]
pub struct HostSection;

impl Section for HostSection {
    type Raw = RawHost;
    type Value = HostConfig;

    const DEFAULTS: &'static str = DEFAULTS_YAML;

    fn check(raw: &RawHost, path: &str, c: &mut Checker<'_>) -> HostConfig {
        HostConfig {
            enabled: raw.enabled.unwrap_or(true),
            schedule: check_schedule(c, path, raw.interval.as_ref(), raw.timeout.as_ref()),
            exclude_fstypes: c.names(
                &format!("{path}.exclude_fstypes"),
                raw.exclude_fstypes.as_deref(),
                DEFAULT_EXCLUDE_FSTYPES,
            ),
            exclude_mounts: c.patterns(
                &format!("{path}.exclude_mounts"),
                raw.exclude_mounts.as_deref(),
                DEFAULT_EXCLUDE_MOUNTS,
            ),
            exclude_disks: c.patterns(
                &format!("{path}.exclude_disks"),
                raw.exclude_disks.as_deref(),
                DEFAULT_EXCLUDE_DISKS,
            ),
            exclude_interfaces: c.patterns(
                &format!("{path}.exclude_interfaces"),
                raw.exclude_interfaces.as_deref(),
                DEFAULT_EXCLUDE_INTERFACES,
            ),
        }
    }
}

impl Kind for HostSection {
    /// The agent's own process metrics always; the host collectors when enabled.
    fn build(host: &HostConfig, context: &Context) -> Vec<Job> {
        let proc = &context.proc;
        let mut jobs = vec![Job::Blocking(Box::new(process::ProcessCollector::new(
            host.schedule,
        )))];
        if host.enabled {
            jobs.extend([
                Job::Blocking(Box::new(cpu::CpuCollector::new(
                    proc.clone(),
                    host.schedule,
                ))),
                Job::Blocking(Box::new(load::LoadCollector::new(
                    proc.clone(),
                    host.schedule,
                ))),
                Job::Blocking(Box::new(memory::MemoryCollector::new(
                    proc.clone(),
                    host.schedule,
                ))),
                Job::Blocking(Box::new(
                    filesystem::FilesystemCollector::new(
                        proc.clone(),
                        context.rootfs.clone(),
                        host.schedule,
                        host.exclude_fstypes.clone(),
                        host.exclude_mounts.clone(),
                    )
                    .with_statfs_arc(context.statfs.clone()),
                )),
                Job::Blocking(Box::new(disk::DiskCollector::new(
                    proc.clone(),
                    host.schedule,
                    host.exclude_disks.clone(),
                ))),
                Job::Blocking(Box::new(network::NetworkCollector::new(
                    proc.clone(),
                    host.schedule,
                    host.exclude_interfaces.clone(),
                ))),
                Job::Blocking(Box::new(system::SystemCollector::new(
                    proc.clone(),
                    host.schedule,
                ))),
            ]);
        }
        jobs
    }
}

/// `lookout config default`'s text for this section.
const DEFAULTS_YAML: &str = r#"# CPU, load, memory, swap, filesystems, disks, network, uptime, processes.
host:
  # false: none of the host collectors run.
  enabled: true
  # Time between runs: from 1s to 1h.
  interval: 10s
  # Longest a run may take: more than 0, at most the interval.
  # Left out: the smaller of 5s and the interval.
  timeout: 5s
  # Filesystem types never reported (exact names): pseudo and virtual filesystems,
  # read-only images, tmpfs and overlay.
  exclude_fstypes:
    - autofs
    - binfmt_misc
    - bpf
    - cgroup
    - cgroup2
    - configfs
    - debugfs
    - devpts
    - devtmpfs
    - efivarfs
    - fusectl
    - fuse.lxcfs
    - hugetlbfs
    - iso9660
    - mqueue
    - nsfs
    - overlay
    - proc
    - procfs
    - pstore
    - ramfs
    - rpc_pipefs
    - securityfs
    - selinuxfs
    - squashfs
    - erofs
    - sysfs
    - tracefs
    - tmpfs
    - nfsd
  # Mount points never reported (patterns matching the whole mount point):
  # kernel trees, per-user runtime directories, container and snap storage.
  exclude_mounts:
    - '/dev(/.*)?'
    - '/proc(/.*)?'
    - '/sys(/.*)?'
    - '/run/credentials/.*'
    - '/run/user/.*'
    - '/var/lib/docker/.+'
    - '/var/lib/containers/storage/.+'
    - '/var/lib/kubelet/.+'
    - '/snap/.+'
  # Block devices never reported (patterns matching the whole name): RAM, loop,
  # floppy and zram devices, and partitions (their IO is already in the whole disk).
  exclude_disks:
    - '(ram|loop|fd|zram)\d+'
    - '(h|s|v|xv)d[a-z]+\d+'
    - 'nvme\d+n\d+p\d+'
    - 'mmcblk\d+p\d+'
  # Network interfaces never reported (patterns matching the whole name).
  # Empty: every interface, lo included. Example: ['lo', 'veth.*', 'docker\d+']
  exclude_interfaces: []
"#;
