//! "Files" in the room's header: what was shared in the room, newest
//! first, each with who shared it, a Download button and a link to the
//! message it was sent in. Read when opened, so it is never stale.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::attachments::human_size;
use crate::file_view::{FileToken, download};

/// The button, and the dialog it opens.
#[component]
pub fn RoomFiles(room: Memo<String>) -> impl IntoView {
    let token = StoredValue::new(use_context::<FileToken>().map(|t| t.0).unwrap_or_default());
    let open = RwSignal::new(false);
    let listed = RwSignal::new(None::<Result<Vec<common::SharedFile>, String>>);
    let dialog = NodeRef::<leptos::html::Dialog>::new();
    let show = move || {
        open.set(true);
        listed.set(None);
        let (token, room) = (token.get_value(), room.get_untracked());
        spawn_local(async move {
            let got = crate::api::room_files(&token, &room)
                .await
                .map_err(|f| f.text());
            let _ = listed.try_set(Some(got));
        });
    };
    Effect::new(move |_| {
        if open.get()
            && let Some(d) = dialog.get()
            && !d.open()
        {
            let _ = d.show_modal();
        }
    });
    let rows = move || match listed.get() {
        None => view! { <p class="muted">"Loading…"</p> }.into_any(),
        Some(Err(why)) => view! { <p class="form-error" role="alert">{why}</p> }.into_any(),
        Some(Ok(files)) if files.is_empty() => {
            view! { <p class="muted">"Nothing has been shared here yet."</p> }.into_any()
        }
        Some(Ok(files)) => {
            let room = room.get_untracked();
            view! {
                <ul class="shared-files">
                    {files.into_iter().map(|shared| {
                        let file = shared.file.clone();
                        let when = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(shared.ts as f64))
                            .to_locale_date_string("default", &wasm_bindgen::JsValue::UNDEFINED);
                        let about = format!("{} · {} · {}", human_size(file.size), shared.user.name, String::from(when));
                        let label = format!("Download {}", file.name);
                        view! {
                            <li>
                                <span class="file-text">
                                    <span class="file-name">{file.name.clone()}</span>
                                    <span class="muted">{about}</span>
                                </span>
                                <a class="link" href=crate::links::path(&room, Some(shared.seq))
                                    on:click=move |_| open.set(false)>"Show message"</a>
                                <button type="button" class="link" aria-label=label
                                    on:click=move |_| download(token.get_value(), file.clone())>"Download"</button>
                            </li>
                        }
                    }).collect_view()}
                </ul>
            }
            .into_any()
        }
    };
    view! {
        <button type="button" class="link" aria-haspopup="dialog" on:click=move |_| show()>"Files"</button>
        <Show when=move || open.get()>
            <dialog node_ref=dialog class="files-dialog" aria-labelledby="files-title"
                on:close=move |_| open.set(false)>
                <header>
                    <h2 id="files-title">{move || format!("Files in #{}", room.get())}</h2>
                    <button type="button" class="link" on:click=move |_| open.set(false)>"Close"</button>
                </header>
                {rows}
            </dialog>
        </Show>
    }
}
