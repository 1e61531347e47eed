//! Bare http(s) addresses and `@mentions` in a message's text, found
//! where formatting left plain text.

/// A piece of message text: plain, or a link to show as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Link(&'a str),
    /// `@username`, as written (see `crate::mentions`).
    Mention(&'a str),
}

/// Splits `text` into plain text and http(s) links. A link runs to the next
/// whitespace, less trailing punctuation (and a closing parenthesis it did
/// not open), so "see (https://x.org/a)." links just the address.
pub fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = find_link_start(rest) {
        let tail = &rest[start..];
        // Nor does an invisible or reordering character belong to a link:
        // the link's text is exactly its target.
        let end = tail
            .find(|c: char| c.is_whitespace() || crate::validate::invisible(c))
            .unwrap_or(tail.len());
        let mut link = &tail[..end];
        loop {
            let trimmed = link.trim_end_matches(['.', ',', ';', ':', '!', '?', '"', '\'']);
            // A closing parenthesis belongs to the link only if the link
            // opened it ("…/A_(b)"), not the sentence ("(see …)").
            let unbalanced = trimmed.matches(')').count() > trimmed.matches('(').count();
            let trimmed = match trimmed.strip_suffix(')') {
                Some(inner) if unbalanced => inner,
                _ => trimmed,
            };
            if trimmed.len() == link.len() {
                break;
            }
            link = trimmed;
        }
        let scheme_only = link == "http://" || link == "https://";
        if start > 0 {
            out.push(Piece::Text(&rest[..start]));
        }
        out.push(if scheme_only {
            Piece::Text(link)
        } else {
            Piece::Link(link)
        });
        rest = &rest[start + link.len()..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out.into_iter().flat_map(split_mentions).collect()
}

/// A text piece, with its mentions split out.
fn split_mentions(piece: Piece<'_>) -> Vec<Piece<'_>> {
    let Piece::Text(text) = piece else {
        return vec![piece];
    };
    let mut out = Vec::new();
    let mut at = 0;
    for (range, _) in crate::mentions::find(text) {
        if range.start > at {
            out.push(Piece::Text(&text[at..range.start]));
        }
        out.push(Piece::Mention(&text[range.clone()]));
        at = range.end;
    }
    if at < text.len() {
        out.push(Piece::Text(&text[at..]));
    }
    out
}

/// The first "http://" or "https://" that starts a word.
fn find_link_start(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = text[from..].find("http") {
        let at = from + at;
        let tail = &text[at..];
        let starts_word = text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || "([<\"'".contains(c));
        if starts_word && (tail.starts_with("http://") || tail.starts_with("https://")) {
            return Some(at);
        }
        from = at + 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_pieces_of_their_own_but_not_inside_links() {
        assert_eq!(
            pieces("hey @bob see https://x.org/@bob ok"),
            [
                Piece::Text("hey "),
                Piece::Mention("@bob"),
                Piece::Text(" see "),
                Piece::Link("https://x.org/@bob"),
                Piece::Text(" ok"),
            ]
        );
    }

    #[test]
    fn a_link_ends_where_an_invisible_or_reordering_character_starts() {
        use Piece::*;
        assert_eq!(
            pieces("https://evil.example/\u{202E}gpj.exe"),
            [Link("https://evil.example/"), Text("\u{202E}gpj.exe")]
        );
        assert_eq!(
            pieces("https://a.example\u{200B}.b.example"),
            [Link("https://a.example"), Text("\u{200B}.b.example")]
        );
    }

    #[test]
    fn only_http_links_become_links() {
        use Piece::*;
        assert_eq!(
            pieces("see https://example.org/a?b=1."),
            [Text("see "), Link("https://example.org/a?b=1"), Text(".")]
        );
        assert_eq!(
            pieces("(http://x.org/wiki/A_(b)) and more"),
            [
                Text("("),
                Link("http://x.org/wiki/A_(b)"),
                Text(") and more")
            ]
        );
        assert_eq!(pieces("javascript:alert(1)"), [Text("javascript:alert(1)")]);
        assert_eq!(pieces("xhttps://no"), [Text("xhttps://no")]);
        assert_eq!(pieces("https://"), [Text("https://")]);
        assert_eq!(pieces(""), []);
        assert_eq!(
            pieces("two: http://a.b https://c.d"),
            [
                Text("two: "),
                Link("http://a.b"),
                Text(" "),
                Link("https://c.d")
            ]
        );
    }
}
