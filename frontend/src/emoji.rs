//! The emoji picker's data and rules, pure: the catalog the server sends
//! (`GET /api/emoji`, fetched when the picker first opens), search by name
//! and shortcode, skin tones, and the recently used list.

use serde::Deserialize;

/// One emoji of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emoji {
    pub emoji: String,
    /// Unicode's name ("thumbs up").
    pub name: String,
    /// GitHub shortcodes, without colons ("+1", "thumbsup").
    pub shortcodes: Vec<String>,
    /// Takes a skin tone.
    pub tones: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub emoji: Vec<Emoji>,
}

/// The catalog as the server sends it (see docs/protocol.md).
pub fn parse(json: &str) -> Option<Vec<Group>> {
    #[derive(Deserialize)]
    struct Wire(String, Vec<(String, String, String, u8)>);
    let groups: Vec<Wire> = serde_json::from_str(json).ok()?;
    Some(
        groups
            .into_iter()
            .map(|Wire(name, entries)| Group {
                name,
                emoji: entries
                    .into_iter()
                    .map(|(emoji, name, shortcodes, tones)| Emoji {
                        emoji,
                        name,
                        shortcodes: shortcodes.split_whitespace().map(str::to_owned).collect(),
                        tones: tones == 1,
                    })
                    .collect(),
            })
            .collect(),
    )
}

/// Emoji whose name or shortcodes have a word starting with each word of
/// `query` (case does not matter; `:` and `_` are word breaks), best
/// first: an exact shortcode, then a name or shortcode that starts with
/// the query, then the rest in catalog order. At most `limit`.
pub fn search<'a>(groups: &'a [Group], query: &str, limit: usize) -> Vec<&'a Emoji> {
    let query = query.trim().trim_matches(':').to_lowercase();
    let words: Vec<&str> = query
        .split(|c: char| c.is_whitespace() || c == '_')
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return Vec::new();
    }
    let mut found: Vec<(u8, usize, &Emoji)> = Vec::new();
    for (at, emoji) in groups.iter().flat_map(|g| &g.emoji).enumerate() {
        let name = emoji.name.to_lowercase();
        let haystack: Vec<&str> = name
            .split(|c: char| c.is_whitespace() || c == '-' || c == ':')
            .chain(emoji.shortcodes.iter().flat_map(|s| s.split('_')))
            .collect();
        if !words
            .iter()
            .all(|w| haystack.iter().any(|h| h.starts_with(w)))
        {
            continue;
        }
        let rank = if emoji.shortcodes.contains(&query) {
            0
        } else if name.starts_with(&query) || emoji.shortcodes.iter().any(|s| s.starts_with(&query))
        {
            1
        } else {
            2
        };
        found.push((rank, at, emoji));
    }
    found.sort_by_key(|(rank, at, _)| (*rank, *at));
    found.into_iter().take(limit).map(|(_, _, e)| e).collect()
}

/// The five skin tones, lightest first, with their names.
pub const TONES: [(char, &str); 5] = [
    ('\u{1F3FB}', "light"),
    ('\u{1F3FC}', "medium-light"),
    ('\u{1F3FD}', "medium"),
    ('\u{1F3FE}', "medium-dark"),
    ('\u{1F3FF}', "dark"),
];

/// `emoji` in skin tone `tone` if it takes one: the modifier goes after its
/// first character (in place of a variation selector there). Sequences of
/// several people keep their default: one tone for all of them is not
/// always one of Unicode's.
pub fn with_tone(emoji: &Emoji, tone: Option<char>) -> String {
    let Some(tone) = tone.filter(|_| emoji.tones) else {
        return emoji.emoji.clone();
    };
    let people = emoji
        .emoji
        .chars()
        .filter(|c| matches!(c, '\u{1F466}'..='\u{1F469}' | '\u{1F9D1}' | '\u{1F91D}'))
        .count();
    if people > 1 {
        return emoji.emoji.clone();
    }
    let mut chars = emoji.emoji.chars();
    let mut out = String::new();
    if let Some(first) = chars.next() {
        out.push(first);
    }
    out.push(tone);
    let rest: String = chars.collect();
    out.push_str(rest.strip_prefix('\u{FE0F}').unwrap_or(&rest));
    out
}

/// The name of `emoji` (in any skin tone), if it is in the catalog.
pub fn name_of<'a>(groups: &'a [Group], emoji: &str) -> Option<&'a str> {
    let bare = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '\u{FE0F}' && !('\u{1F3FB}'..='\u{1F3FF}').contains(c))
            .collect()
    };
    let wanted = bare(emoji);
    groups
        .iter()
        .flat_map(|g| &g.emoji)
        .find(|e| bare(&e.emoji) == wanted)
        .map(|e| e.name.as_str())
}

/// A `:shortcode` being typed at `cursor` (a byte offset): where its colon
/// is and what follows it, once that is two characters or more. The colon
/// starts a word (so "10:30" and "http://" are no shortcodes).
pub fn shortcode_at(text: &str, cursor: usize) -> Option<(usize, &str)> {
    let before = text.get(..cursor)?;
    let start = before
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-')))
        .filter(|at| before[*at..].starts_with(':'))?;
    let typed = &before[start + 1..];
    let opens_word = before[..start]
        .chars()
        .next_back()
        .is_none_or(|c| c.is_whitespace() || matches!(c, '(' | '"' | '\''));
    (opens_word && typed.chars().count() >= 2).then_some((start, typed))
}

/// Emoji with a shortcode starting with `typed` (an exact one first), each
/// with that shortcode; at most `limit`.
pub fn by_shortcode<'a>(
    groups: &'a [Group],
    typed: &str,
    limit: usize,
) -> Vec<(&'a Emoji, &'a str)> {
    let typed = typed.to_ascii_lowercase();
    let mut found: Vec<(bool, &Emoji, &str)> = groups
        .iter()
        .flat_map(|g| &g.emoji)
        .filter_map(|e| {
            let code = e.shortcodes.iter().find(|s| s.starts_with(&typed))?;
            Some((*code != typed, e, code.as_str()))
        })
        .collect();
    found.sort_by_key(|(inexact, ..)| *inexact);
    found
        .into_iter()
        .take(limit)
        .map(|(_, e, code)| (e, code))
        .collect()
}

/// How many emoji "Recently used" keeps.
pub const RECENT: usize = 24;

/// `emoji` was just used: first in `recent`, once, which keeps `RECENT`.
pub fn remember(recent: &mut Vec<String>, emoji: &str) {
    recent.retain(|e| e != emoji);
    recent.insert(0, emoji.to_owned());
    recent.truncate(RECENT);
}

/// Checked against the server's own list (a native dev-dependency).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    /// The catalog as the server makes it, from the same crate.
    fn catalog() -> Vec<Group> {
        emojis::Group::iter()
            .map(|group| Group {
                name: format!("{group:?}"),
                emoji: group
                    .emojis()
                    .map(|e| Emoji {
                        emoji: e.as_str().to_owned(),
                        name: e.name().to_owned(),
                        shortcodes: e.shortcodes().map(str::to_owned).collect(),
                        tones: e.skin_tone().is_some(),
                    })
                    .collect(),
            })
            .collect()
    }

    #[test]
    fn the_wire_form_parses() {
        let groups = parse(r#"[["Smileys & emotion", [["😀", "grinning face", "grinning", 0]]], ["People & body", [["👍", "thumbs up", "+1 thumbsup", 1]]]]"#).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[1].emoji[0].shortcodes, ["+1", "thumbsup"]);
        assert!(groups[1].emoji[0].tones);
        assert!(parse("{").is_none());
    }

    #[test]
    fn search_finds_by_name_and_shortcode_best_first() {
        let groups = catalog();
        let first = |q: &str| search(&groups, q, 5).first().map(|e| e.emoji.clone());
        assert_eq!(first("+1").as_deref(), Some("👍"));
        assert_eq!(first(":crab:").as_deref(), Some("🦀"));
        assert_eq!(first("thumbs up").as_deref(), Some("👍"));
        assert_eq!(first("Thumbs").as_deref(), Some("👍"));
        assert!(search(&groups, "heart", 50).iter().any(|e| e.emoji == "❤️"));
        assert!(search(&groups, "zzzzqq", 5).is_empty());
        assert!(search(&groups, "  ", 5).is_empty());
        assert_eq!(search(&groups, "face", 7).len(), 7);
    }

    /// Every tone of every emoji that takes one is an emoji of Unicode's
    /// list: what the picker sends, the server accepts.
    #[test]
    fn every_toned_emoji_is_one_the_server_accepts() {
        let groups = catalog();
        let mut toned = 0;
        for emoji in groups.iter().flat_map(|g| &g.emoji) {
            for (tone, _) in TONES {
                let made = with_tone(emoji, Some(tone));
                assert!(
                    emojis::get(&made).is_some(),
                    "{} {:?} → {made:?}",
                    emoji.name,
                    tone
                );
                if made != emoji.emoji {
                    toned += 1;
                }
            }
            assert_eq!(with_tone(emoji, None), emoji.emoji);
        }
        assert!(toned > 1_000, "{toned}");
        let thumbs = search(&groups, "+1", 1)[0];
        assert_eq!(with_tone(thumbs, Some('\u{1F3FD}')), "👍🏽");
    }

    #[test]
    fn a_used_emoji_is_named_in_any_tone() {
        let groups = catalog();
        assert_eq!(name_of(&groups, "👍🏽"), Some("thumbs up"));
        assert_eq!(name_of(&groups, "\u{2764}"), Some("red heart"));
        assert_eq!(name_of(&groups, "x"), None);
    }

    #[test]
    fn a_shortcode_is_completed_where_a_word_starts() {
        assert_eq!(shortcode_at("nice :cr", 8), Some((5, "cr")));
        assert_eq!(shortcode_at(":+1", 3), Some((0, "+1")));
        assert_eq!(shortcode_at("nice :c", 7), None, "two characters first");
        assert_eq!(shortcode_at("at 10:30", 8), None, "a time");
        assert_eq!(shortcode_at("see http://x", 12), None);
        assert_eq!(shortcode_at("nice :crab: ok", 14), None, "done");
        assert_eq!(shortcode_at("é :ta", 6), Some((3, "ta")));
        let groups = catalog();
        let found = by_shortcode(&groups, "crab", 3);
        assert_eq!((found[0].0.emoji.as_str(), found[0].1), ("🦀", "crab"));
        assert!(
            by_shortcode(&groups, "ta", 6)
                .iter()
                .any(|(e, _)| e.emoji == "🎉")
        );
        assert!(by_shortcode(&groups, "zzqq", 6).is_empty());
    }

    #[test]
    fn recently_used_keeps_the_newest_once() {
        let mut recent = Vec::new();
        for e in ["a", "b", "a"] {
            remember(&mut recent, e);
        }
        assert_eq!(recent, ["a", "b"]);
        for i in 0..30 {
            remember(&mut recent, &i.to_string());
        }
        assert_eq!(recent.len(), RECENT);
        assert_eq!(recent[0], "29");
    }
}
