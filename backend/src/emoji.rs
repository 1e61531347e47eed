//! Emoji: what a reaction may be, and the data the browser's picker loads.
//!
//! A reaction is any single emoji of Unicode's list (the `emojis` crate,
//! UTS #51), stored in its fully-qualified form, so that "❤" and "❤️" (or a
//! keyboard that leaves off the variation selector) count as one reaction.
//! Text, two emoji or a lone modifier is refused. The list lives here, on
//! the server, not in the browser's first download: the picker fetches
//! `GET /emoji.json` (`catalog`) when it first opens.

use std::sync::OnceLock;

/// The reaction's canonical (fully-qualified) form, if it is one emoji.
pub fn reaction(text: &str) -> Option<&'static str> {
    emojis::get(text).map(emojis::Emoji::as_str)
}

/// Every emoji in picker order, as JSON: `[[group, [[emoji, name,
/// shortcodes (space-separated), tones], …]], …]`, where `tones` is 1 if
/// the emoji takes a skin tone (the browser adds the modifier). Skin-tone
/// variants are left out (they are the base emoji plus a modifier). Built
/// once, ~100 KB (~20 KB compressed).
pub fn catalog() -> &'static [u8] {
    static CATALOG: OnceLock<Vec<u8>> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let groups: Vec<serde_json::Value> = emojis::Group::iter()
            .map(|group| {
                let entries: Vec<serde_json::Value> = group
                    .emojis()
                    .map(|e| {
                        let shortcodes: Vec<&str> = e.shortcodes().collect();
                        let tones = u8::from(e.skin_tone().is_some());
                        serde_json::json!([e.as_str(), e.name(), shortcodes.join(" "), tones])
                    })
                    .collect();
                serde_json::json!([group_name(group), entries])
            })
            .collect();
        serde_json::to_vec(&groups).expect("plain JSON")
    })
}

fn group_name(group: emojis::Group) -> &'static str {
    use emojis::Group::*;
    match group {
        SmileysAndEmotion => "Smileys & emotion",
        PeopleAndBody => "People & body",
        AnimalsAndNature => "Animals & nature",
        FoodAndDrink => "Food & drink",
        TravelAndPlaces => "Travel & places",
        Activities => "Activities",
        Objects => "Objects",
        Symbols => "Symbols",
        Flags => "Flags",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reaction_is_one_emoji_in_its_full_form() {
        assert_eq!(reaction("👍"), Some("👍"));
        assert_eq!(reaction("🦀"), Some("🦀"));
        assert_eq!(reaction("👍🏽"), Some("👍🏽"), "a skin tone");
        assert_eq!(reaction("👩‍💻"), Some("👩‍💻"), "a ZWJ sequence");
        assert_eq!(reaction("🇳🇴"), Some("🇳🇴"), "a flag");
        // Without the variation selector: the same reaction.
        assert_eq!(reaction("\u{2764}"), Some("\u{2764}\u{fe0f}"));
        for not in ["", "a", "<b>", "👍👍", "👍 ", "\u{1f3fd}", ":+1:"] {
            assert_eq!(reaction(not), None, "{not:?}");
        }
    }

    /// emoji, name, shortcodes, tones
    type Entry = (String, String, String, u8);

    #[test]
    fn the_catalog_lists_every_group_with_base_emoji_only() {
        let groups: Vec<(String, Vec<Entry>)> = serde_json::from_slice(catalog()).unwrap();
        assert_eq!(groups.len(), 9);
        assert_eq!(groups[0].0, "Smileys & emotion");
        let all: Vec<&Entry> = groups.iter().flat_map(|(_, e)| e).collect();
        assert!(all.len() > 1_500, "{}", all.len());
        let thumbs = all.iter().find(|e| e.0 == "👍").unwrap();
        assert_eq!(thumbs.3, 1, "takes a skin tone");
        assert!(thumbs.2.split(' ').any(|s| s == "+1"), "{thumbs:?}");
        assert!(!all.iter().any(|e| e.0 == "👍🏽"), "no tone variants");
    }
}
