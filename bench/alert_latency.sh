#!/usr/bin/env bash
# Builds lookout in release mode and runs bench/alert_latency.py: threshold crossed ->
# webhook received, against the budget of one evaluation interval + 200 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p lookout
exec python3 bench/alert_latency.py "$@"
