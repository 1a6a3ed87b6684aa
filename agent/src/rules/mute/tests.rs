//! What muting sends, holds and releases, on a clock the tests move.

use std::collections::BTreeMap;

use super::inhibit::InhibitRule;
use super::matchers::Matchers;
use super::silence::Silence;
use super::*;

fn labels(target: &str) -> LabelSet {
    BTreeMap::from([
        ("host".to_string(), "h".to_string()),
        ("target".to_string(), target.to_string()),
    ])
}

fn note(alert: &str, target: &str, status: Status, kind: Kind, at: Millis) -> Notification {
    Notification {
        alert: alert.into(),
        labels: labels(target),
        status,
        kind,
        severity: Severity::Warning,
        previous: None,
        value: Some(1.0),
        threshold: Some(0.5),
        summary: String::new(),
        description: String::new(),
        starts_at: at,
        at,
    }
}

fn firing(alert: &str, target: &str, at: Millis) -> Notification {
    note(alert, target, Status::Firing, Kind::Firing, at)
}

fn resolved(alert: &str, target: &str, at: Millis) -> Notification {
    note(alert, target, Status::Resolved, Kind::Resolved, at)
}

fn silence(alert: &str, starts: Millis, ends: Millis) -> Silence {
    Silence::new(
        "s1".into(),
        BTreeMap::from([("alert".to_string(), alert.to_string())]),
        starts,
        ends,
        String::new(),
        String::new(),
        0,
    )
    .unwrap()
}

/// The alert names and statuses of what is sent.
fn sent(out: &[Notification]) -> Vec<(String, Status, Kind)> {
    out.iter()
        .map(|n| (n.alert.clone(), n.status, n.kind))
        .collect()
}

#[test]
fn a_silenced_alert_is_held_and_notified_when_the_silence_ends_while_it_fires() {
    let mut m = Muter {
        created: vec![silence("A", 0, 10_000)],
        ..Muter::default()
    };
    let l = labels("x");
    let on = [("A", &l, Severity::Warning)];
    assert!(
        m.filter(vec![firing("A", "x", 1000)], &on, 1000, 1000)
            .is_empty()
    );
    assert_eq!(
        m.reasons("A", &l, Severity::Warning, &on, 1000),
        vec![Reason::Silence { id: "s1".into() }]
    );
    // Still silenced: nothing, however often it is evaluated.
    assert!(m.filter(vec![], &on, 9_999, 9_999).is_empty());
    // The silence ends: the held notification goes out, once, as a firing one.
    let out = m.filter(vec![], &on, 10_000, 10_000);
    assert_eq!(sent(&out), vec![("A".into(), Status::Firing, Kind::Firing)]);
    assert_eq!(out[0].at, 10_000);
    assert!(m.filter(vec![], &on, 11_000, 11_000).is_empty());
    // Its resolve goes out too: it was delivered.
    let out = m.filter(vec![resolved("A", "x", 12_000)], &[], 12_000, 12_000);
    assert_eq!(
        sent(&out),
        vec![("A".into(), Status::Resolved, Kind::Resolved)]
    );
}

#[test]
fn an_alert_that_fires_and_resolves_while_silenced_sends_nothing() {
    let mut m = Muter {
        created: vec![silence("A", 0, 10_000)],
        ..Muter::default()
    };
    let l = labels("x");
    let on = [("A", &l, Severity::Warning)];
    assert!(
        m.filter(vec![firing("A", "x", 1000)], &on, 1000, 1000)
            .is_empty()
    );
    assert!(
        m.filter(vec![resolved("A", "x", 2000)], &[], 2000, 2000)
            .is_empty()
    );
    assert!(m.filter(vec![], &[], 20_000, 20_000).is_empty());
    assert!(m.state.held.is_empty() && m.state.delivered.is_empty());
}

#[test]
fn a_delivered_alert_silenced_later_sends_its_resolve_but_no_reminder() {
    let mut m = Muter::default();
    let l = labels("x");
    let on = [("A", &l, Severity::Warning)];
    assert_eq!(m.filter(vec![firing("A", "x", 0)], &on, 0, 0).len(), 1);
    m.created.push(silence("A", 1000, 10_000));
    let reminder = note("A", "x", Status::Firing, Kind::Repeat, 2000);
    assert!(m.filter(vec![reminder], &on, 2000, 2000).is_empty());
    // The silence ends: the receiver already knows; the held reminder is not sent.
    assert!(m.filter(vec![], &on, 10_000, 10_000).is_empty());
    // Resolved during another silence: still sent, the receiver must not keep it open.
    m.created.push(silence("A", 11_000, 20_000));
    let out = m.filter(vec![resolved("A", "x", 12_000)], &[], 12_000, 12_000);
    assert_eq!(
        sent(&out),
        vec![("A".into(), Status::Resolved, Kind::Resolved)]
    );
}

#[test]
fn an_inhibited_alert_waits_for_its_source_to_resolve() {
    let mut m = Muter {
        inhibit: vec![
            InhibitRule::new(
                &BTreeMap::from([("alert".to_string(), "RedisDown".to_string())]),
                &BTreeMap::from([("alert".to_string(), "Redis.+".to_string())]),
                vec!["target".into()],
            )
            .unwrap(),
        ],
        ..Muter::default()
    };
    let cache = labels("cache");
    let other = labels("other");
    let both = [
        ("RedisDown", &cache, Severity::Critical),
        ("RedisHitRatioLow", &cache, Severity::Warning),
        ("RedisHitRatioLow", &other, Severity::Warning),
    ];
    let mut down = firing("RedisDown", "cache", 0);
    down.severity = Severity::Critical;
    let out = m.filter(
        vec![
            down,
            firing("RedisHitRatioLow", "cache", 0),
            firing("RedisHitRatioLow", "other", 0),
        ],
        &both,
        0,
        0,
    );
    // The source and the other target's alert go; the explained one waits.
    assert_eq!(
        sent(&out),
        vec![
            ("RedisDown".into(), Status::Firing, Kind::Firing),
            ("RedisHitRatioLow".into(), Status::Firing, Kind::Firing)
        ]
    );
    assert_eq!(out[1].labels, other);
    assert_eq!(
        m.reasons("RedisHitRatioLow", &cache, Severity::Warning, &both, 0),
        vec![Reason::Inhibition {
            source: "RedisDown".into()
        }]
    );
    // The source resolves while the explained alert still fires: it is delivered now.
    let still = [
        ("RedisHitRatioLow", &cache, Severity::Warning),
        ("RedisHitRatioLow", &other, Severity::Warning),
    ];
    let out = m.filter(
        vec![resolved("RedisDown", "cache", 5000)],
        &still,
        5000,
        5000,
    );
    assert_eq!(
        sent(&out),
        vec![
            ("RedisDown".into(), Status::Resolved, Kind::Resolved),
            ("RedisHitRatioLow".into(), Status::Firing, Kind::Firing)
        ]
    );
    assert_eq!(out[1].labels, cache);
}

#[test]
fn held_notifications_of_alerts_that_no_longer_fire_are_dropped() {
    let mut m = Muter {
        created: vec![silence("A", 0, 1000)],
        ..Muter::default()
    };
    let l = labels("x");
    assert!(
        m.filter(
            vec![firing("A", "x", 0)],
            &[("A", &l, Severity::Warning)],
            0,
            0
        )
        .is_empty()
    );
    // The rule went away on a reload: no resolve came, and nothing fires.
    assert!(m.filter(vec![], &[], 2000, 2000).is_empty());
    assert!(m.state.held.is_empty());
}

fn window(schedule: &str, tz: &str, hours: i64) -> MaintenanceWindow {
    MaintenanceWindow {
        name: "backup".into(),
        matchers: Matchers::parse(
            &BTreeMap::from([("alert".to_string(), "HostDisk.*".to_string())]),
            false,
        )
        .unwrap(),
        schedule: crate::schedule::Cron::parse(schedule, tz).unwrap(),
        duration_ms: hours * 3_600_000,
    }
}

fn t(text: &str) -> Millis {
    crate::clock::parse_rfc3339(text).unwrap()
}

#[test]
fn a_window_covers_its_hours_in_its_time_zone_across_daylight_saving() {
    let utc = window("0 2 * * *", "UTC", 1);
    assert!(!utc.covers(t("2026-06-01T01:59:59Z")));
    assert!(utc.covers(t("2026-06-01T02:00:00Z")));
    assert!(utc.covers(t("2026-06-01T02:59:59Z")));
    assert!(!utc.covers(t("2026-06-01T03:00:00Z")));
    let berlin = window("0 2 * * *", "Europe/Berlin", 1);
    // Summer: 02:00 in Berlin is 00:00Z.
    assert!(berlin.covers(t("2026-06-01T00:30:00Z")));
    assert!(!berlin.covers(t("2026-06-01T02:30:00Z")));
    // Winter: 01:00Z.
    assert!(berlin.covers(t("2026-01-15T01:30:00Z")));
    // The night clocks skip 02:00-03:00 (29 March 2026): the window opens at 03:00
    // local, 01:00Z, and still lasts an hour.
    assert!(!berlin.covers(t("2026-03-29T00:30:00Z")));
    assert!(berlin.covers(t("2026-03-29T01:30:00Z")));
    assert!(!berlin.covers(t("2026-03-29T02:00:00Z")));
}

#[test]
fn a_maintenance_window_holds_and_releases_when_it_closes() {
    let mut m = Muter {
        windows: vec![window("0 2 * * *", "UTC", 1)],
        ..Muter::default()
    };
    let l = labels("x");
    let on = [("HostDiskFull", &l, Severity::Warning)];
    let open = t("2026-06-01T02:10:00Z");
    assert!(
        m.filter(vec![firing("HostDiskFull", "x", 0)], &on, open, 0)
            .is_empty()
    );
    assert_eq!(
        m.reasons("HostDiskFull", &l, Severity::Warning, &on, open),
        vec![Reason::Maintenance {
            name: "backup".into()
        }]
    );
    // Other alerts are not in the window.
    let both = [
        ("HostDiskFull", &l, Severity::Warning),
        ("HostCpuHigh", &l, Severity::Warning),
    ];
    assert_eq!(
        m.filter(vec![firing("HostCpuHigh", "x", 0)], &both, open, 0)
            .len(),
        1
    );
    let out = m.filter(vec![], &on, t("2026-06-01T03:00:00Z"), 5);
    assert_eq!(
        sent(&out),
        vec![("HostDiskFull".into(), Status::Firing, Kind::Firing)]
    );
}

#[test]
fn an_escalation_held_by_a_silence_is_told_when_it_ends() {
    let mut m = Muter::default();
    let l = labels("x");
    assert_eq!(
        m.filter(
            vec![firing("A", "x", 0)],
            &[("A", &l, Severity::Warning)],
            0,
            0
        )
        .len(),
        1
    );
    m.created.push(silence("A", 1000, 10_000));
    let mut worse = note("A", "x", Status::Firing, Kind::Escalated, 2000);
    worse.severity = Severity::Critical;
    worse.previous = Some(Severity::Warning);
    let on = [("A", &l, Severity::Critical)];
    assert!(m.filter(vec![worse], &on, 2000, 2000).is_empty());
    let out = m.filter(vec![], &on, 10_000, 10_000);
    assert_eq!(
        sent(&out),
        vec![("A".into(), Status::Firing, Kind::Escalated)]
    );
    assert_eq!(out[0].severity, Severity::Critical);
    assert_eq!(out[0].previous, Some(Severity::Warning));
}
