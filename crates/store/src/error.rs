//! What can go wrong talking to the store.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error while {context}: {source}")]
    Database {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("unsupported database URL `{0}`: use sqlite:PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    #[error(
        "the configuration changed meanwhile (expected revision {expected}, found {actual}); plan again"
    )]
    Conflict { expected: i64, actual: i64 },
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("migration {version} failed: {source}")]
    Migration {
        version: i64,
        #[source]
        source: sqlx::Error,
    },
}

pub(crate) trait Context<T> {
    fn context(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, sqlx::Error> {
    fn context(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Database { context, source })
    }
}
