//! [`DeviceStore`] for PostgreSQL: the `devices`, `fleet_meta` (0002) and `device_setups` (0003) tables.
//!
//! An upsert is one transaction under an advisory lock (writers from several replicas are
//! serialized, readers are not blocked): one `SELECT ... = ANY` for the stored digests, the
//! decisions made in memory, then at most three set-based statements (insert new rows, replace
//! changed ones, touch `last_seen` of unchanged ones).

use super::{OpError, PgStore, ADVISORY_DEVICES};
use crate::devices::{
    canonical_report, digest_hex, encoded_setup, setup_of_stored_report, DeviceStore, DeviceUpsert,
    FleetRows, FleetRowsBuilder, StoredDevice, UpsertAction, BACKFILL_CHUNK,
};
use crate::rows::{text_to_time, time_to_text};
use crate::StoreError;
use chrono::{DateTime, Utc};
use kbgap_core::MachineId;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::IsolationLevel;
use rayon::prelude::*;
use std::collections::HashMap;

const COLUMNS: &str =
    "machine_id, host_name, report, report_digest, first_seen, last_seen, updated_at";

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
        let id = format!("device {}", self.id);
        let corrupt = |message: String| StoreError::Corrupt {
            id: id.clone(),
            message,
        };
        let machine_id: MachineId = self
            .id
            .parse()
            .map_err(|e| corrupt(format!("bad machine id: {e}")))?;
        let device = serde_json::from_slice(&self.report)
            .map_err(|e| corrupt(format!("column report: {e}")))?;
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

/// One encoded report of a batch.
struct Row {
    id: String,
    host: Option<String>,
    host_key: Option<String>,
    report: Vec<u8>,
    digest: String,
    setup: Vec<u8>,
    setup_digest: String,
}

impl PgStore {
    /// Derives the setup of every device stored before schema 0003 (`setup_digest` NULL), in
    /// chunks per transaction under the devices advisory lock, walking ids in order so a report
    /// that cannot be decoded is logged and passed over rather than retried forever. Replicas
    /// opening together derive the same values; the lock only keeps them from doing it twice.
    pub(super) fn backfill_setups(&self) -> Result<u64, StoreError> {
        let mut after = String::new();
        let mut done = 0u64;
        loop {
            let chunk: Vec<(String, Vec<u8>)> = self.run(|c| {
                Ok(c.query(
                    "SELECT machine_id, report FROM devices
                     WHERE setup_digest IS NULL AND machine_id > $1
                     ORDER BY machine_id LIMIT $2",
                    &[&after, &(BACKFILL_CHUNK as i64)],
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
            })?;
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
            let mut ids = Vec::new();
            let mut setups = Vec::new();
            let mut digests = Vec::new();
            for (id, report) in &chunk {
                match setup_of_stored_report(report) {
                    Ok((setup, digest)) => {
                        ids.push(id.as_str());
                        setups.push(setup);
                        digests.push(digest);
                    }
                    Err(e) => tracing::warn!(device = %id, "stored report cannot be decoded: {e}"),
                }
            }
            let setup_refs: Vec<&[u8]> = setups.iter().map(Vec::as_slice).collect();
            let digest_refs: Vec<&str> = digests.iter().map(String::as_str).collect();
            self.run(|c| {
                let mut tx = c.transaction()?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ADVISORY_DEVICES])?;
                tx.execute(
                    "INSERT INTO device_setups (digest, setup)
                     SELECT DISTINCT ON (d) d, s FROM unnest($1::TEXT[], $2::BYTEA[]) AS u(d, s)
                     ON CONFLICT DO NOTHING",
                    &[&digest_refs, &setup_refs],
                )?;
                tx.execute(
                    "UPDATE devices SET setup_digest = u.d
                     FROM unnest($1::TEXT[], $2::TEXT[]) AS u(id, d)
                     WHERE devices.machine_id = u.id AND devices.setup_digest IS NULL",
                    &[&ids, &digest_refs],
                )?;
                tx.commit()?;
                Ok::<_, OpError>(())
            })?;
            done += ids.len() as u64;
        }
        if done > 0 {
            tracing::info!(devices = done, "derived device setups of earlier reports");
        }
        Ok(done)
    }

    fn query_devices(
        &self,
        filter: &str,
        args: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<StoredDevice>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM devices {filter} ORDER BY machine_id");
        let raw: Vec<RawRow> = self.run(|c| {
            Ok(c.query(&sql, args)?
                .iter()
                .map(|r| RawRow {
                    id: r.get(0),
                    host_name: r.get(1),
                    report: r.get(2),
                    digest: r.get(3),
                    first_seen: r.get(4),
                    last_seen: r.get(5),
                    updated_at: r.get(6),
                })
                .collect())
        })?;
        raw.into_par_iter().map(RawRow::decode).collect()
    }
}

/// Parallel arrays (id, host, host key, report, digest, setup digest) of a set of rows, for
/// `unnest`.
type Columns<'a> = (
    Vec<&'a str>,
    Vec<Option<&'a str>>,
    Vec<Option<&'a str>>,
    Vec<&'a [u8]>,
    Vec<&'a str>,
    Vec<&'a str>,
);

/// Multi-row form of a set of rows: parallel arrays for `unnest`.
fn arrays<'a>(rows: impl Iterator<Item = &'a Row>) -> Columns<'a> {
    let mut out = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for r in rows {
        out.0.push(r.id.as_str());
        out.1.push(r.host.as_deref());
        out.2.push(r.host_key.as_deref());
        out.3.push(r.report.as_slice());
        out.4.push(r.digest.as_str());
        out.5.push(r.setup_digest.as_str());
    }
    out
}

const UNNEST: &str =
    "unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BYTEA[], $5::TEXT[], $7::TEXT[]) \
     AS u(id, host, host_key, report, digest, setup_digest)";

impl DeviceStore for PgStore {
    fn upsert_devices(
        &mut self,
        batch: Vec<DeviceUpsert>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(MachineId, UpsertAction)>, StoreError> {
        let rows = batch
            .iter()
            .map(|u| {
                let report = canonical_report(&u.device)?;
                let host = u.device.host_name.clone();
                let (setup, setup_digest) = encoded_setup(&u.device);
                Ok(Row {
                    id: u.machine_id.to_string(),
                    host_key: host.as_deref().map(str::to_lowercase),
                    host,
                    digest: digest_hex(&report),
                    report,
                    setup,
                    setup_digest,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let now_text = time_to_text(now);
        self.run(|client| {
            let mut tx = client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ADVISORY_DEVICES])?;
            let stored: HashMap<String, String> = tx
                .query(
                    "SELECT machine_id, report_digest FROM devices WHERE machine_id = ANY($1)",
                    &[&ids],
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            // Decide in batch order (a repeated id: the later report wins), tracking each
            // id's current digest and the index of its last report.
            let mut current: HashMap<&str, &str> = stored
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let mut last: HashMap<&str, usize> = HashMap::new();
            let mut out = Vec::with_capacity(rows.len());
            for (i, (row, u)) in rows.iter().zip(&batch).enumerate() {
                let action = match current.get(row.id.as_str()) {
                    None => UpsertAction::Added,
                    Some(d) if *d == row.digest => UpsertAction::Unchanged,
                    Some(_) => UpsertAction::Replaced,
                };
                current.insert(&row.id, &row.digest);
                last.insert(&row.id, i);
                out.push((u.machine_id, action));
            }
            let (mut new, mut changed, mut touched) = (Vec::new(), Vec::new(), Vec::new());
            let mut finals: Vec<usize> = last.into_values().collect();
            finals.sort_unstable();
            for i in finals {
                let row = &rows[i];
                match stored.get(&row.id) {
                    None => new.push(row),
                    Some(d) if *d == row.digest => touched.push(row.id.as_str()),
                    Some(_) => changed.push(row),
                }
            }
            // The setups of new and changed rows, each distinct one once.
            let mut setups: HashMap<&str, &[u8]> = HashMap::new();
            for r in new.iter().chain(&changed) {
                setups.insert(&r.setup_digest, &r.setup);
            }
            if !setups.is_empty() {
                let (digests, bodies): (Vec<&str>, Vec<&[u8]>) = setups.into_iter().unzip();
                tx.execute(
                    "INSERT INTO device_setups (digest, setup)
                     SELECT * FROM unnest($1::TEXT[], $2::BYTEA[])
                     ON CONFLICT DO NOTHING",
                    &[&digests, &bodies],
                )?;
            }
            if !new.is_empty() {
                let (a, b, c, d, e, f) = arrays(new.iter().copied());
                tx.execute(
                    &format!(
                        "INSERT INTO devices (machine_id, host_name, host_key, report,
                             report_digest, first_seen, last_seen, updated_at, setup_digest)
                         SELECT u.id, u.host, u.host_key, u.report, u.digest, $6, $6, $6,
                             u.setup_digest
                         FROM {UNNEST}"
                    ),
                    &[&a, &b, &c, &d, &e, &now_text, &f],
                )?;
            }
            if !changed.is_empty() {
                let (a, b, c, d, e, f) = arrays(changed.iter().copied());
                tx.execute(
                    &format!(
                        "UPDATE devices SET host_name = u.host, host_key = u.host_key,
                             report = u.report, report_digest = u.digest, last_seen = $6,
                             updated_at = $6, setup_digest = u.setup_digest
                         FROM {UNNEST} WHERE devices.machine_id = u.id"
                    ),
                    &[&a, &b, &c, &d, &e, &now_text, &f],
                )?;
            }
            if !touched.is_empty() {
                tx.execute(
                    "UPDATE devices SET last_seen = $2 WHERE machine_id = ANY($1)",
                    &[&touched, &now_text],
                )?;
            }
            if out.iter().any(|(_, a)| *a != UpsertAction::Unchanged) {
                tx.execute(
                    "UPDATE fleet_meta SET value = value + 1 WHERE key = 'generation'",
                    &[],
                )?;
            }
            tx.commit()?;
            Ok::<_, OpError>(out)
        })
    }

    fn devices(&self) -> Result<Vec<StoredDevice>, StoreError> {
        self.query_devices("", &[])
    }

    fn device(&self, id: MachineId) -> Result<Option<StoredDevice>, StoreError> {
        let id = id.to_string();
        Ok(self
            .query_devices("WHERE machine_id = $1", &[&id])?
            .into_iter()
            .next())
    }

    fn devices_by_host(&self, host: &str) -> Result<Vec<StoredDevice>, StoreError> {
        let key = host.trim().to_lowercase();
        self.query_devices("WHERE host_key = $1", &[&key])
    }

    fn fleet_rows(&self) -> Result<FleetRows, StoreError> {
        self.run(|c| {
            // One snapshot of the database for the generation, setups and devices.
            let mut tx = c
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let generation: i64 = tx
                .query_one("SELECT value FROM fleet_meta WHERE key = 'generation'", &[])?
                .get(0);
            let mut out = FleetRowsBuilder::new(generation);
            for r in tx.query(
                "SELECT digest, setup FROM device_setups
                 WHERE digest IN (SELECT setup_digest FROM devices)",
                &[],
            )? {
                out.setup(r.get(0), r.get(1))?;
            }
            // Streamed: a million rows are decoded as they arrive, not held as driver rows.
            let mut rows = tx.query_raw(
                "SELECT machine_id, host_name, first_seen, last_seen, setup_digest FROM devices",
                std::iter::empty::<&(dyn ToSql + Sync)>(),
            )?;
            while let Some(r) = rows.next()? {
                out.device(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))?;
            }
            drop(rows);
            tx.commit()?;
            Ok::<_, OpError>(out.finish())
        })
    }

    fn generations(&self) -> Result<(i64, i64), StoreError> {
        // The simple-query protocol: one round trip (a parameterless `query` would prepare
        // first, two), which matters because every API request asks.
        self.run(|c| {
            let n = super::simple_numbers(
                c,
                "SELECT (SELECT value FROM catalog_meta WHERE key = 'generation'),
                        (SELECT value FROM fleet_meta WHERE key = 'generation')",
                "catalog_meta/fleet_meta generation",
            )?;
            Ok((n[0], n[1]))
        })
    }

    fn fleet_generation(&self) -> Result<i64, StoreError> {
        self.run(|c| super::meta_generation(c, "fleet_meta"))
    }
}
