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
use frontend::driver::{Driver, Endpoint, Listener};
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
    // As the app does: a one-time ticket for every attempt, never the
    // token in the URL (the supervisor relays the ticket request).
    let driver = Driver::with_endpoint(
        Endpoint::Ticketed {
            api_base: SUPERVISOR.to_owned(),
            ws_base: BACKEND_WS.to_owned(),
            token: session.token.clone(),
        },
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
        client_id: "driver-1".into(),
        post: frontend::connection::Post::text("after the restart"),
    });
    eventually("the ack", 10, || {
        recorder.count(|m| matches!(m, ServerMsg::Ack { client_id, .. } if client_id == "driver-1"))
            == 1
    })
    .await;
    driver.dispatch(Event::Stop);
}

/// Every phase change with when it happened, and the banner's text as a
/// person (or a screen reader) would have seen it, change by change.
struct Watched {
    phases: RefCell<Vec<(Phase, f64)>>,
    status: leptos::prelude::RwSignal<frontend::view::Status>,
}

impl Listener for Watched {
    fn on_message(&self, _msg: &ServerMsg) {}

    fn on_phase(&self, phase: Phase, since_ms: f64) {
        use leptos::prelude::Set;
        self.phases.borrow_mut().push((phase, since_ms));
        self.status.set(frontend::view::Status { phase, since_ms });
    }

    fn on_send_failed(&self, _client_id: &str) {}
}

/// Mounts a banner fed by `status` and records every text it shows.
fn watch_banner(
    status: leptos::prelude::RwSignal<frontend::view::Status>,
) -> (Rc<RefCell<Vec<String>>>, impl Drop) {
    use leptos::prelude::*;
    use wasm_bindgen::JsCast;
    use wasm_bindgen::closure::Closure;

    let doc = web_sys::window().unwrap().document().unwrap();
    let root: web_sys::HtmlElement = doc.create_element("section").unwrap().unchecked_into();
    doc.body().unwrap().append_child(&root).unwrap();
    let now = RwSignal::new(js_sys::Date::now());
    // The app ticks once a second; tick faster here, to give a flash every
    // chance to show.
    let ticker = gloo_timers::callback::Interval::new(50, move || now.set(js_sys::Date::now()));
    let mounted = leptos::mount::mount_to(root.clone(), move || {
        view! { <frontend::view::Banner status now_ms=now on_retry=Callback::new(|()| {}) /> }
    });
    let texts = Rc::new(RefCell::new(vec![root.text_content().unwrap_or_default()]));
    let seen = texts.clone();
    let observed = root.clone();
    let callback = Closure::<dyn FnMut()>::new(move || {
        let text = observed.text_content().unwrap_or_default();
        if seen.borrow().last() != Some(&text) {
            seen.borrow_mut().push(text);
        }
    });
    let observer = web_sys::MutationObserver::new(callback.as_ref().unchecked_ref()).unwrap();
    let init = web_sys::MutationObserverInit::new();
    init.set_subtree(true);
    init.set_child_list(true);
    init.set_character_data(true);
    observer.observe_with_options(&root, &init).unwrap();
    /// Keeps the observer's callback and the clock alive until dropped.
    struct Guard {
        observer: web_sys::MutationObserver,
        _callback: Closure<dyn FnMut()>,
        _ticker: gloo_timers::callback::Interval,
    }
    impl Drop for Guard {
        fn drop(&mut self) {
            self.observer.disconnect();
        }
    }
    std::mem::forget(mounted);
    (
        texts,
        Guard {
            observer,
            _callback: callback,
            _ticker: ticker,
        },
    )
}

/// For 25 s, the real driver against a port nobody listens on, one that
/// accepts and closes at once, and a server that sends `welcome` and closes:
/// attempts follow the backoff (about 1, 2, 4, 8, 16 s apart, within the
/// jitter), and the banner never says "Connected".
#[wasm_bindgen_test]
async fn hostile_servers_are_backed_off_and_never_shown_as_connected() {
    let ports: serde_json::Value = Request::get(&format!("{SUPERVISOR}/hostile"))
        .send()
        .await
        .expect("the test supervisor is running (scripts/test starts it)")
        .json()
        .await
        .unwrap();
    let mut runs = Vec::new();
    for kind in ["dead", "slam", "welcome_close"] {
        let port = ports[kind].as_u64().unwrap();
        let status = leptos::prelude::RwSignal::new(frontend::view::Status {
            phase: Phase::Idle,
            since_ms: js_sys::Date::now(),
        });
        let watched = Rc::new(Watched {
            phases: RefCell::new(Vec::new()),
            status,
        });
        let (texts, guard) = watch_banner(status);
        let driver = Driver::new(
            format!("ws://127.0.0.1:{port}/ws"),
            Policy::default(),
            watched.clone(),
        );
        driver.dispatch(Event::Start);
        runs.push((kind, driver, watched, texts, guard));
    }
    TimeoutFuture::new(25_000).await;

    let policy = Policy::default();
    for (kind, driver, watched, texts, _guard) in &runs {
        driver.dispatch(Event::Stop);
        let phases = watched.phases.borrow();
        // When each attempt started, and the delay the machine chose before it.
        let mut starts = Vec::new();
        let mut delays = Vec::new();
        for (phase, at) in phases.iter() {
            match phase {
                Phase::Connecting { attempt } => starts.push((*attempt, *at)),
                Phase::Waiting { attempt, delay_ms } => delays.push((*attempt, *delay_ms)),
                _ => {}
            }
        }
        let attempts: Vec<u32> = starts.iter().map(|(a, _)| *a).collect();
        assert_eq!(
            attempts,
            (1..=attempts.len() as u32).collect::<Vec<_>>(),
            "{kind}: the attempt counter never resets: {phases:?}"
        );
        // 1 + 2 + 4 + 8 s at most ±50% each: attempt 5 starts within 22.5 s,
        // and attempt 7 cannot start before 31.5 s.
        assert!(
            (5..=6).contains(&attempts.len()),
            "{kind}: {} attempts in 25 s: {phases:?}",
            attempts.len()
        );
        for (attempt, delay) in &delays {
            let nominal = (policy.base_delay_ms << (attempt - 2)).min(policy.max_delay_ms);
            assert!(
                *delay >= nominal / 2 && *delay <= nominal * 3 / 2,
                "{kind}: delay {delay} ms before attempt {attempt}"
            );
        }
        for pair in starts.windows(2) {
            let ((_, a), (next, b)) = (pair[0], pair[1]);
            let nominal = f64::from((policy.base_delay_ms << (next - 2)).min(policy.max_delay_ms));
            let gap = b - a;
            assert!(
                gap >= nominal * 0.5 - 20.0 && gap <= nominal * 1.5 + 1_000.0,
                "{kind}: attempt {next} started {gap} ms after the one before"
            );
        }
        let shown = texts.borrow();
        assert!(
            !shown.iter().any(|t| t.contains("Connected")),
            "{kind}: the banner said Connected: {shown:?}"
        );
        if *kind != "welcome_close" {
            assert!(
                !phases.iter().any(|(p, _)| *p == Phase::Open),
                "{kind}: never open without a welcome: {phases:?}"
            );
            // The seam: a socket that failed is never reported as opened.
            assert_eq!(
                driver.sockets_opened(),
                0,
                "{kind}: a failed socket counted as open"
            );
        } else {
            assert_eq!(driver.sockets_opened() as usize, attempts.len(), "{kind}");
        }
    }
    // The servers saw the same attempts the driver made.
    let seen: serde_json::Value = Request::get(&format!("{SUPERVISOR}/hostile"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (kind, counter) in [
        ("slam", "slam_accepts"),
        ("welcome_close", "welcome_accepts"),
    ] {
        let made = runs
            .iter()
            .find(|r| r.0 == kind)
            .map(|r| {
                r.2.phases
                    .borrow()
                    .iter()
                    .filter(|(p, _)| matches!(p, Phase::Connecting { .. }))
                    .count()
            })
            .unwrap() as u64;
        assert_eq!(
            seen[counter].as_u64().unwrap(),
            made,
            "{kind}: server-side count"
        );
    }
}

/// Wake-ups (online again, the tab shown or focused, "Retry now") bring
/// the next attempt forward from a long backoff, and a storm of them, one
/// every 20 ms for 5 s against a port nobody listens on, costs at most one
/// attempt a second: the real driver, its real timers. (Not the "slam"
/// port: its server counts accepts for the test above.)
#[wasm_bindgen_test]
async fn wake_ups_reconnect_at_once_but_never_more_than_once_a_second() {
    let ports: serde_json::Value = Request::get(&format!("{SUPERVISOR}/hostile"))
        .send()
        .await
        .expect("the test supervisor is running (scripts/test starts it)")
        .json()
        .await
        .unwrap();
    let port = ports["dead"].as_u64().unwrap();
    let recorder = Rc::new(Recorder::default());
    // A backoff of 8 s and more: without wake-ups, one more attempt at
    // most in these 5 s.
    let policy = Policy {
        base_delay_ms: 8_000,
        max_delay_ms: 60_000,
        ..Policy::default()
    };
    let driver = Driver::new(
        format!("ws://127.0.0.1:{port}/ws"),
        policy,
        recorder.clone(),
    );
    driver.dispatch(Event::Start);
    let started = js_sys::Date::now();
    while js_sys::Date::now() - started < 5_000.0 {
        driver.dispatch(Event::Wake);
        TimeoutFuture::new(20).await;
    }
    driver.dispatch(Event::Stop);
    let attempts = recorder
        .phases
        .borrow()
        .iter()
        .filter(|p| matches!(p, Phase::Connecting { .. }))
        .count();
    // The first, then one a second at most (each after a jitter of up to
    // half a second): 3 to 6 in 5 s.
    assert!(
        (3..=6).contains(&attempts),
        "{attempts} attempts in 5 s of wake-ups"
    );
}
