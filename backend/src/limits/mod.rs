//! Every rate, quota and cap, in one place: a token bucket for one
//! connection's own budgets (`bucket`), keyed budgets per address, user,
//! username and token (`throttle`), and the caps on open WebSockets
//! (`slots`). The HTTP connection caps live with the accept loop
//! (`transport::listener`), which enforces them before any request exists.

pub mod bucket;
pub mod slots;
pub mod throttle;
