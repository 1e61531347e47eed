//! Presentational components: each renders from signals passed in and
//! reports user actions through callbacks, so tests can mount any of them
//! with plain state, without a server.

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::chat::Chat;
pub use crate::composer::Composer;
use crate::connection::Phase;
pub use crate::message_list::MessageList;

/// The connection as the banner shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Status {
    pub phase: Phase,
    /// `Date.now()` when the phase began (for the countdown).
    pub since_ms: f64,
}

/// How long a connection must have been open before the banner says
/// "Connected". A server that welcomes and drops at once must not flash
/// "Connected" (and have a screen reader announce it) on every attempt.
pub const CONNECTED_AFTER_MS: f64 = 1_000.0;

/// "Connected", "Connecting…", or "Reconnecting in N s (attempt k)" with a
/// retry button.
#[component]
pub fn Banner(
    #[prop(into)] status: Signal<Status>,
    /// Current time, ticking, for the countdown.
    #[prop(into)]
    now_ms: Signal<f64>,
    on_retry: Callback<()>,
) -> impl IntoView {
    // Open, and for long enough to say so.
    let settled = move || {
        let Status { phase, since_ms } = status.get();
        phase == Phase::Open && now_ms.get() - since_ms >= CONNECTED_AFTER_MS
    };
    let text = move || {
        let Status { phase, since_ms } = status.get();
        match phase {
            Phase::Open if settled() => "Connected".to_owned(),
            Phase::Open => "Connecting…".to_owned(),
            Phase::Idle | Phase::Connecting { attempt: 1 } => "Connecting…".to_owned(),
            Phase::Connecting { attempt } => format!("Reconnecting… (attempt {attempt})"),
            Phase::Waiting { attempt, delay_ms } => {
                let left = ((since_ms + f64::from(delay_ms) - now_ms.get()) / 1000.0)
                    .ceil()
                    .max(0.0);
                format!("Connection lost. Reconnecting in {left} s (attempt {attempt})")
            }
            Phase::SignedOut => "Signed out: please sign in again".to_owned(),
            Phase::Stopped => "Disconnected".to_owned(),
        }
    };
    let class = move || match status.get().phase {
        Phase::Open if settled() => "banner ok",
        Phase::Waiting { .. } | Phase::SignedOut => "banner bad",
        _ => "banner busy",
    };
    let waiting = move || matches!(status.get().phase, Phase::Waiting { .. });
    view! {
        <div class=class role="status" data-testid="banner">
            <span class="dot"></span>
            <span class="banner-text">{text}</span>
            <Show when=waiting>
                <button class="link" on:click=move |_| on_retry.run(())>"Retry now"</button>
            </Show>
        </div>
    }
}

/// "Alice is typing…" for the room, or nothing.
#[component]
pub fn TypingLine(
    #[prop(into)] chat: Signal<Chat>,
    #[prop(into)] room: Signal<String>,
) -> impl IntoView {
    let text = move || {
        chat.with(|c| c.typing_text(&room.get()))
            .unwrap_or_default()
    };
    view! { <div class="typing" data-testid="typing" aria-live="polite">{text}</div> }
}

/// Focuses the first element matching `selector`, if any.
pub fn focus(selector: &str) {
    if let Some(el) = document()
        .query_selector(selector)
        .ok()
        .flatten()
        .and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok())
    {
        let _ = el.focus();
    }
}
