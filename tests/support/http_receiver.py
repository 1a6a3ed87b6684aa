#!/usr/bin/env python3
"""A webhook receiver for lookout's delivery tests: a real HTTP server in its own process.

Usage: http_receiver.py PORT OUT_FILE MODE [SECRET]
MODE: ok (always 200), 400 (always 400), 503xN (503 for the first N requests, then 200).
Each POST (and GET: heartbeat pings) is appended to OUT_FILE as one JSON line: receive
time (epoch seconds), method, path, headers, body, the status answered, and, when SECRET
is given, whether X-Lookout-Signature is the HMAC-SHA256 of the body (computed here,
independently).
"""
import hashlib
import hmac
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, out_file, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
secret = sys.argv[4].encode() if len(sys.argv) > 4 else None
fail_first = int(mode[4:]) if mode.startswith("503x") else 0
count = 0


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        global count
        received = time.time()
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        count += 1
        if mode == "400":
            status = 400
        elif count <= fail_first:
            status = 503
        else:
            status = 200
        record = {
            "t": received,
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
            "status": status,
        }
        if secret is not None:
            expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
            record["signature_ok"] = hmac.compare_digest(expected, self.headers.get("X-Lookout-Signature", ""))
        with open(out_file, "a") as f:
            f.write(json.dumps(record) + "\n")
        answer = b'{"error": "bad request"}' if status == 400 else b"{}"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
