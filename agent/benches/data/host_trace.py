#!/usr/bin/env python3
"""Turns a capture of an agent's /metrics into the compact trace the history bench replays.

Usage: host_trace.py CAPTURE > host-10s.trace

CAPTURE holds scrapes of the Prometheus text exposition, each preceded by a line
`@<unix ms>` (the time of the scrape). Only the host series are kept (the families in
FAMILIES), without the `host` label, and only complete scrapes (a last one cut by the
end of the capture is left out). Values are kept as text, exactly as scraped.

Output: comment lines (`#`), then one line per series, `series <counter|gauge> <name>{<labels>}`,
in column order, then one line per scrape: the milliseconds since the previous scrape (the
unix milliseconds for the first), then one field per series: its value as scraped, `=`
when it is the same text as in the previous scrape, `-` when the series was not in it.
"""

import datetime
import re
import sys

FAMILIES = re.compile(
    r"^(lookout_cpu_|lookout_load|lookout_memory_|lookout_swap_|lookout_filesystem_"
    r"|lookout_disk_|lookout_network_|lookout_tcp_connections$|lookout_processes$"
    r"|lookout_uptime_seconds$|lookout_cpus$|lookout_collector_duration_seconds$"
    r"|lookout_collector_up$|process_)"
)


def scrapes(path):
    """(unix ms, {series: value text}, complete) per scrape, and {family: type}."""
    out, types, current = [], {}, None
    with open(path) as f:
        for line in f:
            if line.startswith("@"):
                current = (int(line[1:]), {})
                out.append(current)
                continue
            if not line.endswith("\n"):
                break  # the capture is being written: a cut line
            line = line.rstrip("\n")
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                types[name] = kind
                continue
            if not line or line.startswith("#") or current is None:
                continue
            key, value = line.rsplit(" ", 1)
            name = key.split("{", 1)[0]
            if not FAMILIES.match(name):
                continue
            key = re.sub(r'host="[^"]*",?', "", key).replace(",}", "}").replace("{}", "")
            current[1][key] = value
    # The last scrape may be cut by the end of the capture.
    return out[:-1], types


def main():
    rows, types = scrapes(sys.argv[1])
    columns = []
    for _, values in rows:
        for key in values:
            if key not in columns:
                columns.append(key)
    columns.sort()
    def utc(ms):
        return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S UTC"
        )

    print("# lookout's host series, scraped from a running agent every 10 s, for the")
    print("# history bench (agent/benches/history.rs); made by host_trace.py (see its doc).")
    print(f"# {len(rows)} scrapes of {len(columns)} series, {utc(rows[0][0])} to {utc(rows[-1][0])}.")
    for key in columns:
        name = key.split("{", 1)[0]
        kind = "counter" if types.get(name) == "counter" else "gauge"
        print(f"series {kind} {key}")
    previous_t, previous = None, {}
    for t, values in rows:
        fields = [str(t if previous_t is None else t - previous_t)]
        for key in columns:
            v = values.get(key)
            if v is None:
                fields.append("-")
            elif previous.get(key) == v:
                fields.append("=")
            else:
                fields.append(v)
        print(" ".join(fields))
        previous_t, previous = t, values


if __name__ == "__main__":
    main()
