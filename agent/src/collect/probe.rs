//! HTTP(S) probes: availability and latency of one `collect.http_probes` endpoint, as
//! `lookout_probe_*`.
//!
//! One [`ProbeCollector`] per configured probe, named `probe:<name>`. It holds one
//! [`reqwest::Client`], built once, with the probe's per-attempt timeout and redirects
//! **not** followed (a 3xx is a status like any other, matched against `expect_status`).
//!
//! **Round.** Each run is one round of up to `attempts` attempts, stopping at the first
//! success. An attempt is timed from sending the request to having read the body; it
//! succeeds when a response arrived, its body was read, and its status is in
//! `expect_status`. The round succeeds if any attempt does.
//!
//! **Bounded body.** At most [`MAX_PROBE_BODY_BYTES`] of a body are read, one chunk at a time
//! and none kept: a longer (or endless) body is cut there, its connection dropped, and the
//! attempt is decided on its status as usual. A probe never holds more than one chunk of a
//! body in memory, and an endless body ends the attempt as soon as the bound is read.
//!
//! **Secrets.** A `user:password@` in the URL is sent as basic auth; the URL is logged and
//! shown only through [`ProbeTarget::redacted_url`] (userinfo, query and fragment replaced
//! by `<redacted>`, the path kept), and HTTP errors are logged without their URL.
//!
//! **Retries do not hide failures**: every failed attempt, including one
//! followed by a successful retry, increments `lookout_probe_attempts_failed_total`, and
//! every attempt's duration goes into the histogram `lookout_probe_duration_seconds_hist`.
//!
//! Samples (label `probe`): `lookout_probe_success` (1/0 for the round),
//! `lookout_probe_duration_seconds` and `lookout_probe_http_status_code` of the last attempt
//! (the status is 0 when no response headers arrived: refused, timed out, TLS failure), the
//! failed-attempt counter and the histogram. A failing endpoint is data, not a collector
//! failure: the run returns `Ok`; the reason is logged at debug level.

use std::time::{Duration, Instant};

use super::histogram::{Histogram, LATENCY_BUCKETS};
use super::{AsyncCollector, BoxFuture, CollectError, Labels, Sample};
use crate::catalogue::{
    PROBE_ATTEMPTS_FAILED_TOTAL, PROBE_DURATION_SECONDS, PROBE_DURATION_SECONDS_HIST,
    PROBE_HTTP_STATUS_CODE, PROBE_SUCCESS,
};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{Job, Schedule, Target, check_schedule};
use crate::config::secret::redact_url_keep_path;
use crate::config::units::{check_http_method, format_duration};
use crate::config::{Checker, Text};

/// Most bytes of a response body a probe reads (64 KiB).
pub const MAX_PROBE_BODY_BYTES: usize = 64 * 1024;

/// What one attempt saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attempt {
    /// Whether the status was expected and the body read (to its end or the bound).
    pub success: bool,
    /// The response status; 0 when no response arrived.
    pub status: u16,
    /// From sending the request to the end of the body (or the failure).
    pub duration: Duration,
}

/// Probes one configured HTTP(S) endpoint.
pub struct ProbeCollector {
    name: String,
    target: ProbeTarget,
    /// The error when the client could not be built (logged by every run, which then fails).
    client: Result<reqwest::Client, String>,
    /// Every failed attempt since start.
    attempts_failed: u64,
    /// Every attempt's duration since start.
    histogram: Histogram,
}

impl std::fmt::Debug for ProbeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeCollector")
            .field("name", &self.name)
            .field("target", &self.target)
            .field("attempts_failed", &self.attempts_failed)
            .finish()
    }
}

impl ProbeCollector {
    /// A collector for `target`; the HTTP client is built here, once.
    pub fn new(target: ProbeTarget) -> Self {
        let client = reqwest::Client::builder()
            .timeout(target.schedule.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"));
        ProbeCollector {
            name: format!("probe:{}", target.name),
            target,
            client,
            attempts_failed: 0,
            histogram: Histogram::new(LATENCY_BUCKETS),
        }
    }

    /// Failed attempts so far (retried ones included).
    pub fn attempts_failed(&self) -> u64 {
        self.attempts_failed
    }

    /// Attempts made so far.
    pub fn attempts_made(&self) -> u64 {
        self.histogram.count()
    }

    /// One attempt: request, status, body up to [`MAX_PROBE_BODY_BYTES`], bounded by the
    /// per-attempt timeout.
    async fn attempt(&self, client: &reqwest::Client) -> Result<Attempt, (Attempt, String)> {
        let timeout = self.target.schedule.timeout;
        let method = reqwest::Method::from_bytes(self.target.method.as_bytes())
            .unwrap_or(reqwest::Method::GET);
        let started = Instant::now();
        let mut status = 0u16;
        let outcome = tokio::time::timeout(timeout, async {
            let mut response = client
                .request(method, &self.target.url)
                .send()
                .await
                .map_err(|e| format!("request failed: {}", e.without_url()))?;
            status = response.status().as_u16();
            // Chunk by chunk, none kept; dropping the response mid-body closes its connection.
            let mut read = 0usize;
            while read < MAX_PROBE_BODY_BYTES {
                match response.chunk().await {
                    Ok(Some(chunk)) => read = read.saturating_add(chunk.len()),
                    Ok(None) => break,
                    Err(e) => {
                        return Err(format!(
                            "reading the body (status {status}) failed: {}",
                            e.without_url()
                        ));
                    }
                }
            }
            Ok::<(), String>(())
        })
        .await;
        let duration = started.elapsed();
        let error = match outcome {
            Err(_) => Some(format!("timed out after {timeout:?}")),
            Ok(Err(why)) => Some(why),
            Ok(Ok(())) if !self.target.expect_status.contains(&status) => Some(format!(
                "status {status} not in {:?}",
                self.target.expect_status
            )),
            Ok(Ok(())) => None,
        };
        let attempt = Attempt {
            success: error.is_none(),
            status,
            duration,
        };
        match error {
            None => Ok(attempt),
            Some(why) => Err((attempt, why)),
        }
    }

    /// One round: up to `attempts` attempts, stopping at the first success.
    async fn round(&mut self) -> Vec<Sample> {
        let labels: Labels = vec![("probe", self.target.name.clone())];
        let mut last = Attempt {
            success: false,
            status: 0,
            duration: Duration::ZERO,
        };
        match &self.client {
            Err(why) => {
                tracing::warn!(probe = %self.target.name, "{why}");
                self.attempts_failed += 1;
            }
            Ok(client) => {
                let client = client.clone();
                for n in 1..=self.target.attempts.max(1) {
                    let result = self.attempt(&client).await;
                    let attempt = match result {
                        Ok(a) => a,
                        Err((a, why)) => {
                            tracing::debug!(
                                probe = %self.target.name,
                                url = %self.target.redacted_url(),
                                attempt = n,
                                "probe attempt failed: {why}"
                            );
                            a
                        }
                    };
                    self.histogram.observe(attempt.duration.as_secs_f64());
                    last = attempt;
                    if attempt.success {
                        break;
                    }
                    self.attempts_failed += 1;
                }
            }
        }
        let mut out = vec![
            Sample::with_labels(
                &PROBE_SUCCESS,
                [("probe", self.target.name.clone())],
                if last.success { 1.0 } else { 0.0 },
            ),
            Sample::with_labels(
                &PROBE_DURATION_SECONDS,
                [("probe", self.target.name.clone())],
                last.duration.as_secs_f64(),
            ),
            Sample::with_labels(
                &PROBE_HTTP_STATUS_CODE,
                [("probe", self.target.name.clone())],
                f64::from(last.status),
            ),
            Sample::with_labels(
                &PROBE_ATTEMPTS_FAILED_TOTAL,
                [("probe", self.target.name.clone())],
                self.attempts_failed as f64,
            ),
        ];
        out.extend(
            self.histogram
                .samples(&PROBE_DURATION_SECONDS_HIST, &labels),
        );
        out
    }
}

impl AsyncCollector for ProbeCollector {
    fn name(&self) -> &str {
        &self.name
    }

    /// The probe's interval; a run may take the whole interval, since a round of
    /// `attempts` attempts at `timeout` each fits in it (checked by validation).
    fn schedule(&self) -> Schedule {
        Schedule {
            interval: self.target.schedule.interval,
            timeout: self.target.schedule.interval,
        }
    }

    fn collect<'a>(
        &'a mut self,
        _now: Instant,
    ) -> BoxFuture<'a, Result<Vec<Sample>, CollectError>> {
        Box::pin(async move { Ok(self.round().await) })
    }
}

// The `collect.http_probes` section: what the configuration file says about this collector.

/// Default `collect.http_probes[].expect_status`.
pub const DEFAULT_EXPECT_STATUS: &[u16] = &[200];

/// Most `collect.http_probes[].attempts` per round.
pub const MAX_PROBE_ATTEMPTS: u32 = 5;

/// One `collect.http_probes` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    /// Unique name, the `probe` label; absent: a problem.
    pub name: Option<Text>,
    /// `http://` or `https://` URL; absent: a problem.
    pub url: Option<Text>,
    /// HTTP method; absent: `GET`.
    pub method: Option<Text>,
    /// Time between rounds; absent: `10s`.
    pub interval: Option<Text>,
    /// Bound of each attempt; absent: the smaller of `5s` and the interval.
    pub timeout: Option<Text>,
    /// Statuses counted as success; absent: `[200]`. Read as `i64` so that out-of-range
    /// values reach validation and are reported with their position.
    pub expect_status: Option<Vec<Spanned<i64>>>,
    /// Attempts per round; absent: `1`.
    pub attempts: Option<Spanned<i64>>,
}

/// One `collect.http_probes` entry: an HTTP(S) endpoint requested on an interval.
///
/// `Debug` shows the URL redacted ([`ProbeTarget::redacted_url`]).
#[derive(Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    /// Unique name, the value of the `probe` label.
    pub name: String,
    /// `http://` or `https://` URL requested, possibly with `user:password@` (sent as basic
    /// auth) or a token in its query. Never log it as is: use [`ProbeTarget::redacted_url`].
    pub url: String,
    /// HTTP method (upper case: `GET`, `HEAD`, `POST`, ...).
    pub method: String,
    /// Interval between rounds; `timeout` bounds each attempt, and
    /// `timeout * attempts <= interval`.
    pub schedule: Schedule,
    /// Statuses that count as success (each 100..=599).
    pub expect_status: Vec<u16>,
    /// Attempts per round (1..=5); a round succeeds if any attempt does.
    pub attempts: u32,
}

impl ProbeTarget {
    /// The URL with its userinfo, query and fragment replaced by `<redacted>`, the path kept
    /// ([`redact_url_keep_path`]), for logs and problems.
    pub fn redacted_url(&self) -> String {
        redact_url_keep_path(&self.url)
    }
}

impl std::fmt::Debug for ProbeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeTarget")
            .field("name", &self.name)
            .field("url", &self.redacted_url())
            .field("method", &self.method)
            .field("schedule", &self.schedule)
            .field("expect_status", &self.expect_status)
            .field("attempts", &self.attempts)
            .finish()
    }
}

impl Target for ProbeTarget {
    type Raw = RawProbe;
    const WHAT: &'static str = "probe";
    const DEFAULTS: &'static str = DEFAULTS_YAML;

    fn name(raw: &RawProbe) -> Option<&Text> {
        raw.name.as_ref()
    }

    fn check(
        c: &mut Checker<'_>,
        base: &str,
        item: &Spanned<RawProbe>,
        name: Option<String>,
    ) -> Option<ProbeTarget> {
        let raw = &item.value;
        let mut valid = true;
        let url = c.required_url(
            base,
            item,
            raw.url.as_ref(),
            "http://host:port/path",
            check_probe_url,
        );
        let method = match &raw.method {
            None => "GET".to_string(),
            Some(text) => match check_http_method(&text.value) {
                Ok(m) => m,
                Err(why) => {
                    c.report(&format!("{base}.method"), Some(&text.referenced), why);
                    valid = false;
                    String::new()
                }
            },
        };
        let schedule = check_schedule(c, base, raw.interval.as_ref(), raw.timeout.as_ref());
        let expect_status = match &raw.expect_status {
            None => DEFAULT_EXPECT_STATUS.to_vec(),
            Some(list) => {
                let mut statuses = Vec::with_capacity(list.len());
                if list.is_empty() {
                    c.report(
                        &format!("{base}.expect_status"),
                        Some(&item.referenced),
                        "must list at least one status",
                    );
                    valid = false;
                }
                for (s, n) in list.iter().enumerate() {
                    match u16::try_from(n.value) {
                        Ok(v) if (100..=599).contains(&v) => statuses.push(v),
                        _ => {
                            c.report(
                                &format!("{base}.expect_status[{s}]"),
                                Some(&n.referenced),
                                format!("{} is out of range: must be between 100 and 599", n.value),
                            );
                            valid = false;
                        }
                    }
                }
                statuses
            }
        };
        let attempts = match &raw.attempts {
            None => 1,
            Some(n) => match u32::try_from(n.value) {
                Ok(v) if (1..=MAX_PROBE_ATTEMPTS).contains(&v) => v,
                _ => {
                    c.report(
                        &format!("{base}.attempts"),
                        Some(&n.referenced),
                        format!(
                            "{} is out of range: must be between 1 and {MAX_PROBE_ATTEMPTS}",
                            n.value
                        ),
                    );
                    valid = false;
                    1
                }
            },
        };
        // The whole round (every attempt at its timeout) must end before the next one.
        // A timeout alone longer than the interval is already reported by `schedule`.
        let round = schedule.timeout.saturating_mul(attempts);
        if attempts > 1
            && schedule.timeout <= schedule.interval
            && round > schedule.interval
            && !c.removed(&format!("{base}.interval"))
        {
            let at = raw
                .attempts
                .as_ref()
                .map(|n| &n.referenced)
                .unwrap_or(&item.referenced);
            c.report(
                    &format!("{base}.attempts"),
                    Some(at),
                    format!(
                        "{attempts} attempts of up to {} each take longer than the interval ({}): a round must end before the next starts",
                        format_duration(schedule.timeout),
                        format_duration(schedule.interval)
                    ),
                );
            valid = false;
        }
        match (name, url, valid) {
            (Some(name), Some(url), true) => Some(ProbeTarget {
                name,
                url,
                method,
                schedule,
                expect_status,
                attempts,
            }),
            _ => None,
        }
    }

    fn collector(&self, _: &super::Context) -> Job {
        Job::Async(Box::new(ProbeCollector::new(self.clone())))
    }
}

/// Checks a `collect.http_probes` URL: `http` or `https` and a host.
pub fn check_probe_url(text: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(text)
        .map_err(|e| format!("invalid URL {:?}: {e}", redact_url_keep_path(text)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "must be http:// or https://, got {:?}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("URL has no host".into());
    }
    Ok(())
}

/// `lookout config default`'s text for this section.
const DEFAULTS_YAML: &str = r#"# HTTP(S) endpoints to probe (lookout_probe_*), one entry each. Empty: none.
# Every key of an entry:
#   - name: api-health               # required, unique; the `probe` label
#     url: "http://127.0.0.1:8000/health"  # required; http:// or https://
#     method: GET                    # GET, HEAD, POST, ...; redirects are not followed
#     interval: 10s                  # from 1s to 1h
#     timeout: 5s                    # per attempt; left out: min(5s, interval)
#     expect_status: [200]           # statuses counted as success, each 100-599
#     attempts: 1                    # attempts per round, 1-5; the round succeeds if
#                                    # any does; timeout * attempts <= interval; every
#                                    # failed attempt is counted
#                                    # (lookout_probe_attempts_failed_total)
http_probes: []
"#;

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::collect::Part;

    /// A server answering the n-th request (0-based) with `plan[min(n, last)]`:
    /// `(status, delay before answering)`.
    async fn server(plan: Vec<(u16, Duration)>) -> (String, Arc<AtomicUsize>) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let (status, delay) = plan[n.min(plan.len() - 1)];
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut read = Vec::new();
                    while !read.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => read.extend_from_slice(&buf[..k]),
                        }
                    }
                    tokio::time::sleep(delay).await;
                    let body = "hello";
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(reply.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        (format!("http://{addr}/health"), seen)
    }

    fn target(url: &str, expect: &[u16], attempts: u32, timeout_ms: u64) -> ProbeTarget {
        ProbeTarget {
            name: "api".into(),
            url: url.into(),
            method: "GET".into(),
            schedule: Schedule {
                interval: Duration::from_secs(10),
                timeout: Duration::from_millis(timeout_ms),
            },
            expect_status: expect.to_vec(),
            attempts,
        }
    }

    fn value(samples: &[Sample], name: &str) -> f64 {
        samples
            .iter()
            .find(|s| s.metric.name == name && s.part == Part::Value)
            .unwrap_or_else(|| panic!("no {name} in {samples:?}"))
            .value
    }

    fn hist_count(samples: &[Sample]) -> f64 {
        samples
            .iter()
            .find(|s| s.metric.name == PROBE_DURATION_SECONDS_HIST.name && s.part == Part::Count)
            .unwrap()
            .value
    }

    async fn run(c: &mut ProbeCollector) -> Vec<Sample> {
        c.collect(Instant::now()).await.unwrap()
    }

    #[tokio::test]
    async fn status_200_is_success() {
        let (url, _) = server(vec![(200, Duration::ZERO)]).await;
        let mut c = ProbeCollector::new(target(&url, &[200], 1, 2000));
        assert_eq!(c.name(), "probe:api");
        let s = run(&mut c).await;
        assert_eq!(value(&s, "lookout_probe_success"), 1.0);
        assert_eq!(value(&s, "lookout_probe_http_status_code"), 200.0);
        assert_eq!(value(&s, "lookout_probe_attempts_failed_total"), 0.0);
        assert!(value(&s, "lookout_probe_duration_seconds") > 0.0);
        assert_eq!(hist_count(&s), 1.0);
        assert!(
            s.iter()
                .all(|x| x.labels == vec![("probe", "api".to_string())])
        );
    }

    #[tokio::test]
    async fn unexpected_status_fails() {
        let (url, _) = server(vec![(503, Duration::ZERO)]).await;
        let mut c = ProbeCollector::new(target(&url, &[200], 1, 2000));
        let s = run(&mut c).await;
        assert_eq!(value(&s, "lookout_probe_success"), 0.0);
        assert_eq!(value(&s, "lookout_probe_http_status_code"), 503.0);
        assert_eq!(value(&s, "lookout_probe_attempts_failed_total"), 1.0);
    }

    #[tokio::test]
    async fn expected_503_is_success() {
        let (url, _) = server(vec![(503, Duration::ZERO)]).await;
        let mut c = ProbeCollector::new(target(&url, &[503], 1, 2000));
        let s = run(&mut c).await;
        assert_eq!(value(&s, "lookout_probe_success"), 1.0);
        assert_eq!(value(&s, "lookout_probe_http_status_code"), 503.0);
    }

    #[tokio::test]
    async fn redirect_is_not_followed() {
        let (url, seen) = server(vec![(302, Duration::ZERO)]).await;
        let mut c = ProbeCollector::new(target(&url, &[302], 1, 2000));
        let s = run(&mut c).await;
        assert_eq!(value(&s, "lookout_probe_success"), 1.0);
        assert_eq!(value(&s, "lookout_probe_http_status_code"), 302.0);
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn slower_than_timeout_fails_without_status() {
        let (url, _) = server(vec![(200, Duration::from_millis(1500))]).await;
        let mut c = ProbeCollector::new(target(&url, &[200], 1, 200));
        let s = run(&mut c).await;
        assert_eq!(value(&s, "lookout_probe_success"), 0.0);
        assert_eq!(value(&s, "lookout_probe_http_status_code"), 0.0);
        // The attempt's own duration, cut at the timeout (a timer never fires early); had it
        // waited for the answer, the probe would have succeeded with status 200.
        let d = value(&s, "lookout_probe_duration_seconds");
        assert!(d >= 0.2, "duration {d}");
    }

    #[tokio::test]
    async fn closed_port_fails() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}/");
        let mut c = ProbeCollector::new(target(&url, &[200], 2, 500));
        let s = run(&mut c).await;
        assert_eq!(value(&s, "lookout_probe_success"), 0.0);
        assert_eq!(value(&s, "lookout_probe_http_status_code"), 0.0);
        assert_eq!(value(&s, "lookout_probe_attempts_failed_total"), 2.0);
        assert_eq!(hist_count(&s), 2.0);
    }

    #[tokio::test]
    async fn retries_count_failed_attempts() {
        let (url, seen) = server(vec![
            (500, Duration::ZERO),
            (502, Duration::ZERO),
            (200, Duration::ZERO),
        ])
        .await;
        let mut c = ProbeCollector::new(target(&url, &[200], 3, 2000));
        let s = run(&mut c).await;
        assert_eq!(value(&s, "lookout_probe_success"), 1.0);
        assert_eq!(value(&s, "lookout_probe_http_status_code"), 200.0);
        assert_eq!(value(&s, "lookout_probe_attempts_failed_total"), 2.0);
        assert_eq!(hist_count(&s), 3.0);
        assert_eq!(seen.load(Ordering::SeqCst), 3);
        // The next round succeeds at once: the counter keeps its value, the histogram grows
        // by exactly the attempts made.
        let s = run(&mut c).await;
        assert_eq!(value(&s, "lookout_probe_attempts_failed_total"), 2.0);
        assert_eq!(hist_count(&s), 4.0);
        assert_eq!(c.attempts_made(), 4);
        assert_eq!(c.attempts_failed(), 2);
    }

    /// A server answering every request with 200 and a chunked body that never ends; sends
    /// how many bytes it wrote once the client went away (or it stopped at 256 MiB, so a
    /// client that reads everything cannot take the machine's memory).
    async fn endless_server() -> (String, tokio::sync::mpsc::UnboundedReceiver<usize>) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
                    let chunk = format!("4000\r\n{}\r\n", "x".repeat(0x4000));
                    let mut written = 0usize;
                    if sock.write_all(head.as_bytes()).await.is_ok() {
                        while written < 256 << 20 && sock.write_all(chunk.as_bytes()).await.is_ok()
                        {
                            written += chunk.len();
                        }
                    }
                    let _ = tx.send(written);
                });
            }
        });
        (format!("http://{addr}/stream"), rx)
    }

    #[tokio::test]
    async fn an_endless_body_is_cut_at_the_bound_and_the_status_decides() {
        let (url, mut written) = endless_server().await;
        let mut c = ProbeCollector::new(target(&url, &[200], 1, 5000));
        let s = run(&mut c).await;
        assert_eq!(value(&s, "lookout_probe_success"), 1.0);
        assert_eq!(value(&s, "lookout_probe_http_status_code"), 200.0);
        // Done long before the timeout: it stopped reading instead of waiting for an end.
        let d = value(&s, "lookout_probe_duration_seconds");
        assert!(d < 4.0, "duration {d}");
        // The connection was dropped: the server could write only the bound plus what the
        // sockets buffer (a few MiB on loopback), far from its 256 MiB.
        let sent = written.recv().await.unwrap();
        assert!(sent < 32 << 20, "{sent} bytes sent");
    }

    #[test]
    fn debug_and_logs_show_the_url_redacted() {
        let t = target(
            "http://user:hunter2@127.0.0.1:1/health?token=abc",
            &[200],
            1,
            100,
        );
        let debug = format!("{t:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("abc") && !debug.contains("user"),
            "{debug}"
        );
        assert!(
            debug.contains("http://<redacted>@127.0.0.1:1/health?<redacted>"),
            "{debug}"
        );
    }

    #[tokio::test]
    async fn all_attempts_failing_counts_each() {
        let (url, _) = server(vec![(500, Duration::ZERO)]).await;
        let mut c = ProbeCollector::new(target(&url, &[200], 3, 2000));
        let s = run(&mut c).await;
        assert_eq!(value(&s, "lookout_probe_success"), 0.0);
        assert_eq!(value(&s, "lookout_probe_http_status_code"), 500.0);
        assert_eq!(value(&s, "lookout_probe_attempts_failed_total"), 3.0);
        assert_eq!(hist_count(&s), 3.0);
    }
}
