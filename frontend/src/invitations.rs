//! Invitations in the sidebar: the private rooms this person was invited
//! to and has not joined, each saying who invited them, to join or
//! decline. A new one while the tab is hidden is a desktop notification
//! (when allowed); on screen, it is announced.

use common::{RoomSummary, User};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::chat::Chat;
use crate::marks::room_sign;
use crate::{api, notify};

/// The invitations of `directory` not taken up on this page: (room, who
/// invited).
fn pending(directory: &[RoomSummary], chat: &Chat) -> Vec<(String, User)> {
    directory
        .iter()
        .filter(|r| !chat.rooms.contains_key(&r.name))
        .filter_map(|r| Some((r.name.clone(), r.invited_by.clone()?)))
        .collect()
}

#[component]
pub fn InvitationList(
    chat: RwSignal<Chat>,
    directory: RwSignal<Vec<RoomSummary>>,
    token: String,
    /// This user's id, to remove themselves (declining).
    me: String,
    on_open: Callback<String>,
) -> impl IntoView {
    let entries = move || directory.with(|d| chat.with(|c| pending(d, c)));
    // Rooms already announced: the first list is not news, later ones are.
    let announced = StoredValue::new(None::<Vec<String>>);
    Effect::new(move |_| {
        let now = entries();
        let fresh: Vec<(String, User)> = announced.with_value(|seen| match seen {
            None => Vec::new(),
            Some(seen) => now
                .iter()
                .filter(|(room, _)| !seen.contains(room))
                .cloned()
                .collect(),
        });
        if directory.with(|d| !d.is_empty()) {
            announced.set_value(Some(now.iter().map(|(room, _)| room.clone()).collect()));
        }
        for (room, by) in fresh {
            notify::invitation(&room, &by);
        }
    });
    let error = RwSignal::new(String::new());
    let decline = Callback::new(move |room: String| {
        let (token, me) = (token.clone(), me.clone());
        spawn_local(async move {
            match api::remove(&token, &room, &me).await {
                Ok(()) => {
                    error.set(String::new());
                    directory.update(|d| d.retain(|r| r.name != room));
                }
                Err(failure) => error.set(format!("Could not decline #{room}: {}", failure.text())),
            }
        });
    });
    view! {
        <Show when=move || !entries().is_empty()>
            <h2>"Invitations"</h2>
            <ul class="invitations" data-testid="invitations" aria-live="polite">
                <For each=entries key=|e| e.0.clone() children=move |(room, by)| {
                    let (join, refuse) = (room.clone(), room.clone());
                    let who = match &by.username {
                        Some(username) => format!("{} (@{username}) invited you", by.name),
                        None => format!("{} invited you", by.name),
                    };
                    view! {
                        <li>
                            <span class="room-name">{room_sign(true)}{room.clone()}</span>
                            <span class="invited-by">{who}</span>
                            <span class="invite-actions">
                                <button type="button" on:click=move |_| on_open.run(join.clone())
                                    aria-label=format!("Join #{room}")>"Join"</button>
                                <button type="button" class="link" on:click=move |_| decline.run(refuse.clone())
                                    aria-label=format!("Decline #{}", room)>"Decline"</button>
                            </span>
                        </li>
                    }
                } />
            </ul>
            <p class="error" role="alert">{move || error.get()}</p>
        </Show>
    }
}
