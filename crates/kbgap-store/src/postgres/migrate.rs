//! Versioned schema migrations for the PostgreSQL backend: numbered SQL files embedded at build
//! time, applied in one transaction under a transaction-scoped advisory lock, so replicas that
//! start together do not race (one migrates, the others wait and then see its version).

use super::ADVISORY_MIGRATE;
use crate::StoreError;
use postgres::Client;

/// The migrations, in order. Version N is `migrations/postgres/000N_*.sql` (the same versions as
/// the SQLite backend); never edit a released file, append a new one.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../migrations/postgres/0001_catalog.sql"),
    ),
    (
        2,
        include_str!("../../migrations/postgres/0002_devices.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_device_setups.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_fleet_view_index.sql"),
    ),
];

/// The newest schema version this build knows.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |(v, _)| *v)
}

/// Brings the schema up to [`latest_version`]; refuses a newer schema.
pub(super) fn migrate(client: &mut Client) -> Result<i64, StoreError> {
    let db = |e: postgres::Error| StoreError::Database(format!("migrating schema: {e}"));
    let mut tx = client.transaction().map_err(db)?;
    // Held until commit/rollback: a second replica blocks here, then reads the new version.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ADVISORY_MIGRATE])
        .map_err(db)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    BIGINT PRIMARY KEY,
             applied_at TEXT NOT NULL
         );",
    )
    .map_err(db)?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
            &[],
        )
        .map_err(db)?
        .get(0);
    let supported = latest_version();
    if current > supported {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql).map_err(|e| {
            StoreError::Database(format!("applying schema migration {version}: {e}"))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[version, &crate::rows::time_to_text(chrono::Utc::now())],
        )
        .map_err(db)?;
        tracing::info!(version, "applied schema migration");
    }
    tx.commit().map_err(db)?;
    Ok(supported)
}
