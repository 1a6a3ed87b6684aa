#!/usr/bin/env bash
# Builds lookout in release mode, installs node_exporter if missing, and runs bench/compare.py
# twice: on an empty history, and started on 24 h of history of the host series.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v prometheus-node-exporter >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus-node-exporter
fi
cargo build --release --locked -p lookout
# A day of history of the host series (the captured trace replayed), for the RSS with 24 h.
cargo run --release --locked -q --example history_day -- target/history-day.bin 24
echo "== default configuration, empty history"
python3 bench/compare.py "$@"
echo "== default configuration, started on 24 h of history"
exec python3 bench/compare.py --history target/history-day.bin "$@"
