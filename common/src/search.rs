//! How a search query is read, the same on the server (which searches for
//! these words) and in the browser (which highlights them).

/// Most words of a query that count.
pub const MAX_WORDS: usize = 8;
/// Longest word that counts, in characters.
pub const MAX_WORD_CHARS: usize = 64;

/// The words of a query: runs of letters and digits, lowercased, at most
/// `MAX_WORDS` of at most `MAX_WORD_CHARS` characters. Nothing else a
/// person types (quotes, operators, parentheses) means anything.
pub fn words(query: &str) -> Vec<String> {
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(MAX_WORDS)
        .map(|w| {
            w.chars()
                .take(MAX_WORD_CHARS)
                .collect::<String>()
                .to_lowercase()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_words_never_syntax() {
        assert_eq!(
            words("Deploy \"fail* OR x) NEAR(a"),
            ["deploy", "fail", "or", "x", "near", "a"]
        );
        assert_eq!(words("  ,;  "), Vec::<String>::new());
        assert_eq!(words("café über"), ["café", "über"]);
        assert_eq!(words(&"w ".repeat(20)).len(), MAX_WORDS);
    }
}
