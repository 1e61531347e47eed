//! The WebSocket messages, one enum per direction.
//!
//! Over 500 lines: the whole WebSocket protocol, one enum per direction,
//! documented message by message, with its round-trip tests.

use serde::{Deserialize, Serialize};

/// A connection's `send` rate limit, a token bucket: `burst` sends at once,
/// and room for one more every `refill_ms`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct SendLimit {
    pub burst: u32,
    pub refill_ms: u32,
}

/// What a server that does not say (an older one) allows by default.
impl Default for SendLimit {
    fn default() -> Self {
        SendLimit {
            burst: 40,
            refill_ms: 50,
        }
    }
}

/// A signed-in person. `id` is stable for the account (for a guest, for
/// its session); two tabs signed in as the same account are the same user.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct User {
    pub id: String,
    /// The display name: what people see. Not unique.
    pub name: String,
    /// The unique sign-in name, shown as `@username`. `None` for a guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// The ids of bots (messages published with an API key) start with this,
/// followed by the key's name; no person's id can (theirs are UUIDs).
pub const BOT_ID_PREFIX: &str = "bot:";

impl User {
    /// A guest signed in with a display name only (`--allow-guests`).
    pub fn is_guest(&self) -> bool {
        self.username.is_none() && !self.is_bot()
    }

    /// Another system posting through the publish API.
    pub fn is_bot(&self) -> bool {
        self.id.starts_with(BOT_ID_PREFIX)
    }
}

/// An entry of a room's log, as stored and delivered: a message, or a
/// change to an earlier message or to the room (`kind`). Every entry has a
/// seq of its own, so resuming, gap detection, ordering across nodes and
/// durability cover changes exactly as they cover messages.
///
/// A message is delivered as `message`; a change as `event`, so a client
/// that predates a kind of change ignores it instead of showing it as text.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChatMessage {
    pub room: String,
    /// Position in the room, starting at 1 and increasing by exactly 1.
    pub seq: u64,
    /// Server-assigned unique id.
    pub id: String,
    pub user: User,
    /// A message's text; an edit's new text; a topic change's new topic;
    /// empty for a delete (and for a deleted message).
    pub content: String,
    /// Server time, milliseconds since the Unix epoch.
    pub ts: i64,
    /// The sender's own id for this entry, echoed back for deduplication.
    pub client_id: String,
    /// What this entry is; `message` when left out.
    #[serde(default, skip_serializing_if = "EntryKind::is_message")]
    pub kind: EntryKind,
    /// For an edit or a delete: the seq of the message it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<u64>,
    /// For a message: the seq of the message it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<u64>,
    /// A message's current state: when it was last edited (ms since the
    /// epoch), if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited: Option<i64>,
    /// A message's current state: it was deleted, and its text with it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// A message's current state: its reactions, each emoji with who
    /// reacted with it, in the order they first did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
    /// A message's files (none once it is deleted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileInfo>,
    /// A message's or an edit's text as the server formatted it
    /// (`crate::markup`); absent when it is to be shown as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted: Option<crate::markup::Formatted>,
}

/// A file as uploaded (`POST /api/rooms/{room}/files`): its id is what a
/// message refers to, and `GET /api/files/{id}` serves it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileInfo {
    pub id: String,
    pub name: String,
    pub size: u64,
    /// Sniffed from the bytes by the server.
    pub content_type: String,
    /// An image's size in pixels, so a layout can keep its place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// `GET /api/files/{id}/thumbnail` serves a small version (an image).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub thumbnail: bool,
}

/// The most files one message may carry.
pub const MAX_FILES_PER_MESSAGE: usize = 10;

/// One emoji on a message, and who reacted with it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reaction {
    pub emoji: String,
    pub users: Vec<User>,
}

impl ChatMessage {
    /// The frame this entry is delivered in: `message` or `event`.
    pub fn into_server_msg(self) -> ServerMsg {
        if self.kind.is_message() {
            ServerMsg::Message(self)
        } else {
            ServerMsg::Event(self)
        }
    }
}

/// The kinds of entries in a room's log.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Something someone said.
    #[default]
    Message,
    /// The author changed the text of message `target` to `content`.
    Edit,
    /// Message `target` was deleted, by its author or a moderator.
    Delete,
    /// An owner or moderator set the room's topic to `content`.
    Topic,
    /// The sender reacted to message `target` with the emoji `content`.
    React,
    /// The sender took back their reaction `content` to message `target`.
    Unreact,
    /// A kind this client version does not know yet.
    #[serde(other)]
    Unknown,
}

impl EntryKind {
    pub fn is_message(&self) -> bool {
        *self == EntryKind::Message
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Message => "message",
            EntryKind::Edit => "edit",
            EntryKind::Delete => "delete",
            EntryKind::Topic => "topic",
            EntryKind::React => "react",
            EntryKind::Unreact => "unreact",
            EntryKind::Unknown => "unknown",
        }
    }

    pub fn parse(text: &str) -> EntryKind {
        match text {
            "message" => EntryKind::Message,
            "edit" => EntryKind::Edit,
            "delete" => EntryKind::Delete,
            "topic" => EntryKind::Topic,
            "react" => EntryKind::React,
            "unreact" => EntryKind::Unreact,
            _ => EntryKind::Unknown,
        }
    }
}

/// Client → server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Enter a room, creating it if it is new. `since` is the last `seq` the
    /// client has seen in this room, or `None` for a fresh join.
    Join {
        room: String,
        #[serde(default)]
        since: Option<u64>,
    },
    Leave {
        room: String,
    },
    /// Post a message. `client_id` is chosen by the client and must be unique
    /// per message; resending the same one never creates a second message.
    Send {
        room: String,
        content: String,
        client_id: String,
        /// The seq of the message this one answers, if it is a reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<u64>,
        /// Files uploaded to this room by the sender, not yet sent
        /// (`POST /api/rooms/{room}/files`), at most
        /// `MAX_FILES_PER_MESSAGE`. With files, `content` may be empty.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        files: Vec<String>,
    },
    /// Change the text of your own message `target`. Acked like a send:
    /// the edit is an entry of the room's log with a seq of its own.
    Edit {
        room: String,
        target: u64,
        content: String,
        client_id: String,
    },
    /// Delete message `target`: your own, or anyone's if you own or
    /// moderate the room. Its text is removed from the server.
    Delete {
        room: String,
        target: u64,
        client_id: String,
    },
    /// React to message `target` with any one emoji
    /// (`on`), or take the reaction back. Reacting twice is reacting once.
    React {
        room: String,
        target: u64,
        emoji: String,
        on: bool,
        client_id: String,
    },
    /// Set the room's topic (owners and moderators; empty clears it).
    SetTopic {
        room: String,
        topic: String,
        client_id: String,
    },
    /// "I am typing in this room." Send at most one every 2 s.
    Typing {
        room: String,
    },
    /// The answer to `ping`.
    Pong,
    /// "I have read this room up to `seq`." Stored per user, so unread
    /// counts are the same in every tab and after a reload. Send it when the
    /// newest messages are on screen, at most about once a second per room.
    Read {
        room: String,
        seq: u64,
    },
}

/// What a person adds to a room's log: a `send`, `edit`, `delete`,
/// `react` or `set_topic`, without its room and `client_id`. The browser's
/// outbox holds these; the server reads them out of `ClientMsg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Post {
    Message {
        content: String,
        reply_to: Option<u64>,
        /// The ids of its files (see `ClientMsg::Send`).
        files: Vec<String>,
    },
    Edit {
        target: u64,
        content: String,
    },
    Delete {
        target: u64,
    },
    React {
        target: u64,
        emoji: String,
        on: bool,
    },
    Topic {
        topic: String,
    },
}

impl Post {
    /// A plain message.
    pub fn text(content: impl Into<String>) -> Post {
        Post::Message {
            content: content.into(),
            reply_to: None,
            files: Vec::new(),
        }
    }

    /// The frame that posts it.
    pub fn into_msg(self, room: String, client_id: String) -> ClientMsg {
        match self {
            Post::Message {
                content,
                reply_to,
                files,
            } => ClientMsg::Send {
                room,
                content,
                client_id,
                reply_to,
                files,
            },
            Post::Edit { target, content } => ClientMsg::Edit {
                room,
                target,
                content,
                client_id,
            },
            Post::Delete { target } => ClientMsg::Delete {
                room,
                target,
                client_id,
            },
            Post::React { target, emoji, on } => ClientMsg::React {
                room,
                target,
                emoji,
                on,
                client_id,
            },
            Post::Topic { topic } => ClientMsg::SetTopic {
                room,
                topic,
                client_id,
            },
        }
    }
}

impl ClientMsg {
    /// `(room, client_id, post)` for a frame that posts something; the
    /// frame itself for any other.
    pub fn into_post(self) -> Result<(String, String, Post), ClientMsg> {
        Ok(match self {
            ClientMsg::Send {
                room,
                content,
                client_id,
                reply_to,
                files,
            } => (
                room,
                client_id,
                Post::Message {
                    content,
                    reply_to,
                    files,
                },
            ),
            ClientMsg::Edit {
                room,
                target,
                content,
                client_id,
            } => (room, client_id, Post::Edit { target, content }),
            ClientMsg::Delete {
                room,
                target,
                client_id,
            } => (room, client_id, Post::Delete { target }),
            ClientMsg::React {
                room,
                target,
                emoji,
                on,
                client_id,
            } => (room, client_id, Post::React { target, emoji, on }),
            ClientMsg::SetTopic {
                room,
                topic,
                client_id,
            } => (room, client_id, Post::Topic { topic }),
            other => return Err(other),
        })
    }
}

/// Server → client.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// First frame on every connection.
    Welcome {
        user: User,
        /// The server pings this often; a client that hears nothing for
        /// `heartbeat_ms` plus a grace period should treat the link as dead.
        heartbeat_ms: u64,
        protocol: u32,
        /// How fast this connection may `send`; a client paces itself to
        /// it instead of being refused with `rate_limited`.
        #[serde(default)]
        send_limit: SendLimit,
    },
    /// The join succeeded. Missed messages (for a join with `since`) are sent
    /// before this, so when it arrives the client is up to date.
    Joined {
        room: String,
        members: Vec<User>,
        /// The newest `seq` in the room (0 if it has none).
        last_seq: u64,
        /// For a join with `since`: true if every missed message was sent.
        /// False if more were missing than the server replays, in which case
        /// only the newest page was sent and older ones must be paged in.
        #[serde(default = "yes")]
        recovered: bool,
        /// How far this user has read the room (0: nothing yet).
        #[serde(default)]
        read_seq: u64,
        /// Messages from other people after `read_seq`, counted up to 100.
        #[serde(default)]
        unread: u32,
        /// Of those, the ones that mention your `@username`.
        #[serde(default, skip_serializing_if = "is_zero")]
        mentions: u32,
        /// The room's topic (empty: none).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        topic: String,
        /// You own or moderate the room (or created it): you may set its
        /// topic and delete anyone's messages.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        moderator: bool,
    },
    /// The connection is no longer in `room`: it asked to leave (no
    /// `reason`), or it was removed (`reason` says why, e.g. `removed`).
    Left {
        room: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Message(ChatMessage),
    /// A change to an earlier message or to the room: an edit, a delete or
    /// a topic (`kind`), with a seq of its own in the room's log.
    Event(ChatMessage),
    /// The message with this `client_id` is durably stored as `seq`.
    Ack {
        room: String,
        client_id: String,
        seq: u64,
    },
    /// You (in another tab or device) read `room` up to `seq`.
    Read {
        room: String,
        seq: u64,
    },
    UserJoined {
        room: String,
        user: User,
    },
    UserLeft {
        room: String,
        user: User,
    },
    Typing {
        room: String,
        user: User,
    },
    /// Answer with `pong`, or with any other frame.
    Ping,
    Error {
        code: ErrorCode,
        message: String,
        /// What the error refers to: the `client_id` of a rejected `send`,
        /// or the room of a rejected `join`/`leave`/`typing`.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// The rooms you may see changed (you were invited to one, or someone
    /// wrote to you in a new direct conversation): list them again with
    /// `GET /api/rooms`.
    RoomsChanged,
    /// Your account changed on another device or tab (a new display name):
    /// `user` is what it is now. A client reconnects, so that what it
    /// sends and its presence carry the new name (the server names a
    /// connection's messages by the account as it was when it connected).
    AccountChanged {
        user: User,
    },
    /// A type this client version does not know yet: ignored.
    #[serde(other)]
    Unknown,
}

fn yes() -> bool {
    true
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Machine-readable error codes sent in `error` messages. The connection
/// stays open after every one of them; repeated errors lead to close 4008.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame was not valid JSON, or not a known message shape.
    BadFrame,
    /// The JSON had a `type` the server does not know.
    UnknownType,
    /// The room name breaks the naming rules.
    InvalidRoom,
    /// The message content is empty or too long.
    InvalidContent,
    /// The `client_id` is empty or longer than 64 bytes.
    InvalidClientId,
    /// The room was not joined on this connection.
    NotJoined,
    /// The connection is in as many rooms as it may be.
    TooManyRooms,
    /// Sending faster than the rate limit allows; the message was dropped.
    RateLimited,
    /// The server could not complete the request; retrying may succeed.
    Internal,
    /// The room is private and this user is not a member of it.
    Forbidden,
    /// This node holds as many rooms as it may; joining an existing,
    /// active room still works. Try again later.
    RoomLimit,
    /// The message to edit or delete does not exist, was deleted, or is
    /// not yours to change.
    NoSuchMessage,
    /// A file of the send is not one the sender uploaded to this room, or
    /// was sent in another message already.
    NoSuchFile,
    /// A code this client version does not know yet.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// Every code the server sends (not `Unknown`, the client's fallback).
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::BadFrame,
        ErrorCode::UnknownType,
        ErrorCode::InvalidRoom,
        ErrorCode::InvalidContent,
        ErrorCode::InvalidClientId,
        ErrorCode::NotJoined,
        ErrorCode::TooManyRooms,
        ErrorCode::RateLimited,
        ErrorCode::Internal,
        ErrorCode::Forbidden,
        ErrorCode::RoomLimit,
        ErrorCode::NoSuchMessage,
        ErrorCode::NoSuchFile,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidRoom => "invalid_room",
            ErrorCode::InvalidContent => "invalid_content",
            ErrorCode::InvalidClientId => "invalid_client_id",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RoomLimit => "room_limit",
            ErrorCode::NoSuchMessage => "no_such_message",
            ErrorCode::NoSuchFile => "no_such_file",
            ErrorCode::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> User {
        User {
            id: "u1".into(),
            name: "alice".into(),
            username: Some("alice".into()),
        }
    }

    fn entry(seq: u64, kind: EntryKind, target: Option<u64>, content: &str) -> ChatMessage {
        ChatMessage {
            room: "r".into(),
            seq,
            id: format!("m{seq}"),
            user: user(),
            content: content.into(),
            ts: 2,
            client_id: format!("c-{seq}"),
            kind,
            target,
            ..ChatMessage::default()
        }
    }

    #[test]
    fn client_messages_match_the_documented_shapes() {
        let cases = [
            (
                json!({"type":"join","room":"general","since":null}),
                ClientMsg::Join {
                    room: "general".into(),
                    since: None,
                },
            ),
            (
                json!({"type":"join","room":"general","since":7}),
                ClientMsg::Join {
                    room: "general".into(),
                    since: Some(7),
                },
            ),
            (
                json!({"type":"leave","room":"general"}),
                ClientMsg::Leave {
                    room: "general".into(),
                },
            ),
            (
                json!({"type":"send","room":"general","content":"hi","client_id":"c-1"}),
                ClientMsg::Send {
                    room: "general".into(),
                    content: "hi".into(),
                    client_id: "c-1".into(),
                    reply_to: None,
                    files: Vec::new(),
                },
            ),
            (
                json!({"type":"send","room":"general","content":"yes","client_id":"c-2","reply_to":3}),
                ClientMsg::Send {
                    room: "general".into(),
                    content: "yes".into(),
                    client_id: "c-2".into(),
                    reply_to: Some(3),
                    files: Vec::new(),
                },
            ),
            (
                json!({"type":"send","room":"general","content":"","client_id":"c-5","files":["f1","f2"]}),
                ClientMsg::Send {
                    room: "general".into(),
                    content: String::new(),
                    client_id: "c-5".into(),
                    reply_to: None,
                    files: vec!["f1".into(), "f2".into()],
                },
            ),
            (
                json!({"type":"edit","room":"general","target":3,"content":"hi!","client_id":"c-3"}),
                ClientMsg::Edit {
                    room: "general".into(),
                    target: 3,
                    content: "hi!".into(),
                    client_id: "c-3".into(),
                },
            ),
            (
                json!({"type":"delete","room":"general","target":3,"client_id":"c-4"}),
                ClientMsg::Delete {
                    room: "general".into(),
                    target: 3,
                    client_id: "c-4".into(),
                },
            ),
            (
                json!({"type":"react","room":"general","target":3,"emoji":"👍","on":true,"client_id":"c-6"}),
                ClientMsg::React {
                    room: "general".into(),
                    target: 3,
                    emoji: "👍".into(),
                    on: true,
                    client_id: "c-6".into(),
                },
            ),
            (
                json!({"type":"set_topic","room":"general","topic":"Plans","client_id":"c-5"}),
                ClientMsg::SetTopic {
                    room: "general".into(),
                    topic: "Plans".into(),
                    client_id: "c-5".into(),
                },
            ),
            (
                json!({"type":"typing","room":"general"}),
                ClientMsg::Typing {
                    room: "general".into(),
                },
            ),
            (json!({"type":"pong"}), ClientMsg::Pong),
        ];
        for (wire, msg) in cases {
            assert_eq!(
                serde_json::from_value::<ClientMsg>(wire.clone()).unwrap(),
                msg
            );
            assert_eq!(serde_json::to_value(&msg).unwrap(), wire);
            // A post's frame and the post are one and the same.
            if let Ok((room, client_id, post)) = msg.clone().into_post() {
                assert_eq!(post.into_msg(room, client_id), msg);
            }
        }
        assert_eq!(
            ClientMsg::Pong.into_post(),
            Err(ClientMsg::Pong),
            "not a post"
        );
        // `since` may be left out entirely.
        assert_eq!(
            serde_json::from_value::<ClientMsg>(json!({"type":"join","room":"r"})).unwrap(),
            ClientMsg::Join {
                room: "r".into(),
                since: None
            }
        );
    }

    #[test]
    fn server_messages_match_the_documented_shapes() {
        let msg = ServerMsg::Message(ChatMessage {
            room: "general".into(),
            seq: 3,
            id: "m".into(),
            user: user(),
            content: "hi".into(),
            ts: 1,
            client_id: "c-1".into(),
            ..ChatMessage::default()
        });
        assert_eq!(
            serde_json::to_value(&msg).unwrap(),
            json!({"type":"message","room":"general","seq":3,"id":"m",
                   "user":{"id":"u1","name":"alice","username":"alice"},"content":"hi","ts":1,"client_id":"c-1"})
        );
        // Every kind of log entry, in its frame, both ways.
        let entries = [
            (
                json!({"type":"message","room":"r","seq":5,"id":"m5","user":{"id":"u1","name":"alice","username":"alice"},
                       "content":"", "ts":2,"client_id":"c-5","reply_to":3,"edited":9,"deleted":true,
                       "reactions":[{"emoji":"🎉","users":[{"id":"u1","name":"alice","username":"alice"}]}]}),
                ChatMessage {
                    reply_to: Some(3),
                    edited: Some(9),
                    deleted: true,
                    reactions: vec![Reaction {
                        emoji: "🎉".into(),
                        users: vec![user()],
                    }],
                    ..entry(5, EntryKind::Message, None, "")
                },
            ),
            (
                json!({"type":"event","room":"r","seq":9,"id":"m9","user":{"id":"u1","name":"alice","username":"alice"},
                       "content":"👍","ts":2,"client_id":"c-9","kind":"react","target":5}),
                entry(9, EntryKind::React, Some(5), "👍"),
            ),
            (
                json!({"type":"event","room":"r","seq":10,"id":"m10","user":{"id":"u1","name":"alice","username":"alice"},
                       "content":"👍","ts":2,"client_id":"c-10","kind":"unreact","target":5}),
                entry(10, EntryKind::Unreact, Some(5), "👍"),
            ),
            (
                json!({"type":"event","room":"r","seq":6,"id":"m6","user":{"id":"u1","name":"alice","username":"alice"},
                       "content":"hello","ts":2,"client_id":"c-6","kind":"edit","target":5}),
                entry(6, EntryKind::Edit, Some(5), "hello"),
            ),
            (
                json!({"type":"event","room":"r","seq":7,"id":"m7","user":{"id":"u1","name":"alice","username":"alice"},
                       "content":"","ts":2,"client_id":"c-7","kind":"delete","target":5}),
                entry(7, EntryKind::Delete, Some(5), ""),
            ),
            (
                json!({"type":"event","room":"r","seq":8,"id":"m8","user":{"id":"u1","name":"alice","username":"alice"},
                       "content":"Plans","ts":2,"client_id":"c-8","kind":"topic"}),
                entry(8, EntryKind::Topic, None, "Plans"),
            ),
        ];
        for (wire, entry) in entries {
            let msg = entry.into_server_msg();
            assert_eq!(serde_json::to_value(&msg).unwrap(), wire);
            assert_eq!(serde_json::from_value::<ServerMsg>(wire).unwrap(), msg);
        }
        // A newer server's frames and kinds do not break an older client.
        assert_eq!(
            serde_json::from_value::<ServerMsg>(json!({"type":"brand_new","x":1})).unwrap(),
            ServerMsg::Unknown
        );
        let ServerMsg::Event(future) = serde_json::from_value::<ServerMsg>(json!(
            {"type":"event","room":"r","seq":9,"id":"m9","user":{"id":"u1","name":"a"},
             "content":"","ts":2,"client_id":"c-9","kind":"pin","target":5}))
        .unwrap() else {
            panic!("an event of an unknown kind is still an event");
        };
        assert_eq!(future.kind, EntryKind::Unknown);
        let err = ServerMsg::Error {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            reference: Some("c-1".into()),
        };
        assert_eq!(
            serde_json::to_value(&err).unwrap(),
            json!({"type":"error","code":"rate_limited","message":"slow down","ref":"c-1"})
        );
        assert_eq!(
            serde_json::to_value(ServerMsg::Ping).unwrap(),
            json!({"type":"ping"})
        );
        assert_eq!(
            serde_json::from_value::<ServerMsg>(json!({"type":"rooms_changed"})).unwrap(),
            ServerMsg::RoomsChanged
        );
        let joined = ServerMsg::Joined {
            room: "r".into(),
            members: vec![user()],
            last_seq: 0,
            recovered: true,
            read_seq: 0,
            unread: 0,
            mentions: 2,
            topic: "Plans".into(),
            moderator: true,
        };
        let v = serde_json::to_value(&joined).unwrap();
        assert_eq!(v["topic"], "Plans");
        assert_eq!(v["mentions"], 2);
        assert_eq!(v["type"], "joined");
        assert_eq!(serde_json::from_value::<ServerMsg>(v).unwrap(), joined);
    }

    #[test]
    fn error_codes_serialize_as_their_names() {
        for code in [
            ErrorCode::BadFrame,
            ErrorCode::UnknownType,
            ErrorCode::InvalidRoom,
            ErrorCode::InvalidContent,
            ErrorCode::InvalidClientId,
            ErrorCode::NotJoined,
            ErrorCode::TooManyRooms,
            ErrorCode::RateLimited,
            ErrorCode::Internal,
            ErrorCode::Forbidden,
            ErrorCode::RoomLimit,
            ErrorCode::NoSuchMessage,
            ErrorCode::NoSuchFile,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
        // A newer server's code does not break an older client.
        assert_eq!(
            serde_json::from_value::<ErrorCode>(json!("brand_new")).unwrap(),
            ErrorCode::Unknown
        );
    }
}
