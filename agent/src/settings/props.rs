//! Property tests of the configuration file (`load_str`): the default file and every
//! fixture under `tests/fixtures/config/`, mutated line by line; random documents made of
//! the file's own keys; random text. No input panics or runs away, every invalid one is
//! reported with problems that say where, and an edit that changes nothing (CRLF line
//! breaks, a comment, a document marker) changes nothing.

use std::path::PathBuf;

use proptest::prelude::*;

use super::{default_yaml, load_str};
use crate::props::{
    self, apply, apply_noop, assert_located, document, edits, keys_of, noop, render, timed,
    yamlish_text,
};

/// Name given to the default file in problems.
const DEFAULT: &str = "<default>";

/// `(file, text)` of the default file and of every fixture, valid and invalid. Fixtures are
/// named by their path, so that secret files given relative to them resolve.
fn sources() -> Vec<(String, String)> {
    let mut out = vec![(DEFAULT.to_string(), default_yaml())];
    let root = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/config"
    ));
    for kind in ["valid", "invalid"] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(root.join(kind))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((path.display().to_string(), text));
        }
    }
    assert!(
        out.len() > 20,
        "fixtures not found under {}",
        root.display()
    );
    out
}

/// The sources that load as they are: `(file, text, the loaded value as Debug text)`.
fn valid_sources() -> Vec<(String, String, String)> {
    let valid: Vec<_> = sources()
        .into_iter()
        .filter_map(|(file, text)| {
            let loaded = format!("{:?}", load_str(&text, &file).ok()?);
            Some((file, text, loaded))
        })
        .collect();
    assert!(valid.len() >= 5, "{} valid sources", valid.len());
    valid
}

/// Checks one text: loads it within the time limit; when it is invalid, its problems must
/// say where.
fn check(text: &str, file: &str) -> Result<(), TestCaseError> {
    if let Err(problems) = timed("load_str", || load_str(text, file))? {
        assert_located(&problems.0, file, text)?;
    }
    Ok(())
}

// A load takes about 50 ms in a debug build (the default patterns are compiled), so these
// run fewer cases than the cheaper parsers' properties.
proptest! {
    #![proptest_config(props::config(96))]

    #[test]
    fn mutated_files_are_loaded_or_located(
        (file, text) in prop::sample::select(sources()),
        edits in edits(keys_of(&default_yaml())),
    ) {
        check(&apply(&text, &edits), &file)?;
    }

    #[test]
    fn random_documents_of_known_keys_are_loaded_or_located(
        doc in document(keys_of(&default_yaml())),
    ) {
        check(&render(&doc), "random.yaml")?;
    }

    #[test]
    fn random_text_is_loaded_or_located(text in yamlish_text()) {
        check(&text, "random.yaml")?;
    }
}

proptest! {
    #![proptest_config(props::config(64))]

    #[test]
    fn edits_that_change_nothing_change_nothing(
        (file, text, before) in prop::sample::select(valid_sources()),
        noop in noop(),
    ) {
        let edited = apply_noop(&text, &noop);
        match timed("load_str", || load_str(&edited, &file))? {
            Ok(after) => prop_assert_eq!(before, format!("{after:?}")),
            Err(problems) => prop_assert!(false, "{edited}\n{:#?}", problems.0),
        }
    }
}
