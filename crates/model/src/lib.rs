//! Tollgate's domain model: the declarative configuration document, its validation,
//! and the entity view used to store it and to plan changes.
//!
//! This crate is pure: no I/O besides what callers hand it as text. Everything that
//! reads configuration (the CLI, the admin API, the store) goes through [`source`] to
//! parse, [`validate`] to check, and [`entity`] to turn a document into the rows the
//! store keeps and the plan an apply shows.

pub mod document;
pub mod entity;
pub mod identity;
pub mod lenient;
pub mod policy;
pub mod product;
pub mod source;
pub mod traffic;
pub mod units;
pub mod validate;
pub mod webhook;

pub use document::{
    ActiveHealth, Api, Balance, Certificate, Document, HashOn, Health, PassiveHealth, Route,
    Settings, Target, Timeouts, TlsSettings, Upstream, UpstreamProtocol, UpstreamTls, Version,
    VersionStatus, Visibility,
};
pub use entity::{Change, ChangeOp, EntityKey, EntityKind, EntitySet, Plan};
pub use identity::{App, AppKey, BasicCredential, Developer};
pub use policy::Policy;
pub use product::{Approval, PastPlan, Product, Subscription, SubscriptionStatus};
pub use source::{ConfigError, Located, SourceMap, parse_document};
pub use units::{ByteSize, Duration};
pub use validate::{FieldError, validate};
pub use webhook::Webhook;
