//! Accounts and sessions: sign-up rules, password sign-in that gives
//! nothing away, rate limits, revocation that closes live sockets.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::support::{Ended, PASSWORD, TestServer, ws_request};

/// Another session of an account (`PASSWORD`): another device.
async fn second_session(server: &TestServer, username: &str) -> common::SessionResponse {
    let (status, body) = server
        .call(
            Method::POST,
            "/api/session",
            None,
            Some(json!({"username": username, "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).unwrap()
}

fn sign_up_body(username: &str, password: &str, name: &str) -> Option<serde_json::Value> {
    Some(json!({"username": username, "password": password, "display_name": name}))
}

#[tokio::test]
async fn usernames_are_unique_and_every_rule_has_its_code() {
    let server = TestServer::start().await;
    let (status, body) = server
        .call(
            Method::POST,
            "/api/accounts",
            None,
            sign_up_body(" Alice ", PASSWORD, "Alice Liddell"),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["username"], "alice", "lowercased");
    assert_eq!(body["user"]["name"], "Alice Liddell");
    assert!(body["token"].as_str().unwrap().starts_with("hth_"));

    for (username, password, name, status, code) in [
        ("ALICE", PASSWORD, "Another Alice", 409, "username_taken"),
        ("al", PASSWORD, "x", 400, "invalid_username"),
        ("al ice", PASSWORD, "x", 400, "invalid_username"),
        ("ａlice", PASSWORD, "x", 400, "invalid_username"),
        ("bob", "short", "Bob", 400, "weak_password"),
        ("bob", "Password123", "Bob", 400, "weak_password"),
        ("bob", "bob-bob-bob-bob", "Bob", 400, "weak_password"),
        ("bob", PASSWORD, "bo\u{200B}b", 400, "invalid_name"),
        ("bob", PASSWORD, "\u{202E}bob", 400, "invalid_name"),
        ("bob", PASSWORD, "   ", 400, "invalid_name"),
    ] {
        let (got, body) = server
            .call(
                Method::POST,
                "/api/accounts",
                None,
                sign_up_body(username, password, name),
            )
            .await;
        assert_eq!(got, status, "{username} {password} {name:?}: {body}");
        assert_eq!(body["error"], code, "{username} {password} {name:?}");
        assert!(!body["message"].as_str().unwrap().is_empty());
    }

    // Display names are NFC: "e" + combining acute is stored as "é".
    let (status, body) = server
        .call(
            Method::POST,
            "/api/accounts",
            None,
            sign_up_body("zoe", PASSWORD, "Zoe\u{301}"),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["name"], "Zoé");

    // Sign in: the same user, a new session.
    let (status, again) = server
        .call(
            Method::POST,
            "/api/session",
            None,
            Some(json!({"username": "ALICE", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 200, "{again}");
    let first: common::SessionResponse = serde_json::from_value(body).unwrap();
    assert_ne!(
        again["user"]["id"],
        first.user.id.as_str(),
        "zoe is not alice"
    );
    let (_, me) = server
        .call(Method::GET, "/api/session", again["token"].as_str(), None)
        .await;
    assert_eq!(me["username"], "alice");
}

/// A wrong password and an unknown user get the same answer, after the
/// same work: one argon2 verification each (against a decoy hash for the
/// unknown user), so neither the body nor the time tells which it was.
#[tokio::test]
async fn a_wrong_password_tells_nothing_about_whether_the_user_exists() {
    let server = TestServer::start().await;
    server.sign_up("alice").await;
    let passwords = &server.server.as_ref().unwrap().state().passwords;
    let attempt = |username: &'static str| {
        let server = &server;
        async move {
            let before = passwords.verifications();
            let started = Instant::now();
            let (status, body) = server
                .call(
                    Method::POST,
                    "/api/session",
                    None,
                    Some(json!({"username": username, "password": "not the password"})),
                )
                .await;
            let took = started.elapsed();
            assert_eq!(passwords.verifications(), before + 1, "{username}");
            (status, body, took)
        }
    };
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..7 {
        let (status_a, body_a, took_a) = attempt("alice").await;
        let (status_b, body_b, took_b) = attempt("nobody-here").await;
        assert_eq!((status_a, &body_a), (401, &body_b), "same status and body");
        assert_eq!(body_a["error"], "bad_credentials");
        assert_eq!(status_b, 401);
        known.push(took_a);
        unknown.push(took_b);
    }
    known.sort();
    unknown.sort();
    let (known, unknown) = (known[3], unknown[3]);
    println!("median wrong-password sign-in: existing user {known:?}, unknown user {unknown:?}");
    // Without the decoy, an unknown user would answer about 100 times
    // faster (no hash at all); within a factor of 3 is "the same work".
    let ratio = unknown.as_secs_f64() / known.as_secs_f64();
    assert!((0.33..3.0).contains(&ratio), "ratio {ratio}");
}

#[tokio::test]
async fn sign_in_is_rate_limited_per_username_and_per_address() {
    let server = TestServer::start_with(|c| {
        c.auth_per_username_per_minute = 3;
        c.auth_per_ip_per_minute = 8;
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    server.sign_up("alice").await;
    let attempt = |username: &'static str, password: &'static str, forwarded: &'static str| {
        let url = server.url("/api/session");
        let body = json!({"username": username, "password": password});
        async move {
            reqwest::Client::new()
                .post(url)
                .header("x-forwarded-for", forwarded)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let wrong = "wrong password";
    // Per username and address: the 4th guess from one address is refused.
    for _ in 0..3 {
        assert_eq!(attempt("alice", wrong, "198.51.100.1").await.status(), 401);
    }
    let limited = attempt("alice", wrong, "198.51.100.1").await;
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    // Per username from everywhere: guesses from new addresses are slowed
    // down and refused…
    let started = std::time::Instant::now();
    assert_eq!(attempt("alice", wrong, "198.51.100.2").await.status(), 429);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "slowed down"
    );
    // …but Alice, with her password, is not locked out by them.
    assert_eq!(
        attempt("alice", PASSWORD, "192.0.2.77").await.status(),
        200,
        "the right password gets through a username under attack"
    );
    // Per address: one client trying many usernames.
    let mut statuses = Vec::new();
    for user in ["u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9"] {
        let response = reqwest::Client::new()
            .post(server.url("/api/session"))
            .header("x-forwarded-for", "203.0.113.9")
            .json(&json!({"username": user, "password": wrong}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses[..8], [401; 8]);
    assert_eq!(statuses[8], 429, "the 9th from one address");
    // A bystander at another address is unaffected.
    assert_eq!(attempt("bob", wrong, "192.0.2.50").await.status(), 401);
}

/// Signing up with a taken username spends only the address's budget: an
/// attacker cannot use sign-ups to lock the username's owner out.
#[tokio::test]
async fn taken_username_sign_ups_spend_nobody_elses_budget() {
    let server = TestServer::start_with(|c| {
        c.auth_per_username_per_minute = 2;
        c.auth_per_ip_per_minute = 10;
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    server.sign_up("carol").await;
    for i in 0..5 {
        let response = reqwest::Client::new()
            .post(server.url("/api/accounts"))
            .header("x-forwarded-for", "203.0.113.20")
            .json(&json!({"username": "carol", "password": PASSWORD, "display_name": format!("C{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 409);
    }
    let response = reqwest::Client::new()
        .post(server.url("/api/session"))
        .header("x-forwarded-for", "192.0.2.8")
        .json(&json!({"username": "carol", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn x_forwarded_for_counts_only_from_a_trusted_proxy() {
    let server = TestServer::start_with(|c| c.auth_per_ip_per_minute = 3).await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        // A client that claims to be someone else each time.
        let response = reqwest::Client::new()
            .post(server.url("/api/session"))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .json(&json!({"username": format!("user{i}"), "password": "wrong password"}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429], "the header was ignored");
}

#[tokio::test]
async fn signing_out_ends_the_session_everywhere_at_once() {
    let server = TestServer::start().await;
    let session = server.sign_up("alice").await;
    let mut socket = server.connect(&session).await;
    socket.join("general").await;
    let other_session = server.sign_in("bystander").await;
    let mut bystander = server.connect(&other_session).await;
    bystander.join("general").await;

    let started = Instant::now();
    let (status, _) = server
        .call(Method::DELETE, "/api/session", Some(&session.token), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        socket.ended().await,
        Ended::Closed(common::close::TOKEN_INVALID)
    );
    println!("live socket closed {:?} after sign-out", started.elapsed());
    // The token is dead for the API and for new sockets.
    let (status, body) = server
        .call(Method::GET, "/api/rooms", Some(&session.token), None)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
    let (status, _) = server
        .call(Method::POST, "/api/ws-ticket", Some(&session.token), None)
        .await;
    assert_eq!(status, 401);
    match tokio_tungstenite::connect_async(ws_request(server.addr, &session.token)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected a 401, got {other:?}"),
    }
    // Signing in again works, and nobody else noticed anything.
    let (status, _) = server
        .call(
            Method::POST,
            "/api/session",
            None,
            Some(json!({"username": "alice", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 200);
    bystander.say("general", "still here", "b1").await;
    bystander
        .recv_where(|m| matches!(m, common::ServerMsg::Ack { .. }))
        .await;
}

#[tokio::test]
async fn a_ticket_dies_with_its_session() {
    let server = TestServer::start().await;
    let session = server.sign_up("alice").await;
    let (status, ticket) = server
        .call(Method::POST, "/api/ws-ticket", Some(&session.token), None)
        .await;
    assert_eq!(status, 201);
    server
        .call(Method::DELETE, "/api/session", Some(&session.token), None)
        .await;
    let url = format!(
        "ws://{}/ws?ticket={}",
        server.addr,
        ticket["ticket"].as_str().unwrap()
    );
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
}

#[tokio::test]
async fn changing_the_password_revokes_every_other_session() {
    let server = TestServer::start().await;
    let here = server.sign_up("alice").await;
    let there = second_session(&server, "alice").await;
    let mut there_socket = server.connect(&there).await;
    let mut here_socket = server.connect(&here).await;
    let change = |old: &str, new: &str| Some(json!({"old": old, "new": new}));
    let (status, body) = server
        .call(
            Method::PUT,
            "/api/account/password",
            Some(&here.token),
            change("not it at all", "a brand new passphrase"),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("bad_credentials"))
    );
    let (status, body) = server
        .call(
            Method::PUT,
            "/api/account/password",
            Some(&here.token),
            change(PASSWORD, "1234567890"),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("weak_password"))
    );
    let (status, _) = server
        .call(
            Method::PUT,
            "/api/account/password",
            Some(&here.token),
            change(PASSWORD, "a brand new passphrase"),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        there_socket.ended().await,
        Ended::Closed(common::close::TOKEN_INVALID)
    );
    let (status, _) = server
        .call(Method::GET, "/api/session", Some(&there.token), None)
        .await;
    assert_eq!(status, 401, "the other session is gone");
    let (status, _) = server
        .call(Method::GET, "/api/session", Some(&here.token), None)
        .await;
    assert_eq!(status, 200, "this one stays");
    here_socket.join("still-connected").await;
    for (password, status) in [(PASSWORD, 401), ("a brand new passphrase", 200)] {
        let (got, _) = server
            .call(
                Method::POST,
                "/api/session",
                None,
                Some(json!({"username": "alice", "password": password})),
            )
            .await;
        assert_eq!(got, status, "{password}");
    }
}

#[tokio::test]
async fn guests_only_where_the_operator_allows_them() {
    let closed = TestServer::start_with(|c| c.allow_guests = false).await;
    let (_, info) = closed.call(Method::GET, "/api/server", None, None).await;
    assert_eq!(info["allow_guests"], false);
    let (status, body) = closed
        .call(
            Method::POST,
            "/api/session",
            None,
            Some(json!({"name": "drifter"})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("guests_disabled"))
    );

    let open = TestServer::start().await;
    let (_, info) = open.call(Method::GET, "/api/server", None, None).await;
    assert_eq!(info["allow_guests"], true);
    let guest = open.sign_in("drifter").await;
    assert!(guest.user.is_guest());
    let (status, body) = open
        .call(
            Method::PUT,
            "/api/account/password",
            Some(&guest.token),
            Some(json!({"old": "x", "new": "a brand new passphrase"})),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (403, Some("guest")));
    // Two guests with one name are two users.
    let twin = open.sign_in("drifter").await;
    assert_ne!(twin.user.id, guest.user.id);
}

/// The hashing pool is bounded: a burst of sign-ups is answered (some
/// possibly `busy`), and chat keeps flowing meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_up_burst_does_not_stall_chat() {
    let server = TestServer::start_with(crate::support::no_rate_limit).await;
    let mut alice = server.client("alice").await;
    alice.join("r").await;
    // The same round trips with nothing else going on: what "not stalled"
    // is measured against, on this machine, now.
    let mut quiet = Vec::new();
    for i in 0..20 {
        let sent = Instant::now();
        alice.say("r", "ping", &format!("q{i}")).await;
        alice
            .recv_where(|m| matches!(m, common::ServerMsg::Ack { .. }))
            .await;
        quiet.push(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    quiet.sort();
    let burst: Vec<_> = (0..16)
        .map(|i| {
            let addr = server.addr;
            tokio::spawn(async move {
                crate::support::call(
                    Method::POST,
                    &format!("http://{addr}/api/accounts"),
                    None,
                    sign_up_body(&format!("burst{i}"), PASSWORD, "Burst"),
                )
                .await
                .0
            })
        })
        .collect();
    let started = Instant::now();
    let mut round_trips = Vec::new();
    for i in 0..20 {
        let sent = Instant::now();
        alice.say("r", "ping", &format!("c{i}")).await;
        alice
            .recv_where(|m| matches!(m, common::ServerMsg::Ack { .. }))
            .await;
        round_trips.push(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for task in burst {
        let status = task.await.unwrap();
        assert!(status == 201 || status == 503, "{status}");
    }
    round_trips.sort();
    println!(
        "send→ack median quiet {:?}; during 16 concurrent sign-ups ({:?}): median {:?}, max {:?}",
        quiet[10],
        started.elapsed(),
        round_trips[10],
        round_trips[19]
    );
    // Hashing on the threads that deliver messages would put a password
    // hash (tens of ms, 16 of them queued on two cores) into most round
    // trips. The median may grow with the CPU the hashes take, but not to
    // that: within ten times the quiet median, or 100 ms.
    let bound = (quiet[10] * 10).max(Duration::from_millis(100));
    assert!(
        round_trips[10] <= bound,
        "chat stalled during sign-ups: median {:?} (quiet {:?})",
        round_trips[10],
        quiet[10]
    );
}

/// Sessions that ended a long time ago are forgotten; live ones are not.
#[tokio::test]
async fn old_sessions_are_pruned_and_live_ones_kept() {
    let server = TestServer::start().await;
    let live = server.sign_up("alice").await;
    let (_, gone) = server
        .call(
            Method::POST,
            "/api/session",
            None,
            Some(json!({"username": "alice", "password": PASSWORD})),
        )
        .await;
    let gone = gone["token"].as_str().unwrap().to_owned();
    server
        .call(Method::DELETE, "/api/session", Some(&gone), None)
        .await;
    let store = server.server.as_ref().unwrap().state().hub.store().clone();
    let now_ms = backend::hub::now_millis();
    // Revoked before "a second from now": the signed-out one only.
    let pruned = store
        .prune_sessions(backend::auth::now_secs(), now_ms + 1_000)
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    let (status, _) = server
        .call(Method::GET, "/api/session", Some(&live.token), None)
        .await;
    assert_eq!(status, 200, "the live session is kept");
}

#[tokio::test]
async fn a_new_display_name_reaches_every_device_and_what_is_sent_next() {
    let server = TestServer::start().await;
    let alice = server.sign_up("alice").await;
    let bob = server.sign_up("bob").await;
    let mut phone = server.connect(&alice).await;
    let mut watcher = server.connect(&bob).await;
    phone.join("porch").await;
    watcher.join("porch").await;
    phone.say("porch", "before", "before-1").await;
    watcher
        .recv_where(|m| matches!(m, common::ServerMsg::Message(m) if m.content == "before"))
        .await;

    let rename = |name: &str| Some(json!({"display_name": name}));
    for (bad, code) in [("", "invalid_name"), ("a\u{202e}b", "invalid_name")] {
        let (status, body) = server
            .call(
                Method::PATCH,
                "/api/account",
                Some(&alice.token),
                rename(bad),
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(code)),
            "{bad:?}"
        );
    }
    let (status, body) = server
        .call(
            Method::PATCH,
            "/api/account",
            Some(&alice.token),
            rename("  Alice Liddell "),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "Alice Liddell", "trimmed like a sign-up's");
    assert_eq!(body["username"], "alice", "the username never changes");

    // Her other device is told, so it reconnects under the new name.
    match phone
        .recv_where(|m| matches!(m, common::ServerMsg::AccountChanged { .. }))
        .await
    {
        common::ServerMsg::AccountChanged { user } => assert_eq!(user.name, "Alice Liddell"),
        _ => unreachable!(),
    }
    let (_, me) = server
        .call(Method::GET, "/api/session", Some(&alice.token), None)
        .await;
    assert_eq!(me["name"], "Alice Liddell");
    // (`connect` checks that `welcome` names the user as given.)
    let mut renamed = alice.clone();
    renamed.user.name = "Alice Liddell".into();
    let mut again = server.connect(&renamed).await;
    again.join("porch").await;
    again.say("porch", "after", "after-1").await;
    let seen = watcher
        .recv_where(|m| matches!(m, common::ServerMsg::Message(m) if m.content == "after"))
        .await;
    let common::ServerMsg::Message(after) = seen else {
        unreachable!()
    };
    assert_eq!(after.user.name, "Alice Liddell");
    // History keeps the name each message was sent under.
    let (_, history) = server
        .call(
            Method::GET,
            "/api/rooms/porch/messages",
            Some(&bob.token),
            None,
        )
        .await;
    let names: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["content"].as_str().unwrap(),
                m["user"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(names.contains(&("after", "Alice Liddell")), "{names:?}");
    assert!(!names.contains(&("before", "Alice Liddell")), "{names:?}");
}

#[tokio::test]
async fn signing_out_everywhere_ends_every_session_this_one_too() {
    let server = TestServer::start().await;
    let here = server.sign_up("alice").await;
    let there = second_session(&server, "alice").await;
    let bob = server.sign_up("bob").await;
    let mut here_socket = server.connect(&here).await;
    let mut there_socket = server.connect(&there).await;
    let mut bob_socket = server.connect(&bob).await;
    let (status, _) = server
        .call(
            Method::DELETE,
            "/api/account/sessions",
            Some(&here.token),
            None,
        )
        .await;
    assert_eq!(status, 204);
    for socket in [&mut here_socket, &mut there_socket] {
        assert_eq!(
            socket.ended().await,
            Ended::Closed(common::close::TOKEN_INVALID)
        );
    }
    for token in [&here.token, &there.token] {
        let (status, _) = server
            .call(Method::GET, "/api/session", Some(token), None)
            .await;
        assert_eq!(status, 401);
    }
    // Someone else is untouched.
    bob_socket.join("still-here").await;
    let (status, _) = server
        .call(Method::GET, "/api/session", Some(&bob.token), None)
        .await;
    assert_eq!(status, 200);
}
