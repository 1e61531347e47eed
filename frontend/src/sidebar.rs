//! The sidebar: search, the rooms this person is in (with unread and
//! mention counts), their direct conversations, other rooms to join, a
//! box to join or create one, and who is signed in.

use common::{RoomSummary, Visibility};
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;

use crate::api;
use crate::chat::Chat;
use crate::directs::{self, DirectList};
use crate::invitations::InvitationList;
use crate::marks::{room_sign, unread_badge};
use crate::notify;
use crate::search::SearchBox;

#[component]
pub fn RoomSidebar(
    chat: RwSignal<Chat>,
    directory: RwSignal<Vec<RoomSummary>>,
    on_open: Callback<String>,
    me: common::User,
    token: String,
    on_sign_out: impl Fn(leptos::ev::MouseEvent) + 'static,
    on_search: Callback<String>,
    /// Opens the account screen.
    on_account: Callback<()>,
) -> impl IntoView {
    let invite_token = token.clone();
    let new_room = RwSignal::new(String::new());
    let private = RwSignal::new(false);
    let error = RwSignal::new(String::new());
    let is_private = move |name: &str| {
        directory.with(|d| {
            d.iter()
                .any(|r| r.name == name && r.visibility == Visibility::Private)
        })
    };
    let joined = move || {
        chat.with(|c| {
            c.rooms
                .iter()
                .filter(|(name, _)| !directs::is_direct(name))
                .map(|(name, r)| {
                    (
                        name.clone(),
                        r.members.len(),
                        c.badge(name),
                        c.current.as_deref() == Some(name),
                    )
                })
                .collect::<Vec<_>>()
        })
    };
    let others = move || {
        let joined: Vec<String> = chat.with(|c| c.rooms.keys().cloned().collect());
        directory.with(|d| {
            d.iter()
                .filter(|r| {
                    !joined.contains(&r.name)
                        && r.visibility != Visibility::Direct
                        && r.invited_by.is_none()
                })
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    // Desktop notifications for mentions: offered until the person decides
    // (guests have no @username to be mentioned by).
    let can_notify = RwSignal::new(notify::can_ask());
    let me_has_username = me.username.is_some();
    let create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let name = common::validate::canonical_room(&new_room.get_untracked());
        if let Err(why) = common::validate::room_name(&name) {
            return error.set(why.to_owned());
        }
        error.set(String::new());
        if !private.get_untracked() {
            // A public room: joining it creates it if it is new.
            new_room.set(String::new());
            return on_open.run(name);
        }
        let token = token.clone();
        spawn_local(async move {
            match api::create_room(&token, &name, Visibility::Private).await {
                Ok(created) => {
                    directory.update(|d| d.push(created));
                    new_room.set(String::new());
                    private.set(false);
                    on_open.run(name);
                }
                Err(failure) => error.set(failure.text()),
            }
        });
    };
    view! {
        <nav class="sidebar" id="sidebar" aria-label="Rooms">
            <div class="brand"><span class="logo" aria-hidden="true">"H"</span>" Hearth"</div>
            <SearchBox on_search />
            <InvitationList chat directory token=invite_token me=me.id.clone() on_open />
            <h2>"Your rooms"</h2>
            <ul class="rooms" data-testid="rooms" on:keydown=arrow_keys>
                <For each=joined key=|r| r.clone() children=move |(name, members, badge, active)| {
                    let open = name.clone();
                    view! {
                        <li class:active=active>
                            <button type="button" class="room-link" aria-current=active.then_some("page")
                                on:click=move |_| on_open.run(open.clone())>
                                <span class="room-name">{room_sign(is_private(&name))}{name.clone()}</span>
                                <span class="count" title="people in this room">{members} " here"</span>
                                {unread_badge(badge)}
                            </button>
                        </li>
                    }
                } />
            </ul>
            <DirectList chat directory on_open />
            <form class="new-room" on:submit=create>
                <input placeholder="Room name" aria-label="Room name" maxlength="64"
                    aria-describedby="room-rules"
                    prop:value=move || new_room.get()
                    on:input=move |ev| new_room.set(event_target_value(&ev)) />
                <button type="submit">{move || if private.get() { "Create" } else { "Join" }}</button>
            </form>
            <label class="private-toggle">
                <input type="checkbox" prop:checked=move || private.get()
                    on:change=move |ev| private.set(event_target_checked(&ev)) />
                " Private: only people you invite"
            </label>
            <p id="room-rules" class="hint">"Letters, digits, - and _, up to 64"</p>
            <p class="error" role="alert">{move || error.get()}</p>
            <Show when=move || !others().is_empty()>
                <h2>"Other rooms"</h2>
                <ul class="rooms directory" on:keydown=arrow_keys>
                    <For each=others key=|r| (r.name.clone(), r.members) children=move |r| {
                        let open = r.name.clone();
                        view! {
                            <li>
                                <button type="button" class="room-link" on:click=move |_| on_open.run(open.clone())>
                                    <span class="room-name">{room_sign(r.visibility == Visibility::Private)}{r.name}</span>
                                    <span class="count" title="people in this room">{r.members} " here"</span>
                                </button>
                            </li>
                        }
                    } />
                </ul>
            </Show>
            <Show when=move || can_notify.get() && me_has_username>
                <button type="button" class="link notify" on:click=move |_| {
                    notify::ask(move |_| can_notify.set(false));
                }>"Notify me when I am mentioned"</button>
            </Show>
            <div class="me">
                <span title=crate::reading::handle(&me)>"Signed in as "
                    // Renamed on this device or another: the name as it is now.
                    <strong>{move || chat.with(|c| c.me.as_ref().map_or_else(String::new, |u| u.name.clone()))}</strong></span>
                <span class="me-actions">
                    <button type="button" class="link" aria-haspopup="dialog"
                        on:click=move |_| on_account.run(())>"Account"</button>
                    <button type="button" class="link" on:click=on_sign_out>"Sign out"</button>
                </span>
            </div>
        </nav>
    }
}

/// Arrow keys move the focus between the rooms of a list (each a button);
/// Enter or Space opens the focused one, as for any button.
fn arrow_keys(ev: leptos::ev::KeyboardEvent) {
    let step: i32 = match ev.key().as_str() {
        "ArrowDown" | "ArrowRight" => 1,
        "ArrowUp" | "ArrowLeft" => -1,
        _ => return,
    };
    let Some(list) = ev
        .current_target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
    else {
        return;
    };
    let Ok(buttons) = list.query_selector_all("button.room-link") else {
        return;
    };
    let focused = document().active_element();
    let count = buttons.length() as i32;
    let Some(at) = (0..count).find(|i| {
        buttons
            .item(*i as u32)
            .is_some_and(|b| focused.as_ref().is_some_and(|f| b.is_same_node(Some(f))))
    }) else {
        return;
    };
    ev.prevent_default();
    let next = (at + step).rem_euclid(count);
    if let Some(button) = buttons
        .item(next as u32)
        .and_then(|b| b.dyn_into::<web_sys::HtmlElement>().ok())
    {
        let _ = button.focus();
    }
}
