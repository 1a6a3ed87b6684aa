#!/usr/bin/env python3
"""Stand-ins for the chat and paging services lookout delivers to, for its delivery tests:
a real HTTP server in its own process that accepts exactly the request each service
documents (method, path, headers, JSON fields and their limits) and answers as the service
does, errors in the service's own shape included.

Usage: channel_stand_in.py PORT OUT_FILE SERVICE SCRIPT [NAME=VALUE ...]

SERVICE  telegram | discord | ntfy | pagerduty | teams
SCRIPT   answers to the successive well-formed requests, comma-separated, then `ok` for
         the rest: `ok`, `429` (rate limited), `429:S` (rate limited, retry after S
         seconds, fractions allowed), `400`, `403`, `500`; `-` for none. A request that is
         not well formed is answered with the service's error and uses no answer.
NAME=VALUE what the service knows:
  telegram   token=<bot token> chat_id=<chat id>
  discord    path=/api/webhooks/<id>/<token>
  ntfy       topic=<topic> [token=<access token>]
  pagerduty  routing_key=<32 characters>
  teams      path=<path and query of the webhook URL>

Each request is appended to OUT_FILE as one JSON line: receive time (epoch seconds),
method, path, query, headers (lower-case names), body, the status answered and the answer.
"""
import email.header
import json
import math
import re
import sys
import time
import uuid
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

port, out_file, service, script = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
expect = dict(arg.split("=", 1) for arg in sys.argv[5:])
answers = [] if script == "-" else script.split(",")
sent = [0]


def next_answer():
    """The scripted answer for the next well-formed request."""
    if answers:
        return answers.pop(0)
    return "ok"


def js(doc):
    return json.dumps(doc).encode()


def utf16_len(text):
    return len(text.encode("utf-16-le")) // 2


class Invalid(Exception):
    """A request the service refuses: status, headers, body."""

    def __init__(self, status, body, headers=None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def json_body(req, bad):
    """The request's JSON object, or the service's error `bad(why)`."""
    ctype = req["headers"].get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise bad(f"Content-Type must be application/json, got {ctype!r}")
    try:
        doc = json.loads(req["body"])
    except ValueError as e:
        raise bad(f"invalid JSON: {e}")
    if not isinstance(doc, dict):
        raise bad("expected a JSON object")
    return doc


def iso8601(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---- Telegram Bot API: POST /bot<token>/sendMessage -------------------------------------------

TG_PARAMS = {"business_connection_id", "chat_id", "message_thread_id", "text", "parse_mode",
             "entities", "link_preview_options", "disable_web_page_preview",
             "disable_notification", "protect_content", "allow_paid_broadcast",
             "message_effect_id", "reply_parameters", "reply_markup"}
TG_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler",
           "a", "code", "pre", "blockquote", "tg-emoji"}


def tg_error(status, description, parameters=None):
    doc = {"ok": False, "error_code": status, "description": description}
    if parameters:
        doc["parameters"] = parameters
    return Invalid(status, js(doc))


def tg_visible_text(text):
    """The text Telegram shows for HTML `text`, or the error its parser gives."""
    stack = []
    out = []
    pos = 0
    for m in re.finditer(r"<[^<>]*>|&[^&;<>\s]*;?|[<>]", text):
        out.append(text[pos:m.start()])
        pos = m.end()
        token = m.group(0)
        if token in ("<", ">"):
            raise ValueError(f"Unmatched {token!r} at byte offset {len(text[:m.start()].encode())}")
        if token.startswith("&"):
            named = {"&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"'}
            if token in named:
                out.append(named[token])
            elif re.fullmatch(r"&#(\d+|x[0-9a-fA-F]+);", token):
                out.append(chr(int(token[3:-1], 16) if token[2] == "x" else int(token[2:-1])))
            else:
                raise ValueError(f"Unsupported HTML entity {token!r}")
            continue
        tag = re.fullmatch(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)(\s[^>]*)?>", token)
        if not tag:
            raise ValueError(f"Can't find end of the entity starting at byte offset {len(text[:m.start()].encode())}")
        closing, name = tag.group(1), tag.group(2).lower()
        if name not in TG_TAGS:
            raise ValueError(f'Unsupported start tag "{name}"')
        if closing:
            if not stack or stack.pop() != name:
                raise ValueError(f'Unexpected end tag "{name}"')
        else:
            stack.append(name)
    out.append(text[pos:])
    if stack:
        raise ValueError(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


def telegram(req):
    m = re.fullmatch(r"/bot([^/]+)/([A-Za-z]+)", req["path"])
    if not m:
        raise tg_error(404, "Not Found")
    token, method = m.groups()
    if token != expect["token"]:
        raise tg_error(401, "Unauthorized")
    if method != "sendMessage":
        raise tg_error(404, "Not Found")
    if req["method"] != "POST":
        raise tg_error(405, "Method Not Allowed")
    doc = json_body(req, lambda why: tg_error(400, f"Bad Request: {why}"))
    unknown = sorted(set(doc) - TG_PARAMS)
    if unknown:
        raise tg_error(400, f"Bad Request: unknown parameters {unknown}")
    chat_id = doc.get("chat_id")
    if chat_id is None or chat_id == "":
        raise tg_error(400, "Bad Request: chat_id is empty")
    if not isinstance(chat_id, (int, str)) or isinstance(chat_id, bool):
        raise tg_error(400, "Bad Request: wrong type of the chat_id")
    if str(chat_id) != expect["chat_id"]:
        raise tg_error(400, "Bad Request: chat not found")
    text = doc.get("text")
    if not isinstance(text, str) or not text.strip():
        raise tg_error(400, "Bad Request: message text is empty")
    parse_mode = doc.get("parse_mode")
    if parse_mode not in (None, "HTML", "MarkdownV2", "Markdown"):
        raise tg_error(400, f"Bad Request: unsupported parse_mode {parse_mode!r}")
    visible = text
    if parse_mode == "HTML":
        try:
            visible = tg_visible_text(text)
        except ValueError as e:
            raise tg_error(400, f"Bad Request: can't parse entities: {e}")
    if utf16_len(visible) > 4096:
        raise tg_error(400, "Bad Request: message is too long")
    if not isinstance(doc.get("disable_web_page_preview", False), bool):
        raise tg_error(400, "Bad Request: disable_web_page_preview must be a Boolean")
    answer = next_answer()
    if answer.startswith("429"):
        wait = int(answer.split(":")[1]) if ":" in answer else 5
        raise tg_error(429, f"Too Many Requests: retry after {wait}", {"retry_after": wait})
    if answer == "400":
        raise tg_error(400, "Bad Request: chat not found")
    if answer == "403":
        raise tg_error(403, "Forbidden: bot was blocked by the user")
    if answer == "500":
        raise tg_error(500, "Internal Server Error")
    sent[0] += 1
    result = {"message_id": sent[0], "date": int(time.time()),
              "chat": {"id": chat_id, "type": "supergroup"}, "text": visible}
    return 200, {}, js({"ok": True, "result": result})


# ---- Discord: POST /api/webhooks/<id>/<token>[?wait=true] ---------------------------------------

DISCORD_FIELDS = {"content", "username", "avatar_url", "tts", "embeds", "allowed_mentions",
                  "components", "attachments", "flags", "thread_name", "applied_tags", "poll"}
EMBED_FIELDS = {"title", "type", "description", "url", "timestamp", "color", "footer", "image",
                "thumbnail", "video", "provider", "author", "fields"}


def discord_error(status, message, code, errors=None):
    doc = {"message": message, "code": code}
    if errors is not None:
        doc["errors"] = errors
    return Invalid(status, js(doc))


def invalid_form(field, why):
    return discord_error(400, "Invalid Form Body", 50035,
                         {field: {"_errors": [{"code": "BASE_TYPE_INVALID", "message": why}]}})


def discord(req):
    if req["path"] != expect["path"]:
        if req["path"].startswith("/api/webhooks/"):
            raise discord_error(401, "Invalid Webhook Token", 50027)
        raise discord_error(404, "404: Not Found", 0)
    if req["method"] != "POST":
        raise discord_error(405, "405: Method Not Allowed", 0)
    wait = req["query"].get("wait", ["false"])[-1]
    if wait not in ("true", "false", "True", "False", "1", "0"):
        raise invalid_form("wait", "Value must be one of {True, False}.")
    doc = json_body(req, lambda why: discord_error(400, "Cannot send an empty message", 50006))
    unknown = sorted(set(doc) - DISCORD_FIELDS)
    if unknown:
        raise invalid_form(unknown[0], "Unknown field.")
    content = doc.get("content")
    embeds = doc.get("embeds") or []
    if content is not None and (not isinstance(content, str) or len(content) > 2000):
        raise invalid_form("content", "Must be 2000 or fewer in length.")
    if not isinstance(embeds, list) or len(embeds) > 10:
        raise invalid_form("embeds", "Must be 10 or fewer in length.")
    if not content and not embeds:
        raise discord_error(400, "Cannot send an empty message", 50006)
    total = 0
    for i, e in enumerate(embeds):
        if not isinstance(e, dict) or set(e) - EMBED_FIELDS:
            raise invalid_form(f"embeds.{i}", "Invalid embed.")
        title, description = e.get("title", ""), e.get("description", "")
        if not isinstance(title, str) or len(title) > 256:
            raise invalid_form(f"embeds.{i}.title", "Must be 256 or fewer in length.")
        if not isinstance(description, str) or len(description) > 4096:
            raise invalid_form(f"embeds.{i}.description", "Must be 4096 or fewer in length.")
        color = e.get("color", 0)
        if not isinstance(color, int) or isinstance(color, bool) or not 0 <= color <= 0xFFFFFF:
            raise invalid_form(f"embeds.{i}.color", "Int value should be between 0 and 16777215.")
        if "timestamp" in e:
            try:
                iso8601(e["timestamp"])
            except (TypeError, ValueError):
                raise invalid_form(f"embeds.{i}.timestamp", "Could not parse timestamp.")
        total += len(title) + len(description)
        total += sum(len(f.get("name", "")) + len(f.get("value", "")) for f in e.get("fields", []))
        total += len(e.get("footer", {}).get("text", "")) + len(e.get("author", {}).get("name", ""))
    if total > 6000:
        raise invalid_form("embeds", "Embed size exceeds maximum size of 6000")
    mentions = doc.get("allowed_mentions")
    if mentions is not None and (not isinstance(mentions, dict) or
                                 not set(mentions.get("parse", [])) <= {"roles", "users", "everyone"}):
        raise invalid_form("allowed_mentions", "Invalid allowed mentions.")
    answer = next_answer()
    if answer.startswith("429"):
        wait_s = float(answer.split(":")[1]) if ":" in answer else 1.0
        body = js({"message": "You are being rate limited.", "retry_after": wait_s, "global": False})
        headers = {"Retry-After": str(math.ceil(wait_s)), "X-RateLimit-Scope": "user"}
        raise Invalid(429, body, headers)
    if answer == "404":
        raise discord_error(404, "Unknown Webhook", 10015)
    if answer == "500":
        raise Invalid(500, b"internal error")
    if wait in ("true", "True", "1"):
        sent[0] += 1
        webhook_id = expect["path"].split("/")[3]
        message = {"id": str(1000 + sent[0]), "type": 0, "content": content or "",
                   "embeds": embeds, "webhook_id": webhook_id, "channel_id": "42",
                   "timestamp": datetime.now().astimezone().isoformat()}
        return 200, {}, js(message)
    return 204, {}, b""


# ---- ntfy: POST/PUT /<topic> ---------------------------------------------------------------------

NTFY_PRIORITIES = {"1": 1, "min": 1, "2": 2, "low": 2, "3": 3, "default": 3, "4": 4, "high": 4,
                   "5": 5, "urgent": 5, "max": 5}


def ntfy_error(status, code, error):
    return Invalid(status, js({"code": code, "http": status, "error": error}))


def ntfy_header(headers, *names):
    for name in names:
        if name in headers:
            decoded = email.header.decode_header(headers[name])
            return "".join(part.decode(charset or "utf-8") if isinstance(part, bytes) else part
                           for part, charset in decoded)
    return None


def ntfy(req):
    topic = req["path"].lstrip("/")
    if not re.fullmatch(r"[-_A-Za-z0-9]{1,64}", topic) or topic != expect["topic"]:
        raise ntfy_error(404, 40401, "page not found")
    if req["method"] not in ("POST", "PUT"):
        raise ntfy_error(405, 40501, "method not allowed")
    auth = req["headers"].get("authorization")
    token = expect.get("token")
    if token is not None and auth is None:
        raise ntfy_error(403, 40301, "forbidden")
    if auth is not None and auth != f"Bearer {token}":
        raise ntfy_error(401, 40101, "unauthorized")
    h = req["headers"]
    title = ntfy_header(h, "x-title", "title", "ti", "t")
    priority = ntfy_header(h, "x-priority", "priority", "prio", "p") or "3"
    if priority.lower() not in NTFY_PRIORITIES:
        raise ntfy_error(400, 40007, "invalid priority")
    tags = [t.strip() for t in (ntfy_header(h, "x-tags", "tags", "tag", "ta") or "").split(",") if t.strip()]
    raw = req["raw_body"]
    if len(raw) > 4096:
        raise ntfy_error(413, 41301, "message too large, and attachments are not allowed")
    try:
        message = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ntfy_error(400, 40001, "message is not valid UTF-8, and attachments are not allowed")
    answer = next_answer()
    if answer.startswith("429"):
        headers = {"Retry-After": answer.split(":")[1]} if ":" in answer else {}
        raise Invalid(429, js({"code": 42901, "http": 429, "error": "limit reached: too many requests, please be nice"}), headers)
    if answer == "403":
        raise ntfy_error(403, 40301, "forbidden")
    if answer == "500":
        raise ntfy_error(500, 50001, "internal server error")
    now = int(time.time())
    doc = {"id": uuid.uuid4().hex[:12], "time": now, "expires": now + 43200, "event": "message",
           "topic": topic, "message": message or "triggered", "priority": NTFY_PRIORITIES[priority.lower()]}
    if title:
        doc["title"] = title
    if tags:
        doc["tags"] = tags
    return 200, {}, js(doc)


# ---- PagerDuty Events API v2: POST /v2/enqueue ---------------------------------------------------

PD_FIELDS = {"routing_key", "event_action", "dedup_key", "payload", "images", "links", "client", "client_url"}
PD_PAYLOAD = {"summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"}


def pd_invalid(*errors):
    return Invalid(400, js({"status": "invalid event", "message": "Event object is invalid", "errors": list(errors)}))


def pagerduty(req):
    if req["path"] != "/v2/enqueue":
        raise Invalid(404, js({"status": "not found", "message": "Not Found"}))
    if req["method"] != "POST":
        raise Invalid(405, js({"status": "method not allowed", "message": "Method Not Allowed"}))
    doc = json_body(req, lambda why: pd_invalid(why))
    errors = [f"'{k}' is not a valid field" for k in sorted(set(doc) - PD_FIELDS)]
    key = doc.get("routing_key")
    if not isinstance(key, str) or not key:
        errors.append("'routing_key' is missing or blank")
    elif len(key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    elif key != expect["routing_key"]:
        errors.append("Invalid routing key")
    action = doc.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        errors.append("'event_action' is missing or invalid")
    dedup = doc.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or not dedup or len(dedup) > 255):
        errors.append("'dedup_key' is invalid (1 to 255 characters)")
    if action in ("acknowledge", "resolve") and not dedup:
        errors.append("'dedup_key' is missing or blank")
    payload = doc.get("payload")
    if action == "trigger":
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or not an object")
        else:
            errors += [f"'payload.{k}' is not a valid field" for k in sorted(set(payload) - PD_PAYLOAD)]
            summary = payload.get("summary")
            if not isinstance(summary, str) or not summary.strip():
                errors.append("'payload.summary' is missing or blank")
            elif len(summary) > 1024:
                errors.append("'payload.summary' is too long (1024 characters at most)")
            if not isinstance(payload.get("source"), str) or not payload["source"].strip():
                errors.append("'payload.source' is missing or blank")
            if payload.get("severity") not in ("critical", "error", "warning", "info"):
                errors.append("'payload.severity' is invalid (must be one of critical, error, warning, info)")
            if "timestamp" in payload:
                try:
                    iso8601(payload["timestamp"])
                except (TypeError, ValueError):
                    errors.append("'payload.timestamp' is not a valid ISO 8601 timestamp")
    elif payload is not None:
        errors.append(f"'payload' is not used by {action} events")
    if errors:
        raise pd_invalid(*errors)
    answer = next_answer()
    if answer.startswith("429"):
        headers = {"Retry-After": answer.split(":")[1]} if ":" in answer else {}
        raise Invalid(429, js({"status": "throttle event", "message": "Requests for this service are arriving too quickly. Please retry later."}), headers)
    if answer == "400":
        raise pd_invalid("'payload.custom_details' is rejected by this service's event rules")
    if answer == "500":
        raise Invalid(500, js({"status": "error", "message": "Internal Server Error"}))
    return 202, {}, js({"status": "success", "message": "Event processed",
                        "dedup_key": dedup or uuid.uuid4().hex})


# ---- Microsoft Teams webhook (Workflows): POST <webhook URL> ------------------------------------

CARD_ELEMENTS = {"TextBlock", "Container", "FactSet", "ColumnSet", "Column", "Image", "ImageSet",
                 "ActionSet", "RichTextBlock", "Table"}


def teams_error(status, code, message):
    return Invalid(status, js({"error": {"code": code, "message": message}}))


def card_elements(elements, where):
    if not isinstance(elements, list):
        raise ValueError(f"{where} must be an array")
    for i, e in enumerate(elements):
        at = f"{where}[{i}]"
        if not isinstance(e, dict) or e.get("type") not in CARD_ELEMENTS:
            raise ValueError(f"{at}: unknown element type {e.get('type') if isinstance(e, dict) else e!r}")
        if e["type"] == "TextBlock" and not isinstance(e.get("text"), str):
            raise ValueError(f"{at}: a TextBlock needs a text")
        if e["type"] == "FactSet":
            facts = e.get("facts")
            if not isinstance(facts, list) or not all(
                    isinstance(f, dict) and isinstance(f.get("title"), str) and isinstance(f.get("value"), str)
                    for f in facts):
                raise ValueError(f"{at}: facts must be {{title, value}} strings")
        if e["type"] in ("Container", "Column"):
            card_elements(e.get("items"), f"{at}.items")


def teams(req):
    full = req["path"] + ("?" + req["raw_query"] if req["raw_query"] else "")
    if req["path"] != expect["path"].split("?")[0]:
        raise teams_error(404, "WorkflowNotFound", "The workflow could not be found.")
    if full != expect["path"]:
        raise teams_error(401, "DirectApiAuthorizationRequired", "The request must be authenticated with a valid signature.")
    if req["method"] != "POST":
        raise teams_error(405, "MethodNotAllowed", "POST only.")
    if len(req["raw_body"]) > 28 * 1024:
        raise teams_error(413, "RequestEntityTooLarge", "The message is larger than 28 KB.")
    doc = json_body(req, lambda why: teams_error(400, "InvalidRequestContent", why))
    try:
        if doc.get("type") != "message":
            raise ValueError("type must be 'message'")
        attachments = doc.get("attachments")
        if not isinstance(attachments, list) or not attachments:
            raise ValueError("attachments must be a non-empty array")
        for a in attachments:
            if a.get("contentType") != "application/vnd.microsoft.card.adaptive":
                raise ValueError(f"unsupported contentType {a.get('contentType')!r}")
            content = a.get("content")
            if not isinstance(content, dict) or content.get("type") != "AdaptiveCard":
                raise ValueError("content must be an AdaptiveCard")
            if content.get("version") not in ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5"):
                raise ValueError(f"unsupported card version {content.get('version')!r}")
            card_elements(content.get("body"), "body")
    except (ValueError, AttributeError) as e:
        raise teams_error(400, "InvalidRequestContent", str(e))
    answer = next_answer()
    if answer.startswith("429"):
        headers = {"Retry-After": answer.split(":")[1]} if ":" in answer else {}
        raise Invalid(429, js({"error": {"code": "TooManyRequests", "message": "Rate limit is exceeded."}}), headers)
    if answer == "400":
        raise teams_error(400, "InvalidRequestContent", "Rejected by the test script.")
    if answer == "500":
        raise teams_error(500, "InternalServerError", "Something went wrong.")
    return 202, {}, b""


SERVICES = {"telegram": telegram, "discord": discord, "ntfy": ntfy, "pagerduty": pagerduty, "teams": teams}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_any(self):
        received = time.time()
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        split = urlsplit(self.path)
        req = {
            "t": received,
            "method": self.command,
            "path": split.path,
            "raw_query": split.query,
            "query": parse_qs(split.query),
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "raw_body": raw,
            "body": raw.decode("utf-8", "replace"),
        }
        try:
            status, headers, body = SERVICES[service](req)
        except Invalid as e:
            status, headers, body = e.status, e.headers, e.body
        record = {k: v for k, v in req.items() if k not in ("raw_body", "raw_query")}
        record["status"] = status
        record["answer"] = body.decode("utf-8", "replace")
        with open(out_file, "a") as f:
            f.write(json.dumps(record) + "\n")
        self.send_response(status)
        if body:
            self.send_header("Content-Type", "application/json" if body[:1] in (b"{", b"[") else "text/plain")
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT = do_GET = handle_any

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
