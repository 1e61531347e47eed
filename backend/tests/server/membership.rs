//! Rooms belong to the account, not to a browser: joining a public room
//! makes you a member, `GET /api/rooms` lists your rooms with what is
//! unread in them on any device, and leaving is for every device.

use common::{Notify, Role, RoomSummary, ServerMsg};

use crate::support::{TestServer, get_json};

fn find<'a>(rooms: &'a [RoomSummary], name: &str) -> Option<&'a RoomSummary> {
    rooms.iter().find(|r| r.name == name)
}

#[tokio::test]
async fn joining_makes_a_room_yours_on_every_device_and_leaving_is_for_all_of_them() {
    let server = TestServer::start().await;
    let alice = server.sign_up("alice").await;
    let mut laptop = server.connect(&alice).await;
    let mut phone = server.connect(&alice).await;
    phone.join("general").await;

    // Joining on the laptop makes "design" hers: the phone hears of it.
    laptop.join("design").await;
    phone
        .recv_where(|m| matches!(m, ServerMsg::RoomsChanged))
        .await;
    let mut bob = server.client("bob").await;
    bob.join("design").await;
    for i in 0..3 {
        bob.say("design", &format!("design note {i}"), &format!("d{i}"))
            .await;
    }
    // The laptop reads one; a new device knows she has two unread.
    laptop
        .recv_where(|m| matches!(m, ServerMsg::Message(m) if m.seq == 3))
        .await;
    laptop
        .send_json(serde_json::json!({"type":"read","room":"design","seq":1}))
        .await;
    let mut listed = Vec::new();
    for _ in 0..50 {
        listed = get_json::<Vec<RoomSummary>>(&server.url("/api/rooms"), &alice.token).await;
        if find(&listed, "design").is_some_and(|r| r.unread == 2) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let design = find(&listed, "design").expect("listed");
    assert_eq!(design.role, Some(Role::Member), "{listed:?}");
    assert_eq!((design.unread, design.mentions), (2, 0), "{listed:?}");
    assert_eq!(find(&listed, "general").unwrap().role, Some(Role::Member));
    // Joining again writes nothing and says nothing.
    phone.join("design").await;

    // Leaving on the phone is leaving: the laptop leaves too, without a
    // "removed" notice, and the room is no longer hers.
    let path = format!("/api/rooms/design/members/{}", alice.user.id);
    let (status, body) = server
        .call(reqwest::Method::DELETE, &path, Some(&alice.token), None)
        .await;
    assert_eq!(status, 204, "{body}");
    let left = laptop
        .recv_where(|m| matches!(m, ServerMsg::Left { room, .. } if room == "design"))
        .await;
    assert!(
        matches!(left, ServerMsg::Left { reason: None, .. }),
        "{left:?}"
    );
    laptop
        .recv_where(|m| matches!(m, ServerMsg::RoomsChanged))
        .await;
    let listed: Vec<RoomSummary> = get_json(&server.url("/api/rooms"), &alice.token).await;
    assert_eq!(
        find(&listed, "design").and_then(|r| r.role),
        None,
        "{listed:?}"
    );
    // Bob, still there, sees her go.
    bob.recv_where(|m| matches!(m, ServerMsg::UserLeft { user, .. } if user.id == alice.user.id))
        .await;
}

/// What of a room notifies a member is kept for the account: a choice on
/// one device is in every device's room list, and each device is told to
/// list again. A direct conversation notifies of everything until its
/// member says otherwise; a room, of mentions. Only members choose.
#[tokio::test]
async fn what_notifies_is_kept_for_the_account_and_told_to_every_device() {
    let server = TestServer::start().await;
    let alice = server.sign_up("alice").await;
    let bob = server.sign_up("bob").await;
    let mut laptop = server.connect(&alice).await;
    let mut phone = server.connect(&alice).await;
    laptop.join("design").await;
    phone.join("design").await;
    let (status, dm) = server
        .call(
            reqwest::Method::POST,
            "/api/dms",
            Some(&alice.token),
            Some(serde_json::json!({ "username": "bob" })),
        )
        .await;
    assert_eq!(status, 200, "{dm}");
    let dm = dm["name"].as_str().unwrap().to_owned();
    let listed: Vec<RoomSummary> = get_json(&server.url("/api/rooms"), &alice.token).await;
    assert_eq!(
        find(&listed, "design").unwrap().notify,
        Some(Notify::Mentions)
    );
    assert_eq!(find(&listed, &dm).unwrap().notify, Some(Notify::All));

    let set = |room: String, body: serde_json::Value, token: String| {
        let server = &server;
        async move {
            let path = format!("/api/rooms/{room}/notifications");
            server
                .call(reqwest::Method::PUT, &path, Some(&token), Some(body))
                .await
        }
    };
    let mute = serde_json::json!({ "notify": "mute" });
    let (status, body) = set("design".into(), mute.clone(), alice.token.clone()).await;
    assert_eq!(status, 204, "{body}");
    phone
        .recv_where(|m| matches!(m, ServerMsg::RoomsChanged))
        .await;
    laptop
        .recv_where(|m| matches!(m, ServerMsg::RoomsChanged))
        .await;
    let (status, body) = set(
        dm.clone(),
        serde_json::json!({ "notify": "mentions" }),
        alice.token.clone(),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let listed: Vec<RoomSummary> = get_json(&server.url("/api/rooms"), &alice.token).await;
    assert_eq!(find(&listed, "design").unwrap().notify, Some(Notify::Mute));
    assert_eq!(find(&listed, &dm).unwrap().notify, Some(Notify::Mentions));

    // Not a member: not yours to choose. Nonsense: a clear 400.
    let carol = server.sign_up("carol").await;
    let (status, body) = set("design".into(), mute.clone(), carol.token.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("not_a_member")),
        "{body}"
    );
    let (status, body) = set(dm.clone(), mute, carol.token.clone()).await;
    assert_eq!(status, 404, "someone else's conversation: {body}");
    let (status, body) = set(
        "design".into(),
        serde_json::json!({ "notify": "loudly" }),
        alice.token.clone(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // Another member's choice is theirs alone. (Bob sees the
    // conversation once there is something in it.)
    laptop.join(&dm).await;
    laptop.say(&dm, "hello Bob", "dm-1").await;
    laptop
        .recv_where(|m| matches!(m, ServerMsg::Message(m) if m.room == dm))
        .await;
    let listed: Vec<RoomSummary> = get_json(&server.url("/api/rooms"), &bob.token).await;
    let for_bob = find(&listed, &dm).unwrap_or_else(|| panic!("{dm} in {listed:?}"));
    assert_eq!(for_bob.notify, Some(Notify::All));
}

/// An invitation is an invitation until it is taken up: listed with who
/// invited, taken up by joining (every device of the invitee hears of it),
/// declined by leaving. A room one joined is not an invitation.
#[tokio::test]
async fn an_invitation_says_who_invited_until_it_is_taken_up_or_declined() {
    let server = TestServer::start().await;
    let alice = server.sign_up("alice").await;
    let bob = server.sign_up("bob").await;
    let mut bob_phone = server.connect(&bob).await;
    let mut bob_laptop = server.connect(&bob).await;
    let invite = |room: &'static str| {
        let (server, token) = (&server, alice.token.clone());
        async move {
            let (status, body) = server
                .call(
                    reqwest::Method::POST,
                    "/api/rooms",
                    Some(&token),
                    Some(serde_json::json!({"name": room, "visibility": "private"})),
                )
                .await;
            assert_eq!(status, 201, "{body}");
            let (status, body) = server
                .call(
                    reqwest::Method::POST,
                    &format!("/api/rooms/{room}/members"),
                    Some(&token),
                    Some(serde_json::json!({"username": "bob"})),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
    };
    invite("plans").await;
    invite("gifts").await;
    for _ in 0..2 {
        bob_laptop
            .recv_where(|m| matches!(m, ServerMsg::RoomsChanged))
            .await;
    }
    let listed: Vec<RoomSummary> = get_json(&server.url("/api/rooms"), &bob.token).await;
    for room in ["plans", "gifts"] {
        let summary = find(&listed, room).expect("listed");
        let by = summary.invited_by.as_ref().expect("an invitation");
        assert_eq!(
            (by.id.as_str(), by.username.as_deref()),
            (alice.user.id.as_str(), Some("alice"))
        );
        assert_eq!(summary.role, Some(Role::Member));
    }
    // Alice's own list has no invitation in it; her member list says Bob
    // is invited (not a member who is away).
    let hers: Vec<RoomSummary> = get_json(&server.url("/api/rooms"), &alice.token).await;
    assert!(hers.iter().all(|r| r.invited_by.is_none()), "{hers:?}");
    let invited = async || {
        let members: Vec<common::RoomMember> =
            get_json(&server.url("/api/rooms/plans/members"), &alice.token).await;
        let of = |id: &str| members.iter().find(|m| m.user.id == id).map(|m| m.invited);
        (of(&alice.user.id), of(&bob.user.id))
    };
    assert_eq!(invited().await, (Some(false), Some(true)));

    // Joining on the phone takes "plans" up; the laptop hears of it.
    bob_phone.join("plans").await;
    bob_laptop
        .recv_where(|m| matches!(m, ServerMsg::RoomsChanged))
        .await;
    let listed: Vec<RoomSummary> = get_json(&server.url("/api/rooms"), &bob.token).await;
    let plans = find(&listed, "plans").unwrap();
    assert_eq!(
        (plans.role, plans.invited_by.as_ref()),
        (Some(Role::Member), None)
    );
    assert_eq!(invited().await, (Some(false), Some(false)), "a member now");
    // Joining again changes nothing and tells nobody.
    bob_phone.join("plans").await;
    bob_laptop
        .expect_silence(std::time::Duration::from_millis(200))
        .await;

    // Declining "gifts" is leaving it: gone from his list.
    let path = format!("/api/rooms/gifts/members/{}", bob.user.id);
    let (status, _) = server
        .call(reqwest::Method::DELETE, &path, Some(&bob.token), None)
        .await;
    assert_eq!(status, 204);
    let listed: Vec<RoomSummary> = get_json(&server.url("/api/rooms"), &bob.token).await;
    assert!(find(&listed, "gifts").is_none(), "{listed:?}");
    let members: Vec<common::RoomMember> =
        get_json(&server.url("/api/rooms/gifts/members"), &alice.token).await;
    assert!(
        members.iter().all(|m| m.user.id != bob.user.id),
        "{members:?}"
    );
}

/// A draft is kept for the account: typed on one device, listed on another;
/// emptied, gone; only a member's, only as long as a message.
#[tokio::test]
async fn a_draft_follows_the_account_to_another_device() {
    let server = TestServer::start().await;
    let alice = server.sign_up("alice").await;
    let mut laptop = server.connect(&alice).await;
    laptop.join("plans").await;
    let put = |room: &'static str, text: String| {
        let (server, token) = (&server, alice.token.clone());
        async move {
            server
                .call(
                    reqwest::Method::PUT,
                    &format!("/api/rooms/{room}/draft"),
                    Some(&token),
                    Some(serde_json::json!({ "text": text })),
                )
                .await
        }
    };
    let draft_of = || async {
        let listed: Vec<RoomSummary> = get_json(&server.url("/api/rooms"), &alice.token).await;
        find(&listed, "plans").and_then(|r| r.draft.clone())
    };
    assert_eq!(draft_of().await, None);
    let (status, body) = put("plans", "half a thought ✍".into()).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(draft_of().await.as_deref(), Some("half a thought ✍"));
    let (status, body) = put("plans", "x".repeat(4097)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_content"))
    );
    assert_eq!(
        draft_of().await.as_deref(),
        Some("half a thought ✍"),
        "kept"
    );
    let (status, body) = put("elsewhere", "hello".into()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("not_a_member"))
    );
    let (status, _) = put("plans", String::new()).await;
    assert_eq!(status, 204);
    assert_eq!(draft_of().await, None, "sent or emptied: gone");
}

/// A device that was away while its user left a public room (or was
/// removed from it) follows on reconnecting: resuming the room answers
/// `left`, as if it had been there, and the room stays not theirs. Only a
/// fresh join brings them back. Someone who never left (a reader from
/// before rooms had members) still becomes a member by resuming.
#[tokio::test]
async fn a_device_that_was_away_when_its_user_left_does_not_rejoin_by_resuming() {
    let server = TestServer::start().await;
    let carol = server.sign_up("carol").await;
    let alice = server.sign_up("alice").await;
    let bob = server.sign_up("bob").await;
    // Carol owns "lobby", public; Alice (two devices) and Bob are in it.
    let created = serde_json::json!({"name":"lobby","visibility":"public"});
    let (status, body) = server
        .call(
            reqwest::Method::POST,
            "/api/rooms",
            Some(&carol.token),
            Some(created),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mut owner = server.connect(&carol).await;
    let mut laptop = server.connect(&alice).await;
    let mut phone = server.connect(&alice).await;
    let mut bob_phone = server.connect(&bob).await;
    for client in [&mut owner, &mut laptop, &mut phone, &mut bob_phone] {
        client.join("lobby").await;
    }
    owner.say("lobby", "hello", "h1").await;
    for client in [&mut phone, &mut bob_phone] {
        client
            .recv_where(|m| matches!(m, ServerMsg::Message(m) if m.seq == 1))
            .await;
    }

    // The phones go away (a tunnel). Meanwhile Alice leaves "lobby" on her
    // laptop, Carol removes Bob, and the room goes on.
    drop(phone);
    drop(bob_phone);
    for (user, token) in [(&alice.user.id, &alice.token), (&bob.user.id, &carol.token)] {
        let path = format!("/api/rooms/lobby/members/{user}");
        let (status, body) = server
            .call(reqwest::Method::DELETE, &path, Some(token), None)
            .await;
        assert_eq!(status, 204, "{body}");
    }
    laptop
        .recv_where(|m| matches!(m, ServerMsg::Left { room, .. } if room == "lobby"))
        .await;
    owner.say("lobby", "after", "h2").await;
    owner
        .recv_where(|m| matches!(m, ServerMsg::Ack { seq: 2, .. }))
        .await;

    // Back: each phone resumes "lobby" from seq 1, and is told it left
    // (Bob: removed), with no history and no `joined`.
    let resume = serde_json::json!({"type":"join","room":"lobby","since":1});
    for (session, reason) in [(&alice, None), (&bob, Some("removed"))] {
        let mut phone = server.connect(session).await;
        phone.send_json(resume.clone()).await;
        match phone.recv().await {
            ServerMsg::Left { room, reason: why } => {
                assert_eq!(room, "lobby");
                assert_eq!(why.as_deref(), reason);
            }
            other => panic!("{} resumed into the room: {other:?}", session.user.name),
        }
        let listed: Vec<RoomSummary> = get_json(&server.url("/api/rooms"), &session.token).await;
        assert_eq!(
            find(&listed, "lobby").and_then(|r| r.role),
            None,
            "{listed:?}"
        );
    }
    // Nobody came back: whoever the room saw enter on the way in (the
    // check is made once in the room, so a removal racing it cannot slip
    // through) it saw leave again, and nothing else.
    let mut present: i32 = 0;
    let quiet = tokio::time::Instant::now() + std::time::Duration::from_millis(300);
    while let Ok(frame) = tokio::time::timeout_at(quiet, owner.recv()).await {
        match frame {
            ServerMsg::UserJoined { .. } => present += 1,
            ServerMsg::UserLeft { .. } => present -= 1,
            other => panic!("the room heard {other:?}"),
        }
    }
    assert_eq!(present, 0, "someone stayed");

    // A fresh join is coming back: a member again, and a later resume (on
    // the other device) works as ever.
    laptop.join("lobby").await;
    let listed: Vec<RoomSummary> = get_json(&server.url("/api/rooms"), &alice.token).await;
    assert_eq!(find(&listed, "lobby").unwrap().role, Some(Role::Member));
    let mut phone = server.connect(&alice).await;
    phone.send_json(resume).await;
    phone
        .recv_where(|m| matches!(m, ServerMsg::Joined { room, .. } if room == "lobby"))
        .await;

    // Dan read "lobby" before rooms had members (no membership, no
    // departure): resuming makes him one, as it always did.
    let dan = server.sign_up("dan").await;
    let mut dan_phone = server.connect(&dan).await;
    dan_phone
        .send_json(serde_json::json!({"type":"join","room":"lobby","since":2}))
        .await;
    dan_phone
        .recv_where(|m| matches!(m, ServerMsg::Joined { room, .. } if room == "lobby"))
        .await;
    let listed: Vec<RoomSummary> = get_json(&server.url("/api/rooms"), &dan.token).await;
    assert_eq!(find(&listed, "lobby").unwrap().role, Some(Role::Member));
}
