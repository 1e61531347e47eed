//! Telling people about messages while they look elsewhere: the unread
//! count in the tab's title, and a desktop notification for a mention of
//! them or a direct message while the tab is hidden, if they allowed
//! notifications.

use common::ChatMessage;
use leptos::prelude::*;
use web_sys::{Notification, NotificationOptions, NotificationPermission};

use crate::chat::Chat;

/// "(3) Hearth", or "Hearth" with nothing unread.
pub fn title(unread: u32) {
    let text = match unread {
        0 => "Hearth".to_owned(),
        n if n > 99 => "(99+) Hearth".to_owned(),
        n => format!("({n}) Hearth"),
    };
    document().set_title(&text);
}

/// Whether to offer turning notifications on: the browser has them, and
/// the person has not decided yet.
pub fn can_ask() -> bool {
    supported() && Notification::permission() == NotificationPermission::Default
}

/// Asks the browser for permission; `then` runs with the answer.
pub fn ask(then: impl Fn(bool) + 'static) {
    let Ok(promise) = Notification::request_permission() else {
        return;
    };
    leptos::task::spawn_local(async move {
        let granted = wasm_bindgen_futures::JsFuture::from(promise)
            .await
            .ok()
            .and_then(|answer| answer.as_string())
            .is_some_and(|answer| answer == "granted");
        then(granted);
    });
}

/// A desktop notification for `m` if it is for this user (a mention, or a
/// direct message), the tab is hidden, and notifications are allowed. A
/// click brings the tab back.
pub fn mention(chat: RwSignal<Chat>, m: &ChatMessage) {
    if !supported()
        || !document().hidden()
        || Notification::permission() != NotificationPermission::Granted
    {
        return;
    }
    if !chat.with_untracked(|c| c.is_for_me(m)) {
        return;
    }
    let options = NotificationOptions::new();
    options.set_body(&crate::markup::summary(
        &m.content,
        m.formatted.as_deref(),
        &m.files,
    ));
    // One notification per room: a newer mention replaces the older one.
    options.set_tag(&format!("hearth-{}", m.room));
    let heading = if crate::chat::is_direct(&m.room) {
        m.user.name.clone()
    } else {
        format!("{} in #{}", m.user.name, m.room)
    };
    if let Ok(notification) = Notification::new_with_options(&heading, &options) {
        let focus = wasm_bindgen::closure::Closure::<dyn Fn()>::new(|| {
            let _ = window().focus();
        });
        notification.set_onclick(Some(wasm_bindgen::JsCast::unchecked_ref(focus.as_ref())));
        focus.forget();
    }
}

/// A desktop notification for an invitation to `room` by `by`, on the
/// same terms as a mention (hidden tab, allowed).
pub fn invitation(room: &str, by: &common::User) {
    if !supported()
        || !document().hidden()
        || Notification::permission() != NotificationPermission::Granted
    {
        return;
    }
    let options = NotificationOptions::new();
    options.set_body(&format!("{} invited you to #{room}", by.name));
    options.set_tag(&format!("hearth-invite-{room}"));
    let _ = Notification::new_with_options("Hearth: an invitation", &options);
}

/// `Notification` exists in this browser (not in every webview).
fn supported() -> bool {
    js_sys::Reflect::has(&window(), &"Notification".into()).unwrap_or(false)
}
