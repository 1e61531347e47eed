//! Message formatting: the Markdown people already type in chat (bold,
//! italic, strikethrough, inline code, fenced code blocks, quotes, lists,
//! links), parsed by pulldown-cmark into a small tree the message view
//! draws (`message_line.rs`), and the same text as plain text for
//! notifications and reply quotes. Pure, so it is tested natively.
//!
//! What it never does: emit markup from the text (raw HTML is shown as
//! typed), show an image from a URL (an image is a link to it), make a
//! heading larger than the message (a heading is a bold line), or let a
//! link lie about where it goes (a link whose text looks like an address
//! of another host says the real one beside it). Bare http(s) addresses
//! and `@mentions` in text are found as before (`reading::pieces`).

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

use crate::reading::{self, Piece};

/// A block of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Para(Vec<Inline>),
    /// A fenced (or indented) code block, with its language if given.
    Code {
        lang: Option<String>,
        text: String,
    },
    Quote(Vec<Block>),
    /// `start`: the first number of an ordered list; `None`: bullets.
    List {
        start: Option<u64>,
        items: Vec<Vec<Block>>,
    },
    Rule,
}

/// A run of text within a block.
#[derive(Debug, Clone, PartialEq, Eq)]
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
        host: Option<String>,
        children: Vec<Inline>,
    },
    /// A line break: chat keeps the lines as typed.
    Break,
}

/// Parses a message.
pub fn parse(text: &str) -> Vec<Block> {
    let mut builder = Builder::default();
    let options = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    for event in Parser::new_ext(text, options) {
        builder.event(event);
    }
    builder.finish()
}

/// What a notification, a reply quote or a search result shows of a
/// message: its plain text, or for a message of files alone, their names.
pub fn summary(text: &str, files: &[common::FileInfo]) -> String {
    if text.trim().is_empty() && !files.is_empty() {
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        return format!("📎 {}", names.join(", "));
    }
    plain_text(text)
}

/// The message's text without its syntax: what a notification, a reply
/// quote or a search result shows. Blocks are separated by line breaks.
pub fn plain_text(text: &str) -> String {
    let mut out = String::new();
    blocks_text(&parse(text), &mut out);
    out.trim_end().to_owned()
}

/// A single paragraph of text, mentions and addresses: drawn in place,
/// with no block elements around it (most messages).
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

/// Where a link may go: the web, mail, or a path of this site. Anything
/// else (`javascript:`, `data:`…) is not a link.
fn safe_href(href: &str) -> Option<String> {
    let lower = href.trim().to_ascii_lowercase();
    let allowed = ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
        || (lower.starts_with('/') && !lower.starts_with("//"));
    allowed.then(|| href.trim().to_owned())
}

/// The host of an address, lowercase, without user or port; for text, only
/// if it looks like an address (no spaces, a dot in the host).
fn host_of(address: &str) -> Option<String> {
    let rest = address
        .trim()
        .strip_prefix("https://")
        .or_else(|| address.trim().strip_prefix("http://"))
        .unwrap_or(address.trim());
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    let host = host
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host).to_owned();
    (host.contains('.') && !host.contains(char::is_whitespace) && !host.is_empty()).then_some(host)
}

/// A link, or, if it may not be one, its text.
fn link(href: &str, children: Vec<Inline>) -> Vec<Inline> {
    let Some(href) = safe_href(href) else {
        return children;
    };
    let mut shown = String::new();
    inlines_text(&children, &mut shown);
    let real = host_of(&href);
    // Text that names another host than the link's.
    let host = match (host_of(&shown), &real) {
        (Some(said), Some(real)) if said != *real => Some(real.clone()),
        (Some(_), None) => Some(href.clone()),
        _ => None,
    };
    vec![Inline::Link {
        href,
        host,
        children,
    }]
}

#[derive(Debug)]
enum Container {
    Root(Vec<Block>),
    Quote(Vec<Block>),
    List(Option<u64>, Vec<Vec<Block>>),
    Item(Vec<Block>),
}

#[derive(Debug)]
enum Span {
    /// A paragraph (`bold`: a heading, drawn as a bold paragraph).
    Para {
        bold: bool,
    },
    Strong,
    Emph,
    Strike,
    Link(String),
}

#[derive(Default)]
struct Builder {
    containers: Vec<Container>,
    spans: Vec<(Span, Vec<Inline>)>,
    /// Inside a code block: its language and text so far.
    code: Option<(Option<String>, String)>,
}

impl Builder {
    fn event(&mut self, event: Event<'_>) {
        if self.containers.is_empty() {
            self.containers.push(Container::Root(Vec::new()));
        }
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) => match &mut self.code {
                Some((_, code)) => code.push_str(&text),
                None if self.spans.iter().any(|(s, _)| matches!(s, Span::Link(_))) => {
                    self.inline(Inline::Text(text.into_string()))
                }
                None => {
                    for piece in reading::pieces(&text) {
                        self.inline(match piece {
                            Piece::Text(t) => Inline::Text(t.to_owned()),
                            Piece::Link(url) => Inline::Url(url.to_owned()),
                            Piece::Mention(name) => Inline::Mention(name.to_owned()),
                        });
                    }
                }
            },
            Event::Code(code) => self.inline(Inline::Code(code.into_string())),
            // Shown as typed, never as markup.
            Event::Html(html) | Event::InlineHtml(html) => {
                let html = html.into_string();
                let html = html.strip_suffix('\n').unwrap_or(&html).to_owned();
                self.inline(Inline::Text(html));
            }
            Event::SoftBreak | Event::HardBreak => self.inline(Inline::Break),
            Event::Rule => self.block(Block::Rule),
            Event::TaskListMarker(done) => {
                self.inline(Inline::Text(if done { "☑ " } else { "☐ " }.to_owned()))
            }
            // Not enabled: math, footnotes.
            Event::InlineMath(t) | Event::DisplayMath(t) | Event::FootnoteReference(t) => {
                self.inline(Inline::Text(t.into_string()))
            }
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph | Tag::HtmlBlock => self.open_para(false),
            Tag::Heading { .. } => self.open_para(true),
            Tag::BlockQuote(_) => {
                self.close_para();
                self.containers.push(Container::Quote(Vec::new()));
            }
            Tag::CodeBlock(kind) => {
                self.close_para();
                let lang = match kind {
                    CodeBlockKind::Fenced(info) => info
                        .split_whitespace()
                        .next()
                        .map(str::to_owned)
                        .filter(|l| !l.is_empty()),
                    CodeBlockKind::Indented => None,
                };
                self.code = Some((lang, String::new()));
            }
            Tag::List(start) => {
                self.close_para();
                self.containers.push(Container::List(start, Vec::new()));
            }
            Tag::Item => {
                self.close_para();
                self.containers.push(Container::Item(Vec::new()));
            }
            Tag::Emphasis => self.open(Span::Emph),
            Tag::Strong => self.open(Span::Strong),
            Tag::Strikethrough => self.open(Span::Strike),
            // An image by URL is a link to it, its description the text.
            Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
                self.open(Span::Link(dest_url.into_string()))
            }
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph | TagEnd::Heading(_) | TagEnd::HtmlBlock => self.close_para(),
            TagEnd::BlockQuote(_) => {
                self.close_para();
                if let Some(Container::Quote(blocks)) = self.containers.pop() {
                    self.block(Block::Quote(blocks));
                }
            }
            TagEnd::CodeBlock => {
                if let Some((lang, mut text)) = self.code.take() {
                    if text.ends_with('\n') {
                        text.pop();
                    }
                    self.block(Block::Code { lang, text });
                }
            }
            TagEnd::List(_) => {
                self.close_para();
                if let Some(Container::List(start, items)) = self.containers.pop() {
                    self.block(Block::List { start, items });
                }
            }
            TagEnd::Item => {
                self.close_para();
                if let Some(Container::Item(blocks)) = self.containers.pop()
                    && let Some(Container::List(_, items)) = self.containers.last_mut()
                {
                    items.push(blocks);
                }
            }
            TagEnd::Emphasis
            | TagEnd::Strong
            | TagEnd::Strikethrough
            | TagEnd::Link
            | TagEnd::Image => self.close_span(),
            _ => {}
        }
    }

    fn open_para(&mut self, bold: bool) {
        self.close_para();
        self.spans.push((Span::Para { bold }, Vec::new()));
    }

    fn open(&mut self, span: Span) {
        if self.spans.is_empty() {
            self.open_para(false);
        }
        self.spans.push((span, Vec::new()));
    }

    /// Text where no paragraph is open (a tight list's item) opens one.
    fn inline(&mut self, inline: Inline) {
        if self.spans.is_empty() {
            self.open_para(false);
        }
        if let Some((_, children)) = self.spans.last_mut() {
            children.push(inline);
        }
    }

    fn close_span(&mut self) {
        if self.spans.len() < 2 {
            return;
        }
        let Some((span, children)) = self.spans.pop() else {
            return;
        };
        let made = match span {
            Span::Strong => vec![Inline::Strong(children)],
            Span::Emph => vec![Inline::Emph(children)],
            Span::Strike => vec![Inline::Strike(children)],
            Span::Link(href) => link(&href, children),
            Span::Para { .. } => children,
        };
        if let Some((_, outer)) = self.spans.last_mut() {
            outer.extend(made);
        }
    }

    /// Ends the open paragraph (closing whatever is open inside it).
    fn close_para(&mut self) {
        while self.spans.len() > 1 {
            self.close_span();
        }
        if let Some((Span::Para { bold }, children)) = self.spans.pop()
            && !children.is_empty()
        {
            let children = if bold {
                vec![Inline::Strong(children)]
            } else {
                children
            };
            self.block(Block::Para(children));
        }
    }

    fn block(&mut self, block: Block) {
        self.close_para();
        match self.containers.last_mut() {
            Some(Container::Root(blocks) | Container::Quote(blocks) | Container::Item(blocks)) => {
                blocks.push(block)
            }
            // Between items: kept as an item of its own.
            Some(Container::List(_, items)) => items.push(vec![block]),
            None => self.containers.push(Container::Root(vec![block])),
        }
    }

    fn finish(mut self) -> Vec<Block> {
        self.close_para();
        if let Some((lang, text)) = self.code.take() {
            self.block(Block::Code { lang, text });
        }
        while self.containers.len() > 1 {
            match self.containers.pop() {
                Some(Container::Quote(blocks)) => self.block(Block::Quote(blocks)),
                Some(Container::List(start, items)) => self.block(Block::List { start, items }),
                Some(Container::Item(blocks)) => {
                    if let Some(Container::List(_, items)) = self.containers.last_mut() {
                        items.push(blocks);
                    }
                }
                _ => {}
            }
        }
        match self.containers.pop() {
            Some(Container::Root(blocks)) => blocks,
            _ => Vec::new(),
        }
    }
}

/// Wraps the selection `start..end` of `text` (offsets in UTF-16 code
/// units, as a textarea gives them) in `marker` (`**`, `_`, `` ` ``), or
/// unwraps it if it is wrapped already: the new text and selection.
pub fn toggle_wrap(text: &str, start: u32, end: u32, marker: &str) -> (String, u32, u32) {
    let (start, end) = (start.min(end), start.max(end));
    let (a, b) = (byte_at(text, start), byte_at(text, end));
    let width = marker.encode_utf16().count() as u32;
    let before = &text[..a];
    let after = &text[b..];
    if before.ends_with(marker) && after.starts_with(marker) {
        let unwrapped = format!(
            "{}{}{}",
            &before[..before.len() - marker.len()],
            &text[a..b],
            &after[marker.len()..]
        );
        return (unwrapped, start - width, end - width);
    }
    let wrapped = format!("{before}{marker}{}{marker}{after}", &text[a..b]);
    (wrapped, start + width, end + width)
}

/// The byte offset of a UTF-16 offset (clamped to the text).
fn byte_at(text: &str, utf16: u32) -> usize {
    let mut units = 0;
    for (at, c) in text.char_indices() {
        if units >= utf16 {
            return at;
        }
        units += c.len_utf16() as u32;
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> Inline {
        Inline::Text(t.to_owned())
    }

    #[test]
    fn plain_messages_stay_one_simple_paragraph() {
        let blocks = parse("hello @bob, see https://x.org/a.");
        let simple = as_simple(&blocks).expect("simple");
        assert_eq!(
            simple,
            [
                text("hello "),
                Inline::Mention("@bob".into()),
                text(", see "),
                Inline::Url("https://x.org/a".into()),
                text("."),
            ]
        );
        // Lines are kept as typed.
        let blocks = parse("one\ntwo");
        assert_eq!(
            as_simple(&blocks).unwrap(),
            [text("one"), Inline::Break, text("two")]
        );
    }

    #[test]
    fn the_usual_formatting_is_understood() {
        let blocks = parse("**bold** _it_ ~~gone~~ `code`");
        assert_eq!(
            blocks,
            [Block::Para(vec![
                Inline::Strong(vec![text("bold")]),
                text(" "),
                Inline::Emph(vec![text("it")]),
                text(" "),
                Inline::Strike(vec![text("gone")]),
                text(" "),
                Inline::Code("code".into()),
            ])]
        );
        assert!(as_simple(&blocks).is_none());
        let blocks = parse("```rust\nfn main() {}\n```");
        assert_eq!(
            blocks,
            [Block::Code {
                lang: Some("rust".into()),
                text: "fn main() {}".into()
            }]
        );
        let blocks = parse("> quoted\n\n- a\n- b\n\n3. c");
        assert_eq!(
            blocks,
            [
                Block::Quote(vec![Block::Para(vec![text("quoted")])]),
                Block::List {
                    start: None,
                    items: vec![
                        vec![Block::Para(vec![text("a")])],
                        vec![Block::Para(vec![text("b")])]
                    ],
                },
                Block::List {
                    start: Some(3),
                    items: vec![vec![Block::Para(vec![text("c")])]],
                },
            ]
        );
    }

    #[test]
    fn nothing_becomes_markup_an_image_or_a_big_heading() {
        assert_eq!(
            parse("<b>hi</b> <script>x</script>"),
            [Block::Para(vec![
                text("<b>"),
                text("hi"),
                text("</b>"),
                text(" "),
                text("<script>"),
                text("x"),
                text("</script>"),
            ])]
        );
        assert_eq!(
            plain_text("<img src=x onerror=alert(1)>"),
            "<img src=x onerror=alert(1)>"
        );
        // An image is a link to it.
        assert_eq!(
            parse("![cat](https://x.org/cat.png)"),
            [Block::Para(vec![Inline::Link {
                href: "https://x.org/cat.png".into(),
                host: None,
                children: vec![text("cat")],
            }])]
        );
        assert_eq!(
            parse("# Big"),
            [Block::Para(vec![Inline::Strong(vec![text("Big")])])]
        );
    }

    #[test]
    fn links_go_only_where_they_say() {
        // No scripts or data.
        assert_eq!(
            parse("[click](javascript:alert(1)) [d](data:text/html,x)"),
            [Block::Para(vec![text("click"), text(" "), text("d")])]
        );
        // Text that names one host while the link goes to another says so.
        let blocks = parse("[https://bank.com](https://evil.example/x)");
        let [Block::Para(inlines)] = blocks.as_slice() else {
            panic!("{blocks:?}")
        };
        assert!(matches!(&inlines[0], Inline::Link { host: Some(h), .. } if h == "evil.example"));
        // Honest ones do not.
        let blocks = parse("[docs](https://x.org/d) [x.org](https://www.x.org/)");
        let [Block::Para(inlines)] = blocks.as_slice() else {
            panic!("{blocks:?}")
        };
        assert!(matches!(&inlines[0], Inline::Link { host: None, .. }));
        assert!(matches!(&inlines[2], Inline::Link { host: None, .. }));
        // A path of this site is fine; a protocol-relative one is not.
        assert!(
            matches!(&parse("[r](/rooms/general)")[0], Block::Para(i) if matches!(i[0], Inline::Link { .. }))
        );
        assert_eq!(parse("[r](//evil.example)"), [Block::Para(vec![text("r")])]);
    }

    #[test]
    fn plain_text_drops_the_syntax() {
        assert_eq!(
            plain_text("**bold** and `code` [docs](https://x.org)"),
            "bold and code docs"
        );
        assert_eq!(plain_text("> quoted\n\nreply"), "quoted\nreply");
        assert_eq!(plain_text("- a\n- b"), "a\nb");
        assert_eq!(plain_text("```\nlet x = 1;\n```"), "let x = 1;");
        assert_eq!(plain_text("just text"), "just text");
    }

    #[test]
    fn unclosed_syntax_is_text() {
        assert_eq!(plain_text("**not closed"), "**not closed");
        assert_eq!(plain_text("5 * 3 * 2"), "5 * 3 * 2");
        assert_eq!(parse("```\nno end").len(), 1);
        assert!(parse("").is_empty());
    }

    #[test]
    fn the_selection_is_wrapped_and_unwrapped() {
        assert_eq!(
            toggle_wrap("say hi", 4, 6, "**"),
            ("say **hi**".to_owned(), 6, 8)
        );
        assert_eq!(
            toggle_wrap("say **hi**", 6, 8, "**"),
            ("say hi".to_owned(), 4, 6)
        );
        // Offsets are UTF-16: an emoji before counts two.
        assert_eq!(
            toggle_wrap("😀 hi", 3, 5, "_"),
            ("😀 _hi_".to_owned(), 4, 6)
        );
        // No selection: an empty pair, the caret inside.
        assert_eq!(toggle_wrap("ab", 1, 1, "`"), ("a``b".to_owned(), 2, 2));
    }

    #[test]
    fn a_message_of_files_alone_is_summed_up_by_their_names() {
        let file = |name: &str| common::FileInfo {
            id: "f".into(),
            name: name.into(),
            size: 1,
            content_type: "text/plain".into(),
            width: None,
            height: None,
            thumbnail: false,
        };
        assert_eq!(
            summary("", &[file("a.png"), file("b.pdf")]),
            "📎 a.png, b.pdf"
        );
        assert_eq!(summary("**look**", &[file("a.png")]), "look");
        assert_eq!(summary("", &[]), "");
    }
}
