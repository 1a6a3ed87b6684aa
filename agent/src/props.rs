//! Shared pieces of the property tests (proptest) that sit beside the parsers: the run
//! configuration, mutations of text inputs, random YAML, and the checks every parser's
//! problems must pass. Test code only (`#[cfg(test)]` in `lib.rs`).
//!
//! Every parser of outside input is driven with random and with mutated real inputs (the
//! default configuration, the fixtures, the rule files, captured `/proc` files). The
//! properties: no panic; it terminates (inputs are bounded, and each case must finish within
//! [`CASE_LIMIT`]); an invalid input's error says where (file, line, key path or field); an
//! edit that changes nothing for YAML still parses to the same value.
//!
//! Failures are not persisted: proptest prints the shrunk input, and a case it found
//! becomes a named regression test beside the parser, so nothing is written into the source
//! tree when the suite runs.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError};

use crate::config::Problem;
use crate::config::check::ROOT_PATH;

/// Longest one case may take. Inputs are bounded, so a case that runs this long is a
/// runaway (a loop or a blow-up): in a debug build the slowest case (a rule test of a
/// million points in time) takes about 2 s. It is wall time on a machine that others share,
/// hence the wide margin.
pub(crate) const CASE_LIMIT: Duration = Duration::from_secs(60);

/// The run configuration of a property: `cases` cases unless `PROPTEST_CASES` says how
/// many, and no failure files written into the source tree.
pub(crate) fn config(cases: u32) -> Config {
    // `Config::default()` reads the PROPTEST_* variables.
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config.failure_persistence = None;
    config
}

/// Runs `f`, failing the case when it takes longer than [`CASE_LIMIT`].
pub(crate) fn timed<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    let start = Instant::now();
    let value = f();
    let took = start.elapsed();
    prop_assert!(
        took <= CASE_LIMIT,
        "{what} took {took:?}, over {CASE_LIMIT:?}"
    );
    Ok(value)
}

// ---------------------------------------------------------------------------------------
// Values

/// A YAML scalar (or small flow collection) to put where a value was: numbers of every
/// kind and size, YAML's special words, durations, quoted and unquoted random text, flow
/// lists and maps, tags, anchors and aliases.
pub(crate) fn scalar() -> impl Strategy<Value = String> {
    let word = "[a-z_]{1,10}";
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| format!("{n}0")),
        any::<f64>().prop_map(|f| f.to_string()),
        (-400i32..400).prop_map(|e| format!("1e{e}")),
        prop::sample::select(vec![
            "~",
            "null",
            "true",
            "false",
            "yes",
            "no",
            "on",
            "''",
            "\"\"",
            ".nan",
            ".inf",
            "-.inf",
            "0x1F",
            "0o17",
            "-0",
            "[]",
            "{}",
            "!!binary aGk=",
            "!!str",
            "!tag x",
            "*missing",
            "&a",
            "- x",
            "? x",
            "|",
            ">-",
            "'unterminated",
            "\"unterminated",
        ])
        .prop_map(String::from),
        "[0-9]{1,12}(ns|us|ms|s|m|h|d|w|y)?",
        "[0-9]{1,3}(h[0-9]{1,3}m|m[0-9]{1,3}s|s[0-9]{1,3}ms)",
        "[0-9]{1,3}(\\.[0-9]{1,3})?%?",
        "[<>=!]{1,2} ?[0-9.]{1,6}(%|ms|s|MiB|KB)?",
        word.prop_map(String::from),
        "\\PC{0,40}",
        any::<String>().prop_map(|s| quoted(&s)),
        "[ -~]{0,60}".prop_map(|s| format!("'{}'", s.replace('\'', "''"))),
        prop::collection::vec(word, 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
        (word, "[a-z0-9]{0,8}").prop_map(|(k, v)| format!("{{{k}: {v}}}")),
        (1usize..3000).prop_map(|n| "x".repeat(n)),
    ]
}

/// `s` as a YAML double-quoted scalar (JSON's escapes are YAML's).
pub(crate) fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

// ---------------------------------------------------------------------------------------
// Line edits

/// One edit of a YAML (or any line-based) text. Indexes pick a line of the text as it is
/// when the edit applies.
#[derive(Debug, Clone)]
pub(crate) enum Edit {
    /// Deletes a line.
    Delete(Index),
    /// Writes a line twice.
    Duplicate(Index),
    /// Adds spaces (or a tab) in front of a line.
    Indent(Index, String),
    /// Removes up to this many leading spaces of a line.
    Dedent(Index, usize),
    /// Replaces the value of a line (after `key:` or `- `) with a scalar.
    Replace(Index, String),
    /// Inserts a line before another.
    Insert(Index, String),
    /// Anchors the value of one line (`&p`) and puts an alias of it on another (`*p`).
    Alias(Index, Index),
    /// Inserts a merge key (`<<: *p`) of an anchor put on another line.
    Merge(Index, Index),
    /// Swaps two lines.
    Swap(Index, Index),
    /// Cuts the text at a character.
    Truncate(Index),
}

/// A line to insert: a key (one of `keys`, so nesting errors are likely) with a value, a
/// list item, a document marker or directive, or random text, at a random indentation.
fn line(keys: Vec<String>) -> impl Strategy<Value = String> {
    let key = if keys.is_empty() {
        "[a-z_]{1,12}".boxed()
    } else {
        prop_oneof![prop::sample::select(keys), "[a-z_]{1,12}"].boxed()
    };
    let indent = (0usize..12).prop_map(|n| " ".repeat(n));
    prop_oneof![
        (indent.clone(), key.clone(), scalar()).prop_map(|(i, k, v)| format!("{i}{k}: {v}")),
        (indent.clone(), key).prop_map(|(i, k)| format!("{i}{k}:")),
        (indent.clone(), scalar()).prop_map(|(i, v)| format!("{i}- {v}")),
        prop::sample::select(vec![
            "---",
            "...",
            "%YAML 1.2",
            "%TAG ! tag:x,2000:",
            "? a",
            ": b",
            "\t",
            "<<: *p",
            "#",
        ])
        .prop_map(String::from),
        (indent, "\\PC{0,30}").prop_map(|(i, t)| format!("{i}{t}")),
    ]
}

/// One edit; `keys` are the keys inserted lines may use.
pub(crate) fn edit(keys: Vec<String>) -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<Index>().prop_map(Edit::Delete),
        any::<Index>().prop_map(Edit::Duplicate),
        (
            any::<Index>(),
            prop_oneof!["[ ]{1,6}", Just("\t".to_string())]
        )
            .prop_map(|(i, s)| Edit::Indent(i, s)),
        (any::<Index>(), 1usize..6).prop_map(|(i, n)| Edit::Dedent(i, n)),
        (any::<Index>(), scalar()).prop_map(|(i, v)| Edit::Replace(i, v)),
        (any::<Index>(), scalar()).prop_map(|(i, v)| Edit::Replace(i, v)),
        (any::<Index>(), line(keys)).prop_map(|(i, l)| Edit::Insert(i, l)),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::Alias(a, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::Merge(a, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::Swap(a, b)),
        any::<Index>().prop_map(Edit::Truncate),
    ]
}

/// One to four edits.
pub(crate) fn edits(keys: Vec<String>) -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(edit(keys), 1..5)
}

/// Where the value of a YAML line starts (byte offset): after `key:` and its space, after
/// `- ` list markers, or the first non-blank character; `None` for a blank or comment line.
fn value_start(line: &str) -> Option<usize> {
    let indent = line.len() - line.trim_start().len();
    let mut at = indent;
    let mut rest = line.get(indent..)?;
    if rest.is_empty() || rest.starts_with('#') {
        return None;
    }
    while let Some(r) = rest.strip_prefix("- ") {
        at += 2;
        rest = r;
    }
    if rest == "-" || rest.ends_with(':') {
        return Some(line.len());
    }
    match rest.find(": ") {
        Some(i) => Some(at + i + 2),
        None => Some(at),
    }
}

/// `line` with its value replaced by `value`.
fn with_value(line: &str, value: &str) -> Option<String> {
    let at = value_start(line)?;
    let head = line.get(..at)?;
    let space = if head.ends_with([' ', '\t']) || head.is_empty() {
        ""
    } else {
        " "
    };
    Some(format!("{head}{space}{value}"))
}

/// `text` after `edits`, in order. Lines are split on `\n`, so a `\r` stays with its line.
pub(crate) fn apply(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.split('\n').map(String::from).collect();
    let mut anchors = 0usize;
    for edit in edits {
        let n = lines.len().max(1);
        match edit {
            Edit::Delete(i) => {
                if lines.len() > 1 {
                    lines.remove(i.index(n));
                }
            }
            Edit::Duplicate(i) => {
                let at = i.index(n).min(lines.len().saturating_sub(1));
                if let Some(line) = lines.get(at).cloned() {
                    lines.insert(at, line);
                }
            }
            Edit::Indent(i, spaces) => {
                if let Some(line) = lines.get_mut(i.index(n)) {
                    line.insert_str(0, spaces);
                }
            }
            Edit::Dedent(i, count) => {
                if let Some(line) = lines.get_mut(i.index(n)) {
                    let spaces = line.len() - line.trim_start_matches(' ').len();
                    line.replace_range(..spaces.min(*count), "");
                }
            }
            Edit::Replace(i, value) => {
                if let Some(line) = lines.get_mut(i.index(n))
                    && let Some(new) = with_value(line, value)
                {
                    *line = new;
                }
            }
            Edit::Insert(i, new) => lines.insert(i.index(n), new.clone()),
            Edit::Alias(a, b) | Edit::Merge(a, b) => {
                anchors += 1;
                let name = format!("p{anchors}");
                let (a, b) = (a.index(n), b.index(n));
                let Some(at) = lines.get(a).and_then(|l| value_start(l)) else {
                    continue;
                };
                if let Some(line) = lines.get_mut(a) {
                    let space = if line.get(..at).is_some_and(|h| h.ends_with(' ')) {
                        ""
                    } else {
                        " "
                    };
                    line.insert_str(at, &format!("{space}&{name} "));
                }
                if let Edit::Merge(..) = edit {
                    let indent = lines.get(b).map_or(0, |l| l.len() - l.trim_start().len());
                    lines.insert(b, format!("{}<<: *{name}", " ".repeat(indent)));
                } else if let Some(line) = lines.get_mut(b)
                    && let Some(new) = with_value(line, &format!("*{name}"))
                {
                    *line = new;
                }
            }
            Edit::Swap(a, b) => lines.swap(a.index(n), b.index(n)),
            Edit::Truncate(i) => {
                let text = lines.join("\n");
                let chars = text.chars().count().max(1);
                let cut: String = text.chars().take(i.index(chars)).collect();
                lines = cut.split('\n').map(String::from).collect();
            }
        }
    }
    lines.join("\n")
}

/// The mapping keys of a YAML text (`key:` at the start of a line or after `- `), once each.
pub(crate) fn keys_of(text: &str) -> Vec<String> {
    let mut keys: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let l = l.trim_start().trim_start_matches("- ");
            let (key, _) = l.split_once(':')?;
            (!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                .then(|| key.to_string())
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

// ---------------------------------------------------------------------------------------
// Edits that change nothing

/// An edit after which a YAML text means exactly what it meant.
#[derive(Debug, Clone)]
pub(crate) enum NoOp {
    /// CRLF line breaks.
    Crlf,
    /// A comment line before a line that starts a key or list item, outside block scalars.
    Comment(Index, String),
    /// A `---` document start before the document.
    DocumentStart,
    /// A comment at the end, on a line of its own.
    TrailingComment(String),
}

/// One edit that changes nothing.
pub(crate) fn noop() -> impl Strategy<Value = NoOp> {
    // YAML allows no control characters, not even in comments.
    let comment = "\\PC{0,40}";
    prop_oneof![
        Just(NoOp::Crlf),
        (any::<Index>(), comment).prop_map(|(i, c)| NoOp::Comment(i, c)),
        Just(NoOp::DocumentStart),
        comment.prop_map(NoOp::TrailingComment),
    ]
}

/// Lines (indexes) before which a comment line changes nothing: lines that start a key or a
/// list item and are not inside a block scalar (`key: |` / `key: >-` and the lines indented
/// below it).
fn comment_points(lines: &[&str]) -> Vec<usize> {
    let mut points = Vec::new();
    let mut block: Option<usize> = None;
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if let Some(parent) = block {
            if trimmed.is_empty() || indent > parent {
                continue;
            }
            block = None;
        }
        let starts_node = trimmed.starts_with("- ")
            || trimmed
                .split_once(':')
                .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        if starts_node && !trimmed.is_empty() {
            points.push(i);
        }
        let value = trimmed.trim_end();
        if value.ends_with(['|', '>']) || value.ends_with("|-") || value.ends_with(">-") {
            block = Some(indent);
        }
    }
    points
}

/// `text` after `noop`.
pub(crate) fn apply_noop(text: &str, noop: &NoOp) -> String {
    match noop {
        NoOp::Crlf => text.replace('\n', "\r\n"),
        NoOp::Comment(i, comment) => {
            let lines: Vec<&str> = text.split('\n').collect();
            let points = comment_points(&lines);
            if points.is_empty() {
                return format!("{text}\n# {comment}");
            }
            let at = points[i.index(points.len())];
            let indent = lines[at].len() - lines[at].trim_start().len();
            let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            out.insert(at, format!("{}# {comment}", " ".repeat(indent)));
            out.join("\n")
        }
        NoOp::DocumentStart => format!("---\n{text}"),
        NoOp::TrailingComment(comment) => format!("{text}\n# {comment}\n"),
    }
}

// ---------------------------------------------------------------------------------------
// Random YAML documents

/// A YAML node of a random document.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Scalar(String),
    Map(Vec<(String, Node)>),
    List(Vec<Node>),
}

/// A random document: nested block mappings and lists of scalars, up to four levels deep,
/// whose keys are mostly from `keys` (the keys a parser knows) so that deep paths are
/// reached.
pub(crate) fn document(keys: Vec<String>) -> impl Strategy<Value = Node> {
    let key = prop_oneof![4 => prop::sample::select(keys), 1 => "[a-z_]{1,10}"];
    scalar()
        .prop_map(Node::Scalar)
        .prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec((key.clone(), inner.clone()), 0..6).prop_map(Node::Map),
                prop::collection::vec(inner, 0..5).prop_map(Node::List),
            ]
        })
}

/// `node` as block-style YAML text.
pub(crate) fn render(node: &Node) -> String {
    fn write(node: &Node, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        match node {
            Node::Scalar(s) => {
                out.push_str(&pad);
                out.push_str(s);
                out.push('\n');
            }
            Node::Map(entries) if entries.is_empty() => out.push_str(&format!("{pad}{{}}\n")),
            Node::List(items) if items.is_empty() => out.push_str(&format!("{pad}[]\n")),
            Node::Map(entries) => {
                for (key, value) in entries {
                    match value {
                        Node::Scalar(s) => out.push_str(&format!("{pad}{key}: {s}\n")),
                        _ => {
                            out.push_str(&format!("{pad}{key}:\n"));
                            write(value, indent + 2, out);
                        }
                    }
                }
            }
            Node::List(items) => {
                for item in items {
                    match item {
                        Node::Scalar(s) => out.push_str(&format!("{pad}- {s}\n")),
                        _ => {
                            out.push_str(&format!("{pad}-\n"));
                            write(item, indent + 2, out);
                        }
                    }
                }
            }
        }
    }
    let mut out = String::new();
    write(node, 0, &mut out);
    out
}

/// Random text biased towards YAML's punctuation, line breaks and indentation.
pub(crate) fn yamlish_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[-:#&*!|>'\"{}\\[\\],?%@` \n\t\ra-z0-9.]{0,400}",
        prop::collection::vec(any::<char>(), 0..300).prop_map(|c| c.into_iter().collect()),
    ]
}

// ---------------------------------------------------------------------------------------
// Files

/// A scratch directory of one property, under the system temp dir, removed on drop.
#[derive(Debug)]
pub(crate) struct Scratch(std::path::PathBuf);

impl Scratch {
    /// A new empty directory whose name holds `tag`.
    pub(crate) fn new(tag: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("lookout-props-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// The directory.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// Writes `content` to `rel` under it, creating directories on the way; its path.
    pub(crate) fn write(&self, rel: &str, content: &[u8]) -> std::path::PathBuf {
        let path = self.0.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------
// Problems

/// The contract of a configuration or rule file's problems: at least one; each names
/// `file`, says on one line what is wrong, and says where: a line and column inside the
/// text, or a key path. Only whole-file problems (the size limit, too many problems) may
/// have neither.
pub(crate) fn assert_located(
    problems: &[Problem],
    file: &str,
    text: &str,
) -> Result<(), TestCaseError> {
    prop_assert!(!problems.is_empty(), "an error without a problem");
    // A position may point just past the last line (end of input).
    let lines = line_count(text) + 1;
    for p in problems {
        prop_assert_eq!(&p.file, file, "{}", p);
        prop_assert!(!p.message.trim().is_empty(), "no message: {}", p);
        prop_assert!(!p.message.contains('\n'), "message of several lines: {}", p);
        prop_assert!(!p.path.is_empty(), "empty path: {}", p);
        prop_assert_eq!(p.line.is_some(), p.column.is_some(), "{}", p);
        if let (Some(line), Some(column)) = (p.line, p.column) {
            prop_assert!(
                (1..=lines).contains(&line) && column >= 1,
                "position outside the text ({} lines): {}",
                lines,
                p
            );
        }
        let whole_file = p.message.contains("at most") || p.message.contains("stopped after");
        prop_assert!(
            p.line.is_some() || p.path != ROOT_PATH || whole_file,
            "says neither a line nor a key path: {}",
            p
        );
    }
    Ok(())
}

/// Lines of `text` as YAML counts them: `\r\n`, `\r` and `\n` each end one.
fn line_count(text: &str) -> u32 {
    let breaks = text.replace("\r\n", "\n").matches(['\r', '\n']).count();
    u32::try_from(breaks).unwrap_or(u32::MAX).saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    #[test]
    fn edits_change_the_text_and_find_values() {
        assert_eq!(value_start("  key: value"), Some(7));
        assert_eq!(value_start("  - - item"), Some(6));
        assert_eq!(value_start("key:"), Some(4));
        assert_eq!(value_start("  # comment"), None);
        assert_eq!(with_value("a: 1", "2").as_deref(), Some("a: 2"));
        assert_eq!(with_value("a:", "[x]").as_deref(), Some("a: [x]"));
        let mut runner = TestRunner::deterministic();
        let text = "a:\n  b: 1\n  c: [x]\n";
        let mut changed = 0;
        for _ in 0..50 {
            let edits = edits(keys_of(text))
                .new_tree(&mut runner)
                .map(|t| t.current())
                .unwrap_or_default();
            if apply(text, &edits) != text {
                changed += 1;
            }
        }
        assert!(
            changed > 40,
            "only {changed} of 50 edit lists changed the text"
        );
        assert_eq!(keys_of(text), ["a", "b", "c"]);
    }

    #[test]
    fn comments_go_outside_block_scalars() {
        let text = "a:\n  d: >-\n    x: y\n    - z\n  e: 1\n- f\n";
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(comment_points(&lines), [0, 1, 4, 5]);
    }
}
