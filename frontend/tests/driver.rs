//! The real browser driver (gloo WebSocket and timers) against a real
//! backend, in headless Chromium: connect and join, then the backend is
//! killed and restarted, and the driver must reconnect and re-join by
//! itself, and then work.
//!
//! Needs the test supervisor (backend/examples/supervisor.rs), which
//! `scripts/test` starts; hence the `live-backend` feature.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use common::{ServerMsg, SessionResponse};
use frontend::connection::{Event, Phase, Policy};
use frontend::driver::{Driver, Listener};
use gloo_net::http::Request;
use gloo_timers::future::TimeoutFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const SUPERVISOR: &str = match option_env!("HEARTH_SUPERVISOR_URL") {
    Some(url) => url,
    None => "http://127.0.0.1:18090",
};
const BACKEND_WS: &str = match option_env!("HEARTH_SUPERVISED_WS") {
    Some(url) => url,
    None => "ws://127.0.0.1:18091/ws",
};

#[derive(Default)]
struct Recorder {
    phases: RefCell<Vec<Phase>>,
    messages: RefCell<Vec<ServerMsg>>,
}

impl Recorder {
    fn count(&self, want: impl Fn(&ServerMsg) -> bool) -> usize {
        self.messages.borrow().iter().filter(|m| want(m)).count()
    }
}

impl Listener for Recorder {
    fn on_message(&self, msg: &ServerMsg) {
        self.messages.borrow_mut().push(msg.clone());
    }

    fn on_phase(&self, phase: Phase, _since_ms: f64) {
        self.phases.borrow_mut().push(phase);
    }

    fn on_send_failed(&self, _client_id: &str) {}
}

/// Polls `done` every 50 ms for up to `seconds`.
async fn eventually(what: &str, seconds: u32, done: impl Fn() -> bool) {
    for _ in 0..seconds * 20 {
        if done() {
            return;
        }
        TimeoutFuture::new(50).await;
    }
    panic!("timed out waiting for {what}");
}

#[wasm_bindgen_test]
async fn the_driver_reconnects_and_rejoins_after_the_server_restarts() {
    let session: SessionResponse = Request::get(&format!("{SUPERVISOR}/session?name=driver"))
        .send()
        .await
        .expect("the test supervisor is running (scripts/test starts it)")
        .json()
        .await
        .unwrap();
    let recorder = Rc::new(Recorder::default());
    // Short delays so the test is quick; the policy itself is unit-tested.
    let policy = Policy {
        base_delay_ms: 200,
        max_delay_ms: 1_000,
        ..Policy::default()
    };
    let driver = Driver::new(
        format!("{BACKEND_WS}?token={}", session.token),
        policy,
        recorder.clone(),
    );
    driver.dispatch(Event::Start);
    driver.dispatch(Event::Join {
        room: "driver-test".into(),
    });
    let joined =
        |m: &ServerMsg| matches!(m, ServerMsg::Joined { room, .. } if room == "driver-test");
    eventually("the first join", 10, || recorder.count(joined) == 1).await;
    assert_eq!(driver.phase(), Phase::Open);

    Request::get(&format!("{SUPERVISOR}/restart"))
        .send()
        .await
        .unwrap();

    // It noticed the drop, waited, reconnected and re-joined on its own.
    eventually("the re-join", 20, || recorder.count(joined) == 2).await;
    assert_eq!(driver.phase(), Phase::Open);
    let phases = recorder.phases.borrow().clone();
    assert!(
        phases.iter().any(|p| matches!(p, Phase::Waiting { .. })),
        "went through a backoff wait: {phases:?}"
    );

    // And it works: a message goes out and is acknowledged.
    driver.dispatch(Event::Send {
        room: "driver-test".into(),
        content: "after the restart".into(),
        client_id: "driver-1".into(),
    });
    eventually("the ack", 10, || {
        recorder.count(|m| matches!(m, ServerMsg::Ack { client_id, .. } if client_id == "driver-1"))
            == 1
    })
    .await;
    driver.dispatch(Event::Stop);
}
