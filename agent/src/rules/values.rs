//! Input values of rule tests in promtool's expanding notation: `a` a number, `_` a
//! missing sample, `stale` a stale marker, `axN` the value `a` `N+1` times, `a+bxN` and
//! `a-bxN` a series of `N+1` values, `_xN` `N+1` missing samples.

/// Most values one series, and all series of one test together, may expand to.
pub const MAX_VALUES: usize = 1_000_000;

/// One item of an input series after expansion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Input {
    /// A value.
    Value(f64),
    /// `_`: no sample at this step.
    Missing,
    /// `stale`: a stale marker; missing until a value comes.
    Stale,
}

/// Expands promtool's notation (see the module docs). Errors name the bad token.
pub fn expand(values: &str) -> Result<Vec<Input>, String> {
    let mut out = Vec::new();
    for token in values.split_whitespace() {
        let bad = |why: &str| format!("bad value {token:?}: {why}");
        match token {
            "_" => out.push(Input::Missing),
            "stale" => out.push(Input::Stale),
            _ => match token.rsplit_once('x') {
                None => out.push(Input::Value(number(token).map_err(|e| bad(&e))?)),
                Some((head, count)) => {
                    let n: usize = count.parse().map_err(|_| {
                        bad("the repeat count after `x` must be a whole number >= 0")
                    })?;
                    let total = n
                        .checked_add(1)
                        .filter(|t| out.len().saturating_add(*t) <= MAX_VALUES)
                        .ok_or_else(|| bad(&format!("expands past {MAX_VALUES} values")))?;
                    if head == "_" {
                        out.extend(std::iter::repeat_n(Input::Missing, total));
                        continue;
                    }
                    let (start, step) = match number(head) {
                        Ok(a) => (a, 0.0),
                        Err(_) => {
                            let (a, b, sign) = split_step(head)
                                .ok_or_else(|| bad("expected a, a+bxN or a-bxN"))?;
                            let a = number(a).map_err(|e| bad(&e))?;
                            let b = number(b).map_err(|e| bad(&e))?;
                            (a, sign * b)
                        }
                    };
                    let mut v = start;
                    for _ in 0..total {
                        out.push(Input::Value(v));
                        v += step;
                    }
                }
            },
        }
    }
    Ok(out)
}

/// Splits `a+b` / `a-b` at the operator (not a leading sign, not an exponent's sign).
fn split_step(head: &str) -> Option<(&str, &str, f64)> {
    let bytes = head.as_bytes();
    for (i, &c) in bytes.iter().enumerate().skip(1) {
        if (c == b'+' || c == b'-') && !matches!(bytes.get(i - 1), Some(b'e' | b'E')) {
            let sign = if c == b'+' { 1.0 } else { -1.0 };
            return Some((head.get(..i)?, head.get(i + 1..)?, sign));
        }
    }
    None
}

fn number(text: &str) -> Result<f64, String> {
    if text.is_empty() {
        return Err("missing number".into());
    }
    text.parse::<f64>()
        .map_err(|_| format!("{text:?} is not a number"))
}
