//! Secrets: values read from `*_file` keys or `${ENV_NAME}` references, never written in the
//! configuration and never printed. [`Secret`] prints as `<redacted>`; every error names the
//! file or the variable, never the value.
//!
//! URLs that can carry a secret are redacted wherever they are shown (`Debug`, logs, API
//! answers, error messages): the scheme, host and port stay, what could be a secret becomes
//! `<redacted>`. Two strengths:
//!
//! - [`redact_url`], for URLs whose path may be a token (webhook, Slack, Alertmanager,
//!   Redis): only `scheme://host:port` stays; userinfo becomes `<redacted>@` and anything
//!   after the authority (path, query, fragment) becomes `/<redacted>`:
//!   `https://hooks.slack.com/services/T0/B0/x` -> `https://hooks.slack.com/<redacted>`.
//! - [`redact_url_keep_path`], for probe URLs, whose path (`/health`) is what an operator
//!   needs in a log: userinfo, query and fragment become `<redacted>`, the path stays:
//!   `http://u:p@h:8080/health?token=x` -> `http://<redacted>@h:8080/health?<redacted>`.
//!
//! Both work on the text as written (no normalization) and never fail: a text without a
//! `scheme://`, or whose authority does not look like `host[:port]` (a password holding an
//! unescaped `/` would otherwise show as a host), becomes `scheme://<redacted>` or just
//! `<redacted>`. [`redact_urls_in`] applies [`redact_url`] to every URL inside a text
//! (configuration problems, errors of libraries that quote the URL).

use std::path::Path;

/// A secret read from a file or the environment: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What is hidden in the text that follows a secret-bearing URL's authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Nothing: the path, query and fragment all become `/<redacted>`.
    Origin,
    /// The path: only the query and fragment become `<redacted>`.
    Path,
}

/// The marker that replaces what is hidden.
pub const REDACTED: &str = "<redacted>";

/// `url` with everything but `scheme://host:port` replaced by `<redacted>` (see the module
/// docs): for webhook, Slack, Alertmanager and Redis URLs.
pub fn redact_url(url: &str) -> String {
    redact(url, Keep::Origin)
}

/// `url` with its userinfo, query and fragment replaced by `<redacted>`, the path kept (see
/// the module docs): for probe URLs.
pub fn redact_url_keep_path(url: &str) -> String {
    redact(url, Keep::Path)
}

fn redact(url: &str, keep: Keep) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return REDACTED.to_string();
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return REDACTED.to_string();
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    // An `@` after the authority means a password with an unescaped `/`, `?` or `#`: what
    // looks like the host may be part of it.
    if tail.contains('@') || !is_host_port(host_port) {
        return format!("{scheme}://{REDACTED}");
    }
    let mut out = format!("{scheme}://");
    if userinfo.is_some() {
        out.push_str(REDACTED);
        out.push('@');
    }
    out.push_str(host_port);
    match keep {
        Keep::Origin if tail.is_empty() || tail == "/" => out.push_str(tail),
        Keep::Origin => {
            out.push('/');
            out.push_str(REDACTED);
        }
        Keep::Path => {
            let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
            let (path, after) = tail.split_at(path_end);
            out.push_str(path);
            let (query, fragment) = match after.find('#') {
                Some(i) => after.split_at(i),
                None => (after, ""),
            };
            if !query.is_empty() {
                out.push('?');
                out.push_str(REDACTED);
            }
            if !fragment.is_empty() {
                out.push('#');
                out.push_str(REDACTED);
            }
        }
    }
    out
}

/// Whether `text` is `host`, `host:port`, `[ipv6]` or `[ipv6]:port` (possibly empty, as in
/// `redis+unix:///path`), with no character a host cannot have.
fn is_host_port(text: &str) -> bool {
    let (host, port) = if let Some(inner) = text.strip_prefix('[') {
        let Some((ip, after)) = inner.split_once(']') else {
            return false;
        };
        if !ip
            .chars()
            .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.' | '%'))
        {
            return false;
        }
        match after.strip_prefix(':') {
            Some(port) => ("", Some(port)),
            None if after.is_empty() => ("", None),
            None => return false,
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    host.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '%'))
        && port.is_none_or(|p| p.chars().all(|c| c.is_ascii_digit()))
}

/// `text` with every URL in it (`scheme://` up to the next space, quote or backtick, less
/// trailing punctuation) passed through [`redact_url`]: for messages that may quote a URL.
pub fn redact_urls_in(text: &str) -> String {
    if !text.contains("://") {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let head = rest.get(..at).unwrap_or_default();
        let scheme_start = head
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            .last()
            .map_or(at, |(i, _)| i);
        let after = rest.get(at + 3..).unwrap_or_default();
        let len = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`'))
            .unwrap_or(after.len());
        let candidate = after.get(..len).unwrap_or_default();
        let trimmed = candidate.trim_end_matches(['.', ',', ';', ':', ')', '!']);
        let url_end = at + 3 + trimmed.len();
        out.push_str(head.get(..scheme_start).unwrap_or_default());
        let url = rest.get(scheme_start..url_end).unwrap_or_default();
        if scheme_start == at {
            // `://` without a scheme before it: not a URL, but what follows may be one's tail.
            out.push_str("://");
            out.push_str(&redact_tail(trimmed));
        } else {
            out.push_str(&redact_url(url));
        }
        rest = rest.get(url_end..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// What follows a `://` with no scheme before it: kept when empty, else hidden.
fn redact_tail(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        REDACTED.to_string()
    }
}

/// Whether a URL carries a `user:password@` (or `:password@`) part.
pub fn url_has_password(text: &str) -> bool {
    reqwest::Url::parse(text).is_ok_and(|u| u.password().is_some())
}

pub fn process_env(name: &str) -> Result<String, std::env::VarError> {
    std::env::var(name)
}

/// Largest secret file read, in bytes.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Whether `name` is an environment variable name (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The variable name of a value that is exactly one `${ENV_NAME}` reference.
pub fn env_reference(text: &str) -> Option<&str> {
    text.strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
        .filter(|name| is_env_name(name))
}

/// The value of an environment variable; problems name the variable, never a value.
pub fn env_value(name: &str, env: EnvLookup) -> Result<String, String> {
    match env(name) {
        Ok(value) if value.is_empty() => Err(format!("environment variable {name} is empty")),
        Ok(value) => Ok(value),
        Err(std::env::VarError::NotPresent) => {
            Err(format!("environment variable {name} is not set"))
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(format!("environment variable {name} is not valid UTF-8"))
        }
    }
}

/// Replaces every `${ENV_NAME}` in `text` with the variable's value. Every `${` must open
/// a well-formed reference; a `$` not followed by `{` is literal.
pub fn interpolate_env(text: &str, env: EnvLookup) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let (before, after) = rest.split_at(start);
        out.push_str(before);
        let inner = after.get(2..).unwrap_or_default();
        let Some(end) = inner.find('}') else {
            return Err("`${` without a closing `}`".into());
        };
        let name = inner.get(..end).unwrap_or_default();
        if !is_env_name(name) {
            return Err(format!(
                "invalid environment variable reference {:?}: expected ${{ENV_NAME}}",
                format!("${{{name}}}")
            ));
        }
        out.push_str(&env_value(name, env)?);
        rest = inner.get(end + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads a secret file: at most [`MAX_SECRET_BYTES`], trailing line breaks trimmed, not
/// empty. Problems name the file, never its content.
pub fn read_secret_file(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("cannot read {shown}: not a regular file"));
    }
    if meta.len() > MAX_SECRET_BYTES {
        return Err(format!(
            "{shown} is {} bytes; a secret file holds at most {MAX_SECRET_BYTES}",
            meta.len()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => format!("{shown} is not valid UTF-8"),
        _ => format!("cannot read {shown}: {e}"),
    })?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(format!("{shown} is empty"));
    }
    Ok(value.to_string())
}

/// Looks up an environment variable (injected so tests need not change the environment).
pub type EnvLookup = fn(&str) -> Result<String, std::env::VarError>;

/// A fake environment for tests of `${ENV_NAME}` references: `SMTP_PASSWORD`, `HOOK_TOKEN`
/// and an empty `EMPTY` are set, nothing else.
#[cfg(test)]
pub(crate) fn fake_env(name: &str) -> Result<String, std::env::VarError> {
    match name {
        "SMTP_PASSWORD" => Ok("s3cret-from-env".into()),
        "HOOK_TOKEN" => Ok("tok".into()),
        "EMPTY" => Ok(String::new()),
        _ => Err(std::env::VarError::NotPresent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_are_read_trimmed_and_checked() {
        let dir = std::env::temp_dir().join(format!("lookout-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let good = dir.join("good");
        std::fs::write(&good, "pa55\r\n").expect("write");
        let empty = dir.join("empty");
        std::fs::write(&empty, "\n").expect("write");
        assert_eq!(read_secret_file(&good), Ok("pa55".to_string()));
        let err = read_secret_file(&empty).expect_err("empty");
        assert!(err.ends_with("empty") && err.contains("/empty"), "{err}");
        let err = read_secret_file(&dir.join("missing")).expect_err("missing");
        assert!(
            err.starts_with("cannot read ") && err.contains("missing"),
            "{err}"
        );
        let err = read_secret_file(&dir).expect_err("a directory");
        assert!(err.contains("not a regular file"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn env_interpolation() {
        // (text, expected)
        let rows: &[(&str, Result<&str, &str>)] = &[
            // no reference
            ("plain", Ok("plain")),
            // a lone dollar is literal
            ("$5", Ok("$5")),
            // one reference inside text
            ("Bearer ${HOOK_TOKEN}", Ok("Bearer tok")),
            // two references
            ("${HOOK_TOKEN}:${HOOK_TOKEN}", Ok("tok:tok")),
            // unset
            ("${NOPE}", Err("environment variable NOPE is not set")),
            // unclosed
            ("${HOOK_TOKEN", Err("without a closing")),
            // not a name
            (
                "${1X}",
                Err("invalid environment variable reference \"${1X}\""),
            ),
        ];
        for (text, expected) in rows {
            match (interpolate_env(text, fake_env), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{text}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{text}: {got}"),
                (got, _) => panic!("{text}: {got:?}"),
            }
        }
        assert_eq!(env_reference("${A_1}"), Some("A_1"));
        assert_eq!(env_reference("${}"), None);
        assert_eq!(env_reference("$A"), None);
    }

    #[test]
    fn urls_keep_scheme_host_and_port_only() {
        // (url, redact_url, redact_url_keep_path)
        let rows: &[(&str, &str, &str)] = &[
            // a Slack webhook: the token is the path
            (
                "https://hooks.slack.com/services/T0/B0/XyZ",
                "https://hooks.slack.com/<redacted>",
                "https://hooks.slack.com/services/T0/B0/XyZ",
            ),
            // Redis with a password and a database
            (
                "redis://app:s3cret@10.0.0.1:6379/2",
                "redis://<redacted>@10.0.0.1:6379/<redacted>",
                "redis://<redacted>@10.0.0.1:6379/2",
            ),
            // a password only
            (
                "rediss://:pw@h:6380",
                "rediss://<redacted>@h:6380",
                "rediss://<redacted>@h:6380",
            ),
            // nothing to hide
            (
                "redis://127.0.0.1:6379",
                "redis://127.0.0.1:6379",
                "redis://127.0.0.1:6379",
            ),
            ("http://h/", "http://h/", "http://h/"),
            // a user name alone is hidden too
            (
                "valkey://user@h",
                "valkey://<redacted>@h",
                "valkey://<redacted>@h",
            ),
            // a probe: the path stays, the query and fragment go
            (
                "http://u:p@127.0.0.1:8080/health?token=x#frag",
                "http://<redacted>@127.0.0.1:8080/<redacted>",
                "http://<redacted>@127.0.0.1:8080/health?<redacted>#<redacted>",
            ),
            ("http://h?k=v", "http://h/<redacted>", "http://h?<redacted>"),
            // IPv6
            (
                "http://[::1]:9093/am",
                "http://[::1]:9093/<redacted>",
                "http://[::1]:9093/am",
            ),
            // a password with an unescaped `/`: nothing after the scheme can be trusted
            (
                "redis://u:pa/ss@h:1",
                "redis://<redacted>",
                "redis://<redacted>",
            ),
            (
                "redis://u:12/x@h",
                "redis://<redacted>",
                "redis://<redacted>",
            ),
            // not a URL at all
            ("hooks.slack.com/x", "<redacted>", "<redacted>"),
            ("1http://h/x", "<redacted>", "<redacted>"),
            // a unix socket
            (
                "redis+unix:///run/redis.sock",
                "redis+unix:///<redacted>",
                "redis+unix:///run/redis.sock",
            ),
            // already redacted: unchanged
            (
                "http://<redacted>@h:1/<redacted>",
                "http://<redacted>@h:1/<redacted>",
                "http://<redacted>@h:1/<redacted>",
            ),
        ];
        for (url, origin, keep_path) in rows {
            assert_eq!(redact_url(url), *origin, "{url}");
            assert_eq!(redact_url_keep_path(url), *keep_path, "{url}");
        }
    }

    #[test]
    fn urls_inside_text_are_redacted() {
        // (text, expected)
        let rows: &[(&str, &str)] = &[
            ("no url here", "no url here"),
            (
                "invalid URL \"http://u:pw@h:x/p\": invalid port",
                "invalid URL \"http://<redacted>\": invalid port",
            ),
            (
                "error sending request for url (https://hooks.slack.com/services/T/B/x)",
                "error sending request for url (https://hooks.slack.com/<redacted>)",
            ),
            (
                "two: redis://a:b@h:1/0, and http://h/tok.",
                "two: redis://<redacted>@h:1/<redacted>, and http://h/<redacted>.",
            ),
            // scheme lists in messages stay readable
            (
                "must be redis://, rediss://, valkey:// or valkeys://, got \"http\"",
                "must be redis://, rediss://, valkey:// or valkeys://, got \"http\"",
            ),
            // a `://` with no scheme hides what follows
            ("see ://secret-part", "see ://<redacted>"),
        ];
        for (text, expected) in rows {
            assert_eq!(redact_urls_in(text), *expected, "{text}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(s.expose(), "hunter2");
    }
}
