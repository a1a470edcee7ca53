//! Governance lint: rules as data over OpenAPI documents (2.0, 3.0, 3.1) and Tollgate
//! configurations, in the spirit of Spectral.
//!
//! A rule has an id, a description, a severity (`error`, `warn`, `info`, `hint`, `off`),
//! the formats it reads, a `given` path (a small JSONPath subset, [`path`]) and a `then`: a
//! function applied to a field of every node the path selects ([`functions`]). The built-in
//! rules are a YAML file in this crate ([`ruleset::BUILTIN_YAML`]); a ruleset file or a
//! configuration's `governance.rules` changes severities, turns rules off, replaces parts of
//! them or adds new ones ([`Ruleset::apply`]).
//!
//! The CLI (`tollgate lint`) runs [`lint`] on an OpenAPI document or [`lint_config`] on a
//! configuration and writes [`report`]s; the admin API runs [`publish_check`] on every
//! configuration change, refusing a version that would be published with a finding at
//! `error`. See `docs/governance.md`.

pub mod config;
pub mod engine;
pub mod functions;
pub mod oas;
pub mod org;
pub mod path;
pub mod report;
pub mod ruleset;

pub use config::{lint_config, lint_spec, publish_check, ruleset_for};
pub use engine::{Finding, SpecOf, lint};
pub use path::{Location, Path};
pub use ruleset::{Format, Rule, Ruleset, RulesetError, Severity};
