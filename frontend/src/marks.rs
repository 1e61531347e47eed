//! Small marks shown beside names and messages, shared by the sidebar, the
//! conversation and the search results: unread badges, a room's sign, a
//! message's time.

use leptos::prelude::*;

use crate::chat::Badge;

/// "3", "@ 2" (some notify you: they mention you, or the room notifies
/// of everything) or "99+", named for screen readers; a dot for a muted
/// room; nothing when all is read.
pub fn unread_badge(badge: Badge) -> impl IntoView {
    let Badge {
        unread,
        mentions,
        muted,
    } = badge;
    (unread > 0).then(|| {
        if muted {
            return view! {
                <span class="badge muted">
                    <span class="visually-hidden">" unread, muted"</span>
                </span>
            }
            .into_any();
        }
        let count = if unread >= 100 {
            "99+".to_owned()
        } else {
            unread.to_string()
        };
        let spoken = if mentions > 0 {
            format!(" unread, {mentions} for you")
        } else {
            " unread".to_owned()
        };
        view! {
            <span class="badge" class:mention={mentions > 0}>
                {(mentions > 0).then_some("@ ")}
                {count}
                <span class="visually-hidden">{spoken}</span>
            </span>
        }
        .into_any()
    })
}

/// "# " before a public room's name, a lock before a private one's.
pub fn room_sign(private: bool) -> impl IntoView {
    if private {
        view! {
            <svg class="lock" viewBox="0 0 16 16" aria-hidden="true">
                <path fill="currentColor" d="M4 7V5a4 4 0 0 1 8 0v2h1v8H3V7zm2 0h4V5a2 2 0 0 0-4 0z" />
            </svg>
            <span class="visually-hidden">"private room "</span>
        }
        .into_any()
    } else {
        "# ".into_any()
    }
}

/// "14:05" in local time.
pub fn clock(ts_ms: i64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ts_ms as f64));
    format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
}
