//! The checker: turns raw sections into typed values while collecting **every** problem,
//! each with its key path (`collect.tcp.ports[2]`) and, when the value came from the file,
//! its line and column.
//!
//! A section's check function takes the raw tree serde read and a `&mut Checker`; it reports
//! problems and substitutes defaults so that checking goes on past the first mistake. The
//! helpers here are the checks that several sections share (durations in a range, counts,
//! names of list entries, URLs, secrets, paths); anything only one section needs lives with
//! that section.

use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde_saphyr::{Location, Spanned};

use super::secret::{EnvLookup, Secret, env_reference, env_value, process_env, read_secret_file};
use super::units::{
    check_glob, check_label_value, compile_whole_name, format_duration, number_text, parse_duration,
};

use std::fmt;

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// File as given on the command line (or a name such as `<builtin>`).
    pub file: String,
    /// 1-based line, when the problem has a position.
    pub line: Option<u32>,
    /// 1-based column (in characters), when the problem has a position.
    pub column: Option<u32>,
    /// Key path such as `collect.tcp.ports[2]`; `<root>` for the document itself.
    pub path: String,
    /// What is wrong, on one line.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, ":{l}:{c}")?;
        }
        // A problem is one line, whatever the file's keys and values hold.
        write!(
            f,
            ": {}: {}",
            crate::text::one_line(&self.path),
            crate::text::one_line(&self.message)
        )
    }
}

/// Every problem found in one configuration, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} configuration problem(s)", .0.len())]
pub struct Problems(pub Vec<Problem>);

/// A string value with its position in the file.
pub type Text = Spanned<String>;

/// Shortest accepted collector interval.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Longest accepted collector interval.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// Path shown for a problem about the document as a whole.
pub const ROOT_PATH: &str = "<root>";

/// Line and column of a spanned value; `None` when serde-saphyr did not know them.
fn position(location: &Location) -> (Option<u32>, Option<u32>) {
    let line = u32::try_from(location.line()).ok().filter(|l| *l > 0);
    let column = u32::try_from(location.column()).ok().filter(|c| *c > 0);
    match (line, column) {
        (Some(l), Some(c)) => (Some(l), Some(c)),
        _ => (None, None),
    }
}

/// Collects problems while sections build the typed configuration.
#[derive(Debug)]
pub struct Checker<'a> {
    file: &'a str,
    neutralized: &'a [String],
    problems: Vec<Problem>,
    /// Where `${ENV_NAME}` references are resolved.
    env: EnvLookup,
}

/// How a secret key pair turned out.
#[derive(Debug)]
pub enum SecretOutcome<'t> {
    /// Neither key given.
    Absent,
    /// Given but unusable (reported).
    Invalid,
    /// The value, with the key path and position it came from.
    Given(Secret, (String, &'t Location)),
}

/// A checked number, with where it was written.
#[derive(Debug, Clone, Copy)]
pub struct Number<'r> {
    /// The value, or the default when absent or invalid.
    pub value: f64,
    /// Whether the value is usable in comparisons (absent, or given and valid).
    pub valid: bool,
    /// Position of the value in the file; `None` when absent.
    pub at: Option<&'r Location>,
}

impl<'a> Checker<'a> {
    pub fn new(file: &'a str, neutralized: &'a [String]) -> Self {
        Checker {
            file,
            neutralized,
            problems: Vec::new(),
            env: process_env,
        }
    }
    pub fn report(&mut self, path: &str, at: Option<&Location>, message: impl Into<String>) {
        let (line, column) = at.map_or((None, None), position);
        self.problems.push(Problem {
            file: self.file.to_string(),
            line,
            column,
            path: path.to_string(),
            message: message.into(),
        });
    }
    /// Whether structural recovery removed `path` (or a section holding it) from the
    /// document: its default is then not what the user wrote, so it is compared with nothing.
    pub fn removed(&self, path: &str) -> bool {
        self.neutralized.iter().any(|n| {
            path == n
                || path
                    .strip_prefix(n.as_str())
                    .is_some_and(|r| r.starts_with('.'))
        })
    }
    /// Whether structural recovery removed `prefix` or anything below it (keys or items).
    pub fn removed_under(&self, prefix: &str) -> bool {
        self.neutralized.iter().any(|n| {
            n.strip_prefix(prefix)
                .is_some_and(|r| r.is_empty() || r.starts_with('.') || r.starts_with('['))
        })
    }
    /// Reports when the `long` duration is shorter than the `short` one (both valid and
    /// neither removed). The problem goes to `long` when it was written, else to `short`.
    pub fn not_shorter(
        &mut self,
        short: (&str, Option<Duration>, Option<&Text>),
        long: (&str, Option<Duration>, Option<&Text>),
    ) {
        let ((short_path, short_value, short_text), (long_path, long_value, long_text)) =
            (short, long);
        let (Some(s), Some(l)) = (short_value, long_value) else {
            return;
        };
        if l >= s || self.removed(short_path) || self.removed(long_path) {
            return;
        }
        let (s, l) = (format_duration(s), format_duration(l));
        if let Some(text) = long_text {
            self.report(
                long_path,
                Some(&text.referenced),
                format!("{l} is shorter than {short_path} ({s})"),
            );
        } else if let Some(text) = short_text {
            self.report(
                short_path,
                Some(&text.referenced),
                format!("{s} is longer than {long_path} ({l})"),
            );
        }
    }
    /// A count of at least 1 that fits a `u32`: `default` when absent or invalid (reported).
    pub fn count_u32(&mut self, path: &str, given: Option<&Spanned<i64>>, default: u32) -> u32 {
        let n = self.count(path, given, u64::from(default), 1..=u64::from(u32::MAX));
        u32::try_from(n).unwrap_or(default)
    }
    /// An `http://` or `https://` URL with a host. Messages never repeat the URL: it may
    /// carry credentials or a token.
    pub fn http_url(&mut self, path: &str, text: &Text) -> Option<String> {
        let why = match reqwest::Url::parse(&text.value) {
            Err(e) => format!("invalid URL: {e}"),
            Ok(url) if !matches!(url.scheme(), "http" | "https") => {
                format!("must be http or https, got {:?}", url.scheme())
            }
            Ok(url) if url.host_str().is_none_or(str::is_empty) => "URL has no host".into(),
            Ok(_) => return Some(text.value.clone()),
        };
        self.report(path, Some(&text.referenced), why);
        None
    }
    /// A secret given inline (`key: ${ENV_NAME}`) or in a file (`file_key: path`).
    /// Problems name the variable or the file, never the value.
    pub fn secret<'t>(
        &mut self,
        base: &str,
        inline: (&str, Option<&'t Text>),
        file: (&str, Option<&'t Text>),
    ) -> SecretOutcome<'t> {
        let ((inline_key, inline), (file_key, file)) = (inline, file);
        match (inline, file) {
            (None, None) => SecretOutcome::Absent,
            (Some(_), Some(f)) => {
                self.report(
                    &format!("{base}.{file_key}"),
                    Some(&f.referenced),
                    format!("set either `{inline_key}` or `{file_key}`, not both"),
                );
                SecretOutcome::Invalid
            }
            (Some(text), None) => {
                let path = format!("{base}.{inline_key}");
                let outcome = match env_reference(&text.value) {
                    None => Err(format!(
                        "secrets are not written in the configuration: use `{inline_key}: ${{ENV_NAME}}` or `{file_key}`"
                    )),
                    Some(name) => env_value(name, self.env),
                };
                match outcome {
                    Ok(value) => SecretOutcome::Given(Secret::new(value), (path, &text.referenced)),
                    Err(why) => {
                        self.report(&path, Some(&text.referenced), why);
                        SecretOutcome::Invalid
                    }
                }
            }
            (None, Some(text)) => {
                let path = format!("{base}.{file_key}");
                if text.value.trim().is_empty() {
                    self.report(&path, Some(&text.referenced), "must not be empty");
                    return SecretOutcome::Invalid;
                }
                let resolved = self.relative_to_config(&text.value);
                match read_secret_file(&resolved) {
                    Ok(value) => SecretOutcome::Given(Secret::new(value), (path, &text.referenced)),
                    Err(why) => {
                        self.report(&path, Some(&text.referenced), why);
                        SecretOutcome::Invalid
                    }
                }
            }
        }
    }
    /// `path` as written when absolute, else relative to the configuration file's directory.
    pub fn relative_to_config(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() {
            return path.to_path_buf();
        }
        match Path::new(self.file).parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }
    /// A duration within `min..=max`: `default` when absent, `None` when invalid (reported).
    pub fn duration(
        &mut self,
        path: &str,
        given: Option<&Text>,
        default: Duration,
        min: Duration,
        max: Option<Duration>,
    ) -> Option<Duration> {
        let Some(text) = given else {
            return Some(default);
        };
        let message = match (parse_duration(&text.value), max) {
            (Err(why), _) => why,
            (Ok(d), Some(max)) if d < min || d > max => format!(
                "{} is out of range: must be between {} and {}",
                text.value,
                format_duration(min),
                format_duration(max)
            ),
            (Ok(d), None) if d < min => format!(
                "{} is too short: must be at least {}",
                text.value,
                format_duration(min)
            ),
            (Ok(d), _) => return Some(d),
        };
        self.report(path, Some(&text.referenced), message);
        None
    }
    /// A list of file glob patterns, kept as written.
    pub fn globs(&mut self, path: &str, given: Option<&[Text]>) -> Vec<String> {
        let mut globs = Vec::new();
        for (i, glob) in given.unwrap_or_default().iter().enumerate() {
            let outcome = if glob.value.trim().is_empty() {
                Err("must not be empty".to_string())
            } else {
                check_glob(&glob.value)
            };
            match outcome {
                Ok(()) => globs.push(glob.value.clone()),
                Err(why) => self.report(&format!("{path}[{i}]"), Some(&glob.referenced), why),
            }
        }
        globs
    }
    /// A number that must be finite and `>= 0`; `default` when absent or invalid.
    pub fn number<'r>(
        &mut self,
        path: &str,
        given: Option<&'r Spanned<f64>>,
        default: f64,
    ) -> Number<'r> {
        let Some(spanned) = given else {
            return Number {
                value: default,
                valid: true,
                at: None,
            };
        };
        let at = Some(&spanned.referenced);
        let value = spanned.value;
        let why = if !value.is_finite() {
            format!("must be a finite number, got {value}")
        } else if value < 0.0 {
            format!("must be at least 0, got {}", number_text(value))
        } else {
            return Number {
                value,
                valid: true,
                at,
            };
        };
        self.report(path, at, why);
        Number {
            value: default,
            valid: false,
            at,
        }
    }
    pub fn absolute_path(&mut self, path: &str, text: &Text) -> PathBuf {
        if text.value.is_empty() {
            self.report(
                path,
                Some(&text.referenced),
                "must not be empty (remove the key for the default)",
            );
        } else if !Path::new(&text.value).is_absolute() {
            self.report(
                path,
                Some(&text.referenced),
                format!("must be an absolute path, got {:?}", text.value),
            );
        }
        PathBuf::from(&text.value)
    }
    /// A whole number within `range` (no upper bound when it ends at `u64::MAX`): `default`
    /// when absent or invalid (reported).
    pub fn count(
        &mut self,
        path: &str,
        given: Option<&Spanned<i64>>,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> u64 {
        let Some(n) = given else {
            return default;
        };
        match u64::try_from(n.value) {
            Ok(v) if range.contains(&v) => v,
            _ => {
                let bound = if *range.end() == u64::MAX {
                    format!("at least {}", range.start())
                } else {
                    format!("between {} and {}", range.start(), range.end())
                };
                self.report(
                    path,
                    Some(&n.referenced),
                    format!("{} is out of range: must be {bound}", n.value),
                );
                default
            }
        }
    }
    /// `value` when given. When absent (and not removed by structural recovery), reports at
    /// the entry `base` (written at `at`) that `key` is required, followed by `hint` in
    /// parentheses when there is one.
    pub fn required<'v, V>(
        &mut self,
        base: &str,
        at: &Location,
        key: &str,
        value: Option<&'v V>,
        hint: &str,
    ) -> Option<&'v V> {
        if value.is_none() && !self.removed(&format!("{base}.{key}")) {
            let hint = if hint.is_empty() {
                String::new()
            } else {
                format!(" ({hint})")
            };
            self.report(base, Some(at), format!("`{key}` is required{hint}"));
        }
        value
    }

    /// The items of the required list `key` of entry `base`: `None` when it is absent
    /// (reported as [`required`](Self::required) does) or empty (reported as `empty`, at the
    /// list, unless recovery removed items from it).
    pub fn required_list<'v, V>(
        &mut self,
        base: &str,
        at: &Location,
        key: &str,
        list: Option<&'v Spanned<Vec<V>>>,
        hint: &str,
        empty: &str,
    ) -> Option<&'v [V]> {
        let list = self.required(base, at, key, list, hint)?;
        let path = format!("{base}.{key}");
        if list.value.is_empty() {
            if !self.removed_under(&path) {
                self.report(&path, Some(&list.referenced), empty);
            }
            return None;
        }
        Some(&list.value)
    }

    /// Checks a list of named entries (`collect.redis`, `collect.http_probes`): each entry
    /// gets its path `{path}[i]` and its checked name (see [`entry_name`](Self::entry_name);
    /// `None` when invalid, reported), then `entry` checks the rest and builds it. Entries
    /// for which `entry` returns `None` (every problem reported) are left out.
    pub fn named_entries<R, T>(
        &mut self,
        path: &str,
        list: &[Spanned<R>],
        what: &str,
        name_of: impl Fn(&R) -> Option<&Text>,
        mut entry: impl FnMut(&mut Self, &str, &Spanned<R>, Option<String>) -> Option<T>,
    ) -> Vec<T> {
        // Name of each entry (empty when invalid), aligned with the list for duplicates.
        let mut names: Vec<String> = Vec::new();
        let mut built = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let base = format!("{path}[{i}]");
            let name = self.entry_name(&base, item, name_of(&item.value), &mut names, what);
            built.extend(entry(self, &base, item, name));
        }
        built
    }

    /// The `name` of list entry `base`: required, non-empty, a valid label value, and unique
    /// among `names` (which gets this entry's name, empty when invalid, to stay aligned with
    /// the list). `what` names the kind of entry in the duplicate message.
    pub fn entry_name<T>(
        &mut self,
        base: &str,
        item: &Spanned<T>,
        name: Option<&Text>,
        names: &mut Vec<String>,
        what: &str,
    ) -> Option<String> {
        let valid = match self.required(base, &item.referenced, "name", name, "") {
            None => None,
            Some(name) => {
                let path = format!("{base}.name");
                if let Err(why) = check_label_value(&name.value) {
                    self.report(&path, Some(&name.referenced), why);
                    None
                } else if name.value.trim().is_empty() {
                    self.report(&path, Some(&name.referenced), "must not be empty");
                    None
                } else if let Some(first) = names.iter().position(|n| *n == name.value) {
                    // `base` is `list[i]`; the duplicate message points at `list[first]`.
                    let list = base.rsplit_once('[').map_or(base, |(list, _)| list);
                    self.report(
                        &path,
                        Some(&name.referenced),
                        format!(
                            "duplicate {what} name {:?} (already at {list}[{first}])",
                            name.value
                        ),
                    );
                    None
                } else {
                    Some(name.value.clone())
                }
            }
        };
        names.push(valid.clone().unwrap_or_default());
        valid
    }
    /// The password of entry `base` given beside its `url`: `password: ${ENV}` (when the
    /// entry has that key: `inline`) or `password_file`, and not as well as a password in
    /// the URL (then [`SecretOutcome::Invalid`], reported).
    pub fn url_password<'t>(
        &mut self,
        base: &str,
        url: Option<&str>,
        inline: Option<&'t Text>,
        file: Option<&'t Text>,
    ) -> SecretOutcome<'t> {
        let outcome = self.secret(base, ("password", inline), ("password_file", file));
        if let SecretOutcome::Given(_, (path, at)) = &outcome
            && url.is_some_and(crate::config::secret::url_has_password)
        {
            self.report(
                path,
                Some(at),
                "the URL already carries a password: set it in one place only",
            );
            return SecretOutcome::Invalid;
        }
        outcome
    }
    /// The required `url` of list entry `base`, checked by `check`; `hint` shows its form.
    pub fn required_url<T>(
        &mut self,
        base: &str,
        item: &Spanned<T>,
        url: Option<&Text>,
        hint: &str,
        check: fn(&str) -> Result<(), String>,
    ) -> Option<String> {
        let text = self.required(base, &item.referenced, "url", url, hint)?;
        match check(&text.value) {
            Ok(()) => Some(text.value.clone()),
            Err(why) => {
                self.report(&format!("{base}.url"), Some(&text.referenced), why);
                None
            }
        }
    }
    /// A list of exact names; a list given replaces `defaults`.
    pub fn names(&mut self, path: &str, given: Option<&[Text]>, defaults: &[&str]) -> Vec<String> {
        let Some(given) = given else {
            return defaults.iter().map(|s| s.to_string()).collect();
        };
        let mut names = Vec::with_capacity(given.len());
        for (i, name) in given.iter().enumerate() {
            if name.value.trim().is_empty() {
                self.report(
                    &format!("{path}[{i}]"),
                    Some(&name.referenced),
                    "must not be empty",
                );
            } else {
                names.push(name.value.clone());
            }
        }
        names
    }
    /// A list of whole-name patterns; a list given replaces `defaults`.
    pub fn patterns(
        &mut self,
        path: &str,
        given: Option<&[Text]>,
        defaults: &[&str],
    ) -> Vec<Regex> {
        let sources: Vec<(String, Option<&Location>)> = match given {
            Some(list) => list
                .iter()
                .map(|t| (t.value.clone(), Some(&t.referenced)))
                .collect(),
            None => defaults.iter().map(|s| (s.to_string(), None)).collect(),
        };
        let mut compiled = Vec::with_capacity(sources.len());
        for (i, (pattern, at)) in sources.into_iter().enumerate() {
            match compile_whole_name(&pattern) {
                Ok(regex) => compiled.push(regex),
                Err(why) => self.report(&format!("{path}[{i}]"), at, why),
            }
        }
        compiled
    }

    /// Where `${ENV_NAME}` references are resolved (the process environment, or a fake one
    /// in tests).
    pub fn env(&self) -> EnvLookup {
        self.env
    }

    /// Resolves `${ENV_NAME}` references with `lookup` instead of the process environment.
    pub fn with_env(mut self, lookup: EnvLookup) -> Self {
        self.env = lookup;
        self
    }

    /// The file being checked, as given.
    pub fn file(&self) -> &str {
        self.file
    }

    /// Every problem reported so far, in the order reported.
    pub fn into_problems(self) -> Vec<Problem> {
        self.problems
    }
}
