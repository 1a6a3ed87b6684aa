//! The console: the single page `GET /` serves, and its files under `/console/`, all built
//! into the binary (`agent/console/`, `docs/console.md`).
//!
//! The files hold no data, so they are served without a token (the page asks for the read
//! token and sends it with every data request). Caching: the page (`/`) is `no-cache` with an
//! `ETag` (a reload revalidates it with one small request); it names every other file with
//! `?v=<its ETag>`, so those are cached for a year (`immutable`) and an upgrade, which
//! changes the page, fetches the new ones. A `Content-Security-Policy` lets the page load
//! and connect to this agent only.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::ApiError;

/// One embedded file: its name under `/console/`, content type and bytes.
#[derive(Debug)]
pub struct File {
    /// Name under `/console/` (the page itself: `index.html`, served at `/`).
    pub name: &'static str,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The bytes.
    pub body: &'static [u8],
}

macro_rules! files {
    ($($name:literal => $path:literal, $type:literal;)*) => {
        /// Every file of the console, the page first.
        pub static FILES: &[File] = &[
            $(File { name: $name, content_type: $type, body: include_bytes!($path) },)*
        ];
    };
}

files! {
    "index.html" => "../../console/index.html", "text/html; charset=utf-8";
    "console.js" => "../../console/console.js", "text/javascript; charset=utf-8";
    "console.css" => "../../console/console.css", "text/css; charset=utf-8";
    "favicon.svg" => "../../console/favicon.svg", "image/svg+xml";
    "uPlot.iife.min.js" => "../../console/vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8";
    "uPlot.min.css" => "../../console/vendor/uPlot.min.css", "text/css; charset=utf-8";
    "uPlot.LICENSE" => "../../console/vendor/uPlot.LICENSE", "text/plain; charset=utf-8";
}

/// Most bytes all the console's files may take together (the page as served included).
pub const SIZE_BUDGET: usize = 300 * 1024;

/// Where the page may load from and connect to: this agent, nothing else.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Whether `path` is one of the console's (served without a token: they hold no data).
pub fn is_console_path(path: &str) -> bool {
    path == "/" || path.starts_with("/console/")
}

/// A file's `ETag`: the start of its SHA-256, quoted.
fn etag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex::encode(&digest[..8]))
}

/// The page as served: each `{{name}}` replaced by `/console/name?v=<its ETag>`.
fn page() -> &'static (String, String) {
    static PAGE: OnceLock<(String, String)> = OnceLock::new();
    PAGE.get_or_init(|| {
        let template = FILES
            .iter()
            .find(|f| f.name == "index.html")
            .map(|f| String::from_utf8_lossy(f.body).into_owned())
            .unwrap_or_default();
        let mut page = template;
        for f in FILES.iter().filter(|f| f.name != "index.html") {
            let version = etag(f.body);
            let url = format!("/console/{}?v={}", f.name, version.trim_matches('"'));
            page = page.replace(&format!("{{{{{}}}}}", f.name), &url);
        }
        let tag = etag(page.as_bytes());
        (page, tag)
    })
}

/// The bytes of every file as served, the page included: what a first visit downloads.
pub fn served_size() -> usize {
    page().0.len()
        + FILES
            .iter()
            .filter(|f| f.name != "index.html")
            .map(|f| f.body.len())
            .sum::<usize>()
}

/// `body` with its headers, or 304 when the client's copy is current.
fn answer(
    request: &HeaderMap,
    content_type: &'static str,
    body: &'static [u8],
    tag: &str,
    cache: &'static str,
) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(value) = HeaderValue::from_str(tag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    (headers, body).into_response()
}

/// `GET /`: the page.
pub(crate) async fn index(request: HeaderMap) -> Response {
    let (page, tag) = page();
    let mut response = answer(
        &request,
        "text/html; charset=utf-8",
        page.as_bytes(),
        tag,
        "no-cache",
    );
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    response
}

/// `GET /console/<name>`: one of the page's files.
pub(crate) async fn asset(Path(name): Path<String>, request: HeaderMap) -> Response {
    match FILES
        .iter()
        .find(|f| f.name == name && f.name != "index.html")
    {
        Some(f) => answer(
            &request,
            f.content_type,
            f.body,
            &etag(f.body),
            "public, max-age=31536000, immutable",
        ),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no such console file: {name}"),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_fit_the_budget() {
        let size = served_size();
        assert!(size < SIZE_BUDGET, "{size} bytes, budget {SIZE_BUDGET}");
    }

    #[test]
    fn the_page_names_every_file_by_its_version_and_nothing_outside() {
        let (page, _) = page();
        assert!(!page.contains("{{"), "a placeholder left: {page}");
        for f in FILES
            .iter()
            .filter(|f| f.name.ends_with(".js") || f.name.ends_with(".css"))
        {
            let url = format!("/console/{}?v={}", f.name, etag(f.body).trim_matches('"'));
            assert!(page.contains(&url), "{url} not in the page");
        }
        for f in FILES {
            let text = String::from_utf8_lossy(f.body);
            for scheme in ["http://", "https://", "//cdn", "@import"] {
                let found = text
                    .match_indices(scheme)
                    .map(|(i, _)| &text[i..(i + 60).min(text.len())])
                    // Comments naming where a file comes from, and SVG's namespace.
                    .filter(|hit| {
                        !hit.starts_with("https://github.com/leeoniya/uPlot")
                            && !hit.starts_with("http://www.w3.org/2000/svg")
                    })
                    .collect::<Vec<_>>();
                assert!(found.is_empty(), "{} loads from outside: {found:?}", f.name);
            }
        }
    }

    #[tokio::test]
    async fn files_come_with_their_type_and_caching_and_revalidate() {
        let response = index(HeaderMap::new()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let h = response.headers();
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(h[header::CACHE_CONTROL], "no-cache");
        assert!(
            h[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("connect-src 'self'")
        );
        let tag = h[header::ETAG].clone();
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, tag);
        assert_eq!(index(again).await.status(), StatusCode::NOT_MODIFIED);

        let js = asset(Path("console.js".into()), HeaderMap::new()).await;
        assert_eq!(js.status(), StatusCode::OK);
        assert_eq!(
            js.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            js.headers()[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(js.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        for missing in ["index.html", "nope.js", "../Cargo.toml"] {
            let r = asset(Path(missing.into()), HeaderMap::new()).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{missing}");
        }
    }
}
