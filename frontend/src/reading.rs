//! How a room's messages are laid out for reading, as pure functions (the
//! view only renders what these decide):
//! - consecutive messages from one person within a few minutes form a
//!   group, and only the first shows the name and avatar;
//! - a day separator goes before the first message of each local day;
//! - http(s) links in a message become links, and nothing else is markup;
//! - each person gets a stable avatar colour and initials from their id and
//!   name, so two "Alice"s look different.
//!
//! Over 500 lines with its unit tests (about half): small functions, all
//! about one thing, how a room reads.

use std::collections::{HashMap, HashSet};

use crate::chat::{Line, LineStatus};

/// Messages closer together than this, from one person, are one group.
pub const GROUP_WITHIN_MS: i64 = 5 * 60 * 1000;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// What goes with a line besides its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decor {
    /// A day separator goes before this line: the local day number.
    pub new_day: Option<i64>,
    /// Continues the previous line's group: no name or avatar.
    pub continued: bool,
    /// The author's name could be taken for someone else's (see
    /// `confusable`): their `@username` is shown beside it.
    pub handle_shown: bool,
}

/// The local day (days since the epoch) of `ts_ms`, for a time zone
/// `offset_min` minutes east of UTC.
pub fn local_day(ts_ms: i64, offset_min: i32) -> i64 {
    (ts_ms + i64::from(offset_min) * 60_000).div_euclid(DAY_MS)
}

/// Decides separators and grouping for `lines`, in order.
pub fn decorate(lines: &[Line], offset_min: i32) -> Vec<Decor> {
    let confused = confusable(lines.iter().map(|line| &line.user));
    let mut out = Vec::with_capacity(lines.len());
    let mut previous: Option<&Line> = None;
    for line in lines {
        let day = local_day(line.ts, offset_min);
        let new_day = match previous {
            Some(p) if local_day(p.ts, offset_min) == day => None,
            _ => Some(day),
        };
        let continued = new_day.is_none()
            && previous.is_some_and(|p| {
                p.user.id == line.user.id
                    && !p.topic
                    && !line.topic
                    && line.ts - p.ts <= GROUP_WITHIN_MS
                    && !matches!(p.status, LineStatus::Failed(_))
            });
        out.push(Decor {
            new_day,
            continued,
            handle_shown: confused.contains(line.user.id.as_str()),
        });
        previous = Some(line);
    }
    out
}

/// How a name reads at a glance: lowercase, without a leading `@`, spaces
/// or punctuation, with letters that look like Latin ones (Cyrillic,
/// Greek) as those.
pub fn skeleton(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'а' | 'α' => 'a',
            'в' | 'β' => 'b',
            'с' | 'ϲ' => 'c',
            'ԁ' => 'd',
            'е' | 'ё' | 'ε' => 'e',
            'һ' => 'h',
            'і' | 'ι' | 'ӏ' => 'i',
            'ј' => 'j',
            'к' | 'κ' => 'k',
            'м' => 'm',
            'п' | 'η' => 'n',
            'о' | 'ο' | '0' => 'o',
            'р' | 'ρ' => 'p',
            'ԛ' => 'q',
            'ѕ' => 's',
            'т' | 'τ' => 't',
            'υ' => 'u',
            'ν' => 'v',
            'ѡ' | 'ω' => 'w',
            'х' | 'χ' => 'x',
            'у' | 'γ' => 'y',
            'l' | '1' => 'l',
            other => other,
        })
        .collect()
}

/// The ids of people whose display name could be taken for somebody
/// else's among `people`: it starts with `@` (it looks like a handle), or
/// it reads (`skeleton`) like another person's name or username ("alice"
/// by someone who is not @alice, "Deploy Bot" by a person, "аlice" in
/// Cyrillic). Those are shown with their handle.
pub fn confusable<'a>(people: impl Iterator<Item = &'a common::User>) -> HashSet<&'a str> {
    let mut seen: HashMap<&str, &common::User> = HashMap::new();
    for user in people {
        seen.entry(user.id.as_str()).or_insert(user);
    }
    // Who each skeleton could be: by display name, and by username.
    let mut readings: HashMap<String, HashSet<&str>> = HashMap::new();
    for user in seen.values() {
        readings
            .entry(skeleton(&user.name))
            .or_default()
            .insert(user.id.as_str());
        if let Some(username) = &user.username {
            readings
                .entry(skeleton(username))
                .or_default()
                .insert(user.id.as_str());
        }
    }
    seen.values()
        .filter(|user| {
            user.name.trim_start().starts_with('@')
                || readings
                    .get(&skeleton(&user.name))
                    .is_some_and(|ids| ids.iter().any(|id| *id != user.id))
        })
        .map(|user| user.id.as_str())
        .collect()
}

/// The `@name` being typed just before `cursor` (a byte offset in `text`):
/// where its `@` is, and what was typed after it so far.
pub fn mention_at(text: &str, cursor: usize) -> Option<(usize, &str)> {
    let before = text.get(..cursor)?;
    let at = before.rfind('@')?;
    let typed = &before[at + 1..];
    let starts_word = before[..at]
        .chars()
        .next_back()
        .is_none_or(|c| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '-')));
    let name_so_far = typed.len() <= 32
        && typed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    (starts_word && name_so_far).then_some((at, typed))
}

/// `text` with the `@…` typed from `at` to `cursor` replaced by
/// `@username `, and where the cursor goes after it.
pub fn complete_mention(text: &str, at: usize, cursor: usize, username: &str) -> (String, usize) {
    let mut out = String::with_capacity(text.len() + username.len() + 2);
    out.push_str(&text[..at]);
    out.push('@');
    out.push_str(username);
    out.push(' ');
    let after = out.len();
    out.push_str(&text[cursor..]);
    (out, after)
}

/// `text` cut into runs, each marked if it is a word that starts with one
/// of `words` (lowercase): what a search result highlights.
pub fn highlight<'a>(text: &'a str, words: &[String]) -> Vec<(&'a str, bool)> {
    let mut out: Vec<(&str, bool)> = Vec::new();
    let mut start = 0;
    let mut in_word = false;
    let mut push = |run: &'a str, word: bool| {
        if run.is_empty() {
            return;
        }
        let lower = run.to_lowercase();
        let hit = word && words.iter().any(|w| lower.starts_with(w.as_str()));
        match out.last_mut() {
            Some((last, false)) if !hit => {
                // Join plain runs: fewer text nodes.
                let begin = last.as_ptr() as usize - text.as_ptr() as usize;
                *last = &text[begin..begin + last.len() + run.len()];
            }
            _ => out.push((run, hit)),
        }
    };
    for (at, c) in text.char_indices() {
        let is_word = c.is_alphanumeric();
        if is_word != in_word {
            push(&text[start..at], in_word);
            start = at;
            in_word = is_word;
        }
    }
    push(&text[start..], in_word);
    out
}

/// Avatar colours (CSS classes `hue-0` … `hue-11`, each with white text
/// at 4.5:1 or better).
pub const AVATAR_COLOURS: u32 = 12;

/// A stable colour class for a user id (FNV-1a: the same everywhere).
pub fn avatar_class(user_id: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in user_id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("hue-{}", hash % AVATAR_COLOURS)
}

/// One or two letters for an avatar: the first letter of the first two
/// words ("Ada Lovelace" → "AL"), else the first character.
pub fn initials(name: &str) -> String {
    let letters: String = name
        .split_whitespace()
        .filter_map(|word| word.chars().find(|c| c.is_alphanumeric()))
        .take(2)
        .flat_map(char::to_uppercase)
        .collect();
    if letters.is_empty() {
        name.chars().next().map(String::from).unwrap_or_default()
    } else {
        letters
    }
}

/// What tells people with the same display name apart: `@username`, or
/// for a guest (no account) "guest" and the start of their id.
pub fn handle(user: &common::User) -> String {
    match &user.username {
        Some(username) => format!("@{username}"),
        None if user.is_bot() => "bot".to_owned(),
        None => format!("guest {}", user.id.get(..8).unwrap_or(&user.id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::User;

    fn line(user: &str, ts: i64) -> Line {
        Line {
            key: format!("{user}{ts}"),
            seq: Some(1),
            user: User {
                id: user.into(),
                name: user.into(),
                username: None,
            },
            content: "x".into(),
            ts,
            status: LineStatus::Sent,
            ..Line::default()
        }
    }

    #[test]
    fn search_words_are_marked_where_a_word_starts_with_them() {
        let words = vec!["deploy".to_owned(), "fail".to_owned()];
        assert_eq!(
            highlight("The Deployment failed, redeploy!", &words),
            [
                ("The ", false),
                ("Deployment", true),
                (" ", false),
                ("failed", true),
                (", redeploy!", false),
            ]
        );
        assert_eq!(highlight("", &words), []);
    }

    #[test]
    fn a_mention_being_typed_is_found_and_completed() {
        assert_eq!(mention_at("hi @bo", 6), Some((3, "bo")));
        assert_eq!(mention_at("@", 1), Some((0, "")));
        assert_eq!(mention_at("ann@bo", 6), None, "an address, not a mention");
        assert_eq!(mention_at("hi @bo x", 8), None, "the word ended");
        assert_eq!(mention_at("no at", 5), None);
        assert_eq!(
            complete_mention("hi @bo, ok", 3, 6, "bob"),
            ("hi @bob , ok".to_owned(), 8)
        );
    }

    #[test]
    fn groups_and_day_separators() {
        let day = 20_000 * DAY_MS; // some day, at 00:00 UTC
        let lines = [
            line("a", day + 10 * 60_000),
            line("a", day + 12 * 60_000),     // 2 min later: same group
            line("a", day + 20 * 60_000),     // 8 min later: new group
            line("b", day + 21 * 60_000),     // someone else
            line("b", day + DAY_MS + 60_000), // next day: separator, new group
        ];
        let decor = decorate(&lines, 0);
        let continued: Vec<bool> = decor.iter().map(|d| d.continued).collect();
        assert_eq!(continued, [false, true, false, false, false]);
        let days: Vec<Option<i64>> = decor.iter().map(|d| d.new_day).collect();
        assert_eq!(days, [Some(20_000), None, None, None, Some(20_001)]);
        // The day is the local one: at UTC+2, 23:00 UTC is already tomorrow.
        assert_eq!(local_day(day - 60 * 60_000, 120), 20_000);
        assert_eq!(local_day(day - 60 * 60_000, 0), 19_999);
    }

    #[test]
    fn names_that_could_be_someone_elses_show_their_handle() {
        let person = |id: &str, name: &str, username: Option<&str>| common::User {
            id: id.into(),
            name: name.into(),
            username: username.map(Into::into),
        };
        let alice = person("a", "Alice", Some("alice"));
        let eve_as_alice = person("e", "alice", Some("eve"));
        let cyrillic = person("c", "\u{0430}lice", Some("mallory"));
        let handle = person("h", "@bob", Some("hank"));
        let bot = person("bot:Deploy Bot", "Deploy Bot", None);
        let fake_bot = person("f", "Deploy-Bot", Some("frank"));
        let carol = person("k", "Carol", Some("carol"));
        let people = [
            &alice,
            &eve_as_alice,
            &cyrillic,
            &handle,
            &bot,
            &fake_bot,
            &carol,
        ];
        let confused = confusable(people.into_iter());
        for id in ["a", "e", "c", "h", "bot:Deploy Bot", "f"] {
            assert!(confused.contains(id), "{id}");
        }
        assert!(!confused.contains("k"), "nobody else reads as Carol");
        // Alone, nobody is confused with anybody.
        assert!(confusable([&alice, &carol].into_iter()).is_empty());
        assert_eq!(skeleton("Аlісе"), "alice");
    }

    #[test]
    fn avatars_are_stable_and_tell_namesakes_apart() {
        assert_eq!(avatar_class("u-1"), avatar_class("u-1"));
        let classes: std::collections::HashSet<String> = (0..50)
            .map(|i| avatar_class(&format!("user-{i}")))
            .collect();
        assert!(
            classes.len() > 6,
            "ids spread over the colours: {classes:?}"
        );
        assert_eq!(initials("Ada Lovelace"), "AL");
        assert_eq!(initials("alice"), "A");
        assert_eq!(initials("  émile zola  the third"), "ÉZ");
        assert_eq!(initials("😀"), "😀");
        let mut bob = User {
            id: "5f0c1a2b-rest".into(),
            name: "Bob".into(),
            username: Some("bob".into()),
        };
        assert_eq!(handle(&bob), "@bob");
        bob.username = None;
        assert_eq!(handle(&bob), "guest 5f0c1a2b");
    }
}
