//! Everything served over HTTP: the JSON API (`api`), the WebSocket
//! upgrade route (`upgrade`), the built frontend (`web`), and `/metrics`
//! (`metrics`).

pub mod api;
pub mod metrics;
pub mod upgrade;
pub mod web;
