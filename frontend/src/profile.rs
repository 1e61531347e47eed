//! The account screen: the display name, the password, and signing out
//! everywhere. A modal `<dialog>`: the browser keeps focus inside it and
//! closes it on Escape, and the page behind is inert until it closes.

use common::validate;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::chat::Chat;
use crate::connection::Event;
use crate::forms::capitalized;
use crate::{api, storage};

#[component]
pub fn Profile(
    chat: RwSignal<Chat>,
    token: String,
    /// Whether the dialog is open; it sets this to `false` when it closes.
    open: RwSignal<bool>,
    dispatch: Callback<Event>,
    on_signed_out: Callback<Option<&'static str>>,
) -> impl IntoView {
    let me = chat
        .with_untracked(|c| c.me.clone())
        .unwrap_or_else(|| common::User {
            id: String::new(),
            name: String::new(),
            username: None,
        });
    let dialog = NodeRef::<leptos::html::Dialog>::new();
    Effect::new(move |_| {
        if let Some(dialog) = dialog.get() {
            let _ = dialog.show_modal();
        }
    });

    let name = RwSignal::new(me.name.clone());
    let name_said = RwSignal::new(Said::Nothing);
    let rename_token = token.clone();
    let rename = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let wanted = name.get_untracked().trim().to_owned();
        if let Err(why) = validate::display_name(&wanted) {
            return name_said.set(Said::Error(capitalized(why)));
        }
        let token = rename_token.clone();
        name_said.set(Said::Busy);
        spawn_local(async move {
            match api::rename(&token, &wanted).await {
                Ok(user) => {
                    name.set(user.name.clone());
                    name_said.set(Said::Done(format!(
                        "Saved. What you send from now on shows “{}”.",
                        user.name
                    )));
                    storage::save_user(&user);
                    chat.update(|c| c.me = Some(user));
                }
                Err(failure) => name_said.set(Said::Error(capitalized(&failure.text()))),
            }
        });
    };

    let old = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let password_said = RwSignal::new(Said::Nothing);
    // A wrong current password is said under it; anything else under the new one.
    let old_wrong = RwSignal::new(false);
    let password_token = token.clone();
    let change_password = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (current, wanted) = (old.get_untracked(), new.get_untracked());
        old_wrong.set(current.is_empty());
        if current.is_empty() {
            return password_said.set(Said::Error("Enter your current password.".into()));
        }
        if let Err(why) = validate::password_length(&wanted) {
            return password_said.set(Said::Error(capitalized(why)));
        }
        let token = password_token.clone();
        password_said.set(Said::Busy);
        spawn_local(async move {
            match api::change_password(&token, &current, &wanted).await {
                Ok(()) => {
                    old.set(String::new());
                    new.set(String::new());
                    password_said.set(Said::Done(
                        "Password changed. Your other devices and browsers were signed out.".into(),
                    ));
                }
                Err(failure) => {
                    old_wrong.set(failure.code == Some(common::ApiErrorCode::BadCredentials));
                    password_said.set(Said::Error(capitalized(&failure.text())));
                }
            }
        });
    };

    let everywhere_error = RwSignal::new(String::new());
    let sign_out_everywhere = move |_| {
        let sure = window()
            .confirm_with_message(
                "Sign out of Hearth on every device and browser, this one too? \
                 Messages you are still sending here may be lost.",
            )
            .unwrap_or(false);
        if !sure {
            return;
        }
        // Stopped first, so this tab's socket closing (4001) is not taken
        // for a session that ended by surprise.
        dispatch.run(Event::Stop);
        let token = token.clone();
        spawn_local(async move {
            match api::sign_out_everywhere(&token).await {
                Ok(()) => {
                    storage::save_rooms(&[]);
                    on_signed_out.run(Some("signed-out-everywhere"));
                }
                Err(failure) => {
                    dispatch.run(Event::Start);
                    everywhere_error.set(capitalized(&failure.text()));
                }
            }
        });
    };

    let guest = me.username.is_none();
    let handle = crate::reading::handle(&me);
    view! {
        <dialog node_ref=dialog class="profile" aria-labelledby="profile-title"
            on:close=move |_| open.set(false)>
            <div class="profile-head">
                <h2 id="profile-title">"Your account"</h2>
                <button type="button" class="link" on:click=move |_| open.set(false)>"Close"</button>
            </div>
            <p class="muted">{if guest { "You are a guest: you have a display name, but no username or password.".to_owned() } else { format!("You sign in as {handle}. A username never changes.") }}</p>

            <form class="profile-section" on:submit=rename>
                <h3>"Display name"</h3>
                <label for="profile-name">"What people see beside your messages"</label>
                <input id="profile-name" type="text" maxlength="32" autocomplete="nickname"
                    aria-describedby="profile-name-said"
                    aria-invalid=move || name_said.with(Said::is_error).to_string()
                    prop:value=move || name.get()
                    on:input=move |ev| { name.set(event_target_value(&ev)); name_said.set(Said::Nothing); } />
                <p id="profile-name-said" class=move || name_said.with(Said::class) role="status">{move || name_said.with(Said::text)}</p>
                <button type="submit" disabled=move || name_said.with(|s| *s == Said::Busy)>"Save name"</button>
            </form>

            <Show when=move || !guest>
                <form class="profile-section" on:submit=change_password.clone()>
                    <h3>"Password"</h3>
                    // For password managers: whose password this is (a
                    // hidden field, as Chrome's guidance has it).
                    <input type="text" hidden autocomplete="username"
                        prop:value=me.username.clone().unwrap_or_default() readonly />
                    <label for="profile-old">"Current password"</label>
                    <input id="profile-old" type="password" autocomplete="current-password"
                        aria-invalid=move || old_wrong.get().to_string()
                        prop:value=move || old.get()
                        on:input=move |ev| old.set(event_target_value(&ev)) />
                    <label for="profile-new">"New password"</label>
                    <input id="profile-new" type="password" autocomplete="new-password"
                        aria-describedby="profile-new-hint profile-password-said"
                        prop:value=move || new.get()
                        on:input=move |ev| new.set(event_target_value(&ev)) />
                    <p id="profile-new-hint" class="muted small">"At least 10 characters, and not a common password. Your other devices will be signed out."</p>
                    <p id="profile-password-said" class=move || password_said.with(Said::class) role="status">{move || password_said.with(Said::text)}</p>
                    <button type="submit" disabled=move || password_said.with(|s| *s == Said::Busy)>"Change password"</button>
                </form>
            </Show>

            <section class="profile-section">
                <h3>"Sessions"</h3>
                <p class="muted">"Lost a phone, or signed in on a computer that is not yours? End every session of your account at once."</p>
                <p class="field-error" role="alert">{move || everywhere_error.get()}</p>
                <button type="button" class="danger" on:click=sign_out_everywhere>"Sign out everywhere"</button>
            </section>
        </dialog>
    }
}

/// What a form says under its button.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Said {
    Nothing,
    Busy,
    Done(String),
    Error(String),
}

impl Said {
    fn text(&self) -> String {
        match self {
            Said::Nothing => String::new(),
            Said::Busy => "Saving…".into(),
            Said::Done(text) | Said::Error(text) => text.clone(),
        }
    }

    fn class(&self) -> &'static str {
        if self.is_error() {
            "field-error"
        } else {
            "muted small"
        }
    }

    fn is_error(&self) -> bool {
        matches!(self, Said::Error(_))
    }
}
