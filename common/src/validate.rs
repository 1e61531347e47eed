//! Input rules shared by the server (which enforces them) and the client
//! (which checks them before sending, to give instant feedback).
//!
//! One rule exists because of the stores: no text we store may contain
//! U+0000. SQLite keeps it, PostgreSQL refuses it, and a message must be
//! accepted or refused the same way whichever store a deployment uses, up
//! front, with a clear error, never as `internal` after the fact. The other
//! control characters are refused for people's sake (they are invisible),
//! except tab and line breaks in message content.

/// Longest display name, in characters, after trimming.
pub const MAX_NAME_CHARS: usize = 32;
/// Longest room name, in characters.
pub const MAX_ROOM_CHARS: usize = 64;
/// Largest message content, in bytes of UTF-8.
pub const MAX_CONTENT_BYTES: usize = 4096;

/// Longest `client_id`, in bytes.
pub const MAX_CLIENT_ID_BYTES: usize = 64;

/// A `client_id` is 1–64 bytes, with no control characters.
pub fn client_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() || id.len() > MAX_CLIENT_ID_BYTES {
        Err("client_id must be 1-64 bytes")
    } else if id.chars().any(char::is_control) {
        Err("client_id must not contain control characters")
    } else {
        Ok(())
    }
}

/// Returns the trimmed display name, or why it is not acceptable.
///
/// A display name is what people see, so it may not hide anything: no
/// control characters, no bidi overrides (which reverse what follows), no
/// zero-width or other invisible characters (which make two names that
/// look the same differ), and no space other than U+0020. The server also
/// normalizes it to NFC first, so "é" is one spelling.
pub fn display_name(raw: &str) -> Result<&str, &'static str> {
    let name = raw.trim();
    let chars = name.chars().count();
    if chars == 0 {
        Err("name must not be empty")
    } else if chars > MAX_NAME_CHARS {
        Err("name must be at most 32 characters")
    } else if name.chars().any(char::is_control) {
        Err("name must not contain control characters")
    } else if name.chars().any(invisible) {
        Err("name must not contain invisible, zero-width or direction-changing characters")
    } else if name.starts_with('@') {
        Err("name must not start with '@', which marks a username")
    } else {
        Ok(name)
    }
}

/// Characters that show nothing (or change how the rest is shown): the
/// Unicode format characters (Cf) that matter in practice, invisible
/// fillers, and spaces other than U+0020.
pub fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00A0}' | '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}'
        | '\u{1680}' | '\u{17B4}' | '\u{17B5}' | '\u{180B}'..='\u{180F}'
        | '\u{2000}'..='\u{200F}' // spaces, zero-width, LRM/RLM
        | '\u{2028}'..='\u{202F}' // separators, bidi embeddings and overrides
        | '\u{205F}'..='\u{206F}' // word joiner, invisible operators, isolates
        | '\u{2800}' | '\u{3000}' | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFFB}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}' // tags, variation selectors supplement
    )
}

/// Shortest and longest username.
pub const USERNAME_CHARS: std::ops::RangeInclusive<usize> = 3..=32;

/// A username as stored and compared: lowercase.
pub fn canonical_username(raw: &str) -> String {
    raw.trim().to_ascii_lowercase()
}

/// Usernames nobody may take: they would read as the server, its
/// operators or everyone (checked on the name without `_`, `.` and `-`, so
/// "ad.min" is "admin" too).
pub const RESERVED_USERNAMES: &[&str] = &[
    "admin",
    "administrator",
    "root",
    "hearth",
    "system",
    "server",
    "support",
    "help",
    "staff",
    "moderator",
    "mod",
    "security",
    "official",
    "owner",
    "bot",
    "everyone",
    "here",
    "channel",
    "room",
];

/// Usernames are 3–32 characters of `[a-z0-9_.-]` (after lowercasing):
/// unambiguous to read, type and put in a mention, and not one of
/// `RESERVED_USERNAMES`.
pub fn username(name: &str) -> Result<(), &'static str> {
    let bare: String = name
        .chars()
        .filter(|c| !matches!(c, '_' | '.' | '-'))
        .collect();
    if !USERNAME_CHARS.contains(&name.len()) {
        Err("username must be 3-32 characters")
    } else if RESERVED_USERNAMES.contains(&bare.as_str()) {
        Err("that username is reserved; choose another")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'))
    {
        Err("username may contain only a-z, 0-9, '_', '.' and '-'")
    } else {
        Ok(())
    }
}

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted (hashing cost grows with length).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The length rule for passwords. The server also refuses common ones.
pub fn password_length(password: &str) -> Result<(), &'static str> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        Err("password must be at least 10 characters")
    } else if password.len() > MAX_PASSWORD_BYTES {
        Err("password must be at most 1024 bytes")
    } else {
        Ok(())
    }
}

/// A room's name as it is stored and compared: room names are
/// case-insensitive ("General" is "general"), so both sides lowercase them.
pub fn canonical_room(name: &str) -> String {
    name.trim().to_ascii_lowercase()
}

/// Room names are 1–64 characters of `[A-Za-z0-9_-]`.
pub fn room_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_ROOM_CHARS {
        Err("room name must be 1-64 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Err("room name may contain only letters, digits, '_' and '-'")
    } else {
        Ok(())
    }
}

/// Direction overrides, embeddings and isolates: they reorder what follows
/// them, so a text with them can show something other than what it says
/// (a link that reads backwards).
pub fn reorders(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Message content is non-empty (not only whitespace or invisible
/// characters), at most 4 KiB, has no control characters other than tab,
/// line feed and carriage return, and nothing that reorders the text.
pub fn content(text: &str) -> Result<(), &'static str> {
    if text.chars().all(|c| c.is_whitespace() || invisible(c)) {
        Err("message must not be empty")
    } else if text.len() > MAX_CONTENT_BYTES {
        Err("message must be at most 4096 bytes")
    } else if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        Err("message must not contain control characters (other than tab and line breaks)")
    } else if text.chars().any(reorders) {
        Err("message must not contain direction overrides, embeddings or isolates")
    } else {
        Ok(())
    }
}

/// Room names that only the server gives out: `dm-…` is a direct
/// conversation's (`direct_room`). Nobody creates a room by such a name.
pub fn reserved_room(name: &str) -> bool {
    name.starts_with("dm-")
}

/// The emoji offered at once under a message; the picker has every other
/// (a reaction is any one emoji: the server checks, `backend/src/emoji.rs`).
pub const REACTIONS: [&str; 8] = ["👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "👀"];

/// The longest room topic, in characters.
pub const MAX_TOPIC_CHARS: usize = 200;

/// A room topic: one line of at most 200 characters; empty clears it.
pub fn topic(text: &str) -> Result<(), &'static str> {
    if text.chars().count() > MAX_TOPIC_CHARS {
        Err("topic must be at most 200 characters")
    } else if text.chars().any(|c| {
        // Line breaks, and bidi overrides that would reorder the header.
        c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    }) {
        Err("topic must be one line of text")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_one_bounded_line() {
        assert!(topic("").is_ok());
        assert!(topic("Release planning, Thursdays").is_ok());
        assert!(topic(&"é".repeat(200)).is_ok());
        assert!(topic(&"é".repeat(201)).is_err());
        assert!(topic("two\nlines").is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(display_name("  alice "), Ok("alice"));
        assert!(display_name("   ").is_err());
        assert!(display_name(&"x".repeat(33)).is_err());
        // 32 multi-byte characters are fine: the limit counts characters.
        assert!(display_name(&"é".repeat(32)).is_ok());
        assert!(display_name("a\u{7}b").is_err());
    }

    #[test]
    fn room_names_are_restricted() {
        assert!(room_name("general").is_ok());
        assert!(room_name("a-b_C9").is_ok());
        assert!(room_name("").is_err());
        assert!(room_name(&"r".repeat(65)).is_err());
        assert!(room_name(&"r".repeat(64)).is_ok());
        assert!(room_name("has space").is_err());
        assert!(room_name("ünï").is_err());
    }

    #[test]
    fn room_names_are_case_insensitive() {
        assert_eq!(canonical_room(" General "), "general");
        assert_eq!(canonical_room("Team-A_1"), "team-a_1");
        assert!(room_name(&canonical_room("MiXeD")).is_ok());
    }

    #[test]
    fn content_is_bounded_in_bytes() {
        assert!(content("hi").is_ok());
        assert!(content(" \n ").is_err());
        assert!(content(&"a".repeat(4096)).is_ok());
        assert!(content(&"a".repeat(4097)).is_err());
        // 2048 two-byte characters are exactly 4096 bytes.
        assert!(content(&"é".repeat(2048)).is_ok());
        assert!(content(&"é".repeat(2049)).is_err());
    }

    #[test]
    fn nul_and_other_controls_are_refused_everywhere_we_store_text() {
        // PostgreSQL cannot store U+0000; SQLite can. Refusing it up front
        // keeps both stores answering the same way.
        assert!(content("a\u{0}b").is_err());
        assert!(content("bell\u{7}").is_err());
        assert!(content("\u{1b}[31mred").is_err());
        assert!(content("tab\tand\nlines\r\n").is_ok());
        // Nothing to see, or text that shows other than it reads.
        assert!(content("\u{200B}\u{200B}").is_err());
        assert!(content(" \u{FEFF} \u{2060}").is_err());
        assert!(content("https://bank.example/\u{202E}gpj.exe").is_err());
        assert!(content("a \u{2067}isolated\u{2069} b").is_err());
        // Right-to-left text and its marks are fine.
        assert!(content("שלום עולם").is_ok());
        assert!(content("مرحبا \u{200F}").is_ok());
        assert!(client_id("c-\u{0}").is_err());
        assert!(client_id("c\n1").is_err());
        assert!(client_id("0192-abc").is_ok());
        assert!(display_name("a\u{0}").is_err());
    }

    #[test]
    fn names_that_hide_something_are_refused() {
        for sneaky in [
            "ali\u{200B}ce",         // zero-width space
            "\u{202E}ecila",         // right-to-left override
            "al\u{2066}ice\u{2069}", // isolate
            "a\u{00A0}b",            // no-break space
            "\u{3164}",              // Hangul filler, looks empty
            "bob\u{FEFF}",           // BOM
            "x\u{E0041}",            // tag character
        ] {
            assert!(display_name(sneaky).is_err(), "{sneaky:?}");
        }
        assert_eq!(display_name("Zoë Ünal"), Ok("Zoë Ünal"));
        assert!(display_name("李小龍").is_ok());
        assert!(display_name("❤\u{FE0F} fan").is_ok());
    }

    #[test]
    fn usernames_are_plain() {
        assert_eq!(canonical_username(" Alice "), "alice");
        assert!(username("alice").is_ok());
        assert!(username("a.b-c_9").is_ok());
        for reserved in [
            "admin",
            "root",
            "hearth",
            "system",
            "ad.min",
            "sys_tem",
            "every-one",
        ] {
            assert!(username(reserved).is_err(), "{reserved}");
        }
        assert!(username("admiral").is_ok());
        assert!(display_name("@alice").is_err());
        assert!(display_name("Alice @ work").is_ok());
        assert!(username("al").is_err());
        assert!(username(&"a".repeat(33)).is_err());
        assert!(username("Alice").is_err());
        assert!(username("al ice").is_err());
        assert!(username("ａlice").is_err()); // full-width
        assert!(password_length("short").is_err());
        assert!(password_length("long enough!").is_ok());
    }
}
