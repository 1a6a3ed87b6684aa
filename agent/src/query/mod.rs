//! The query language: a PromQL subset parsed once ([`parse`]) and evaluated by one
//! evaluator ([`eval`]) over a source of data. The rules evaluate their expressions over the
//! live store ([`Live`]); the HTTP query API evaluates any expression of the language over
//! the history.

pub mod ast;
pub mod eval;
mod functions;
pub mod live;
pub mod recorded;
pub mod value;

pub use ast::{Expr, parse};
pub use live::{Live, SeriesIndex};
