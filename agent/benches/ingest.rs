//! Ingestion throughput of `POST /api/v1/observations` (budget: over 200,000
//! observations/s through the HTTP endpoint, batched, on a 2-core host).
//!
//! Three groups:
//! - `ingest/parse_and_record/1000`: [`parse`] + [`Ingest::record`] of one pre-built body of
//!   1000 observations, in process;
//! - `ingest/samples`: [`Ingest::samples`] over 20 routes x 2 methods after recording;
//! - `ingest/http/1000` and `ingest/http/1000x4`: the real binary (`lookout run`) over
//!   loopback HTTP, one keep-alive connection posting one 1000-observation batch per
//!   iteration, and 4 connections posting one each concurrently. The client shares the
//!   host's cores with the agent, so these figures include its cost.
//!
//! The body is realistic: 20 route templates, GET and POST, about 2% of 5xx, durations
//! log-uniform from 1 ms to 3 s, all from a seeded generator. Run with
//! `cargo bench -p lookout --bench ingest`.

// Benchmarks are test code: a broken setup should stop them loudly.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lookout::api::ingest::parse;
use lookout::collect::ingest::Ingest;
use lookout::settings::Config;
use serde_json::json;

/// Observations per batch.
const BATCH: usize = 1000;
/// Concurrent connections of the parallel HTTP variant.
const CONNECTIONS: usize = 4;

const ROUTES: [&str; 20] = [
    "/",
    "/login",
    "/logout",
    "/health",
    "/search",
    "/users",
    "/users/{id}",
    "/users/{id}/settings",
    "/users/{id}/avatar",
    "/orders",
    "/orders/{id}",
    "/orders/{id}/items",
    "/orders/{id}/items/{item_id}",
    "/products",
    "/products/{id}",
    "/products/{id}/reviews",
    "/cart",
    "/cart/checkout",
    "/api/v2/events",
    "/static/{path}",
];

/// A JSON body of `n` observations. The first 40 cover every route with both methods (so
/// the aggregate has 20 x 2 series); the rest are random.
fn body(n: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(20_260_101);
    let (min, max) = (0.001f64, 3.0f64);
    let observations: Vec<_> = (0..n)
        .map(|i| {
            let (route, post) = if i < 2 * ROUTES.len() {
                (ROUTES[i % ROUTES.len()], i >= ROUTES.len())
            } else {
                (ROUTES[rng.usize(..ROUTES.len())], rng.f64() < 0.3)
            };
            let status = match rng.f64() {
                x if x < 0.02 => [500, 502, 503][rng.usize(..3)],
                x if x < 0.07 => [400, 401, 404][rng.usize(..3)],
                _ if post => 201,
                _ => 200,
            };
            // Log-uniform: as many 1-10 ms requests as 100 ms-1 s ones.
            let duration = min * (max / min).powf(rng.f64());
            json!({
                "route": route,
                "method": if post { "POST" } else { "GET" },
                "status": status,
                "duration_seconds": duration,
            })
        })
        .collect();
    serde_json::to_vec(&observations).unwrap()
}

fn parse_and_record(c: &mut Criterion) {
    let body = body(BATCH);
    let config = Config::builtin().collect.ingest;
    let ingest = Ingest::new(&config, Instant::now());
    assert_eq!(parse(&body).unwrap().len(), BATCH);
    let mut group = c.benchmark_group("ingest/parse_and_record");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(BenchmarkId::from_parameter(BATCH), |b| {
        b.iter(|| {
            let batch = parse(&body).unwrap();
            ingest.record(&batch, Instant::now())
        })
    });
    group.finish();
}

fn samples(c: &mut Criterion) {
    let body = body(BATCH);
    let batch = parse(&body).unwrap();
    let config = Config::builtin().collect.ingest;
    let t0 = Instant::now();
    let ingest = Ingest::new(&config, t0);
    // Ten batches over the first 50 s of the window, so every slot read has data.
    for s in 0..10 {
        ingest.record(&batch, t0 + Duration::from_secs(5 * s));
    }
    let at = t0 + Duration::from_secs(50);
    let series = ingest
        .samples(at)
        .iter()
        .filter(|s| s.metric.name == lookout::catalogue::API_ERROR_RATIO.name)
        .count();
    assert_eq!(series, 2 * ROUTES.len(), "every route x method reported");
    let mut group = c.benchmark_group("ingest");
    group.bench_function("samples", |b| b.iter(|| ingest.samples(at)));
    group.finish();
}

/// A `lookout run` child process with its scratch directory, killed and removed on drop
/// (also when the bench panics).
struct Agent {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Agent {
    fn start() -> Agent {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let dir = std::env::temp_dir().join(format!("lookout-bench-ingest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let config = dir.join("lookout.yaml");
        let mut file = std::fs::File::create(&config).expect("config file");
        write!(
            file,
            "agent: {{listen: \"127.0.0.1:{port}\", data_dir: \"{}\"}}\n\
             collect: {{host: {{enabled: false}}, tcp: {{enabled: false}}}}\n",
            dir.join("data").display()
        )
        .expect("write config");
        let log = std::fs::File::create(dir.join("agent.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_lookout"))
            .arg("run")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn lookout run");
        Agent {
            child,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// Waits until `GET /readyz` answers 200, for 20 s at most.
    async fn wait_ready(&mut self, client: &reqwest::Client) {
        let url = format!("http://{}/readyz", self.addr);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(resp) = client.get(&url).send().await
                && resp.status() == reqwest::StatusCode::OK
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("lookout run exited with {status}; log:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "agent not ready within 20 s; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// POSTs `body` and checks the answer is 200; reads the answer to the end so the connection
/// goes back to the pool.
async fn post(client: &reqwest::Client, url: &str, body: &'static [u8]) {
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST /api/v1/observations");
    let status = resp.status();
    let answer = resp.bytes().await.expect("answer body");
    assert_eq!(
        status,
        reqwest::StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

fn http(c: &mut Criterion) {
    // reqwest wants a process-wide rustls provider even for plain http (`main` installs
    // ring the same way).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Sent as is on every request: no copy per iteration.
    let body: &'static [u8] = body(BATCH).leak();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .expect("HTTP client");
    let mut agent = Agent::start();
    rt.block_on(agent.wait_ready(&client));
    let url = format!("http://{}/api/v1/observations", agent.addr);

    // One batch first: every observation accepted, none under `_overflow`.
    let answer: serde_json::Value = rt.block_on(async {
        let resp = client.post(&url).body(body).send().await.expect("POST");
        assert_eq!(resp.status(), reqwest::StatusCode::OK);
        resp.json().await.expect("JSON answer")
    });
    assert_eq!(answer, json!({"accepted": BATCH, "overflow": 0}));

    let mut group = c.benchmark_group("ingest/http");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(BenchmarkId::from_parameter(BATCH), |b| {
        b.iter(|| rt.block_on(post(&client, &url, body)))
    });
    group.throughput(Throughput::Elements((BATCH * CONNECTIONS) as u64));
    group.bench_function(
        BenchmarkId::from_parameter(format!("{BATCH}x{CONNECTIONS}")),
        |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut posts = tokio::task::JoinSet::new();
                    for _ in 0..CONNECTIONS {
                        let (client, url) = (client.clone(), url.clone());
                        posts.spawn(async move { post(&client, &url, body).await });
                    }
                    // A failed POST panics its task; `join_all` passes the panic on.
                    posts.join_all().await
                })
            })
        },
    );
    group.finish();
    drop(agent);
}

criterion_group!(benches, parse_and_record, samples, http);
criterion_main!(benches);
