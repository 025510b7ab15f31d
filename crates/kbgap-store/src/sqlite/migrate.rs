//! Versioned schema migrations for the SQLite backend: numbered SQL files embedded at build time
//! and applied in one transaction when the database is opened.

use crate::StoreError;
use rusqlite::{Connection, TransactionBehavior};

/// The migrations, in order. Version N is `migrations/sqlite/000N_*.sql`; never edit a released
/// file, append a new one.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_catalog.sql")),
    (2, include_str!("../../migrations/sqlite/0002_devices.sql")),
    (
        3,
        include_str!("../../migrations/sqlite/0003_device_setups.sql"),
    ),
    (
        4,
        include_str!("../../migrations/sqlite/0004_fleet_view_index.sql"),
    ),
];

/// The newest schema version this build knows.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |(v, _)| *v)
}

/// Brings the schema up to [`latest_version`] in one immediate transaction (so two processes
/// opening a fresh database at once do not both migrate). Refuses a newer schema.
pub fn migrate(conn: &mut Connection) -> Result<i64, StoreError> {
    let db = |e: rusqlite::Error| StoreError::Database(format!("migrating schema: {e}"));
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY NOT NULL,
             applied_at TEXT NOT NULL
         );",
    )
    .map_err(db)?;
    let current: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(db)?;
    let supported = latest_version();
    if current > supported {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.execute_batch(sql).map_err(|e| {
            StoreError::Database(format!("applying schema migration {version}: {e}"))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            rusqlite::params![version, super::time_to_text(chrono::Utc::now())],
        )
        .map_err(db)?;
        tracing::info!(version, "applied schema migration");
    }
    tx.commit().map_err(db)?;
    Ok(supported)
}
