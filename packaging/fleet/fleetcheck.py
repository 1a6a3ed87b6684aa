#!/usr/bin/env python3
"""Checks and report of packaging/fleet/run.sh (Python standard library only).

Usage: fleetcheck.py COMMAND ARGS...

  ports K                       print K distinct free loopback TCP ports
  cluster AM_URL...             exit 0 once every Alertmanager is ready and sees all members
  received OUT N ALERT          exit 0 once every host fleet-01..N has a firing ALERT in OUT
  central PROM_URL N ALERT RULEFILE AM_URL...
                                exit 0 once Prometheus scrapes all N agents and evaluated
                                every rule of RULEFILE (healthy), and every Alertmanager holds
                                every host's ALERT from the agent and from Prometheus
  report OUT N ALERT PROM_URL PROM_PID AM_URL...
                                print the summary table, the totals and the measurements;
                                exit 0 when every host got ALERT exactly once

OUT is the JSON-lines file of tests/support/http_receiver.py: one record per POST, its
`body` an Alertmanager webhook (v4) payload.
"""
import json
import socket
import sys
import urllib.parse
import urllib.request


def hosts(n):
    return [f"fleet-{i:02d}" for i in range(1, n + 1)]


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def get_json(url):
    return json.loads(get(url))


def promql(prom, query):
    """An instant query; returns the result vector as [(labels, float)]."""
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    answer = get_json(url)
    if answer.get("status") != "success":
        raise RuntimeError(f"query {query!r}: {answer}")
    return [(s["metric"], float(s["value"][1])) for s in answer["data"]["result"]]


def scalar(prom, query, default=0.0):
    result = promql(prom, query)
    return result[0][1] if result else default


def metrics_text(url):
    """A /metrics page as {name{labels}: value} (the line's key as written)."""
    out = {}
    for line in get(url).splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            try:
                out[key] = float(value)
            except ValueError:
                pass
    return out


def notifications(out_file, alert):
    """Every notification of `alert` the receiver accepted (answered 2xx), in arrival order:
    [(host, status, source, sender, time)]. A post the receiver refused is not a delivery
    (Alertmanager retries it or gives up), so it counts neither as received nor as a
    duplicate."""
    found = []
    try:
        lines = open(out_file).read().splitlines()
    except FileNotFoundError:
        return found
    for line in lines:
        if not line.strip():
            continue
        record = json.loads(line)
        if not 200 <= record.get("status", 0) < 300:
            continue
        try:
            body = json.loads(record["body"])
        except ValueError:
            continue
        sender = body.get("externalURL", "?")
        for a in body.get("alerts", []):
            labels = a.get("labels", {})
            if labels.get("alertname") != alert:
                continue
            found.append(
                (
                    labels.get("host", "?"),
                    a.get("status", "?"),
                    labels.get("source", "agent"),
                    sender,
                    record.get("t", 0.0),
                )
            )
    return found


def cmd_ports(k):
    socks = []
    for _ in range(int(k)):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()
    return 0


def cmd_cluster(*ams):
    for am in ams:
        try:
            status = get_json(f"{am}/api/v2/status")
        except OSError as e:
            print(f"{am}: {e}")
            return 1
        cluster = status.get("cluster", {})
        peers = cluster.get("peers", [])
        if cluster.get("status") != "ready" or len(peers) != len(ams):
            print(f"{am}: cluster {cluster.get('status')}, {len(peers)} of {len(ams)} members")
            return 1
    return 0


def cmd_received(out_file, n, alert):
    firing = {h for h, status, _, _, _ in notifications(out_file, alert) if status == "firing"}
    missing = [h for h in hosts(int(n)) if h not in firing]
    print(f"{int(n) - len(missing)} of {n} hosts' {alert} received")
    return 1 if missing else 0


def am_alerts(am, alert):
    """{source: set(hosts)} of the active `alert` instances an Alertmanager holds."""
    url = f"{am}/api/v2/alerts?" + urllib.parse.urlencode(
        {"filter": f'alertname="{alert}"', "active": "true"}
    )
    held = {}
    for a in get_json(url):
        labels = a.get("labels", {})
        held.setdefault(labels.get("source", "agent"), set()).add(labels.get("host", "?"))
    return held


def central_problems(prom, n, alert, rule_file, ams):
    n = int(n)
    problems = []
    up = scalar(prom, 'count(up{job="lookout"} == 1)')
    if up != n:
        problems.append(f"Prometheus: {up:.0f} of {n} agents up")
    distinct = scalar(prom, 'count(count by (host) (lookout_build_info{job="lookout"}))')
    if distinct != n:
        problems.append(f"Prometheus: {distinct:.0f} distinct host labels on lookout_build_info, not {n}")
    groups = get_json(f"{prom}/api/v1/rules")["data"]["groups"]
    ours = [g for g in groups if g["file"].endswith(rule_file)]
    rules = [r for g in ours for r in g["rules"]]
    if not rules:
        problems.append(f"Prometheus: no rules loaded from {rule_file}")
    for g in ours:
        if g["lastEvaluation"].startswith("0001-"):
            problems.append(f"Prometheus: group {g['name']!r} not evaluated yet")
    bad = [f"{r['name']}: {r.get('lastError', '')}" for r in rules if r["health"] != "ok"]
    if bad:
        problems.append("Prometheus: unhealthy rules: " + "; ".join(bad))
    watchdog = [r for r in rules if r["name"] == alert]
    firing = sum(1 for r in watchdog for a in r.get("alerts", []) if a["state"] == "firing")
    if firing != n:
        problems.append(f"Prometheus: {firing} of {n} {alert} instances firing")
    for am in ams:
        held = am_alerts(am, alert)
        for source in ("agent", "prometheus"):
            lacking = sorted(set(hosts(n)) - held.get(source, set()))
            if lacking:
                problems.append(
                    f"{am}: no {alert} from {source} for {len(lacking)} hosts ({', '.join(lacking[:5])})"
                )
    return problems


def cmd_central(prom, n, alert, rule_file, *ams):
    try:
        problems = central_problems(prom, n, alert, rule_file, ams)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        problems = [f"query failed: {e}"]
    for p in problems:
        print(p)
    return 1 if problems else 0


def rss_bytes(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def mib(b):
    return f"{b / 1048576:.0f} MiB"


def cmd_report(out_file, n, alert, prom, prom_pid, *ams):
    n = int(n)
    names = {am: f"am-{i + 1}" for i, am in enumerate(ams)}
    found = [f for f in notifications(out_file, alert) if f[1] == "firing"]
    per_host = {h: [] for h in hosts(n)}
    for host, _, source, sender, _ in found:
        label = names.get(sender, sender) + ("" if source == "agent" else f" source={source}")
        per_host.setdefault(host, []).append(label)

    print(f"{'host':<10} {'alerts':>6}  via")
    for host in sorted(per_host):
        got = per_host[host]
        mark = "" if len(got) == 1 else ("   <- MISSING" if not got else "   <- DUPLICATE")
        print(f"{host:<10} {len(got):>6}  {', '.join(got) or '-'}{mark}")
    expected = set(hosts(n))
    received = sum(len(v) for v in per_host.values())
    duplicates = sum(max(0, len(v) - 1) for h, v in per_host.items() if h in expected)
    unexpected = sum(len(v) for h, v in per_host.items() if h not in expected)
    missing = sum(1 for h in expected if not per_host[h])
    print(
        f"totals: agents {n}, alerts received {received}, duplicates {duplicates}, "
        f"missing {missing}, unexpected hosts {unexpected}"
    )

    # Measurements (best effort: a failed query prints as such, it does not fail the run).
    print("measured:")
    try:
        samples = promql(prom, 'scrape_samples_scraped{job="lookout"}')
        values = [v for _, v in samples]
        if values:
            print(
                f"  series per agent (scrape_samples_scraped): min {min(values):.0f}, "
                f"avg {sum(values) / len(values):.0f}, max {max(values):.0f}"
            )
        durations = [v for _, v in promql(prom, 'scrape_duration_seconds{job="lookout"}')]
        if durations:
            print(
                f"  scrape duration per agent: avg {1000 * sum(durations) / len(durations):.1f} ms, "
                f"max {1000 * max(durations):.1f} ms"
            )
        agent_rss = [v for _, v in promql(prom, 'process_resident_memory_bytes{job="lookout"}')]
        if agent_rss:
            print(f"  agent RSS: avg {mib(sum(agent_rss) / len(agent_rss))}, max {mib(max(agent_rss))}")
        own = metrics_text(f"{prom}/metrics")
        print(
            f"  Prometheus: {own.get('prometheus_tsdb_head_series', 0):.0f} head series, "
            f"RSS {mib(rss_bytes(prom_pid))}, CPU {own.get('process_cpu_seconds_total', 0):.1f} s so far"
        )
        groups = get_json(f"{prom}/api/v1/rules")["data"]["groups"]
        rules = sum(len(g["rules"]) for g in groups)
        seconds = sum(g.get("evaluationTime", 0) for g in groups)
        print(f"  Prometheus rule evaluation: {rules} rules in {len(groups)} groups, {1000 * seconds:.1f} ms per round")
        for am in ams:
            m = metrics_text(f"{am}/metrics")
            def total(metric, *matchers):
                return sum(
                    v for k, v in m.items() if k.startswith(metric + "{") and all(x in k for x in matchers)
                )

            active = total("alertmanager_alerts", 'state="active"')
            posted = total("alertmanager_alerts_received_total")
            sent = total("alertmanager_notifications_total", 'integration="webhook"')
            failed = total("alertmanager_notifications_failed_total", 'integration="webhook"')
            print(
                f"  {names[am]} ({am}): {posted:.0f} alerts posted to it, {active:.0f} active, "
                f"{sent:.0f} webhook notifications attempted, {failed:.0f} failed; "
                f"RSS {mib(m.get('process_resident_memory_bytes', 0))}, "
                f"CPU {m.get('process_cpu_seconds_total', 0):.1f} s so far"
            )
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        print(f"  (measurement failed: {e})")

    problems = []
    if missing:
        problems.append(f"{missing} hosts got no {alert}")
    if duplicates:
        problems.append(f"{duplicates} duplicate {alert} notifications")
    if unexpected:
        problems.append(f"{unexpected} {alert} notifications for unknown hosts")
    if problems:
        print("receiver: " + "; ".join(problems))
        return 1
    print(f"receiver: every one of {n} hosts' {alert} arrived exactly once")
    return 0


COMMANDS = {
    "ports": cmd_ports,
    "cluster": cmd_cluster,
    "received": cmd_received,
    "central": cmd_central,
    "report": cmd_report,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    sys.exit(COMMANDS[sys.argv[1]](*sys.argv[2:]))
