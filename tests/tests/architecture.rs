//! The module graph of `agent/src` has no cycles: not between the top-level modules
//! (`collect`, `rules`, `notify`, ...), and not between the sibling files of one folder.
//!
//! The graph is read from the code itself: every `crate::<module>` path outside test
//! code is an edge from the file's top-level module to `<module>`, and every
//! `super::<file>` path naming a sibling file is an edge between those files. Test code
//! (`#[cfg(test)]` modules, `tests.rs` files) may reach anywhere and is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn source_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../agent/src")
}

/// Every `.rs` file under `dir`, recursively, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The code of a file that is not test code: everything before its first `#[cfg(test)]`
/// (test modules sit at the end of a file), without comments.
fn production_code(text: &str) -> String {
    text.lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The identifiers that follow `prefix` in `code` (`crate::` -> `collect`, `rules`, ...),
/// including those inside a brace list right after it (`super::{a, b::C}` -> `a`, `b`).
fn names_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices(prefix) {
        // `super::` inside `super::super::` or a longer path is still the same prefix.
        let rest = &code[i + prefix.len()..];
        if let Some(list) = rest.strip_prefix('{') {
            let end = list.find('}').unwrap_or(list.len());
            for item in list[..end].split(',') {
                let name = ident(item.trim());
                if !name.is_empty() {
                    names.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                names.insert(name);
            }
        }
    }
    names
}

/// A cycle in `graph`, as the list of nodes around it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// The module edges (`collect -> config`) and sibling-file edges
/// (`collect/host.rs -> collect/disk.rs`) of the agent's production code.
fn graphs() -> (
    BTreeMap<String, BTreeSet<String>>,
    BTreeMap<String, BTreeSet<String>>,
) {
    let root = source_root();
    let mut modules: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let top_level: BTreeSet<String> = rust_files(&root)
        .iter()
        .map(|p| top_module(&root, p))
        .collect();
    for path in rust_files(&root) {
        let relative = path.strip_prefix(&root).unwrap();
        if path.file_name().is_some_and(|n| n == "tests.rs")
            || relative == Path::new("lib.rs")
            || relative == Path::new("main.rs")
        {
            continue;
        }
        let code = production_code(&std::fs::read_to_string(&path).unwrap());
        let module = top_module(&root, &path);
        let edges = modules.entry(module.clone()).or_default();
        for target in names_after(&code, "crate::") {
            if target != module && top_level.contains(&target) {
                edges.insert(target);
            }
        }
        // Sibling files: `super::x` from a file that is not its folder's mod.rs.
        let dir = path.parent().unwrap();
        if path.file_name().is_some_and(|n| n != "mod.rs") && dir != root {
            let from = relative.display().to_string();
            let edges = files.entry(from.clone()).or_default();
            for name in names_after(&code, "super::") {
                let sibling = dir.join(format!("{name}.rs"));
                if sibling.exists() && sibling != path {
                    edges.insert(sibling.strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
    }
    (modules, files)
}

/// The top-level module a file belongs to: `collect/host.rs` -> `collect`, `store.rs` -> `store`.
fn top_module(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    Path::new(first)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn top_level_modules_form_no_cycle() {
    let (modules, _) = graphs();
    // The graph was read: the modules the agent is made of are all there.
    for module in [
        "collect", "config", "notify", "rules", "settings", "store", "api",
    ] {
        assert!(
            modules.contains_key(module),
            "{module} not found in {modules:?}"
        );
    }
    assert!(
        modules["collect"].contains("config"),
        "collect reads its sections through config: {modules:?}"
    );
    if let Some(cycle) = find_cycle(&modules) {
        panic!("module cycle: {}\nedges: {modules:#?}", cycle.join(" -> "));
    }
}

#[test]
fn sibling_files_form_no_cycle() {
    let (_, files) = graphs();
    assert!(
        files
            .get("collect/host.rs")
            .is_some_and(|e| e.contains("collect/disk.rs")),
        "collect/host.rs builds the disk collector: {files:?}"
    );
    if let Some(cycle) = find_cycle(&files) {
        panic!("file cycle: {}\nedges: {files:#?}", cycle.join(" -> "));
    }
}

#[test]
fn a_cycle_is_found_when_there_is_one() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let acyclic: BTreeMap<String, BTreeSet<String>> = [("a", vec!["b"]), ("b", vec![])]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
    assert_eq!(find_cycle(&acyclic), None);
    assert_eq!(
        names_after(
            "use super::{disk, host::X};\nuse crate::config::Checker;",
            "super::"
        ),
        BTreeSet::from(["disk".to_string(), "host".to_string()])
    );
}

#[test]
fn no_production_file_exceeds_a_thousand_lines() {
    let root = source_root();
    let long: Vec<String> = rust_files(&root)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "tests.rs"))
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let lines = text
                .lines()
                .take_while(|l| l.trim() != "#[cfg(test)]")
                .count();
            (lines > 1000).then(|| format!("{}: {lines}", p.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these files: {long:?}");
}
