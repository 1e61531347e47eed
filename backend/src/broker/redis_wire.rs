//! What goes over Redis between nodes: an envelope is a one-line JSON
//! header (origin, room, and what kind of event), a line feed, and the
//! frame's JSON as the clients get it, so a receiving node delivers those
//! bytes without encoding them again.

use std::borrow::Cow;
use std::sync::Arc;

use common::User;
use serde::{Deserialize, Serialize};

use super::{Envelope, Event};
use crate::transport::frame::Frame;

#[derive(Serialize, Deserialize)]
pub(super) struct Header<'a> {
    #[serde(borrow)]
    pub(super) origin: Cow<'a, str>,
    #[serde(borrow)]
    room: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    skip_user: Option<Cow<'a, str>>,
    /// `ToUser` events only: whose connections.
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    to_user: Option<Cow<'a, str>>,
    /// `Revoke` events only: the session ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoke: Option<Vec<String>>,
    /// `Evict` events only: the user removed from the room.
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    evict: Option<Cow<'a, str>>,
    /// `Evict` events only: the user left the room themselves.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    left: bool,
    /// Presence events only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<User>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    present: Option<bool>,
}

/// The bytes of `envelope` on the wire.
pub(super) fn encode(envelope: &Envelope) -> Vec<u8> {
    let mut header = Header {
        origin: Cow::Borrowed(&envelope.origin),
        room: Cow::Borrowed(&envelope.room),
        seq: None,
        skip_user: None,
        to_user: None,
        revoke: None,
        evict: None,
        left: false,
        user: None,
        present: None,
    };
    let body: &[u8] = match &envelope.event {
        Event::Frame {
            frame,
            skip_user,
            seq,
        } => {
            header.seq = *seq;
            header.skip_user = skip_user.as_deref().map(Cow::Borrowed);
            frame.payload()
        }
        Event::Presence { user, present } => {
            header.user = Some(user.clone());
            header.present = Some(*present);
            b""
        }
        Event::ToUser { user_id, frame } => {
            header.to_user = Some(Cow::Borrowed(user_id));
            frame.payload()
        }
        Event::Revoke { sessions } => {
            header.revoke = Some(sessions.iter().map(|s| s.to_string()).collect());
            b""
        }
        Event::Evict { user_id, left } => {
            header.evict = Some(Cow::Borrowed(user_id));
            header.left = *left;
            b""
        }
    };
    let mut payload = serde_json::to_vec(&header).expect("headers serialize");
    payload.push(b'\n');
    payload.extend_from_slice(body);
    payload
}

pub(super) fn decode(payload: &[u8]) -> Option<Envelope> {
    let split = payload.iter().position(|&b| b == b'\n')?;
    let header: Header = serde_json::from_slice(&payload[..split]).ok()?;
    let body = &payload[split + 1..];
    let event = match (header.user, header.present, header.to_user) {
        _ if header.revoke.is_some() => Event::Revoke {
            sessions: header
                .revoke
                .unwrap_or_default()
                .into_iter()
                .map(Arc::from)
                .collect(),
        },
        _ if header.evict.is_some() => Event::Evict {
            user_id: Arc::from(header.evict.as_deref().unwrap_or_default()),
            left: header.left,
        },
        (Some(user), Some(present), _) => Event::Presence { user, present },
        (_, _, Some(user_id)) => Event::ToUser {
            user_id: Arc::from(user_id.as_ref()),
            frame: Frame::text(std::str::from_utf8(body).ok()?),
        },
        _ => Event::Frame {
            frame: Frame::text(std::str::from_utf8(body).ok()?),
            skip_user: header.skip_user.map(|s| Arc::from(s.as_ref())),
            seq: header.seq,
        },
    };
    Some(Envelope {
        origin: Arc::from(header.origin.as_ref()),
        room: Arc::from(header.room.as_ref()),
        event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_through_the_wire_format() {
        let header = Header {
            origin: "n1".into(),
            room: "general".into(),
            seq: Some(7),
            skip_user: Some("u1".into()),
            to_user: None,
            revoke: None,
            evict: None,
            left: false,
            user: None,
            present: None,
        };
        let mut payload = serde_json::to_vec(&header).unwrap();
        payload.push(b'\n');
        payload.extend_from_slice(
            br#"{"type":"message","text":"with
newline"}"#,
        );
        let envelope = decode(&payload).unwrap();
        assert_eq!(envelope.origin.as_ref(), "n1");
        match envelope.event {
            Event::Frame {
                frame,
                skip_user,
                seq,
            } => {
                assert_eq!(seq, Some(7));
                assert_eq!(skip_user.as_deref(), Some("u1"));
                assert!(frame.text_payload().ends_with("newline\"}"));
            }
            other => panic!("{other:?}"),
        }
        assert!(decode(b"no header").is_none());
        let to_user = decode(b"{\"origin\":\"n1\",\"room\":\"r\",\"to_user\":\"u9\"}\n{\"type\":\"read\",\"room\":\"r\",\"seq\":4}").unwrap();
        match to_user.event {
            Event::ToUser { user_id, frame } => {
                assert_eq!(user_id.as_ref(), "u9");
                assert!(frame.text_payload().contains("\"seq\":4"));
            }
            other => panic!("{other:?}"),
        }
        let revoke =
            decode(b"{\"origin\":\"n1\",\"room\":\"\",\"revoke\":[\"s1\",\"s2\"]}\n").unwrap();
        match revoke.event {
            Event::Revoke { sessions } => assert_eq!(sessions.len(), 2),
            other => panic!("{other:?}"),
        }
        let evict = decode(b"{\"origin\":\"n1\",\"room\":\"r\",\"evict\":\"u3\"}\n").unwrap();
        match evict.event {
            Event::Evict { user_id, left } => {
                assert_eq!(user_id.as_ref(), "u3");
                assert!(!left, "a removal unless it says so");
            }
            other => panic!("{other:?}"),
        }
        let left =
            decode(b"{\"origin\":\"n1\",\"room\":\"r\",\"evict\":\"u3\",\"left\":true}\n").unwrap();
        match left.event {
            Event::Evict { left, .. } => assert!(left),
            other => panic!("{other:?}"),
        }
    }
}
