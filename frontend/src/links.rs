//! The app's URLs, as pure functions: a room is `/rooms/{room}`, a message
//! `/rooms/{room}/{seq}`. The address bar follows the room on screen (see
//! `routing.rs`); a link to a message opens it in place.

use common::validate;

/// Where a path leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub room: String,
    /// A message to show, paging in history as far as it is.
    pub seq: Option<u64>,
}

/// The room (and message) of `path`, or `None` for any other path (`/`,
/// or one naming no valid room).
pub fn parse(path: &str) -> Option<Target> {
    let rest = path.strip_prefix("/rooms/")?;
    let (room, seq) = match rest.trim_end_matches('/').split_once('/') {
        Some((room, seq)) => (room, Some(seq.parse().ok().filter(|s| *s > 0)?)),
        None => (rest.trim_end_matches('/'), None),
    };
    let room = validate::canonical_room(room);
    validate::room_name(&room).ok()?;
    Some(Target { room, seq })
}

/// The path of `room`, or of message `seq` in it.
pub fn path(room: &str, seq: Option<u64>) -> String {
    match seq {
        Some(seq) => format!("/rooms/{room}/{seq}"),
        None => format!("/rooms/{room}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_and_messages_have_paths_and_come_back_from_them() {
        for (room, seq) in [("general", None), ("plans", Some(42))] {
            let target = parse(&path(room, seq)).unwrap();
            assert_eq!((target.room.as_str(), target.seq), (room, seq));
        }
        assert_eq!(
            parse("/rooms/General/"),
            Some(Target {
                room: "general".into(),
                seq: None
            }),
            "as the server names it"
        );
    }

    #[test]
    fn anything_else_leads_nowhere() {
        for path in [
            "/",
            "",
            "/rooms/",
            "/rooms",
            "/room/general",
            "/rooms/not valid",
            "/rooms/general/0",
            "/rooms/general/minus",
            "/rooms/general/4/5",
        ] {
            assert_eq!(parse(path), None, "{path:?}");
        }
    }
}
