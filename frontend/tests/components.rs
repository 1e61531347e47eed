//! Component tests in a real headless Chromium (wasm-bindgen-test).
//! Each mounts one component with plain signals and checks the DOM.
#![cfg(target_arch = "wasm32")]

use common::{ChatMessage, EntryKind, ServerMsg, User};
use frontend::chat::Chat;
use frontend::connection::Phase;
use frontend::members::Members;
use frontend::message_line::LineActions;
use frontend::view::{Banner, Composer, MessageList, Status, TypingLine};
use leptos::mount::mount_to;
use leptos::prelude::*;
use leptos::task::tick;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn user(id: &str, name: &str) -> User {
    User {
        id: id.into(),
        name: name.into(),
        username: Some(id.into()),
    }
}

/// A fresh element in the page to mount into.
fn container() -> web_sys::HtmlElement {
    let doc = document();
    let el = doc.create_element("section").unwrap();
    doc.body().unwrap().append_child(&el).unwrap();
    el.unchecked_into()
}

fn text_of(root: &web_sys::HtmlElement, selector: &str) -> String {
    root.query_selector(selector)
        .unwrap()
        .unwrap_or_else(|| panic!("no {selector}"))
        .text_content()
        .unwrap_or_default()
}

fn chat_with_room() -> Chat {
    let mut chat = Chat::new(user("me", "Me"));
    chat.apply(
        &ServerMsg::Joined {
            room: "general".into(),
            members: vec![user("me", "Me"), user("bob", "Bob")],
            last_seq: 0,
            recovered: true,
            read_seq: 0,
            unread: 0,
            mentions: 0,
            topic: String::new(),
            moderator: false,
        },
        0.0,
    );
    chat.open_room("general");
    chat
}

/// A message as the server sends it: with its formatting worked out.
fn message(seq: u64, from: User, content: &str) -> ServerMsg {
    ServerMsg::Message(ChatMessage {
        room: "general".into(),
        seq,
        id: format!("m{seq}"),
        user: from,
        content: content.into(),
        formatted: common::markup::format(content),
        ts: 1_700_000_000_000,
        client_id: format!("c{seq}"),
        ..ChatMessage::default()
    })
}

#[wasm_bindgen_test]
async fn the_banner_counts_down_and_offers_retry() {
    let root = container();
    let status = RwSignal::new(Status {
        phase: Phase::Waiting {
            attempt: 3,
            delay_ms: 4_000,
        },
        since_ms: 10_000.0,
    });
    let now = RwSignal::new(11_000.0);
    let retries = RwSignal::new(0);
    let _mounted = mount_to(root.clone(), move || {
        view! { <Banner status now_ms=now on_retry=Callback::new(move |()| retries.update(|n| *n += 1)) /> }
    });
    tick().await;
    assert_eq!(
        text_of(&root, ".banner-text"),
        "Connection lost. Reconnecting in 3 s (attempt 3)"
    );
    root.query_selector("button")
        .unwrap()
        .expect("a retry button while waiting")
        .unchecked_into::<web_sys::HtmlElement>()
        .click();
    assert_eq!(retries.get_untracked(), 1);

    now.set(13_500.0);
    tick().await;
    assert_eq!(
        text_of(&root, ".banner-text"),
        "Connection lost. Reconnecting in 1 s (attempt 3)"
    );

    // Just opened: not "Connected" yet, so a server that welcomes and
    // drops at once never flashes it.
    status.set(Status {
        phase: Phase::Open,
        since_ms: 13_400.0,
    });
    tick().await;
    assert_eq!(text_of(&root, ".banner-text"), "Connecting…");
    assert!(root.query_selector(".banner.ok").unwrap().is_none());
    now.set(14_400.0);
    tick().await;
    assert_eq!(text_of(&root, ".banner-text"), "Connected");
    assert!(
        root.query_selector("button").unwrap().is_none(),
        "no retry when connected"
    );
    assert!(root.query_selector(".banner.ok").unwrap().is_some());
}

#[wasm_bindgen_test]
async fn messages_render_as_text_with_own_and_pending_styling() {
    let root = container();
    let chat = RwSignal::new(chat_with_room());
    let xss = "<img src=x onerror=alert(1)>";
    chat.update(|c| {
        c.apply(&message(1, user("bob", "Bob"), xss), 0.0);
        c.apply(&message(2, user("me", "Me"), "mine"), 0.0);
        c.queue_local("general", "on its way", None, "c-pending", 0.0);
    });
    let room = Signal::derive(|| "general".to_owned());
    let _mounted = mount_to(root.clone(), move || view! { <MessageList chat room /> });
    tick().await;

    let lines = root.query_selector_all(".line").unwrap();
    assert_eq!(lines.length(), 3);
    // The markup is shown literally: no element was created from it.
    assert_eq!(text_of(&root, ".line .content"), xss);
    assert!(root.query_selector("img").unwrap().is_none());
    assert_eq!(text_of(&root, ".line .author"), "Bob");
    assert!(
        root.query_selector(".line.own[data-seq='2']")
            .unwrap()
            .is_some()
    );
    assert!(
        root.query_selector(".line.other[data-seq='1']")
            .unwrap()
            .is_some()
    );
    assert_eq!(text_of(&root, ".line.pending .state"), "sending…");

    // Once stored, the pending line becomes a normal one.
    chat.update(|c| {
        let mut echo = message(3, user("me", "Me"), "on its way");
        if let ServerMsg::Message(m) = &mut echo {
            m.client_id = "c-pending".into();
        }
        c.apply(&echo, 0.0);
    });
    tick().await;
    assert!(root.query_selector(".line.pending").unwrap().is_none());
    assert_eq!(root.query_selector_all(".line").unwrap().length(), 3);
}

#[wasm_bindgen_test]
async fn messages_are_grouped_dated_and_links_are_safe_links() {
    let root = container();
    let chat = RwSignal::new(chat_with_room());
    let at = |seq: u64, from: User, content: &str, ts: i64| {
        let mut msg = message(seq, from, content);
        if let ServerMsg::Message(m) = &mut msg {
            m.ts = ts;
        }
        msg
    };
    let t0 = js_sys::Date::now() as i64;
    chat.update(|c| {
        c.apply(
            &at(
                1,
                user("bob", "Bob"),
                "see https://example.org/x.",
                t0 - 120_000,
            ),
            0.0,
        );
        c.apply(
            &at(2, user("bob", "Bob"), "javascript:alert(1)", t0 - 60_000),
            0.0,
        );
        c.apply(&at(3, user("bob2", "Bob"), "another Bob", t0), 0.0);
    });
    let room = Signal::derive(|| "general".to_owned());
    let _mounted = mount_to(root.clone(), move || view! { <MessageList chat room /> });
    tick().await;

    // One day separator ("Today"), and Bob's second message continues his group.
    assert_eq!(root.query_selector_all(".day").unwrap().length(), 1);
    assert_eq!(text_of(&root, ".day"), "Today");
    assert!(
        root.query_selector(".line.cont[data-seq='2']")
            .unwrap()
            .is_some()
    );
    assert!(
        root.query_selector(".line.cont[data-seq='3']")
            .unwrap()
            .is_none()
    );
    // Two people named Bob get different avatars or at least different ids on hover.
    let titles: Vec<String> = (1..=3)
        .filter_map(|seq| {
            root.query_selector(&format!(".line[data-seq='{seq}'] .author"))
                .unwrap()
                .and_then(|e| e.get_attribute("title"))
        })
        .collect();
    assert_ne!(
        titles[0], titles[2],
        "namesakes differ on hover: {titles:?}"
    );
    // Two Bobs could be taken for each other: each shows its @username
    // without hover or tap (reading::confusable); a tap hides or shows it.
    let author: web_sys::HtmlElement = root
        .query_selector(".line[data-seq='3'] .author")
        .unwrap()
        .unwrap()
        .unchecked_into();
    assert_eq!(author.text_content().unwrap(), "Bob · @bob2");
    author.click();
    tick().await;
    assert_eq!(author.text_content().unwrap(), "Bob");
    // The link is a real, safe link; the rest stays text.
    let link = root
        .query_selector(".line .content a")
        .unwrap()
        .expect("a link");
    assert_eq!(
        link.get_attribute("href").as_deref(),
        Some("https://example.org/x")
    );
    assert_eq!(
        link.get_attribute("rel").as_deref(),
        Some("noopener noreferrer")
    );
    assert_eq!(link.get_attribute("target").as_deref(), Some("_blank"));
    assert_eq!(
        root.query_selector_all(".line .content a")
            .unwrap()
            .length(),
        1
    );
    // Each stored message's time is its link, out of the Tab order until
    // the focus is in its message (as its link in the text is).
    let permalink = root
        .query_selector(".line[data-seq='3'] a.permalink")
        .unwrap()
        .expect("a permalink");
    assert!(
        permalink
            .get_attribute("href")
            .is_some_and(|href| href.starts_with("/rooms/") && href.ends_with("/3")),
        "{:?}",
        permalink.get_attribute("href")
    );
    assert_eq!(permalink.get_attribute("tabindex").as_deref(), Some("-1"));
    assert_eq!(link.get_attribute("tabindex").as_deref(), Some("-1"));
    let time = root.query_selector(".line time").unwrap().unwrap();
    assert!(time.get_attribute("datetime").unwrap().ends_with('Z'));
    assert!(!time.get_attribute("title").unwrap().is_empty());
}

/// A list that really scrolls: 200 px tall, in a column.
fn scrolling_container() -> web_sys::HtmlElement {
    let doc = document();
    let style = doc.create_element("style").unwrap();
    style.set_text_content(Some(
        ".scroller { height: 200px; display: flex; flex-direction: column; }
         .scroller .messages-wrap { flex: 1; min-height: 0; display: flex; flex-direction: column; }
         .scroller .messages { flex: 1; overflow-y: auto; }
         .scroller .line { height: 40px; }",
    ));
    doc.head().unwrap().append_child(&style).unwrap();
    let root = container();
    root.set_class_name("scroller");
    root
}

fn from_bob(seq: u64, room: &str) -> ServerMsg {
    let mut msg = message(seq, user("bob", "Bob"), &format!("m{seq}"));
    if let ServerMsg::Message(m) = &mut msg {
        m.room = room.into();
    }
    msg
}

#[wasm_bindgen_test]
async fn reading_older_messages_is_not_disturbed_and_rooms_keep_their_place() {
    let root = scrolling_container();
    let chat = RwSignal::new(chat_with_room());
    chat.update(|c| {
        c.apply(
            &ServerMsg::Joined {
                room: "other".into(),
                members: vec![],
                last_seq: 0,
                recovered: true,
                read_seq: 0,
                unread: 0,
                mentions: 0,
                topic: String::new(),
                moderator: false,
            },
            0.0,
        );
        for seq in 1..=30 {
            c.apply(&from_bob(seq, "general"), 0.0);
            c.apply(&from_bob(seq, "other"), 0.0);
        }
    });
    let room = RwSignal::new("general".to_owned());
    let _mounted = mount_to(root.clone(), move || view! { <MessageList chat room /> });
    settle().await;
    let list: web_sys::HtmlElement = root
        .query_selector(".messages")
        .unwrap()
        .unwrap()
        .unchecked_into();
    let at_bottom =
        |el: &web_sys::HtmlElement| el.scroll_height() - el.scroll_top() - el.client_height() < 40;
    assert!(at_bottom(&list), "a room opens on its newest message");

    // The reader scrolls up; a new message does not move the view.
    list.set_scroll_top(100);
    list.dispatch_event(&web_sys::Event::new("scroll").unwrap())
        .unwrap();
    chat.update(|c| {
        c.apply(&from_bob(31, "general"), 0.0);
    });
    settle().await;
    assert_eq!(list.scroll_top(), 100, "the view stays put");
    assert_eq!(text_of(&root, ".new-below"), "1 new message ↓");

    // Another room, then back: the place is kept.
    room.set("other".into());
    settle().await;
    assert!(
        at_bottom(&list),
        "the other room was never scrolled: newest"
    );
    room.set("general".into());
    settle().await;
    assert_eq!(list.scroll_top(), 100, "back where the reader was");

    // Your own message is always brought into view.
    chat.update(|c| c.queue_local("general", "mine", None, "c-mine", 0.0));
    settle().await;
    assert!(at_bottom(&list), "scrolled to your own message");
    assert!(root.query_selector(".new-below").unwrap().is_none());
}

#[wasm_bindgen_test]
async fn a_message_the_client_gave_up_on_shows_failed_with_a_retry_button() {
    let root = container();
    let chat = RwSignal::new(chat_with_room());
    chat.update(|c| c.queue_local("general", "important", None, "c-1", 0.0));
    let retried = RwSignal::new(Vec::<String>::new());
    let on_retry = Callback::new(move |client_id: String| {
        retried.update(|r| r.push(client_id.clone()));
        chat.update(|c| {
            c.retry(&client_id);
        });
    });
    let room = Signal::derive(|| "general".to_owned());
    let _mounted = mount_to(root.clone(), move || {
        let actions = LineActions {
            retry: Some(on_retry),
            ..LineActions::default()
        };
        view! { <MessageList chat room actions /> }
    });
    tick().await;
    assert!(
        root.query_selector("button.retry").unwrap().is_none(),
        "no Retry while sending"
    );

    chat.update(|c| c.give_up("c-1"));
    tick().await;
    assert_eq!(
        text_of(&root, ".line.failed .state"),
        "not sent: the server could not store it"
    );
    let button: web_sys::HtmlElement = root
        .query_selector("button.retry")
        .unwrap()
        .expect("a Retry button")
        .unchecked_into();
    assert_eq!(button.text_content().as_deref(), Some("Retry"));
    button.click();
    tick().await;
    assert_eq!(retried.get_untracked(), ["c-1"]);
    assert_eq!(text_of(&root, ".line.pending .state"), "sending…");
    assert!(root.query_selector("button.retry").unwrap().is_none());
}

/// A reply shows what it answers; an edited message says so; a deleted one
/// says it was deleted, with nothing to act on; one's own message is edited
/// in place (Enter saves); a click on a quote asks for the quoted message.
#[wasm_bindgen_test]
async fn replies_edits_and_deletes_show_in_place() {
    let root = container();
    let chat = RwSignal::new(chat_with_room());
    let me = chat.with_untracked(|c| c.me.clone().unwrap());
    chat.update(|c| {
        c.apply(&message(1, user("bob", "Bob"), "Lunch at noon?"), 0.0);
        let mut reply = match message(2, me.clone(), "Yes!") {
            ServerMsg::Message(m) => m,
            _ => unreachable!(),
        };
        reply.reply_to = Some(1);
        c.apply(&ServerMsg::Message(reply), 0.0);
        c.apply(&message(3, user("bob", "Bob"), "oops"), 0.0);
        for (seq, kind, target, text) in [
            (4, EntryKind::Edit, 1, "Lunch at one?"),
            (5, EntryKind::Delete, 3, ""),
        ] {
            let change = match message(seq, user("bob", "Bob"), text) {
                ServerMsg::Message(m) => ChatMessage {
                    kind,
                    target: Some(target),
                    ..m
                },
                _ => unreachable!(),
            };
            c.apply(&ServerMsg::Event(change), 0.0);
        }
    });
    let edits = RwSignal::new(Vec::<(u64, String)>::new());
    let quotes = RwSignal::new(Vec::<u64>::new());
    let room = Signal::derive(|| "general".to_owned());
    let _mounted = mount_to(root.clone(), move || {
        let actions = LineActions {
            edit: Some(Callback::new(move |e| edits.update(|v| v.push(e)))),
            quote: Some(Callback::new(move |seq| quotes.update(|v| v.push(seq)))),
            reply: Some(Callback::new(|_| {})),
            delete: Some(Callback::new(|_| {})),
            ..LineActions::default()
        };
        view! { <MessageList chat room actions /> }
    });
    tick().await;
    assert_eq!(
        text_of(&root, "[data-seq='1'] .content"),
        "Lunch at one? (edited)"
    );
    assert_eq!(
        text_of(&root, "[data-seq='2'] .quote"),
        "In reply to ↪ BobLunch at one?"
    );
    assert_eq!(
        text_of(&root, "[data-seq='3'] .content"),
        "This message was deleted."
    );
    assert!(
        root.query_selector("[data-seq='3'] .actions")
            .unwrap()
            .is_none(),
        "nothing to do with a deleted message"
    );
    assert!(
        root.query_selector("[data-seq='1'] .actions")
            .unwrap()
            .unwrap()
            .text_content()
            .is_some_and(|t| !t.contains("Edit")),
        "only your own messages are edited"
    );
    root.query_selector("[data-seq='2'] .quote")
        .unwrap()
        .unwrap()
        .unchecked_into::<web_sys::HtmlElement>()
        .click();
    assert_eq!(quotes.get_untracked(), [1]);

    let edit_button = root
        .query_selector_all("[data-seq='2'] .actions button")
        .unwrap();
    let edit_button: web_sys::HtmlElement = (0..edit_button.length())
        .filter_map(|i| edit_button.item(i))
        .map(|n| n.unchecked_into::<web_sys::HtmlElement>())
        .find(|b| b.text_content().as_deref() == Some("Edit"))
        .expect("an Edit button on your own message");
    edit_button.click();
    tick().await;
    let area: web_sys::HtmlTextAreaElement = root
        .query_selector("[data-seq='2'] form.edit textarea")
        .unwrap()
        .expect("the message is edited in place")
        .unchecked_into();
    tick().await;
    assert_eq!(area.value(), "Yes!", "{}", root.inner_html());
    type_into(&area, "Yes, at one");
    // Ctrl+B formats here as in the message box.
    area.set_selection_range(8, 11).unwrap();
    let bold = ctrl("b");
    area.dispatch_event(&bold).unwrap();
    assert!(bold.default_prevented());
    assert_eq!(area.value(), "Yes, at **one**");
    area.dispatch_event(&key("keydown", "Enter", false))
        .unwrap();
    tick().await;
    assert_eq!(edits.get_untracked(), [(2, "Yes, at **one**".to_owned())]);
    assert!(root.query_selector("form.edit").unwrap().is_none());
}

/// Ctrl and `key`, pressed.
fn ctrl(key: &str) -> web_sys::KeyboardEvent {
    let init = web_sys::KeyboardEventInit::new();
    init.set_key(key);
    init.set_ctrl_key(true);
    init.set_bubbles(true);
    init.set_cancelable(true);
    web_sys::KeyboardEvent::new_with_keyboard_event_init_dict("keydown", &init).unwrap()
}

fn key(kind: &str, key: &str, shift: bool) -> web_sys::KeyboardEvent {
    let init = web_sys::KeyboardEventInit::new();
    init.set_key(key);
    init.set_shift_key(shift);
    init.set_bubbles(true);
    init.set_cancelable(true);
    web_sys::KeyboardEvent::new_with_keyboard_event_init_dict(kind, &init).unwrap()
}

fn type_into(area: &web_sys::HtmlTextAreaElement, text: &str) {
    area.set_value(text);
    let init = web_sys::EventInit::new();
    init.set_bubbles(true);
    area.dispatch_event(&web_sys::Event::new_with_event_init_dict("input", &init).unwrap())
        .unwrap();
}

#[wasm_bindgen_test]
async fn the_composer_sends_on_enter_and_not_on_shift_enter() {
    let root = container();
    let sent = RwSignal::new(Vec::<String>::new());
    let typing = RwSignal::new(0);
    let _mounted = mount_to(root.clone(), move || {
        view! {
            <Composer
                room=Signal::derive(|| "general".to_owned())
                on_send=Callback::new(move |(text, _): (String, Vec<common::FileInfo>)| sent.update(|s| s.push(text)))
                on_typing=Callback::new(move |()| typing.update(|n| *n += 1))
            />
        }
    });
    tick().await;
    let area: web_sys::HtmlTextAreaElement = root
        .query_selector("textarea")
        .unwrap()
        .unwrap()
        .unchecked_into();

    type_into(&area, "line one");
    assert_eq!(typing.get_untracked(), 1, "typing is reported on input");
    let shift_enter = key("keydown", "Enter", true);
    area.dispatch_event(&shift_enter).unwrap();
    assert!(
        !shift_enter.default_prevented(),
        "Shift+Enter keeps its newline"
    );
    assert!(sent.get_untracked().is_empty());

    type_into(&area, "line one\nline two");
    let enter = key("keydown", "Enter", false);
    area.dispatch_event(&enter).unwrap();
    assert!(enter.default_prevented());
    assert_eq!(sent.get_untracked(), ["line one\nline two"]);
    tick().await;
    assert_eq!(area.value(), "", "cleared after sending");

    // Blank messages are not sent.
    type_into(&area, "   ");
    area.dispatch_event(&key("keydown", "Enter", false))
        .unwrap();
    assert_eq!(sent.get_untracked().len(), 1);
}

#[wasm_bindgen_test]
async fn formatting_is_drawn_as_elements_and_never_as_markup() {
    let root = container();
    let chat = RwSignal::new(chat_with_room());
    let bob = user("bob", "Bob");
    chat.update(|c| {
        let inline = "**bold** _it_ ~~gone~~ `x` <b>raw</b> [docs](https://example.org) \
            [https://bank.example](https://evil.example/) [bad](javascript:alert(1))";
        c.apply(&message(1, bob.clone(), inline), 0.0);
        c.apply(&message(2, bob.clone(), "```rust\nfn main() {}\n```"), 0.0);
        c.apply(
            &message(3, bob.clone(), "> quoted\n\n- one\n- two\n\n# Big"),
            0.0,
        );
    });
    let room = Signal::derive(|| "general".to_owned());
    let _mounted = mount_to(root.clone(), move || view! { <MessageList chat room /> });
    tick().await;
    let line =
        |seq: u32, css: &str| text_of(&root, &format!(".line[data-seq='{seq}'] .content {css}"));
    assert_eq!(line(1, "strong"), "bold");
    assert_eq!(line(1, "em"), "it");
    assert_eq!(line(1, "del"), "gone");
    assert_eq!(line(1, "code"), "x");
    // Raw HTML is text; only the formatting made elements.
    assert!(root.query_selector(".content b").unwrap().is_none());
    assert!(line(1, "").contains("<b>raw</b>"));
    let docs = root
        .query_selector(".line[data-seq='1'] a[href='https://example.org']")
        .unwrap()
        .expect("the link");
    assert_eq!(docs.text_content().unwrap(), "docs");
    assert_eq!(
        docs.get_attribute("rel").as_deref(),
        Some("noopener noreferrer")
    );
    // A link whose text names another host says where it really goes.
    assert_eq!(line(1, ".link-host"), " (evil.example)");
    // No script link: its text only.
    assert!(
        root.query_selector("a[href^='javascript']")
            .unwrap()
            .is_none()
    );
    assert!(line(1, "").contains("bad"));

    assert_eq!(line(2, ".code-block pre code"), "fn main() {}");
    assert_eq!(line(2, ".code-block button.copy"), "Copy");
    assert_eq!(
        root.query_selector(".code-block pre code")
            .unwrap()
            .unwrap()
            .get_attribute("tabindex")
            .as_deref(),
        Some("-1"),
        "a region that scrolls is a Tab stop only while its message has the focus"
    );

    assert_eq!(line(3, "blockquote"), "quoted");
    assert_eq!(
        root.query_selector_all(".line[data-seq='3'] ul li")
            .unwrap()
            .length(),
        2
    );
    assert!(
        root.query_selector(".content h1").unwrap().is_none(),
        "no big heading"
    );
    assert_eq!(line(3, "p strong"), "Big");
}

#[wasm_bindgen_test]
async fn ctrl_b_i_e_wrap_the_selection_in_the_composer() {
    let root = container();
    let _mounted = mount_to(root.clone(), move || {
        view! { <Composer room=Signal::derive(|| "fmt".to_owned()) on_send=Callback::new(|_: (String, Vec<common::FileInfo>)| {}) on_typing=Callback::new(|()| {}) /> }
    });
    tick().await;
    let area: web_sys::HtmlTextAreaElement = root
        .query_selector("textarea")
        .unwrap()
        .unwrap()
        .unchecked_into();
    type_into(&area, "make this bold");
    area.set_selection_range(10, 14).unwrap();
    let bold = ctrl("b");
    area.dispatch_event(&bold).unwrap();
    assert!(bold.default_prevented());
    assert_eq!(area.value(), "make this **bold**");
    assert_eq!(
        (
            area.selection_start().unwrap(),
            area.selection_end().unwrap()
        ),
        (Some(12), Some(16)),
        "the same words stay selected"
    );
    // Again: undone.
    area.dispatch_event(&ctrl("b")).unwrap();
    assert_eq!(area.value(), "make this bold");
    area.set_selection_range(0, 4).unwrap();
    area.dispatch_event(&ctrl("e")).unwrap();
    assert_eq!(area.value(), "`make` this bold");
    area.set_selection_range(7, 11).unwrap();
    area.dispatch_event(&ctrl("i")).unwrap();
    assert_eq!(area.value(), "`make` _this_ bold");
}

/// Lets effects (not only rendering) run, and an animation frame pass.
async fn settle() {
    for _ in 0..3 {
        tick().await;
    }
    gloo_timers::future::TimeoutFuture::new(50).await;
}

#[wasm_bindgen_test]
async fn each_room_keeps_its_draft_and_the_counter_warns_near_the_limit() {
    let root = container();
    let room = RwSignal::new("a".to_owned());
    let _mounted = mount_to(root.clone(), move || {
        view! { <Composer room on_send=Callback::new(|_: (String, Vec<common::FileInfo>)| {}) on_typing=Callback::new(|()| {}) /> }
    });
    tick().await;
    let area: web_sys::HtmlTextAreaElement = root
        .query_selector("textarea")
        .unwrap()
        .unwrap()
        .unchecked_into();
    type_into(&area, "half a thought for a");
    room.set("b".into());
    settle().await;
    assert_eq!(
        area.value(),
        "",
        "the draft does not follow into another room"
    );
    assert_eq!(
        document().active_element().map(|e| e.tag_name()),
        Some("TEXTAREA".to_owned()),
        "the cursor is back in the box after a switch"
    );
    type_into(&area, "for b");
    room.set("a".into());
    settle().await;
    assert_eq!(area.value(), "half a thought for a");
    room.set("b".into());
    settle().await;
    assert_eq!(area.value(), "for b");

    // No counter for ordinary messages; one near the limit; a clear
    // message and no Send button over it.
    assert_eq!(text_of(&root, ".counter"), "");
    type_into(&area, &"x".repeat(3700));
    tick().await;
    assert_eq!(text_of(&root, ".counter"), "3700 / 4096 bytes");
    type_into(&area, &"é".repeat(2050));
    tick().await;
    assert_eq!(
        text_of(&root, ".counter"),
        "4 bytes too long: a message holds at most 4096 bytes"
    );
    let button: web_sys::HtmlButtonElement = root
        .query_selector("button[type=submit]")
        .unwrap()
        .unwrap()
        .unchecked_into();
    assert!(button.disabled());
}

#[wasm_bindgen_test]
async fn the_typing_indicator_appears_and_expires() {
    let root = container();
    let chat = RwSignal::new(chat_with_room());
    let room = Signal::derive(|| "general".to_owned());
    let _mounted = mount_to(root.clone(), move || view! { <TypingLine chat room /> });
    tick().await;
    assert_eq!(text_of(&root, ".typing"), "");

    let typing = ServerMsg::Typing {
        room: "general".into(),
        user: user("bob", "Bob"),
    };
    chat.update(|c| {
        c.apply(&typing, 1_000.0);
    });
    tick().await;
    assert_eq!(text_of(&root, ".typing"), "Bob is typing…");

    chat.update(|c| {
        c.expire_typing(4_000.0);
    });
    tick().await;
    assert_eq!(
        text_of(&root, ".typing"),
        "Bob is typing…",
        "still fresh at 3 s"
    );

    chat.update(|c| {
        c.expire_typing(6_001.0);
    });
    tick().await;
    assert_eq!(
        text_of(&root, ".typing"),
        "",
        "gone 5 s after the last refresh"
    );
}

#[wasm_bindgen_test]
async fn the_member_list_follows_presence() {
    let root = container();
    let chat = RwSignal::new(chat_with_room());
    let room = Signal::derive(|| "general".to_owned());
    // No server here: the roles cannot be fetched, and presence alone
    // still fills the list.
    let me = user("me", "Me");
    let _mounted = mount_to(root.clone(), move || {
        view! { <Members chat room token="no-server".to_owned() me=me.clone() /> }
    });
    tick().await;
    assert_eq!(root.query_selector_all("li").unwrap().length(), 2);
    assert!(
        root.query_selector("form.invite").unwrap().is_none(),
        "no invite box for someone without a role"
    );
    chat.update(|c| {
        c.apply(
            &ServerMsg::UserLeft {
                room: "general".into(),
                user: user("bob", "Bob"),
            },
            0.0,
        );
    });
    tick().await;
    assert_eq!(root.query_selector_all("li").unwrap().length(), 1);
    assert!(text_of(&root, "ul").contains("Me"));
}
