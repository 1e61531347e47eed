use std::collections::BTreeSet;
use std::time::Duration;

use common::ServerMsg;

use crate::support::TestServer;

fn names(members: &[common::User]) -> BTreeSet<String> {
    members.iter().map(|u| u.name.clone()).collect()
}

#[tokio::test]
async fn joiners_get_the_member_list_and_others_are_told() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;

    match alice.join("general").await {
        ServerMsg::Joined {
            members, last_seq, ..
        } => {
            assert_eq!(names(&members), BTreeSet::from(["alice".to_owned()]));
            assert_eq!(last_seq, 0);
        }
        other => panic!("{other:?}"),
    }
    match bob.join("general").await {
        ServerMsg::Joined { members, .. } => {
            assert_eq!(
                names(&members),
                BTreeSet::from(["alice".to_owned(), "bob".to_owned()])
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        alice.recv().await,
        ServerMsg::UserJoined {
            room: "general".into(),
            user: bob.user.clone()
        }
    );

    // Leaving tells the others, and the leaver gets `left`.
    bob.send_json(serde_json::json!({"type":"leave","room":"general"}))
        .await;
    assert_eq!(
        bob.recv().await,
        ServerMsg::Left {
            room: "general".into(),
            reason: None
        }
    );
    assert_eq!(
        alice.recv().await,
        ServerMsg::UserLeft {
            room: "general".into(),
            user: bob.user.clone()
        }
    );
}

#[tokio::test]
async fn a_disconnect_removes_presence() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.join("general").await;
    bob.join("general").await;
    alice.recv().await; // bob joined
    let bob_user = bob.user.clone();
    drop(bob);
    assert_eq!(
        alice.recv().await,
        ServerMsg::UserLeft {
            room: "general".into(),
            user: bob_user
        }
    );
}

#[tokio::test]
async fn two_tabs_of_one_user_are_one_member() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    alice.join("general").await;
    let bob_session = server.sign_in("bob").await;
    let mut tab1 = server.connect(&bob_session).await;
    let mut tab2 = server.connect(&bob_session).await;

    tab1.join("general").await;
    assert!(matches!(alice.recv().await, ServerMsg::UserJoined { .. }));
    match tab2.join("general").await {
        ServerMsg::Joined { members, .. } => assert_eq!(members.len(), 2, "alice and bob, once"),
        other => panic!("{other:?}"),
    }
    // Joining again on the same connection is harmless, too.
    tab2.join("general").await;
    alice.expect_silence(Duration::from_millis(300)).await;

    // Closing one tab is not leaving.
    drop(tab1);
    alice.expect_silence(Duration::from_millis(300)).await;
    drop(tab2);
    assert_eq!(
        alice.recv().await,
        ServerMsg::UserLeft {
            room: "general".into(),
            user: bob_session.user
        }
    );
}

#[tokio::test]
async fn typing_reaches_others_at_most_once_per_interval() {
    let server = TestServer::start_with(|c| c.typing_interval_ms = 400).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.join("general").await;
    bob.join("general").await;
    alice.recv().await; // bob joined

    for _ in 0..5 {
        bob.send_json(serde_json::json!({"type":"typing","room":"general"}))
            .await;
    }
    assert_eq!(
        alice.recv().await,
        ServerMsg::Typing {
            room: "general".into(),
            user: bob.user.clone()
        }
    );
    // The other four were inside the interval and dropped.
    alice.expect_silence(Duration::from_millis(250)).await;
    // The typist does not hear itself.
    bob.expect_silence(Duration::from_millis(10)).await;

    tokio::time::sleep(Duration::from_millis(200)).await;
    bob.send_json(serde_json::json!({"type":"typing","room":"general"}))
        .await;
    assert!(matches!(alice.recv().await, ServerMsg::Typing { .. }));
}

#[tokio::test]
async fn room_names_are_case_insensitive() {
    let server = crate::support::TestServer::start().await;
    let mut a = server.client("a").await;
    let mut b = server.client("b").await;
    a.send_json(serde_json::json!({"type":"join","room":"General","since":null}))
        .await;
    match a
        .recv_where(|m| matches!(m, common::ServerMsg::Joined { .. }))
        .await
    {
        common::ServerMsg::Joined { room, .. } => assert_eq!(room, "general"),
        _ => unreachable!(),
    }
    a.send_json(serde_json::json!({"type":"join","room":"GENERAL","since":null}))
        .await;
    b.send_json(serde_json::json!({"type":"join","room":"gEnErAl","since":null}))
        .await;
    let members = b
        .recv_where(|m| matches!(m, common::ServerMsg::Joined { .. }))
        .await;
    let common::ServerMsg::Joined { room, members, .. } = members else {
        unreachable!()
    };
    assert_eq!(room, "general");
    assert_eq!(members.len(), 2, "one room, both in it");
}
