//! The bar above a conversation: the room's name (or who a direct
//! conversation is with), its topic, what of it notifies you, the files
//! shared in it, and "Leave room".

use common::Notify;
use leptos::prelude::*;

use crate::conversation::Conversation;
use crate::directory::Directory;
use crate::directs;
use crate::marks::room_sign;
use crate::topic::RoomTopic;

#[component]
pub fn RoomHeader(
    conversation: Conversation,
    directory: Directory,
    on_leave: Callback<String>,
) -> impl IntoView {
    let room = conversation.room;
    let on_notify = conversation.on_notify();
    let current = Memo::new(move |_| conversation.chat.with(|c| c.notify(&room.get())));
    view! {
        <header class="room-header">
            <div class="room-title">
                <h1>{move || {
                    let name = room.get();
                    if directs::is_direct(&name) {
                        let who = directory.list.with(|d| directs::other(d, &name)).map_or_else(
                            || "Conversation".to_owned(),
                            |u| format!("{} · {}", u.name, crate::reading::handle(&u)),
                        );
                        view! { <span aria-hidden="true">"@ "</span>{who} }.into_any()
                    } else {
                        view! { {room_sign(directory.is_private(&name))}{name} }.into_any()
                    }
                }}</h1>
                <Show when=move || !directs::is_direct(&room.get())>
                    <RoomTopic chat=conversation.chat room on_set=conversation.on_topic() />
                </Show>
            </div>
            <div class="room-actions">
                <label>
                    <span class="visually-hidden">"Notifications"</span>
                    <select class="notify" data-testid="notify" title="What notifies you here"
                        on:change=move |ev| {
                            if let Some(notify) = Notify::parse(&event_target_value(&ev)) {
                                on_notify.run(notify);
                            }
                        }>
                        {[
                            (Notify::All, "All messages"),
                            (Notify::Mentions, "Mentions"),
                            (Notify::Mute, "Mute"),
                        ]
                            .map(|(notify, label)| view! {
                                // A property, not the attribute: the attribute
                                // only says which is chosen before anyone chooses.
                                <option value=notify.as_str() prop:selected=move || current.get() == notify>
                                    {label}
                                </option>
                            })}
                    </select>
                </label>
                <crate::room_files::RoomFiles room />
                <button type="button" class="link leave"
                    on:click=move |_| on_leave.run(room.get_untracked())>"Leave room"</button>
            </div>
        </header>
    }
}
