//! Where a reader is in a room, as pure functions (the view measures and
//! scrolls; this decides):
//! - the "New" divider: before the first message someone else sent after
//!   the reader's read position, as it was when they came to the room;
//! - the reading place kept across a reload: the message at the top of the
//!   view and how far it sat from the top, stored as text.

use crate::chat::Line;

/// The seq of the first line after `read` that counts as new: a message,
/// still there, from someone other than `me`. `None` if none is loaded.
pub fn first_new(lines: &[Line], read: u64, me: &str) -> Option<u64> {
    lines
        .iter()
        .filter(|l| !l.topic && !l.deleted && l.user.id != me)
        .filter_map(|l| l.seq)
        .find(|seq| *seq > read)
}

/// A reading place: the message at the top of the view, and its top's
/// distance in CSS pixels below the top of the list (negative when it is
/// partly scrolled out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    pub seq: u64,
    pub offset: i32,
}

impl Anchor {
    /// As kept in storage: `"seq:offset"`.
    pub fn to_text(self) -> String {
        format!("{}:{}", self.seq, self.offset)
    }

    /// A stored place; `None` for anything else (an older format, or
    /// nonsense typed into storage).
    pub fn parse(text: &str) -> Option<Anchor> {
        let (seq, offset) = text.split_once(':')?;
        Some(Anchor {
            seq: seq.parse().ok()?,
            offset: offset.parse().ok()?,
        })
    }
}

/// The anchor of a view: the first line whose bottom is below the top of
/// the list. `lines` are (seq, top, bottom) in the list's coordinates,
/// top to bottom.
pub fn anchor_of(lines: impl IntoIterator<Item = (u64, i32, i32)>) -> Option<Anchor> {
    lines
        .into_iter()
        .find(|(_, _, bottom)| *bottom > 0)
        .map(|(seq, top, _)| Anchor { seq, offset: top })
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::User;

    fn line(seq: u64, from: &str) -> Line {
        Line {
            key: format!("k{seq}"),
            seq: Some(seq),
            user: User {
                id: from.into(),
                name: from.into(),
                username: None,
            },
            ..Line::default()
        }
    }

    #[test]
    fn new_starts_at_the_first_message_of_someone_else_after_the_read_position() {
        let mut lines: Vec<Line> = (1..=6).map(|s| line(s, "bob")).collect();
        lines[3].user.id = "me".into(); // 4: mine
        lines[4].deleted = true; // 5: deleted
        lines[2].topic = true; // 3: a topic change
        assert_eq!(first_new(&lines, 2, "me"), Some(6));
        assert_eq!(first_new(&lines, 0, "me"), Some(1));
        assert_eq!(first_new(&lines, 6, "me"), None, "all read");
        // Not loaded yet: no divider to show.
        assert_eq!(first_new(&lines[..2], 2, "me"), None);
    }

    #[test]
    fn a_place_survives_storage_and_refuses_nonsense() {
        let place = Anchor {
            seq: 42,
            offset: -17,
        };
        assert_eq!(Anchor::parse(&place.to_text()), Some(place));
        for junk in ["", "42", "x:1", "42:", "-1:0", "42:1.5"] {
            assert_eq!(Anchor::parse(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn the_anchor_is_the_first_line_still_in_view() {
        // Three lines 40 px tall; the list is scrolled 50 px into them.
        let lines = [(1, -50, -10), (2, -10, 30), (3, 30, 70)];
        assert_eq!(
            anchor_of(lines),
            Some(Anchor {
                seq: 2,
                offset: -10
            })
        );
        assert_eq!(anchor_of([]), None);
    }
}
