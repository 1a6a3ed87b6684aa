//! Secrets: values read from `*_file` keys or `${ENV_NAME}` references, never written in the
//! configuration and never printed. [`Secret`] prints as `<redacted>`; [`redact_url`] hides
//! the password of a URL for logs and problems; every error names the file or the variable,
//! never the value.

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

/// `url` with the password of its `user:password@` part replaced by `***`; unchanged when
/// it has none.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => url.to_string(),
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
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(s.expose(), "hunter2");
    }
}
