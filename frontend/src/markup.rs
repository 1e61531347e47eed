//! Message formatting on the client's side: what is shown of a message
//! in one line (notifications, reply quotes, search results), and the
//! composer's formatting buttons. The formatting itself is the server's:
//! each message comes with its tree (`common::markup`, drawn by
//! `rich_text.rs`). Pure, so it is tested natively.

use common::markup::{self, Block};

/// What a notification, a reply quote or a search result shows of a
/// message: its plain text, or for a message of files alone, their names.
pub fn summary(content: &str, formatted: Option<&[Block]>, files: &[common::FileInfo]) -> String {
    if content.trim().is_empty() && !files.is_empty() {
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        return format!("📎 {}", names.join(", "));
    }
    markup::plain_text(content, formatted)
}

/// Wraps the selection `start..end` of `text` (offsets in UTF-16 code
/// units, as a textarea gives them) in `marker` (`**`, `_`, `` ` ``), or
/// unwraps it if it is wrapped already: the new text and selection.
pub fn toggle_wrap(text: &str, start: u32, end: u32, marker: &str) -> (String, u32, u32) {
    let (start, end) = (start.min(end), start.max(end));
    let (a, b) = (byte_at(text, start), byte_at(text, end));
    let width = marker.encode_utf16().count() as u32;
    let before = &text[..a];
    let after = &text[b..];
    if before.ends_with(marker) && after.starts_with(marker) {
        let unwrapped = format!(
            "{}{}{}",
            &before[..before.len() - marker.len()],
            &text[a..b],
            &after[marker.len()..]
        );
        return (unwrapped, start - width, end - width);
    }
    let wrapped = format!("{before}{marker}{}{marker}{after}", &text[a..b]);
    (wrapped, start + width, end + width)
}

/// The byte offset of a UTF-16 offset (clamped to the text).
fn byte_at(text: &str, utf16: u32) -> usize {
    let mut units = 0;
    for (at, c) in text.char_indices() {
        if units >= utf16 {
            return at;
        }
        units += c.len_utf16() as u32;
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selection_is_wrapped_and_unwrapped() {
        assert_eq!(
            toggle_wrap("say hi", 4, 6, "**"),
            ("say **hi**".to_owned(), 6, 8)
        );
        assert_eq!(
            toggle_wrap("say **hi**", 6, 8, "**"),
            ("say hi".to_owned(), 4, 6)
        );
        // Offsets are UTF-16: an emoji before counts two.
        assert_eq!(
            toggle_wrap("😀 hi", 3, 5, "_"),
            ("😀 _hi_".to_owned(), 4, 6)
        );
        // No selection: an empty pair, the caret inside.
        assert_eq!(toggle_wrap("ab", 1, 1, "`"), ("a``b".to_owned(), 2, 2));
    }

    #[test]
    fn a_message_of_files_alone_is_summed_up_by_their_names() {
        let file = |name: &str| common::FileInfo {
            id: "f".into(),
            name: name.into(),
            size: 1,
            content_type: "text/plain".into(),
            width: None,
            height: None,
            thumbnail: false,
        };
        assert_eq!(
            summary("", None, &[file("a.png"), file("b.pdf")]),
            "📎 a.png, b.pdf"
        );
        let look = common::markup::format("**look**");
        assert_eq!(
            summary("**look**", look.as_deref(), &[file("a.png")]),
            "look"
        );
        assert_eq!(summary("", None, &[]), "");
    }
}
