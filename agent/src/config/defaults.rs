//! The commented default configuration file (`lookout config default`), assembled from
//! the sections' own default texts so that a new section documents itself.

/// `text` with every non-empty line indented by `spaces`.
pub fn indent(text: &str, spaces: usize) -> String {
    let pad = " ".repeat(spaces);
    let mut out = String::with_capacity(text.len() + spaces * 16);
    for line in text.lines() {
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// A parent key holding `children` (each a section's default text), indented under it and
/// separated as written: `separator` goes between two children (`"\n"` for a blank line).
pub fn nest(header: &str, key: &str, children: &[String], separator: &str) -> String {
    let mut out = String::from(header);
    out.push_str(key);
    out.push_str(":\n");
    let body: Vec<String> = children.iter().map(|c| indent(c, 2)).collect();
    out.push_str(&body.join(separator));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_indents_children_and_keeps_blank_lines_empty() {
        let children = [
            "# a\na: 1\n".to_string(),
            "b:\n  c: 2\n\n  d: 3\n".to_string(),
        ];
        assert_eq!(
            nest("# top\n", "parent", &children, "\n"),
            "# top\nparent:\n  # a\n  a: 1\n\n  b:\n    c: 2\n\n    d: 3\n"
        );
    }
}
