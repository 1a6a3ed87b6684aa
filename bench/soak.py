#!/usr/bin/env python3
"""Soak: runs the agent for N minutes under application load and peer outages, and prints
its resident memory, open file descriptors, threads and CPU every minute, then what was
delivered against what fired.

The agent runs with every collector at 1 s and rules evaluated every second, beside:

  - a real redis-server it watches (queue `soak`), stopped for 10 s every --restart-every
    seconds (RedisDown fires and resolves each time);
  - two HTTP probes, one answering 200 and one pointed at a closed port (ProbeFailing
    fires once and stays firing);
  - --rate pushed observations per second (batches of 100) spread over --routes routes
    times GET and POST;
  - a scrape of /metrics every second;
  - a webhook receiver, stopped for 20 s every --restart-every seconds (half a period after
    Redis), so deliveries fail, back off and retry.

Delivery keeps its default retry, breaker and grouping; the rate limit is raised above what
the soak causes, so that a late notification means an outage, not a digest waiting for its
window. A soak rule fires when the `soak` list is non-empty: the driver pushes an item at every
minute's start and deletes the list at its half, so the alert fires and resolves once a
minute. At the end the load stops, the receiver stays up, and the driver waits for the
outbox to drain; then it compares, for SoakQueueHigh, the firings and resolves the driver
caused with what the receiver got (each notification counted once per Idempotency-Key and
alert), and prints the dead letters. It exits 1 if a caused notification never arrived or a
dead letter exists, 2 if it cannot run.

Usage: bench/soak.py [--lookout target/release/lookout] [--minutes 60] [--rate 5000]
                     [--routes 150] [--restart-every 240]
"""
import argparse
import http.client
import http.server
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Receiver:
    """A webhook receiver that can be stopped and started again on the same port."""

    def __init__(self, port):
        self.port = port
        self.lock = threading.Lock()
        # (idempotency key, fingerprint, status, startsAt): a retried message repeats all
        # four; the same alert firing again later, or folded into a digest beside its
        # earlier firings, differs by startsAt.
        self.seen = set()
        self.by_alert = {}  # alert name -> {"firing": n, "resolved": n}
        self.posts = 0
        self.duplicates = 0
        self.server = None

    def start(self):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                key = self.headers.get("Idempotency-Key", "")
                with receiver.lock:
                    receiver.posts += 1
                    for alert in body.get("alerts", []):
                        ident = (key, alert.get("fingerprint"), alert.get("status"),
                                 alert.get("startsAt"))
                        if ident in receiver.seen:
                            receiver.duplicates += 1
                            continue
                        receiver.seen.add(ident)
                        name = alert.get("labels", {}).get("alertname", "?")
                        counts = receiver.by_alert.setdefault(name, {"firing": 0, "resolved": 0})
                        counts[alert.get("status", "?")] = counts.get(alert.get("status", "?"), 0) + 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def count(self, alert, status):
        with self.lock:
            return self.by_alert.get(alert, {}).get(status, 0)


def live_target(port):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Redis:
    def __init__(self, port, workdir):
        self.port = port
        self.workdir = workdir
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.workdir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def command(self, *words):
        """One command over RESP; None when Redis is down."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                payload = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)
                s.sendall(payload.encode())
                return s.recv(4096)
        except OSError:
            return None


def http_get(port, path, timeout=5):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def metric(text, name, labels=""):
    """Sum of the samples of `name` whose label set contains `labels`."""
    total = None
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if labels and labels not in line:
                continue
            total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
    return total


def process_figures(pid):
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    rss_mib = int(status["VmRSS"].split()[0]) / 1024
    anon_mib = int(status["RssAnon"].split()[0]) / 1024
    threads = int(status["Threads"])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    return rss_mib, anon_mib, fds, threads, cpu


class Load(threading.Thread):
    """Posts `rate` observations per second in batches of 100 until stopped."""

    def __init__(self, port, rate, routes):
        super().__init__(daemon=True)
        self.port, self.rate, self.routes = port, rate, routes
        self.stop_flag = threading.Event()
        self.posted = 0
        self.failed = 0

    def run(self):
        batch_size = 100
        batches_per_second = max(1, self.rate // batch_size)
        pairs = [(f"/api/r{r}", m) for r in range(self.routes) for m in ("GET", "POST")]
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        next_at = time.monotonic()
        i = 0
        while not self.stop_flag.is_set():
            batch = []
            for _ in range(batch_size):
                route, method = pairs[i % len(pairs)]
                i += 1
                batch.append({"route": route, "method": method,
                              "status": 500 if random.random() < 0.01 else 200,
                              "duration_seconds": random.expovariate(1 / 0.05)})
            body = json.dumps(batch)
            try:
                conn.request("POST", "/api/v1/observations", body,
                             {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                if response.status == 200 or response.status == 202:
                    self.posted += batch_size
                else:
                    self.failed += 1
            except (OSError, http.client.HTTPException):
                self.failed += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            next_at += 1 / batches_per_second
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lookout", default=os.path.join(REPO, "target/release/lookout"))
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--routes", type=int, default=150)
    parser.add_argument("--restart-every", type=int, default=240)
    args = parser.parse_args()
    for program in ("redis-server",):
        if not shutil.which(program):
            print(f"{program} is missing: apt-get install redis-server", file=sys.stderr)
            return 2
    if not os.access(args.lookout, os.X_OK):
        print(f"{args.lookout} is missing: cargo build --release -p lookout", file=sys.stderr)
        return 2

    work = tempfile.mkdtemp(prefix="lookout-soak-")
    agent_port, redis_port, hook_port, live_port, dead_port = (free_port() for _ in range(5))
    redis = Redis(redis_port, work)
    redis.start()
    receiver = Receiver(hook_port)
    receiver.start()
    live = live_target(live_port)
    with open(os.path.join(work, "soak-rules.yaml"), "w") as f:
        f.write("""groups:
  - name: soak
    rules:
      - alert: SoakQueueHigh
        expr: lookout_redis_queue_length{queue="soak"}
        warning: "> 0"
        on_missing: keep
        summary: "the soak queue holds {{ value }} item(s)"
""")
    config = os.path.join(work, "lookout.yaml")
    with open(config, "w") as f:
        f.write(f"""agent:
  hostname: soak
  listen: 127.0.0.1:{agent_port}
  data_dir: {work}/data
collect:
  host: {{interval: 1s}}
  tcp: {{interval: 1s, ports: [{redis_port}, {agent_port}]}}
  redis:
    - {{name: cache, url: "redis://127.0.0.1:{redis_port}", interval: 1s, timeout: 500ms, queues: [soak]}}
  http_probes:
    - {{name: live, url: "http://127.0.0.1:{live_port}/", interval: 1s, timeout: 500ms}}
    - {{name: dead, url: "http://127.0.0.1:{dead_port}/", interval: 1s, timeout: 500ms}}
  ingest: {{interval: 1s, max_routes: {args.routes + 50}}}
rules:
  files: ["{REPO}/rules/*.yaml", "{work}/soak-rules.yaml"]
  evaluation_interval: 1s
notify:
  group_wait: 0s
  retry: {{initial: 1s, max: 10s}}
  # Above what the soak causes (about 2 a minute, plus Redis and probe alerts), so that
  # what is measured is delivery through outages, not the digest waiting for the window.
  rate_limit: {{max: 600, per: 1h}}
  receivers:
    - {{name: hook, webhook: {{url: "http://127.0.0.1:{hook_port}/"}}}}
""")
    check = subprocess.run([args.lookout, "check", "-c", config], capture_output=True, text=True)
    if check.returncode != 0:
        print(check.stdout + check.stderr, file=sys.stderr)
        # The peers started above would outlive the soak otherwise.
        redis.stop()
        receiver.stop()
        live.shutdown()
        return 2
    agent_log = open(os.path.join(work, "agent.log"), "w")
    agent = subprocess.Popen([args.lookout, "run", "-c", config], stdout=agent_log,
                             stderr=subprocess.STDOUT, env={**os.environ, "LOOKOUT_LOG": "warn"})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if http_get(agent_port, "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or agent.poll() is not None:
                print(f"the agent did not become ready; log in {work}/agent.log", file=sys.stderr)
                return 2
            time.sleep(0.2)
        log(f"agent pid {agent.pid} ready on 127.0.0.1:{agent_port}; work dir {work}")
        load = Load(agent_port, args.rate, args.routes)
        load.start()

        caused = {"firing": 0, "resolved": 0}
        scrapes_ok = scrapes_failed = 0
        start = time.monotonic()
        cpu0 = process_figures(agent.pid)[-1]
        last_cpu, last_minute_at = cpu0, start
        rows = []
        print(f"{'min':>4} {'RSS MiB':>8} {'anon':>6} {'history':>8} {'fds':>5} {'threads':>7} {'CPU %':>6} "
              f"{'obs/s':>7} {'scrapes':>7} {'received':>8}", flush=True)
        second = 0
        last_scrape = b""
        queue_full = False
        redis_down_until = hook_down_until = None
        last_posted = 0
        while second < args.minutes * 60:
            second += 1
            time.sleep(max(0.0, start + second - time.monotonic()))
            # The soak alert: the list fills at :00 and empties at :30 of every minute.
            phase = second % 60
            if phase == 1 and not queue_full and redis.command("RPUSH", "soak", "x") is not None:
                queue_full = True
                caused["firing"] += 1
            elif phase == 31 and queue_full and redis.command("DEL", "soak") is not None:
                queue_full = False
                caused["resolved"] += 1
            # Outages.
            period = args.restart_every
            if second % period == period // 4 and redis.proc:
                redis.stop()
                redis_down_until = second + 10
            if redis_down_until is not None and second >= redis_down_until:
                redis.start()
                redis_down_until = None
                # A restarted Redis is empty: the soak list comes back with the next push.
                if queue_full:
                    queue_full = False
                    caused["resolved"] += 1
            if second % period == (3 * period) // 4 and receiver.server:
                receiver.stop()
                hook_down_until = second + 20
            if hook_down_until is not None and second >= hook_down_until:
                receiver.start()
                hook_down_until = None
            try:
                status, body = http_get(agent_port, "/metrics")
                if status == 200:
                    last_scrape = body
                scrapes_ok += status == 200
                scrapes_failed += status != 200
            except OSError:
                scrapes_failed += 1
            if agent.poll() is not None:
                print(f"the agent exited with {agent.returncode}; log in {work}/agent.log",
                      file=sys.stderr)
                return 1
            if second % 60 == 0:
                rss, anon, fds, threads, cpu = process_figures(agent.pid)
                held = metric(last_scrape.decode(errors="replace"), "lookout_history_bytes")
                now = time.monotonic()
                cpu_pct = 100 * (cpu - last_cpu) / (now - last_minute_at)
                last_cpu, last_minute_at = cpu, now
                rate = (load.posted - last_posted) / 60
                last_posted = load.posted
                received = receiver.count("SoakQueueHigh", "firing") + receiver.count(
                    "SoakQueueHigh", "resolved")
                rows.append((second // 60, rss, fds, threads, cpu_pct))
                print(f"{second // 60:>4} {rss:>8.1f} {anon:>6.1f} {(held or 0) / 1048576:>8.2f} {fds:>5} {threads:>7} {cpu_pct:>6.2f} "
                      f"{rate:>7.0f} {scrapes_ok:>7} {received:>8}", flush=True)

        load.stop_flag.set()
        load.join(timeout=10)
        if redis_down_until is not None:
            redis.start()
        if not receiver.server:
            receiver.start()
        if queue_full and redis.command("DEL", "soak") is not None:
            caused["resolved"] += 1
        log("load stopped; waiting for the outbox to drain")
        # An open circuit (5 failures in a row during a receiver outage) waits 5 minutes
        # before its probe: the drain may take that long.
        deadline = time.monotonic() + 420
        pending = None
        while time.monotonic() < deadline:
            _, body = http_get(agent_port, "/metrics")
            text = body.decode()
            pending = metric(text, "lookout_outbox_pending")
            got = receiver.count("SoakQueueHigh", "firing") + receiver.count(
                "SoakQueueHigh", "resolved")
            if pending == 0 and got >= caused["firing"] + caused["resolved"]:
                break
            time.sleep(1)
        _, body = http_get(agent_port, "/api/v1/outbox")
        outbox = json.loads(body)
        dead = outbox.get("dead") or []

        print()
        if rows:
            tenth = next((r for r in rows if r[0] == 10), rows[0])
            last = rows[-1]
            growth = 100 * (last[1] - tenth[1]) / tenth[1] if tenth[1] else 0.0
            print(f"RSS: minute {tenth[0]} {tenth[1]:.1f} MiB, last {last[1]:.1f} MiB "
                  f"({growth:+.1f}%); fds {min(r[2] for r in rows)}..{max(r[2] for r in rows)}; "
                  f"threads {min(r[3] for r in rows)}..{max(r[3] for r in rows)}; "
                  f"CPU {sum(r[4] for r in rows) / len(rows):.2f}% of a core on average")
        print(f"observations posted: {load.posted} ({load.failed} batches failed); "
              f"scrapes: {scrapes_ok} answered, {scrapes_failed} failed")
        print(f"webhook: {receiver.posts} posts, {receiver.duplicates} re-deliveries of an "
              f"already received notification (at-least-once)")
        lost = False
        for status in ("firing", "resolved"):
            got = receiver.count("SoakQueueHigh", status)
            print(f"SoakQueueHigh {status}: caused {caused[status]}, received {got}")
            lost |= got < caused[status]
        for name in sorted(receiver.by_alert):
            if name != "SoakQueueHigh":
                counts = receiver.by_alert[name]
                print(f"{name}: received {counts.get('firing', 0)} firing, "
                      f"{counts.get('resolved', 0)} resolved")
        print(f"outbox pending at the end: {pending}; dead letters: {len(dead)}")
        if lost or dead:
            print("FAIL: a notification was lost or dead-lettered")
            return 1
        print("PASS: every notification caused was delivered")
        return 0
    finally:
        agent.terminate()
        try:
            agent.wait(timeout=15)
        except subprocess.TimeoutExpired:
            agent.kill()
        redis.stop()
        receiver.stop()
        live.shutdown()


if __name__ == "__main__":
    sys.exit(main())
