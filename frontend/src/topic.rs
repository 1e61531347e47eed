//! The room's topic under its name in the header. Owners and moderators
//! (`joined.moderator`) change it in place; everyone else just reads it.

use leptos::prelude::*;

use crate::chat::Chat;

#[component]
pub fn RoomTopic(
    #[prop(into)] chat: Signal<Chat>,
    #[prop(into)] room: Signal<String>,
    /// Set the topic of the room on screen (empty clears it).
    on_set: Callback<String>,
) -> impl IntoView {
    let topic = move || {
        chat.with(|c| {
            c.rooms
                .get(&room.get())
                .map(|r| r.topic.clone())
                .unwrap_or_default()
        })
    };
    let moderator = move || chat.with(|c| c.rooms.get(&room.get()).is_some_and(|r| r.moderator));
    let editing = RwSignal::new(false);
    let draft = RwSignal::new(String::new());
    let input = NodeRef::<leptos::html::Input>::new();
    // Another room on screen: whatever was being typed there is dropped.
    Effect::new(move |_| {
        room.track();
        editing.set(false);
    });
    Effect::new(move |_| {
        if editing.get()
            && let Some(el) = input.get()
        {
            let _ = el.focus();
        }
    });
    let start = move |_| {
        draft.set(topic());
        editing.set(true);
    };
    let save = move || {
        let value = draft.get_untracked().trim().to_owned();
        editing.set(false);
        if value != topic() && common::validate::topic(&value).is_ok() {
            on_set.run(value);
        }
    };
    view! {
        <Show when=move || editing.get() fallback=move || view! {
            <p class="topic" data-testid="topic">
                {move || {
                    let t = topic();
                    if t.is_empty() { None } else { Some(t) }
                }}
                <Show when=moderator>
                    <button type="button" class="link" on:click=start>
                        {move || if topic().is_empty() { "Set a topic" } else { "Change" }}
                    </button>
                </Show>
            </p>
        }>
            <form class="topic-edit" on:submit=move |ev| { ev.prevent_default(); save(); }>
                <input node_ref=input type="text" aria-label="Room topic"
                    maxlength=common::validate::MAX_TOPIC_CHARS.to_string()
                    placeholder="What this room is about"
                    prop:value=move || draft.get()
                    on:input=move |ev| draft.set(event_target_value(&ev))
                    on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                        if ev.key() == "Escape" {
                            ev.stop_propagation();
                            editing.set(false);
                        }
                    } />
                <button type="submit">"Save"</button>
                <button type="button" class="link" on:click=move |_| editing.set(false)>"Cancel"</button>
            </form>
        </Show>
    }
}
