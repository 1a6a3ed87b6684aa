//! Routing: which receivers a notification goes to.
//!
//! Routes are tried in order; the first whose matchers all hold wins, unless it says
//! `continue: true`, in which case the following routes are tried too. Matchers see the
//! instance labels plus `alertname` and `severity`. A notification no route matches goes
//! nowhere and is counted (`lookout_notifications_total{receiver="",result="unrouted"}`),
//! never silently lost.

use crate::rules::LabelSet;
use regex::Regex;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::units::{check_label_name, compile_whole_name};
use crate::config::{Checker, Text};

/// The labels routes match on: the instance labels plus `alertname` and `severity`.
pub fn routing_labels(alert: &str, severity: &str, labels: &LabelSet) -> LabelSet {
    let mut out = labels.clone();
    out.insert("alertname".into(), alert.into());
    out.insert("severity".into(), severity.into());
    out
}

/// The receiver names for `labels`, in route order, without duplicates.
pub fn receivers_for<'r>(routes: &'r [RouteConfig], labels: &LabelSet) -> Vec<&'r str> {
    let mut out: Vec<&str> = Vec::new();
    for route in routes {
        if route.matchers.iter().all(|m| m.matches(labels)) {
            for r in &route.receivers {
                if !out.contains(&r.as_str()) {
                    out.push(r);
                }
            }
            if !route.continue_ {
                break;
            }
        }
    }
    out
}

// Configuration: `notify.route`.

/// One item of `notify.route`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Labels that must equal these values; absent: no equality matcher.
    #[serde(rename = "match")]
    pub match_: Option<std::collections::BTreeMap<String, Text>>,
    /// Labels whose whole value must match these regexes; absent: no regex matcher.
    pub match_re: Option<std::collections::BTreeMap<String, Text>>,
    /// Receiver names; absent (or empty): a problem.
    pub receivers: Option<Spanned<Vec<Text>>>,
    /// Go on to the next route after this one matched; absent: `false`.
    #[serde(rename = "continue")]
    pub continue_: Option<bool>,
}

/// One route: which notifications go to which receivers.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Every matcher must hold on the notification's labels (`alertname` and `severity`
    /// included); none: matches everything.
    pub matchers: Vec<LabelMatcher>,
    /// Receiver names.
    pub receivers: Vec<String>,
    /// Go on to the next route after this one matched.
    pub continue_: bool,
}

impl PartialEq for RouteConfig {
    fn eq(&self, other: &Self) -> bool {
        self.matchers == other.matchers
            && self.receivers == other.receivers
            && self.continue_ == other.continue_
    }
}

/// A label matcher of a route.
#[derive(Debug, Clone)]
pub struct LabelMatcher {
    /// Label name.
    pub label: String,
    /// Equality or a whole-value regex, possibly negated.
    pub op: MatchOp,
}

impl PartialEq for LabelMatcher {
    fn eq(&self, other: &Self) -> bool {
        self.label == other.label && self.op == other.op
    }
}

/// How a route matcher compares.
#[derive(Debug, Clone)]
pub enum MatchOp {
    /// `label: value`.
    Equal(String),
    /// `label: value` under `match_re` (whole-value regex).
    Regex(Regex),
}

impl PartialEq for MatchOp {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (MatchOp::Equal(a), MatchOp::Equal(b)) => a == b,
            (MatchOp::Regex(a), MatchOp::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl LabelMatcher {
    /// Whether the matcher holds on `labels` (an absent label is the empty string).
    pub fn matches(&self, labels: &crate::rules::LabelSet) -> bool {
        let value = labels.get(&self.label).map_or("", String::as_str);
        match &self.op {
            MatchOp::Equal(v) => value == v,
            MatchOp::Regex(re) => re.is_match(value),
        }
    }
}

/// Checks the routes of `notify.route` (`path`): every receiver they name must be in `known`
/// (the names given under `receivers_path`).
pub fn check_routes(
    c: &mut Checker<'_>,
    path: &str,
    list: &Spanned<Vec<Spanned<RawRoute>>>,
    known: &[String],
    receivers_path: &str,
) -> Vec<RouteConfig> {
    if list.value.is_empty() && !c.removed_under(path) {
        c.report(
            path,
            Some(&list.referenced),
            "must list at least one route: notifications would go nowhere (remove the key to send everything to every receiver)",
        );
    }
    // A receiver removed by structural recovery is not in `known`: names are not
    // checked then, since the user did write it.
    let names_complete = !c.removed_under(receivers_path);
    let mut routes = Vec::new();
    for (i, item) in list.value.iter().enumerate() {
        let base = format!("{path}[{i}]");
        let raw = &item.value;
        let mut valid = true;
        let mut matchers = Vec::new();
        for (label, value) in raw.match_.iter().flatten() {
            let path = format!("{base}.match.{label}");
            if let Err(why) = check_label_name(label) {
                c.report(&path, Some(&value.referenced), why);
                valid = false;
                continue;
            }
            matchers.push(LabelMatcher {
                label: label.clone(),
                op: MatchOp::Equal(value.value.clone()),
            });
        }
        for (label, value) in raw.match_re.iter().flatten() {
            let path = format!("{base}.match_re.{label}");
            let compiled = check_label_name(label).and_then(|()| compile_whole_name(&value.value));
            match compiled {
                Ok(regex) => matchers.push(LabelMatcher {
                    label: label.clone(),
                    op: MatchOp::Regex(regex),
                }),
                Err(why) => {
                    c.report(&path, Some(&value.referenced), why);
                    valid = false;
                }
            }
        }
        let mut receivers: Vec<String> = Vec::new();
        match c.required_list(
            &base,
            &item.referenced,
            "receivers",
            raw.receivers.as_ref(),
            "the names of the receivers this route sends to",
            "must list at least one receiver",
        ) {
            None => valid = false,
            Some(names) => {
                for (j, name) in names.iter().enumerate() {
                    let path = format!("{base}.receivers[{j}]");
                    if receivers.contains(&name.value) {
                        c.report(
                            &path,
                            Some(&name.referenced),
                            format!("receiver {:?} is listed twice", name.value),
                        );
                        valid = false;
                    } else if names_complete && !known.contains(&name.value) {
                        c.report(
                            &path,
                            Some(&name.referenced),
                            format!(
                                "unknown receiver {:?} (receivers: {})",
                                name.value,
                                known.join(", ")
                            ),
                        );
                        valid = false;
                    } else {
                        receivers.push(name.value.clone());
                    }
                }
            }
        }
        if valid {
            routes.push(RouteConfig {
                matchers,
                receivers,
                continue_: raw.continue_.unwrap_or(false),
            });
        }
    }
    routes
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn route(matchers: &[(&str, &str, bool)], receivers: &[&str], continue_: bool) -> RouteConfig {
        RouteConfig {
            matchers: matchers
                .iter()
                .map(|(label, value, regex)| LabelMatcher {
                    label: (*label).into(),
                    op: if *regex {
                        MatchOp::Regex(Regex::new(&format!("^(?:{value})$")).unwrap())
                    } else {
                        MatchOp::Equal((*value).into())
                    },
                })
                .collect(),
            receivers: receivers.iter().map(|r| (*r).to_string()).collect(),
            continue_,
        }
    }

    #[test]
    fn first_match_wins_unless_continue() {
        let routes = vec![
            route(
                &[("severity", "critical", false)],
                &["oncall", "chat"],
                true,
            ),
            route(&[("alertname", "Host.*", true)], &["chat"], false),
            route(&[], &["log"], false),
        ];
        // (alertname, severity, extra label, expected receivers)
        let rows = [
            ("HostCpuHigh", "critical", None, vec!["oncall", "chat"]), // critical continues, chat not repeated
            ("HostCpuHigh", "warning", None, vec!["chat"]),            // second route stops
            ("RedisDown", "warning", None, vec!["log"]),               // falls to the catch-all
            ("RedisDown", "critical", None, vec!["oncall", "chat", "log"]), // continue, then catch-all
            ("HostX", "warning", Some(("team", "db")), vec!["chat"]), // extra labels do not matter
        ];
        for (alert, severity, extra, expected) in rows {
            let mut labels = LabelSet::from([("host".to_string(), "web-1".to_string())]);
            if let Some((k, v)) = extra {
                labels.insert(k.into(), v.into());
            }
            let labels = routing_labels(alert, severity, &labels);
            assert_eq!(
                receivers_for(&routes, &labels),
                expected,
                "{alert} {severity}"
            );
        }
    }

    #[test]
    fn a_missing_label_matches_only_the_empty_value() {
        let routes = vec![
            route(&[("team", "", false)], &["noteam"], false),
            route(&[], &["all"], false),
        ];
        let none = routing_labels("A", "warning", &LabelSet::new());
        assert_eq!(receivers_for(&routes, &none), ["noteam"]);
        let team = routing_labels(
            "A",
            "warning",
            &LabelSet::from([("team".into(), "x".into())]),
        );
        assert_eq!(receivers_for(&routes, &team), ["all"]);
        assert!(receivers_for(&[], &team).is_empty(), "no routes: unrouted");
    }
}
