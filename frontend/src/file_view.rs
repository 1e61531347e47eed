//! Files in messages: a picture shows (its thumbnail, in the space its
//! size keeps, so the list does not jump as it loads) and opens full size
//! in a viewer (Escape closes it); any other file is a card with its name,
//! size and a Download button. Files are the room's members' only, so
//! they are fetched with the session's token and shown from `blob:` URLs,
//! kept a while so a line drawn again does not fetch again.

use std::cell::RefCell;
use std::collections::VecDeque;

use common::FileInfo;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;

use crate::attachments::{human_size, is_picture, shown_size};

/// The session's token, for fetching files (provided by the chat screen).
#[derive(Clone)]
pub struct FileToken(pub String);

/// The longest side of a picture in a message, in CSS pixels.
const PICTURE_BOX: u32 = 320;
/// `blob:` URLs kept, and the bytes behind them: beyond either, the
/// oldest are released (a picture drawn again is fetched again).
const KEPT: usize = 200;
const KEPT_BYTES: f64 = 64.0 * 1024.0 * 1024.0;

thread_local! {
    /// (path, `blob:` URL, its size), newest last.
    static FETCHED: RefCell<VecDeque<(String, String, f64)>> = const { RefCell::new(VecDeque::new()) };
}

/// A `blob:` URL of what `path` serves, fetched with `token` once.
pub async fn blob_url(token: &str, path: &str) -> Result<String, String> {
    if let Some(url) = FETCHED.with(|f| {
        f.borrow()
            .iter()
            .find(|(p, _, _)| p == path)
            .map(|(_, u, _)| u.clone())
    }) {
        return Ok(url);
    }
    let response = gloo_net::http::Request::get(path)
        .header("Authorization", &format!("Bearer {token}"))
        .send()
        .await
        .map_err(|_| "the server cannot be reached".to_owned())?;
    if !response.ok() {
        return Err(match response.status() {
            404 => "this file is no longer there".to_owned(),
            status => format!("the server answered {status}"),
        });
    }
    let promise = web_sys::Response::from(response)
        .blob()
        .map_err(|_| "the file could not be read".to_owned())?;
    let blob: web_sys::Blob = wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .map_err(|_| "the file could not be read".to_owned())?
        .unchecked_into();
    let url = web_sys::Url::create_object_url_with_blob(&blob)
        .map_err(|_| "the file could not be shown".to_owned())?;
    FETCHED.with(|f| {
        let mut f = f.borrow_mut();
        f.push_back((path.to_owned(), url.clone(), blob.size()));
        // The newest stays, whatever its size.
        while f.len() > 1
            && (f.len() > KEPT || f.iter().map(|(_, _, size)| size).sum::<f64>() > KEPT_BYTES)
        {
            if let Some((_, old, _)) = f.pop_front() {
                let _ = web_sys::Url::revoke_object_url(&old);
            }
        }
    });
    Ok(url)
}

fn token() -> String {
    use_context::<FileToken>().map(|t| t.0).unwrap_or_default()
}

/// Saves the file `file` as the browser saves downloads.
pub fn download(token: String, file: FileInfo) {
    spawn_local(async move {
        let Ok(url) = blob_url(&token, &format!("/api/files/{}", file.id)).await else {
            return;
        };
        let Ok(link) = document().create_element("a") else {
            return;
        };
        let link: web_sys::HtmlAnchorElement = link.unchecked_into();
        link.set_href(&url);
        link.set_download(&file.name);
        link.click();
    });
}

/// A picture from `path` (fetched with the token), at `width` × `height`.
#[component]
fn AuthImage(path: String, alt: String, width: u32, height: u32) -> impl IntoView {
    let src = RwSignal::new(None::<String>);
    let failed = RwSignal::new(false);
    let token = token();
    spawn_local(async move {
        match blob_url(&token, &path).await {
            Ok(url) => {
                let _ = src.try_set(Some(url));
            }
            Err(_) => {
                let _ = failed.try_set(true);
            }
        }
    });
    view! {
        <img alt=alt src=move || src.get() width=width height=height
            class:unavailable=move || failed.get() />
    }
}

/// A message's files. `stop`: their buttons' `tabindex` (the message list
/// is one Tab stop; a message's own controls take focus once it has it).
#[component]
pub fn MessageFiles(files: Vec<FileInfo>, stop: Signal<&'static str>) -> impl IntoView {
    let open = RwSignal::new(None::<FileInfo>);
    let (pictures, others): (Vec<FileInfo>, Vec<FileInfo>) =
        files.into_iter().partition(is_picture);
    let token = token();
    let pictures = pictures
        .into_iter()
        .map(|file| {
            let (w, h) = shown_size(
                file.width.unwrap_or(PICTURE_BOX),
                file.height.unwrap_or(PICTURE_BOX),
                PICTURE_BOX,
            );
            let path = if file.thumbnail {
                format!("/api/files/{}/thumbnail", file.id)
            } else {
                format!("/api/files/{}", file.id)
            };
            let label = format!("Open {}", file.name);
            let name = file.name.clone();
            let title = name.clone();
            view! {
                <button type="button" class="picture" aria-label=label title=title tabindex=stop
                    on:click=move |_| open.set(Some(file.clone()))>
                    <AuthImage path alt=name width=w height=h />
                </button>
            }
        })
        .collect_view();
    let cards = others
        .into_iter()
        .map(|file| {
            let token = token.clone();
            let size = human_size(file.size);
            let label = format!("Download {}", file.name);
            let name = file.name.clone();
            view! {
                <div class="file-card">
                    <span class="file-icon" aria-hidden="true">"📄"</span>
                    <span class="file-text">
                        <span class="file-name">{name}</span>
                        <span class="muted">{size}</span>
                    </span>
                    <button type="button" class="link" aria-label=label tabindex=stop
                        on:click=move |_| download(token.clone(), file.clone())>"Download"</button>
                </div>
            }
        })
        .collect_view();
    view! {
        <div class="message-files">
            <div class="pictures">{pictures}</div>
            {cards}
            {move || open.get().map(|file| view! {
                <Viewer file on_close=Callback::new(move |()| open.set(None)) />
            })}
        </div>
    }
}

/// A picture full size, over the page (a modal dialog: Escape, the Close
/// button or a click beside it closes it, and focus comes back).
#[component]
fn Viewer(file: FileInfo, on_close: Callback<()>) -> impl IntoView {
    let dialog = NodeRef::<leptos::html::Dialog>::new();
    Effect::new(move |_| {
        if let Some(d) = dialog.get() {
            let _ = d.show_modal();
        }
    });
    let token = token();
    let (w, h) = (file.width.unwrap_or(800), file.height.unwrap_or(600));
    let caption = format!("{} · {}", file.name, human_size(file.size));
    let saved = file.clone();
    view! {
        <dialog node_ref=dialog class="viewer" aria-label=file.name.clone()
            on:close=move |_| on_close.run(())
            on:click=move |ev| {
                // A click on the backdrop (the dialog itself, not its content).
                if ev.target() == ev.current_target() {
                    on_close.run(());
                }
            }>
            <figure>
                <AuthImage path=format!("/api/files/{}", file.id) alt=file.name.clone() width=w height=h />
                <figcaption>
                    <span>{caption}</span>
                    <button type="button" class="link"
                        on:click=move |_| download(token.clone(), saved.clone())>"Download"</button>
                    <button type="button" class="link" autofocus=true
                        on:click=move |_| on_close.run(())>"Close"</button>
                </figcaption>
            </figure>
        </dialog>
    }
}
