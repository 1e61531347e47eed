//! The signed-in session, kept in `localStorage` so a reload stays signed in.

use common::SessionResponse;

const KEY: &str = "hearth.session";

fn store() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

/// The stored session. One saved by an older version (whose tokens the
/// server no longer accepts) does not parse: that person signs in again.
pub fn load() -> Option<SessionResponse> {
    let json = store()?.get_item(KEY).ok()??;
    serde_json::from_str(&json).ok()
}

pub fn save(session: &SessionResponse) {
    if let Some(store) = store()
        && let Ok(json) = serde_json::to_string(session)
    {
        let _ = store.set_item(KEY, &json);
        let _ = store.set_item(USER_KEY, &session.user.id);
        let _ = store.set_item(KNOWN_KEY, "1");
    }
    set_signed_in(true);
}

/// The signed-in account's id on its own, for the keys of what is kept per
/// account (`room_key`, on every keystroke and scroll): no session to
/// parse for it.
const USER_KEY: &str = "hearth.session.user";

/// The signed-in account as it is now (renamed), kept with its session.
pub fn save_user(user: &common::User) {
    if let Some(mut session) = load() {
        session.user = user.clone();
        save(&session);
    }
}

/// Someone has signed in with this browser before (kept after signing
/// out): the sign-in page welcomes them back instead of introducing Hearth.
const KNOWN_KEY: &str = "hearth.known";

pub fn known() -> bool {
    store().is_some_and(|store| store.get_item(KNOWN_KEY).ok().flatten().is_some())
}

pub fn clear() {
    if let Some(store) = store() {
        let _ = store.remove_item(KEY);
        let _ = store.remove_item(USER_KEY);
    }
    set_signed_in(false);
}

/// The `hearth` cookie, which tells the server whether to serve this
/// browser the app (`in`) or its sign-in page (`out`; see
/// `backend/src/http/signin/`). Kept for 400 days, the most a browser
/// keeps a cookie.
pub fn set_signed_in(signed_in: bool) {
    let state = if signed_in { "in" } else { "out" };
    let https = web_sys::window()
        .and_then(|w| w.location().protocol().ok())
        .is_some_and(|p| p == "https:");
    let secure = if https { "; Secure" } else { "" };
    if let Some(document) = document() {
        let _ = document.set_cookie(&format!(
            "hearth={state}; Path=/; Max-Age=34560000; SameSite=Lax{secure}"
        ));
    }
}

/// Whether the cookie says signed in (false if cookies are off).
pub fn says_signed_in() -> bool {
    document()
        .and_then(|d| d.cookie().ok())
        .is_some_and(|cookies| cookies.split(';').any(|c| c.trim() == "hearth=in"))
}

fn document() -> Option<web_sys::HtmlDocument> {
    use wasm_bindgen::JsCast;
    web_sys::window()?.document()?.dyn_into().ok()
}

const ROOMS_KEY: &str = "hearth.rooms";

/// The rooms the user was in, to re-join after a reload.
pub fn load_rooms() -> Vec<String> {
    store()
        .and_then(|s| s.get_item(ROOMS_KEY).ok().flatten())
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default()
}

pub fn save_rooms(rooms: &[String]) {
    if let Some(store) = store() {
        let _ = store.set_item(ROOMS_KEY, &serde_json::to_string(rooms).unwrap_or_default());
    }
}

const CURRENT_KEY: &str = "hearth.current";

/// The room on screen, to return to after a reload.
pub fn load_current() -> Option<String> {
    store()?.get_item(CURRENT_KEY).ok()?
}

pub fn save_current(room: &str) {
    if let Some(store) = store() {
        let _ = store.set_item(CURRENT_KEY, room);
    }
}

/// The key of `room`'s `what` ("draft", "place") for the signed-in
/// account: kept per account and per room.
fn room_key(what: &str, room: &str) -> Option<String> {
    // A session saved before the id was kept on its own has it inside.
    let user = match store()?.get_item(USER_KEY).ok()? {
        Some(id) => id,
        None => load()?.user.id,
    };
    Some(format!("hearth.{what}.{user}.{room}"))
}

fn draft_key(room: &str) -> Option<String> {
    room_key("draft", room)
}

/// Where the person was reading `room`, kept across reloads.
pub fn load_place(room: &str) -> Option<crate::place::Anchor> {
    let text = store()?.get_item(&room_key("place", room)?).ok()??;
    crate::place::Anchor::parse(&text)
}

/// Keeps `anchor` as `room`'s reading place; `None` (following the newest
/// messages) forgets it.
pub fn save_place(room: &str, anchor: Option<crate::place::Anchor>) {
    let (Some(store), Some(key)) = (store(), room_key("place", room)) else {
        return;
    };
    let _ = match anchor {
        Some(anchor) => store.set_item(&key, &anchor.to_text()),
        None => store.remove_item(&key),
    };
}

/// What was typed in `room` and not sent, kept across reloads.
pub fn load_draft(room: &str) -> String {
    draft_key(room)
        .and_then(|key| store()?.get_item(&key).ok()?)
        .unwrap_or_default()
}

/// Keeps `text` as `room`'s draft (an empty one is forgotten).
pub fn save_draft(room: &str, text: &str) {
    let (Some(store), Some(key)) = (store(), draft_key(room)) else {
        return;
    };
    let _ = if text.is_empty() {
        store.remove_item(&key)
    } else {
        store.set_item(&key, text)
    };
}

const RECENT_EMOJI_KEY: &str = "hearth.emoji.recent";
const TONE_KEY: &str = "hearth.emoji.tone";

/// The emoji this browser used last, newest first.
pub fn load_recent_emoji() -> Vec<String> {
    store()
        .and_then(|s| s.get_item(RECENT_EMOJI_KEY).ok().flatten())
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default()
}

pub fn save_recent_emoji(recent: &[String]) {
    if let Some(store) = store() {
        let _ = store.set_item(
            RECENT_EMOJI_KEY,
            &serde_json::to_string(recent).unwrap_or_default(),
        );
    }
}

/// The skin tone chosen in the picker (`None`: the default yellow).
pub fn load_tone() -> Option<char> {
    store()?.get_item(TONE_KEY).ok()??.chars().next()
}

pub fn save_tone(tone: Option<char>) {
    if let Some(store) = store() {
        let _ = match tone {
            Some(tone) => store.set_item(TONE_KEY, &tone.to_string()),
            None => store.remove_item(TONE_KEY),
        };
    }
}
