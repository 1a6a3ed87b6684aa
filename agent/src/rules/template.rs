//! Summary and description templates (minijinja).
//!
//! A template sees `value`, `labels` (with `host`), `threshold`, `severity`, `host` and
//! `alert`, and has filters for the units lookout exports: `percent` (0.734 -> `73.4%`),
//! `bytes` (1288490188.8 -> `1.2 GiB`), `seconds` (0.532 -> `532ms`) and `humanize`
//! (1234567 -> `1.23M`). Templates are syntax-checked when rules load; a template that still
//! fails at render time (an undefined filter argument, say) yields its source text and the
//! error, never a lost notification.

use std::sync::OnceLock;

use minijinja::value::{Serde, Value};
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use super::LabelSet;

/// What a template can refer to.
#[derive(Debug, Clone, Serialize)]
pub struct Context<'a> {
    /// Alert name.
    pub alert: &'a str,
    /// The value that decided the notification, if any.
    pub value: Option<f64>,
    /// The threshold of the severity in question.
    pub threshold: Option<f64>,
    /// `warning` or `critical`.
    pub severity: Option<&'a str>,
    /// The host label.
    pub host: &'a str,
    /// The instance labels, `host` included.
    pub labels: &'a LabelSet,
}

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.add_filter("percent", |v: f64| format!("{}%", trim(v * 100.0, 1)));
        env.add_filter("bytes", bytes);
        env.add_filter("seconds", seconds);
        env.add_filter("humanize", humanize);
        env
    })
}

/// `v` with at most `decimals` decimals, trailing zeros dropped.
fn trim(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn bytes(v: f64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = v;
    let mut unit = UNITS[0];
    for next in &UNITS[1..] {
        if value.abs() < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{} {unit}", trim(value, 1))
}

fn seconds(v: f64) -> String {
    if v.abs() < 1.0 {
        format!("{}ms", trim(v * 1000.0, 1))
    } else if v.abs() < 120.0 {
        format!("{}s", trim(v, 2))
    } else if v.abs() < 7200.0 {
        format!("{}m", trim(v / 60.0, 1))
    } else {
        format!("{}h", trim(v / 3600.0, 1))
    }
}

fn humanize(v: f64) -> String {
    const UNITS: [(f64, &str); 4] = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    for (scale, unit) in UNITS {
        if v.abs() >= scale {
            return format!("{}{unit}", trim(v / scale, 2));
        }
    }
    trim(v, 3)
}

/// Checks a template's syntax; the error says what and where in the template.
pub fn check(source: &str) -> Result<(), String> {
    environment()
        .template_from_str(source)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Renders `source`; on a render error, the source followed by the error.
pub fn render(source: &str, ctx: &Context<'_>) -> String {
    match environment().render_str(source, Value::from(Serde(ctx))) {
        Ok(text) => text,
        Err(e) => format!("{source} (template error: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(labels: &LabelSet) -> Context<'_> {
        Context {
            alert: "HostCpuHigh",
            value: Some(0.734),
            threshold: Some(0.7),
            severity: Some("warning"),
            host: "web-1",
            labels,
        }
    }

    #[test]
    fn renders_values_labels_and_filters() {
        let labels = LabelSet::from([
            ("host".into(), "web-1".into()),
            ("mountpoint".into(), "/data".into()),
        ]);
        let rows = [
            // (template, expected) — expectations written from the filter definitions
            (
                "CPU at {{ value | percent }} on {{ labels.host }}",
                "CPU at 73.4% on web-1",
            ),
            (
                "{{ labels.mountpoint }} over {{ threshold | percent }}",
                "/data over 70%",
            ),
            ("{{ 1288490188.8 | bytes }}", "1.2 GiB"),
            (
                "{{ 0.532 | seconds }} {{ 2.5 | seconds }} {{ 600 | seconds }}",
                "532ms 2.5s 10m",
            ),
            ("{{ 1234567 | humanize }}", "1.23M"),
            (
                "{{ severity }} {{ alert }} {{ host }}",
                "warning HostCpuHigh web-1",
            ),
            ("{{ labels.nope }}|", "|"), // an absent label renders empty
        ];
        for (source, expected) in rows {
            assert!(check(source).is_ok(), "{source}");
            assert_eq!(render(source, &ctx(&labels)), expected, "{source}");
        }
    }

    #[test]
    fn syntax_errors_are_reported_and_render_errors_never_lose_the_text() {
        let err = check("CPU {{ value | percent ").unwrap_err();
        assert!(
            err.contains("syntax error") || err.contains("unexpected"),
            "{err}"
        );
        let labels = LabelSet::new();
        let text = render("{{ value | nosuchfilter }}", &ctx(&labels));
        assert!(
            text.starts_with("{{ value | nosuchfilter }} (template error:"),
            "{text}"
        );
    }
}
