//! `@username` mentions, found the same way by the server (to count a
//! user's unread mentions) and the browser (to highlight them and to
//! notify). A mention is `@` at the start of a word followed by a username
//! (see `validate::username`), case-insensitive; a trailing `.` or `-`
//! ends the sentence, not the name, and `a@b.org` is no mention.

/// The byte ranges of the mentions in `text`, `@` included, with the
/// lowercase username each names.
pub fn find(text: &str) -> Vec<(std::ops::Range<usize>, String)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'@' || (i > 0 && is_name_byte(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i + 1;
        while end < bytes.len() && is_name_byte(bytes[end]) {
            end += 1;
        }
        while end > start + 1 && matches!(bytes[end - 1], b'.' | b'-') {
            end -= 1;
        }
        let name = text[start + 1..end].to_ascii_lowercase();
        if crate::validate::username(&name).is_ok() {
            out.push((start..end, name));
        }
        i = end.max(start + 1);
    }
    out
}

/// Whether `text` mentions `username` (lowercase).
pub fn mentions(text: &str, username: &str) -> bool {
    text.contains('@') && find(text).iter().any(|(_, name)| name == username)
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<String> {
        find(text).into_iter().map(|(_, n)| n).collect()
    }

    #[test]
    fn mentions_are_words_that_start_with_at() {
        assert_eq!(names("hi @Bob, and @carol_2."), ["bob", "carol_2"]);
        assert_eq!(
            names("(@ann-marie) @x @toolongtoolongtoolongtoolongtoolong"),
            ["ann-marie"]
        );
        assert_eq!(names("mail me at ann@example.org"), Vec::<String>::new());
        assert_eq!(names("@@bob"), ["bob"]);
        assert_eq!(names("@élodie @bob"), ["bob"]);
        let text = "ping @Bob!";
        let (range, _) = &find(text)[0];
        assert_eq!(&text[range.clone()], "@Bob");
        assert!(mentions("thanks @BOB", "bob"));
        assert!(!mentions("thanks @bobby", "bob"));
    }
}
