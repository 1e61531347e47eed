//! The sign-in page: sign in, create an account, or (where the server
//! allows guests) come in with a display name only. Errors appear under
//! the field they are about.

use std::collections::BTreeMap;

use common::{ApiErrorCode, SessionResponse};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::forms::{Field, Mode, capitalized, check, field_for};
use crate::view::focus;
use crate::{api, storage};

#[component]
pub fn SignIn(
    session: RwSignal<Option<SessionResponse>>,
    notice: RwSignal<Option<String>>,
) -> impl IntoView {
    let mode = RwSignal::new(Mode::SignIn);
    let username = RwSignal::new(String::new());
    let display_name = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let errors = RwSignal::new(BTreeMap::<Field, String>::new());
    let busy = RwSignal::new(false);
    let allow_guests = RwSignal::new(false);
    // Seconds until the server takes another attempt (after a 429).
    let wait = RwSignal::new(0u64);
    // A sign-in that matched no account: perhaps they meant to create one.
    let offer_sign_up = RwSignal::new(None::<String>);
    let returning = storage::known();
    spawn_local(async move {
        if let Some(info) = api::server_info().await {
            allow_guests.set(info.allow_guests);
        }
    });
    // A notice from before (signed out, session ended) shows as the form's
    // error until the next attempt.
    if let Some(why) = notice.get_untracked() {
        errors.update(|e| {
            e.insert(Field::Form, why);
        });
    }

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let mode = mode.get_untracked();
        let (user, name, pass) = (
            username.get_untracked(),
            display_name.get_untracked(),
            password.get_untracked(),
        );
        let problems = check(mode, &user, &name, &pass);
        errors.set(
            problems
                .iter()
                .map(|(field, why)| (*field, capitalized(why)))
                .collect(),
        );
        if let Some((field, _)) = problems.first() {
            focus(input_for(*field));
            return;
        }
        busy.set(true);
        offer_sign_up.set(None);
        spawn_local(async move {
            let answer = match mode {
                Mode::SignIn => api::sign_in(&user, &pass).await,
                Mode::SignUp => api::sign_up(&user, &pass, &name).await,
                Mode::Guest => api::sign_in_as_guest(&name).await,
            };
            busy.set(false);
            match answer {
                Ok(signed_in) => {
                    storage::save(&signed_in);
                    notice.set(None);
                    session.set(Some(signed_in));
                }
                Err(failure) if failure.retry_after.is_some() => {
                    errors.set(BTreeMap::new());
                    wait.set(failure.retry_after.unwrap_or(1).max(1));
                    count_down(wait);
                }
                Err(failure) => {
                    let field = field_for(failure.code);
                    errors.set(BTreeMap::from([(field, capitalized(&failure.text()))]));
                    if mode == Mode::SignIn && failure.code == Some(ApiErrorCode::BadCredentials) {
                        offer_sign_up.set(Some(user));
                    }
                    focus(input_for(field));
                }
            }
        });
    };
    let switch = move |to: Mode| {
        mode.set(to);
        errors.set(BTreeMap::new());
        offer_sign_up.set(None);
        password.set(String::new());
        request_animation_frame(move || focus(input_for(first_field(to))));
    };
    request_animation_frame(|| focus("#username"));

    let error_for = move |field: Field| move || errors.with(|e| e.get(&field).cloned());
    let invalid = move |field: Field| move || errors.with(|e| e.contains_key(&field)).to_string();
    let shows = move |field: Field| {
        move || match field {
            Field::Username | Field::Password => mode.get() != Mode::Guest,
            Field::DisplayName => mode.get() != Mode::SignIn,
            Field::Form => true,
        }
    };
    let tab = move |to: Mode, label: &'static str| {
        view! {
            <button type="button" class="tab" aria-pressed=move || (mode.get() == to).to_string()
                on:click=move |_| switch(to)>{label}</button>
        }
    };
    view! {
        <main class="signin">
            <form class="card" on:submit=submit novalidate>
                <h1><span class="logo" aria-hidden="true">"H"</span>" Hearth"</h1>
                <p class="muted">{move || match mode.get() {
                    Mode::SignIn if returning => "Welcome back. Sign in to your rooms.",
                    Mode::SignIn => "Rooms and private conversations, live. Sign in, or create an account to start.",
                    Mode::SignUp => "Create an account: your username is how people find and invite you.",
                    Mode::Guest => "Come in as a guest: no password, but nobody can invite you.",
                }}</p>
                <div class="tabs">
                    {tab(Mode::SignIn, "Sign in")}
                    {tab(Mode::SignUp, "Create account")}
                    <Show when=move || allow_guests.get()>{tab(Mode::Guest, "Guest")}</Show>
                </div>
                <Show when=shows(Field::Username)>
                    <label for="username">"Username"</label>
                    <input id="username" autocomplete="username" autocapitalize="none" spellcheck="false"
                        maxlength="32" aria-invalid=invalid(Field::Username) aria-describedby="username-error"
                        prop:value=move || username.get()
                        on:input=move |ev| username.set(event_target_value(&ev)) />
                    <p id="username-error" class="field-error">{error_for(Field::Username)}</p>
                </Show>
                <Show when=shows(Field::DisplayName)>
                    <label for="display-name">"Display name"</label>
                    <input id="display-name" autocomplete="nickname" maxlength="32" placeholder="e.g. Alice Liddell"
                        aria-invalid=invalid(Field::DisplayName) aria-describedby="display-name-error"
                        prop:value=move || display_name.get()
                        on:input=move |ev| display_name.set(event_target_value(&ev)) />
                    <p id="display-name-error" class="field-error">{error_for(Field::DisplayName)}</p>
                </Show>
                <Show when=shows(Field::Password)>
                    <label for="password">"Password"</label>
                    <input id="password" type="password"
                        autocomplete=move || if mode.get() == Mode::SignUp { "new-password" } else { "current-password" }
                        aria-invalid=invalid(Field::Password) aria-describedby="password-error password-hint"
                        prop:value=move || password.get()
                        on:input=move |ev| password.set(event_target_value(&ev)) />
                    <Show when=move || mode.get() == Mode::SignUp>
                        <p id="password-hint" class="muted small">"At least 10 characters, and not a common password."</p>
                    </Show>
                    <p id="password-error" class="field-error">{error_for(Field::Password)}</p>
                </Show>
                <button type="submit" disabled=move || { busy.get() || wait.get() > 0 }>
                    {move || match (mode.get(), busy.get()) {
                        (_, true) => "One moment…",
                        (Mode::SignUp, false) => "Create account",
                        (Mode::SignIn | Mode::Guest, false) => "Sign in",
                    }}
                </button>
                <p class="error" role="alert">{move || match wait.get() {
                    0 => error_for(Field::Form)(),
                    secs => Some(format!("Too many attempts. Try again in {secs} s.")),
                }}</p>
                {move || offer_sign_up.get().map(|name| view! {
                    <p class="offer">"New here? "
                        <button type="button" class="link" on:click=move |_| switch(Mode::SignUp)>
                            "Create an account as “" {name} "”"
                        </button>
                    </p>
                })}
            </form>
        </main>
    }
}

/// Takes a second off `wait` every second until it is zero (or the page
/// it counts for is gone).
fn count_down(wait: RwSignal<u64>) {
    set_timeout(
        move || {
            let left = wait.try_update(|secs| {
                *secs = secs.saturating_sub(1);
                *secs
            });
            if left.is_some_and(|secs| secs > 0) {
                count_down(wait);
            }
        },
        std::time::Duration::from_secs(1),
    );
}

fn first_field(mode: Mode) -> Field {
    match mode {
        Mode::SignIn | Mode::SignUp => Field::Username,
        Mode::Guest => Field::DisplayName,
    }
}

fn input_for(field: Field) -> &'static str {
    match field {
        Field::Username => "#username",
        Field::DisplayName => "#display-name",
        Field::Password => "#password",
        Field::Form => "button[type=submit]",
    }
}
