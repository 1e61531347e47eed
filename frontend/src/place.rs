//! The reading place kept across a reload, as pure functions (the view
//! measures and scrolls; this decides): the message at the top of the view
//! and how far it sat from the top, stored as text. (Where the "New"
//! divider goes is the chat state's: `Chat::first_new`.)

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
