//! `/metrics` of a live agent: accepted by the real `promtool`, names from the catalogue,
//! `host` on every sample, and every host metric of the catalogue present.

use std::time::Duration;

use lookout_tests::{Agent, find};

#[test]
fn live_metrics_pass_promtool_and_follow_the_catalogue() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let agent = Agent::start(&format!(
        "collect:\n  host:\n    interval: 1s\n    timeout: 1s\n  tcp:\n    interval: 1s\n    timeout: 1s\n    ports: [{port}]\n"
    ));
    // Rates and ratios appear from the second run on.
    agent.wait_for(Duration::from_secs(5), |m| {
        find(m, "lookout_cpu_usage_ratio", &[]).map(|_| ())
    });
    agent.wait_for(Duration::from_secs(5), |m| {
        find(
            m,
            "lookout_network_receive_bytes_per_second",
            &[("device", "lo")],
        )
        .map(|_| ())
    });
    let (status, body) = agent.get("/metrics");
    assert_eq!(status, 200);

    lookout_tests::assert_promtool_accepts_metrics(&body);

    let samples = lookout_tests::parse_exposition(&body);
    for s in &samples {
        assert!(
            lookout::catalogue::lookup(&s.name).is_some(),
            "{} is not in the catalogue",
            s.name
        );
        assert_eq!(
            s.labels.get("host").map(String::as_str),
            Some("test-host"),
            "{s:?}"
        );
    }
    let required = [
        "lookout_cpu_usage_ratio",
        "lookout_cpu_seconds_total",
        "lookout_load1",
        "lookout_load5",
        "lookout_load15",
        "lookout_cpus",
        "lookout_memory_total_bytes",
        "lookout_memory_available_bytes",
        "lookout_memory_usage_ratio",
        "lookout_swap_usage_ratio",
        "lookout_filesystem_size_bytes",
        "lookout_filesystem_avail_bytes",
        "lookout_filesystem_usage_ratio",
        "lookout_filesystem_inodes_usage_ratio",
        "lookout_disk_read_bytes_total",
        "lookout_disk_written_bytes_total",
        "lookout_disk_io_time_ratio",
        "lookout_network_receive_bytes_total",
        "lookout_network_transmit_bytes_total",
        "lookout_network_receive_errors_total",
        "lookout_network_transmit_errors_total",
        "lookout_network_receive_drops_total",
        "lookout_network_transmit_drops_total",
        "lookout_network_receive_bytes_per_second",
        "lookout_network_transmit_bytes_per_second",
        "lookout_tcp_connections",
        "lookout_tcp_port_connections",
        "lookout_uptime_seconds",
        "lookout_processes",
        "lookout_collector_up",
        "lookout_collector_duration_seconds",
        "lookout_build_info",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ];
    for name in required {
        assert!(
            samples.iter().any(|s| s.name == name),
            "{name} missing from /metrics"
        );
    }
    for s in samples.iter().filter(|s| s.name == "lookout_collector_up") {
        assert_eq!(s.value, 1.0, "collector down: {s:?}\n{}", agent.log());
    }
    for s in samples.iter().filter(|s| s.name.ends_with("_ratio")) {
        assert!((0.0..=1.0).contains(&s.value), "ratio out of 0..1: {s:?}");
    }
}

#[test]
fn histograms_render_as_promtool_expects() {
    use lookout::catalogue::{API_REQUEST_DURATION_SECONDS, PROBE_DURATION_SECONDS_HIST};
    use lookout::collect::histogram::{Histogram, LATENCY_BUCKETS};
    let mut store = lookout::store::Store::default();
    for (route, values) in [("/a", vec![0.003, 0.2, 1.5]), ("/b", vec![12.0])] {
        let mut h = Histogram::new(LATENCY_BUCKETS);
        values.iter().for_each(|v| h.observe(*v));
        let labels = vec![("route", route.to_string()), ("method", "GET".to_string())];
        store.apply(route, h.samples(&API_REQUEST_DURATION_SECONDS, &labels), 1);
    }
    let mut probe = Histogram::new(LATENCY_BUCKETS);
    probe.observe(0.04);
    store.apply(
        "probe",
        probe.samples(&PROBE_DURATION_SECONDS_HIST, &vec![("probe", "api".into())]),
        1,
    );
    let body = lookout::api::exposition::render(&store, "h");
    lookout_tests::assert_promtool_accepts_metrics(&body);
    // Independently of the renderer: /a has 3 observations, 2 of them at or below 0.25 s.
    let samples = lookout_tests::parse_exposition(&body);
    let bucket = |le: &str| {
        find(
            &samples,
            "lookout_api_request_duration_seconds_bucket",
            &[("route", "/a"), ("le", le)],
        )
        .map(|s| s.value)
    };
    assert_eq!(bucket("0.25"), Some(2.0));
    assert_eq!(bucket("+Inf"), Some(3.0));
    assert_eq!(
        find(
            &samples,
            "lookout_api_request_duration_seconds_count",
            &[("route", "/b")]
        )
        .map(|s| s.value),
        Some(1.0)
    );
}
