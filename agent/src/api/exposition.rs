//! Prometheus text exposition (format 0.0.4) of the store's present series.
//!
//! Rendered straight from the store, the same data rules read, so `/metrics` and alerts can
//! never disagree. Series come out grouped by metric (the store is ordered by name), each
//! group with `# HELP` and `# TYPE` from the catalogue, and every sample carries `host`.

use std::fmt::Write;

use crate::sample::Part;
use crate::store::{SeriesKey, Store};

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

/// The series `key` names, in exposition syntax without `host`: `name{label="value",...}`
/// with the labels in the order `/metrics` shows them and the same escapes, or the bare name
/// without labels. The live stream and the console name every series this way. Histogram
/// parts get their suffix (`_bucket` with `le` last, `_sum`, `_count`).
pub fn series_key(key: &SeriesKey) -> String {
    let suffix = match key.part {
        Part::Value => "",
        Part::Bucket(_) => "_bucket",
        Part::Sum => "_sum",
        Part::Count => "_count",
    };
    let mut out = String::with_capacity(key.name.len() + suffix.len() + 24 * key.labels.len());
    out.push_str(key.name);
    out.push_str(suffix);
    let le = match key.part {
        Part::Bucket(bits) => Some(f64::from_bits(bits)),
        _ => None,
    };
    if key.labels.is_empty() && le.is_none() {
        return out;
    }
    out.push('{');
    for (i, (name, value)) in key.labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}=\"{}\"", name, escape_label_value(value));
    }
    if let Some(le) = le {
        if !key.labels.is_empty() {
            out.push(',');
        }
        out.push_str("le=\"");
        write_value(&mut out, le);
        out.push('"');
    }
    out.push('}');
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
    fn a_series_key_is_its_exposition_without_host() {
        let mut store = Store::default();
        store.apply(
            "filesystem",
            vec![Sample::with_labels(
                &FILESYSTEM_USAGE_RATIO,
                [
                    ("mountpoint", "/mnt/\"q\"\\".into()),
                    ("device", "/dev/vda1".into()),
                    ("fstype", "ext4".into()),
                ],
                0.5,
            )],
            1,
        );
        store.apply("load", vec![Sample::new(&LOAD1, 0.25)], 1);
        let text = render(&store, "h");
        let keys: Vec<String> = store.present().map(|(k, _)| series_key(k)).collect();
        assert_eq!(
            keys,
            [
                r#"lookout_filesystem_usage_ratio{mountpoint="/mnt/\"q\"\\",device="/dev/vda1",fstype="ext4"}"#,
                "lookout_load1",
            ]
        );
        // The same text as /metrics, `host="h",` (or `{host="h"}`) taken out.
        for key in &keys {
            let line = text
                .lines()
                .find(|l| {
                    l.replace("host=\"h\",", "")
                        .replace("{host=\"h\"}", "")
                        .starts_with(&format!("{key} "))
                })
                .unwrap_or_else(|| panic!("{key} not in\n{text}"));
            assert!(!line.is_empty());
        }
        let bucket = SeriesKey {
            name: "lookout_probe_duration_seconds_hist",
            labels: vec![("probe", "a".into())],
            part: Part::bucket(0.5),
        };
        assert_eq!(
            series_key(&bucket),
            r#"lookout_probe_duration_seconds_hist_bucket{probe="a",le="0.5"}"#
        );
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
