//! What serde reads from the YAML file, before any checking.
//!
//! Every struct denies unknown keys, so a typo is an error instead of a silently ignored
//! setting. Every field is optional: absence (or `null`) means "use the default", and each
//! field's doc says what that default is. Values that need a semantic check (durations,
//! addresses, paths, patterns, ports) are kept as [`Spanned`] so that
//! [`validate`](super::validate) can report their line and column. Nothing here knows the
//! defaults themselves; they live in `validate`.

use serde::Deserialize;
use serde_saphyr::Spanned;

/// A string value with its position in the file.
pub type Text = Spanned<String>;

/// The whole file. An empty file (or one holding only comments) is no document at all and
/// reads as `None`, which means "all defaults".
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `agent:`; absent: every agent default.
    pub agent: Option<RawAgent>,
    /// `collect:`; absent: every collector with its defaults.
    pub collect: Option<RawCollect>,
}

/// `agent:` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    /// Value of the `host` label; absent: `auto` (the kernel host name).
    pub hostname: Option<Text>,
    /// `IP:port` of the HTTP server; absent: `127.0.0.1:9469`.
    pub listen: Option<Text>,
    /// Absolute state directory; absent: chosen at start-up (`/var/lib/lookout` if
    /// writable, else a per-user directory).
    pub data_dir: Option<Text>,
    /// Absolute path of a file holding the API bearer token; absent: POST requests need no
    /// token.
    pub api_token_file: Option<Text>,
    /// Absolute path of the proc filesystem; absent: `/proc`.
    pub proc_root: Option<Text>,
    /// Absolute path under which mount points are resolved; absent: `/`.
    pub rootfs: Option<Text>,
}

/// `collect:` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCollect {
    /// `collect.host`; absent: host collectors enabled with their defaults.
    pub host: Option<RawHost>,
    /// `collect.tcp`; absent: TCP collector enabled with its defaults.
    pub tcp: Option<RawTcp>,
}

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

/// `collect.tcp` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTcp {
    /// Whether the TCP collector runs; absent: `true`.
    pub enabled: Option<bool>,
    /// Time between runs; absent: `10s`.
    pub interval: Option<Text>,
    /// Longest a run may take; absent: the smaller of `5s` and the interval.
    pub timeout: Option<Text>,
    /// Local ports counted per connection state; absent: none. Read as `i64` so that
    /// `0` and `70000` reach validation and are reported with their position.
    pub ports: Option<Vec<Spanned<i64>>>,
}
