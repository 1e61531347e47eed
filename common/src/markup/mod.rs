//! Message formatting: the Markdown people already type in chat (bold,
//! italic, strikethrough, inline code, fenced code blocks, quotes, lists,
//! links), as a small tree that clients draw node by node.
//!
//! The server parses (the `markdown` feature, `parse.rs`) and sends the
//! tree with the message (`ChatMessage::formatted`), so one parser decides
//! what a message looks like everywhere, and clients carry none (it was a
//! seventh of the browser app). A client shows a message without a tree
//! as the text it is.
//!
//! What the tree never holds: markup from the text (raw HTML is text), an
//! image from a URL (an image is a link to it), a heading larger than the
//! message (a heading is a bold line), or a link that lies about where it
//! goes (a link whose text looks like an address of another host carries
//! the real host, to be shown beside it); and a link goes only to the web,
//! mail or a path of the site.

use serde::{Deserialize, Serialize};

#[cfg(feature = "markdown")]
mod parse;
#[cfg(feature = "markdown")]
mod pieces;
#[cfg(feature = "markdown")]
pub use parse::{format, parse};
#[cfg(feature = "markdown")]
pub use pieces::{Piece, pieces};

/// `ChatMessage::formatted`: the tree, with the `formatting` feature.
#[cfg(feature = "formatting")]
pub type Formatted = Box<[Block]>;
/// `ChatMessage::formatted`: without the `formatting` feature, read past.
#[cfg(not(feature = "formatting"))]
pub type Formatted = Unread;

/// A field that was on the wire and not decoded (see the `formatting`
/// feature). Serializes as `null`: what it stood for is not kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unread;

impl<'de> Deserialize<'de> for Unread {
    fn deserialize<D: serde::Deserializer<'de>>(input: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(input).map(|_| Unread)
    }
}

impl Serialize for Unread {
    fn serialize<S: serde::Serializer>(&self, output: S) -> Result<S::Ok, S::Error> {
        output.serialize_unit()
    }
}

/// A block of a message. On the wire, externally tagged in snake case:
/// `{"para": [...]}`, `{"code": {"lang": "rust", "text": "..."}}`, `"rule"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Block {
    Para(Vec<Inline>),
    /// A fenced (or indented) code block, with its language if given.
    Code {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lang: Option<String>,
        text: String,
    },
    Quote(Vec<Block>),
    /// `start`: the first number of an ordered list; `None`: bullets.
    List {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<u64>,
        items: Vec<Vec<Block>>,
    },
    Rule,
}

/// A run of text within a block: `{"text": "..."}`, `{"strong": [...]}`,
/// `"break"`…
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Inline {
    Text(String),
    /// `@username`, as written.
    Mention(String),
    /// A bare http(s) address, its own text.
    Url(String),
    Code(String),
    Strong(Vec<Inline>),
    Emph(Vec<Inline>),
    Strike(Vec<Inline>),
    /// `[text](href)`. `host`: the real host, shown beside a text that
    /// looks like an address elsewhere.
    Link {
        href: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<String>,
        children: Vec<Inline>,
    },
    /// A line break: chat keeps the lines as typed.
    Break,
}

/// A single paragraph of text, mentions and addresses: drawn in place,
/// with no block elements around it.
pub fn as_simple(blocks: &[Block]) -> Option<&[Inline]> {
    match blocks {
        [Block::Para(inlines)] => inlines
            .iter()
            .all(|i| {
                matches!(
                    i,
                    Inline::Text(_) | Inline::Mention(_) | Inline::Url(_) | Inline::Break
                )
            })
            .then_some(inlines.as_slice()),
        _ => None,
    }
}

/// A message's text without its syntax (what a notification, a reply
/// quote or a search result shows): its tree's text, blocks separated by
/// line breaks; with no tree, the text itself.
pub fn plain_text(content: &str, formatted: Option<&[Block]>) -> String {
    match formatted {
        Some(blocks) => {
            let mut out = String::new();
            blocks_text(blocks, &mut out);
            out.trim_end().to_owned()
        }
        None => content.to_owned(),
    }
}

fn blocks_text(blocks: &[Block], out: &mut String) {
    for block in blocks {
        match block {
            Block::Para(inlines) => inlines_text(inlines, out),
            Block::Code { text, .. } => out.push_str(text),
            Block::Quote(inner) => blocks_text(inner, out),
            Block::List { items, .. } => {
                for item in items {
                    blocks_text(item, out);
                }
            }
            Block::Rule => {}
        }
        if !out.ends_with('\n') && !out.is_empty() {
            out.push('\n');
        }
    }
}

fn inlines_text(inlines: &[Inline], out: &mut String) {
    for inline in inlines {
        match inline {
            Inline::Text(t) | Inline::Mention(t) | Inline::Url(t) | Inline::Code(t) => {
                out.push_str(t)
            }
            Inline::Strong(c) | Inline::Emph(c) | Inline::Strike(c) => inlines_text(c, out),
            Inline::Link { children, .. } => inlines_text(children, out),
            Inline::Break => out.push('\n'),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_on_the_wire_is_small_and_snake_case() {
        let blocks = vec![
            Block::Para(vec![
                Inline::Strong(vec![Inline::Text("hi".into())]),
                Inline::Break,
            ]),
            Block::Code {
                lang: None,
                text: "x".into(),
            },
            Block::Rule,
        ];
        let json = serde_json::to_string(&blocks).unwrap();
        assert_eq!(
            json,
            r#"[{"para":[{"strong":[{"text":"hi"}]},"break"]},{"code":{"text":"x"}},"rule"]"#
        );
        assert_eq!(serde_json::from_str::<Vec<Block>>(&json).unwrap(), blocks);
    }

    #[test]
    fn without_a_tree_the_text_is_its_own_plain_text() {
        assert_eq!(plain_text("a *b", None), "a *b");
        let tree = [Block::Quote(vec![Block::Para(vec![Inline::Text(
            "q".into(),
        )])])];
        assert_eq!(plain_text("> q", Some(&tree)), "q");
    }
}
