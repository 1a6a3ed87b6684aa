//! `agent:`: the agent's identity, where it listens, where it keeps state, and where it
//! reads the host from.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::units::check_label_value;
use crate::config::{Checker, Section, Text};

/// `agent.hostname` value that means "ask the kernel".
pub const HOSTNAME_AUTO: &str = "auto";
/// Default `agent.listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9469";
/// Default `agent.proc_root`.
pub const DEFAULT_PROC_ROOT: &str = "/proc";
/// Default `agent.rootfs`.
pub const DEFAULT_ROOTFS: &str = "/";

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

/// `agent:` section.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Value of the `host` label on every sample (resolved from the kernel for `auto`).
    pub hostname: String,
    /// Address of the HTTP server (`/metrics`, API).
    pub listen: SocketAddr,
    /// State directory; `None` means "choose": `/var/lib/lookout` if writable, else a user dir.
    pub data_dir: Option<PathBuf>,
    /// When set, POST requests need `Authorization: Bearer <token from this file>`.
    pub api_token_file: Option<PathBuf>,
    /// Root of the proc filesystem to read (`/proc`; `/host/proc` in a container).
    pub proc_root: PathBuf,
    /// Root under which mount points are resolved for `statvfs` (`/`; `/host/root` in a container).
    pub rootfs: PathBuf,
}

/// The `agent:` section.
#[derive(Debug)]
pub struct AgentSection;

impl Section for AgentSection {
    type Raw = RawAgent;
    type Value = AgentConfig;

    const DEFAULTS: &'static str = DEFAULTS_YAML;

    fn check(raw: &RawAgent, path: &str, c: &mut Checker<'_>) -> AgentConfig {
        let hostname = match &raw.hostname {
            Some(name) if name.value != HOSTNAME_AUTO => match check_label_value(&name.value) {
                Ok(()) => name.value.clone(),
                Err(why) => {
                    c.report(&format!("{path}.hostname"), Some(&name.referenced), why);
                    String::new()
                }
            },
            _ => {
                let uname = rustix::system::uname();
                hostname_from_kernel(&uname.nodename().to_string_lossy())
            }
        };
        let listen = match &raw.listen {
            Some(text) => match text.value.parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    c.report(
                        &format!("{path}.listen"),
                        Some(&text.referenced),
                        format!(
                            "invalid address {:?}: expected IP:port such as 127.0.0.1:9469, 0.0.0.0:9469 or [::1]:9469 (host names are not resolved)",
                            text.value
                        ),
                    );
                    None
                }
            },
            None => None,
        };
        AgentConfig {
            hostname,
            listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9469))),
            data_dir: raw
                .data_dir
                .as_ref()
                .map(|p| c.absolute_path(&format!("{path}.data_dir"), p)),
            api_token_file: raw
                .api_token_file
                .as_ref()
                .map(|p| c.absolute_path(&format!("{path}.api_token_file"), p)),
            proc_root: raw.proc_root.as_ref().map_or_else(
                || PathBuf::from(DEFAULT_PROC_ROOT),
                |p| c.absolute_path(&format!("{path}.proc_root"), p),
            ),
            rootfs: raw.rootfs.as_ref().map_or_else(
                || PathBuf::from(DEFAULT_ROOTFS),
                |p| c.absolute_path(&format!("{path}.rootfs"), p),
            ),
        }
    }
}

/// The `host` label value for a kernel host name: the name itself, or `localhost` when the
/// kernel has none (`(none)` is what an unset UTS name reads as).
pub fn hostname_from_kernel(nodename: &str) -> String {
    if nodename.is_empty() || nodename == "(none)" || check_label_value(nodename).is_err() {
        "localhost".into()
    } else {
        nodename.into()
    }
}

/// `lookout config default`'s text for this section.
const DEFAULTS_YAML: &str = r#"agent:
  # Value of the `host` label on every sample. `auto`: the kernel host name (uname).
  hostname: auto
  # Address of the HTTP server (/metrics, health, JSON API), as IP:port.
  # Host names are not accepted; use 0.0.0.0:9469 or [::]:9469 to listen on every address.
  listen: 127.0.0.1:9469
  # State directory (alert outbox and state). null: /var/lib/lookout when writable,
  # else a per-user directory. Must be an absolute path.
  data_dir: null
  # File holding the API bearer token. When set, every POST request needs
  # `Authorization: Bearer <token>`. null: no token. Must be an absolute path.
  api_token_file: null
  # Root of the proc filesystem; /host/proc when running in a container.
  proc_root: /proc
  # Root under which mount points are measured; /host/root when running in a container.
  rootfs: /
"#;

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn kernel_hostname() {
        let cases: &[(&str, &str)] = &[
            // ordinary name
            ("web-1", "web-1"),
            // FQDN kept as is
            ("web-1.example.com", "web-1.example.com"),
            // empty UTS name
            ("", "localhost"),
            // what an unset UTS name reads as
            ("(none)", "localhost"),
            // control character
            ("bad\tname", "localhost"),
        ];
        for (kernel, expected) in cases {
            assert_eq!(hostname_from_kernel(kernel), *expected, "{kernel:?}");
        }
    }
}
