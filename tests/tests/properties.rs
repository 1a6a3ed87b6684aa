//! Properties checked against real peers: the exposition of samples with arbitrary label
//! values (any characters, those the format escapes most of all) is accepted by the real
//! `promtool check metrics` and parses back to the same series and values.
//!
//! The parsers' own properties (configuration, rules, expressions, rule tests, ingestion,
//! Redis INFO, `/proc`) sit beside them in `agent/src` as unit tests; this one needs
//! promtool. Failures are not persisted: proptest prints the shrunk input.

use std::collections::BTreeMap;

use lookout::api::exposition::render;
use lookout::catalogue::{self, Kind, Metric};
use lookout::sample::Sample;
use lookout::store::Store;
use lookout_tests::{assert_promtool_accepts_metrics, parse_exposition};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// `cases` cases unless PROPTEST_CASES says otherwise; no failure files in the source tree.
fn config(cases: u32) -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config.failure_persistence = None;
    config
}

/// A label value of any characters, often those the format escapes.
fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<char>(), 0..24).prop_map(|c| c.into_iter().collect()),
        "[\\\\\"\n{}=, a#\r\t]{0,16}",
    ]
}

/// The catalogue metrics with labels, histograms aside (they are rendered in parts).
fn labelled_metrics() -> Vec<&'static Metric> {
    catalogue::ALL
        .iter()
        .copied()
        .filter(|m| !m.labels.is_empty() && m.kind != Kind::Histogram)
        .collect()
}

proptest! {
    // Each case starts promtool (tens of milliseconds).
    #![proptest_config(config(24))]

    #[test]
    fn promtool_accepts_any_label_values_and_they_parse_back(
        host in label_value(),
        samples in prop::collection::vec(
            (prop::sample::select(labelled_metrics()), prop::collection::vec(label_value(), 4), any::<f64>()),
            1..16,
        ),
    ) {
        let mut expected: BTreeMap<(String, BTreeMap<String, String>), f64> = BTreeMap::new();
        let mut store_samples = Vec::new();
        for (metric, values, value) in samples {
            let labels: Vec<(&'static str, String)> =
                metric.labels.iter().copied().zip(values).collect();
            let mut all: BTreeMap<String, String> =
                labels.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            all.insert("host".into(), host.clone());
            let key = (metric.name.to_string(), all);
            if expected.contains_key(&key) {
                continue;
            }
            expected.insert(key, value);
            store_samples.push(Sample::from_labels(metric, labels, value));
        }
        let mut store = Store::default();
        store.apply("props", store_samples, 1);
        let text = render(&store, &host);

        assert_promtool_accepts_metrics(&text);
        let parsed = parse_exposition(&text);
        prop_assert_eq!(parsed.len(), expected.len(), "{}", text);
        for sample in parsed {
            let want = expected.get(&(sample.name.clone(), sample.labels.clone()));
            prop_assert!(
                want.is_some_and(|w| *w == sample.value || (w.is_nan() && sample.value.is_nan())),
                "{} {:?} = {}: expected {:?}\n{}",
                sample.name,
                sample.labels,
                sample.value,
                want,
                text
            );
        }
    }
}
