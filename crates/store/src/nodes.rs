//! Gateway nodes sharing the store: each reports its version, start time and the revision it
//! serves with a heartbeat; `GET /api/nodes` reads them.

use serde::Serialize;
use sqlx::Row;

use crate::error::{Context, StoreError};
use crate::store::{Pool, Store, with_pool};

/// One node's last heartbeat. Times are Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeRow {
    pub name: String,
    pub version: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    pub revision: i64,
}

impl Store {
    /// Writes this node's heartbeat (a restarted node replaces its row).
    pub async fn heartbeat(&self, node: &NodeRow) -> Result<(), StoreError> {
        with_pool!(self, p => sqlx::query(
            "INSERT INTO nodes (name, version, started_at, heartbeat_at, revision) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name) DO UPDATE SET version = excluded.version, started_at = excluded.started_at, \
             heartbeat_at = excluded.heartbeat_at, revision = excluded.revision",
        )
        .bind(&node.name)
        .bind(&node.version)
        .bind(node.started_at)
        .bind(node.heartbeat_at)
        .bind(node.revision)
        .execute(p)
        .await
        .map(|_| ())
        .context("writing a node heartbeat"))
    }

    /// Every node that sent a heartbeat since `since`, by name.
    pub async fn nodes(&self, since: i64) -> Result<Vec<NodeRow>, StoreError> {
        with_pool!(self, p => sqlx::query(
            "SELECT name, version, started_at, heartbeat_at, revision FROM nodes WHERE heartbeat_at >= $1 ORDER BY name",
        )
        .bind(since)
        .fetch_all(p)
        .await
        .context("reading nodes")?
        .into_iter()
        .map(|r| {
            Ok(NodeRow {
                name: r.try_get(0)?,
                version: r.try_get(1)?,
                started_at: r.try_get(2)?,
                heartbeat_at: r.try_get(3)?,
                revision: r.try_get(4)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .context("reading nodes"))
    }

    /// Forgets nodes silent since `before`.
    pub async fn prune_nodes(&self, before: i64) -> Result<u64, StoreError> {
        with_pool!(self, p => sqlx::query("DELETE FROM nodes WHERE heartbeat_at < $1")
            .bind(before)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
            .context("pruning nodes"))
    }
}
