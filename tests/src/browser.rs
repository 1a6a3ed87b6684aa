//! A real headless Chromium, driven over WebDriver: Debian's `chromium` and
//! `chromium-driver` (chromedriver), spoken to with the harness's own HTTP client, so the
//! tests need nothing else. Each [`Browser`] is one chromedriver, one Chromium with a new
//! empty profile, and one session, all ended on drop.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{Peer, TempDir, free_port, http_within, require};

/// The flags Chromium needs as root on this kind of machine: without the background
/// networking ones, its connections are refused.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
];

/// A headless Chromium and its WebDriver session.
#[derive(Debug)]
pub struct Browser {
    _driver: Peer,
    addr: SocketAddr,
    session: String,
    _profile: TempDir,
}

impl Browser {
    /// Starts chromedriver and a Chromium whose viewport is `width` x `height` CSS pixels (a
    /// phone's when `width` is under 600). Fails the test, saying how to install them, when
    /// either is missing.
    pub fn start(width: u32, height: u32) -> Browser {
        let chromium = require("chromium", "chromium");
        let chromedriver = require("chromedriver", "chromium-driver");
        let port = free_port();
        let driver = Peer(
            Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver"),
        );
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http_within(addr, "GET", "/status", &[], "", Duration::from_secs(5))
                .ok()
                .and_then(|(_, body)| serde_json::from_str::<Value>(&body).ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = TempDir::new("chromium");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push(format!("--window-size={width},{height}"));
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": { "binary": chromium, "args": args },
                    "goog:loggingPrefs": { "browser": "ALL" },
                }
            }
        });
        let answer = request(addr, "POST", "/session", &capabilities);
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {answer}"))
            .to_string();
        let browser = Browser {
            _driver: driver,
            addr,
            session,
            _profile: profile,
        };
        browser.viewport(width, height);
        browser
    }

    /// Runs a WebDriver command of the session; its `value`.
    pub fn command(&self, method: &str, path: &str, body: &Value) -> Value {
        let answer = request(
            self.addr,
            method,
            &format!("/session/{}/{path}", self.session),
            body,
        );
        answer["value"].clone()
    }

    /// Sets the viewport to `width` x `height` CSS pixels, a phone's under 600 wide.
    pub fn viewport(&self, width: u32, height: u32) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600 }),
        );
    }

    /// Makes the page see `prefers-color-scheme: <scheme>` (`light` or `dark`).
    pub fn color_scheme(&self, scheme: &str) {
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme }] }),
        );
    }

    /// A DevTools protocol command, through chromedriver.
    pub fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.command(
            "POST",
            "goog/cdp/execute",
            &json!({ "cmd": cmd, "params": params }),
        )
    }

    /// Opens `url` and waits for its load event.
    pub fn goto(&self, url: &str) {
        self.command("POST", "url", &json!({ "url": url }));
    }

    /// The value of the JavaScript expression `expr` (a promise is awaited).
    pub fn eval(&self, expr: &str) -> Value {
        self.command(
            "POST",
            "execute/sync",
            &json!({ "script": format!("return ({expr});"), "args": [] }),
        )
    }

    /// Evaluates `expr` every 50 ms until it is truthy, and returns that value; fails after
    /// `limit` naming `what` and the page's state.
    pub fn wait_for(&self, what: &str, limit: Duration, expr: &str) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.eval(expr);
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
                _ => true,
            };
            if truthy {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {limit:?}; connection: {}; console: {:?}",
                self.eval(
                    "document.querySelector('#conn') && document.querySelector('#conn').textContent"
                ),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The browser's console and network log since the last call (chromedriver keeps it).
    pub fn logs(&self) -> Vec<Value> {
        match self.command("POST", "se/log", &json!({ "type": "browser" })) {
            Value::Array(entries) => entries,
            other => panic!("no browser log: {other}"),
        }
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        let encoded = self.command("GET", "screenshot", &Value::Null);
        base64_decode(encoded.as_str().expect("screenshot as base64"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        // Quits Chromium; chromedriver is killed when its Peer drops, right after.
        let _ = http_within(self.addr, "DELETE", &path, &[], "", Duration::from_secs(10));
    }
}

/// A WebDriver request; fails the test on a WebDriver error.
fn request(addr: SocketAddr, method: &str, path: &str, body: &Value) -> Value {
    let text = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let headers: &[(&str, &str)] = if body.is_null() {
        &[]
    } else {
        &[("Content-Type", "application/json")]
    };
    let (status, answer) = http_within(addr, method, path, headers, &text, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
    let value: Value = serde_json::from_str(&answer)
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}: {answer}"));
    assert!(status == 200, "WebDriver {method} {path}: {status} {value}");
    value
}

/// Standard base64 (with padding), as WebDriver sends screenshots.
pub fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' => continue,
            other => panic!("not base64: {other}"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes() {
        assert_eq!(base64_decode("aGVsbG8="), b"hello");
        assert_eq!(base64_decode("aGk="), b"hi");
        assert_eq!(base64_decode("AAEC/w=="), [0, 1, 2, 255]);
    }
}
