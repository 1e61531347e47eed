//! How the Redis broker is doing, for `/healthz`: why its subscription or
//! its publishing is degraded, if it is.

use std::sync::Mutex;

#[derive(Default)]
pub(super) struct Status {
    pub(super) subscription: Mutex<Option<String>>,
    pub(super) publishing: Mutex<Option<String>>,
}

impl Status {
    pub(super) fn set(slot: &Mutex<Option<String>>, value: Option<String>) {
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if *slot != value {
            match &value {
                Some(reason) => tracing::warn!(%reason, "broker degraded"),
                None => tracing::info!("broker healthy"),
            }
            *slot = value;
        }
    }
}
