//! The task manager page (docs/watch.md#the-task-manager-page): `/` and its assets, embedded in the
//! binary, served with `Cache-Control: no-cache` and an ETag (a 304 when the browser has
//! them). The page is plain HTML, CSS and JavaScript that talks to the same REST API and
//! watch stream as any client; it needs no endpoint of its own.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use std::sync::LazyLock;

/// An embedded file: its bytes, content type and ETag.
struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
    etag: String,
}

/// A strong ETag from the bytes (FNV-1a, 64 bits: it only tells versions apart).
fn etag(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{hash:016x}\"")
}

fn asset(bytes: &'static [u8], content_type: &'static str) -> Asset {
    Asset {
        bytes,
        content_type,
        etag: etag(bytes),
    }
}

static INDEX: LazyLock<Asset> =
    LazyLock::new(|| asset(include_bytes!("index.html"), "text/html; charset=utf-8"));
static SCRIPT: LazyLock<Asset> =
    LazyLock::new(|| asset(include_bytes!("app.js"), "text/javascript; charset=utf-8"));
static STYLE: LazyLock<Asset> =
    LazyLock::new(|| asset(include_bytes!("app.css"), "text/css; charset=utf-8"));

fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == asset.etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, asset.bytes).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&asset.etag).expect("hex in quotes"),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `GET /` (and `/?project=P`): the page.
pub async fn index(headers: HeaderMap) -> Response {
    serve(&INDEX, &headers)
}

/// `GET /assets/{file}`: the page's script and style; anything else is 404 in the envelope.
pub async fn assets(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match file.as_str() {
        "app.js" => serve(&SCRIPT, &headers),
        "app.css" => serve(&STYLE, &headers),
        _ => {
            crate::kit::error::ApiError::not_found_path(&format!("/assets/{file}")).into_response()
        }
    }
}
