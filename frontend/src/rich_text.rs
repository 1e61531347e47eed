//! Draws a message's text: the tree the server sent with it
//! (`common::markup`; none: the text as it is), as elements
//! built node by node (never HTML from the text), with `@username`
//! mentions highlighted (yours more so) and links that say where they go.
//! Links and code blocks are Tab stops only while the focus is in their
//! message (`stop`).

use leptos::prelude::*;

use common::markup::{self, Block, Inline};

/// The message's text, drawn.
pub fn content(
    text: &str,
    formatted: Option<&[Block]>,
    my_username: Option<&str>,
    stop: Signal<&'static str>,
) -> AnyView {
    let Some(blocks) = formatted else {
        // Nothing in it but itself: most messages, and ours until stored.
        return text.to_owned().into_any();
    };
    match markup::as_simple(blocks) {
        // Most messages: text in place, as it always was.
        Some(inlines) => inlines_view(inlines, my_username, stop),
        None => blocks
            .iter()
            .map(|block| block_view(block, my_username, stop))
            .collect_view()
            .into_any(),
    }
}

fn block_view(block: &Block, me: Option<&str>, stop: Signal<&'static str>) -> AnyView {
    match block {
        Block::Para(inlines) => view! { <p>{inlines_view(inlines, me, stop)}</p> }.into_any(),
        Block::Code { lang, text } => code_block(lang.clone(), text.clone(), stop),
        Block::Quote(inner) => view! {
            <blockquote>{inner.iter().map(|b| block_view(b, me, stop)).collect_view()}</blockquote>
        }
        .into_any(),
        Block::List { start, items } => {
            let items = items
                .iter()
                .map(|item| match item.as_slice() {
                    // A tight item: its text, without a paragraph around it.
                    [Block::Para(inlines)] => {
                        view! { <li>{inlines_view(inlines, me, stop)}</li> }.into_any()
                    }
                    blocks => view! {
                        <li>{blocks.iter().map(|b| block_view(b, me, stop)).collect_view()}</li>
                    }
                    .into_any(),
                })
                .collect_view();
            match start {
                Some(start) => view! { <ol start=start.to_string()>{items}</ol> }.into_any(),
                None => view! { <ul>{items}</ul> }.into_any(),
            }
        }
        Block::Rule => view! { <hr /> }.into_any(),
    }
}

/// A code block: monospace, scrolled sideways rather than wrapped, with a
/// button that copies it.
fn code_block(lang: Option<String>, text: String, stop: Signal<&'static str>) -> AnyView {
    let copied = RwSignal::new(false);
    let label = match &lang {
        Some(lang) => format!("Code ({lang})"),
        None => "Code".to_owned(),
    };
    let copy = {
        let text = text.clone();
        move |_| {
            if copy_to_clipboard(&text) {
                copied.set(true);
                set_timeout(move || copied.set(false), std::time::Duration::from_secs(2));
            }
        }
    };
    let shown_lang = lang.clone().unwrap_or_default();
    view! {
        <div class="code-block">
            <div class="code-head">
                <span class="lang">{shown_lang}</span>
                <button type="button" class="copy link small" tabindex=stop on:click=copy>
                    {move || if copied.get() { "Copied" } else { "Copy" }}
                </button>
            </div>
            // A region that scrolls is reachable by keyboard: its code is a
            // Tab stop while the focus is in its message, like the
            // message's links, and the arrow keys scroll it then. The
            // history itself is one Tab stop: `tabindex=-1` keeps Chromium
            // from making the scroller one of its own.
            <pre tabindex="-1" aria-label=label><code tabindex=stop>{text}</code></pre>
        </div>
    }
    .into_any()
}

/// `navigator.clipboard.writeText(text)`; `false` where there is none (an
/// insecure origin).
fn copy_to_clipboard(text: &str) -> bool {
    use wasm_bindgen::JsCast;
    let Ok(navigator) = js_sys::Reflect::get(&window(), &"navigator".into()) else {
        return false;
    };
    let Ok(clipboard) = js_sys::Reflect::get(&navigator, &"clipboard".into()) else {
        return false;
    };
    let Ok(write) = js_sys::Reflect::get(&clipboard, &"writeText".into()) else {
        return false;
    };
    match write.dyn_into::<js_sys::Function>() {
        Ok(write) => write.call1(&clipboard, &text.into()).is_ok(),
        Err(_) => false,
    }
}

fn inlines_view(inlines: &[Inline], me: Option<&str>, stop: Signal<&'static str>) -> AnyView {
    inlines
        .iter()
        .map(|inline| inline_view(inline, me, stop))
        .collect_view()
        .into_any()
}

fn inline_view(inline: &Inline, me: Option<&str>, stop: Signal<&'static str>) -> AnyView {
    match inline {
        // The server refuses reordering characters; older messages may
        // still have them, and they are not shown.
        Inline::Text(t) => t
            .chars()
            .filter(|&c| !common::validate::reorders(c))
            .collect::<String>()
            .into_any(),
        Inline::Break => "\n".into_any(),
        Inline::Mention(name) => {
            let mine = me.is_some_and(|me| name[1..].eq_ignore_ascii_case(me));
            view! { <span class="mention" class:you=mine>{name.clone()}</span> }.into_any()
        }
        Inline::Url(url) => view! {
            <a href=url.clone() dir="ltr" target="_blank" rel="noopener noreferrer" tabindex=stop>{url.clone()}</a>
        }
        .into_any(),
        Inline::Code(code) => view! { <code>{code.clone()}</code> }.into_any(),
        Inline::Strong(c) => view! { <strong>{inlines_view(c, me, stop)}</strong> }.into_any(),
        Inline::Emph(c) => view! { <em>{inlines_view(c, me, stop)}</em> }.into_any(),
        Inline::Strike(c) => view! { <del>{inlines_view(c, me, stop)}</del> }.into_any(),
        Inline::Link {
            href,
            host,
            children,
        } => {
            // A path of this site opens here; anything else in a new tab.
            let external = !href.starts_with('/');
            view! {
                <a href=href.clone() title=href.clone() tabindex=stop
                    target=external.then_some("_blank") rel=external.then_some("noopener noreferrer")>
                    {inlines_view(children, me, stop)}
                </a>
                {host.clone().map(|host| view! { <span class="link-host" dir="ltr">{format!(" ({host})")}</span> })}
            }
            .into_any()
        }
    }
}
