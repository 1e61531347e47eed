//! Uploads: `POST /api/rooms/{room}/files` (serving them is
//! `downloads.rs`).
//!
//! An upload streams to a temp file in the data dir as it arrives, hashed
//! and counted on the way: never whole in memory, refused the moment it
//! passes the size limit or the uploader's quota, and moved into the file
//! store (`store/blobs.rs`) durably before it is answered. What it is comes
//! from its bytes (`infer`), never from the client; an image's size from
//! its header (`imagesize`). A large image gets a thumbnail
//! (`thumbnail.rs`); one whose header claims a huge size is refused.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::ApiErrorCode;
use futures_util::StreamExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::rooms::{enter, room_name};
use super::{Authenticated, error, internal};
use crate::AppState;
use crate::store::FileRecord;

/// The bytes kept to tell what a file is and an image's size.
const HEAD: usize = 64 * 1024;

/// Images a thumbnail is made of.
const RASTER: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

#[derive(Deserialize)]
pub struct UploadQuery {
    name: Option<String>,
}

/// A name to keep: its last path component, without control or
/// reordering characters, at most 255 bytes; "file" if nothing is left.
fn file_name(given: Option<&str>) -> String {
    let last = given
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let mut name: String = last
        .chars()
        .filter(|c| !c.is_control() && !common::validate::reorders(*c))
        .collect();
    while name.len() > 255 {
        name.pop();
    }
    let name = name.trim().to_owned();
    if name.is_empty() || name == "." || name == ".." {
        "file".to_owned()
    } else {
        name
    }
}

/// Removes the temp file when an upload ends without reaching the store.
struct Temp(Option<PathBuf>);

impl Drop for Temp {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// "25 MiB", or the bytes when that is not a whole number of MiB.
fn size_text(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

fn too_large(why: ApiErrorCode, message: &str) -> Response {
    error(StatusCode::PAYLOAD_TOO_LARGE, why, message)
}

/// `POST /api/rooms/{room}/files?name=…`, the file as the body →
/// `201 FileInfo`. `413 too_large` past `--max-upload-bytes`, `413
/// quota_exceeded` past `--upload-quota-bytes`, `429 rate_limited` past
/// `--uploads-per-minute`, `408 request_timeout` if the body sends nothing
/// for `--upload-idle-ms`: in each case nothing is stored.
pub async fn upload(
    State(app): State<Arc<AppState>>,
    Authenticated(who): Authenticated,
    Path(room): Path<String>,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let room = match room_name(&room) {
        Ok(room) => room,
        Err(response) => return response,
    };
    if let Err(response) = enter(&app, &room, &who).await {
        return response;
    }
    if let Err(wait) = app.throttle.upload(&who.user.id) {
        crate::prometheus::rate_limited("uploads");
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            ApiErrorCode::RateLimited,
            "uploading too fast",
        );
        let secs = wait.as_secs().max(1).to_string();
        if let Ok(value) = HeaderValue::from_str(&secs) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let max = app.config.max_upload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return too_large(
            ApiErrorCode::TooLarge,
            &format!("a file is at most {}", size_text(max)),
        );
    }
    let store = app.hub.store();
    let used = match store.stored_by(&who.user.id).await {
        Ok(used) => used,
        Err(err) => return internal(err),
    };
    let room_left = app.config.upload_quota_bytes.saturating_sub(used);
    if declared.is_some_and(|n| n > room_left) || room_left == 0 {
        return too_large(
            ApiErrorCode::QuotaExceeded,
            "your files take all the space you have; delete some first",
        );
    }
    let limit = max.min(room_left);

    // The body, to a temp file beside the file store.
    let dir = app.config.data_dir.join("uploads");
    if let Err(err) = crate::store::files::private_dir(&dir) {
        tracing::error!(%err, "creating the uploads dir");
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            ApiErrorCode::Internal,
            "the server could not store the file",
        );
    }
    let id = uuid::Uuid::now_v7().to_string();
    let mut temp = Temp(Some(dir.join(&id)));
    let path = temp.0.clone().expect("just set");
    let mut file = match tokio::fs::File::create(&path).await {
        Ok(file) => file,
        Err(err) => return storage_failed(err),
    };
    let mut hasher = Sha256::new();
    let mut head = Vec::with_capacity(HEAD);
    let mut size: u64 = 0;
    let idle = Duration::from_millis(app.config.upload_idle_ms.max(1));
    let mut stream = body.into_data_stream();
    loop {
        let chunk = match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => {
                return error(
                    StatusCode::REQUEST_TIMEOUT,
                    ApiErrorCode::RequestTimeout,
                    "the upload stalled",
                );
            }
            Ok(None) => break,
            Ok(Some(Err(_))) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    ApiErrorCode::InvalidBody,
                    "the upload was cut off",
                );
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        size += chunk.len() as u64;
        if size > limit {
            return if limit == max {
                too_large(
                    ApiErrorCode::TooLarge,
                    &format!("a file is at most {}", size_text(max)),
                )
            } else {
                too_large(
                    ApiErrorCode::QuotaExceeded,
                    "this file would take more space than you have left",
                )
            };
        }
        hasher.update(&chunk);
        let wanted = HEAD.saturating_sub(head.len()).min(chunk.len());
        head.extend_from_slice(&chunk[..wanted]);
        if let Err(err) = file.write_all(&chunk).await {
            return storage_failed(err);
        }
    }
    if let Err(err) = file.flush().await {
        return storage_failed(err);
    }
    drop(file);
    let sha256 = hex(&hasher.finalize());
    let content_type = infer::get(&head)
        .map(|kind| kind.mime_type())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let (width, height) = if content_type.starts_with("image/") {
        imagesize::blob_size(&head)
            .ok()
            .and_then(|s| Some((u32::try_from(s.width).ok()?, u32::try_from(s.height).ok()?)))
            .map_or((None, None), |(w, h)| (Some(w), Some(h)))
    } else {
        (None, None)
    };
    if let (Some(w), Some(h)) = (width, height)
        && !crate::thumbnail::acceptable(w, h)
    {
        return too_large(ApiErrorCode::TooLarge, "an image is at most 50 megapixels");
    }
    let thumb_sha256 = match (width, height) {
        (Some(w), Some(h))
            if RASTER.contains(&content_type.as_str()) && crate::thumbnail::wanted(w, h) =>
        {
            match thumbnail(&app, &path, &id).await {
                Ok(thumb) => thumb,
                Err(err) => return storage_failed(err),
            }
        }
        _ => None,
    };
    if let Err(err) = app.blobs.put(&sha256, &path).await {
        return storage_failed(err);
    }
    temp.0 = None;
    let record = FileRecord {
        id,
        room,
        uploader: who.user.id.clone(),
        name: file_name(query.name.as_deref()),
        size,
        content_type,
        sha256,
        width,
        height,
        created_at: crate::store::now_millis(),
        thumb_sha256,
    };
    if let Err(err) = store.add_file(&record).await {
        return internal(err);
    }
    tracing::info!(id = %record.id, room = %record.room, size, "uploaded");
    (StatusCode::CREATED, Json(record.info())).into_response()
}

/// Makes, hashes and stores the thumbnail of the image at `path` (an
/// upload's temp file, named `id`): the thumbnail's hash, or `None` if
/// the image could not be decoded within the limits.
async fn thumbnail(
    app: &AppState,
    path: &std::path::Path,
    id: &str,
) -> std::io::Result<Option<String>> {
    let dest = path.with_file_name(format!("{id}.thumb"));
    let mut temp = Temp(Some(dest.clone()));
    if !crate::thumbnail::make(path.to_owned(), dest.clone()).await? {
        return Ok(None);
    }
    let bytes = tokio::fs::read(&dest).await?;
    let sha256 = hex(&Sha256::digest(&bytes));
    app.blobs.put(&sha256, &dest).await?;
    temp.0 = None;
    Ok(Some(sha256))
}

pub(super) fn storage_failed(err: std::io::Error) -> Response {
    tracing::error!(%err, "file store");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        ApiErrorCode::Internal,
        "the server could not store the file",
    )
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_its_last_part_without_control_characters() {
        assert_eq!(file_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(file_name(Some("C:\\Users\\me\\cat.png")), "cat.png");
        assert_eq!(file_name(Some("a\u{0}b\u{202e}gnp.exe")), "abgnp.exe");
        assert_eq!(file_name(Some("..")), "file");
        assert_eq!(file_name(None), "file");
        assert!(file_name(Some(&"é".repeat(300))).len() <= 255);
    }
}
