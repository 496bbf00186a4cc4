//! The dashboard's HTTP routes: its page and assets, embedded in the binary.
//!
//! `/dashboard` redirects to `/dashboard/` (relative, so that a path prefix in front is kept),
//! which serves the page; its assets are files next to it. They are compiled in with
//! `include_str!`, so the binary is the whole deployment and the page can never come from
//! anywhere but the server it watches. Nothing here depends on the request beyond its path and
//! method: the page is the same for everyone and carries no data.
//!
//! Every answer forbids caching (an upgraded binary serves its own page at once), framing and
//! sniffing, and its Content-Security-Policy lets the page run only its own scripts and talk
//! only to the server it came from (`'self'`, which covers the same host's `ws:` and `wss:`).

use ringcast_protocol::http::{self, Request};

/// The page and its assets: name below `/dashboard/`, content type, body.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_str!("assets/index.html"),
    ),
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_str!("assets/dashboard.css"),
    ),
    (
        "dashboard.mjs",
        "text/javascript; charset=utf-8",
        include_str!("assets/dashboard.mjs"),
    ),
    (
        "sign.mjs",
        "text/javascript; charset=utf-8",
        include_str!("assets/sign.mjs"),
    ),
    (
        "socket.mjs",
        "text/javascript; charset=utf-8",
        include_str!("assets/socket.mjs"),
    ),
    (
        "chart.mjs",
        "text/javascript; charset=utf-8",
        include_str!("assets/chart.mjs"),
    ),
];

/// Headers of every dashboard answer.
const HEADERS: &[(&str, &str)] = &[
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    ),
];

/// Whether `rel` (a path below the configured prefix) is one of the dashboard's.
pub fn is_dashboard_path(rel: &str) -> bool {
    rel == "/dashboard" || rel.starts_with("/dashboard/")
}

/// The answer to a request for `rel`, a dashboard path below the configured prefix.
pub fn serve(req: &Request, rel: &str) -> Vec<u8> {
    let keep_alive = req.keep_alive;
    let head = match req.method.as_str() {
        "GET" => false,
        "HEAD" => true,
        _ => {
            let mut headers = HEADERS.to_vec();
            headers.push(("Allow", "GET, HEAD"));
            let body = br#"{"error":"Method not allowed","code":405}"#;
            return http::response(405, "application/json", &headers, body, keep_alive);
        }
    };
    if rel == "/dashboard" {
        let mut headers = HEADERS.to_vec();
        headers.push(("Location", "dashboard/"));
        return http::response(308, "text/plain", &headers, b"", keep_alive);
    }
    let name = rel.strip_prefix("/dashboard/").unwrap_or("");
    let Some((_, content_type, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return http::json_error_with_headers(404, "Not found", HEADERS, keep_alive);
    };
    let mut resp = http::response(200, content_type, HEADERS, body.as_bytes(), keep_alive);
    if head {
        resp.truncate(resp.len() - body.len());
    }
    resp
}

/// Every embedded asset, for tests: name and body.
pub fn assets() -> impl Iterator<Item = (&'static str, &'static str)> {
    ASSETS.iter().map(|(n, _, b)| (*n, *b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str) -> Request {
        Request {
            method: method.into(),
            path: String::new(),
            query: String::new(),
            headers: Vec::new(),
            content_length: 0,
            keep_alive: true,
            head_len: 0,
            version: 1,
        }
    }

    fn text(v: Vec<u8>) -> String {
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn the_page_its_assets_and_nothing_else() {
        let page = text(serve(&request("GET"), "/dashboard/"));
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
        assert!(page.contains("Content-Type: text/html"));
        assert!(page.contains("Content-Security-Policy: default-src 'none'"));
        assert!(page.contains("Cache-Control: no-store"));
        let js = text(serve(&request("GET"), "/dashboard/dashboard.mjs"));
        assert!(js.contains("Content-Type: text/javascript"), "{js}");
        let missing = text(serve(&request("GET"), "/dashboard/../Cargo.toml"));
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        let redirect = text(serve(&request("GET"), "/dashboard"));
        assert!(
            redirect.starts_with("HTTP/1.1 308 Permanent Redirect\r\n"),
            "{redirect}"
        );
        assert!(redirect.contains("Location: dashboard/\r\n"));
        let post = text(serve(&request("POST"), "/dashboard/"));
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        assert!(post.contains("Allow: GET, HEAD"));
    }

    #[test]
    fn head_has_the_headers_of_get_and_no_body() {
        let get = serve(&request("GET"), "/dashboard/sign.mjs");
        let head = serve(&request("HEAD"), "/dashboard/sign.mjs");
        let end = get.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(head, get[..end]);
    }

    #[test]
    fn paths() {
        assert!(is_dashboard_path("/dashboard"));
        assert!(is_dashboard_path("/dashboard/x.js"));
        assert!(!is_dashboard_path("/dashboards"));
        assert!(!is_dashboard_path("/apps/1/dashboard"));
    }
}
