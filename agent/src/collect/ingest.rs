//! Request timings pushed by applications (`POST /api/v1/observations`).
//!
//! [`Ingest`] is the shared aggregate: the HTTP handler validates a batch and calls
//! [`Ingest::record`]; the `ingest` collector turns the aggregate into samples on its
//! interval ([`Ingest::samples`]), so the window figures move with time even when nothing
//! is pushed. Per route and method it keeps:
//! - a cumulative histogram (`lookout_api_request_duration_seconds`) and counters by status
//!   class (`lookout_api_requests_total`), which never go backwards;
//! - a sliding [`Window`] from which p50/p95/p99, the average, the error ratio (5xx / all)
//!   and requests per second are computed. Quantiles, average and error ratio need
//!   `min_requests` requests in the window and are absent below (an idle route is unknown,
//!   not healthy nor failing); the rate is always there.
//!
//! Cardinality is bounded: at most `max_routes` distinct routes are tracked; later routes
//! are counted together under route `_overflow` and in `lookout_ingest_route_overflow_total`,
//! so totals, rates and error ratios stay right while the series count cannot explode.
//! Methods are the nine of RFC 9110 plus `PATCH`; any other is counted as `OTHER`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::histogram::{Histogram, LATENCY_BUCKETS};
use super::window::Window;
use super::{CollectError, Collector, Labels, Sample};
use crate::catalogue::{self, Metric};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{Context, Job, Kind, Schedule, check_schedule};
use crate::config::units::{format_size, parse_size};
use crate::config::{Checker, Section, Text};

/// The route label of observations past `max_routes`.
pub const OVERFLOW_ROUTE: &str = "_overflow";

/// Methods kept as they are (upper case); any other becomes [`OTHER_METHOD`].
pub const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];
/// The method label of methods not in [`METHODS`].
pub const OTHER_METHOD: &str = "OTHER";

/// Quantiles exported per window, with their metrics.
const QUANTILES: [(f64, &Metric); 3] = [
    (0.5, &catalogue::API_LATENCY_P50_SECONDS),
    (0.95, &catalogue::API_LATENCY_P95_SECONDS),
    (0.99, &catalogue::API_LATENCY_P99_SECONDS),
];

/// Why a batch was refused, for `lookout_ingest_rejected_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not JSON, or cut short (400).
    Malformed,
    /// Over `max_body` (413).
    TooLarge,
    /// JSON, but a field is missing or wrong (422).
    Invalid,
    /// Missing or wrong bearer token (401).
    Unauthorized,
}

impl Rejection {
    const ALL: [Rejection; 4] = [
        Rejection::Malformed,
        Rejection::TooLarge,
        Rejection::Invalid,
        Rejection::Unauthorized,
    ];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::TooLarge => "too_large",
            Rejection::Invalid => "invalid",
            Rejection::Unauthorized => "unauthorized",
        }
    }
}

/// One validated request timing.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation<'a> {
    /// Route template (`/users/{id}`), not the raw path.
    pub route: Cow<'a, str>,
    /// A method of [`METHODS`] or [`OTHER_METHOD`] (see [`method_label`]).
    pub method: &'static str,
    /// HTTP status, 100..=599.
    pub status: u16,
    /// Duration in seconds, finite and `>= 0`.
    pub duration: f64,
}

/// The label value of HTTP method `method` (any case): itself in upper case if it is one of
/// [`METHODS`], else [`OTHER_METHOD`].
pub fn method_label(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| m.eq_ignore_ascii_case(method))
        .copied()
        .unwrap_or(OTHER_METHOD)
}

/// The figures of one route and method.
#[derive(Debug, Clone)]
struct Series {
    histogram: Histogram,
    /// Requests per status class 1xx..5xx.
    classes: [u64; 5],
    window: Window,
}

impl Series {
    fn new(window: Duration) -> Self {
        Series {
            histogram: Histogram::new(LATENCY_BUCKETS),
            classes: [0; 5],
            window: Window::new(window),
        }
    }
}

#[derive(Debug)]
struct Inner {
    enabled: bool,
    max_body: u64,
    window: Duration,
    max_routes: usize,
    min_requests: u64,
    /// When the current window began filling (start-up or a change of `window`), in
    /// milliseconds since `Ingest::origin`.
    since_ms: u64,
    /// Route -> method -> series. A route has a handful of methods: a short list beats a map.
    routes: HashMap<Box<str>, Vec<(&'static str, Series)>>,
    overflow: u64,
    rejected: [u64; 4],
}

/// The shared aggregate of pushed observations. Every call takes one short lock.
#[derive(Debug)]
pub struct Ingest {
    origin: Instant,
    inner: Mutex<Inner>,
}

impl Ingest {
    /// An empty aggregate configured by `config`, its clock starting at `origin`.
    pub fn new(config: &IngestConfig, origin: Instant) -> Self {
        Ingest {
            origin,
            inner: Mutex::new(Inner {
                enabled: config.enabled,
                max_body: config.max_body,
                window: config.window,
                max_routes: config.max_routes,
                min_requests: config.min_requests,
                since_ms: 0,
                routes: HashMap::new(),
                overflow: 0,
                rejected: [0; 4],
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update leaves `Inner` consistent, so a poisoned lock still holds valid data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_millis()).unwrap_or(u64::MAX)
    }

    /// Applies a new configuration (reload). Counters and histograms carry on; a changed
    /// `window` starts the windows afresh. A lower `max_routes` keeps the routes already
    /// tracked.
    pub fn configure(&self, config: &IngestConfig, now: Instant) {
        let now_ms = self.millis(now);
        let mut inner = self.lock();
        if inner.window != config.window {
            inner.window = config.window;
            inner.since_ms = now_ms;
            for series in inner.routes.values_mut().flatten() {
                series.1.window = Window::new(config.window);
            }
        }
        inner.enabled = config.enabled;
        inner.max_body = config.max_body;
        inner.max_routes = config.max_routes;
        inner.min_requests = config.min_requests;
    }

    /// The largest body accepted, or `None` when ingestion is disabled.
    pub fn max_body(&self) -> Option<u64> {
        let inner = self.lock();
        inner.enabled.then_some(inner.max_body)
    }

    /// Counts a refused batch.
    pub fn reject(&self, why: Rejection) {
        let mut inner = self.lock();
        if let Some(n) = inner.rejected.get_mut(why as usize) {
            *n += 1;
        }
    }

    /// Adds a validated batch observed at `now`; returns how many of its observations were
    /// counted under [`OVERFLOW_ROUTE`].
    pub fn record(&self, batch: &[Observation<'_>], now: Instant) -> u64 {
        let now_ms = self.millis(now);
        let mut guard = self.lock();
        let inner = &mut *guard;
        let mut overflowed = 0;
        for obs in batch {
            let methods = match inner.routes.get_mut(&*obs.route) {
                Some(methods) => methods,
                None => {
                    let tracked =
                        inner.routes.len() - usize::from(inner.routes.contains_key(OVERFLOW_ROUTE));
                    let route = if tracked < inner.max_routes {
                        &*obs.route
                    } else {
                        overflowed += 1;
                        OVERFLOW_ROUTE
                    };
                    inner.routes.entry(route.into()).or_default()
                }
            };
            let at = match methods.iter().position(|(m, _)| *m == obs.method) {
                Some(at) => at,
                None => {
                    methods.push((obs.method, Series::new(inner.window)));
                    methods.len() - 1
                }
            };
            if let Some((_, series)) = methods.get_mut(at) {
                series.histogram.observe(obs.duration);
                let class = usize::from(obs.status / 100).clamp(1, 5) - 1;
                if let Some(c) = series.classes.get_mut(class) {
                    *c += 1;
                }
                series.window.add(now_ms, obs.duration, obs.status >= 500);
            }
        }
        inner.overflow += overflowed;
        overflowed
    }

    /// Every sample at `now`: histograms and counters, window figures, self counters.
    pub fn samples(&self, now: Instant) -> Vec<Sample> {
        let now_ms = self.millis(now);
        let inner = self.lock();
        let qs = QUANTILES.map(|(q, _)| q);
        let mut out = Vec::new();
        for (route, methods) in &inner.routes {
            for (method, series) in methods {
                let labels: Labels =
                    vec![("route", route.to_string()), ("method", method.to_string())];
                out.extend(
                    series
                        .histogram
                        .samples(&catalogue::API_REQUEST_DURATION_SECONDS, &labels),
                );
                for (i, n) in series.classes.iter().enumerate().filter(|(_, n)| **n > 0) {
                    let mut with_class = labels.clone();
                    with_class.push(("status_class", format!("{}xx", i + 1)));
                    out.push(Sample::from_labels(
                        &catalogue::API_REQUESTS_TOTAL,
                        with_class,
                        *n as f64,
                    ));
                }
                let stats = series.window.read(now_ms, inner.since_ms, &qs);
                if stats.span_ms > 0 {
                    let rate = stats.count as f64 * 1000.0 / stats.span_ms as f64;
                    out.push(Sample::from_labels(
                        &catalogue::API_REQUESTS_PER_SECOND,
                        labels.clone(),
                        rate,
                    ));
                }
                if stats.count >= inner.min_requests {
                    for ((_, metric), value) in QUANTILES.iter().zip(&stats.quantiles) {
                        out.push(Sample::from_labels(metric, labels.clone(), *value));
                    }
                    let count = stats.count as f64;
                    out.push(Sample::from_labels(
                        &catalogue::API_LATENCY_AVG_SECONDS,
                        labels.clone(),
                        stats.sum / count,
                    ));
                    out.push(Sample::from_labels(
                        &catalogue::API_ERROR_RATIO,
                        labels,
                        stats.errors as f64 / count,
                    ));
                }
            }
        }
        out.push(Sample::new(
            &catalogue::INGEST_ROUTE_OVERFLOW_TOTAL,
            inner.overflow as f64,
        ));
        for why in Rejection::ALL {
            out.push(Sample::with_labels(
                &catalogue::INGEST_REJECTED_TOTAL,
                [("reason", why.as_str().to_string())],
                inner.rejected.get(why as usize).copied().unwrap_or(0) as f64,
            ));
        }
        out
    }
}

/// Exports an [`Ingest`] aggregate on an interval.
#[derive(Debug)]
pub struct IngestCollector {
    ingest: Arc<Ingest>,
    schedule: Schedule,
}

impl IngestCollector {
    /// A collector of `ingest` running on `schedule`.
    pub fn new(ingest: Arc<Ingest>, schedule: Schedule) -> Self {
        IngestCollector { ingest, schedule }
    }
}

impl Collector for IngestCollector {
    fn name(&self) -> &str {
        "ingest"
    }

    fn schedule(&self) -> Schedule {
        self.schedule
    }

    fn collect(&mut self, now: Instant) -> Result<Vec<Sample>, CollectError> {
        Ok(self.ingest.samples(now))
    }
}

// The `collect.ingest` section: what the configuration file says about this collector.

/// Default `collect.ingest.max_body`: 1 MiB.
pub const DEFAULT_MAX_BODY: u64 = 1 << 20;

/// Largest `collect.ingest.max_body`: 64 MiB (a body is held in memory while parsed).
pub const MAX_MAX_BODY: u64 = 64 << 20;

/// Default `collect.ingest.window`.
pub const DEFAULT_INGEST_WINDOW: Duration = Duration::from_secs(60);

/// Default `collect.ingest.max_routes`.
pub const DEFAULT_MAX_ROUTES: usize = 100;

/// Largest `collect.ingest.max_routes`: each route costs a few KiB and several series.
pub const MAX_MAX_ROUTES: usize = 10_000;

/// Default `collect.ingest.min_requests`.
pub const DEFAULT_MIN_REQUESTS: u64 = 10;

/// `collect.ingest` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIngest {
    /// Whether `POST /api/v1/observations` accepts data; absent: `true`.
    pub enabled: Option<bool>,
    /// How often the figures are exported; absent: `10s`.
    pub interval: Option<Text>,
    /// Largest body, a size such as `1MiB`, `512KiB` or `65536` (bytes); absent: `1MiB`.
    pub max_body: Option<Text>,
    /// Sliding window of the quantiles, average, error ratio and rate; absent: `1m`.
    pub window: Option<Text>,
    /// Distinct routes tracked; absent: 100.
    pub max_routes: Option<Spanned<i64>>,
    /// Requests a window needs before its quantiles, average and error ratio are
    /// reported; absent: 10.
    pub min_requests: Option<Spanned<i64>>,
}

/// `collect.ingest`: request timings that applications push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    /// Whether `POST /api/v1/observations` accepts data (else it answers 404).
    pub enabled: bool,
    /// How often the histograms and window figures are exported to the store.
    pub schedule: Schedule,
    /// Largest request body accepted, in bytes (larger: 413).
    pub max_body: u64,
    /// Length of the sliding window of the quantiles, average, error ratio and rate.
    pub window: Duration,
    /// Distinct routes tracked; observations of further routes count under `_overflow`.
    pub max_routes: usize,
    /// Requests a window needs before its quantiles, average and error ratio are reported.
    pub min_requests: u64,
}

/// The `collect.ingest` section.
#[derive(Debug)]
pub struct IngestSection;

impl Section for IngestSection {
    type Raw = RawIngest;
    type Value = IngestConfig;

    const DEFAULTS: &'static str = DEFAULTS_YAML;

    fn check(raw: &RawIngest, path: &str, c: &mut Checker<'_>) -> IngestConfig {
        let section = path;
        let max_body = match &raw.max_body {
            None => DEFAULT_MAX_BODY,
            Some(text) => match parse_size(text.value.trim()) {
                Ok(n) if (1..=MAX_MAX_BODY).contains(&n) => n,
                Ok(_) => {
                    c.report(
                        &format!("{section}.max_body"),
                        Some(&text.referenced),
                        format!(
                            "{} is out of range: must be between 1B and {}",
                            text.value,
                            format_size(MAX_MAX_BODY)
                        ),
                    );
                    DEFAULT_MAX_BODY
                }
                Err(why) => {
                    c.report(&format!("{section}.max_body"), Some(&text.referenced), why);
                    DEFAULT_MAX_BODY
                }
            },
        };
        let window = c
            .duration(
                &format!("{section}.window"),
                raw.window.as_ref(),
                DEFAULT_INGEST_WINDOW,
                Duration::from_secs(10),
                Some(Duration::from_secs(3600)),
            )
            .unwrap_or(DEFAULT_INGEST_WINDOW);
        let max_routes = c
            .count(
                &format!("{section}.max_routes"),
                raw.max_routes.as_ref(),
                DEFAULT_MAX_ROUTES as u64,
                1..=MAX_MAX_ROUTES as u64,
            )
            .try_into()
            .unwrap_or(DEFAULT_MAX_ROUTES);
        let min_requests = c.count(
            &format!("{section}.min_requests"),
            raw.min_requests.as_ref(),
            DEFAULT_MIN_REQUESTS,
            1..=1_000_000,
        );
        IngestConfig {
            enabled: raw.enabled.unwrap_or(true),
            schedule: check_schedule(c, path, raw.interval.as_ref(), None),
            max_body,
            window,
            max_routes,
            min_requests,
        }
    }
}

impl Kind for IngestSection {
    fn build(value: &IngestConfig, context: &Context) -> Vec<Job> {
        context.ingest.configure(value, context.now);
        if value.enabled {
            vec![Job::Blocking(Box::new(IngestCollector::new(
                context.ingest.clone(),
                value.schedule,
            )))]
        } else {
            Vec::new()
        }
    }
}

/// `lookout config default`'s text for this section.
const DEFAULTS_YAML: &str = r#"# Request timings pushed by applications to POST /api/v1/observations
# (lookout_api_*): a JSON array of {route, method, status, duration_seconds}.
ingest:
  # false: the endpoint answers 404 and nothing is exported.
  enabled: true
  # Time between exports of the histograms and window figures: from 1s to 1h.
  interval: 10s
  # Largest request body: bytes, or with a unit (KiB, MiB, KB, MB), at most 64MiB.
  # A larger body is refused with 413.
  max_body: 1MiB
  # Sliding window of p50/p95/p99, average, error ratio and requests per second:
  # from 10s to 1h. It moves in steps of window/12.
  window: 1m
  # Distinct routes tracked (1-10000); observations of further routes are counted
  # under route "_overflow" (lookout_ingest_route_overflow_total).
  max_routes: 100
  # Requests a window needs before its quantiles, average and error ratio are
  # exported (1-1000000); below, they are absent rather than noisy.
  min_requests: 10
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::check_section;

    #[test]
    fn section_reads_sizes_as_numbers_or_with_units() {
        let ingest = check_section::<IngestSection>(
            "{max_body: 65536, window: 5m, max_routes: 7, min_requests: 1}\n",
            "collect.ingest",
        )
        .expect("valid");
        assert_eq!(
            (
                ingest.max_body,
                ingest.window,
                ingest.max_routes,
                ingest.min_requests
            ),
            (65536, Duration::from_secs(300), 7, 1)
        );
        let problems = check_section::<IngestSection>("{max_body: 65MiB}\n", "collect.ingest")
            .expect_err("over the limit")
            .0;
        assert_eq!(
            problems[0].to_string(),
            "collect.ingest:1:12: collect.ingest.max_body: 65MiB is out of range: must be between 1B and 64MiB"
        );
        let defaults = IngestSection::builtin();
        assert_eq!(
            (
                defaults.enabled,
                defaults.max_body,
                defaults.window,
                defaults.max_routes
            ),
            (
                true,
                DEFAULT_MAX_BODY,
                DEFAULT_INGEST_WINDOW,
                DEFAULT_MAX_ROUTES
            )
        );
    }

    fn config(max_routes: usize, min_requests: u64) -> IngestConfig {
        IngestConfig {
            enabled: true,
            schedule: Schedule {
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(5),
            },
            max_body: 1 << 20,
            window: Duration::from_secs(60),
            max_routes,
            min_requests,
        }
    }

    fn obs<'a>(route: &'a str, method: &str, status: u16, duration: f64) -> Observation<'a> {
        Observation {
            route: Cow::Borrowed(route),
            method: method_label(method),
            status,
            duration,
        }
    }

    fn value(samples: &[Sample], metric: &Metric, labels: &[(&str, &str)]) -> Option<f64> {
        samples
            .iter()
            .find(|s| {
                s.metric.name == metric.name
                    && s.part == super::super::Part::Value
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|s| s.value)
    }

    #[test]
    fn methods_are_normalised() {
        assert_eq!(method_label("get"), "GET");
        assert_eq!(method_label("Patch"), "PATCH");
        assert_eq!(method_label("PROPFIND"), OTHER_METHOD);
    }

    #[test]
    fn window_figures_follow_a_known_batch() {
        let t0 = Instant::now();
        let ingest = Ingest::new(&config(100, 10), t0);
        // 100 requests over 20 s: durations 10, 20, ... 1000 ms; every tenth is a 503.
        let batch: Vec<_> = (1..=100u16)
            .map(|i| {
                let status = if i % 10 == 0 { 503 } else { 200 };
                obs("/users/{id}", "get", status, f64::from(i) / 100.0)
            })
            .collect();
        assert_eq!(ingest.record(&batch, t0 + Duration::from_secs(20)), 0);
        let s = ingest.samples(t0 + Duration::from_secs(20));
        let l = [("route", "/users/{id}"), ("method", "GET")];
        let p50 = value(&s, &catalogue::API_LATENCY_P50_SECONDS, &l).unwrap();
        let p95 = value(&s, &catalogue::API_LATENCY_P95_SECONDS, &l).unwrap();
        assert!((p50 - 0.5).abs() < 0.025, "{p50}");
        assert!((p95 - 0.95).abs() < 0.05, "{p95}");
        assert_eq!(value(&s, &catalogue::API_ERROR_RATIO, &l), Some(0.1));
        let avg = value(&s, &catalogue::API_LATENCY_AVG_SECONDS, &l).unwrap();
        assert!((avg - 0.505).abs() < 1e-9, "{avg}");
        assert_eq!(
            value(&s, &catalogue::API_REQUESTS_PER_SECOND, &l),
            Some(5.0)
        );
        let class = |c: &str| {
            value(
                &s,
                &catalogue::API_REQUESTS_TOTAL,
                &[l[0], l[1], ("status_class", c)],
            )
        };
        assert_eq!(
            (class("2xx"), class("5xx"), class("4xx")),
            (Some(90.0), Some(10.0), None)
        );
        // Two minutes later the window is empty: no estimates, rate 0, counters kept.
        let later = ingest.samples(t0 + Duration::from_secs(140));
        assert_eq!(value(&later, &catalogue::API_LATENCY_P95_SECONDS, &l), None);
        assert_eq!(value(&later, &catalogue::API_ERROR_RATIO, &l), None);
        assert_eq!(
            value(&later, &catalogue::API_REQUESTS_PER_SECOND, &l),
            Some(0.0)
        );
        let count = later
            .iter()
            .find(|x| {
                x.metric.name == catalogue::API_REQUEST_DURATION_SECONDS.name
                    && x.part == super::super::Part::Count
            })
            .map(|x| x.value);
        assert_eq!(count, Some(100.0));
    }

    #[test]
    fn too_few_requests_give_no_estimate() {
        let t0 = Instant::now();
        let ingest = Ingest::new(&config(100, 10), t0);
        let batch = vec![obs("/", "GET", 500, 0.1); 9];
        ingest.record(&batch, t0 + Duration::from_secs(1));
        let s = ingest.samples(t0 + Duration::from_secs(1));
        let l = [("route", "/"), ("method", "GET")];
        assert_eq!(value(&s, &catalogue::API_ERROR_RATIO, &l), None);
        assert_eq!(value(&s, &catalogue::API_LATENCY_P99_SECONDS, &l), None);
        ingest.record(&[obs("/", "GET", 200, 0.1)], t0 + Duration::from_secs(2));
        let s = ingest.samples(t0 + Duration::from_secs(2));
        assert_eq!(value(&s, &catalogue::API_ERROR_RATIO, &l), Some(0.9));
    }

    #[test]
    fn routes_past_the_cap_are_counted_under_overflow() {
        let t0 = Instant::now();
        let ingest = Ingest::new(&config(2, 1), t0);
        let batch = [
            obs("/a", "GET", 200, 0.1),
            obs("/b", "GET", 200, 0.1),
            obs("/c", "GET", 500, 0.1),
            obs("/d", "POST", 200, 0.1),
            obs("/a", "GET", 200, 0.1),
        ];
        assert_eq!(ingest.record(&batch, t0), 2);
        let s = ingest.samples(t0 + Duration::from_secs(1));
        assert_eq!(
            value(&s, &catalogue::INGEST_ROUTE_OVERFLOW_TOTAL, &[]),
            Some(2.0)
        );
        let overflow = |m| [("route", OVERFLOW_ROUTE), ("method", m)];
        assert_eq!(
            value(&s, &catalogue::API_ERROR_RATIO, &overflow("GET")),
            Some(1.0)
        );
        assert_eq!(
            value(&s, &catalogue::API_ERROR_RATIO, &overflow("POST")),
            Some(0.0)
        );
        let routes: std::collections::BTreeSet<_> = s
            .iter()
            .filter_map(|x| x.labels.iter().find(|(k, _)| *k == "route"))
            .map(|(_, v)| v.clone())
            .collect();
        assert_eq!(
            routes.into_iter().collect::<Vec<_>>(),
            ["/a", "/b", OVERFLOW_ROUTE]
        );
    }

    #[test]
    fn rejections_are_counted_by_reason() {
        let ingest = Ingest::new(&config(2, 1), Instant::now());
        ingest.reject(Rejection::TooLarge);
        ingest.reject(Rejection::TooLarge);
        ingest.reject(Rejection::Invalid);
        let s = ingest.samples(Instant::now());
        let of = |r| value(&s, &catalogue::INGEST_REJECTED_TOTAL, &[("reason", r)]);
        assert_eq!(
            (
                of("too_large"),
                of("invalid"),
                of("malformed"),
                of("unauthorized")
            ),
            (Some(2.0), Some(1.0), Some(0.0), Some(0.0))
        );
    }

    #[test]
    fn a_new_window_length_restarts_the_windows_but_not_the_counters() {
        let t0 = Instant::now();
        let ingest = Ingest::new(&config(10, 1), t0);
        ingest.record(&vec![obs("/", "GET", 200, 0.1); 5], t0);
        let mut longer = config(10, 1);
        longer.window = Duration::from_secs(300);
        ingest.configure(&longer, t0 + Duration::from_secs(1));
        let s = ingest.samples(t0 + Duration::from_secs(2));
        let l = [("route", "/"), ("method", "GET")];
        assert_eq!(
            value(&s, &catalogue::API_REQUESTS_PER_SECOND, &l),
            Some(0.0)
        );
        let l2xx = [("route", "/"), ("method", "GET"), ("status_class", "2xx")];
        assert_eq!(value(&s, &catalogue::API_REQUESTS_TOTAL, &l2xx), Some(5.0));
    }
}
