//! `chat.rs` through its public API, natively (`cargo test -p frontend`).
#![cfg(not(target_arch = "wasm32"))]

use common::{ChatMessage, EntryKind, Notify, ServerMsg, User};
use frontend::chat::*;

fn user(id: &str) -> User {
    User {
        id: id.into(),
        name: id.to_uppercase(),
        username: None,
    }
}

fn msg(seq: u64, from: &str, client_id: &str) -> ServerMsg {
    ServerMsg::Message(ChatMessage {
        room: "r".into(),
        seq,
        id: format!("id{seq}"),
        user: user(from),
        content: format!("m{seq}"),
        ts: 1,
        client_id: client_id.into(),
        ..ChatMessage::default()
    })
}

fn chat_in_room() -> Chat {
    let mut chat = Chat::new(user("me"));
    chat.apply(
        &ServerMsg::Joined {
            room: "r".into(),
            members: vec![user("me"), user("bob")],
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
    chat
}

fn seqs(chat: &Chat) -> Vec<Option<u64>> {
    chat.rooms["r"].lines.iter().map(|l| l.seq).collect()
}

#[test]
fn removal_and_refusal_drop_the_room_and_say_why() {
    let mut chat = Chat::new(user("me"));
    for room in ["lobby", "team"] {
        chat.open_room(room);
    }
    chat.apply(
        &ServerMsg::Left {
            room: "team".into(),
            reason: Some("removed".into()),
        },
        0.0,
    );
    assert!(!chat.rooms.contains_key("team"));
    assert_eq!(
        chat.current.as_deref(),
        Some("lobby"),
        "another room on screen"
    );
    assert_eq!(chat.notice.as_deref(), Some("You were removed from #team."));
    chat.notice = None;
    chat.open_room("secret");
    chat.apply(
        &ServerMsg::Error {
            code: common::ErrorCode::Forbidden,
            message: "this room is private".into(),
            reference: Some("secret".into()),
        },
        0.0,
    );
    assert!(!chat.rooms.contains_key("secret"));
    assert_eq!(
        chat.notice.as_deref(),
        Some("#secret: this room is private")
    );
    // Leaving by choice says nothing.
    chat.notice = None;
    chat.apply(
        &ServerMsg::Left {
            room: "lobby".into(),
            reason: None,
        },
        0.0,
    );
    assert_eq!(chat.notice, None);
}

#[test]
fn messages_are_kept_in_seq_order_without_duplicates() {
    let mut chat = chat_in_room();
    for seq in [1, 2, 4, 3] {
        chat.apply(&msg(seq, "bob", &format!("b{seq}")), 0.0);
    }
    // 4 jumped ahead and waits; the late 3 fills the gap by itself.
    chat.fill("r", &[]);
    for seq in [2, 4] {
        chat.apply(&msg(seq, "bob", &format!("b{seq}")), 0.0);
    }
    assert_eq!(seqs(&chat), [Some(1), Some(2), Some(3), Some(4)]);
    assert_eq!(chat.rooms["r"].last_seq, 4);
}

#[test]
fn a_pending_line_becomes_the_stored_message() {
    let mut chat = chat_in_room();
    chat.queue_local("r", "hello", None, "c1", 5.0);
    assert_eq!(chat.rooms["r"].lines[0].status, LineStatus::Pending);
    chat.apply(&msg(1, "bob", "b1"), 0.0);
    // Stored lines go before the pending one.
    assert_eq!(seqs(&chat), [Some(1), None]);
    chat.apply(&msg(2, "me", "c1"), 0.0);
    assert_eq!(seqs(&chat), [Some(1), Some(2)]);
    assert_eq!(chat.rooms["r"].lines[1].status, LineStatus::Sent);
}

#[test]
fn internal_keeps_sending_until_the_connection_gives_up_then_retry_resends() {
    let mut chat = chat_in_room();
    chat.queue_local("r", "hello", None, "c1", 0.0);
    chat.apply(
        &ServerMsg::Error {
            code: common::ErrorCode::Internal,
            message: "the message could not be stored".into(),
            reference: Some("c1".into()),
        },
        0.0,
    );
    assert_eq!(chat.rooms["r"].lines[0].status, LineStatus::Pending);
    chat.give_up("c1");
    assert!(matches!(
        chat.rooms["r"].lines[0].status,
        LineStatus::Failed(_)
    ));
    assert_eq!(
        chat.retry("c1"),
        Some(("r".into(), common::Post::text("hello")))
    );
    assert_eq!(chat.rooms["r"].lines[0].status, LineStatus::Pending);
    // Only a failed line can be retried.
    assert_eq!(chat.retry("c1"), None);
}

#[test]
fn a_refused_message_is_marked_failed() {
    let mut chat = chat_in_room();
    chat.queue_local("r", "spam", None, "c9", 0.0);
    chat.apply(
        &ServerMsg::Error {
            code: common::ErrorCode::RateLimited,
            message: "sending too fast".into(),
            reference: Some("c9".into()),
        },
        0.0,
    );
    assert_eq!(
        chat.rooms["r"].lines[0].status,
        LineStatus::Failed("sending too fast".into())
    );
}

#[test]
fn unread_comes_from_the_server_and_follows_other_tabs() {
    let mut chat = chat_in_room();
    chat.apply(
        &ServerMsg::Joined {
            room: "other".into(),
            members: vec![],
            last_seq: 9,
            recovered: true,
            read_seq: 5,
            unread: 4,
            mentions: 0,
            topic: String::new(),
            moderator: false,
        },
        0.0,
    );
    assert_eq!(chat.rooms["other"].unread, 4, "counted by the server");
    // A replayed message at or below the read position is not unread.
    let mut old = msg(5, "bob", "b5");
    let mut new = msg(10, "bob", "b10");
    for m in [&mut old, &mut new] {
        if let ServerMsg::Message(m) = m {
            m.room = "other".into();
        }
    }
    chat.apply(&old, 0.0);
    chat.apply(&new, 0.0);
    assert_eq!(chat.rooms["other"].unread, 5);
    // Read to 10 in another tab.
    chat.apply(
        &ServerMsg::Read {
            room: "other".into(),
            seq: 10,
        },
        0.0,
    );
    assert_eq!(chat.rooms["other"].unread, 0);
    // On screen: reported once, up to the newest.
    chat.open_room("r");
    chat.apply(&msg(1, "bob", "b1"), 0.0);
    assert_eq!(chat.to_report(), Some(("r".into(), 1)));
    assert_eq!(chat.to_report(), None, "nothing new since");
}

#[test]
fn unread_counts_rooms_not_on_screen() {
    let mut chat = chat_in_room();
    chat.apply(&msg(1, "bob", "b1"), 0.0);
    assert_eq!(chat.rooms["r"].unread, 1);
    chat.open_room("r");
    assert_eq!(chat.rooms["r"].unread, 0);
    chat.apply(&msg(2, "bob", "b2"), 0.0);
    assert_eq!(chat.rooms["r"].unread, 0, "on screen");
}

#[test]
fn typing_shows_expires_and_clears_on_message() {
    let mut chat = chat_in_room();
    let typing = ServerMsg::Typing {
        room: "r".into(),
        user: user("bob"),
    };
    chat.apply(&typing, 1_000.0);
    assert_eq!(chat.typing_text("r").as_deref(), Some("BOB is typing…"));
    assert!(!chat.expire_typing(5_999.0));
    assert!(chat.expire_typing(6_000.0));
    assert_eq!(chat.typing_text("r"), None);
    // A refresh extends it; the person's message clears it.
    chat.apply(&typing, 10_000.0);
    chat.apply(&msg(1, "bob", "b1"), 10_001.0);
    assert_eq!(chat.typing_text("r"), None);
}

fn chat_live_at(seq: u64) -> Chat {
    let mut chat = Chat::new(user("me"));
    chat.apply(
        &ServerMsg::Joined {
            room: "r".into(),
            members: vec![],
            last_seq: seq,
            recovered: true,
            read_seq: 0,
            unread: 0,
            mentions: 0,
            topic: String::new(),
            moderator: false,
        },
        0.0,
    );
    chat
}

fn chat_message(seq: u64) -> ChatMessage {
    match msg(seq, "bob", &format!("b{seq}")) {
        ServerMsg::Message(m) => m,
        _ => unreachable!(),
    }
}

#[test]
fn a_live_gap_is_fetched_before_later_messages_show() {
    let mut chat = chat_live_at(5);
    assert_eq!(chat.apply(&msg(6, "bob", "b6"), 0.0), None);
    let gap = chat.apply(&msg(9, "bob", "b9"), 0.0);
    assert_eq!(
        gap,
        Some(Gap {
            room: "r".into(),
            after: 6,
            before: 9
        })
    );
    // More arrive while fetching: held, and no second request.
    assert_eq!(chat.apply(&msg(10, "bob", "b10"), 0.0), None);
    assert_eq!(seqs(&chat), [Some(6)], "nothing after the gap shows yet");
    chat.fill("r", &[chat_message(7), chat_message(8)]);
    assert_eq!(seqs(&chat), [Some(6), Some(7), Some(8), Some(9), Some(10)]);
    assert_eq!(chat.rooms["r"].last_seq, 10);
    assert_eq!(chat.apply(&msg(11, "bob", "b11"), 0.0), None);
}

#[test]
fn a_replay_before_joined_is_not_a_gap() {
    let mut chat = chat_in_room();
    chat.set_offline();
    // A fresh join's replay may start anywhere.
    assert_eq!(chat.apply(&msg(40, "bob", "b40"), 0.0), None);
    assert_eq!(chat.apply(&msg(41, "bob", "b41"), 0.0), None);
    assert_eq!(seqs(&chat), [Some(40), Some(41)]);
}

#[test]
fn older_pages_go_on_top() {
    let mut chat = chat_live_at(50);
    for seq in 51..=53 {
        chat.apply(&msg(seq, "bob", &format!("b{seq}")), 0.0);
    }
    assert_eq!(chat.oldest_seq("r"), Some(51));
    chat.prepend("r", &[chat_message(49), chat_message(50)]);
    assert_eq!(seqs(&chat)[..3], [Some(49), Some(50), Some(51)]);
    assert!(chat.rooms["r"].older_available);
    chat.prepend("r", &[chat_message(1)]);
    assert!(!chat.rooms["r"].older_available, "seq 1 is the start");
}

#[test]
fn typing_is_sent_at_most_every_two_seconds() {
    let mut throttle = TypingThrottle::default();
    let sent: Vec<f64> = [0.0, 500.0, 1_999.0, 2_000.0, 2_100.0, 4_500.0]
        .into_iter()
        .filter(|&t| throttle.keystroke(t))
        .collect();
    assert_eq!(sent, [0.0, 2_000.0, 4_500.0]);
    // After sending a message, the next keystroke counts at once.
    throttle.sent();
    assert!(throttle.keystroke(4_600.0));
}

#[test]
fn presence_follows_joins_and_leaves() {
    let mut chat = chat_in_room();
    chat.apply(
        &ServerMsg::UserJoined {
            room: "r".into(),
            user: user("carol"),
        },
        0.0,
    );
    assert_eq!(chat.rooms["r"].members.len(), 3);
    chat.apply(
        &ServerMsg::UserLeft {
            room: "r".into(),
            user: user("bob"),
        },
        0.0,
    );
    let names: Vec<_> = chat.rooms["r"]
        .members
        .values()
        .map(|u| u.name.as_str())
        .collect();
    assert_eq!(names, ["CAROL", "ME"]);
}

fn change(seq: u64, from: &str, kind: EntryKind, target: Option<u64>, text: &str) -> ChatMessage {
    ChatMessage {
        kind,
        target,
        content: text.into(),
        ..chat_message_from(seq, from)
    }
}

fn chat_message_from(seq: u64, from: &str) -> ChatMessage {
    match msg(seq, from, &format!("{from}{seq}")) {
        ServerMsg::Message(m) => m,
        _ => unreachable!(),
    }
}

fn line(chat: &Chat, seq: u64) -> Line {
    chat.quoted("r", seq).cloned().expect("the line is loaded")
}

#[test]
fn live_changes_apply_to_their_message_and_only_a_topic_is_a_line() {
    let mut chat = chat_in_room();
    chat.open_room("elsewhere");
    chat.apply(&msg(1, "bob", "b1"), 0.0);
    chat.apply(
        &ServerMsg::Event(change(2, "bob", EntryKind::Edit, Some(1), "fixed")),
        0.0,
    );
    chat.apply(
        &ServerMsg::Event(change(3, "bob", EntryKind::Topic, None, "Plans")),
        0.0,
    );
    let state = &chat.rooms["r"];
    // An edit is not a line; a topic is one of the log, not a message.
    assert_eq!(state.lines.len(), 2, "{:?}", state.lines);
    assert!(state.lines[1].topic);
    assert_eq!((state.last_seq, state.topic.as_str()), (3, "Plans"));
    assert_eq!(state.unread, 1, "an edit or a topic is not news");
    let edited = line(&chat, 1);
    assert!(edited.edited);
    assert_eq!(edited.content, "fixed");
    chat.apply(
        &ServerMsg::Event(change(4, "bob", EntryKind::Delete, Some(1), "")),
        0.0,
    );
    let gone = line(&chat, 1);
    assert!(gone.deleted && gone.content.is_empty());
    // An edit that raced with the delete cannot bring the text back.
    chat.apply(
        &ServerMsg::Event(change(5, "bob", EntryKind::Edit, Some(1), "back")),
        0.0,
    );
    assert!(line(&chat, 1).content.is_empty());
}

/// A page of older history holds messages as they are now: its old
/// edits must not put back a text that a newer edit replaced.
#[test]
fn older_pages_do_not_replay_their_changes() {
    let mut chat = chat_live_at(10);
    chat.apply(
        &ServerMsg::Event(change(11, "bob", EntryKind::Edit, Some(3), "third")),
        0.0,
    );
    let mut three = chat_message_from(3, "bob");
    three.content = "third".into();
    three.edited = Some(5);
    let older = [
        three,
        change(4, "bob", EntryKind::Edit, Some(3), "first"),
        change(5, "bob", EntryKind::Topic, None, "old topic"),
    ];
    chat.prepend("r", &older);
    assert_eq!(line(&chat, 3).content, "third");
    assert_eq!(chat.rooms["r"].topic, "", "an old topic is not the topic");
    assert_eq!(chat.oldest_seq("r"), Some(3));
    assert!(chat.rooms["r"].older_available);
    // A room whose first entry was a change still pages down to 1.
    chat.prepend(
        "r",
        &[
            change(1, "bob", EntryKind::Topic, None, "first topic"),
            chat_message_from(2, "bob"),
        ],
    );
    assert_eq!(chat.oldest_seq("r"), Some(1));
    assert!(!chat.rooms["r"].older_available);
}

#[test]
fn our_edit_shows_at_once_and_a_refusal_puts_the_text_back() {
    let mut chat = chat_in_room();
    chat.apply(&msg(1, "me", "m1"), 0.0);
    chat.edit_local("r", 1, "better", "e1");
    let pending = line(&chat, 1);
    assert_eq!(pending.content, "better");
    assert!(pending.changing.is_some());
    chat.apply(
        &ServerMsg::Error {
            code: common::ErrorCode::NoSuchMessage,
            message: "no".into(),
            reference: Some("e1".into()),
        },
        0.0,
    );
    let back = line(&chat, 1);
    assert_eq!(back.content, "m1");
    assert!(back.changing.is_none());
    assert!(
        chat.notice
            .as_deref()
            .is_some_and(|n| n.contains("not saved"))
    );
    // Accepted: the event confirms it.
    chat.edit_local("r", 1, "best", "e2");
    chat.apply(
        &ServerMsg::Event(change(2, "me", EntryKind::Edit, Some(1), "best")),
        0.0,
    );
    let saved = line(&chat, 1);
    assert_eq!(
        (saved.content.as_str(), saved.changing.is_none()),
        ("best", true)
    );
}

/// The formatting is the server's: a message shows the tree it came with;
/// our edit shows as plain text until it is heard back with its own, and a
/// refused one puts the old tree back with the old text.
#[test]
fn a_message_shows_the_formatting_it_came_with_and_edits_bring_theirs() {
    let formatted = |text: &str| common::markup::format(text);
    let mut chat = chat_in_room();
    let ServerMsg::Message(mut first) = msg(1, "me", "m1") else {
        unreachable!()
    };
    first.content = "**bold**".into();
    first.formatted = formatted("**bold**");
    chat.apply(&ServerMsg::Message(first), 0.0);
    assert_eq!(line(&chat, 1).formatted, formatted("**bold**"));

    chat.edit_local("r", 1, "_it_", "e1");
    assert_eq!(line(&chat, 1).formatted, None, "ours, not yet formatted");
    chat.apply(
        &ServerMsg::Error {
            code: common::ErrorCode::NoSuchMessage,
            message: "no".into(),
            reference: Some("e1".into()),
        },
        0.0,
    );
    assert_eq!(line(&chat, 1).formatted, formatted("**bold**"), "put back");

    chat.edit_local("r", 1, "_it_", "e2");
    let ServerMsg::Event(mut edit) =
        ServerMsg::Event(change(2, "me", EntryKind::Edit, Some(1), "_it_"))
    else {
        unreachable!()
    };
    edit.formatted = formatted("_it_");
    chat.apply(&ServerMsg::Event(edit), 0.0);
    assert_eq!(line(&chat, 1).formatted, formatted("_it_"));
    chat.apply(
        &ServerMsg::Event(change(3, "me", EntryKind::Delete, Some(1), "")),
        0.0,
    );
    assert_eq!(line(&chat, 1).formatted, None, "deleted: nothing to draw");
}

#[test]
fn reactions_are_a_set_per_person_and_emoji() {
    let mut chat = chat_in_room();
    chat.apply(&msg(1, "bob", "b1"), 0.0);
    let mut seq = 1;
    let mut react = |chat: &mut Chat, who: &str, kind: EntryKind, emoji: &str| {
        seq += 1;
        chat.apply(
            &ServerMsg::Event(change(seq, who, kind, Some(1), emoji)),
            0.0,
        );
    };
    react(&mut chat, "bob", EntryKind::React, "👍");
    react(&mut chat, "bob", EntryKind::React, "👍");
    react(&mut chat, "me", EntryKind::React, "👍");
    react(&mut chat, "me", EntryKind::React, "🎉");
    react(&mut chat, "me", EntryKind::Unreact, "🎉");
    react(&mut chat, "me", EntryKind::Unreact, "🎉");
    let line = line(&chat, 1);
    assert_eq!(line.reactions.len(), 1, "🎉 went with its last reactor");
    let who: Vec<&str> = line.reactions[0]
        .users
        .iter()
        .map(|u| u.id.as_str())
        .collect();
    assert_eq!(who, ["bob", "me"]);
    assert!(line.reacted("👍", "me") && !line.reacted("🎉", "me"));
    assert_eq!(chat.rooms["r"].last_seq, 7);
}

#[test]
fn a_mention_of_me_counts_as_a_mention_elsewhere() {
    let mut chat = Chat::new(User {
        id: "me".into(),
        name: "Me".into(),
        username: Some("me_too".into()),
    });
    chat.apply(
        &ServerMsg::Joined {
            room: "r".into(),
            members: vec![],
            last_seq: 0,
            recovered: true,
            read_seq: 0,
            unread: 3,
            mentions: 1,
            topic: String::new(),
            moderator: false,
        },
        0.0,
    );
    assert_eq!((chat.rooms["r"].unread, chat.rooms["r"].mentions), (3, 1));
    let mut mention = chat_message(1);
    mention.content = "@Me_too can you look?".into();
    chat.apply(&ServerMsg::Message(mention), 0.0);
    chat.apply(&msg(2, "bob", "b2"), 0.0);
    assert_eq!((chat.rooms["r"].unread, chat.rooms["r"].mentions), (5, 2));
    assert_eq!(chat.total_unread(), 5);
    chat.open_room("r");
    assert_eq!((chat.rooms["r"].unread, chat.rooms["r"].mentions), (0, 0));
}

/// A direct conversation: every message in it is for this user, like a
/// mention (badge, title, notification), from the server's count at join
/// and live; a followed conversation counts without being on screen.
#[test]
fn every_message_of_a_direct_conversation_counts_like_a_mention() {
    let dm = common::direct_room("me", "bob");
    let mut chat = Chat::new(user("me"));
    chat.open_room("r");
    assert!(chat.follow(&dm), "followed once");
    assert!(!chat.follow(&dm));
    assert_eq!(
        chat.current.as_deref(),
        Some("r"),
        "following does not show it"
    );
    chat.apply(
        &ServerMsg::Joined {
            room: dm.clone(),
            members: vec![user("me"), user("bob")],
            last_seq: 2,
            recovered: true,
            read_seq: 0,
            unread: 2,
            // The server counts @mentions only.
            mentions: 0,
            topic: String::new(),
            moderator: false,
        },
        0.0,
    );
    assert_eq!((chat.rooms[&dm].unread, chat.rooms[&dm].mentions), (2, 2));
    let from = |who: &str, seq: u64| ChatMessage {
        room: dm.clone(),
        seq,
        user: user(who),
        content: "no name in it".into(),
        client_id: format!("c{seq}"),
        ..ChatMessage::default()
    };
    assert!(chat.is_for_me(&from("bob", 3)));
    assert!(!chat.is_for_me(&from("me", 3)), "not my own");
    chat.apply(&ServerMsg::Message(from("bob", 3)), 0.0);
    assert_eq!((chat.rooms[&dm].unread, chat.rooms[&dm].mentions), (3, 3));
    // In a room, only a mention is.
    let plain = ChatMessage {
        room: "elsewhere".into(),
        ..from("bob", 1)
    };
    assert!(!chat.is_for_me(&plain));
}

/// What notifies is the member's choice per room: everything, mentions
/// (a room's default), or nothing (a dot, no count, no title, no
/// notification). A choice made on another device arrives with the room
/// list and counts from then on; one made here counts at once.
#[test]
fn a_room_notifies_of_everything_mentions_or_nothing_as_chosen() {
    let mut chat = Chat::new(User {
        username: Some("maya".into()),
        ..user("me")
    });
    chat.open_room("elsewhere");
    assert!(chat.follow("r"));
    assert_eq!(chat.notify("r"), Notify::Mentions, "a room's default");
    let dm = common::direct_room("me", "bob");
    assert_eq!(chat.notify(&dm), Notify::All, "a direct conversation's");
    let said = |seq: u64, content: &str| ChatMessage {
        room: "r".into(),
        seq,
        user: user("bob"),
        content: content.into(),
        client_id: format!("c{seq}"),
        ..ChatMessage::default()
    };
    chat.apply(&ServerMsg::Message(said(1, "hello")), 0.0);
    chat.apply(&ServerMsg::Message(said(2, "@maya look")), 0.0);
    let badge = chat.badge("r");
    assert_eq!((badge.unread, badge.mentions, badge.muted), (2, 1, false));
    assert!(!chat.is_for_me(&said(3, "hello")) && chat.is_for_me(&said(3, "@maya")));

    // Muted here: a dot, out of the title, nothing notifies.
    chat.set_notify("r", Notify::Mute);
    let badge = chat.badge("r");
    assert_eq!((badge.unread, badge.mentions, badge.muted), (2, 0, true));
    assert_eq!(chat.total_unread(), 0);
    assert!(!chat.is_for_me(&said(3, "@maya")));
    chat.apply(&ServerMsg::Message(said(3, "@maya again")), 0.0);
    assert_eq!((chat.badge("r").unread, chat.badge("r").mentions), (3, 0));

    // Everything, chosen on another device: the list says so.
    chat.listed("r", 3, 2, Some(Notify::All));
    assert_eq!(chat.notify("r"), Notify::All);
    assert_eq!((chat.badge("r").unread, chat.badge("r").mentions), (3, 3));
    assert!(chat.is_for_me(&said(4, "plain")));
    assert_eq!(chat.total_unread(), 3);

    // Back to mentions: counted again from the messages at hand.
    chat.set_notify("r", Notify::Mentions);
    assert_eq!((chat.badge("r").unread, chat.badge("r").mentions), (3, 2));
    // The list of a device that has not chosen says nothing new.
    chat.listed("r", 3, 2, None);
    assert_eq!(chat.notify("r"), Notify::Mentions);
}

/// A topic change is a line of the log ("Alice set the topic to …"), in
/// seq order, once; it is never unread and never the message Up edits.
#[test]
fn a_topic_change_is_a_line_of_the_log_not_a_message() {
    let mut chat = chat_in_room();
    chat.open_room("elsewhere");
    let topic = ChatMessage {
        room: "r".into(),
        seq: 2,
        user: user("me"),
        content: "Friday dinner".into(),
        kind: EntryKind::Topic,
        client_id: "t".into(),
        ..ChatMessage::default()
    };
    chat.apply(&msg(1, "me", "a"), 0.0);
    chat.apply(&ServerMsg::Message(topic.clone()), 0.0);
    chat.apply(&ServerMsg::Message(topic), 0.0);
    chat.apply(&msg(3, "bob", "b"), 0.0);
    let lines = &chat.rooms["r"].lines;
    assert_eq!(seqs(&chat), [Some(1), Some(2), Some(3)], "once, in order");
    assert!(lines[1].topic && !lines[0].topic && !lines[2].topic);
    assert_eq!(lines[1].content, "Friday dinner");
    assert_eq!(chat.rooms["r"].topic, "Friday dinner");
    assert_eq!(chat.rooms["r"].unread, 1, "bob's message only");
    assert_eq!(chat.last_own_message("r"), Some(1), "not the topic");
}

/// Up arrow in an empty composer edits the last message of mine that is
/// still there.
#[test]
fn the_last_own_message_is_the_newest_not_deleted_one() {
    let mut chat = chat_in_room();
    assert_eq!(chat.last_own_message("r"), None);
    chat.apply(&msg(1, "me", "a"), 0.0);
    chat.apply(&msg(2, "me", "b"), 0.0);
    chat.apply(&msg(3, "bob", "c"), 0.0);
    assert_eq!(chat.last_own_message("r"), Some(2));
    chat.apply(
        &ServerMsg::Message(change(4, "me", EntryKind::Delete, Some(2), "")),
        0.0,
    );
    assert_eq!(chat.last_own_message("r"), Some(1));
}

fn joined_at(room: &str, last_seq: u64, read_seq: u64, unread: u32) -> ServerMsg {
    ServerMsg::Joined {
        room: room.into(),
        members: vec![],
        last_seq,
        recovered: true,
        read_seq,
        unread,
        mentions: 0,
        topic: String::new(),
        moderator: false,
    }
}

#[test]
fn new_marks_where_the_reading_stopped_until_the_room_is_left() {
    let mut chat = chat_in_room();
    for seq in 1..=3 {
        chat.apply(&msg(seq, "bob", &format!("b{seq}")), 0.0);
    }
    // Read to 1 elsewhere; two unread when the room is opened.
    chat.apply(
        &ServerMsg::Read {
            room: "r".into(),
            seq: 1,
        },
        0.0,
    );
    chat.open_room("r");
    assert_eq!(chat.first_new("r"), Some(2));
    // Reading on screen does not move it; more messages come below it.
    assert_eq!(chat.to_report(), Some(("r".into(), 3)));
    chat.apply(&msg(4, "bob", "b4"), 0.0);
    assert_eq!(chat.first_new("r"), Some(2));
    chat.open_room("r");
    assert_eq!(chat.first_new("r"), Some(2), "opening it again keeps it");
    // Away and back with nothing new: no divider.
    chat.apply(&joined_at("other", 0, 0, 0), 0.0);
    chat.open_room("other");
    chat.open_room("r");
    assert_eq!(chat.first_new("r"), None);
}

#[test]
fn after_a_reload_new_comes_from_the_first_joined() {
    let mut chat = Chat::new(user("me"));
    // Opened at once, before the server said anything of it.
    chat.open_room("r");
    assert_eq!(chat.first_new("r"), None);
    // The replay, then `joined`: read to 5 of 7.
    for seq in 4..=7 {
        chat.apply(
            &msg(seq, if seq == 6 { "me" } else { "bob" }, &format!("c{seq}")),
            0.0,
        );
    }
    chat.apply(&joined_at("r", 7, 5, 1), 0.0);
    assert_eq!(chat.first_new("r"), Some(7), "not my own message");
    // A reconnect's `joined` does not move it.
    chat.apply(&joined_at("r", 7, 7, 0), 0.0);
    assert_eq!(chat.first_new("r"), Some(7));
}

#[test]
fn new_is_not_placed_while_older_unread_history_is_not_here() {
    let mut chat = Chat::new(user("me"));
    chat.open_room("r");
    // A fresh join replays the newest: 11..=12 of 12, none of them read.
    for seq in 11..=12 {
        chat.apply(&msg(seq, "bob", &format!("c{seq}")), 0.0);
    }
    chat.apply(&joined_at("r", 12, 0, 12), 0.0);
    assert_eq!(chat.rooms["r"].new_after, Some(0));
    assert_eq!(
        chat.first_new("r"),
        None,
        "the first unread is seq 1, not here"
    );
    // Paged in back to the start: there it is.
    let older: Vec<ChatMessage> = (1..=10)
        .map(|seq| match msg(seq, "bob", &format!("c{seq}")) {
            ServerMsg::Message(m) => m,
            _ => unreachable!(),
        })
        .collect();
    chat.prepend("r", &older);
    assert_eq!(chat.first_new("r"), Some(1));
}

#[test]
fn new_starts_at_a_message_of_someone_else_still_there() {
    let mut chat = chat_in_room();
    for seq in 1..=5 {
        chat.apply(&msg(seq, "bob", &format!("b{seq}")), 0.0);
    }
    chat.open_room("r");
    let state = chat.rooms.get_mut("r").unwrap();
    state.lines[0].topic = true; // 1: a topic change
    state.lines[1].deleted = true; // 2: deleted
    state.lines[2].user = user("me"); // 3: mine
    assert_eq!(state.new_after, Some(0));
    assert_eq!(chat.first_new("r"), Some(4));
}
