//! Membership changes racing joins (and a rename racing sends), raced
//! hundreds of times with jitter on either side, on both stores where the
//! store's timing matters. Each join trial ends by asking the joining
//! socket to post in the room: an `ack` there means it is in a room its
//! user is not a member of.

use std::time::Duration;

use common::{ErrorCode, RoomSummary, ServerMsg};
use reqwest::Method;
use serde_json::json;

use crate::support::{Client, TestServer, get_json, racing};

/// Two delays of up to 4 ms, to shift the race either way.
fn jitter() -> (Duration, Duration) {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (
        Duration::from_micros(rng.gen_range(0..4_000)),
        Duration::from_micros(rng.gen_range(0..4_000)),
    )
}

/// Sends `join` (a resume from `since`, or fresh) and returns the answer
/// for the room: `joined`, `left` or an error.
async fn join(client: &mut Client, room: &str, since: Option<u64>) -> ServerMsg {
    client
        .send_json(json!({"type": "join", "room": room, "since": since}))
        .await;
    client
        .recv_where(|m| match m {
            ServerMsg::Joined { room: r, .. } | ServerMsg::Left { room: r, .. } => r == room,
            ServerMsg::Error {
                reference: Some(r), ..
            } => r == room,
            _ => false,
        })
        .await
}

/// Whether `client` can still post in `room`: it is in it.
async fn still_in(client: &mut Client, room: &str) -> bool {
    client.say(room, "still here?", "probe").await;
    match client
        .recv_where(|m| match m {
            ServerMsg::Ack { client_id, .. } => client_id == "probe",
            ServerMsg::Error {
                reference: Some(r), ..
            } => r == "probe",
            _ => false,
        })
        .await
    {
        ServerMsg::Ack { .. } => true,
        ServerMsg::Error { code, .. } => {
            assert_eq!(code, ErrorCode::NotJoined, "{room}");
            false
        }
        other => unreachable!("{other:?}"),
    }
}

async fn role_in(server: &TestServer, token: &str, room: &str) -> Option<RoomSummary> {
    // By prefix: the list comes in pages, and these tests make hundreds.
    let listed: Vec<RoomSummary> =
        get_json(&server.url(&format!("/api/rooms?q={room}")), token).await;
    listed
        .into_iter()
        .find(|r| r.name == room && r.role.is_some())
}

/// Carol removes Bob from her private room while a socket of his joins it.
/// Whichever comes first, he ends outside: refused, or in and then told
/// he was removed. Before the fix, a removal that ran between the join's
/// check and its entering the room found nobody to evict, and the socket
/// then entered for good.
async fn a_removal_racing_a_join_leaves_nobody_in_a_private_room(server: &TestServer, trials: u32) {
    let carol = server.sign_up("carol").await;
    let bob = server.sign_up("bob").await;
    let (mut refused, mut removed_after) = (0, 0);
    for trial in 0..trials {
        let room = format!("kept{trial}");
        let created = json!({"name": room, "visibility": "private"});
        let (status, body) = server
            .call(
                Method::POST,
                "/api/rooms",
                Some(&carol.token),
                Some(created),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let path = format!("/api/rooms/{room}/members");
        let (status, body) = server
            .call(
                Method::POST,
                &path,
                Some(&carol.token),
                Some(json!({"username": "bob"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let mut socket = server.connect(&bob).await;
        let (remove_after, join_after) = jitter();
        let remove = async {
            tokio::time::sleep(remove_after).await;
            let path = format!("/api/rooms/{room}/members/{}", bob.user.id);
            server
                .call(Method::DELETE, &path, Some(&carol.token), None)
                .await
                .0
        };
        let joining = async {
            tokio::time::sleep(join_after).await;
            join(&mut socket, &room, None).await
        };
        let (status, answer) = tokio::join!(remove, joining);
        assert_eq!(status, 204, "{room}");
        match answer {
            // In, or on its way in, when the removal came.
            ServerMsg::Joined { .. } | ServerMsg::Left { .. } => removed_after += 1,
            ServerMsg::Error { code, .. } => {
                assert_eq!(code, ErrorCode::Forbidden, "{room}");
                refused += 1;
            }
            other => panic!("{room}: {other:?}"),
        }
        assert!(
            !still_in(&mut socket, &room).await,
            "{room}: Bob is still in it"
        );
        assert!(role_in(server, &bob.token, &room).await.is_none(), "{room}");
    }
    println!("{trials} races: refused {refused}, joined then removed {removed_after}");
    assert!(refused > 0 && removed_after > 0, "both orders happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_racing_a_join_leaves_nobody_in_a_private_room_on_sqlite() {
    let server = TestServer::start_with(racing).await;
    a_removal_racing_a_join_leaves_nobody_in_a_private_room(&server, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_racing_a_join_leaves_nobody_in_a_private_room_on_postgres() {
    let db = crate::support::Database::create().await;
    let url = db.url();
    let server = TestServer::start_with(|c| {
        racing(c);
        c.database_url = Some(url.clone());
    })
    .await;
    a_removal_racing_a_join_leaves_nobody_in_a_private_room(&server, 150).await;
    drop(server);
    db.drop_now().await;
}

/// Alice leaves a public room on her laptop while her phone, back from a
/// tunnel, resumes it. The leave stands either way: the phone is told it
/// left (before or after entering), and the room is not hers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leave_racing_a_resume_on_another_device_stands() {
    let server = TestServer::start_with(racing).await;
    let alice = server.sign_up("alice").await;
    let mut laptop = server.connect(&alice).await;
    let (mut before, mut during) = (0, 0);
    for trial in 0..200 {
        let room = format!("lobby{trial}");
        laptop.join(&room).await;
        let mut phone = server.connect(&alice).await;
        let (leave_after, resume_after) = jitter();
        let leave = async {
            tokio::time::sleep(leave_after).await;
            let path = format!("/api/rooms/{room}/members/{}", alice.user.id);
            server
                .call(Method::DELETE, &path, Some(&alice.token), None)
                .await
                .0
        };
        let resume = async {
            tokio::time::sleep(resume_after).await;
            join(&mut phone, &room, Some(0)).await
        };
        let (status, answer) = tokio::join!(leave, resume);
        assert_eq!(status, 204, "{room}");
        match answer {
            ServerMsg::Left { reason: None, .. } => before += 1,
            ServerMsg::Joined { .. } => during += 1,
            other => panic!("{room}: {other:?}"),
        }
        assert!(
            !still_in(&mut phone, &room).await,
            "{room}: the phone is in it"
        );
        assert!(
            role_in(&server, &alice.token, &room).await.is_none(),
            "{room}: the leave was undone"
        );
        laptop
            .recv_where(|m| matches!(m, ServerMsg::Left { room: r, .. } if *r == room))
            .await;
    }
    println!("200 races: told it left {before}, joined then told {during}");
    assert!(before > 0 && during > 0, "both orders happened");
}

/// Carol invites Bob while he tries to join: refused (the invitation then
/// waits for him) or in (and the invitation is taken up), never in with
/// the invitation still pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_racing_a_join_is_taken_up_or_waits() {
    let server = TestServer::start_with(racing).await;
    let carol = server.sign_up("carol").await;
    let bob = server.sign_up("bob").await;
    let mut socket = server.connect(&bob).await;
    let (mut waiting, mut taken_up) = (0, 0);
    for trial in 0..200 {
        let room = format!("plans{trial}");
        let created = json!({"name": room, "visibility": "private"});
        let (status, _) = server
            .call(
                Method::POST,
                "/api/rooms",
                Some(&carol.token),
                Some(created),
            )
            .await;
        assert_eq!(status, 201);
        // An invitation is an HTTP request and a store write, a join a frame
        // on an open socket: the join starts up to 12 ms later so that it
        // sometimes comes after the invitation (with the same 0-4 ms for
        // both, the join won all 200 races in some runs).
        let (invite_after, join_after) = jitter();
        let join_after = join_after * 3;
        let invite = async {
            tokio::time::sleep(invite_after).await;
            let path = format!("/api/rooms/{room}/members");
            let body = json!({"username": "bob"});
            server
                .call(Method::POST, &path, Some(&carol.token), Some(body))
                .await
                .0
        };
        let joining = async {
            tokio::time::sleep(join_after).await;
            join(&mut socket, &room, None).await
        };
        let (status, answer) = tokio::join!(invite, joining);
        assert_eq!(status, 201, "{room}");
        let listed = role_in(&server, &bob.token, &room)
            .await
            .expect("a member either way");
        match answer {
            ServerMsg::Joined { .. } => {
                taken_up += 1;
                assert_eq!(listed.invited_by, None, "{room}: joined, still invited");
            }
            ServerMsg::Error { code, .. } => {
                assert_eq!(code, ErrorCode::Forbidden, "{room}");
                waiting += 1;
                assert!(listed.invited_by.is_some(), "{room}: refused, not invited");
            }
            other => panic!("{room}: {other:?}"),
        }
    }
    println!("200 races: refused and invited {waiting}, joined {taken_up}");
    assert!(waiting > 0 && taken_up > 0, "both orders happened");
}

/// Bob renames himself on his laptop while his phone is sending as fast
/// as it may. Every message the phone had acked is stored once, under the
/// name the connection had when it was sent; the phone is told of the new
/// name (`account_changed`), and a connection made after carries it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_racing_sends_loses_nothing_and_names_what_follows() {
    let server = TestServer::start_with(racing).await;
    let bob = server.sign_up("bob").await;
    let mut phone = server.connect(&bob).await;
    phone.join("lobby").await;
    for trial in 0..20 {
        let new_name = format!("Bob {trial}");
        let (rename_after, _) = jitter();
        let rename = async {
            tokio::time::sleep(rename_after).await;
            let body = json!({"display_name": new_name});
            server
                .call(Method::PATCH, "/api/account", Some(&bob.token), Some(body))
                .await
                .0
        };
        let sends = async {
            let (mut acked, mut told) = (Vec::new(), false);
            for i in 0..10 {
                let id = format!("t{trial}-{i}");
                phone.say("lobby", "racing", &id).await;
                loop {
                    match phone
                        .recv_where(|m| match m {
                            ServerMsg::Ack { client_id, .. } => *client_id == id,
                            ServerMsg::AccountChanged { .. } => true,
                            _ => false,
                        })
                        .await
                    {
                        ServerMsg::Ack { seq, .. } => break acked.push(seq),
                        _ => told = true,
                    }
                }
            }
            if !told {
                phone
                    .recv_where(|m| matches!(m, ServerMsg::AccountChanged { .. }))
                    .await;
            }
            acked
        };
        let (status, acked) = tokio::join!(rename, sends);
        assert_eq!(status, 200);
        // Every acked seq holds one of this trial's messages, once.
        let url = server.url(&format!(
            "/api/rooms/lobby/messages?limit=200&before={}",
            acked[9] + 1
        ));
        let page: Vec<common::ChatMessage> = get_json(&url, &bob.token).await;
        for seq in &acked {
            let stored: Vec<_> = page.iter().filter(|m| m.seq == *seq).collect();
            assert_eq!(stored.len(), 1, "trial {trial}: seq {seq}");
            assert_eq!(stored[0].content, "racing");
        }
        let ids: std::collections::HashSet<u64> = acked.iter().copied().collect();
        assert_eq!(ids.len(), 10, "trial {trial}: ten distinct messages");
        // A connection made now speaks under the new name.
        let mut renamed = bob.clone();
        renamed.user.name = new_name.clone();
        phone = server.connect(&renamed).await;
        phone.join("lobby").await;
        let id = format!("after-{trial}");
        phone.say("lobby", "renamed", &id).await;
        let said = phone
            .recv_where(|m| matches!(m, ServerMsg::Message(m) if m.client_id == id))
            .await;
        let ServerMsg::Message(said) = said else {
            unreachable!()
        };
        assert_eq!(said.user.name, new_name);
    }
}
