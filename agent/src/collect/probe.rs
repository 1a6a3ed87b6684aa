//! HTTP(S) probes: availability and latency of one `collect.http_probes` endpoint, as
//! `lookout_probe_*` (DESIGN section 4).
//!
//! One [`ProbeCollector`] per configured probe, named `probe:<name>`. It holds one
//! [`reqwest::Client`], built once, with the probe's per-attempt timeout and redirects
//! **not** followed (a 3xx is a status like any other, matched against `expect_status`).
//!
//! **Round.** Each run is one round of up to `attempts` attempts, stopping at the first
//! success. An attempt is timed from sending the request to having read the whole body; it
//! succeeds when a response arrived, its body was read, and its status is in
//! `expect_status`. The round succeeds if any attempt does.
//!
//! **Retries do not hide failures** (PEERS P10): every failed attempt, including one
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
use crate::config::{ProbeTarget, Schedule};

/// What one attempt saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attempt {
    /// Whether the status was expected and the body read completely.
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

    /// One attempt: request, status, whole body, bounded by the per-attempt timeout.
    async fn attempt(&self, client: &reqwest::Client) -> Result<Attempt, (Attempt, String)> {
        let timeout = self.target.schedule.timeout;
        let method = reqwest::Method::from_bytes(self.target.method.as_bytes())
            .unwrap_or(reqwest::Method::GET);
        let started = Instant::now();
        let mut status = 0u16;
        let outcome = tokio::time::timeout(timeout, async {
            let response = client
                .request(method, &self.target.url)
                .send()
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            status = response.status().as_u16();
            response
                .bytes()
                .await
                .map_err(|e| format!("reading the body (status {status}) failed: {e}"))?;
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
                                url = %self.target.url,
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
