//! The store: where Tollgate keeps its configuration, credentials and history.
//!
//! One [`Store`] interface over two backends: SQLite (the embedded default, a file in the
//! data directory) and PostgreSQL (cluster mode). Both run the same SQL, written once with
//! `$N` placeholders (SQLite reads them too), and the same contract tests.
//!
//! Every write is one transaction that bumps the global revision and appends one change
//! log row per entity, so a node that sees revision N has seen every change up to N.

mod accounts;
mod alerts;
mod analytics;
mod audit;
mod error;
mod invoices;
mod migrate;
mod nodes;
mod notify;
mod privacy;
mod quota;
mod retention;
mod store;
mod tokens;
mod usage;

pub use accounts::{SessionRow, UserRecord};
pub use alerts::AlertRow;
pub use analytics::{AggregateFilter, AggregateRow, AppActivity, Rollup};
pub use audit::{Actor, AuditCheck, AuditEntry};
pub use error::StoreError;
pub use invoices::InvoiceRow;
pub use nodes::NodeRow;
pub use notify::{Attempt, CreditEntry, Delivery, Notice};
pub use privacy::{Erased, PortalAccountInfo};
pub use retention::Pruned;
pub use store::{Backend, ChangeRecord, Store};
pub use tokens::TokenRecord;
pub use usage::{UsageHour, UsageTotal};

/// Current time as RFC 3339 text, the form every timestamp column holds.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
