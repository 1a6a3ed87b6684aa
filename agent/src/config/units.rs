//! Units and names as the configuration writes them: durations (`1m30s`), sizes (`1MiB`),
//! numbers as people read them, whole-name patterns, file globs, label names and values.
//! Every parser here is pure and says in its error what it expected.

use std::time::Duration;

use regex::Regex;

/// Parses a duration: one or more `<integer><unit>` parts, units `ms`, `s`, `m`, `h`, `d`
/// from largest to smallest, each at most once (`500ms`, `10s`, `1m30s`, `1d12h`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const UNITS: &[(&str, u64)] = &[
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    const HINT: &str =
        "expected a number followed by a unit (ms, s, m, h, d), e.g. 500ms, 10s, 5m, 1m30s";
    let invalid = |why: &str| format!("invalid duration {text:?}: {why}");
    if text.is_empty() {
        return Err(invalid(HINT));
    }
    let mut total: u64 = 0;
    // Index into UNITS of the previous part's unit: each next unit must be smaller.
    let mut previous: Option<usize> = None;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        if number.is_empty() {
            return Err(invalid(HINT));
        }
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(invalid(match next.chars().next() {
                None => "missing unit (ms, s, m, h, d)",
                Some('.') | Some(',') => {
                    "fractions are not supported: use a smaller unit (1500ms, not 1.5s)"
                }
                Some(_) => HINT,
            }));
        }
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(invalid(&format!(
                "unknown unit {unit:?} (use ms, s, m, h, d)"
            )));
        };
        if previous.is_some_and(|p| p >= index) {
            return Err(invalid(
                "units must go from largest to smallest, each at most once (1m30s)",
            ));
        }
        previous = Some(index);
        let millis_per_unit = UNITS.get(index).map_or(1, |(_, ms)| *ms);
        total = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(millis_per_unit))
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| invalid("too large"))?;
        rest = next;
    }
    Ok(Duration::from_millis(total))
}

/// Parses a size in bytes: a whole number with an optional unit, `B`, `KB`/`MB`/`GB`
/// (powers of 1000) or `KiB`/`MiB`/`GiB` (powers of 1024): `65536`, `512KiB`, `1MiB`, `2MB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    const UNITS: &[(&str, u64)] = &[
        ("", 1),
        ("B", 1),
        ("KB", 1000),
        ("MB", 1000 * 1000),
        ("GB", 1000 * 1000 * 1000),
        ("KiB", 1 << 10),
        ("MiB", 1 << 20),
        ("GiB", 1 << 30),
    ];
    let invalid = |why: &str| format!("invalid size {text:?}: {why}");
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let unit = unit.trim_start();
    if number.is_empty() {
        return Err(invalid(
            "expected a whole number of bytes with an optional unit, e.g. 65536, 512KiB, 1MiB",
        ));
    }
    let Some((_, factor)) = UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(invalid(&format!(
            "unknown unit {unit:?} (use B, KB, MB, GB, KiB, MiB, GiB)"
        )));
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(*factor))
        .ok_or_else(|| invalid("too large"))
}

/// Formats a size the way [`parse_size`] reads it, in the largest binary unit that divides it.
pub fn format_size(bytes: u64) -> String {
    for (unit, factor) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= factor && bytes.is_multiple_of(factor) {
            return format!("{}{unit}", bytes / factor);
        }
    }
    format!("{bytes}B")
}

/// Formats a duration the way [`parse_duration`] reads it (`1m30s`, `500ms`, `0s`).
pub fn format_duration(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if millis >= size {
            out.push_str(&format!("{}{unit}", millis / size));
            millis %= size;
        }
    }
    out
}

/// Compiles a pattern that must match a whole name (`^(?:pattern)$`).
pub fn compile_whole_name(pattern: &str) -> Result<Regex, String> {
    let describe = |e: regex::Error| format!("invalid regex {pattern:?}: {}", regex_reason(&e));
    // Compiling the pattern alone first reports errors against what the user wrote, not
    // against the anchored wrapper.
    Regex::new(pattern).map_err(describe)?;
    Regex::new(&format!("^(?:{pattern})$")).map_err(describe)
}

/// The one-line reason of a regex error (its `Display` is a multi-line snippet).
pub fn regex_reason(error: &regex::Error) -> String {
    match error {
        regex::Error::CompiledTooBig(limit) => format!("compiled pattern exceeds {limit} bytes"),
        other => {
            let text = other.to_string();
            text.lines()
                .find_map(|line| line.strip_prefix("error: "))
                .map_or_else(
                    || text.split_whitespace().collect::<Vec<_>>().join(" "),
                    str::to_string,
                )
        }
    }
}

/// Checks the syntax of a glob pattern of file paths: `*` and `?` (within one path
/// component), `**` (any number of directories; it must be a whole component, as in
/// `rules/**/*.yaml`) and character classes `[abc]`, `[a-z]`, `[!abc]` (a `]` right after
/// the opening `[` or `[!` is literal). There is no backslash escape: write `[*]` for a
/// literal `*`.
pub fn check_glob(pattern: &str) -> Result<(), String> {
    let invalid = |why: String| Err(format!("invalid glob {pattern:?}: {why}"));
    if pattern.is_empty() {
        return invalid("empty pattern".into());
    }
    if pattern
        .split('/')
        .any(|component| component.contains("**") && component != "**")
    {
        return invalid("`**` must be a whole path component, as in rules/**/*.yaml".into());
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        i += 1;
        if c != '[' {
            continue;
        }
        // 1-based position of the `[`, for messages.
        let open = i;
        if chars.get(i) == Some(&'!') {
            i += 1;
        }
        // A `]` right after `[` or `[!` is a literal member, not the end.
        let members_start = i;
        let close = chars
            .iter()
            .enumerate()
            .skip(members_start + 1)
            .find(|(_, d)| **d == ']')
            .map(|(index, _)| index);
        let Some(close) = close else {
            return invalid(format!("`[` at character {open} is never closed by `]`"));
        };
        let members = chars.get(members_start..close).unwrap_or_default();
        if members.contains(&'/') {
            return invalid(format!(
                "the class opened at character {open} contains `/`, which it can never match"
            ));
        }
        // Ranges `a-z`; a `-` first or last in the class is a literal.
        let mut j = 0;
        while let Some(&low) = members.get(j) {
            match (members.get(j + 1), members.get(j + 2)) {
                (Some('-'), Some(&high)) => {
                    if low > high {
                        return invalid(format!(
                            "range {low}-{high} is reversed (write {high}-{low})"
                        ));
                    }
                    j += 3;
                }
                _ => j += 1,
            }
        }
        i = close + 1;
    }
    Ok(())
}

/// Why `value` cannot be a label value, if it cannot.
pub fn check_label_value(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    if value.len() > MAX_LABEL_VALUE_LEN {
        return Err(format!("must be at most {MAX_LABEL_VALUE_LEN} bytes"));
    }
    Ok(())
}

/// Checks an HTTP method name (a token, such as `GET` or `POST`) and returns it upper-cased.
pub fn check_http_method(text: &str) -> Result<String, String> {
    let upper = text.trim().to_ascii_uppercase();
    if upper.is_empty() {
        return Err("must not be empty".into());
    }
    if !is_http_method(&upper) {
        return Err(format!(
            "{text:?} is not an HTTP method (GET, HEAD, POST, ...)"
        ));
    }
    Ok(upper)
}

/// Whether `text` looks like an HTTP method name: letters, `-` and `_`, any case.
pub fn is_http_method(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b == b'-' || b == b'_')
}

/// Why `name` cannot be a label name (`[a-zA-Z_][a-zA-Z0-9_]*`), if it cannot.
pub fn check_label_name(name: &str) -> Result<(), String> {
    if super::secret::is_env_name(name) {
        Ok(())
    } else {
        Err(format!(
            "invalid label name {name:?}: letters, digits and `_`, not starting with a digit"
        ))
    }
}

/// A number as people write it: `20`, `2.5`, `0.33` (at most two decimals).
pub fn number_text(value: f64) -> String {
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

/// Longest accepted label value (names of targets, probes, the host), in bytes.
pub const MAX_LABEL_VALUE_LEN: usize = 255;

/// Whether a whole-name pattern list matches `name`.
pub fn matches_any(patterns: &[Regex], name: &str) -> bool {
    patterns.iter().any(|p| p.is_match(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parse_size_table() {
        for (text, want) in [
            ("65536", Ok(65536)),
            ("1MiB", Ok(1 << 20)),
            ("512 KiB", Ok(512 << 10)),
            ("2MB", Ok(2_000_000)),
            ("10B", Ok(10)),
            ("1GiB", Ok(1 << 30)),
        ] {
            assert_eq!(parse_size(text), want, "{text}");
        }
        for text in ["", "MiB", "1.5MiB", "1mib", "-1", "99999999999999999999GiB"] {
            assert!(parse_size(text).is_err(), "{text} should be refused");
        }
        for n in [1, 1023, 1024, 3 << 20, 1 << 30] {
            assert_eq!(parse_size(&format_size(n)), Ok(n));
        }
    }
    #[test]
    fn parse_duration_table() {
        let ok: &[(&str, u64)] = &[
            // milliseconds alone
            ("500ms", 500),
            // plain seconds
            ("10s", 10_000),
            // minutes
            ("5m", 300_000),
            // hours
            ("1h", 3_600_000),
            // days
            ("1d", 86_400_000),
            // combination, largest unit first
            ("1m30s", 90_000),
            // every unit at once
            ("1d2h3m4s5ms", 93_784_005),
            // zero is a valid duration; range checks are the caller's
            ("0s", 0),
            // leading zeros are just digits
            ("010s", 10_000),
        ];
        for (text, millis) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(*millis)),
                "{text}"
            );
        }
        let bad: &[(&str, &str)] = &[
            // empty
            ("", "expected a number followed by a unit"),
            // a word
            ("ten", "expected a number followed by a unit"),
            // bare number
            ("10", "missing unit"),
            // unknown unit
            ("10x", "unknown unit \"x\""),
            // units longer than ours
            ("10sec", "unknown unit \"sec\""),
            // fractions
            ("1.5s", "fractions are not supported"),
            // smaller unit first
            ("30s1m", "largest to smallest"),
            // repeated unit
            ("1s1s", "largest to smallest"),
            // negative
            ("-5s", "expected a number followed by a unit"),
            // inner space
            ("1m 30s", "expected a number followed by a unit"),
            // surrounding space is not trimmed
            (" 10s", "expected a number followed by a unit"),
            // overflow of u64 milliseconds
            ("99999999999999999999d", "too large"),
        ];
        for (text, expected) in bad {
            let err = parse_duration(text).expect_err(text);
            assert!(err.contains(expected), "{text}: {err}");
            assert!(
                err.starts_with(&format!("invalid duration {text:?}")),
                "{text}: {err}"
            );
        }
    }
    #[test]
    fn format_duration_round_trips() {
        for text in [
            // milliseconds
            "500ms",
            // seconds
            "10s",
            // mixed
            "1m30s",
            // every unit
            "1d2h3m4s5ms",
            // zero
            "0s",
        ] {
            let parsed = parse_duration(text).expect(text);
            assert_eq!(format_duration(parsed), text);
        }
    }
    #[test]
    fn whole_name_patterns() {
        let cases: &[(&str, &str, bool)] = &[
            // exact
            ("lo", "lo", true),
            // anchored at the end: no prefix match
            ("lo", "lo0", false),
            // anchored at the start
            ("lo", "xlo", false),
            // alternation stays inside the group
            ("a|b", "ab", false),
            // default disk pattern: a partition
            (r"(h|s|v|xv)d[a-z]+\d+", "sda1", true),
            // default disk pattern: the whole disk stays
            (r"(h|s|v|xv)d[a-z]+\d+", "sda", false),
            // default mount pattern: the root of /proc
            ("/proc(/.*)?", "/proc", true),
            // ... and below it, but not a sibling
            ("/proc(/.*)?", "/processes", false),
        ];
        for (pattern, name, matches) in cases {
            let regex = compile_whole_name(pattern).expect(pattern);
            assert_eq!(regex.is_match(name), *matches, "{pattern} vs {name}");
        }
        let err = compile_whole_name("(sd").expect_err("unclosed group");
        assert!(err.starts_with("invalid regex \"(sd\": "), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
    #[test]
    fn glob_syntax() {
        let ok = [
            // plain absolute path
            "/etc/lookout/rules/host.yaml",
            // relative, with a star
            "rules/*.yaml",
            // recursive wildcard as a whole component
            "rules/**/*.yaml",
            // recursive wildcard at the end
            "rules/**",
            // character class, range, negation
            "rules/[a-z]*[!~].yaml",
            // `]` first in a class is a literal
            "rules/[]x].yaml",
            // `-` last in a class is a literal
            "rules/[a-].yaml",
            // a lone `]` outside a class is a literal
            "rules/a].yaml",
            // literal star written as a class
            "rules/[*].yaml",
        ];
        for pattern in ok {
            assert_eq!(check_glob(pattern), Ok(()), "{pattern}");
        }
        let bad: &[(&str, &str)] = &[
            // empty
            ("", "empty pattern"),
            // unclosed class
            ("rules/[ab.yaml", "`[` at character 7 is never closed"),
            // `[]` alone: the `]` is a member, so still unclosed
            ("rules/[].yaml", "never closed"),
            // reversed range
            ("rules/[z-a].yaml", "range z-a is reversed"),
            // `**` glued to a name
            ("rules/**.yaml", "`**` must be a whole path component"),
            // `**` glued in front
            ("a**/x", "`**` must be a whole path component"),
            // a class spanning a separator
            ("rules/[a/b]", "contains `/`"),
        ];
        for (pattern, expected) in bad {
            let err = check_glob(pattern).expect_err(pattern);
            assert!(err.contains(expected), "{pattern}: {err}");
            assert!(
                err.starts_with(&format!("invalid glob {pattern:?}: ")),
                "{err}"
            );
        }
    }
    #[test]
    fn number_texts() {
        let cases: &[(f64, &str)] = &[
            // integer
            (20.0, "20"),
            // zero
            (0.0, "0"),
            // negative zero
            (-0.0, "0"),
            // one decimal
            (2.5, "2.5"),
            // rounded to two decimals
            (0.333, "0.33"),
            // float noise hidden
            (0.1 + 0.2, "0.3"),
            // negative
            (-1.0, "-1"),
        ];
        for (value, expected) in cases {
            assert_eq!(number_text(*value), *expected, "{value}");
        }
    }
}
