//! Analytics for every API (DESIGN §6): the event pipeline that folds answered requests
//! into per-minute aggregates with mergeable latency histograms. No HTTP, no store: the
//! binary connects the store, the admin API queries what was stored.

pub mod accesslog;
pub mod detect;
pub mod histogram;
pub mod mask;
pub mod perthread;
pub mod pipeline;
pub mod spikes;

pub use histogram::Histogram;
pub use pipeline::{AggregateStore, Event, Key, Labels, Pipeline, Row};
