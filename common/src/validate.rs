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
pub fn display_name(raw: &str) -> Result<&str, &'static str> {
    let name = raw.trim();
    let chars = name.chars().count();
    if chars == 0 {
        Err("name must not be empty")
    } else if chars > MAX_NAME_CHARS {
        Err("name must be at most 32 characters")
    } else if name.chars().any(char::is_control) {
        Err("name must not contain control characters")
    } else {
        Ok(name)
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

/// Message content is non-empty (not only whitespace), at most 4 KiB, and
/// has no control characters other than tab, line feed and carriage return.
pub fn content(text: &str) -> Result<(), &'static str> {
    if text.trim().is_empty() {
        Err("message must not be empty")
    } else if text.len() > MAX_CONTENT_BYTES {
        Err("message must be at most 4096 bytes")
    } else if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        Err("message must not contain control characters (other than tab and line breaks)")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(client_id("c-\u{0}").is_err());
        assert!(client_id("c\n1").is_err());
        assert!(client_id("0192-abc").is_ok());
        assert!(display_name("a\u{0}").is_err());
    }
}
