//! Full-text search over the messages a user may read: SQLite's FTS5 (an
//! index kept by triggers beside `messages`) or PostgreSQL's `tsvector`
//! (a generated column with a GIN index), behind one part of the store
//! trait. Both match every word as a prefix, in any language and without
//! stemming (which differs between the two engines and surprises people:
//! Porter's "deploy" is not a prefix of its "deployment"), so "deploy
//! fail" finds "the deployment failed" and "deploys are failing" alike.
//!
//! What a person types is never passed to the engine as query syntax: it is
//! cut into words of letters and digits, and each dialect builds its own
//! query from those, so no input is a syntax error.

use async_trait::async_trait;
use common::ChatMessage;

use super::Result;
use super::health::Access;
use super::sql_store::{Dialect, SearchSyntax, SqlStore};

/// What to search for, and where.
pub struct SearchQuery<'a> {
    /// Who is searching: only rooms they may read are searched.
    pub user_id: &'a str,
    /// Each must match, as a prefix (see `words`).
    pub words: &'a [String],
    /// Only this room; `None`: every room the user may read.
    pub room: Option<&'a str>,
    /// Only messages older than this one (an id from an earlier page).
    pub before: Option<&'a str>,
    pub limit: u32,
}

#[async_trait]
pub trait Search: Send + Sync + 'static {
    /// Messages (not deleted) that match, newest first, in the rooms the
    /// user may read (public ones, and private ones they are a member of).
    async fn search(&self, query: &SearchQuery<'_>) -> Result<Vec<ChatMessage>>;
}

pub use common::search::words;

/// `entry_columns!()` of `messages m`.
macro_rules! columns_of_m {
    () => {
        "m.room, m.seq, m.id, m.user_id, m.user_name, m.content, m.ts, m.client_id, m.username, \
         m.kind, m.target, m.reply_to, m.edited_at, m.deleted_at, m.files"
    };
}

/// Who may read what, the room filter and the cursor, for both engines.
/// `$2` is the user, `$3` the room ('' for all), `$4` the cursor (ids are
/// UUIDv7: they sort by time), `$5` the limit.
macro_rules! readable {
    () => {
        " AND m.kind = 'message' AND m.deleted_at IS NULL \
          AND r.visibility <> 'deleted' AND (r.visibility = 'public' OR rm.role IS NOT NULL) \
          AND ($3 = '' OR m.room = $3) AND m.id < $4 \
          ORDER BY m.id DESC LIMIT $5"
    };
}

impl SearchSyntax for sqlx::Sqlite {
    const SEARCH: &'static str = concat!(
        "SELECT ",
        columns_of_m!(),
        " FROM messages_fts JOIN messages m ON m.rowid = messages_fts.rowid \
         JOIN rooms r ON r.name = m.room \
         LEFT JOIN room_members rm ON rm.room = m.room AND rm.user_id = $2 \
         WHERE messages_fts MATCH $1",
        readable!()
    );

    /// `"deploy"* "fail"*`: each word quoted (a phrase of one) as a
    /// prefix, all of them.
    fn search_query(words: &[String]) -> String {
        let quoted: Vec<String> = words.iter().map(|w| format!("\"{w}\"*")).collect();
        quoted.join(" ")
    }
}

impl SearchSyntax for sqlx::Postgres {
    const SEARCH: &'static str = concat!(
        "SELECT ",
        columns_of_m!(),
        " FROM messages m JOIN rooms r ON r.name = m.room \
         LEFT JOIN room_members rm ON rm.room = m.room AND rm.user_id = $2 \
         WHERE m.search @@ to_tsquery('simple', $1)",
        readable!()
    );

    /// `deploy:* & fail:*`.
    fn search_query(words: &[String]) -> String {
        let prefixes: Vec<String> = words.iter().map(|w| format!("{w}:*")).collect();
        prefixes.join(" & ")
    }
}

/// Messages with a file whose name has every word, in order, anywhere
/// in it (`$1`, a LIKE pattern: the words are letters and digits only),
/// for both engines; `$2`… as for `SEARCH`.
const BY_FILE_NAME: &str = concat!(
    "SELECT ",
    columns_of_m!(),
    " FROM files f JOIN messages m ON m.room = f.room AND m.user_id = f.uploader \
     AND m.client_id = f.claimed_by \
     JOIN rooms r ON r.name = m.room \
     LEFT JOIN room_members rm ON rm.room = m.room AND rm.user_id = $2 \
     WHERE lower(f.name) LIKE $1",
    readable!()
);

/// `%deploy%fail%`: a file's name with the words in order.
fn name_pattern(words: &[String]) -> String {
    let mut pattern = String::from("%");
    for word in words {
        pattern.push_str(word);
        pattern.push('%');
    }
    pattern
}

/// What search indexes of a message's text when it is not the text
/// itself (`messages.search_text`): the words as shown, without the
/// formatting syntax, and a link's text without its hidden address.
/// `None`: the text is indexed as it is, when nothing in it can be
/// formatting (most messages: no parse for them).
pub fn indexed_text(content: &str) -> Option<String> {
    use pulldown_cmark::{Event, Options, Parser, TagEnd};
    let formatting = |b: u8| {
        matches!(
            b,
            b'*' | b'_' | b'~' | b'`' | b'[' | b']' | b'<' | b'>' | b'#' | b'\\' | b'&' | b'|'
        )
    };
    if !content.bytes().any(formatting) {
        return None;
    }
    let mut out = String::with_capacity(content.len());
    for event in Parser::new_ext(content, Options::ENABLE_STRIKETHROUGH) {
        match event {
            Event::Text(text) | Event::Code(text) | Event::Html(text) | Event::InlineHtml(text) => {
                out.push_str(&text)
            }
            Event::SoftBreak | Event::HardBreak => out.push(' '),
            Event::End(
                TagEnd::Paragraph
                | TagEnd::Heading(_)
                | TagEnd::Item
                | TagEnd::CodeBlock
                | TagEnd::BlockQuote(_),
            ) if !out.is_empty() && !out.ends_with('\n') => out.push('\n'),
            _ => {}
        }
    }
    let out = out.trim_end().to_owned();
    (out != content).then_some(out)
}

/// Cursor for the first page: after every id.
pub const NO_CURSOR: &str = "~";

/// `Search` for every SQL database (see `SqlStore`).
#[async_trait::async_trait]
impl<DB: Dialect> Search for SqlStore<DB> {
    async fn search(&self, query: &SearchQuery<'_>) -> Result<Vec<ChatMessage>> {
        if query.words.is_empty() {
            return Ok(Vec::new());
        }
        let select = |statement, words| {
            DB::query(statement)
                .bind(words)
                .bind(query.user_id)
                .bind(query.room.unwrap_or(""))
                .bind(query.before.unwrap_or(NO_CURSOR))
                .bind(i64::from(query.limit))
        };
        let mut found: Vec<ChatMessage> = self
            .all(
                Access::Read,
                select(DB::SEARCH, DB::search_query(query.words)),
            )
            .await?;
        // And by their files' names: a page of each, merged newest first.
        let by_name: Vec<ChatMessage> = self
            .all(
                Access::Read,
                select(BY_FILE_NAME, name_pattern(query.words)),
            )
            .await?;
        if !by_name.is_empty() {
            found.extend(by_name);
            found.sort_by(|a, b| b.id.cmp(&a.id));
            found.dedup_by(|a, b| a.id == b.id);
            found.truncate(query.limit as usize);
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_indexes_what_a_message_shows_not_its_syntax() {
        assert_eq!(indexed_text("plain words, as most are"), None);
        assert_eq!(
            indexed_text("see [the plan](https://secret.example/x) **now**").as_deref(),
            Some("see the plan now")
        );
        assert_eq!(
            indexed_text("`code` & <b>raw</b>").as_deref(),
            Some("code & <b>raw</b>")
        );
        assert_eq!(
            indexed_text("> quoted\n\n- one\n- two").as_deref(),
            Some("quoted\none\ntwo")
        );
        // Text that only looks formatted is indexed as it is.
        assert_eq!(indexed_text("a_b"), None);
    }

    #[test]
    fn a_files_name_is_matched_by_its_words_in_order() {
        assert_eq!(name_pattern(&words("Q3 report.pdf")), "%q3%report%pdf%");
    }

    #[test]
    fn each_dialect_asks_for_every_word_as_a_prefix() {
        let w = words("deploy fail");
        assert_eq!(
            <sqlx::Sqlite as SearchSyntax>::search_query(&w),
            "\"deploy\"* \"fail\"*"
        );
        assert_eq!(
            <sqlx::Postgres as SearchSyntax>::search_query(&w),
            "deploy:* & fail:*"
        );
    }
}
