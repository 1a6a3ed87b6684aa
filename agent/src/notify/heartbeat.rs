//! The heartbeat: a dead-man's switch for the agent itself (`notify.heartbeat`).
//!
//! Every `interval` the agent GETs `url` while its alerting pipeline is healthy, and
//! `fail_url` (by default `url` with `/fail` added to its path, as healthchecks.io takes it)
//! while it is not, so a service outside the host notices an agent that stopped, hangs, or
//! can no longer deliver what it decides. The pipeline is healthy when the rules are
//! evaluated on time and `data_dir` takes writes (the outbox and the alert states: what
//! `/readyz` reports as `degraded`); see [`Pipeline`].
//!
//! A ping that fails (no answer within `timeout`, a refused connection, a status other than
//! 2xx) is counted and logged (once, until a ping goes through again), and the next one
//! goes out at the next interval: nothing is retried in between, nothing waits on it.
//!
//! The URL is a secret (a healthchecks.io UUID, an Uptime Kuma push token): logs, errors
//! and `Debug` show it redacted to `scheme://host:port/<redacted>`
//! ([`redact_url`]).

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;
use tokio::sync::watch;

use super::BoxFuture;
use super::webhook::{http_client, parse_url};
use crate::catalogue;
use crate::clock::Clock;
use crate::config::secret::redact_url;
use crate::config::{Checker, Text};
use crate::sample::Sample;

/// Default `notify.heartbeat.interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Default `notify.heartbeat.timeout` (at most the interval).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Shortest `interval` and `timeout`.
pub const MIN_PERIOD: Duration = Duration::from_secs(1);
/// Longest `interval`.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// The store owner of the heartbeat's samples.
pub const OWNER: &str = "heartbeat";

/// `notify.heartbeat` as serde reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeartbeat {
    /// `http://` or `https://` URL pinged while healthy; required.
    pub url: Option<Text>,
    /// URL pinged while unhealthy; absent: `url` with `/fail` added to its path.
    pub fail_url: Option<Text>,
    /// Time between pings, from `1s` to `1h`; absent: `1m`.
    pub interval: Option<Text>,
    /// Bound on one ping, from `1s` to the interval; absent: the smaller of `10s` and the
    /// interval.
    pub timeout: Option<Text>,
}

/// `notify.heartbeat` checked. `Debug` shows the URLs redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct HeartbeatConfig {
    /// Pinged while the pipeline is healthy.
    pub url: String,
    /// Pinged while it is not.
    pub fail_url: String,
    /// Time between pings.
    pub interval: Duration,
    /// Bound on one ping.
    pub timeout: Duration,
}

impl std::fmt::Debug for HeartbeatConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeartbeatConfig")
            .field("url", &redact_url(&self.url))
            .field("fail_url", &redact_url(&self.fail_url))
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// `url` with `/fail` added to its path (before any query): healthchecks.io's failure
/// signal.
pub fn fail_url_of(url: &str) -> Result<String, String> {
    let mut parsed = parse_url(url)?;
    parsed
        .path_segments_mut()
        .map_err(|()| "URL cannot take a path".to_string())?
        .pop_if_empty()
        .push("fail");
    Ok(parsed.into())
}

/// Checks `notify.heartbeat` at `path`; `None` when it is invalid (every problem reported).
pub fn check(
    c: &mut Checker<'_>,
    path: &str,
    raw: &Spanned<RawHeartbeat>,
) -> Option<HeartbeatConfig> {
    let at = &raw.referenced;
    let raw = &raw.value;
    let url = c
        .required(
            path,
            at,
            "url",
            raw.url.as_ref(),
            "the URL to ping, e.g. https://hc-ping.com/<uuid>",
        )
        .and_then(|text| c.http_url(&format!("{path}.url"), text));
    let fail_url = match &raw.fail_url {
        Some(text) => c.http_url(&format!("{path}.fail_url"), text),
        None => url.as_deref().and_then(|u| fail_url_of(u).ok()),
    };
    let interval = c.duration(
        &format!("{path}.interval"),
        raw.interval.as_ref(),
        DEFAULT_INTERVAL,
        MIN_PERIOD,
        Some(MAX_INTERVAL),
    );
    let longest = interval.unwrap_or(DEFAULT_INTERVAL);
    let timeout = c.duration(
        &format!("{path}.timeout"),
        raw.timeout.as_ref(),
        DEFAULT_TIMEOUT.min(longest),
        MIN_PERIOD,
        Some(longest),
    );
    Some(HeartbeatConfig {
        url: url?,
        fail_url: fail_url?,
        interval: interval?,
        timeout: timeout?,
    })
}

/// What the heartbeat reports on and where it records its figures: the agent's state.
pub trait Pipeline: Send + Sync + 'static {
    /// Why the alerting pipeline is unhealthy now (empty: healthy).
    fn problems(&self) -> Vec<String>;
    /// Records the heartbeat's samples (`OWNER`'s series in the store).
    fn record(&self, samples: Vec<Sample>);
}

/// How a ping goes out: over HTTP in the agent, scripted in tests.
pub trait Pinger: Send + Sync + 'static {
    /// GETs `url`; `Ok` with the status when an answer came, `Err` with why not. Bounded by
    /// the pinger's own timeout.
    fn get<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<u16, String>>;
}

/// The HTTP pinger: one client whose every request is bounded by the timeout.
#[derive(Debug)]
pub struct HttpPinger {
    client: reqwest::Client,
}

impl HttpPinger {
    /// A pinger whose requests give up after `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, String> {
        Ok(HttpPinger {
            client: http_client(timeout)?,
        })
    }
}

impl Pinger for HttpPinger {
    fn get<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<u16, String>> {
        Box::pin(async move {
            let url = parse_url(url)?;
            match self.client.get(url).send().await {
                Ok(response) => Ok(response.status().as_u16()),
                Err(e) => Err(why(&e.without_url())),
            }
        })
    }
}

/// A request error, without the URL.
fn why(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !causes.contains(&text) {
            causes.push(text);
        }
        source = cause.source();
    }
    if causes.is_empty() {
        kind.to_string()
    } else {
        // A cause may quote the URL after all: never show more than its origin.
        crate::config::secret::redact_urls_in(&format!("{kind}: {}", causes.join(": ")))
    }
}

/// The figures the heartbeat exports.
#[derive(Debug, Default)]
struct Figures {
    /// Wall-clock ms of the last ping answered with a 2xx.
    last_success: Option<i64>,
    /// Pings not answered with a 2xx.
    failures: u64,
    /// Whether the last ping reported a healthy pipeline.
    healthy: Option<bool>,
}

impl Figures {
    fn samples(&self) -> Vec<Sample> {
        let mut out = vec![Sample::new(
            &catalogue::HEARTBEAT_FAILURES_TOTAL,
            self.failures as f64,
        )];
        if let Some(at) = self.last_success {
            out.push(Sample::new(
                &catalogue::HEARTBEAT_LAST_SUCCESS_TIMESTAMP_SECONDS,
                at as f64 / 1000.0,
            ));
        }
        if let Some(healthy) = self.healthy {
            out.push(Sample::new(
                &catalogue::HEARTBEAT_HEALTHY,
                if healthy { 1.0 } else { 0.0 },
            ));
        }
        out
    }
}

/// Pings on `config`'s interval until `stop`, the first one an interval after the start
/// (the pipeline has had time to evaluate its rules by then).
pub async fn run(
    config: HeartbeatConfig,
    pinger: Arc<dyn Pinger>,
    pipeline: Arc<dyn Pipeline>,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    let mut figures = Figures::default();
    pipeline.record(figures.samples());
    let start = tokio::time::Instant::now() + config.interval;
    let mut ticker = tokio::time::interval_at(start, config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Whether the last ping failed: a failure is logged once, until one goes through.
    let mut failing = false;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
        let problems = pipeline.problems();
        let healthy = problems.is_empty();
        if figures.healthy != Some(healthy) {
            if healthy {
                tracing::info!("heartbeat: the pipeline is healthy; pinging the heartbeat URL");
            } else {
                tracing::warn!(problems = %problems.join("; "), "heartbeat: the pipeline is unhealthy; pinging the failure URL");
            }
        }
        figures.healthy = Some(healthy);
        let url = if healthy {
            &config.url
        } else {
            &config.fail_url
        };
        let outcome = match tokio::time::timeout(config.timeout, pinger.get(url)).await {
            Ok(Ok(status)) if (200..300).contains(&status) => Ok(()),
            Ok(Ok(status)) => Err(format!("HTTP {status}")),
            Ok(Err(why)) => Err(why),
            Err(_) => Err(format!("no answer within {:?}", config.timeout)),
        };
        match outcome {
            Ok(()) => {
                figures.last_success = Some(clock.now().saturating_add(clock.wall_offset()));
                if failing {
                    tracing::info!(url = %redact_url(url), "heartbeat delivered again");
                }
                failing = false;
            }
            Err(why) => {
                figures.failures += 1;
                if failing {
                    tracing::debug!(url = %redact_url(url), error = %why, "heartbeat still not delivered");
                } else {
                    tracing::warn!(url = %redact_url(url), error = %why, "heartbeat not delivered; trying again at the next interval");
                }
                failing = true;
            }
        }
        pipeline.record(figures.samples());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::time::Instant;

    /// The pipeline's health as the test sets it; the samples it was given.
    #[derive(Default)]
    struct TestPipeline {
        problems: Mutex<Vec<String>>,
        samples: Mutex<Vec<Sample>>,
    }

    impl Pipeline for TestPipeline {
        fn problems(&self) -> Vec<String> {
            self.problems.lock().unwrap().clone()
        }

        fn record(&self, samples: Vec<Sample>) {
            *self.samples.lock().unwrap() = samples;
        }
    }

    impl TestPipeline {
        fn value(&self, metric: &catalogue::Metric) -> Option<f64> {
            self.samples
                .lock()
                .unwrap()
                .iter()
                .find(|s| s.metric.name == metric.name)
                .map(|s| s.value)
        }
    }

    /// Records (ms since the test's start, URL) of each ping; answers with `status`, or
    /// hangs for `hang` first.
    struct TestPinger {
        origin: Instant,
        pings: Mutex<Vec<(u128, String)>>,
        status: Mutex<Result<u16, String>>,
        hang: Mutex<Duration>,
    }

    impl Pinger for TestPinger {
        fn get<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<u16, String>> {
            Box::pin(async move {
                self.pings
                    .lock()
                    .unwrap()
                    .push((self.origin.elapsed().as_millis(), url.to_string()));
                let hang = *self.hang.lock().unwrap();
                tokio::time::sleep(hang).await;
                self.status.lock().unwrap().clone()
            })
        }
    }

    /// The timeline is paused Tokio time, starting at 1_700_000_000 s.
    struct Paused(Instant);

    impl Clock for Paused {
        fn now(&self) -> i64 {
            1_700_000_000_000 + self.0.elapsed().as_millis() as i64
        }
        fn wall_offset(&self) -> i64 {
            0
        }
    }

    const OK: &str = "https://hc-ping.com/uuid";
    const FAIL: &str = "https://hc-ping.com/uuid/fail";

    #[tokio::test(start_paused = true)]
    async fn pings_every_interval_the_failure_url_while_unhealthy_and_bounds_each_ping() {
        let origin = Instant::now();
        let pinger = Arc::new(TestPinger {
            origin,
            pings: Mutex::new(Vec::new()),
            status: Mutex::new(Ok(200)),
            hang: Mutex::new(Duration::ZERO),
        });
        let pipeline = Arc::new(TestPipeline::default());
        let config = HeartbeatConfig {
            url: OK.into(),
            fail_url: fail_url_of(OK).unwrap(),
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
        };
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(
            config,
            pinger.clone(),
            pipeline.clone(),
            Arc::new(Paused(origin)),
            stopped,
        ));
        let at = |s: u64| origin + Duration::from_secs(s) + Duration::from_millis(500);
        // Healthy: one ping a minute, the first a minute in.
        tokio::time::sleep_until(at(120)).await;
        assert_eq!(
            pipeline.value(&catalogue::HEARTBEAT_LAST_SUCCESS_TIMESTAMP_SECONDS),
            Some(1_700_000_120.0)
        );
        assert_eq!(pipeline.value(&catalogue::HEARTBEAT_HEALTHY), Some(1.0));
        // Unhealthy: the failure URL.
        pipeline
            .problems
            .lock()
            .unwrap()
            .push("the outbox cannot be written".into());
        tokio::time::sleep_until(at(180)).await;
        assert_eq!(pipeline.value(&catalogue::HEARTBEAT_HEALTHY), Some(0.0));
        // The heartbeat URL down: counted, and the next ping still goes out on time.
        pipeline.problems.lock().unwrap().clear();
        *pinger.status.lock().unwrap() = Ok(503);
        tokio::time::sleep_until(at(240)).await;
        *pinger.status.lock().unwrap() = Err("connection failed".into());
        tokio::time::sleep_until(at(300)).await;
        // ... or hanging: given up after the timeout.
        *pinger.status.lock().unwrap() = Ok(200);
        *pinger.hang.lock().unwrap() = Duration::from_secs(3600);
        tokio::time::sleep_until(at(360)).await;
        assert_eq!(
            pipeline.value(&catalogue::HEARTBEAT_FAILURES_TOTAL),
            Some(2.0),
            "the hanging one is not given up yet"
        );
        tokio::time::sleep_until(at(370)).await;
        assert_eq!(
            pipeline.value(&catalogue::HEARTBEAT_FAILURES_TOTAL),
            Some(3.0)
        );
        *pinger.hang.lock().unwrap() = Duration::ZERO;
        tokio::time::sleep_until(at(420)).await;
        assert_eq!(
            pipeline.value(&catalogue::HEARTBEAT_LAST_SUCCESS_TIMESTAMP_SECONDS),
            Some(1_700_000_420.0)
        );
        stop.send(true).unwrap();
        task.await.unwrap();
        let pings: Vec<(u128, String)> = pinger.pings.lock().unwrap().clone();
        let expected: Vec<(u128, String)> = [
            (60, OK),
            (120, OK),
            (180, FAIL),
            (240, OK),
            (300, OK),
            (360, OK),
            (420, OK),
        ]
        .iter()
        .map(|(s, u)| (s * 1000, u.to_string()))
        .collect();
        assert_eq!(pings, expected);
    }

    #[test]
    fn the_failure_url_goes_on_the_path() {
        for (url, fail) in [
            ("https://hc-ping.com/uuid", "https://hc-ping.com/uuid/fail"),
            ("https://hc-ping.com/uuid/", "https://hc-ping.com/uuid/fail"),
            (
                "http://127.0.0.1:8080/ping/k?token=x",
                "http://127.0.0.1:8080/ping/k/fail?token=x",
            ),
            ("http://example.com", "http://example.com/fail"),
        ] {
            assert_eq!(fail_url_of(url).unwrap(), fail, "{url}");
        }
    }

    #[test]
    fn the_section_is_checked_and_its_urls_redacted() {
        // Through the whole `notify:` section, as the configuration file reads it.
        let check_text = |text: &str| {
            crate::config::check_section::<crate::notify::config::NotifySection>(
                &format!("heartbeat: {text}"),
                "notify",
            )
            .and_then(|notify| {
                notify
                    .heartbeat
                    .ok_or_else(|| crate::config::Problems(Vec::new()))
            })
        };
        let ok = check_text("{url: \"https://hc-ping.com/0f3c-secret\", interval: 5s}\n").unwrap();
        assert_eq!(ok.fail_url, "https://hc-ping.com/0f3c-secret/fail");
        assert_eq!(
            (ok.interval, ok.timeout),
            (Duration::from_secs(5), Duration::from_secs(5))
        );
        let shown = format!("{ok:?}");
        assert!(!shown.contains("0f3c-secret"), "{shown}");
        assert!(shown.contains("https://hc-ping.com/<redacted>"), "{shown}");
        let defaults = check_text("{url: \"https://hc-ping.com/x\"}\n").unwrap();
        assert_eq!(
            (defaults.interval, defaults.timeout),
            (DEFAULT_INTERVAL, DEFAULT_TIMEOUT)
        );
        let kuma = check_text(
            "{url: \"http://kuma:3001/api/push/t?status=up\", fail_url: \"http://kuma:3001/api/push/t?status=down\"}\n",
        )
        .unwrap();
        assert_eq!(kuma.fail_url, "http://kuma:3001/api/push/t?status=down");
        for (text, expected) in [
            ("{interval: 1m}\n", "notify.heartbeat: `url` is required"),
            (
                "{url: \"ftp://h/x\"}\n",
                "notify.heartbeat.url: must be http or https",
            ),
            (
                "{url: \"https://h/x\", interval: 2h}\n",
                "notify.heartbeat.interval: 2h is out of range",
            ),
            (
                "{url: \"https://h/x\", interval: 5s, timeout: 10s}\n",
                "notify.heartbeat.timeout: 10s is out of range: must be between 1s and 5s",
            ),
        ] {
            let problems: Vec<String> = check_text(text)
                .expect_err(text)
                .0
                .iter()
                .map(ToString::to_string)
                .collect();
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{text}: {problems:?}"
            );
        }
    }

    /// The HTTP pinger against a real server: the status comes back; a dead port is an
    /// error that does not name the URL's secret part.
    #[tokio::test]
    async fn the_http_pinger_reads_the_status_and_hides_the_url() {
        crate::notify::webhook::tests::provider();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = sock.read(&mut buf).await.unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK")
                .await
                .unwrap();
            request
        });
        let pinger = HttpPinger::new(Duration::from_secs(5)).unwrap();
        let status = pinger
            .get(&format!("http://127.0.0.1:{port}/ping/s3cret/fail"))
            .await;
        assert_eq!(status, Ok(200));
        let request = server.await.unwrap();
        assert!(
            request.starts_with("GET /ping/s3cret/fail HTTP/1.1"),
            "{request}"
        );
        // A port nobody listens on.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_port = dead.local_addr().unwrap().port();
        drop(dead);
        let err = pinger
            .get(&format!("http://127.0.0.1:{dead_port}/ping/s3cret"))
            .await
            .unwrap_err();
        assert!(err.starts_with("connection failed"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}
