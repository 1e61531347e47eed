//! The members panel: who is here now, everyone's role, and for owners
//! and moderators the invite box and the remove (and, for the owner,
//! promote and demote) buttons. The server checks every one of these; the
//! panel only offers what the server would allow.

use common::{Role, RoomMember, User};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::chat::Chat;
use crate::reading;

/// The current room's members with roles, refetched when the room
/// changes or after a change made here.
#[component]
pub fn Members(
    #[prop(into)] chat: Signal<Chat>,
    #[prop(into)] room: Signal<String>,
    token: String,
    me: User,
    /// Start a direct conversation with this username.
    #[prop(optional)]
    on_direct: Option<Callback<String>>,
) -> impl IntoView {
    let roles = RwSignal::new(Vec::<RoomMember>::new());
    let revision = RwSignal::new(0u32);
    let error = RwSignal::new(String::new());
    let token = StoredValue::new(token);
    // Asked once the room is joined: a room being created does not exist
    // yet when it is put on screen (asking then was a 404 in the console).
    let live = Memo::new(move |_| {
        let room = room.get();
        chat.with(|c| c.rooms.get(&room).is_some_and(|r| r.live))
    });
    Effect::new(move |_| {
        let room = room.get();
        revision.track();
        if room.is_empty() || !live.get() {
            return;
        }
        let token = token.get_value();
        spawn_local(async move {
            match api::members(&token, &room).await {
                Ok(list) => roles.set(list),
                Err(_) => roles.set(Vec::new()),
            }
        });
    });
    let my_id = me.id.clone();
    let my_role =
        Memo::new(move |_| roles.with(|r| r.iter().find(|m| m.user.id == my_id).map(|m| m.role)));
    let role_of = move |user_id: &str| {
        roles.with(|r| r.iter().find(|m| m.user.id == user_id).map(|m| m.role))
    };
    // Invited and not here yet: shown as such, so nobody takes them for a
    // member who is merely away.
    let invited =
        move |user_id: &str| roles.with(|r| r.iter().any(|m| m.user.id == user_id && m.invited));
    // Everyone here now, plus members with a role who are away.
    let people = move || {
        let present: Vec<User> = chat.with(|c| {
            c.rooms
                .get(&room.get())
                .map(|r| r.members.values().cloned().collect())
                .unwrap_or_default()
        });
        let mut list: Vec<(User, bool, Option<Role>)> = present
            .into_iter()
            .map(|u| {
                let role = role_of(&u.id);
                (u, true, role)
            })
            .collect();
        roles.with(|r| {
            for member in r {
                if !list.iter().any(|(u, _, _)| u.id == member.user.id) {
                    list.push((member.user.clone(), false, Some(member.role)));
                }
            }
        });
        list.sort_by(|a, b| {
            b.2.cmp(&a.2)
                .then(b.1.cmp(&a.1))
                .then(a.0.name.cmp(&b.0.name))
        });
        list
    };
    let here = move || people().iter().filter(|(_, present, _)| *present).count();
    let moderates = move || my_role.get().is_some_and(Role::moderates);
    let act = move |call: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), api::Failure>>>,
    >| {
        spawn_local(async move {
            match call.await {
                Ok(()) => error.set(String::new()),
                Err(failure) => error.set(failure.text()),
            }
            revision.update(|r| *r += 1);
        });
    };
    let invitee = RwSignal::new(String::new());
    let invited_now = RwSignal::new(String::new());
    let invite = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let username = common::validate::canonical_username(&invitee.get_untracked());
        if username.is_empty() {
            return;
        }
        let (token, room) = (token.get_value(), room.get_untracked());
        invitee.set(String::new());
        spawn_local(async move {
            match api::invite(&token, &room, &username).await {
                Ok(member) => {
                    error.set(String::new());
                    invited_now.set(format!(
                        "Invited {} (@{username}): they see it under Invitations.",
                        member.user.name
                    ));
                }
                Err(failure) => {
                    invited_now.set(String::new());
                    error.set(failure.text());
                }
            }
            revision.update(|r| *r += 1);
        });
    };
    // Completion for the invite box: people this page has seen (in any
    // room, or writing) who have a username and are not members here.
    let known = move || {
        let here: Vec<String> = people().into_iter().map(|(u, ..)| u.id).collect();
        chat.with(|c| {
            let mut seen = std::collections::BTreeMap::new();
            for state in c.rooms.values() {
                let writers = state.lines.iter().map(|l| &l.user);
                for user in state.members.values().chain(writers) {
                    if let Some(username) = &user.username
                        && !here.contains(&user.id)
                        && !user.id.starts_with(common::BOT_ID_PREFIX)
                    {
                        seen.entry(username.clone())
                            .or_insert_with(|| user.name.clone());
                    }
                }
            }
            seen.into_iter().collect::<Vec<_>>()
        })
    };
    let me_id = me.id.clone();
    let me_is_guest = me.is_guest();
    view! {
        <aside class="members" data-testid="members">
            <h2>"In this room · " {here}</h2>
            <ul>
                <For each=people key=|(u, present, role)| (u.id.clone(), *present, *role) children=move |(user, present, role)| {
                    let pending = {
                        let id = user.id.clone();
                        move || !present && invited(&id)
                    };
                    let handle = reading::handle(&user);
                    let label = format!("{} ({handle})", user.name);
                    let is_me = user.id == me_id;
                    let (remove_id, promote_id) = (user.id.clone(), user.id.clone());
                    let can_remove = move || {
                        !is_me && match (my_role.get(), role) {
                            (Some(Role::Owner), r) => r != Some(Role::Owner),
                            (Some(Role::Moderator), r) => r.is_none() || r == Some(Role::Member),
                            _ => false,
                        }
                    };
                    let can_promote = move || !is_me && my_role.get() == Some(Role::Owner) && role.is_some() && role != Some(Role::Owner);
                    let name = user.name.clone();
                    view! {
                        <li class:away=!present>
                            <span class=if present { "dot online" } else { "dot" } aria-hidden="true"></span>
                            <span class="who" title=label.clone() tabindex="0" aria-label=label>
                                {user.name.clone()}
                                {user.is_guest().then(|| view! { <span class="tag">"guest"</span> })}
                                <span class="handle">{handle}</span>
                            </span>
                            {role.filter(|r| *r != Role::Member).map(|r| view! { <span class="tag role">{r.as_str()}</span> })}
                            {move || pending().then(|| view! { <span class="tag">"invited"</span> })}
                            <span class="actions">
                            {on_direct
                                .filter(|_| !is_me && !me_is_guest)
                                .zip(user.username.clone())
                                .map(|(on_direct, username)| view! {
                                    // Not in the conversation with them already.
                                    <Show when=move || !common::validate::reserved_room(&room.get())>
                                        <button type="button" class="link small"
                                            aria-label=format!("Message {}", user.name)
                                            on:click={
                                                let username = username.clone();
                                                move |_| on_direct.run(username.clone())
                                            }>"Message"</button>
                                    </Show>
                                })}
                            <Show when=can_promote>
                                {
                                    let id = promote_id.clone();
                                    let (next, text) = if role == Some(Role::Moderator) { (Role::Member, "Make member") } else { (Role::Moderator, "Make moderator") };
                                    view! {
                                        <button type="button" class="link small" on:click=move |_| {
                                            let (token, room, id) = (token.get_value(), room.get_untracked(), id.clone());
                                            act(Box::pin(async move { api::set_role(&token, &room, &id, next).await.map(drop) }));
                                        }>{text}</button>
                                    }
                                }
                            </Show>
                            <Show when=can_remove>
                                {
                                    let id = remove_id.clone();
                                    let name = name.clone();
                                    view! {
                                        <button type="button" class="link small danger" aria-label=format!("Remove {name}") on:click=move |_| {
                                            let (token, room, id) = (token.get_value(), room.get_untracked(), id.clone());
                                            // They are told, and a private room is closed to
                                            // them until someone invites them again.
                                            let sure = window()
                                                .confirm_with_message(&format!(
                                                    "Remove {name} from #{room}? They will be told, and can come back only if invited again."
                                                ))
                                                .unwrap_or(false);
                                            if sure {
                                                act(Box::pin(async move { api::remove(&token, &room, &id).await }));
                                            }
                                        }>"Remove"</button>
                                    }
                                }
                            </Show>
                            </span>
                        </li>
                    }
                } />
            </ul>
            <Show when=moderates>
                <form class="invite" on:submit=invite>
                    <label for="invitee">"Invite by username"</label>
                    <div class="row">
                        <input id="invitee" autocapitalize="none" spellcheck="false" placeholder="username" maxlength="32"
                            list="known-people" autocomplete="off"
                            prop:value=move || invitee.get()
                            on:input=move |ev| { invitee.set(event_target_value(&ev)); invited_now.set(String::new()); } />
                        <button type="submit">"Invite"</button>
                    </div>
                    <datalist id="known-people">
                        <For each=known key=|p| p.0.clone() children=|(username, name)| view! {
                            <option value=username.clone()>{format!("{name} (@{username})")}</option>
                        } />
                    </datalist>
                    <p class="muted small" role="status">{move || invited_now.get()}</p>
                </form>
            </Show>
            <p class="error" role="alert">{move || error.get()}</p>
        </aside>
    }
}
