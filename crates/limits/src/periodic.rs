//! Background flushes: call `flush` every interval for as long as its owner lives, and log
//! once when flushing starts failing and once when it works again (never once per tick).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Flushes `owner` every `every` until it is dropped. `what` names what is flushed in logs
/// ("quota counters", "usage counts").
pub fn spawn_flusher<T, F, Fut>(
    owner: &Arc<T>,
    every: Duration,
    what: &'static str,
    flush: F,
) -> tokio::task::JoinHandle<()>
where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<usize, String>> + Send,
{
    let owner = Arc::downgrade(owner);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            let Some(owner) = owner.upgrade() else { return };
            match flush(owner).await {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!(what, "written to the store again");
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(what, error = %e, "cannot write to the store; keeping them in memory and retrying");
                }
                Err(_) => {}
            }
        }
    })
}
