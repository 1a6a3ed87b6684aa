//! The shipped Grafana dashboards as the tests read them: the files under `dashboards/`,
//! their panels and queries, and Grafana's variables substituted the way Grafana would.

use std::path::PathBuf;

use serde_json::Value;

/// `dashboards/`, next to `tests/`.
pub fn dashboards_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../dashboards")
        .canonicalize()
        .expect("dashboards/ next to tests/")
}

/// One dashboard file, parsed.
pub struct Dashboard {
    /// The file name, e.g. `host-overview.json`.
    pub file: String,
    /// Its JSON model.
    pub json: Value,
}

/// Every `dashboards/*.json`, sorted by name; a file that does not parse fails the test.
pub fn load_dashboards() -> Vec<Dashboard> {
    let dir = dashboards_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read dashboards/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let file = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(path).expect("read dashboard");
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("dashboards/{file} is not valid JSON: {e}"));
            Dashboard { file, json }
        })
        .collect()
}

/// Every panel of a dashboard, the panels of collapsed rows included, rows themselves
/// included (callers tell them apart by `type`).
pub fn all_panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

/// Whether a panel is a row (layout only).
pub fn is_row(panel: &Value) -> bool {
    panel["type"] == "row"
}

/// A panel's title.
pub fn title(panel: &Value) -> &str {
    panel["title"].as_str().unwrap_or("<untitled>")
}

/// The `expr` of each target of a panel (empty string when missing).
pub fn exprs(panel: &Value) -> Vec<&str> {
    panel["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t["expr"].as_str().unwrap_or(""))
        .collect()
}

/// One query of one panel.
#[derive(Debug, Clone)]
pub struct PanelQuery {
    /// `<file> / <panel title>`.
    pub panel: String,
    /// The query as the dashboard has it, Grafana variables and all.
    pub expr: String,
}

/// Every query of every panel (rows excluded) of every dashboard, in file and panel order.
pub fn panel_queries() -> Vec<PanelQuery> {
    let mut out = Vec::new();
    for d in load_dashboards() {
        for panel in all_panels(&d.json).into_iter().filter(|p| !is_row(p)) {
            for expr in exprs(panel) {
                out.push(PanelQuery {
                    panel: format!("{} / {}", d.file, title(panel)),
                    expr: expr.to_string(),
                });
            }
        }
    }
    out
}

/// The values Grafana gives its variables for one query: the selected host and the
/// intervals it computes from the time range, the panel width and the data source's
/// scrape interval (`timeInterval`).
#[derive(Debug, Clone)]
pub struct GrafanaVars<'a> {
    /// `$host`: one selected host.
    pub host: &'a str,
    /// `$__rate_interval`: max(`$__interval` + scrape interval, 4 × scrape interval).
    pub rate_interval: &'a str,
    /// `$__interval`: the step of a range query.
    pub interval: &'a str,
    /// `$__range`: the length of the time range.
    pub range: &'a str,
}

/// `expr` with Grafana's variables (both the `$x` and the `${x}` spelling) replaced by `vars`.
pub fn substitute(expr: &str, vars: &GrafanaVars) -> String {
    let mut s = expr.to_string();
    for (var, value) in [
        ("${__rate_interval}", vars.rate_interval),
        ("$__rate_interval", vars.rate_interval),
        ("${__interval}", vars.interval),
        ("$__interval", vars.interval),
        ("${__range}", vars.range),
        ("$__range", vars.range),
        ("${host}", vars.host),
        ("$host", vars.host),
    ] {
        s = s.replace(var, value);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_both_spellings_and_leaves_no_variable() {
        let vars = GrafanaVars {
            host: "web-1",
            rate_interval: "6s",
            interval: "5s",
            range: "2m",
        };
        let expr = r#"rate(x{host=~"$host"}[$__rate_interval]) + rate(y{host=~"${host}"}[${__interval}]) * $__range"#;
        assert_eq!(
            substitute(expr, &vars),
            r#"rate(x{host=~"web-1"}[6s]) + rate(y{host=~"web-1"}[5s]) * 2m"#
        );
    }

    #[test]
    fn every_shipped_panel_query_is_listed() {
        let queries = panel_queries();
        assert!(queries.len() > 40, "only {} panel queries", queries.len());
        assert!(queries.iter().all(|q| !q.expr.is_empty()));
    }
}
