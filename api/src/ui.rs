//! The dashboard's files, embedded in the binary (plain HTML, CSS and
//! JavaScript: no build step, nothing fetched from elsewhere): `GET /` is the
//! page, `GET /ui/{file}` its styles and scripts. They hold no data, so they
//! are served without the token; the page sends the token with its requests
//! to `/api/*` and `/search`.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// The page.
const INDEX: &str = include_str!("dashboard/index.html");

/// The files under `/ui/`: name, content type, text.
const FILES: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("dashboard/style.css"),
    ),
    (
        "common.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/common.js"),
    ),
    (
        "overview.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/overview.js"),
    ),
    (
        "search.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/search.js"),
    ),
    (
        "anomalies.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/anomalies.js"),
    ),
    (
        "main.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/main.js"),
    ),
];

/// `GET /`.
pub(crate) async fn index() -> Html<&'static str> {
    Html(INDEX)
}

/// `GET /ui/{file}`.
pub(crate) async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, text)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *text,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_embedded_files() {
        for src in INDEX
            .split("src=\"")
            .skip(1)
            .chain(INDEX.split("href=\"/").skip(1))
        {
            let path = src.split('"').next().unwrap_or_default();
            let name = path.trim_start_matches('/').trim_start_matches("ui/");
            assert!(
                FILES.iter().any(|(n, _, _)| *n == name),
                "{path} is not embedded"
            );
        }
        // Nothing from elsewhere: the only addresses are XML namespaces.
        for (name, _, text) in FILES.iter().chain([&("index.html", "", INDEX)]) {
            let outside = text
                .split("://")
                .skip(1)
                .filter(|rest| !rest.starts_with("www.w3.org/"))
                .count();
            assert_eq!(outside, 0, "{name} names another host");
        }
    }
}
