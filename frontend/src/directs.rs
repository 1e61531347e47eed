//! Direct conversations in the sidebar: listed apart from rooms, each
//! under the other person's name (rooms named `dm-…` are the server's; see
//! `common::direct_room`), with its unread count.

use common::{RoomSummary, User, Visibility};
use leptos::prelude::*;

use crate::chat::Badge;
use crate::chat::Chat;
use crate::marks::unread_badge;

pub use crate::chat::is_direct;

/// The other person of direct conversation `room`, if known yet.
pub fn other(directory: &[RoomSummary], room: &str) -> Option<User> {
    directory
        .iter()
        .find(|r| r.name == room)
        .and_then(|r| r.with.clone())
}

#[component]
pub fn DirectList(
    chat: RwSignal<Chat>,
    directory: RwSignal<Vec<RoomSummary>>,
    on_open: Callback<String>,
) -> impl IntoView {
    // Open ones first (with unread counts), then the rest the server lists.
    let entries = move || {
        let mut list: Vec<(String, String, Badge, bool)> = chat.with(|c| {
            c.rooms
                .iter()
                .filter(|(name, _)| is_direct(name))
                .map(|(name, _)| {
                    let who = directory
                        .with(|d| other(d, name))
                        .map_or_else(|| "Conversation".to_owned(), |u| u.name);
                    (
                        name.clone(),
                        who,
                        c.badge(name),
                        c.current.as_deref() == Some(name),
                    )
                })
                .collect()
        });
        directory.with(|d| {
            for r in d.iter().filter(|r| r.visibility == Visibility::Direct) {
                if !list.iter().any(|(name, ..)| *name == r.name) {
                    let who = r
                        .with
                        .as_ref()
                        .map_or_else(|| "Conversation".to_owned(), |u| u.name.clone());
                    list.push((r.name.clone(), who, Badge::default(), false));
                }
            }
        });
        list
    };
    view! {
        <Show when=move || !entries().is_empty()>
            <h2>"Direct messages"</h2>
            <ul class="rooms directs" data-testid="directs">
                <For each=entries key=|e| e.clone() children=move |(name, who, badge, active)| {
                    let open = name.clone();
                    view! {
                        <li class:active=active>
                            <button type="button" class="room-link" aria-current=active.then_some("page")
                                on:click=move |_| on_open.run(open.clone())>
                                <span class="room-name"><span aria-hidden="true">"@ "</span>{who}</span>
                                {unread_badge(badge)}
                            </button>
                        </li>
                    }
                } />
            </ul>
        </Show>
    }
}
