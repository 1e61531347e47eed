//! Hearth's browser client.
//!
//! The pure parts build natively and are unit-tested with `cargo test -p
//! frontend`: the chat state the UI renders (`chat`) and the rules beside
//! it. The connection policy is every client's (`client_core`); this app
//! drives it with the browser's sockets and timers (`driver`). The UI and
//! the browser driver build only for wasm32.

/// The connection policy shared by every Hearth client.
pub use client_core::connection;

pub mod attachments;
pub mod chat;
pub mod emoji;
pub mod forms;
pub mod links;
pub mod markup;
pub mod place;
pub mod reading;
pub mod scrolling;

#[cfg(target_arch = "wasm32")]
pub mod api;
#[cfg(target_arch = "wasm32")]
pub mod app;
#[cfg(target_arch = "wasm32")]
pub mod composer;
#[cfg(target_arch = "wasm32")]
pub mod conversation;
#[cfg(target_arch = "wasm32")]
pub mod directory;
#[cfg(target_arch = "wasm32")]
pub mod directs;
#[cfg(target_arch = "wasm32")]
pub mod drafts;
/// The browser's driver of that policy, shared with the JavaScript package.
#[cfg(target_arch = "wasm32")]
pub use client_web::driver;
#[cfg(target_arch = "wasm32")]
pub mod emoji_picker;
#[cfg(target_arch = "wasm32")]
pub mod file_view;
#[cfg(target_arch = "wasm32")]
pub mod invitations;
#[cfg(target_arch = "wasm32")]
pub mod marks;
#[cfg(target_arch = "wasm32")]
pub mod members;
#[cfg(target_arch = "wasm32")]
pub mod message_line;
#[cfg(target_arch = "wasm32")]
pub mod message_list;
#[cfg(target_arch = "wasm32")]
pub mod notify;
#[cfg(target_arch = "wasm32")]
pub mod profile;
#[cfg(target_arch = "wasm32")]
pub mod rich_text;
#[cfg(target_arch = "wasm32")]
pub mod room_files;
#[cfg(target_arch = "wasm32")]
pub mod room_header;
#[cfg(target_arch = "wasm32")]
pub mod routing;
#[cfg(target_arch = "wasm32")]
pub mod search;
#[cfg(target_arch = "wasm32")]
pub mod sidebar;
#[cfg(target_arch = "wasm32")]
pub mod storage;
#[cfg(target_arch = "wasm32")]
pub mod topic;
#[cfg(target_arch = "wasm32")]
pub mod uploading;
#[cfg(target_arch = "wasm32")]
pub mod view;
