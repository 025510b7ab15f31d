//! [`DeviceStore`] for SQLite: the `devices`, `fleet_meta` (0002) and `device_setups` (0003) tables.

use super::{db, text_to_time, time_to_text, SqliteStore};
use crate::devices::{
    canonical_report, digest_hex, encoded_setup, setup_of_stored_report, DeviceStore, DeviceUpsert,
    FleetRows, FleetRowsBuilder, StoredDevice, UpsertAction, BACKFILL_CHUNK,
};
use crate::StoreError;
use chrono::{DateTime, Utc};
use kbgap_core::MachineId;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

const COLUMNS: &str =
    "machine_id, host_name, report, report_digest, first_seen, last_seen, updated_at";

fn row_to_device(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        id: r.get(0)?,
        host_name: r.get(1)?,
        report: r.get(2)?,
        digest: r.get(3)?,
        first_seen: r.get(4)?,
        last_seen: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

struct RawRow {
    id: String,
    host_name: Option<String>,
    report: Vec<u8>,
    digest: String,
    first_seen: String,
    last_seen: String,
    updated_at: String,
}

impl RawRow {
    fn decode(self) -> Result<StoredDevice, StoreError> {
        let corrupt = |message: String| StoreError::Corrupt {
            id: format!("device {}", self.id),
            message,
        };
        let machine_id: MachineId = self
            .id
            .parse()
            .map_err(|e| corrupt(format!("bad machine id: {e}")))?;
        let device = serde_json::from_slice(&self.report)
            .map_err(|e| corrupt(format!("column report: {e}")))?;
        let id = format!("device {}", self.id);
        Ok(StoredDevice {
            machine_id,
            host_name: self.host_name,
            device,
            report_digest: self.digest,
            first_seen: text_to_time(&id, "first_seen", &self.first_seen)?,
            last_seen: text_to_time(&id, "last_seen", &self.last_seen)?,
            updated_at: text_to_time(&id, "updated_at", &self.updated_at)?,
        })
    }
}

fn insert_setup(
    tx: &rusqlite::Transaction<'_>,
    digest: &str,
    setup: &[u8],
) -> Result<(), StoreError> {
    tx.prepare_cached("INSERT OR IGNORE INTO device_setups (digest, setup) VALUES (?1, ?2)")
        .map_err(db)?
        .execute(params![digest, setup])
        .map_err(db)?;
    Ok(())
}

impl SqliteStore {
    /// Derives the setup of every device stored before schema 0003 (`setup_digest` NULL), in
    /// chunks of [`BACKFILL_CHUNK`] rows per transaction, walking ids in order so a report
    /// that cannot be decoded is logged and passed over (it keeps a NULL digest) rather than
    /// retried forever.
    pub(super) fn backfill_setups(&mut self) -> Result<u64, StoreError> {
        let mut after = String::new();
        let mut done = 0u64;
        loop {
            let chunk: Vec<(String, Vec<u8>)> = {
                let mut stmt = self
                    .conn
                    .prepare(
                        "SELECT machine_id, report FROM devices
                         WHERE setup_digest IS NULL AND machine_id > ?1
                         ORDER BY machine_id LIMIT ?2",
                    )
                    .map_err(db)?;
                let rows = stmt
                    .query_map(params![after, BACKFILL_CHUNK as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .map_err(db)?;
                rows.collect::<Result<_, _>>().map_err(db)?
            };
            let Some((last, _)) = chunk.last() else {
                break;
            };
            if after.is_empty() {
                tracing::info!(
                    "deriving the setups of devices stored before schema 0003 (one pass, \
                     {BACKFILL_CHUNK} per transaction)"
                );
            }
            after = last.clone();
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            for (id, report) in &chunk {
                match setup_of_stored_report(report) {
                    Ok((setup, digest)) => {
                        insert_setup(&tx, &digest, &setup)?;
                        tx.execute(
                            "UPDATE devices SET setup_digest = ?2 WHERE machine_id = ?1",
                            params![id, digest],
                        )
                        .map_err(db)?;
                        done += 1;
                    }
                    Err(e) => tracing::warn!(device = %id, "stored report cannot be decoded: {e}"),
                }
            }
            tx.commit().map_err(db)?;
        }
        if done > 0 {
            tracing::info!(devices = done, "derived device setups of earlier reports");
        }
        Ok(done)
    }

    fn query_devices(
        &self,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<StoredDevice>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM devices {filter} ORDER BY machine_id");
        let mut stmt = self.conn.prepare(&sql).map_err(db)?;
        let raw = stmt
            .query_map(args, row_to_device)
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        use rayon::prelude::*;
        raw.into_par_iter().map(RawRow::decode).collect()
    }
}

impl DeviceStore for SqliteStore {
    fn upsert_devices(
        &mut self,
        batch: Vec<DeviceUpsert>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(MachineId, UpsertAction)>, StoreError> {
        let encoded = batch
            .iter()
            .map(|u| {
                let report = canonical_report(&u.device)?;
                let digest = digest_hex(&report);
                Ok((u, report, digest, encoded_setup(&u.device)))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let now_text = time_to_text(now);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let mut out = Vec::with_capacity(encoded.len());
        let mut changed = false;
        for (u, report, digest, (setup, setup_digest)) in encoded {
            let id = u.machine_id.to_string();
            let stored: Option<String> = tx
                .query_row(
                    "SELECT report_digest FROM devices WHERE machine_id = ?1",
                    [&id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db)?;
            let host = u.device.host_name.clone();
            let host_key = host.as_deref().map(str::to_lowercase);
            let action = match stored {
                Some(d) if d == digest => {
                    tx.execute(
                        "UPDATE devices SET last_seen = ?2 WHERE machine_id = ?1",
                        params![id, now_text],
                    )
                    .map_err(db)?;
                    UpsertAction::Unchanged
                }
                Some(_) => {
                    insert_setup(&tx, &setup_digest, &setup)?;
                    tx.execute(
                        "UPDATE devices SET host_name = ?2, host_key = ?3, report = ?4,
                             report_digest = ?5, last_seen = ?6, updated_at = ?6,
                             setup_digest = ?7
                         WHERE machine_id = ?1",
                        params![id, host, host_key, report, digest, now_text, setup_digest],
                    )
                    .map_err(db)?;
                    changed = true;
                    UpsertAction::Replaced
                }
                None => {
                    insert_setup(&tx, &setup_digest, &setup)?;
                    tx.execute(
                        "INSERT INTO devices (machine_id, host_name, host_key, report,
                             report_digest, first_seen, last_seen, updated_at, setup_digest)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6, ?7)",
                        params![id, host, host_key, report, digest, now_text, setup_digest],
                    )
                    .map_err(db)?;
                    changed = true;
                    UpsertAction::Added
                }
            };
            out.push((u.machine_id, action));
        }
        if changed {
            tx.execute(
                "UPDATE fleet_meta SET value = value + 1 WHERE key = 'generation'",
                [],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(out)
    }

    fn devices(&self) -> Result<Vec<StoredDevice>, StoreError> {
        self.query_devices("", &[])
    }

    fn device(&self, id: MachineId) -> Result<Option<StoredDevice>, StoreError> {
        let id = id.to_string();
        Ok(self
            .query_devices("WHERE machine_id = ?1", &[&id])?
            .into_iter()
            .next())
    }

    fn devices_by_host(&self, host: &str) -> Result<Vec<StoredDevice>, StoreError> {
        let key = host.trim().to_lowercase();
        self.query_devices("WHERE host_key = ?1", &[&key])
    }

    fn fleet_rows(&self) -> Result<FleetRows, StoreError> {
        // One read transaction: the generation, setups and devices are one state of the file.
        let tx = self.conn.unchecked_transaction().map_err(db)?;
        let generation: i64 = tx
            .query_row(
                "SELECT value FROM fleet_meta WHERE key = 'generation'",
                [],
                |r| r.get(0),
            )
            .map_err(db)?;
        let mut out = FleetRowsBuilder::new(generation);
        {
            let mut stmt = tx
                .prepare(
                    "SELECT digest, setup FROM device_setups
                     WHERE digest IN (SELECT setup_digest FROM devices)",
                )
                .map_err(db)?;
            let mut rows = stmt.query([]).map_err(db)?;
            while let Some(r) = rows.next().map_err(db)? {
                let digest = r.get_ref(0).and_then(|v| Ok(v.as_str()?)).map_err(db)?;
                let body = r.get_ref(1).and_then(|v| Ok(v.as_blob()?)).map_err(db)?;
                out.setup(digest, body)?;
            }
        }
        {
            let mut stmt = tx
                .prepare(
                    "SELECT machine_id, host_name, first_seen, last_seen, setup_digest
                     FROM devices",
                )
                .map_err(db)?;
            let mut rows = stmt.query([]).map_err(db)?;
            while let Some(r) = rows.next().map_err(db)? {
                let text = |i: usize| r.get_ref(i).and_then(|v| Ok(v.as_str()?)).map_err(db);
                let opt = |i: usize| {
                    r.get_ref(i)
                        .and_then(|v| Ok(v.as_str_or_null()?))
                        .map_err(db)
                };
                out.device(text(0)?, opt(1)?, text(2)?, text(3)?, opt(4)?)?;
            }
        }
        tx.finish().map_err(db)?;
        Ok(out.finish())
    }

    fn generations(&self) -> Result<(i64, i64), StoreError> {
        self.conn
            .prepare_cached(
                "SELECT (SELECT value FROM catalog_meta WHERE key = 'generation'),
                        (SELECT value FROM fleet_meta WHERE key = 'generation')",
            )
            .map_err(db)?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db)
    }

    fn fleet_generation(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT value FROM fleet_meta WHERE key = 'generation'",
                [],
                |r| r.get(0),
            )
            .map_err(db)
    }
}
