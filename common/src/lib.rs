//! Hearth's wire protocol.
//!
//! Every frame on the WebSocket is one JSON object with a `"type"` field. The
//! server and the browser client both (de)serialize with these enums, so a
//! change here is a compile error on both sides rather than a silent mismatch.
//! `docs/protocol.md` describes each message in prose.
//!
//! This crate has no I/O and no runtime dependencies beyond serde (and, for
//! the server, pulldown-cmark: the `markdown` feature), so it builds for
//! native targets and for `wasm32-unknown-unknown` alike.

mod api;
pub mod close;
pub mod markup;
pub mod mentions;
mod messages;
pub mod search;
pub mod validate;

pub use api::{
    AccountChange, ApiError, ApiErrorCode, CreateRoom, Handoff, Invite, Notify, PasswordChange,
    PublishRequest, Published, Role, RoomMember, RoomSummary, SearchResults, ServerInfo,
    SessionRequest, SessionResponse, SetDraft, SetNotify, SetRole, SharedFile, SignUpRequest,
    StartDirect, Visibility, WsTicket, direct_room,
};
pub use messages::{
    BOT_ID_PREFIX, ChatMessage, ClientMsg, EntryKind, ErrorCode, FileInfo, MAX_FILES_PER_MESSAGE,
    Post, Reaction, SendLimit, ServerMsg, User,
};

/// Bumped on any incompatible change to the messages below. The server sends
/// it in `welcome` so a stale client can tell it must reload.
pub const PROTOCOL_VERSION: u32 = 1;
