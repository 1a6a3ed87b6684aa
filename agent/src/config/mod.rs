//! The configuration machinery every section shares; the sections themselves live with
//! the features they configure.
//!
//! A configuration file is read in two layers:
//! - serde reads the YAML into raw structs (`deny_unknown_fields` everywhere, every field
//!   optional and documented, values that need checking kept as spanned text so their
//!   problems carry a line and column). [`yaml`] recovers from structural errors (an unknown
//!   key, a wrong type) so that one run reports all of them.
//! - each section's check turns its raw struct into the typed value the feature runs on,
//!   reporting **every** problem with its key path through the [`check::Checker`].
//!
//! What lives here: YAML positions and recovery ([`yaml`]), the checker ([`check`]), units
//! ([`units`]: durations, sizes, patterns, globs, label names), secrets ([`secret`]), and the
//! [`Section`] trait with the assembly of the commented default file ([`defaults`]). Which
//! sections exist is decided by the registries of the features (`collect`, `notify`) and by
//! the top-level file shape (`settings`).

pub mod check;
pub mod defaults;
pub mod secret;
pub mod units;
pub mod yaml;

pub use self::check::{Checker, Problem, Problems, Text};

/// One section of the configuration file, owned by the feature it configures: its raw
/// form, its checked form, its defaults and its checks sit beside the feature's code.
pub trait Section {
    /// What serde reads; `Default` is what an absent section means.
    type Raw: serde::de::DeserializeOwned + Default + std::fmt::Debug;
    /// The checked value the feature runs on.
    type Value: Clone + std::fmt::Debug;
    /// The section's defaults as commented YAML, starting with its own key at column 0
    /// (comment lines before the key describe the section). `lookout config default`
    /// prints these, indented under their parent key; a test holds them equal to what an
    /// absent section checks to.
    const DEFAULTS: &'static str;
    /// [`DEFAULTS`](Self::DEFAULTS), or a text assembled at run time by a section whose
    /// defaults depend on a registry (the receiver kinds of `notify:`).
    fn defaults_yaml() -> String {
        Self::DEFAULTS.to_string()
    }
    /// Checks `raw`, reporting every problem under `path` (the section's key path, such
    /// as `collect.tcp`), and returns the value to run on: defaults stand in for what was
    /// invalid, so checking continues past the first problem.
    fn check(raw: &Self::Raw, path: &str, checker: &mut Checker<'_>) -> Self::Value;
    /// The section's value when it is absent from the file.
    fn builtin() -> Self::Value {
        let mut checker = Checker::new("<builtin>", &[]);
        Self::check(&Self::Raw::default(), "", &mut checker)
    }
}

/// Checks `text` as the YAML of section `S` on its own, its problems reported under `path`
/// (the section's key path) and in a file of that name: how a section's own tests, and
/// tools that check one section, read it.
pub fn check_section<S: Section>(text: &str, path: &str) -> Result<S::Value, Problems> {
    yaml::load_text(text, path, |raw: &S::Raw, c: &mut Checker<'_>| {
        Some(S::check(raw, path, c))
    })
}
