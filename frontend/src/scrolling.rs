//! Where the message list scrolls when its lines change, as a pure policy
//! (the view measures and scrolls; this decides):
//! - each room keeps its own position: back in a room, you are where you
//!   left it (at the bottom if you were following it);
//! - your own new message is always brought into view;
//! - while you read older messages, new ones do not move the view; they are
//!   counted for a "N new messages ↓" button instead.

/// A room's saved place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub scroll_top: i32,
    /// Following the newest messages (at the bottom).
    pub pinned: bool,
}

/// What changed since the last time the list was drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// A different room is on screen now; `saved` is its place, if any.
    pub switched: Option<Option<Place>>,
    /// Lines added at the end, by other people.
    pub others_added: u32,
    /// A line of our own was added at the end (just sent).
    pub own_added: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scroll {
    /// Scroll to the newest message and follow it.
    Bottom,
    /// Put the view at this offset (a room's saved place), not following.
    To(i32),
    /// Leave the view where it is.
    Stay,
}

/// Decides the scroll, and the new count of unseen messages below.
pub fn after_change(change: Change, pinned: bool, unseen: u32) -> (Scroll, u32) {
    if let Some(saved) = change.switched {
        return match saved {
            Some(place) if !place.pinned => (Scroll::To(place.scroll_top), 0),
            _ => (Scroll::Bottom, 0),
        };
    }
    if change.own_added || pinned {
        return (Scroll::Bottom, 0);
    }
    (Scroll::Stay, unseen + change.others_added)
}

/// "1 new message ↓", "5 new messages ↓".
pub fn unseen_label(count: u32) -> String {
    if count == 1 {
        "1 new message ↓".to_owned()
    } else {
        format!("{count} new messages ↓")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTHING: Change = Change {
        switched: None,
        others_added: 0,
        own_added: false,
    };

    #[test]
    fn following_stays_at_the_bottom() {
        let change = Change {
            others_added: 3,
            ..NOTHING
        };
        assert_eq!(after_change(change, true, 0), (Scroll::Bottom, 0));
    }

    #[test]
    fn reading_older_messages_is_not_disturbed_and_new_ones_are_counted() {
        let change = Change {
            others_added: 2,
            ..NOTHING
        };
        assert_eq!(after_change(change, false, 1), (Scroll::Stay, 3));
        assert_eq!(unseen_label(3), "3 new messages ↓");
        assert_eq!(unseen_label(1), "1 new message ↓");
    }

    #[test]
    fn your_own_message_is_always_brought_into_view() {
        let change = Change {
            own_added: true,
            others_added: 1,
            ..NOTHING
        };
        assert_eq!(after_change(change, false, 4), (Scroll::Bottom, 0));
    }

    #[test]
    fn each_room_returns_to_its_place() {
        let reading = Place {
            scroll_top: 120,
            pinned: false,
        };
        let following = Place {
            scroll_top: 900,
            pinned: true,
        };
        let back = |saved| Change {
            switched: Some(saved),
            ..NOTHING
        };
        assert_eq!(
            after_change(back(Some(reading)), true, 5),
            (Scroll::To(120), 0)
        );
        assert_eq!(
            after_change(back(Some(following)), false, 5),
            (Scroll::Bottom, 0)
        );
        assert_eq!(after_change(back(None), false, 0), (Scroll::Bottom, 0));
    }
}
