#!/usr/bin/env bash
# Installs the test peers that are missing (Debian packages; idempotent) and runs every check
# and test of the workspace: formatting, clippy, the unit tests, and the integration tests
# that drive the real binary beside real peers (promtool, node_exporter).
set -euo pipefail
cd "$(dirname "$0")/.."

# program -> Debian package providing it
peers=(
  "promtool prometheus"
  "prometheus prometheus"
  "prometheus-node-exporter prometheus-node-exporter"
  "df coreutils"
  "kill procps"
  "prometheus-alertmanager prometheus-alertmanager"
  "redis-server redis-server"
  "systemd-analyze systemd"
  "dpkg-deb dpkg"
  "faketime faketime"
  "openssl openssl"
  "curl curl"
  "prlimit util-linux"
  "chromium chromium"
  "chromedriver chromium-driver"
  "psql postgresql-client"
  "prometheus-postgres-exporter prometheus-postgres-exporter"
)
missing=()
for entry in "${peers[@]}"; do
  read -r program package <<<"$entry"
  command -v "$program" >/dev/null 2>&1 || missing+=("$package")
done
# The PostgreSQL server's programs are not on PATH: Debian puts them under
# /usr/lib/postgresql/N/bin (the tests take the newest). The package also creates the
# `postgres` user the tests run the server as when they run as root.
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=("postgresql")
id postgres >/dev/null 2>&1 || missing+=("postgresql")
# The SMTP test peer is a Python module: Debian's python3 must import it (another python3
# first on PATH, such as pyenv's, does not see Debian's packages; the tests use /usr/bin/python3).
/usr/bin/python3 -c "import aiosmtpd" >/dev/null 2>&1 || missing+=("python3-aiosmtpd")
# The packaging tests read the Kubernetes manifests with PyYAML (kubectl's YAML 1.1 reading).
/usr/bin/python3 -c "import yaml" >/dev/null 2>&1 || missing+=("python3-yaml")
# One package can be asked for twice (prometheus and promtool, both checks of postgresql):
# name it once.
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk 'NF && !seen[$0]++')
if ((${#missing[@]})); then
  echo "installing test peers: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The packaging tests build the .deb with cargo-deb (a crates.io tool, not a Debian package),
# pinned to the version they were written against; compiled once, in about a minute.
if ! cargo deb --version >/dev/null 2>&1; then
  echo "installing cargo-deb"
  cargo install cargo-deb --locked --version 3.8.0
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The integration tests run the real binary: build it first.
cargo build --workspace --locked --bins
cargo test --workspace --locked
