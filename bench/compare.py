#!/usr/bin/env python3
"""Runs lookout beside Debian's prometheus-node-exporter on this machine and prints, side by
side and as ratios: steady RSS, CPU seconds while each is scraped every second for a window,
and /metrics latency p50/p99 over repeated requests. Then lookout alone at a 1 s interval,
as a share of one core.

With --history FILE (a snapshot written by `cargo run --release --example history_day --
FILE`, which compare.sh makes), the agent starts on that day of history of the host series,
so its RSS includes 24 h of history.

Usage: bench/compare.py [--lookout target/release/lookout] [--window 30] [--requests 100]
                        [--history FILE]
"""
import argparse
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the comm.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def get(port, path="/metrics"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, body
    finally:
        conn.close()


def wait_ready(port, path, limit=30):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            if get(port, path)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answered 200 on port {port}{path} within {limit}s")


def latencies(port, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        status, _ = get(port)
        times.append((time.perf_counter() - t) * 1000)
        if status != 200:
            raise RuntimeError(f"/metrics on {port} answered {status}")
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]


def start_lookout(binary, port, interval, tmp, history=None):
    if history:
        os.makedirs(f"{tmp}/data", exist_ok=True)
        shutil.copyfile(history, f"{tmp}/data/history.bin")
    config = os.path.join(tmp, f"lookout-{interval}.yaml")
    with open(config, "w") as f:
        f.write(
            f"agent:\n  listen: 127.0.0.1:{port}\n  data_dir: {tmp}/data\n"
            f"collect:\n  host:\n    interval: {interval}\n  tcp:\n    interval: {interval}\n    ports: [{port}]\n"
        )
    proc = subprocess.Popen([binary, "run", "-c", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "LOOKOUT_LOG": "warn"})
    wait_ready(port, "/readyz")
    return proc


def measure(procs, window):
    """Scrapes every process once a second for `window` seconds; returns CPU seconds used and RSS."""
    cpu0 = {name: cpu_seconds(p.pid) for name, (p, _) in procs.items()}
    rss_max = {name: 0 for name in procs}
    end = time.time() + window
    while time.time() < end:
        tick = time.time()
        for name, (p, port) in procs.items():
            get(port)
            rss_max[name] = max(rss_max[name], rss_kib(p.pid))
        time.sleep(max(0.0, 1.0 - (time.time() - tick)))
    cpu = {name: cpu_seconds(p.pid) - cpu0[name] for name, (p, _) in procs.items()}
    rss_last = {name: rss_kib(p.pid) for name, (p, _) in procs.items()}
    return cpu, rss_max, rss_last


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lookout", default="target/release/lookout")
    ap.add_argument("--node-exporter", default=shutil.which("prometheus-node-exporter") or "prometheus-node-exporter")
    ap.add_argument("--window", type=int, default=30, help="seconds of scraping for the CPU figure")
    ap.add_argument("--requests", type=int, default=100, help="requests for the latency figure")
    ap.add_argument("--warmup", type=int, default=12, help="seconds before measuring (lookout runs twice at 10s)")
    ap.add_argument("--history", help="a history snapshot the agent starts on (data_dir/history.bin)")
    args = ap.parse_args()
    if not os.path.exists(args.lookout):
        sys.exit(f"{args.lookout} not found: build it with `cargo build --release -p lookout`")
    if not shutil.which(args.node_exporter) and not os.path.exists(args.node_exporter):
        sys.exit("prometheus-node-exporter not found: apt-get install -y prometheus-node-exporter")

    with tempfile.TemporaryDirectory(prefix="lookout-bench-") as tmp:
        ne_port, lo_port = free_port(), free_port()
        node = subprocess.Popen([args.node_exporter, f"--web.listen-address=127.0.0.1:{ne_port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        agent = None
        try:
            wait_ready(ne_port, "/metrics")
            agent = start_lookout(args.lookout, lo_port, "10s", tmp, args.history)
            if args.history:
                status, body = get(lo_port, "/metrics")
                held = [l for l in body.decode().splitlines() if l.startswith("lookout_history_bytes")]
                print(f"agent started on {args.history}: {held[0] if held else 'lookout_history_bytes not yet exported'}")
            procs = {"lookout": (agent, lo_port), "node_exporter": (node, ne_port)}
            end = time.time() + args.warmup
            while time.time() < end:
                for _, port in procs.values():
                    get(port)
                time.sleep(1)
            cpu, rss_max, rss_last = measure(procs, args.window)
            lat = {name: latencies(port, args.requests) for name, (_, port) in procs.items()}
            series = {name: sum(1 for l in get(port)[1].decode().splitlines() if l and not l.startswith("#"))
                      for name, (_, port) in procs.items()}
        finally:
            for p in (agent, node):
                if p:
                    p.terminate()
                    p.wait(10)

        # lookout alone at 1 s: CPU as a share of one core over the window.
        port = free_port()
        fast = start_lookout(args.lookout, port, "1s", tmp)
        try:
            time.sleep(3)
            c0, t0 = cpu_seconds(fast.pid), time.time()
            time.sleep(args.window)
            fast_share = (cpu_seconds(fast.pid) - c0) / (time.time() - t0)
            fast_rss = rss_kib(fast.pid)
        finally:
            fast.terminate()
            fast.wait(10)

    def row(label, a, b, unit, budget=None):
        ratio = a / b if b else float("inf")
        verdict = "" if budget is None else ("  ok" if ratio <= budget else f"  MISSED (budget <= {budget})")
        print(f"{label:<34}{a:>12.3f}{b:>16.3f}  {unit:<6}{ratio:>8.3f}{verdict}")

    print(f"{'':<34}{'lookout':>12}{'node_exporter':>16}  {'unit':<6}{'ratio':>8}")
    row("steady RSS (last)", rss_last["lookout"] / 1024, rss_last["node_exporter"] / 1024, "MiB", 0.5)
    row("RSS max during window", rss_max["lookout"] / 1024, rss_max["node_exporter"] / 1024, "MiB")
    row(f"CPU seconds, {args.window}s scraped at 1s", cpu["lookout"], cpu["node_exporter"], "s", 0.5)
    row(f"/metrics p50 ({args.requests} req)", lat["lookout"][0], lat["node_exporter"][0], "ms", 0.1)
    row(f"/metrics p99 ({args.requests} req)", lat["lookout"][1], lat["node_exporter"][1], "ms")
    row("samples per scrape", series["lookout"], series["node_exporter"], "")
    print(f"lookout at a 1s interval: {fast_share * 100:.3f}% of one core over {args.window}s, RSS {fast_rss / 1024:.1f} MiB"
          f"  {'ok' if fast_share < 0.01 else 'MISSED (budget < 1%)'}")
    print(f"lookout binary: {os.path.getsize(args.lookout) / 1048576:.1f} MiB")


if __name__ == "__main__":
    main()
