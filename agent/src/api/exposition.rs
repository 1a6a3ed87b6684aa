//! Prometheus text exposition (format 0.0.4) of the store's present series.
//!
//! Rendered straight from the store, the same data rules read, so `/metrics` and alerts can
//! never disagree. Series come out grouped by metric (the store is ordered by name), each
//! group with `# HELP` and `# TYPE` from the catalogue, and every sample carries `host`.

use std::fmt::Write;

use crate::sample::Part;
use crate::store::Store;

/// Content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders every present series of `store`, labelled with `host`.
pub fn render(store: &Store, host: &str) -> String {
    let mut out = String::with_capacity(store.len() * 96);
    let mut current: Option<&str> = None;
    let host = escape_label_value(host);
    for (key, series) in store.present() {
        let metric = series.metric;
        if current != Some(metric.name) {
            current = Some(metric.name);
            let _ = writeln!(out, "# HELP {} {}", metric.name, escape_help(metric.help));
            let _ = writeln!(out, "# TYPE {} {}", metric.name, metric.kind.as_str());
        }
        let suffix = match key.part {
            Part::Value => "",
            Part::Bucket(_) => "_bucket",
            Part::Sum => "_sum",
            Part::Count => "_count",
        };
        let _ = write!(out, "{}{suffix}{{host=\"{}\"", metric.name, host);
        for (name, value) in &key.labels {
            let _ = write!(out, ",{}=\"{}\"", name, escape_label_value(value));
        }
        if let Part::Bucket(bits) = key.part {
            out.push_str(",le=\"");
            write_value(&mut out, f64::from_bits(bits));
            out.push('"');
        }
        out.push_str("} ");
        write_value(&mut out, series.latest.1);
        out.push('\n');
    }
    out
}

/// Writes a sample value the way Prometheus parses it.
fn write_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Escapes `\`, `"` and newlines in a label value.
fn escape_label_value(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return v.into();
    }
    let mut s = String::with_capacity(v.len() + 4);
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s.into()
}

/// Escapes `\` and newlines in help text.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{CPU_SECONDS_TOTAL, FILESYSTEM_USAGE_RATIO, LOAD1};
    use crate::collect::Sample;

    #[test]
    fn groups_by_metric_with_help_type_and_host() {
        let mut store = Store::default();
        store.apply(
            "cpu",
            vec![
                Sample::with_labels(&CPU_SECONDS_TOTAL, [("mode", "user".into())], 12.5),
                Sample::with_labels(&CPU_SECONDS_TOTAL, [("mode", "idle".into())], 100.0),
            ],
            1,
        );
        store.apply("load", vec![Sample::new(&LOAD1, 0.25)], 1);
        let text = render(&store, "web-1");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            format!(
                "# HELP lookout_cpu_seconds_total {}",
                CPU_SECONDS_TOTAL.help
            )
        );
        assert_eq!(lines[1], "# TYPE lookout_cpu_seconds_total counter");
        assert_eq!(
            lines[2],
            "lookout_cpu_seconds_total{host=\"web-1\",mode=\"idle\"} 100"
        );
        assert_eq!(
            lines[3],
            "lookout_cpu_seconds_total{host=\"web-1\",mode=\"user\"} 12.5"
        );
        assert_eq!(lines[5], "# TYPE lookout_load1 gauge");
        assert_eq!(lines[6], "lookout_load1{host=\"web-1\"} 0.25");
        assert_eq!(lines.len(), 7);
    }

    #[test]
    fn label_values_and_special_floats_are_escaped() {
        let mut store = Store::default();
        store.apply(
            "filesystem",
            vec![Sample::with_labels(
                &FILESYSTEM_USAGE_RATIO,
                [
                    ("mountpoint", "/mnt/a \"b\"\\c\nd".into()),
                    ("device", "x".into()),
                    ("fstype", "ext4".into()),
                ],
                f64::NAN,
            )],
            1,
        );
        store.apply("load", vec![Sample::new(&LOAD1, f64::INFINITY)], 1);
        let text = render(&store, "h\"1");
        assert!(
            text.contains(r#"mountpoint="/mnt/a \"b\"\\c\nd""#),
            "{text}"
        );
        assert!(text.contains(r#"{host="h\"1",mountpoint"#), "{text}");
        assert!(
            text.contains("} NaN\n") && text.contains("} +Inf\n"),
            "{text}"
        );
    }
}
