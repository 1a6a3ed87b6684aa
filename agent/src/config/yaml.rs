//! Reading a YAML file (the configuration, a rule file): text -> raw serde structs -> a
//! checked value, reporting every problem as `file:line:col: path: message`.
//!
//! serde-saphyr stops at the first structural error (unknown key, wrong type, duplicate key)
//! and its errors name a position, not a key path. To report every problem, [`load_text`]
//! recovers: it parses the text into a small spanned tree of its own (from the parser's
//! events), finds the node at the error's position to name its key path, blanks that
//! mapping entry or list item in a working copy of the text (spaces, so every other
//! line and column stays put) and parses again. It stops after [`MAX_RECOVERIES`] rounds,
//! at a syntax error, or when nothing can be blanked. Semantic validation then runs on the
//! last successfully parsed copy, so a typo'd key and a bad duration are both reported.
//!
//! A structural message quotes what was written (`found "5x"`), except under keys whose
//! values may be secrets ([`SECRET_KEYS`]: `found a single value`); any URL a message quotes
//! is redacted to `scheme://host:port`.

use std::borrow::Cow;
use std::path::Path;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span, StructureStyle};
use serde_saphyr::{
    DefaultMessageFormatter, DuplicateKeyPolicy, Error as YamlError, MessageFormatter, Options,
};

use super::check::{Checker, Problem, Problems, ROOT_PATH};
use super::secret::redact_urls_in;
use crate::text::edit_distance;

/// Largest configuration file read, in bytes.
pub const MAX_CONFIG_BYTES: usize = 4 * 1024 * 1024;

/// Most structural problems recovered from in one file before giving up.
pub const MAX_RECOVERIES: usize = 100;

/// Deepest nesting the recovery tree follows; serde-saphyr's budget stops well before.
const MAX_TREE_DEPTH: usize = 64;

/// Most parser events the recovery tree reads.
const MAX_TREE_EVENTS: usize = 500_000;

/// Reads, parses and checks the YAML file at `path` with `check`: every problem of the file,
/// structural and semantic, in file order.
pub fn load_file<R, T>(
    path: &Path,
    check: impl FnOnce(&R, &mut Checker<'_>) -> Option<T>,
) -> Result<T, Problems>
where
    R: serde::de::DeserializeOwned + Default,
{
    let file = path.display().to_string();
    let problem = |message: String| {
        Problems(vec![Problem {
            file: file.clone(),
            line: None,
            column: None,
            path: ROOT_PATH.into(),
            message,
        }])
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() > MAX_CONFIG_BYTES as u64 => {
            return Err(problem(format!(
                "file is {} bytes; at most {MAX_CONFIG_BYTES} are read",
                meta.len()
            )));
        }
        Ok(_) => {}
        Err(e) => return Err(problem(format!("cannot read: {e}"))),
    }
    let text = std::fs::read_to_string(path).map_err(|e| problem(format!("cannot read: {e}")))?;
    load_text(&text, &file, check)
}

/// Parses YAML `text` and checks it with `check`; `file` only names it in problems. `check`
/// returns `None` only when it reported why no value can be built.
pub fn load_text<R, T>(
    text: &str,
    file: &str,
    check: impl FnOnce(&R, &mut Checker<'_>) -> Option<T>,
) -> Result<T, Problems>
where
    R: serde::de::DeserializeOwned + Default,
{
    let mut problems = Vec::new();
    if text.len() > MAX_CONFIG_BYTES {
        problems.push(problem(
            file,
            None,
            ROOT_PATH,
            format!("{} bytes; at most {MAX_CONFIG_BYTES} are read", text.len()),
        ));
        return Err(Problems(problems));
    }
    let parsed: Parsed<R> = parse_recovering(text, file, &mut problems);
    if let Some(raw) = &parsed.raw {
        let mut checker = Checker::new(file, &parsed.neutralized);
        let value = check(raw, &mut checker);
        let mut semantic = checker.into_problems();
        match value {
            Some(value) if problems.is_empty() && semantic.is_empty() => return Ok(value),
            _ => {
                parsed.fix_paths(&mut semantic);
                problems.extend(semantic);
            }
        }
    }
    // Problems without a position (whole-file ones) first, then in file order.
    problems.sort_by_key(|p| (p.line.unwrap_or(0), p.column.unwrap_or(0)));
    if parsed.gave_up {
        problems.push(problem(
            file,
            None,
            ROOT_PATH,
            format!(
                "stopped after {MAX_RECOVERIES} structural problems; fix these and check again"
            ),
        ));
    }
    Err(Problems(problems))
}

pub(crate) fn problem(file: &str, at: Option<(u32, u32)>, path: &str, message: String) -> Problem {
    Problem {
        file: file.into(),
        line: at.map(|(l, _)| l),
        column: at.map(|(_, c)| c),
        path: if path.is_empty() {
            ROOT_PATH.into()
        } else {
            path.into()
        },
        message,
    }
}

/// serde-saphyr options: strict booleans, duplicate keys rejected, and budgets far below the
/// library defaults, since a configuration file is small and an alias bomb must fail fast.
fn options() -> Options {
    let mut options = Options::default();
    options.with_snippet = false;
    options.strict_booleans = true;
    options.duplicate_keys = DuplicateKeyPolicy::Error;
    options.alias_limits.max_total_replayed_events = 20_000;
    options.alias_limits.max_alias_expansions_per_anchor = 1_000;
    options.alias_limits.max_replay_stack_depth = 16;
    if let Some(budget) = options.budget.as_mut() {
        budget.max_events = 200_000;
        budget.max_nodes = 100_000;
        budget.max_aliases = 1_000;
        budget.max_anchors = 1_000;
        budget.max_depth = 32;
        budget.max_total_scalar_bytes = MAX_CONFIG_BYTES;
        budget.max_recorded_anchor_events = 20_000;
        budget.max_recorded_anchor_bytes = MAX_CONFIG_BYTES;
        budget.max_merge_keys = 1_000;
    }
    options
}

/// The outcome of parsing with recovery.
pub(crate) struct Parsed<T> {
    /// The raw tree of the last successful parse; `None` if none succeeded.
    pub(crate) raw: Option<T>,
    /// Key paths blanked on the way.
    pub(crate) neutralized: Vec<String>,
    /// The original text as a tree, built at the first structural error.
    tree: Option<Tree>,
    /// Whether recovery stopped at [`MAX_RECOVERIES`].
    pub(crate) gave_up: bool,
}

impl<T> Parsed<T> {
    /// Rewrites list indexes in semantic problems' paths to those of the original text.
    pub(crate) fn fix_paths(&self, problems: &mut [Problem]) {
        if let Some(tree) = &self.tree {
            problems.iter_mut().for_each(|p| original_path(p, tree));
        }
    }
}

/// Parses `text`, recovering from structural errors (each one pushed to `problems`).
///
/// Paths are always computed on the tree of the original text: blanking keeps every other
/// node at its position, but a removed list item would shift the index of those after it.
pub(crate) fn parse_recovering<T: serde::de::DeserializeOwned + Default>(
    text: &str,
    file: &str,
    problems: &mut Vec<Problem>,
) -> Parsed<T> {
    let mut chars: Vec<char> = text.chars().collect();
    let mut parsed = Parsed {
        raw: None,
        neutralized: Vec::new(),
        tree: None,
        gave_up: false,
    };
    for _ in 0..MAX_RECOVERIES {
        let current: String = chars.iter().collect();
        let error = match serde_saphyr::from_str_with_options::<Option<T>>(&current, options()) {
            Ok(raw) => {
                parsed.raw = Some(raw.unwrap_or_default());
                return parsed;
            }
            Err(error) => error,
        };
        let tree = parsed.tree.get_or_insert_with(|| Tree::parse(text));
        let diagnosis = diagnose(&error, &current, tree);
        // A structural message may quote what was written: any URL in it is redacted to
        // `scheme://host:port` (it may carry a password or a token).
        problems.push(problem(
            file,
            diagnosis.at,
            &diagnosis.path,
            redact_urls_in(&diagnosis.message),
        ));
        match diagnosis.blank {
            Some((start, end)) if blank(&mut chars, start, end) => {
                parsed.neutralized.push(diagnosis.path)
            }
            _ => return parsed,
        }
    }
    parsed.gave_up = true;
    parsed
}

/// Rewrites list indexes in a semantic problem's path to those of the original text (see
/// [`parse_recovering`]), finding its node by position.
fn original_path(problem: &mut Problem, tree: &Tree) {
    let (Some(line), Some(column), Some(root)) = (problem.line, problem.column, tree.root.as_ref())
    else {
        return;
    };
    if !problem.path.contains('[') || column == 0 {
        return;
    }
    let target = (line as usize, column as usize - 1);
    let document = Entry {
        range: (0, 0),
        flow: false,
        item: false,
        first_line: None,
    };
    let mut candidates = Vec::new();
    find(root, "", 0, target, document, Role::Value, &mut candidates);
    if let Some(found) = candidates
        .iter()
        .filter(|c| c.role == Role::Value)
        .max_by_key(|c| c.depth)
    {
        problem.path = found.path.clone();
    }
}

/// Replaces the characters `start..end` with spaces, keeping line breaks. Whether anything
/// changed: a blank that changes nothing would loop forever.
fn blank(chars: &mut [char], start: usize, end: usize) -> bool {
    let mut changed = false;
    for c in chars.iter_mut().take(end).skip(start) {
        if !matches!(*c, '\n' | '\r' | ' ') {
            *c = ' ';
            changed = true;
        }
    }
    changed
}

/// What one structural error means for the user and for recovery.
struct Diagnosis {
    at: Option<(u32, u32)>,
    path: String,
    message: String,
    /// Character range to blank before parsing again; `None` stops recovery.
    blank: Option<(usize, usize)>,
}

/// Explains `error` (met parsing `text`, a blanked copy of the text `tree` was built from)
/// and says what to blank next.
fn diagnose(error: &YamlError, text: &str, tree: &Tree) -> Diagnosis {
    let at = error.location().and_then(|l| {
        let line = u32::try_from(l.line()).ok().filter(|v| *v > 0)?;
        let column = u32::try_from(l.column()).ok().filter(|v| *v > 0)?;
        Some((line, column))
    });
    let inner = innermost(error);
    let fallback = |message: String| Diagnosis {
        at,
        path: String::new(),
        message,
        blank: None,
    };
    let Some((line, column)) = at else {
        return fallback(describe(inner, None));
    };

    let target = (line as usize, column as usize - 1);
    if let Some(syntax) = &tree.syntax_error
        && (syntax.line, syntax.col) == target
    {
        // serde-saphyr may report a type mismatch at the very token where the syntax
        // breaks (`key: [` unclosed); the parser's reason is the real one.
        let reason = if syntax.reason.is_empty() {
            generic_message(inner)
        } else {
            syntax.reason.clone()
        };
        let mut message = format!("invalid YAML: {reason}");
        if message.contains("did not find expected key") {
            message.push_str(" (check the indentation of this line)");
        }
        return Diagnosis {
            at,
            path: syntax.open_path.clone(),
            message,
            blank: None,
        };
    }
    let mut candidates = Vec::new();
    if let Some(root) = &tree.root {
        let document = Entry {
            range: (0, text.chars().count()),
            flow: false,
            item: false,
            first_line: None,
        };
        find(root, "", 0, target, document, Role::Value, &mut candidates);
    }
    let chosen = match inner {
        YamlError::SerdeUnknownField { field, .. } => pick_key(&candidates, Some(field.as_str())),
        YamlError::DuplicateMappingKey { key, .. } => pick_key(&candidates, key.as_deref()),
        _ => candidates
            .iter()
            .filter(|c| c.role == Role::Value)
            .min_by_key(|c| c.depth)
            .or_else(|| pick_key(&candidates, None)),
    };
    let Some(found) = chosen else {
        let path = tree
            .root
            .as_ref()
            .map(|root| enclosing_path(root, "", target))
            .unwrap_or_default();
        return Diagnosis {
            path,
            ..fallback(describe(inner, None))
        };
    };
    let blank = widen(text, found.entry);
    Diagnosis {
        at,
        path: found.path.clone(),
        message: describe(inner, Some(found)),
        blank: Some(blank),
    }
}

/// The characters to blank for an entry: a block list item with its `-`, a flow entry with
/// its separating comma, so that what remains is still well-formed YAML.
fn widen(text: &str, entry: Entry) -> (usize, usize) {
    let chars: Vec<char> = text.chars().collect();
    let (mut start, mut end) = entry.range;
    let is_space = |c: &char| matches!(c, ' ' | '\t' | '\n' | '\r');
    if entry.item {
        // Node spans start after their properties: take `&anchor` and `!tag` along, or a
        // bare property would be left behind as a null item.
        loop {
            let before = chars.get(..start).unwrap_or_default();
            let Some(last) = before.iter().rposition(|c| !is_space(c)) else {
                break;
            };
            let token_start = before
                .get(..=last)
                .unwrap_or_default()
                .iter()
                .rposition(is_space)
                .map_or(0, |i| i + 1);
            match before.get(token_start) {
                Some('&' | '!') => start = token_start,
                Some('-') if !entry.flow && token_start == last => {
                    start = token_start;
                    break;
                }
                _ => break,
            }
        }
    }
    if entry.flow {
        let after = chars.get(end..).unwrap_or_default();
        match after.iter().position(|c| !is_space(c)) {
            Some(offset) if after.get(offset) == Some(&',') => end += offset + 1,
            _ => {
                // The last entry: take the comma before it instead, if any.
                let before = chars.get(..start).unwrap_or_default();
                if let Some(comma) = before
                    .iter()
                    .rposition(|c| !is_space(c))
                    .filter(|i| before.get(*i) == Some(&','))
                {
                    start = comma;
                }
            }
        }
    }
    (start, end)
}

/// The error itself, without the snippet and alias wrappers.
fn innermost(error: &YamlError) -> &YamlError {
    let mut current = error.without_snippet();
    for _ in 0..8 {
        match current {
            YamlError::AliasError { error, .. } => current = error.without_snippet(),
            _ => break,
        }
    }
    current
}

/// serde-saphyr's own wording, on one line and without its location suffix.
fn generic_message(error: &YamlError) -> String {
    let text = DefaultMessageFormatter.format_message(error);
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The message for a structural error, at the node found at its position if any.
fn describe(error: &YamlError, found: Option<&Candidate<'_>>) -> String {
    let what = || {
        found.map_or_else(
            || "something else".to_string(),
            |f| {
                if may_hold_secret(&f.path) {
                    f.node.kind_only()
                } else {
                    f.node.kind_name()
                }
            },
        )
    };
    match error {
        YamlError::SerdeUnknownField {
            field, expected, ..
        } => {
            let hint = closest(field, expected)
                .map(|k| format!("did you mean `{k}`? "))
                .unwrap_or_default();
            // The key as written may hold line breaks: a problem's message is one line.
            format!(
                "unknown key `{}`; {hint}expected one of: {}",
                crate::text::one_line(field),
                expected.join(", ")
            )
        }
        YamlError::DuplicateMappingKey { key, .. } => {
            let name = crate::text::one_line(key.as_deref().unwrap_or("?"));
            match found.and_then(|f| f.entry.first_line) {
                Some(line) => format!("duplicate key `{name}` (first set at line {line})"),
                None => format!("duplicate key `{name}`"),
            }
        }
        YamlError::Unexpected { expected, .. } => {
            format!("expected {}, found {}", expected_kind(expected), what())
        }
        YamlError::InvalidScalar { ty, .. } => {
            format!("expected {}, found {}", expected_kind(ty), what())
        }
        YamlError::InvalidBooleanStrict { .. } => {
            format!("expected true or false, found {}", what())
        }
        YamlError::NullIntoString { .. } => "expected a string, found null".into(),
        YamlError::Budget { breach, .. } => {
            format!(
                "too large or too deeply nested for a configuration file (limit reached: {breach:?})"
            )
        }
        YamlError::MultipleDocuments { .. } => {
            "a configuration is one YAML document; another one starts here".into()
        }
        YamlError::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => match found {
            Some(f) if may_hold_secret(&f.path) => format!("expected {expected}, found {}", what()),
            _ => format!("expected {expected}, found {unexpected}"),
        },
        other => generic_message(other),
    }
}

/// Keys whose values (or whose entries' values) may be secrets or carry one: a message
/// about them says what kind of value was found, never the value.
const SECRET_KEYS: &[&str] = &["url", "urls", "headers", "password", "secret", "token"];

/// Whether the value at key path `path` (`notify.receivers[0].webhook.headers.X-Token`) is
/// under one of [`SECRET_KEYS`].
fn may_hold_secret(path: &str) -> bool {
    path.split('.').any(|segment| {
        let key = segment.split('[').next().unwrap_or(segment);
        SECRET_KEYS.contains(&key)
    })
}

/// Plain words for serde-saphyr's names of what it expected.
fn expected_kind(what: &str) -> Cow<'static, str> {
    Cow::Borrowed(match what {
        "mapping start" => "a mapping (key: value lines)",
        "sequence start" => "a list",
        // Also what serde-saphyr says for booleans and numbers given a collection.
        "string scalar" | "scalar" => "a single value",
        "string" => "a string",
        "bool" | "boolean" => "true or false",
        "i8" | "i16" | "i32" | "i64" | "i128" | "u8" | "u16" | "u32" | "u64" | "u128" | "isize"
        | "usize" => "an integer",
        "f32" | "f64" | "floating point" => "a number",
        other => return Cow::Owned(other.to_string()),
    })
}

/// The expected key closest to a misspelled one, if it is close enough to be a typo.
fn closest<'a>(given: &str, expected: &[&'a str]) -> Option<&'a str> {
    expected
        .iter()
        .map(|k| (edit_distance(given, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.chars().count() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// A position in the text: character index, 1-based line, 0-based column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    index: usize,
    line: usize,
    col: usize,
}

impl Mark {
    fn start_of(span: &Span) -> Mark {
        Mark {
            index: span.start.index(),
            line: span.start.line(),
            col: span.start.col(),
        }
    }
    fn end_of(span: &Span) -> Mark {
        Mark {
            index: span.end.index(),
            line: span.end.line(),
            col: span.end.col(),
        }
    }
}

/// A YAML node with its extent in the text.
#[derive(Debug)]
struct Node {
    start: Mark,
    end: Mark,
    flow: bool,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Scalar { text: String, plain: bool },
    Alias,
    Sequence(Vec<Node>),
    Mapping(Vec<(Node, Node)>),
}

impl Node {
    /// What the user wrote, for "found ..." messages.
    fn kind_name(&self) -> String {
        match &self.kind {
            Kind::Scalar { text, plain: true }
                if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL") =>
            {
                "null".into()
            }
            Kind::Scalar { text, .. } => {
                let short: String = text.chars().take(40).collect();
                if short.len() < text.len() {
                    format!("{short:?}...")
                } else {
                    format!("{short:?}")
                }
            }
            Kind::Alias => "an alias".into(),
            Kind::Sequence(_) => "a list".into(),
            Kind::Mapping(_) => "a mapping".into(),
        }
    }

    /// What the user wrote, by kind only (`a string`), for values that may be secrets.
    fn kind_only(&self) -> String {
        match &self.kind {
            Kind::Scalar { .. } if self.kind_name() == "null" => "null".into(),
            Kind::Scalar { .. } => "a single value".into(),
            _ => self.kind_name(),
        }
    }

    fn key_text(&self) -> String {
        match &self.kind {
            Kind::Scalar { text, .. } => text.clone(),
            _ => "?".into(),
        }
    }
}

/// A syntax error met while building the tree, with the key path open at that point.
#[derive(Debug)]
struct SyntaxError {
    line: usize,
    col: usize,
    open_path: String,
    /// The parser's reason, on one line.
    reason: String,
}

/// The first document of a text as a spanned tree; partial when the text has a syntax
/// error (open collections are closed at the error).
#[derive(Debug, Default)]
struct Tree {
    root: Option<Node>,
    syntax_error: Option<SyntaxError>,
}

/// A collection being read.
struct Frame {
    start: Mark,
    flow: bool,
    sequence: bool,
    items: Vec<Node>,
}

impl Frame {
    fn close(self, end: Mark) -> Node {
        let kind = if self.sequence {
            Kind::Sequence(self.items)
        } else {
            let mut entries = Vec::with_capacity(self.items.len() / 2);
            let mut items = self.items.into_iter();
            while let Some(key) = items.next() {
                // A key cut off by a syntax error gets an empty value where it ends.
                let value = items.next().unwrap_or_else(|| Node {
                    start: key.end,
                    end: key.end,
                    flow: false,
                    kind: Kind::Scalar {
                        text: String::new(),
                        plain: true,
                    },
                });
                entries.push((key, value));
            }
            Kind::Mapping(entries)
        };
        Node {
            start: self.start,
            end,
            flow: self.flow,
            kind,
        }
    }

    /// Path segment of the child being read now, if any.
    fn open_segment(&self) -> Option<String> {
        if self.sequence {
            Some(format!("[{}]", self.items.len()))
        } else if self.items.len() % 2 == 1 {
            self.items.last().map(|k| format!(".{}", k.key_text()))
        } else {
            None
        }
    }
}

impl Tree {
    fn parse(text: &str) -> Tree {
        let mut tree = Tree::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut parser = Parser::new_from_str(text);
        let mut events = 0usize;
        while let Some(next) = parser.next_event() {
            events += 1;
            if events > MAX_TREE_EVENTS {
                break;
            }
            let (event, span) = match next {
                Ok(pair) => pair,
                Err(error) => {
                    let mark = error.marker();
                    // A frame opening right at the error (an unclosed bracket) has no child yet.
                    let open_path = stack
                        .iter()
                        .take_while(|f| (f.start.line, f.start.col) != (mark.line(), mark.col()))
                        .map_while(Frame::open_segment)
                        .collect::<String>();
                    let reason = error.kind().to_string();
                    tree.syntax_error = Some(SyntaxError {
                        line: mark.line(),
                        col: mark.col(),
                        open_path: open_path.trim_start_matches('.').to_string(),
                        reason: reason
                            .chars()
                            .map(|c| if c.is_control() { ' ' } else { c })
                            .collect(),
                    });
                    close_all(
                        &mut stack,
                        &mut tree,
                        Mark {
                            index: mark.index(),
                            line: mark.line(),
                            col: mark.col(),
                        },
                    );
                    break;
                }
            };
            let node = match event {
                Event::Scalar(value, style, ..) => Node {
                    start: Mark::start_of(&span),
                    end: Mark::end_of(&span),
                    flow: false,
                    kind: Kind::Scalar {
                        text: value.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    },
                },
                Event::Alias(_) => Node {
                    start: Mark::start_of(&span),
                    end: Mark::end_of(&span),
                    flow: false,
                    kind: Kind::Alias,
                },
                Event::SequenceStart(style, ..) | Event::MappingStart(style, ..) => {
                    if stack.len() >= MAX_TREE_DEPTH {
                        close_all(&mut stack, &mut tree, Mark::start_of(&span));
                        break;
                    }
                    stack.push(Frame {
                        start: Mark::start_of(&span),
                        flow: style == StructureStyle::Flow,
                        sequence: matches!(event, Event::SequenceStart(..)),
                        items: Vec::new(),
                    });
                    continue;
                }
                Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                    Some(frame) => frame.close(Mark::end_of(&span)),
                    None => break,
                },
                Event::DocumentEnd => break,
                _ => continue,
            };
            if push(&mut stack, &mut tree, node) {
                break;
            }
        }
        tree
    }
}

/// Closes every open collection at `end` (a syntax error, or the depth limit).
fn close_all(stack: &mut Vec<Frame>, tree: &mut Tree, end: Mark) {
    while let Some(frame) = stack.pop() {
        let node = frame.close(end);
        if push(stack, tree, node) {
            break;
        }
    }
}

/// Adds a finished node to its parent; whether it was the document root (reading stops).
fn push(stack: &mut [Frame], tree: &mut Tree, node: Node) -> bool {
    match stack.last_mut() {
        Some(parent) => {
            parent.items.push(node);
            false
        }
        None => {
            tree.root = Some(node);
            true
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Key,
    Value,
}

/// A node starting at the error position, with what recovery would blank for it.
#[derive(Debug)]
struct Candidate<'t> {
    path: String,
    depth: usize,
    role: Role,
    node: &'t Node,
    entry: Entry,
}

/// The mapping entry or list item a node belongs to.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Characters from the key (or item) start to the value (or item) end.
    range: (usize, usize),
    /// Whether the enclosing collection is in flow style (`{...}`, `[...]`).
    flow: bool,
    /// Whether it is a list item (else a mapping entry, or the document).
    item: bool,
    /// For a key: the line where the same key first appears in its mapping.
    first_line: Option<usize>,
}

/// Collects every node of `node`'s subtree that starts at `target` (line, 0-based column).
fn find<'t>(
    node: &'t Node,
    path: &str,
    depth: usize,
    target: (usize, usize),
    entry: Entry,
    role: Role,
    out: &mut Vec<Candidate<'t>>,
) {
    if (node.start.line, node.start.col) == target {
        out.push(Candidate {
            path: path.to_string(),
            depth,
            role,
            node,
            entry,
        });
    }
    if role == Role::Key || target.0 < node.start.line || target.0 > node.end.line {
        return;
    }
    match &node.kind {
        Kind::Mapping(entries) => {
            for (i, (key, value)) in entries.iter().enumerate() {
                let name = key.key_text();
                let child = child_path(path, &name);
                let first = entries
                    .iter()
                    .take(i)
                    .find(|(k, _)| matches!(&k.kind, Kind::Scalar { text, .. } if *text == name))
                    .map(|(k, _)| k.start.line);
                let start = key.start.index.min(value.start.index);
                let end = key.end.index.max(value.end.index);
                let entry = Entry {
                    range: (start, end),
                    flow: node.flow,
                    item: false,
                    first_line: first,
                };
                find(key, &child, depth + 1, target, entry, Role::Key, out);
                find(
                    value,
                    &child,
                    depth + 1,
                    target,
                    Entry {
                        first_line: None,
                        ..entry
                    },
                    Role::Value,
                    out,
                );
            }
        }
        Kind::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                let child = format!("{path}[{i}]");
                let entry = Entry {
                    range: (item.start.index, item.end.index),
                    flow: node.flow,
                    item: true,
                    first_line: None,
                };
                find(item, &child, depth + 1, target, entry, Role::Value, out);
            }
        }
        Kind::Scalar { .. } | Kind::Alias => {}
    }
}

/// The path of key `name` under `path`. Keys merged in with `<<` belong to the mapping
/// holding the `<<`.
fn child_path(path: &str, name: &str) -> String {
    if name == "<<" {
        path.to_string()
    } else if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// A key candidate: the one named `name` when given, else the deepest.
fn pick_key<'c, 't>(
    candidates: &'c [Candidate<'t>],
    name: Option<&str>,
) -> Option<&'c Candidate<'t>> {
    let keys = || candidates.iter().filter(|c| c.role == Role::Key);
    name.and_then(|n| {
        keys()
            .filter(|c| c.node.key_text() == n)
            .max_by_key(|c| c.depth)
    })
    .or_else(|| keys().max_by_key(|c| c.depth))
}

/// Path of the deepest mapping entry or list item whose lines contain `target`.
fn enclosing_path(node: &Node, path: &str, target: (usize, usize)) -> String {
    let inside =
        |n: &Node| (n.start.line, n.start.col) <= target && target <= (n.end.line, n.end.col);
    match &node.kind {
        Kind::Mapping(entries) => {
            for (key, value) in entries {
                if inside(key) || inside(value) {
                    return enclosing_path(value, &child_path(path, &key.key_text()), target);
                }
            }
        }
        Kind::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                if inside(item) {
                    return enclosing_path(item, &format!("{path}[{i}]"), target);
                }
            }
        }
        Kind::Scalar { .. } | Kind::Alias => {}
    }
    path.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_suggestions() {
        let keys = ["interval", "timeout", "enabled", "exclude_disks", "ports"];
        let cases: &[(&str, Option<&str>)] = &[
            // one letter missing
            ("intervl", Some("interval")),
            // two letters swapped
            ("enalbed", Some("enabled")),
            // singular of a plural key
            ("exclude_disk", Some("exclude_disks")),
            // nothing close
            ("colour", None),
            // short key, one edit
            ("port", Some("ports")),
        ];
        for (given, expected) in cases {
            assert_eq!(closest(given, &keys), *expected, "{given}");
        }
    }

    #[test]
    fn a_key_with_a_line_break_is_reported_on_one_line() {
        let problems = crate::settings::load_str("\"a\\nb\": 1\n", "t.yaml").unwrap_err();
        let text = problems.0[0].to_string();
        assert!(text.contains("unknown key `a\\nb`"), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
        // The message itself, not only its display (rule files report it as it is).
        assert!(!problems.0[0].message.contains('\n'), "{text}");
    }
}
