//! Time for limiters: nanoseconds since the limiter started, on tokio's clock so tests can
//! pause and advance it.

use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    pub fn new() -> Clock {
        // Start a little in the past so that "now" is never 0: a zero TAT means "unused".
        let now = Instant::now();
        Clock {
            base: now
                .checked_sub(std::time::Duration::from_secs(1))
                .unwrap_or(now),
        }
    }

    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}
