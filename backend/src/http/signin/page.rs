//! The sign-in page's HTML. No script: it shows and works before (and
//! without) the app's wasm, which a first visit never downloads.
//!
//! The three forms (sign in, create an account, come in as a guest) are
//! one page each, linked as tabs (`?mode=signup`); an error is rendered
//! under the field it is about, with `aria-invalid` and
//! `aria-describedby`, and focus starts on the first field that needs
//! attention.

use std::collections::BTreeMap;

use maud::{DOCTYPE, PreEscaped, html};

use super::form::{Field, Mode};

/// Everything the page shows.
pub struct SignInPage<'a> {
    pub mode: Mode,
    pub allow_guests: bool,
    /// Someone has signed in with this browser before.
    pub returning: bool,
    /// As typed (a password never comes back).
    pub username: &'a str,
    pub display_name: &'a str,
    /// Errors by field (`Field::Form`: the whole form's).
    pub errors: BTreeMap<Field, String>,
    /// A sign-in that matched no account: offer to create this one.
    pub offer_sign_up: Option<&'a str>,
    /// The path to go to once signed in.
    pub next: &'a str,
    /// The app's stylesheet `<link>`, as trunk wrote it into the app page
    /// (hashed name, integrity).
    pub stylesheet: &'a str,
}

impl SignInPage<'_> {
    pub fn render(&self) -> String {
        let mode = self.mode;
        let focus = self.first_field_needing_attention();
        let input = |input: Input| {
            let error = self.errors.get(&input.field);
            let error_id = format!("{}-error", input.id);
            let described = match input.hint {
                Some(hint) => format!("{error_id} {hint}"),
                None => error_id.clone(),
            };
            html! {
                label for=(input.id) { (input.label) }
                input id=(input.id) name=(input.name) type=(input.kind) value=(input.value)
                    autocomplete=(input.autocomplete) maxlength=[input.maxlength]
                    autocapitalize=[input.verbatim.then_some("none")]
                    spellcheck=[input.verbatim.then_some("false")]
                    placeholder=[input.placeholder]
                    aria-invalid=(error.is_some()) aria-describedby=(described)
                    autofocus[focus == input.field];
                p id=(error_id) class="field-error" { @if let Some(why) = error { (why) } }
            }
        };
        let tab = |to: Mode, label: &str| {
            // What the server knows was typed goes along.
            let href = self.link(to, Some(self.username).filter(|u| !u.is_empty()));
            html! {
                a class="tab" href=(href) aria-current=[(to == mode).then_some("page")] { (label) }
            }
        };
        let intro = match mode {
            Mode::SignIn if self.returning => "Welcome back. Sign in to your rooms.",
            Mode::SignIn => {
                "Rooms and private conversations, live. Sign in, or create an account to start."
            }
            Mode::SignUp => "Create an account: your username is how people find and invite you.",
            Mode::Guest => "Come in as a guest: no password, but nobody can invite you.",
        };
        let title = match mode {
            Mode::SignIn | Mode::Guest => "Sign in · Hearth",
            Mode::SignUp => "Create an account · Hearth",
        };
        let page = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    meta name="color-scheme" content="light dark";
                    title { (title) }
                    meta name="description" content="Hearth: rooms and chat in real time. Sign in to talk with your team.";
                    link rel="icon" href="/favicon.ico" sizes="32x32";
                    (PreEscaped(self.stylesheet))
                }
                body {
                    main class="signin" {
                        form class="card" method="post" action="/signin" novalidate {
                            h1 { span class="logo" aria-hidden="true" { "H" } " Hearth" }
                            p class="muted" { (intro) }
                            nav class="tabs" aria-label="Sign in or create an account" {
                                (tab(Mode::SignIn, "Sign in"))
                                (tab(Mode::SignUp, "Create account"))
                                @if self.allow_guests { (tab(Mode::Guest, "Guest")) }
                            }
                            input type="hidden" name="mode" value=(mode.as_str());
                            input type="hidden" name="next" value=(self.next);
                            @if mode != Mode::Guest {
                                (input(Input {
                                    field: Field::Username, id: "username", name: "username",
                                    label: "Username", kind: "text", value: self.username,
                                    autocomplete: "username", maxlength: Some(32), verbatim: true,
                                    placeholder: None, hint: None,
                                }))
                            }
                            @if mode != Mode::SignIn {
                                (input(Input {
                                    field: Field::DisplayName, id: "display-name", name: "display_name",
                                    label: "Display name", kind: "text", value: self.display_name,
                                    autocomplete: "nickname", maxlength: Some(32), verbatim: false,
                                    placeholder: Some("e.g. Alice Liddell"), hint: None,
                                }))
                            }
                            @if mode != Mode::Guest {
                                (input(Input {
                                    field: Field::Password, id: "password", name: "password",
                                    label: "Password", kind: "password", value: "",
                                    autocomplete: if mode == Mode::SignUp { "new-password" } else { "current-password" },
                                    maxlength: None, verbatim: false, placeholder: None,
                                    hint: (mode == Mode::SignUp).then_some("password-hint"),
                                }))
                                @if mode == Mode::SignUp {
                                    p id="password-hint" class="muted small" {
                                        "At least 10 characters, and not a common password."
                                    }
                                }
                            }
                            button type="submit" {
                                @if mode == Mode::SignUp { "Create account" } @else { "Sign in" }
                            }
                            p class="error" role="alert" {
                                @if let Some(why) = self.errors.get(&Field::Form) { (why) }
                            }
                            @if let Some(name) = self.offer_sign_up {
                                p class="offer" {
                                    "New here? "
                                    a href=(self.link(Mode::SignUp, Some(name))) {
                                        "Create an account as “" (name) "”"
                                    }
                                }
                            }
                        }
                    }
                }
            }
        };
        page.into_string()
    }

    /// This page in another mode (`/signin?mode=…`), keeping where to go
    /// next and the username typed.
    fn link(&self, mode: Mode, username: Option<&str>) -> String {
        let mut query = vec![("mode", mode.as_str())];
        if let Some(username) = username {
            query.push(("username", username));
        }
        if self.next != "/" {
            query.push(("next", self.next));
        }
        let query = serde_urlencoded::to_string(&query).unwrap_or_default();
        format!("/signin?{query}")
    }

    fn first_field_needing_attention(&self) -> Field {
        let shown: &[Field] = match self.mode {
            Mode::SignIn => &[Field::Username, Field::Password],
            Mode::SignUp => &[Field::Username, Field::DisplayName, Field::Password],
            Mode::Guest => &[Field::DisplayName],
        };
        shown
            .iter()
            .copied()
            .find(|f| self.errors.contains_key(f))
            .or_else(|| {
                // A sign-in whose password was refused: the password again.
                (self.errors.contains_key(&Field::Form)
                    && self.mode == Mode::SignIn
                    && !self.username.is_empty())
                .then_some(Field::Password)
            })
            .unwrap_or(shown[0])
    }
}

/// One field of the form, with its label and its error line.
struct Input<'a> {
    field: Field,
    id: &'a str,
    /// As the form posts it.
    name: &'a str,
    label: &'a str,
    kind: &'a str,
    value: &'a str,
    autocomplete: &'a str,
    maxlength: Option<u32>,
    /// Typed as it is: no capital letters or spelling fixes (a username).
    verbatim: bool,
    placeholder: Option<&'a str>,
    /// The id of a line of help under it, read with it.
    hint: Option<&'a str>,
}
