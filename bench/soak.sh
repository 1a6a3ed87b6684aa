#!/usr/bin/env bash
# Builds lookout in release mode, installs redis-server if missing, and runs bench/soak.py:
# the agent under application load and peer outages for --minutes (default 60), printing
# RSS, fds, threads and CPU every minute, then what was delivered against what fired.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-server
fi
cargo build --release --locked -p lookout
exec python3 bench/soak.py "$@"
