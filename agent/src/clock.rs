//! The wall clock, read in one place, with no dependency on the rest of the crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch now (the store's time, `store::Millis`); 0 for a clock
/// set before 1970, `i64::MAX` past the year 292 million.
pub fn wall_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_wall_clock_in_milliseconds() {
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let ms = wall_millis();
        let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        assert!(i64::try_from(before.as_millis()).unwrap() <= ms, "{ms}");
        assert!(ms <= i64::try_from(after.as_millis()).unwrap(), "{ms}");
    }
}
