//! `GET /api/emoji`: every emoji, for the browser's picker, which fetches
//! it when it first opens (it is not in the first download). The same for
//! everyone and for the life of the binary: compressed once, cached by the
//! browser for a day.

use std::io::Write;
use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// `emoji::catalog`, gzipped once.
fn gzipped() -> &'static [u8] {
    static GZIPPED: OnceLock<Vec<u8>> = OnceLock::new();
    GZIPPED.get_or_init(|| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder
            .write_all(crate::emoji::catalog())
            .and_then(|()| encoder.finish())
            .expect("compressing into memory")
    })
}

pub async fn catalog(headers: HeaderMap) -> Response {
    let accepts_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut response = if accepts_gzip {
        let mut response = gzipped().into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        response
    } else {
        crate::emoji::catalog().into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}
