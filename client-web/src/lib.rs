//! Hearth's client in the browser: `client_core`'s connection machine
//! driven by the browser's WebSocket and timers (`driver`), with a one-time
//! ticket for every attempt (`ticket`), so a token never goes in a URL.
//!
//! The Leptos app (`frontend`) uses the driver directly. With the `js`
//! feature the crate is also a JavaScript/TypeScript package (`js`, built
//! by `scripts/js-package`): the same machine and driver for any web page.

#[cfg(target_arch = "wasm32")]
pub mod driver;
#[cfg(all(target_arch = "wasm32", feature = "js"))]
mod js;
#[cfg(target_arch = "wasm32")]
mod ticket;
