//! The WebSocket layer by RFC 6455, from outside: protocol errors close with
//! 1002, a close code is answered as the RFC says, a close the server
//! starts waits for the client's (so the client reads the code instead of a
//! reset), pings are metered, and a refused handshake spends nothing.
//! Autobahn|Testsuite checks the same layer from a third party's side
//! (`scripts/autobahn`).

use std::time::{Duration, Instant};

use common::{ServerMsg, WsTicket};
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Client, Ended, TestServer};

/// A client frame as raw bytes: masked (with a zero mask, so the payload
/// reads as itself) unless `masked` is false.
fn raw_frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut frame = vec![first];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => frame.push(mask_bit | n as u8),
        n => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    if masked {
        frame.extend_from_slice(&[0, 0, 0, 0]);
    }
    frame.extend_from_slice(payload);
    frame
}

fn close_payload(code: u16) -> Vec<u8> {
    code.to_be_bytes().to_vec()
}

/// Writes `bytes` under the client's WebSocket, as if its library had.
async fn write_raw(client: &mut Client, bytes: &[u8]) {
    match client.ws.get_mut() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp.write_all(bytes).await.unwrap(),
        _ => unreachable!("tests speak plain TCP"),
    }
}

/// How the connection ends, and whether it ended cleanly: after the close
/// frame, the stream ends with a FIN (None), not a reset (an error).
async fn ended_cleanly(client: &mut Client) -> (Ended, bool) {
    let ended = client.ended().await;
    let after = tokio::time::timeout(Duration::from_secs(10), client.ws.next())
        .await
        .expect("the server closes TCP after the close handshake");
    let clean = !matches!(after, Some(Err(_)));
    (ended, clean)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_close_with_1002_and_valid_close_codes_are_echoed() {
    let server = TestServer::start().await;
    let text = 0x81;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("reserved bit 1", raw_frame(0xC1, b"{}", true), 1002),
        ("reserved bits 2 and 3", raw_frame(0xB1, b"{}", true), 1002),
        ("reserved data opcode 3", raw_frame(0x83, b"", true), 1002),
        (
            "reserved control opcode 11",
            raw_frame(0x8B, b"", true),
            1002,
        ),
        ("fragmented ping", raw_frame(0x09, b"x", true), 1002),
        (
            "ping over 125 bytes",
            raw_frame(0x89, &[b'x'; 126], true),
            1002,
        ),
        (
            "continuation with no start",
            raw_frame(0x80, b"x", true),
            1002,
        ),
        (
            "text while a fragmented text is open",
            [raw_frame(0x01, b"{", true), raw_frame(text, b"{}", true)].concat(),
            1002,
        ),
        ("an unmasked frame", raw_frame(text, b"{}", false), 1002),
        (
            "a close with a 1-byte payload",
            raw_frame(0x88, b"x", true),
            1002,
        ),
        (
            "a close reason that is not UTF-8",
            raw_frame(0x88, &[0x03, 0xE8, 0xff, 0xfe], true),
            1007,
        ),
        (
            "close 1000",
            raw_frame(0x88, &close_payload(1000), true),
            1000,
        ),
        (
            "close 1001",
            raw_frame(0x88, &close_payload(1001), true),
            1001,
        ),
        (
            "close 3000",
            raw_frame(0x88, &close_payload(3000), true),
            3000,
        ),
        (
            "close 4999",
            raw_frame(0x88, &close_payload(4999), true),
            4999,
        ),
        ("close with no code", raw_frame(0x88, b"", true), 1000),
    ];
    let mut runs = Vec::new();
    for (name, bytes, want) in cases {
        runs.push((name, bytes, want));
    }
    for code in [0u16, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999, 5000] {
        runs.push((
            "invalid close code",
            raw_frame(0x88, &close_payload(code), true),
            1002,
        ));
    }
    let server = &server;
    let results =
        futures_util::future::join_all(runs.into_iter().map(|(name, bytes, want)| async move {
            let mut client = server.client("rfc").await;
            write_raw(&mut client, &bytes).await;
            let (ended, clean) = ended_cleanly(&mut client).await;
            (name, bytes, want, ended, clean)
        }))
        .await;
    for (name, bytes, want, ended, clean) in results {
        assert_eq!(ended, Ended::Closed(want), "{name}: {bytes:02x?}");
        assert!(clean, "{name}: the connection was reset after the close");
    }
    // Everyone else is fine.
    let mut bystander = server.client("bystander").await;
    bystander.join("r").await;
}

/// A close the server starts (here: too many bad frames, 4008) reaches a
/// client that is still sending: the server reads and discards until the
/// client's close, so its socket closes with a FIN, not a reset that would
/// fail the client's writes and hide the code (1006).
#[tokio::test]
async fn a_client_still_sending_when_the_server_closes_reads_the_code() {
    let server = TestServer::start().await;
    let mut client = server.client("chatty").await;
    // Over the error budget (10 in a burst): the server closes with 4008
    // after the eleventh; the client has not looked yet and sends on.
    for n in 0..40 {
        if n == 12 {
            // The server has closed by now; a client that has not read yet
            // goes on writing, as one that is typing would.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        client
            .ws
            .send(Message::text("not json"))
            .await
            .unwrap_or_else(|err| panic!("write {n} failed: {err}"));
        if n >= 12 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let (ended, clean) = ended_cleanly(&mut client).await;
    assert_eq!(ended, Ended::Closed(common::close::POLICY));
    assert!(clean, "reset after the close");
}

/// Every ping costs the server a pong: one socket could make it write
/// without end. Pings past the budget go unanswered and count as errors;
/// a flood ends with 4008, and nobody else notices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_is_metered_and_a_bystander_is_unaffected() {
    let server = TestServer::start().await;
    let mut bystander = server.client("bystander").await;
    bystander.join("r").await;
    let mut flooder = server.client("flooder").await;
    let started = Instant::now();
    let flood = 5_000;
    let mut sent = 0;
    for _ in 0..flood {
        if flooder
            .ws
            .send(Message::Ping(vec![b'p'; 125].into()))
            .await
            .is_err()
        {
            break;
        }
        sent += 1;
    }
    // Count the pongs until the server closes.
    let mut pongs = 0;
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(10), flooder.ws.next()).await {
            Ok(Some(Ok(Message::Pong(_)))) => pongs += 1,
            Ok(Some(Ok(Message::Close(frame)))) => break frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => break None,
            Err(_) => panic!("the flood was not stopped"),
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    println!("ping flood: {sent} sent, {pongs} answered in {elapsed:.2} s, closed {ended:?}");
    assert_eq!(ended, Some(common::close::POLICY));
    assert!(
        f64::from(pongs) <= 32.0 + 4.0 * elapsed + 1.0,
        "{pongs} pongs in {elapsed:.2} s"
    );
    // The bystander's round trip.
    let sent_at = Instant::now();
    bystander.say("r", "still here", "b1").await;
    bystander
        .recv_where(|m| matches!(m, ServerMsg::Ack { .. }))
        .await;
    println!(
        "bystander round trip after the flood: {:?}",
        sent_at.elapsed()
    );
}

/// A handshake is checked before a ticket is redeemed: a refused upgrade
/// leaves the ticket for the next try. A version other than 13 is 426
/// naming 13, a key that is not 16 bytes of base64 is refused, and so is a
/// request with two `Origin` headers.
#[tokio::test]
async fn a_refused_upgrade_spends_no_ticket() {
    let server = TestServer::start().await;
    let session = server.sign_in("ticketed").await;
    let http = reqwest::Client::new();
    let ticket: WsTicket = http
        .post(server.url("/api/ws-ticket"))
        .bearer_auth(&session.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = server.url(&format!("/ws?ticket={}", ticket.ticket));
    let upgrade = |key: Option<&str>, version: &str| {
        let request = http
            .get(&url)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", version);
        match key {
            Some(key) => request.header("sec-websocket-key", key),
            None => request,
        }
    };
    let missing_key = upgrade(None, "13").send().await.unwrap();
    assert_eq!(missing_key.status(), 400);
    let short_key = upgrade(Some("c2hvcnQ="), "13").send().await.unwrap();
    assert_eq!(short_key.status(), 400);
    let old = upgrade(Some("dGhlIHNhbXBsZSBub25jZQ=="), "8")
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 426);
    assert_eq!(old.headers()["sec-websocket-version"], "13");
    let two_origins = upgrade(Some("dGhlIHNhbXBsZSBub25jZQ=="), "13")
        .header("origin", format!("http://{}", server.addr))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(two_origins.status(), 403);

    // The ticket is still good.
    let ws_url = format!("ws://{}/ws?ticket={}", server.addr, ticket.ticket);
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .expect("the ticket survived the refused upgrades");
    let welcome: ServerMsg =
        serde_json::from_str(ws.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert!(matches!(welcome, ServerMsg::Welcome { .. }), "{welcome:?}");
}
