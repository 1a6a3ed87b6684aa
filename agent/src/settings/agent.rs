//! `agent:`: the agent's identity, where it listens and who may talk to it (tokens, HTTPS),
//! where it keeps state, and where it reads the host from.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;

use super::tls::{self, Culprit, TlsConfig};
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
    /// Absolute path of a file holding the read token; absent: GET requests need no token.
    pub read_token_file: Option<Text>,
    /// `true` lets a `listen` address that is not loopback go without `api_token_file`;
    /// absent: `false`.
    pub allow_unauthenticated: Option<bool>,
    /// HTTPS certificate and key; absent: plain HTTP.
    pub tls: Option<RawTls>,
    /// Absolute path of the proc filesystem; absent: `/proc`.
    pub proc_root: Option<Text>,
    /// Absolute path under which mount points are resolved; absent: `/`.
    pub rootfs: Option<Text>,
}

/// `agent.tls:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain (the server's certificate first), absolute or relative to the
    /// configuration file; absent: no HTTPS (then `key_file` must be absent too).
    pub cert_file: Option<Text>,
    /// PEM private key of that certificate, absolute or relative to the configuration file;
    /// absent: no HTTPS (then `cert_file` must be absent too).
    pub key_file: Option<Text>,
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
    /// When set, GET requests (but `/healthz`, `/readyz` and the console's files) need
    /// `Authorization: Bearer <token from this file>` (or the API token).
    pub read_token_file: Option<PathBuf>,
    /// Whether a non-loopback `listen` without `api_token_file` was explicitly allowed.
    pub allow_unauthenticated: bool,
    /// HTTPS: the checked certificate and key; `None`: plain HTTP.
    pub tls: Option<TlsConfig>,
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
        let allow_unauthenticated = raw.allow_unauthenticated.unwrap_or(false);
        if let (Some(addr), Some(text)) = (listen, &raw.listen)
            && !is_loopback(addr.ip())
            && raw.api_token_file.is_none()
            && !allow_unauthenticated
            && !c.removed(&format!("{path}.api_token_file"))
            && !c.removed(&format!("{path}.allow_unauthenticated"))
        {
            c.report(
                &format!("{path}.listen"),
                Some(&text.referenced),
                format!(
                    "{addr} is not a loopback address: set {path}.api_token_file so that POST requests need a token, or {path}.allow_unauthenticated: true to let anyone who reaches this port reload the configuration, push timings and send test alerts"
                ),
            );
        }
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
            read_token_file: raw
                .read_token_file
                .as_ref()
                .map(|p| c.absolute_path(&format!("{path}.read_token_file"), p)),
            allow_unauthenticated,
            tls: raw
                .tls
                .as_ref()
                .and_then(|t| check_tls(t, &format!("{path}.tls"), c)),
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

/// Whether `ip` only reaches this host: `127.0.0.0/8`, `::1`, or `::ffff:127.x.y.z`.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// `agent.tls`: both files or neither; when both, they must build a server configuration
/// (problems at the file they concern; a key that does not match, at `key_file`).
fn check_tls(raw: &RawTls, path: &str, c: &mut Checker<'_>) -> Option<TlsConfig> {
    let file = |c: &mut Checker<'_>, key: &str, text: &Text| {
        if text.value.trim().is_empty() {
            c.report(
                &format!("{path}.{key}"),
                Some(&text.referenced),
                "must not be empty (remove the key for plain HTTP)",
            );
            None
        } else {
            Some(c.relative_to_config(&text.value))
        }
    };
    match (&raw.cert_file, &raw.key_file) {
        (None, None) => None,
        (Some(given), None) | (None, Some(given)) => {
            let (set, unset) = if raw.cert_file.is_some() {
                ("cert_file", "key_file")
            } else {
                ("key_file", "cert_file")
            };
            if !c.removed(&format!("{path}.{unset}")) {
                c.report(
                    path,
                    Some(&given.referenced),
                    format!(
                        "`{set}` is set but `{unset}` is not: HTTPS needs both (remove both for plain HTTP)"
                    ),
                );
            }
            None
        }
        (Some(cert), Some(key)) => {
            let cert_path = file(c, "cert_file", cert);
            let key_path = file(c, "key_file", key);
            match tls::load(&cert_path?, &key_path?) {
                Ok(config) => Some(config),
                Err((culprit, why)) => {
                    let (key_name, text) = match culprit {
                        Culprit::Cert => ("cert_file", cert),
                        Culprit::Key => ("key_file", key),
                    };
                    c.report(&format!("{path}.{key_name}"), Some(&text.referenced), why);
                    None
                }
            }
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
  # Required when `listen` is not a loopback address (unless allow_unauthenticated).
  api_token_file: null
  # File holding the read token. When set, every GET request except /healthz, /readyz
  # and the console's files (/metrics, the JSON API and the live stream included) needs
  # `Authorization: Bearer <token>` (the API token is accepted too). null: reads need no
  # token. Must be an absolute path.
  read_token_file: null
  # true: allow a `listen` address that is not loopback without api_token_file, so that
  # anyone who reaches the port may POST (reload, push timings, send test alerts).
  allow_unauthenticated: false
  # HTTPS: a PEM certificate chain (the server's certificate first) and its private key,
  # absolute paths or relative to this file. Both or neither; null: plain HTTP. Read
  # again on reload (SIGHUP or POST /-/reload); a bad new pair is rejected and the
  # running one keeps serving.
  tls:
    cert_file: null
    key_file: null
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
