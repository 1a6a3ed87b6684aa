#!/usr/bin/env python3
"""The PostgreSQL collector's cost: the duration of one collection run against a database
with 100 tables (and pg_stat_statements holding their statements), and the agent's RSS with
the collector on, beside Debian's prometheus-node-exporter on the same machine.

It starts its own PostgreSQL (Debian's `postgresql`, newest under /usr/lib/postgresql) in a
scratch directory on a free loopback port (as the `postgres` user when run as root), makes
100 tables with an index and 1,000 rows each, runs queries on all of them so that
pg_stat_statements tracks a few hundred statements, then runs the agent with the host
collectors at their defaults and the PostgreSQL target every second, and reads
`lookout_collector_duration_seconds{collector="postgres:main"}` once a second.

Usage: bench/postgres.py [--lookout target/release/lookout] [--runs 60] [--tables 100]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import free_port, get, rss_kib, wait_ready  # noqa: E402

PASSWORD = "bench"


def bin_dir():
    versions = sorted(
        (int(v), f"/usr/lib/postgresql/{v}/bin")
        for v in os.listdir("/usr/lib/postgresql") if v.isdigit()
    ) if os.path.isdir("/usr/lib/postgresql") else []
    if not versions:
        sys.exit("no PostgreSQL server: apt-get install -y postgresql")
    return versions[-1][1]


def as_postgres(cmd):
    if os.geteuid() == 0:
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] + cmd
    return cmd


def psql(port, db, sql):
    out = subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(port),
         "-U", "postgres", "-d", db, "-c", sql],
        env={**os.environ, "PGPASSWORD": PASSWORD}, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"psql {sql[:80]}: {out.stderr}")
    return out.stdout.strip()


def metric(port, name, labels):
    for line in get(port)[1].decode().splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def start_agent(binary, tmp, name, pg_port):
    port = free_port()
    config = os.path.join(tmp, f"{name}.yaml")
    with open(config, "w") as f:
        f.write(f"agent:\n  listen: 127.0.0.1:{port}\n  data_dir: {tmp}/data-{name}\n")
        if pg_port:
            with open(os.path.join(tmp, "pgpass"), "w") as p:
                p.write(PASSWORD)
            f.write(f"collect:\n  postgres:\n    - {{name: main, url: \"postgres://lookout@127.0.0.1:{pg_port}/app\", "
                    f"password_file: {tmp}/pgpass, interval: 1s}}\n")
    proc = subprocess.Popen([binary, "run", "-c", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "LOOKOUT_LOG": "warn"})
    wait_ready(port, "/readyz")
    return proc, port


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lookout", default="target/release/lookout")
    ap.add_argument("--node-exporter", default=shutil.which("prometheus-node-exporter") or "prometheus-node-exporter")
    ap.add_argument("--runs", type=int, default=60, help="collection runs read (one a second)")
    ap.add_argument("--tables", type=int, default=100)
    args = ap.parse_args()
    if not os.path.exists(args.lookout):
        sys.exit(f"{args.lookout} not found: build it with `cargo build --release -p lookout`")
    bindir = bin_dir()
    with tempfile.TemporaryDirectory(prefix="lookout-pg-bench-") as tmp:
        os.chmod(tmp, 0o755)
        data = os.path.join(tmp, "pg")
        pw = os.path.join(tmp, "pw")
        with open(pw, "w") as f:
            f.write(PASSWORD)
        if os.geteuid() == 0:
            shutil.chown(tmp, "postgres", "postgres")
            shutil.chown(pw, "postgres", "postgres")
        subprocess.run(as_postgres([f"{bindir}/initdb", "-D", data, "-U", "postgres", "--auth=scram-sha-256",
                                    f"--pwfile={pw}", "--no-sync"]), check=True, capture_output=True)
        pg_port = free_port()
        server = subprocess.Popen(
            as_postgres([f"{bindir}/postgres", "-D", data, "-p", str(pg_port), "-k", tmp,
                         "-c", "listen_addresses=127.0.0.1", "-c", "shared_preload_libraries=pg_stat_statements",
                         "-c", "fsync=off"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        agents = []
        node = None
        try:
            deadline = time.time() + 30
            while True:
                try:
                    psql(pg_port, "postgres", "SELECT 1")
                    break
                except RuntimeError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.2)
            psql(pg_port, "postgres", f"CREATE ROLE lookout LOGIN PASSWORD '{PASSWORD}' IN ROLE pg_monitor")
            psql(pg_port, "postgres", "CREATE DATABASE app")
            psql(pg_port, "app", "CREATE EXTENSION pg_stat_statements")
            ddl = "".join(
                f"CREATE TABLE t{i} (id int PRIMARY KEY, v text); "
                f"INSERT INTO t{i} SELECT g, md5(g::text) FROM generate_series(1, 1000) g; "
                for i in range(args.tables))
            psql(pg_port, "app", ddl)
            work = "".join(f"SELECT count(*) FROM t{i} WHERE id < {i * 7}; SELECT v FROM t{i} WHERE id = 3; "
                           for i in range(args.tables))
            psql(pg_port, "app", work)
            statements = psql(pg_port, "app", "SELECT count(*) FROM pg_stat_statements")

            node_port = free_port()
            node = subprocess.Popen([args.node_exporter, f"--web.listen-address=127.0.0.1:{node_port}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_ready(node_port, "/metrics")
            with_pg, with_port = start_agent(args.lookout, tmp, "with", pg_port)
            without, without_port = start_agent(args.lookout, tmp, "without", None)
            agents = [with_pg, without]
            time.sleep(12)
            durations = []
            for _ in range(args.runs):
                tick = time.time()
                d = metric(with_port, "lookout_collector_duration_seconds", {"collector": "postgres:main"})
                if d is not None:
                    durations.append(d * 1000)
                get(without_port)
                get(node_port)
                time.sleep(max(0.0, 1.0 - (time.time() - tick)))
            up = metric(with_port, "lookout_postgres_up", {"target": "main"})
            rss = {"with": rss_kib(with_pg.pid) / 1024, "without": rss_kib(without.pid) / 1024,
                   "node": rss_kib(node.pid) / 1024}
        finally:
            for p in agents + [node]:
                if p:
                    p.terminate()
                    p.wait(10)
            server.terminate()
            server.wait(30)

    durations.sort()
    print(f"database: {args.tables} tables, {statements} statements in pg_stat_statements; lookout_postgres_up {up}")
    print(f"one collection run over {len(durations)} runs: median {statistics.median(durations):.2f} ms, "
          f"p95 {durations[int(len(durations) * 0.95) - 1]:.2f} ms, max {durations[-1]:.2f} ms")
    print(f"RSS: lookout with PostgreSQL {rss['with']:.2f} MiB, without {rss['without']:.2f} MiB "
          f"(+{rss['with'] - rss['without']:.2f}), node_exporter {rss['node']:.2f} MiB; "
          f"ratio with PostgreSQL {rss['with'] / rss['node']:.3f}")


if __name__ == "__main__":
    main()
