//! Routing: which receivers a notification goes to.
//!
//! Routes are tried in order; the first whose matchers all hold wins, unless it says
//! `continue: true`, in which case the following routes are tried too. Matchers see the
//! instance labels plus `alertname` and `severity`. A notification no route matches goes
//! nowhere and is counted (`lookout_notifications_total{receiver="",result="unrouted"}`),
//! never silently lost.

use crate::config::RouteConfig;
use crate::rules::LabelSet;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LabelMatcher, MatchOp};
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
