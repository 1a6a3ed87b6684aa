#!/usr/bin/env bash
# Builds lookout in release mode, installs node_exporter if missing, and runs bench/compare.py.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v prometheus-node-exporter >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus-node-exporter
fi
cargo build --release --locked -p lookout
exec python3 bench/compare.py "$@"
