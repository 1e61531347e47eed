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
    }
}

pub fn clear() {
    if let Some(store) = store() {
        let _ = store.remove_item(KEY);
    }
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
