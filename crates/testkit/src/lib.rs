//! Test harness for Tollgate end-to-end tests (dev-only).
//!
//! * [`MockUpstream`]: a real HTTP/1.1 + h2c backend with echo, status, delay,
//!   bytes, trailers and WebSocket endpoints.
//! * [`Node`]: a spawned `tollgate serve` process with its own ports, data
//!   directory, admin token and captured logs.
//! * [`Client`] / [`Reply`]: a keep-alive HTTP client returning whole responses.
//! * [`WsClient`]: a WebSocket client.
//! * [`HookReceiver`]: records webhook calls (headers and body).
//! * [`admin_put_yaml`] and [`wait_until`]: small helpers.
//! * [`browser::Browser`]: a WebDriver client driving headless Chromium for UI tests.

use std::future::Future;
use std::time::{Duration, Instant};

pub mod browser;
mod client;
mod hooks;
mod node;
mod upstream;
mod ws;

pub use client::{Client, Reply};
pub use hooks::{Hook, HookReceiver};
pub use node::{Node, NodeOptions, admin_put_yaml, free_addr, stable_addr};
pub use upstream::{MockUpstream, RecordedRequest};
pub use ws::{Message, WsClient};

/// Re-exported so tests can use the raw WebSocket API without their own dependency.
pub use tokio_tungstenite;

/// Polls `check` every 25 ms until it returns `true` or `timeout` elapses.
///
/// Returns whether the condition was met (checked once more at the deadline).
pub async fn wait_until<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[cfg(test)]
mod tests;
