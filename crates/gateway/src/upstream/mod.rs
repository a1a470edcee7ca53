//! Upstreams: target health that survives configuration changes, balancing, pooled
//! clients and active health probes.

mod balance;
mod health;
mod registry;
mod target;

pub use balance::{Balancer, hash_key as balance_key};
pub use health::HealthChecks;
pub use registry::{Registry, UpstreamPool};
pub use target::TargetState;
