//! Server-to-client WebSocket frames, encoded once.
//!
//! A `Frame` is the exact bytes that go on the wire: the header and the
//! payload. Server frames are never masked (RFC 6455 5.1), so a broadcast
//! is the same bytes for every recipient: it is framed once, and each
//! recipient's share is a reference count and a `write` (see `outbox.rs`).
//! This is the floor server's trick, and most of what separated us from it.

use bytes::Bytes;
use common::ServerMsg;

/// FIN set, opcode text.
const TEXT: u8 = 0x81;
/// FIN set, opcode close.
const CLOSE: u8 = 0x88;
/// FIN set, opcode pong.
const PONG: u8 = 0x8a;
/// The longest header a server frame can have: two bytes and a 64-bit length.
const MAX_HEADER: usize = 10;

/// One complete server frame, header included. Cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame(Bytes);

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Frame")
            .field(&String::from_utf8_lossy(self.payload()))
            .finish()
    }
}

impl Frame {
    /// A text frame carrying `msg` as JSON: serialized straight behind room
    /// for the header, which then goes in front of it, so the payload is
    /// written once and never copied.
    pub fn encode(msg: &ServerMsg) -> Frame {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&[0; MAX_HEADER]);
        serde_json::to_writer(&mut buf, msg).expect("server messages always serialize");
        let len = buf.len() - MAX_HEADER;
        let start = MAX_HEADER - header_len(len);
        write_header(&mut buf[start..MAX_HEADER], TEXT, len);
        Frame(Bytes::from(buf).slice(start..))
    }

    /// A text frame carrying `text` (valid UTF-8 JSON from another node, or
    /// a constant).
    pub fn text(text: &str) -> Frame {
        Frame::with_opcode(TEXT, text.as_bytes())
    }

    /// The close frame for `code` and `reason` (at most 123 bytes, as a
    /// control frame's payload is at most 125).
    pub fn close(code: u16, reason: &str) -> Frame {
        let mut reason = reason;
        while reason.len() > 123 {
            let mut end = 123;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason = &reason[..end];
        }
        let mut payload = Vec::with_capacity(2 + reason.len());
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(reason.as_bytes());
        Frame::with_opcode(CLOSE, &payload)
    }

    /// The answer to a client's ping: the same payload (at most 125 bytes,
    /// which the parser already enforced).
    pub fn pong(payload: &[u8]) -> Frame {
        Frame::with_opcode(PONG, &payload[..payload.len().min(125)])
    }

    fn with_opcode(opcode: u8, payload: &[u8]) -> Frame {
        let header = header_len(payload.len());
        let mut buf = vec![0; header + payload.len()];
        write_header(&mut buf[..header], opcode, payload.len());
        buf[header..].copy_from_slice(payload);
        Frame(Bytes::from(buf))
    }

    /// What goes on the wire.
    pub fn wire(&self) -> &Bytes {
        &self.0
    }

    /// The payload: for a text frame, its JSON.
    pub fn payload(&self) -> &[u8] {
        let header = match self.0.get(1).map(|b| b & 0x7f) {
            Some(126) => 4,
            Some(127) => 10,
            Some(_) => 2,
            None => 0,
        };
        &self.0[header.min(self.0.len())..]
    }

    /// The payload of a text frame, as text.
    pub fn text_payload(&self) -> &str {
        std::str::from_utf8(self.payload()).unwrap_or_default()
    }
}

fn header_len(payload: usize) -> usize {
    match payload {
        0..=125 => 2,
        126..=0xffff => 4,
        _ => 10,
    }
}

/// `header` is exactly `header_len(payload)` bytes.
fn write_header(header: &mut [u8], first: u8, payload: usize) {
    header[0] = first;
    match header.len() {
        2 => header[1] = payload as u8,
        4 => {
            header[1] = 126;
            header[2..4].copy_from_slice(&(payload as u16).to_be_bytes());
        }
        _ => {
            header[1] = 127;
            header[2..10].copy_from_slice(&(payload as u64).to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use tungstenite::protocol::frame::FrameHeader;
    use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

    use super::*;

    /// What a client's parser makes of our bytes.
    fn parse(frame: &Frame) -> (FrameHeader, Vec<u8>) {
        let mut cursor = Cursor::new(frame.wire().to_vec());
        let (header, len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
        let start = cursor.position() as usize;
        let payload = cursor.into_inner()[start..].to_vec();
        assert_eq!(payload.len() as u64, len, "the length says what follows");
        (header, payload)
    }

    #[test]
    fn every_length_form_parses_as_the_client_will() {
        for size in [0, 1, 125, 126, 127, 65_535, 65_536, 200_000] {
            let text = "x".repeat(size);
            let frame = Frame::text(&text);
            let (header, payload) = parse(&frame);
            assert!(header.is_final);
            assert_eq!(header.opcode, OpCode::Data(Data::Text));
            assert!(header.mask.is_none(), "server frames are never masked");
            assert_eq!(payload, text.as_bytes());
            assert_eq!(frame.payload(), text.as_bytes());
        }
    }

    #[test]
    fn an_encoded_message_is_its_json_behind_a_header() {
        let msg = ServerMsg::Error {
            code: common::ErrorCode::BadFrame,
            message: "é".repeat(100),
            reference: None,
        };
        let frame = Frame::encode(&msg);
        let (_, payload) = parse(&frame);
        assert_eq!(payload, serde_json::to_vec(&msg).unwrap());
        assert_eq!(frame.text_payload(), serde_json::to_string(&msg).unwrap());
    }

    #[test]
    fn close_and_pong_are_control_frames_within_125_bytes() {
        let (header, payload) = parse(&Frame::close(4009, "slow consumer"));
        assert_eq!(header.opcode, OpCode::Control(Control::Close));
        assert_eq!(&payload[..2], &4009u16.to_be_bytes());
        assert_eq!(&payload[2..], b"slow consumer");
        let (_, payload) = parse(&Frame::close(1000, &"ü".repeat(100)));
        assert!(payload.len() <= 125);
        assert!(std::str::from_utf8(&payload[2..]).is_ok(), "cut at a char");
        let (header, payload) = parse(&Frame::pong(b"abc"));
        assert_eq!(header.opcode, OpCode::Control(Control::Pong));
        assert_eq!(payload, b"abc");
    }
}
