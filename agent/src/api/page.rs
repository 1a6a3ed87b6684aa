//! Paging of every list the JSON API returns: `?limit=N&after=CURSOR`.
//!
//! - `limit` is 1 to [`MAX_LIMIT`]; absent: [`DEFAULT_LIMIT`]. A second list in the same
//!   answer takes the same parameters prefixed with its name (`dead_limit`, `dead_after`).
//! - `after` is the `next` of the previous answer: an opaque cursor naming the last item
//!   shown by its stable key (a sequence number, an alert's name and labels, a collector's
//!   name), so a page is "the items after that key", whatever was added or removed
//!   meanwhile. `next` is `null` on the last page.
//! - A list nested in an item (a rule's instances, a collector's values) shows at most
//!   [`MAX_NESTED`] of them, beside their count, and a page ends early, before the item
//!   that would take the page's nested items past [`MAX_NESTED`]: an answer never holds
//!   more than 1,000 items and 1,000 nested ones.
//! - A limit out of range or a cursor that is not one of this list is a 400 saying so.

use axum::http::StatusCode;

use super::ApiError;

/// Largest `limit`.
pub const MAX_LIMIT: usize = 1000;

/// `limit` when absent.
pub const DEFAULT_LIMIT: usize = 100;

/// Most nested items (a rule's instances, a collector's values) in one answer.
pub const MAX_NESTED: usize = 1000;

/// The `limit` parameter named `name`: `default` when absent, else a whole number from `min`
/// (1, or 0 where an empty list is a valid request) to [`MAX_LIMIT`].
pub fn limit(
    name: &str,
    given: Option<&str>,
    default: usize,
    min: usize,
) -> Result<usize, ApiError> {
    match given.map(|t| t.trim().parse::<usize>()) {
        None => Ok(default),
        Some(Ok(n)) if (min..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{name} must be a whole number from {min} to {MAX_LIMIT}"),
        )),
    }
}

/// The cursor naming `key` in list `list`.
pub fn cursor(list: &str, key: &str) -> String {
    hex::encode(format!("{list}:{key}"))
}

/// The key named by `given`, the `after` parameter `name` of list `list`; `None` when absent.
pub fn after(name: &str, list: &str, given: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(text) = given else {
        return Ok(None);
    };
    hex::decode(text.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|decoded| {
            decoded
                .strip_prefix(list)
                .and_then(|rest| rest.strip_prefix(':'))
                .map(str::to_string)
        })
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "{name} is not a cursor of this list: pass the `next` of an earlier answer, or leave it out to start at the beginning"
                ),
            )
        })
}

/// The key of a cursor that must be a number (a sequence number).
pub fn after_number(name: &str, list: &str, given: Option<&str>) -> Result<Option<u64>, ApiError> {
    match after(name, list, given)? {
        None => Ok(None),
        Some(key) => key.parse().map(Some).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "{name} is not a cursor of this list: pass the `next` of an earlier answer"
                ),
            )
        }),
    }
}

/// The first `limit` of `items` (already in list order and past the cursor), and whether
/// any item was left out.
pub fn take<T>(items: impl IntoIterator<Item = T>, limit: usize) -> (Vec<T>, bool) {
    let mut iter = items.into_iter();
    let page: Vec<T> = iter.by_ref().take(limit).collect();
    let more = iter.next().is_some();
    (page, more)
}

/// The `next` cursor of a page: the last item's key when more follow, else `None`.
pub fn next<T>(page: &[T], more: bool, list: &str, key: impl Fn(&T) -> String) -> Option<String> {
    if more {
        page.last().map(|last| cursor(list, &key(last)))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        // (given, default, min, expected)
        let rows: &[(Option<&str>, usize, usize, Option<usize>)] = &[
            // absent: the default
            (None, 100, 1, Some(100)),
            // the bounds
            (Some("1"), 100, 1, Some(1)),
            (Some("1000"), 100, 1, Some(1000)),
            // zero only where allowed
            (Some("0"), 100, 1, None),
            (Some("0"), 100, 0, Some(0)),
            // too large, negative, not a number
            (Some("1001"), 100, 1, None),
            (Some("-1"), 100, 1, None),
            (Some("ten"), 100, 1, None),
            (Some(""), 100, 1, None),
        ];
        for (given, default, min, expected) in rows {
            match (limit("limit", *given, *default, *min), expected) {
                (Ok(n), Some(want)) => assert_eq!(n, *want, "{given:?}"),
                (Err(e), None) => {
                    assert_eq!(e.status, StatusCode::BAD_REQUEST);
                    assert!(e.message.contains("limit must be"), "{}", e.message);
                }
                (got, _) => panic!("{given:?}: {got:?}"),
            }
        }
    }

    #[test]
    fn cursors_round_trip_and_belong_to_one_list() {
        let c = cursor("rules", "HostCpuHigh");
        assert_eq!(
            after("after", "rules", Some(&c)).unwrap(),
            Some("HostCpuHigh".to_string())
        );
        assert_eq!(after("after", "rules", None).unwrap(), None);
        // another list's cursor, garbage, odd hex
        for bad in [cursor("alerts", "x"), "zz".into(), "abc".into()] {
            let e = after("after", "rules", Some(&bad)).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(
                e.message.starts_with("after is not a cursor"),
                "{}",
                e.message
            );
        }
        let n = cursor("pending", "42");
        assert_eq!(
            after_number("after", "pending", Some(&n)).unwrap(),
            Some(42)
        );
        let e = after_number("after", "pending", Some(&cursor("pending", "x"))).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn pages_say_whether_more_follow() {
        assert_eq!(take(1..=5, 2), (vec![1, 2], true));
        assert_eq!(take(1..=2, 2), (vec![1, 2], false));
        assert_eq!(take(Vec::<i32>::new(), 2), (vec![], false));
        let key = |n: &i32| n.to_string();
        assert_eq!(next(&[1, 2], true, "l", key), Some(cursor("l", "2")));
        assert_eq!(next(&[1, 2], false, "l", key), None);
    }
}
