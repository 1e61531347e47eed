//! Edits, deletes, replies and topics over the real socket: each change is
//! an entry of the room's log (`event`) with a seq of its own, acked like a
//! message, delivered in seq order, replayed on resume; only the author
//! edits, the author or a moderator deletes, and owners and moderators set
//! the topic.

use common::{ChatMessage, EntryKind, ErrorCode, ServerMsg};
use serde_json::json;

use crate::support::{Client, TestServer};

async fn acked(client: &mut Client, client_id: &str) -> u64 {
    match client
        .recv_where(|m| {
            matches!(m, ServerMsg::Ack { client_id: c, .. } if c == client_id)
                || matches!(m, ServerMsg::Error { reference: Some(c), .. } if c == client_id)
        })
        .await
    {
        ServerMsg::Ack { seq, .. } => seq,
        other => panic!("{client_id}: {other:?}"),
    }
}

async fn refused(client: &mut Client, client_id: &str) -> ErrorCode {
    match client
        .recv_where(|m| {
            matches!(m, ServerMsg::Error { reference: Some(c), .. } if c == client_id)
                || matches!(m, ServerMsg::Ack { client_id: c, .. } if c == client_id)
        })
        .await
    {
        ServerMsg::Error { code, .. } => code,
        other => panic!("{client_id}: expected a refusal, got {other:?}"),
    }
}

async fn event(client: &mut Client) -> ChatMessage {
    match client
        .recv_where(|m| matches!(m, ServerMsg::Event(_)))
        .await
    {
        ServerMsg::Event(e) => e,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn edits_deletes_replies_and_topics_are_entries_of_the_log() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let bob_session = server.sign_in("bob").await;
    let mut bob = server.connect(&bob_session).await;
    // Created by joining: Alice moderates it, and `joined` says so.
    assert!(matches!(
        alice.join("plans").await,
        ServerMsg::Joined {
            moderator: true,
            ..
        }
    ));
    assert!(matches!(
        bob.join("plans").await,
        ServerMsg::Joined {
            moderator: false,
            ..
        }
    ));

    alice.say("plans", "Meet at 5?", "a1").await;
    assert_eq!(acked(&mut alice, "a1").await, 1);
    bob.send_json(
        json!({"type":"send","room":"plans","content":"Make it 6","client_id":"b1","reply_to":1}),
    )
    .await;
    assert_eq!(acked(&mut bob, "b1").await, 2);
    let ServerMsg::Message(reply) = alice
        .recv_where(|m| matches!(m, ServerMsg::Message(m) if m.seq == 2))
        .await
    else {
        unreachable!()
    };
    assert_eq!(reply.reply_to, Some(1));

    // A reply to a message that is not there yet is refused.
    bob.send_json(
        json!({"type":"send","room":"plans","content":"?","client_id":"b0","reply_to":99}),
    )
    .await;
    assert_eq!(refused(&mut bob, "b0").await, ErrorCode::InvalidContent);

    // Bob fixes his own message: everyone gets the edit, with its own seq.
    bob.send_json(
        json!({"type":"edit","room":"plans","target":2,"content":"Make it 6:30","client_id":"b2"}),
    )
    .await;
    assert_eq!(acked(&mut bob, "b2").await, 3);
    let edit = event(&mut alice).await;
    assert_eq!(
        (edit.seq, edit.kind, edit.target, edit.content.as_str()),
        (3, EntryKind::Edit, Some(2), "Make it 6:30")
    );
    assert_eq!(edit.user.name, "bob");

    // Not his to change: refused with a code, nothing stored, still connected.
    bob.send_json(
        json!({"type":"edit","room":"plans","target":1,"content":"hacked","client_id":"b3"}),
    )
    .await;
    assert_eq!(refused(&mut bob, "b3").await, ErrorCode::NoSuchMessage);
    bob.send_json(json!({"type":"delete","room":"plans","target":1,"client_id":"b4"}))
        .await;
    assert_eq!(refused(&mut bob, "b4").await, ErrorCode::NoSuchMessage);
    bob.send_json(json!({"type":"set_topic","room":"plans","topic":"mine","client_id":"b5"}))
        .await;
    assert_eq!(refused(&mut bob, "b5").await, ErrorCode::Forbidden);
    bob.send_json(json!({"type":"edit","room":"plans","target":2,"content":"","client_id":"b6"}))
        .await;
    assert_eq!(refused(&mut bob, "b6").await, ErrorCode::InvalidContent);

    // Reactions: an emoji, toggled; anything else is refused.
    bob.send_json(
        json!({"type":"react","room":"plans","target":1,"emoji":"👍","on":true,"client_id":"b7"}),
    )
    .await;
    assert_eq!(acked(&mut bob, "b7").await, 4);
    let react = event(&mut alice).await;
    assert_eq!(
        (react.kind, react.target, react.content.as_str()),
        (EntryKind::React, Some(1), "👍")
    );
    bob.send_json(
        json!({"type":"react","room":"plans","target":1,"emoji":"<b>","on":true,"client_id":"b8"}),
    )
    .await;
    assert_eq!(refused(&mut bob, "b8").await, ErrorCode::InvalidContent);
    bob.send_json(
        json!({"type":"react","room":"plans","target":1,"emoji":"👍","on":false,"client_id":"b9"}),
    )
    .await;
    assert_eq!(acked(&mut bob, "b9").await, 5);
    assert_eq!(event(&mut alice).await.kind, EntryKind::Unreact);
    bob.send_json(
        json!({"type":"react","room":"plans","target":1,"emoji":"🎉","on":true,"client_id":"b10"}),
    )
    .await;
    assert_eq!(acked(&mut bob, "b10").await, 6);

    // Alice created the room: she deletes Bob's message and sets the topic.
    alice
        .send_json(json!({"type":"delete","room":"plans","target":2,"client_id":"a2"}))
        .await;
    assert_eq!(acked(&mut alice, "a2").await, 7);
    let delete = event(&mut bob).await;
    assert_eq!(
        (delete.seq, delete.kind, delete.target),
        (7, EntryKind::Delete, Some(2))
    );
    alice
        .send_json(
            json!({"type":"set_topic","room":"plans","topic":"Friday dinner","client_id":"a3"}),
        )
        .await;
    assert_eq!(acked(&mut alice, "a3").await, 8);
    let topic = event(&mut bob).await;
    assert_eq!(
        (topic.kind, topic.content.as_str()),
        (EntryKind::Topic, "Friday dinner")
    );

    // A newcomer gets the topic, and the history as it is now: the deleted
    // message without its text, the edit's text gone with it.
    let mut carol = server.client("carol").await;
    let ServerMsg::Joined {
        topic, last_seq, ..
    } = carol.join("plans").await
    else {
        unreachable!()
    };
    assert_eq!((topic.as_str(), last_seq), ("Friday dinner", 8));
    let page: Vec<ChatMessage> = reqwest::Client::new()
        .get(server.url("/api/rooms/plans/messages?limit=50"))
        .bearer_auth(&bob_session.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6, 7, 8]
    );
    assert_eq!(page[0].reactions.len(), 1, "🎉 stays, 👍 was taken back");
    assert_eq!(page[0].reactions[0].emoji, "🎉");
    assert_eq!(page[0].reactions[0].users[0].name, "bob");
    assert!(page[1].deleted && page[1].content.is_empty());
    assert_eq!(page[1].reply_to, Some(1), "still a reply, without text");
    assert_eq!(page[2].content, "", "the edit's text is erased too");

    // Bob goes away; Alice edits her message; Bob resumes and gets the
    // edit as part of what he missed, before `joined`.
    drop(bob);
    alice
        .send_json(
            json!({"type":"edit","room":"plans","target":1,"content":"Meet at 7","client_id":"a4"}),
        )
        .await;
    assert_eq!(acked(&mut alice, "a4").await, 9);
    let mut bob = server.connect(&bob_session).await;
    bob.send_json(json!({"type":"join","room":"plans","since":8}))
        .await;
    let missed = event(&mut bob).await;
    assert_eq!(
        (
            missed.seq,
            missed.kind,
            missed.target,
            missed.content.as_str()
        ),
        (9, EntryKind::Edit, Some(1), "Meet at 7")
    );
    assert!(matches!(
        bob.recv().await,
        ServerMsg::Joined {
            last_seq: 9,
            recovered: true,
            ..
        }
    ));
}

/// `GET /api/search`: every word as a prefix, newest first, in the rooms
/// the caller may read; paged with `next`; a query with no words is a
/// `400 invalid_query`, and query syntax is just words.
/// A reaction is any one emoji (not a short list), kept in its full form:
/// "❤" without its variation selector is the same reaction as "❤️". Text,
/// two emoji or a lone skin-tone modifier is refused, and the connection
/// goes on. The picker's data is one request away, compressed.
#[tokio::test]
async fn any_one_emoji_is_a_reaction_in_its_full_form() {
    let server = TestServer::start().await;
    let alice_session = server.sign_in("alice").await;
    let mut alice = server.connect(&alice_session).await;
    let mut bob = server.client("bob").await;
    alice.join("crabs").await;
    bob.join("crabs").await;
    alice.say("crabs", "Rust 2026 is out", "a1").await;
    assert_eq!(acked(&mut alice, "a1").await, 1);
    let react = |emoji: &str, id: &str| json!({"type":"react","room":"crabs","target":1,"emoji":emoji,"on":true,"client_id":id});
    for (emoji, stored, id) in [
        ("🦀", "🦀", "b1"),
        ("👍🏽", "👍🏽", "b2"),
        ("👩‍💻", "👩‍💻", "b3"),
        ("\u{2764}", "\u{2764}\u{fe0f}", "b4"),
    ] {
        bob.send_json(react(emoji, id)).await;
        acked(&mut bob, id).await;
        let seen = event(&mut alice).await;
        assert_eq!(
            (seen.kind, seen.content.as_str()),
            (EntryKind::React, stored)
        );
    }
    for (not, id) in [
        ("ok", "b5"),
        ("👍👍", "b6"),
        ("\u{1f3fd}", "b7"),
        (":crab:", "b8"),
    ] {
        bob.send_json(react(not, id)).await;
        assert_eq!(
            refused(&mut bob, id).await,
            ErrorCode::InvalidContent,
            "{not}"
        );
    }
    // The history has them, once each, under the full form.
    let url = server.url("/api/rooms/crabs/messages");
    let page: Vec<ChatMessage> = crate::support::get_json(&url, &alice_session.token).await;
    let mut emoji: Vec<&str> = page[0].reactions.iter().map(|r| r.emoji.as_str()).collect();
    emoji.sort_unstable();
    let mut want = vec!["🦀", "👍🏽", "👩‍💻", "\u{2764}\u{fe0f}"];
    want.sort_unstable();
    assert_eq!(emoji, want);

    let catalog = reqwest::Client::new()
        .get(server.url("/api/emoji"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(catalog.status(), 200);
    assert_eq!(catalog.headers()["content-encoding"], "gzip");
    assert!(
        catalog.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let size = catalog.bytes().await.unwrap().len();
    assert!((10_000..60_000).contains(&size), "{size} bytes gzipped");
}

#[tokio::test]
async fn search_finds_messages_in_rooms_you_may_read() {
    let server = TestServer::start().await;
    let ann = server.sign_up("ann").await;
    let bob = server.sign_up("bob").await;
    let (status, _) = server
        .call(
            reqwest::Method::POST,
            "/api/rooms",
            Some(&bob.token),
            Some(json!({"name": "secret", "visibility": "private"})),
        )
        .await;
    assert_eq!(status, 201);
    let mut a = server.connect(&ann).await;
    let mut b = server.connect(&bob).await;
    a.join("ops").await;
    b.join("ops").await;
    b.join("secret").await;
    for (by_ann, room, text, id) in [
        (true, "ops", "The deployment failed at noon", "s1"),
        (false, "ops", "deploys are failing again", "s2"),
        (false, "ops", "lunch?", "s3"),
        (false, "secret", "deployment secrets", "s4"),
    ] {
        let client = if by_ann { &mut a } else { &mut b };
        client.say(room, text, id).await;
        acked(client, id).await;
    }
    let search = |token: &str, query: &str| {
        let (token, query) = (token.to_owned(), query.to_owned());
        let url = server.url(&format!("/api/search?{query}"));
        async move {
            let response = reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let texts = |body: &serde_json::Value| -> Vec<String> {
        body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, found) = search(&ann.token, "q=deploy%20fail").await;
    assert_eq!(status, 200);
    assert_eq!(
        texts(&found),
        ["deploys are failing again", "The deployment failed at noon"],
        "newest first; not Bob's private room"
    );
    let (_, found) = search(&bob.token, "q=deploy").await;
    assert_eq!(texts(&found).len(), 3, "Bob reads his private room");
    let (_, first) = search(&bob.token, "q=deploy&limit=2").await;
    assert_eq!(
        texts(&first),
        ["deployment secrets", "deploys are failing again"]
    );
    let next = first["next"].as_str().expect("a next page").to_owned();
    let (_, second) = search(&bob.token, &format!("q=deploy&limit=2&before={next}")).await;
    assert_eq!(texts(&second), ["The deployment failed at noon"]);
    assert!(second.get("next").is_none());
    let (_, in_room) = search(&bob.token, "q=deploy&room=Secret").await;
    assert_eq!(texts(&in_room), ["deployment secrets"]);
    let (_, syntax) = search(&ann.token, "q=%22*)%20OR%20NEAR(lunch").await;
    assert_eq!(texts(&syntax), Vec::<String>::new(), "words, never syntax");
    let (status, refused) = search(&ann.token, "q=%20%3F%20").await;
    assert_eq!(status, 400);
    assert_eq!(refused["error"], "invalid_query");
}

/// Direct conversations: one per pair whoever starts it; private to the
/// two, with nobody to moderate or invite; listed for the other person
/// once it has a message, under the starter's name; their names reserved.
#[tokio::test]
async fn a_direct_conversation_is_for_two() {
    let server = TestServer::start_with(|config| config.allow_guests = true).await;
    let ann = server.sign_up("ann").await;
    let bob = server.sign_up("bob").await;
    let carol = server.sign_up("carol").await;
    let start = |token: String, username: &'static str| {
        let server = &server;
        async move {
            server
                .call(
                    reqwest::Method::POST,
                    "/api/dms",
                    Some(&token),
                    Some(json!({ "username": username })),
                )
                .await
        }
    };
    let (status, dm) = start(ann.token.clone(), "Bob").await;
    assert_eq!(status, 200, "{dm}");
    let room = dm["name"].as_str().unwrap().to_owned();
    assert!(room.starts_with("dm-"));
    assert_eq!(dm["visibility"], "direct");
    assert_eq!(dm["with"]["username"], "bob");
    let (_, again) = start(bob.token.clone(), "ann").await;
    assert_eq!(again["name"], room.as_str(), "one conversation per pair");
    assert_eq!(again["with"]["username"], "ann");
    assert_eq!(start(ann.token.clone(), "ann").await.0, 400);
    assert_eq!(start(ann.token.clone(), "nobody").await.0, 404);

    let listed = |token: String| {
        let server = &server;
        let room = room.clone();
        async move {
            let (_, list) = server
                .call(reqwest::Method::GET, "/api/rooms", Some(&token), None)
                .await;
            list.as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == room.as_str())
                .cloned()
        }
    };
    let carol_list = listed(carol.token.clone()).await;
    assert!(carol_list.is_none(), "not listed to others");

    // Bob is connected, in no room: he hears of the conversation when its
    // first message is written, not at his next look at the room list.
    let mut b = server.connect(&bob).await;
    let mut a = server.connect(&ann).await;
    assert!(matches!(
        a.join(&room).await,
        ServerMsg::Joined {
            moderator: false,
            ..
        }
    ));
    a.say(&room, "psst", "p1").await;
    acked(&mut a, "p1").await;
    b.recv_where(|m| matches!(m, ServerMsg::RoomsChanged)).await;
    let for_bob = listed(bob.token.clone())
        .await
        .expect("listed once it has a message");
    assert_eq!(for_bob["with"]["username"], "ann");

    // Nobody else gets in, or is let in; nobody moderates.
    let mut c = server.connect(&carol).await;
    c.send_json(json!({"type":"join","room":room,"since":null}))
        .await;
    assert_eq!(refused(&mut c, &room).await, ErrorCode::Forbidden);
    let (status, _) = server
        .call(
            reqwest::Method::POST,
            &format!("/api/rooms/{room}/members"),
            Some(&ann.token),
            Some(json!({"username": "carol"})),
        )
        .await;
    assert_eq!(status, 403);
    a.send_json(json!({"type":"set_topic","room":room,"topic":"x","client_id":"t1"}))
        .await;
    assert_eq!(refused(&mut a, "t1").await, ErrorCode::Forbidden);

    // Conversation names are the server's to give.
    let (status, _) = server
        .call(
            reqwest::Method::POST,
            "/api/rooms",
            Some(&carol.token),
            Some(json!({"name": "dm-0123", "visibility": "public"})),
        )
        .await;
    assert_eq!(status, 400);
    c.send_json(json!({"type":"join","room":"dm-0123","since":null}))
        .await;
    assert_eq!(refused(&mut c, "dm-0123").await, ErrorCode::Forbidden);
    let guest = server.sign_in("visitor").await;
    assert_eq!(start(guest.token.clone(), "ann").await.0, 403);
}

/// Search is the most expensive read: one token searching as fast as it
/// can stops at its quota (`429` with `Retry-After`), and another person's
/// search, and their chat, go on as usual.
#[tokio::test]
async fn a_search_flood_is_limited_and_a_bystander_is_unaffected() {
    let server = TestServer::start_with(|c| c.api_per_token_per_minute = 15).await;
    let flooder = server.sign_in("flooder").await;
    let bystander = server.sign_in("bystander").await;
    let mut chat = server.connect(&bystander).await;
    chat.join("ops").await;
    chat.say("ops", "deploy finished", "d1").await;
    acked(&mut chat, "d1").await;
    let search = |token: String| {
        let url = server.url("/api/search?q=deploy");
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    let mut refused = 0;
    for _ in 0..40 {
        let response = search(flooder.token.clone()).await;
        if response.status() == 429 {
            assert!(response.headers().contains_key("retry-after"));
            refused += 1;
        }
    }
    assert!(
        refused >= 20,
        "past its quota of 15: {refused} refused of 40"
    );
    let response = search(bystander.token.clone()).await;
    assert_eq!(response.status(), 200, "another token is not limited");
    let found: common::SearchResults = response.json().await.unwrap();
    assert_eq!(found.messages.len(), 1);
    chat.say("ops", "still here", "d2").await;
    assert_eq!(acked(&mut chat, "d2").await, 2, "and chat goes on");
}

/// The server formats: a message's (and an edit's) Markdown arrives as a
/// tree, in live delivery, in history and in a replay after a reconnect,
/// exactly as `common::markup::format` makes it; plain text carries none.
/// Raw HTML stays text, a script link is no link.
#[tokio::test]
async fn messages_come_formatted_by_the_server() {
    use common::markup::{Block, Inline, format};
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let bob_session = server.sign_in("bob").await;
    let mut bob = server.connect(&bob_session).await;
    alice.join("notes").await;
    bob.join("notes").await;

    let formatted_text = "**Ship** it: `cargo test`\n\n> <b>not html</b> [x](javascript:alert(1))";
    alice.say("notes", formatted_text, "a1").await;
    alice.say("notes", "just words", "a2").await;
    let live = |seq: u64| move |m: &ServerMsg| matches!(m, ServerMsg::Message(m) if m.seq == seq);
    let ServerMsg::Message(first) = bob.recv_where(live(1)).await else {
        unreachable!()
    };
    let tree = first.formatted.clone().expect("formatted");
    assert_eq!(Some(tree.clone()), format(formatted_text));
    assert_eq!(
        tree[0],
        Block::Para(vec![
            Inline::Strong(vec![Inline::Text("Ship".into())]),
            Inline::Text(" it: ".into()),
            Inline::Code("cargo test".into()),
        ])
    );
    let quote = serde_json::to_string(&tree[1]).unwrap();
    assert!(quote.contains(r#"{"text":"<b>"}"#), "{quote}");
    assert!(!quote.contains("javascript"), "no script link: {quote}");
    let ServerMsg::Message(plain) = bob.recv_where(live(2)).await else {
        unreachable!()
    };
    assert_eq!(plain.formatted, None, "plain text is sent as it is");

    // An edit carries its own tree, and history shows the message as now.
    alice
        .send_json(json!({"type":"edit","room":"notes","target":2,"content":"_just_ words","client_id":"a3"}))
        .await;
    let edit = event(&mut bob).await;
    assert_eq!(edit.formatted, format("_just_ words"));
    let history: Vec<ChatMessage> = crate::support::get_json(
        &server.url("/api/rooms/notes/messages?limit=10"),
        &bob_session.token,
    )
    .await;
    let by_seq = |seq: u64| history.iter().find(|m| m.seq == seq).unwrap();
    assert_eq!(by_seq(1).formatted, format(formatted_text));
    assert_eq!(by_seq(2).formatted, format("_just_ words"));
    assert!(by_seq(2).formatted.is_some());

    // A replay after a reconnect: the same trees.
    let mut again = server.connect(&bob_session).await;
    again
        .send_json(json!({"type":"join","room":"notes","since":0}))
        .await;
    let ServerMsg::Message(replayed) = again.recv_where(live(1)).await else {
        unreachable!()
    };
    assert_eq!(replayed.formatted, format(formatted_text));
}
