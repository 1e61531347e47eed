//! Serving files: `GET /api/files/{id}` (the bytes), `GET
//! /api/files/{id}/thumbnail` (an image's small version), and `GET
//! /api/rooms/{room}/files` (what was shared in a room).
//!
//! Every one is authorized like the room's history: a private room's or a
//! direct conversation's files are its members' only, whatever the URL,
//! and anyone else is told there is no such file. Only raster images are
//! shown inline; everything else (SVG and HTML too) is an attachment, with
//! `nosniff` and a sandboxing CSP.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::{ApiErrorCode, SharedFile};
use serde::Deserialize;

use super::files::storage_failed;
use super::rooms::{enter, room_name};
use super::{Authenticated, error, internal};
use crate::AppState;
use crate::store::FileRecord;

/// Shown inline; anything else is downloaded.
const INLINE: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];
/// Served as bytes (`application/octet-stream`), not as what they are: a
/// browser would run them if it ever displayed them.
const ACTIVE: [&str; 6] = [
    "text/html",
    "application/xhtml+xml",
    "image/svg+xml",
    "text/xml",
    "application/xml",
    "application/javascript",
];

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        ApiErrorCode::NotFound,
        "no such file",
    )
}

/// The file `id`, if `who` may read its room; `404` as for a file that
/// does not exist otherwise.
async fn readable(
    app: &Arc<AppState>,
    who: &crate::auth::Identity,
    id: &str,
) -> Result<FileRecord, Response> {
    let record = match app.hub.store().file(id).await {
        Ok(Some(record)) => record,
        Ok(None) => return Err(not_found()),
        Err(err) => return Err(internal(err)),
    };
    // The same answer for "not yours to read" as for "no such file".
    if enter(app, &record.room, who).await.is_err() {
        return Err(not_found());
    }
    Ok(record)
}

/// `GET /api/files/{id}` → the bytes, to people who may read the file's
/// room; `404 not_found` to anyone else, as for a file that does not exist.
pub async fn download(
    State(app): State<Arc<AppState>>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
) -> Response {
    let record = match readable(&app, &who, &id).await {
        Ok(record) => record,
        Err(response) => return response,
    };
    let stream = match app.blobs.get(&record.sha256).await {
        Ok(Some(stream)) => stream,
        Ok(None) => return not_found(),
        Err(err) => return storage_failed(err),
    };
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    let inline = INLINE.contains(&record.content_type.as_str());
    let content_type = if ACTIVE.contains(&record.content_type.as_str()) {
        HeaderValue::from_static("application/octet-stream")
    } else {
        HeaderValue::from_str(&record.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream"))
    };
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(record.size));
    headers.insert(
        header::CONTENT_DISPOSITION,
        disposition(if inline { "inline" } else { "attachment" }, &record.name),
    );
    sandboxed(headers, "private, max-age=3600");
    response
}

/// What every file served gets: never run as a page, even opened on its
/// own, and cached only by the browser that asked (a file of a private
/// room is that person's to see), as long as `cache` says.
fn sandboxed(headers: &mut axum::http::HeaderMap, cache: &'static str) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
}

/// `inline` or `attachment`, with the name both as plain ASCII and (RFC
/// 5987) in full.
fn disposition(kind: &str, name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HeaderValue::from_str(&format!(
        "{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or(HeaderValue::from_static("attachment"))
}

/// `GET /api/files/{id}/thumbnail` → a small JPEG or PNG of an image that
/// has one (`FileInfo::thumbnail`), to people who may read its room.
pub async fn thumbnail(
    State(app): State<Arc<AppState>>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
) -> Response {
    let record = match readable(&app, &who, &id).await {
        Ok(record) => record,
        Err(response) => return response,
    };
    let Some(sha256) = record.thumb_sha256 else {
        return not_found();
    };
    let mut stream = match app.blobs.get(&sha256).await {
        Ok(Some(stream)) => stream,
        Ok(None) => return not_found(),
        Err(err) => return storage_failed(err),
    };
    // Made by `thumbnail.rs`: JPEG or PNG, told apart by their first bytes.
    let first = match futures_util::StreamExt::next(&mut stream).await {
        Some(Ok(first)) => first,
        Some(Err(err)) => return storage_failed(err),
        None => return not_found(),
    };
    let content_type = match infer::get(&first).map(|kind| kind.mime_type()) {
        Some("image/png") => "image/png",
        _ => "image/jpeg",
    };
    let body = futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) }),
        stream,
    );
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    sandboxed(headers, "private, max-age=86400");
    response
}

#[derive(Deserialize)]
pub struct FilesQuery {
    /// Files of messages before this seq (a page's oldest).
    before: Option<u64>,
    limit: Option<u32>,
}

/// `GET /api/rooms/{room}/files?before=&limit=` → `[SharedFile]`: the
/// files shared in the room by messages that are there, newest first (at
/// most 100 a page, 50 by default).
pub async fn room_files(
    State(app): State<Arc<AppState>>,
    Authenticated(who): Authenticated,
    Path(room): Path<String>,
    Query(query): Query<FilesQuery>,
) -> Response {
    let room = match room_name(&room) {
        Ok(room) => room,
        Err(response) => return response,
    };
    if let Err(response) = enter(&app, &room, &who).await {
        return response;
    }
    let before = query.before.unwrap_or(u64::MAX);
    let limit = query.limit.unwrap_or(50).clamp(1, 100);
    match app.hub.store().room_files(&room, before, limit).await {
        Ok(shared) => Json(
            shared
                .into_iter()
                .map(|s| SharedFile {
                    file: s.file.info(),
                    seq: s.seq,
                    user: s.user,
                    ts: s.ts,
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(err) => internal(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disposition_names_the_file_safely() {
        let value = disposition("attachment", "plan \"v2\".pdf");
        assert_eq!(
            value.to_str().unwrap(),
            "attachment; filename=\"plan _v2_.pdf\"; filename*=UTF-8''plan%20%22v2%22.pdf"
        );
        let value = disposition("inline", "été.png");
        assert!(
            value
                .to_str()
                .unwrap()
                .contains("filename*=UTF-8''%C3%A9t%C3%A9.png")
        );
    }
}
