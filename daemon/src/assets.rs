//! The browser UI from `web-assets/`: embedded in release builds, read from disk in debug
//! builds (rust-embed's behaviour), so UI work needs no rebuild. Unknown paths that look
//! like app routes get `index.html`; missing files with an extension get 404.

use crate::AppState;
use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

#[derive(rust_embed::RustEmbed)]
#[folder = "../web-assets/"]
#[exclude = "*.md"]
#[exclude = "jsconfig.json"]
#[exclude = "tsconfig.json"]
struct Assets;

/// Routes serving the UI.
pub fn router() -> Router<AppState> {
    Router::new().route("/", get(index)).route("/{*path}", get(file))
}

async fn index() -> Response {
    serve("index.html")
}

async fn file(Path(path): Path<String>) -> Response {
    if path.split('/').any(|seg| seg.is_empty() || seg == "." || seg == ".." || seg.contains('\\')) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let last = path.rsplit('/').next().unwrap_or("");
    if Assets::get(&path).is_none() && !last.contains('.') {
        return serve("index.html");
    }
    serve(&path)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "webmanifest" => "application/json",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn serve(path: &str) -> Response {
    match Assets::get(path) {
        Some(f) => {
            let mut resp = f.data.into_owned().into_response();
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            resp
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
