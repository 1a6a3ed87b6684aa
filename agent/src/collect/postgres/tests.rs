//! The collector against no server, and its configuration section.

use std::time::Duration;

use super::*;
use crate::collect::{AsyncCollector, Targets};
use crate::config::check_section;

fn targets(yaml: &str) -> Result<Vec<PostgresTarget>, String> {
    check_section::<Targets<PostgresTarget>>(yaml, "collect.postgres")
        .map_err(|problems| format!("{problems:?}"))
}

#[test]
fn an_entry_takes_the_documented_defaults() {
    let t = targets("- {name: main, url: \"postgres://lookout@127.0.0.1:5432/app\"}\n").unwrap();
    assert_eq!(t.len(), 1);
    let t = &t[0];
    assert_eq!(t.schedule.interval, Duration::from_secs(30));
    assert_eq!(t.schedule.timeout, Duration::from_secs(5));
    assert_eq!(t.slow_query, Duration::from_secs(5));
    assert_eq!(t.tls, TlsMode::Prefer);
    assert_eq!(t.min_blocks, 100);
    assert!(t.password.is_none() && t.ca_file.is_none());
}

#[test]
fn bad_entries_are_problems_naming_the_key() {
    for (yaml, key, words) in [
        ("- {name: a}\n", "collect.postgres[0]", "`url` is required"),
        (
            "- {name: a, url: \"mysql://h/db\"}\n",
            "collect.postgres[0].url",
            "postgres://",
        ),
        (
            "- {name: a, url: \"postgres://h:99999/db\"}\n",
            "collect.postgres[0].url",
            "invalid URL",
        ),
        (
            "- {name: a, url: \"postgres://h/db?sslmode=require\"}\n",
            "collect.postgres[0].url",
            "`tls`",
        ),
        (
            "- {name: a, url: \"postgres://h/db\", tls: verify}\n",
            "collect.postgres[0].tls",
            "disable, prefer or require",
        ),
        (
            "- {name: a, url: \"postgres://h/db\", slow_query: 1ms}\n",
            "collect.postgres[0].slow_query",
            "out of range",
        ),
        (
            "- {name: a, url: \"postgres://h/db\", min_blocks: 0}\n",
            "collect.postgres[0].min_blocks",
            "at least 1",
        ),
        (
            "- {name: a, url: \"postgres://h/db\", password: hunter2}\n",
            "collect.postgres[0].password",
            "${ENV_NAME}",
        ),
        (
            "- {name: a, url: \"postgres://h/db\", tls: disable, ca_file: /etc/hostname}\n",
            "collect.postgres[0].ca_file",
            "tls: disable",
        ),
        (
            "- {name: a, url: \"postgres://h/db\", ca_file: /nonexistent.pem}\n",
            "collect.postgres[0].ca_file",
            "cannot read",
        ),
        (
            "- {name: a, url: \"postgres://h/db\", ca_file: /etc/hostname}\n",
            "collect.postgres[0].ca_file",
            "no PEM certificate",
        ),
        (
            "- {name: a, url: \"postgres://h/db\"}\n- {name: a, url: \"postgres://g/db\"}\n",
            "collect.postgres[1].name",
            "duplicate",
        ),
    ] {
        let problems = targets(yaml).unwrap_err();
        assert!(
            problems.contains(key) && problems.contains(words),
            "{yaml}: {problems}"
        );
        assert!(!problems.contains("hunter2"), "{problems}");
    }
}

#[test]
fn a_password_is_never_shown() {
    let problems =
        targets("- {name: a, url: \"postgres://u:s3cret@h/db\", password_file: /etc/hostname}\n")
            .unwrap_err();
    assert!(problems.contains("one place only"), "{problems}");
    assert!(!problems.contains("s3cret"), "{problems}");
    let t = targets("- {name: a, url: \"postgres://u:s3cret@h:5/db\"}\n").unwrap();
    let debug = format!(
        "{:?}",
        PostgresCollector::new(Arc::new(PgLink::new(t[0].clone())))
    );
    assert!(!debug.contains("s3cret"), "{debug}");
}

#[tokio::test]
async fn an_unreachable_server_is_up_zero_with_the_reason() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://lookout:s3cret@127.0.0.1:{port}/app");
    let mut t = targets(&format!("- {{name: main, url: \"{url}\", timeout: 1s}}\n")).unwrap();
    let mut c = PostgresCollector::new(Arc::new(PgLink::new(t.remove(0))));
    assert_eq!(c.name(), "postgres:main");
    for _ in 0..2 {
        let Err(CollectError::Target { samples, message }) = c.collect(Instant::now()).await else {
            panic!("an unreachable server is a target failure");
        };
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].metric.name, "lookout_postgres_up");
        assert_eq!(samples[0].value, 0.0);
        assert!(message.contains("Connection refused"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    }
}
