//! Network interface counters from `/proc/net/dev`.
//!
//! For every interface whose name matches none of `collect.host.exclude_interfaces` (`lo`
//! included by default), emits the receive and transmit `bytes_total`, `errors_total` and
//! `drops_total` counters, and from the second run on
//! `lookout_network_{receive,transmit}_bytes_per_second{device}` over the elapsed time.
//!
//! Kernel quirk: an interface that is deleted and re-created under the same name (a VPN
//! tunnel, a container veth) starts its counters from zero. When either byte counter went
//! backwards, both rates for that interface are left out for the run rather than reported
//! as a huge or negative value. Parsed with `procfs_core::net::InterfaceDeviceStatus`, which
//! skips the two header lines; its map is sorted by name so output order is stable.

use std::collections::HashMap;
use std::time::Instant;

use procfs_core::FromBufRead;
use procfs_core::net::{DeviceStatus, InterfaceDeviceStatus};
use regex::Regex;

use super::Schedule;
use super::procfs::{PreviousRun, procfs_core_message};
use super::{CollectError, Collector, ProcFs, Sample};
use crate::catalogue::{
    NETWORK_RECEIVE_BYTES_PER_SECOND, NETWORK_RECEIVE_BYTES_TOTAL, NETWORK_RECEIVE_DROPS_TOTAL,
    NETWORK_RECEIVE_ERRORS_TOTAL, NETWORK_TRANSMIT_BYTES_PER_SECOND, NETWORK_TRANSMIT_BYTES_TOTAL,
    NETWORK_TRANSMIT_DROPS_TOTAL, NETWORK_TRANSMIT_ERRORS_TOTAL,
};
use crate::config::units as config;

const NET_DEV: &str = "net/dev";

/// Samples per-interface traffic, errors and drops.
#[derive(Debug)]
pub struct NetworkCollector {
    proc: ProcFs,
    schedule: Schedule,
    exclude: Vec<Regex>,
    /// (received, transmitted) bytes of each interface as of the previous successful run,
    /// for the rates.
    prev: PreviousRun<(u64, u64)>,
}

/// Parses `/proc/net/dev` content, sorted by interface name.
fn parse_net_dev(bytes: &[u8]) -> Result<Vec<DeviceStatus>, String> {
    let parsed = InterfaceDeviceStatus::from_buf_read(bytes).map_err(procfs_core_message)?;
    let mut devices: Vec<DeviceStatus> = parsed.0.into_values().collect();
    devices.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(devices)
}

impl NetworkCollector {
    /// A collector reading `net/dev` under `proc`, with the schedule and interface exclusions
    /// of `host`.
    pub fn new(proc: ProcFs, schedule: Schedule, exclude: Vec<Regex>) -> Self {
        NetworkCollector {
            proc,
            schedule,
            exclude,
            prev: PreviousRun::default(),
        }
    }

    /// Builds the samples from one read of `/proc/net/dev` taken at `now`, updating the
    /// remembered counters (interfaces that disappeared are forgotten).
    fn samples_from(&mut self, bytes: &[u8], now: Instant) -> Result<Vec<Sample>, CollectError> {
        let devices = parse_net_dev(bytes).map_err(|e| self.proc.parse_error(NET_DEV, e))?;
        let mut counters = HashMap::new();
        let mut out = Vec::new();
        for dev in devices
            .into_iter()
            .filter(|d| !config::matches_any(&self.exclude, &d.name))
        {
            let device = || [("device", dev.name.clone())];
            for (metric, value) in [
                (&NETWORK_RECEIVE_BYTES_TOTAL, dev.recv_bytes),
                (&NETWORK_TRANSMIT_BYTES_TOTAL, dev.sent_bytes),
                (&NETWORK_RECEIVE_ERRORS_TOTAL, dev.recv_errs),
                (&NETWORK_TRANSMIT_ERRORS_TOTAL, dev.sent_errs),
                (&NETWORK_RECEIVE_DROPS_TOTAL, dev.recv_drop),
                (&NETWORK_TRANSMIT_DROPS_TOTAL, dev.sent_drop),
            ] {
                out.push(Sample::with_labels(metric, device(), value as f64));
            }
            if let Some((secs, (rx_before, tx_before))) = self.prev.before(now, &dev.name)
                && let (Some(rx), Some(tx)) = (
                    dev.recv_bytes.checked_sub(*rx_before),
                    dev.sent_bytes.checked_sub(*tx_before),
                )
            {
                for (metric, bytes) in [
                    (&NETWORK_RECEIVE_BYTES_PER_SECOND, rx),
                    (&NETWORK_TRANSMIT_BYTES_PER_SECOND, tx),
                ] {
                    out.push(Sample::with_labels(metric, device(), bytes as f64 / secs));
                }
            }
            counters.insert(dev.name, (dev.recv_bytes, dev.sent_bytes));
        }
        self.prev.replace(now, counters);
        Ok(out)
    }
}

impl Collector for NetworkCollector {
    fn name(&self) -> &str {
        "network"
    }

    fn schedule(&self) -> Schedule {
        self.schedule
    }

    fn collect(&mut self, now: Instant) -> Result<Vec<Sample>, CollectError> {
        let bytes = self.proc.read(NET_DEV)?;
        self.samples_from(&bytes, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::procfs::{
        device_value as value, devices, fixture, test_schedule, whole_names,
    };
    use std::path::Path;
    use std::time::Duration;

    const HEADER: &str = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n";

    /// The 16 counters of the fixture's line for `iface`, read with plain string operations.
    fn fields(dir: &str, iface: &str) -> Vec<u64> {
        let text = std::fs::read_to_string(fixture(dir).path("net/dev")).unwrap();
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{iface}:")))
            .unwrap();
        let (_, counters) = line.split_once(':').unwrap();
        counters
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect()
    }

    /// A `/proc/net/dev` with one line per `(name, rx bytes, tx bytes)`.
    fn net_dev(ifaces: &[(&str, u64, u64)]) -> String {
        let mut s = HEADER.to_string();
        for (name, rx, tx) in ifaces {
            s.push_str(&format!(
                "{name:>6}: {rx} 1 0 0 0 0 0 0 {tx} 1 0 0 0 0 0 0\n"
            ));
        }
        s
    }

    #[test]
    fn fixtures_give_counters_then_rates() {
        let mut c = NetworkCollector::new(fixture("t0"), test_schedule(), whole_names(&[]));
        let t0 = Instant::now();
        let first = c.collect(t0).unwrap();
        let lo0 = fields("t0", "lo");
        // Receive: bytes packets errs drop fifo frame compressed multicast; transmit from index 8.
        for (metric, field) in [
            ("lookout_network_receive_bytes_total", 0),
            ("lookout_network_transmit_bytes_total", 8),
            ("lookout_network_receive_errors_total", 2),
            ("lookout_network_transmit_errors_total", 10),
            ("lookout_network_receive_drops_total", 3),
            ("lookout_network_transmit_drops_total", 11),
        ] {
            assert_eq!(
                value(&first, metric, "lo"),
                Some(lo0[field] as f64),
                "{metric}"
            );
        }
        assert_eq!(
            value(&first, "lookout_network_receive_bytes_per_second", "lo"),
            None
        );

        c.proc = fixture("t1");
        let second = c.collect(t0 + Duration::from_secs(1)).unwrap();
        let lo1 = fields("t1", "lo");
        assert!(
            lo1[0] > lo0[0],
            "the fixture was captured with loopback traffic"
        );
        assert_eq!(
            value(&second, "lookout_network_receive_bytes_per_second", "lo"),
            Some((lo1[0] - lo0[0]) as f64)
        );
        assert_eq!(
            value(&second, "lookout_network_transmit_bytes_per_second", "lo"),
            Some((lo1[8] - lo0[8]) as f64)
        );
    }

    #[test]
    fn every_interface_is_reported_sorted_unless_excluded() {
        let text = std::fs::read_to_string(fixture("t0").path("net/dev")).unwrap();
        let mut names: Vec<String> = text
            .lines()
            .skip(2)
            .map(|l| l.split(':').next().unwrap().trim().to_string())
            .collect();
        names.sort();
        assert!(names.contains(&"lo".to_string()));
        let samples = NetworkCollector::new(fixture("t0"), test_schedule(), whole_names(&[]))
            .collect(Instant::now())
            .unwrap();
        assert_eq!(devices(&samples), names);

        let samples = NetworkCollector::new(
            fixture("t0"),
            test_schedule(),
            whole_names(&["lo", "ifb\\d+"]),
        )
        .collect(Instant::now())
        .unwrap();
        names.retain(|n| n != "lo" && !n.starts_with("ifb"));
        assert_eq!(devices(&samples), names);
    }

    #[test]
    fn exclusions_match_whole_names() {
        let text = net_dev(&[("eth0", 0, 0), ("veth12ab", 0, 0), ("eth0.100", 0, 0)]);
        let mut c = NetworkCollector::new(
            fixture("t0"),
            test_schedule(),
            whole_names(&["veth.*", "eth0"]),
        );
        let samples = c.samples_from(text.as_bytes(), Instant::now()).unwrap();
        assert_eq!(devices(&samples), ["eth0.100"]);
    }

    #[test]
    fn rate_edge_cases() {
        let t0 = Instant::now();
        // ((rx, tx) before, after, elapsed, expected (rx, tx) rates; comment says why)
        let cases = [
            (
                (1000, 500),
                (3000, 1500),
                Duration::from_secs(2),
                Some((1000.0, 500.0)),
            ), // plain
            (
                (1000, 500),
                (1000, 500),
                Duration::from_secs(1),
                Some((0.0, 0.0)),
            ), // idle
            ((1000, 500), (10, 1500), Duration::from_secs(1), None), // re-created: rx reset
            ((1000, 500), (3000, 1500), Duration::ZERO, None),       // no time elapsed
        ];
        for (before, after, elapsed, want) in cases {
            let mut c = NetworkCollector::new(fixture("t0"), test_schedule(), whole_names(&[]));
            c.samples_from(net_dev(&[("eth0", before.0, before.1)]).as_bytes(), t0)
                .unwrap();
            let s = c
                .samples_from(
                    net_dev(&[("eth0", after.0, after.1)]).as_bytes(),
                    t0 + elapsed,
                )
                .unwrap();
            let got = value(&s, "lookout_network_receive_bytes_per_second", "eth0").zip(value(
                &s,
                "lookout_network_transmit_bytes_per_second",
                "eth0",
            ));
            assert_eq!(got, want, "{before:?} -> {after:?} in {elapsed:?}");
            if want.is_none() {
                assert!(value(&s, "lookout_network_transmit_bytes_per_second", "eth0").is_none());
            }
        }
    }

    #[test]
    fn interfaces_that_disappear_are_forgotten() {
        let t0 = Instant::now();
        let mut c = NetworkCollector::new(fixture("t0"), test_schedule(), whole_names(&[]));
        c.samples_from(
            net_dev(&[("eth0", 10, 10), ("tun0", 500, 500)]).as_bytes(),
            t0,
        )
        .unwrap();
        let s = c
            .samples_from(
                net_dev(&[("eth0", 20, 20)]).as_bytes(),
                t0 + Duration::from_secs(1),
            )
            .unwrap();
        assert_eq!(devices(&s), ["eth0"]);
        assert!(!c.prev.remembers("tun0"));
        // tun0 comes back with higher counters: still a first sighting, no rate.
        let s = c
            .samples_from(
                net_dev(&[("eth0", 30, 30), ("tun0", 900, 900)]).as_bytes(),
                t0 + Duration::from_secs(2),
            )
            .unwrap();
        assert_eq!(
            value(&s, "lookout_network_receive_bytes_per_second", "tun0"),
            None
        );
        assert_eq!(
            value(&s, "lookout_network_receive_bytes_per_second", "eth0"),
            Some(10.0)
        );
    }

    #[test]
    fn bad_content_is_rejected() {
        // (content, part of the expected message)
        let cases: &[(String, &str)] = &[
            (
                format!("{HEADER}  eth0: 1 2 3\n"),
                "a line or field is missing",
            ), // truncated line
            (
                format!("{HEADER}  eth0: 1 2 x 0 0 0 0 0 1 1 0 0 0 0 0 0\n"),
                "malformed field",
            ),
            (format!("{HEADER}garbage\n"), "missing"),
        ];
        for (content, want) in cases {
            let err = parse_net_dev(content.as_bytes()).unwrap_err();
            assert!(err.contains(want), "{content:?}: {err}");
        }
        assert!(
            parse_net_dev(HEADER.as_bytes()).unwrap().is_empty(),
            "headers only: no interface"
        );
    }

    #[test]
    fn errors_name_the_file() {
        crate::collect::procfs::assert_errors_name_the_file(
            |proc| NetworkCollector::new(proc, test_schedule(), whole_names(&[])),
            "net/dev",
        );
    }

    #[test]
    fn live_host_smoke() {
        let samples = NetworkCollector::new(
            ProcFs::new(Path::new("/proc")),
            test_schedule(),
            whole_names(&[]),
        )
        .collect(Instant::now())
        .unwrap();
        assert!(value(&samples, "lookout_network_receive_bytes_total", "lo").is_some());
    }
}
