//! Uploading a file to a room (`POST /api/rooms/{room}/files`), with its
//! progress and a way to cancel it: an `XMLHttpRequest`, since `fetch`
//! reports no upload progress. The browser streams the file from disk;
//! nothing here holds its bytes.

use std::cell::RefCell;
use std::collections::HashMap;

use common::{ApiError, FileInfo};

use crate::attachments::UploadError;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{ProgressEvent, XmlHttpRequest};

/// One upload in flight, kept until it ends (its callbacks live as long).
struct InFlight {
    xhr: XmlHttpRequest,
    _progress: Closure<dyn FnMut(ProgressEvent)>,
    _ended: Closure<dyn FnMut()>,
}

thread_local! {
    /// Uploads in flight, by the caller's key.
    static IN_FLIGHT: RefCell<HashMap<u32, InFlight>> = RefCell::new(HashMap::new());
}

/// Starts uploading `file` to `room` as `key`. `on_progress` gets the
/// bytes sent so far; `on_end` once, with the file as stored or why it
/// failed (`"cancelled"` after `cancel`).
pub fn start(
    key: u32,
    token: &str,
    room: &str,
    file: &web_sys::File,
    on_progress: impl Fn(u64) + 'static,
    on_end: impl FnOnce(Result<FileInfo, UploadError>) + 'static,
) {
    let fail = |why: &str| {
        Err(UploadError {
            why: why.to_owned(),
            status: 0,
        })
    };
    let Ok(xhr) = XmlHttpRequest::new() else {
        return on_end(fail("this browser cannot upload files"));
    };
    let name: String = js_sys::encode_uri_component(&file.name()).into();
    let url = format!("/api/rooms/{room}/files?name={name}");
    if xhr.open_with_async("POST", &url, true).is_err()
        || xhr
            .set_request_header("Authorization", &format!("Bearer {token}"))
            .is_err()
    {
        return on_end(fail("the upload could not start"));
    }
    let progress = Closure::<dyn FnMut(ProgressEvent)>::new(move |ev: ProgressEvent| {
        on_progress(ev.loaded() as u64);
    });
    if let Ok(upload) = xhr.upload() {
        upload.set_onprogress(Some(progress.as_ref().unchecked_ref()));
    }
    let mut on_end = Some(on_end);
    let done = xhr.clone();
    let ended = Closure::<dyn FnMut()>::new(move || {
        let Some(on_end) = on_end.take() else {
            return;
        };
        // Forgotten once this callback has returned (dropping a closure
        // while it runs is an error).
        wasm_bindgen_futures::spawn_local(async move {
            IN_FLIGHT.with(|f| f.borrow_mut().remove(&key));
        });
        let status = done.status().unwrap_or(0);
        let text = done.response_text().ok().flatten().unwrap_or_default();
        let why = match status {
            201 => match serde_json::from_str::<FileInfo>(&text) {
                Ok(file) => return on_end(Ok(file)),
                Err(_) => "the server's answer could not be read".to_owned(),
            },
            0 => "the upload was cut off; check your connection".to_owned(),
            _ => serde_json::from_str::<ApiError>(&text)
                .map(|e| e.message)
                .unwrap_or_else(|_| format!("the server answered {status}")),
        };
        let result = Err(UploadError { why, status });
        on_end(result);
    });
    // `loadend` comes once, after `load`, `error`, `abort` or `timeout`.
    xhr.set_onloadend(Some(ended.as_ref().unchecked_ref()));
    if xhr.send_with_opt_blob(Some(file)).is_err() {
        return;
    }
    IN_FLIGHT.with(|f| {
        f.borrow_mut().insert(
            key,
            InFlight {
                xhr,
                _progress: progress,
                _ended: ended,
            },
        )
    });
}

/// Cancels the upload `key`, if it is in flight (its `on_end` gets
/// `"cancelled"`).
pub fn cancel(key: u32) {
    let xhr = IN_FLIGHT.with(|f| f.borrow().get(&key).map(|u| u.xhr.clone()));
    if let Some(xhr) = xhr {
        let _ = xhr.abort();
    }
}
