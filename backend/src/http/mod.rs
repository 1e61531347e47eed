//! Everything served over HTTP: the JSON API (`api`, open to the allowed
//! origins' pages: `cors`), the WebSocket upgrade route (`upgrade`), the
//! built frontend (`web`), the sign-in page (`signin`), and `/metrics`
//! (`metrics`).

pub mod api;
pub mod cors;
pub mod metrics;
pub mod origin;
pub mod signin;
pub mod upgrade;
pub mod web;
