//! The "floor" for fan-out benchmarks (see `compare.rs`, `many_rooms.rs`):
//! the least work a WebSocket broadcast server can do. A connection's room
//! is its URL's path (`/r/17`; `/` is one room too). Every text frame a
//! client sends is framed once and written to every connection of its room
//! (its sender included) with one non-blocking `write` each. Nothing else: no protocol, no storage, no
//! queues, no backpressure (a write that would block is dropped, and a
//! partial one would corrupt that connection: with the small frames of the
//! benchmark, neither happens). A measure of what the kernel's TCP path
//! costs, to compare real servers against.
//!
//! ```text
//! target/release/examples/floor 9000
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The connections of each room (path).
type Peers = Arc<Mutex<HashMap<String, Vec<Arc<TcpStream>>>>>;

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("usage: floor <port>");
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let peers: Peers = Arc::default();
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve(stream, peers.clone()));
    }
}

async fn serve(mut stream: TcpStream, peers: Peers) {
    // The HTTP upgrade: read the request head, answer 101.
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let room = text
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_owned();
    let Some(key) = text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("sec-websocket-key")
            .then(|| value.trim().to_owned())
    }) else {
        return;
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    if stream.write_all(response.as_bytes()).await.is_err() {
        return;
    }
    let stream = Arc::new(stream);
    peers
        .lock()
        .unwrap()
        .entry(room.clone())
        .or_default()
        .push(stream.clone());
    let mut pending: Vec<u8> = Vec::new();
    loop {
        if stream.readable().await.is_err() {
            break;
        }
        match stream.try_read(&mut buf) {
            Ok(0) => break,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => break,
        }
        while let Some((opcode, payload, used)) = parse_client_frame(&pending) {
            pending.drain(..used);
            match opcode {
                0x1 => broadcast(&peers, &room, &payload),
                0x8 => return forget(&peers, &room, &stream),
                _ => {}
            }
        }
    }
    forget(&peers, &room, &stream);
}

fn forget(peers: &Peers, room: &str, stream: &Arc<TcpStream>) {
    if let Some(room) = peers.lock().unwrap().get_mut(room) {
        room.retain(|p| !Arc::ptr_eq(p, stream));
    }
}

/// Frames the payload once, then one non-blocking write per connection of
/// the room.
fn broadcast(peers: &Peers, room: &str, payload: &[u8]) {
    let mut frame = Vec::with_capacity(payload.len() + 10);
    frame.push(0x81);
    match payload.len() {
        n if n < 126 => frame.push(n as u8),
        n if n < 65536 => {
            frame.push(126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    let peers: Vec<Arc<TcpStream>> = peers.lock().unwrap().get(room).cloned().unwrap_or_default();
    for peer in peers {
        let _ = peer.try_write(&frame);
    }
}

/// One complete masked client frame at the start of `data`: its opcode,
/// unmasked payload and length in `data`.
fn parse_client_frame(data: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if data.len() < 2 {
        return None;
    }
    let opcode = data[0] & 0x0f;
    let masked = data[1] & 0x80 != 0;
    let (len, mut at) = match data[1] & 0x7f {
        126 => (
            u16::from_be_bytes(data.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(data.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let mask: [u8; 4] = if masked {
        let mask = data.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        mask
    } else {
        [0; 4]
    };
    let body = data.get(at..at + len)?;
    let payload = body
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i % 4])
        .collect();
    Some((opcode, payload, at + len))
}
