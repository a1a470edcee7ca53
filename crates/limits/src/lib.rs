//! Traffic control: GCRA rate limits kept on this node or in Redis (per request, or as
//! leases served locally), bounded FIFO queueing, and durable quotas.
//!
//! Nothing here knows about HTTP: the gateway turns a request into a key, asks a
//! [`Limiter`] or the [`Quotas`], and answers from the verdict.

pub mod clock;
pub mod gcra;
pub mod limiter;
pub mod local;
pub mod periodic;
pub mod quota;
pub mod redis;

pub use gcra::Rate;
pub use limiter::{Limiter, Path, QueueSlot, Report, Scope, Spec, Verdict};
pub use quota::{Calendar, Period, QuotaStore, QuotaVerdict, Quotas};
pub use redis::RedisLimits;
