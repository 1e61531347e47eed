//! The trunk entry point.

#[cfg(target_arch = "wasm32")]
fn main() {
    frontend::app::mount();
}

/// Natively there is no UI; the crate's pure modules are tested with `cargo test`.
#[cfg(not(target_arch = "wasm32"))]
fn main() {}
