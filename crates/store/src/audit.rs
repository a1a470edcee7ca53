//! The audit log: the change log with who made each change, from where, when, and the
//! entity before and after it, hash-chained so an edited or removed row is detected.
//!
//! Each row's `hash` is the SHA-256 of its content and the previous row's hash (the first
//! row's previous hash is empty). Rows are only ever appended (database triggers refuse
//! updates and deletes of sealed rows); [`Store::verify_audit`] recomputes the chain and
//! names every row whose content no longer matches its hash, whose link to the previous row
//! is broken (a row was removed or inserted), and a tail cut off after the last revision.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::error::{Context, StoreError};
use crate::store::{Pool, Store, with_pool};

/// Who made a change, and from where (the client address of the admin request, or
/// `local` for the node itself).
#[derive(Clone, Copy, Debug)]
pub struct Actor<'a> {
    pub who: &'a str,
    pub from: &'a str,
}

impl<'a> Actor<'a> {
    /// A change made by the node itself (bootstrap, configuration file at start).
    pub fn local(who: &'a str) -> Actor<'a> {
        Actor { who, from: "local" }
    }
}

/// One row of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub revision: i64,
    pub kind: String,
    pub name: String,
    pub op: String,
    pub actor: String,
    pub source: String,
    pub at: String,
    /// The entity's stored JSON before the change (`None` when it was created).
    pub before: Option<String>,
    /// The entity's stored JSON after the change (`None` when it was deleted).
    pub after: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// What [`Store::verify_audit`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AuditCheck {
    /// Rows read.
    pub entries: u64,
    /// Each problem, naming the row (`entry 17 (revision 12)`); empty when the log is intact.
    pub problems: Vec<String>,
}

impl AuditCheck {
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The hash sealing one row: SHA-256 over the previous hash and the row's fields, as a
/// JSON array (an unambiguous encoding: no field can run into the next).
#[allow(clippy::too_many_arguments)]
pub(crate) fn entry_hash(
    prev: &str,
    revision: i64,
    kind: &str,
    name: &str,
    op: &str,
    actor: &str,
    source: &str,
    at: &str,
    before: Option<&str>,
    after: Option<&str>,
) -> String {
    let encoded = serde_json::json!([
        prev, revision, kind, name, op, actor, source, at, before, after
    ])
    .to_string();
    hex::encode(Sha256::digest(encoded.as_bytes()))
}

impl AuditEntry {
    fn expected_hash(&self) -> String {
        entry_hash(
            &self.prev_hash,
            self.revision,
            &self.kind,
            &self.name,
            &self.op,
            &self.actor,
            &self.source,
            &self.at,
            self.before.as_deref(),
            self.after.as_deref(),
        )
    }
}

/// Appends one sealed row inside the writing transaction (which holds the revision lock,
/// so the chain has one order on every backend).
macro_rules! log_change {
    ($tx:ident, $revision:expr, $kind:expr, $name:expr, $op:expr, $actor:expr, $now:expr, $before:expr, $after:expr) => {{
        let actor: &$crate::audit::Actor<'_> = $actor;
        let before: Option<String> = $before;
        let after: Option<String> = $after;
        let prev: String = sqlx::query("SELECT hash FROM change_log ORDER BY id DESC LIMIT 1")
            .fetch_optional(&mut *$tx)
            .await
            .and_then(|r| r.map(|r| r.try_get::<String, _>(0)).transpose())
            .context("reading the audit chain")?
            .unwrap_or_default();
        let hash = $crate::audit::entry_hash(
            &prev,
            $revision,
            $kind,
            $name,
            $op,
            actor.who,
            actor.from,
            $now,
            before.as_deref(),
            after.as_deref(),
        );
        sqlx::query(
            "INSERT INTO change_log (revision, kind, name, op, actor, at, source, before_body, after_body, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind($revision)
        .bind($kind)
        .bind($name)
        .bind($op)
        .bind(actor.who)
        .bind($now)
        .bind(actor.from)
        .bind(before)
        .bind(after)
        .bind(&prev)
        .bind(&hash)
        .execute(&mut *$tx)
        .await
        .context("appending to the audit log")?
    }};
}
pub(crate) use log_change;

/// The columns an [`AuditEntry`] is read from, in order.
macro_rules! columns {
    () => {
        "id, revision, kind, name, op, actor, source, at, before_body, after_body, prev_hash, hash"
    };
}

fn entry(r: &impl RowLike) -> Result<AuditEntry, sqlx::Error> {
    r.entry()
}

/// Reading an [`AuditEntry`] from either backend's row type.
trait RowLike {
    fn entry(&self) -> Result<AuditEntry, sqlx::Error>;
}

macro_rules! row_like {
    ($row:ty) => {
        impl RowLike for $row {
            fn entry(&self) -> Result<AuditEntry, sqlx::Error> {
                Ok(AuditEntry {
                    id: self.try_get(0)?,
                    revision: self.try_get(1)?,
                    kind: self.try_get(2)?,
                    name: self.try_get(3)?,
                    op: self.try_get(4)?,
                    actor: self.try_get(5)?,
                    source: self.try_get(6)?,
                    at: self.try_get(7)?,
                    before: self.try_get(8)?,
                    after: self.try_get(9)?,
                    prev_hash: self.try_get(10)?,
                    hash: self.try_get(11)?,
                })
            }
        }
    };
}
row_like!(sqlx::sqlite::SqliteRow);
row_like!(sqlx::postgres::PgRow);

impl Store {
    /// Audit rows after row `after_id`, oldest first, at most `limit`.
    /// The latest `limit` entries, newest first.
    pub async fn audit_newest(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM change_log ORDER BY id DESC LIMIT $1"
        );
        with_pool!(self, p => sqlx::query(SQL)
            .bind(limit)
            .fetch_all(p)
            .await
            .and_then(|rows| rows.iter().map(entry).collect())
            .context("reading the audit log"))
    }

    pub async fn audit(&self, after_id: i64, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM change_log WHERE id > $1 ORDER BY id LIMIT $2"
        );
        with_pool!(self, p => sqlx::query(SQL)
            .bind(after_id)
            .bind(limit)
            .fetch_all(p)
            .await
            .and_then(|rows| rows.iter().map(entry).collect())
            .context("reading the audit log"))
    }

    /// Every entry after entry `after_id`, one JSON object per line (for archiving).
    pub async fn audit_jsonl(&self, after_id: i64) -> Result<String, StoreError> {
        let mut out = String::new();
        let mut after = after_id;
        loop {
            let page = self.audit(after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for entry in &page {
                // Strings and integers only: serializing cannot fail.
                out.push_str(&serde_json::to_string(entry).unwrap_or_default());
                out.push('\n');
            }
        }
        Ok(out)
    }

    /// Recomputes the whole chain. Reads in pages, so a long log never sits in memory.
    pub async fn verify_audit(&self) -> Result<AuditCheck, StoreError> {
        let mut check = AuditCheck::default();
        let mut prev: Option<AuditEntry> = None;
        let mut after = 0;
        loop {
            let page = self.audit(after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for row in page {
                check.entries += 1;
                let place = format!(
                    "entry {} (revision {}, {} {})",
                    row.id, row.revision, row.kind, row.name
                );
                let expected_prev = prev.as_ref().map_or("", |p| p.hash.as_str());
                if row.prev_hash != expected_prev {
                    check.problems.push(match &prev {
                        Some(p) => format!(
                            "{place}: does not follow entry {}: an entry between them was removed, or one was inserted",
                            p.id
                        ),
                        None => format!("{place}: the first entry of the log links to an earlier one: the log's beginning was removed"),
                    });
                }
                if row.hash != row.expected_hash() {
                    check.problems.push(format!(
                        "{place}: its content does not match its hash: the entry was edited"
                    ));
                }
                prev = Some(row);
            }
        }
        // Every revision writes at least one row: a log ending before the current
        // revision lost its tail.
        let revision = self.revision().await?;
        let last = prev.as_ref().map_or(0, |p| p.revision);
        if last < revision {
            check.problems.push(format!(
                "the log ends at revision {last} but the configuration is at revision {revision}: entries at the end were removed"
            ));
        }
        Ok(check)
    }

    /// Seals rows written before the log was chained (a database upgraded from a version
    /// without the chain), in order, once, so the chain covers the whole history.
    pub(crate) async fn seal_unchained(&self) -> Result<(), StoreError> {
        let _guard = self.write.lock().await;
        with_pool!(self, p => {
            let mut tx = p.begin().await.context("starting to seal the audit log")?;
            // Once only: an entry whose hash was blanked later must stay detectable.
            let sealed = sqlx::query(
                "UPDATE tollgate_meta SET value = 1 WHERE key = 'audit_sealed' AND value = 0",
            )
            .execute(&mut *tx)
            .await
            .context("marking the audit log sealed")?
            .rows_affected();
            if sealed == 0 {
                return Ok(());
            }
            const SQL: &str = concat!(
                "SELECT ",
                columns!(),
                " FROM change_log WHERE hash = '' ORDER BY id"
            );
            let rows: Vec<AuditEntry> = sqlx::query(SQL)
                .fetch_all(&mut *tx)
                .await
                .and_then(|rows| rows.iter().map(entry).collect())
                .context("reading unsealed audit rows")?;
            if rows.is_empty() {
                tx.commit().await.context("sealing the audit log")?;
                return Ok(());
            }
            let mut prev: String = sqlx::query("SELECT hash FROM change_log WHERE hash <> '' AND id < $1 ORDER BY id DESC LIMIT 1")
                .bind(rows[0].id)
                .fetch_optional(&mut *tx)
                .await
                .and_then(|r| r.map(|r| r.try_get::<String, _>(0)).transpose())
                .context("reading the audit chain")?
                .unwrap_or_default();
            for mut row in rows {
                row.prev_hash = prev;
                row.hash = row.expected_hash();
                sqlx::query("UPDATE change_log SET prev_hash = $1, hash = $2 WHERE id = $3")
                    .bind(&row.prev_hash)
                    .bind(&row.hash)
                    .bind(row.id)
                    .execute(&mut *tx)
                    .await
                    .context("sealing an audit row")?;
                prev = row.hash;
            }
            tx.commit().await.context("sealing the audit log")?;
            Ok(())
        })
    }
}
