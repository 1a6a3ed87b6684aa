#!/usr/bin/env python3
"""Measures lookout's alert latency on this machine: from the moment a threshold is crossed
to the moment the webhook receives the notification, against the budget of one evaluation
interval + 200 ms.

The agent probes an HTTP target every 1.3 s (an in-process server that answers 200 until
the benchmark switches it to 500), evaluates `lookout_probe_success < 1` every second and
delivers to an in-process webhook with group_wait 0s. The probe's period differs from the
evaluation's so that, over the rounds, the crossing falls at every phase of the evaluation
tick (with equal periods it would always land just before one). Each round switches the
target to 500 at a random moment, then records:

  crossed   when the first failing probe result landed in the agent's store (the probe
            collector's last_run_ms in /api/v1/status, polled every 5 ms)
  evaluated the firing notification's startsAt (the evaluation that decided it)
  received  when the webhook got the POST

and prints crossed -> received (the figure the budget is about), split into
crossed -> evaluated (at most one evaluation interval by design) and evaluated -> received
(the delivery path: intake, outbox fsync, HTTP). The target is switched back and the
resolve awaited before the next round. This prints figures, it is not a test: it exits
non-zero only when it cannot measure (the agent does not start, a notification never
comes), never because of a figure.

Usage: bench/alert_latency.py [--lookout target/release/lookout] [--rounds 10]
"""
import argparse
import http.client
import http.server
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime

EVALUATION_INTERVAL_MS = 1000
DELIVERY_BUDGET_MS = 200
PROBE_INTERVAL = "1300ms"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Target:
    """The probed server: 200 while healthy, 500 once failing."""

    def __init__(self):
        self.failing = False
        target = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = b"target\n"
                self.send_response(500 if target.failing else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Hook:
    """The webhook receiver: every POST with its receive time."""

    def __init__(self):
        self.received = []
        self.cond = threading.Condition()
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                at = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with hook.cond:
                    hook.received.append((at, json.loads(body)))
                    hook.cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count, status, limit=30):
        """The `count`th POST (1-based), which must carry `status`."""
        deadline = time.time() + limit
        with self.cond:
            while len(self.received) < count:
                left = deadline - time.time()
                if left <= 0:
                    sys.exit(f"no webhook POST #{count} ({status}) within {limit} s")
                self.cond.wait(left)
            at, body = self.received[count - 1]
        if body["status"] != status:
            sys.exit(f"webhook POST #{count} is {body['status']}, expected {status}: {body}")
        return at, body


def get_json(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_ready(port, proc, limit=30):
    deadline = time.time() + limit
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"lookout exited with {proc.returncode}")
        try:
            if get_json(port, "/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit("lookout did not become ready")


def probe_status(port):
    """(last_run_ms, lookout_probe_success) of the probe collector."""
    status, body = get_json(port, "/api/v1/status")
    if status != 200:
        sys.exit(f"/api/v1/status answered {status}")
    probe = json.loads(body)["collectors"]["probe:target"]
    success = next(
        (v["value"] for v in probe["values"] if v["metric"] == "lookout_probe_success"), None
    )
    return probe["last_run_ms"], success


def crossing_ms(port, limit=10):
    """When the first failing probe result landed in the store (ms since the epoch)."""
    deadline = time.time() + limit
    while time.time() < deadline:
        last_run_ms, success = probe_status(port)
        if success == 0.0:
            return last_run_ms
        time.sleep(0.005)
    sys.exit(f"the probe did not fail within {limit} s")


def epoch_ms(rfc3339):
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lookout", default="target/release/lookout")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    if not os.access(args.lookout, os.X_OK):
        sys.exit(f"{args.lookout} is not an executable; build it (bench/alert_latency.sh does)")

    target, hook = Target(), Hook()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="lookout-latency-") as tmp:
        with open(os.path.join(tmp, "rules.yaml"), "w") as f:
            f.write(
                "groups:\n  - name: latency\n    interval: 1s\n    rules:\n"
                "      - alert: TargetDown\n        expr: lookout_probe_success\n"
                '        critical: "< 1"\n'
            )
        config = os.path.join(tmp, "lookout.yaml")
        with open(config, "w") as f:
            f.write(
                f"agent:\n  hostname: latency-bench\n  listen: 127.0.0.1:{port}\n"
                f"  data_dir: {os.path.join(tmp, 'data')}\n"
                "collect:\n  host: {enabled: false}\n  tcp: {enabled: false}\n"
                "  http_probes:\n"
                f'    - {{name: target, url: "http://127.0.0.1:{target.port}/", '
                f"interval: {PROBE_INTERVAL}, timeout: 500ms}}\n"
                f"rules:\n  files: [rules.yaml]\n  evaluation_interval: 1s\n"
                "notify:\n  group_wait: 0s\n  receivers:\n    - name: hook\n"
                f'      webhook: {{url: "http://127.0.0.1:{hook.port}/hook", timeout: 2s}}\n'
            )
        with open(os.path.join(tmp, "agent.log"), "w") as log:
            proc = subprocess.Popen(
                [args.lookout, "run", "-c", config], stdout=subprocess.DEVNULL, stderr=log
            )
            try:
                wait_ready(port, proc)
                rounds = run_rounds(port, target, hook, args.rounds)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    report(args.lookout, rounds)


def run_rounds(port, target, hook, n):
    rounds = []
    posts = 0
    for i in range(n):
        # A random phase against the probe and evaluation ticks.
        time.sleep(1.5 + random.random())
        target.failing = True
        crossed = crossing_ms(port)
        posts += 1
        received, body = hook.wait(posts, "firing")
        evaluated = epoch_ms(body["alerts"][0]["startsAt"])
        received_ms = received * 1000
        rounds.append((received_ms - crossed, evaluated - crossed, received_ms - evaluated))
        print(
            f"round {i + 1:2}: crossed -> received {received_ms - crossed:7.1f} ms "
            f"(crossed -> evaluated {evaluated - crossed:6.1f}, "
            f"evaluated -> received {received_ms - evaluated:5.1f})",
            flush=True,
        )
        target.failing = False
        posts += 1
        hook.wait(posts, "resolved")
    return rounds


def report(binary, rounds):
    budget = EVALUATION_INTERVAL_MS + DELIVERY_BUDGET_MS
    print(f"\nlookout {binary}, {len(rounds)} rounds, evaluation interval {EVALUATION_INTERVAL_MS} ms")
    names = ["crossed -> received", "crossed -> evaluated", "evaluated -> received"]
    for k, name in enumerate(names):
        values = [r[k] for r in rounds]
        print(
            f"  {name:22} median {statistics.median(values):7.1f} ms   "
            f"max {max(values):7.1f} ms"
        )
    worst = max(r[0] for r in rounds)
    verdict = "within" if worst <= budget else "OVER"
    print(f"  budget (evaluation interval + {DELIVERY_BUDGET_MS} ms): {budget} ms; worst {worst:.1f} ms, {verdict}")


if __name__ == "__main__":
    main()
