//! The parser (the server's side of formatting): the Markdown people
//! already type in chat, parsed by pulldown-cmark into the tree of
//! `markup`, with bare http(s) addresses and `@mentions` found in its text
//! (`pieces`).

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

use super::pieces::{Piece, pieces};
use super::{Block, Inline, inlines_text};

/// Parses a message.
pub fn parse(text: &str) -> Vec<Block> {
    let mut builder = Builder::default();
    let options = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    for event in Parser::new_ext(text, options) {
        builder.event(event);
    }
    builder.finish()
}

/// What `ChatMessage::formatted` carries for `text`: its tree, or `None`
/// when the tree would only say "this text, as it is" (most messages),
/// which a client shows as it is.
pub fn format(text: &str) -> Option<Box<[Block]>> {
    let blocks = parse(text);
    match blocks.as_slice() {
        [] => None,
        [Block::Para(inlines)] if matches!(inlines.as_slice(), [Inline::Text(t)] if t == text) => {
            None
        }
        _ => Some(blocks.into_boxed_slice()),
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
                    for piece in pieces(&text) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markup::{as_simple, plain_text};

    fn text(t: &str) -> Inline {
        Inline::Text(t.to_owned())
    }

    fn plain(t: &str) -> String {
        plain_text(t, format(t).as_deref())
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
            plain("<img src=x onerror=alert(1)>"),
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
            plain("**bold** and `code` [docs](https://x.org)"),
            "bold and code docs"
        );
        assert_eq!(plain("> quoted\n\nreply"), "quoted\nreply");
        assert_eq!(plain("- a\n- b"), "a\nb");
        assert_eq!(plain("```\nlet x = 1;\n```"), "let x = 1;");
        assert_eq!(plain("just text"), "just text");
    }

    #[test]
    fn unclosed_syntax_is_text() {
        assert_eq!(plain("**not closed"), "**not closed");
        assert_eq!(plain("5 * 3 * 2"), "5 * 3 * 2");
        assert_eq!(parse("```\nno end").len(), 1);
        assert!(parse("").is_empty());
    }

    #[test]
    fn only_text_that_is_more_than_itself_carries_a_tree() {
        assert_eq!(format("just words, nothing else"), None);
        assert_eq!(format(""), None);
        assert!(format("**bold**").is_some());
        assert!(format("hi @bob").is_some(), "a mention is drawn as one");
        assert!(
            format("see https://x.org").is_some(),
            "an address is a link"
        );
        assert!(format("one\ntwo").is_some(), "lines are kept");
    }
}
