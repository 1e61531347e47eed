//! Rooms belong to the account, not to a browser: joining a public room
//! makes you a member, `GET /api/rooms` lists your rooms with what is
//! unread in them on any device, and leaving is for every device.

use common::{Role, RoomSummary, ServerMsg};

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
