//! [`DeviceStore`] for PostgreSQL: the `devices` and `fleet_meta` tables of migration 0002.
//!
//! An upsert is one transaction under an advisory lock (writers from several replicas are
//! serialized, readers are not blocked): one `SELECT ... = ANY` for the stored digests, the
//! decisions made in memory, then at most three set-based statements (insert new rows, replace
//! changed ones, touch `last_seen` of unchanged ones).

use super::{OpError, PgStore, ADVISORY_DEVICES};
use crate::devices::{
    canonical_report, digest_hex, DeviceStore, DeviceUpsert, StoredDevice, UpsertAction,
};
use crate::rows::{text_to_time, time_to_text};
use crate::StoreError;
use chrono::{DateTime, Utc};
use kbgap_core::MachineId;
use postgres::types::ToSql;
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
}

impl PgStore {
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

/// Parallel arrays (id, host, host key, report, digest) of a set of rows, for `unnest`.
type Columns<'a> = (
    Vec<&'a str>,
    Vec<Option<&'a str>>,
    Vec<Option<&'a str>>,
    Vec<&'a [u8]>,
    Vec<&'a str>,
);

/// Multi-row form of a set of rows: parallel arrays for `unnest`.
fn arrays<'a>(rows: impl Iterator<Item = &'a Row>) -> Columns<'a> {
    let mut out = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in rows {
        out.0.push(r.id.as_str());
        out.1.push(r.host.as_deref());
        out.2.push(r.host_key.as_deref());
        out.3.push(r.report.as_slice());
        out.4.push(r.digest.as_str());
    }
    out
}

const UNNEST: &str = "unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BYTEA[], $5::TEXT[]) \
                      AS u(id, host, host_key, report, digest)";

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
                Ok(Row {
                    id: u.machine_id.to_string(),
                    host_key: host.as_deref().map(str::to_lowercase),
                    host,
                    digest: digest_hex(&report),
                    report,
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
            if !new.is_empty() {
                let (a, b, c, d, e) = arrays(new.iter().copied());
                tx.execute(
                    &format!(
                        "INSERT INTO devices (machine_id, host_name, host_key, report,
                             report_digest, first_seen, last_seen, updated_at)
                         SELECT u.id, u.host, u.host_key, u.report, u.digest, $6, $6, $6
                         FROM {UNNEST}"
                    ),
                    &[&a, &b, &c, &d, &e, &now_text],
                )?;
            }
            if !changed.is_empty() {
                let (a, b, c, d, e) = arrays(changed.iter().copied());
                tx.execute(
                    &format!(
                        "UPDATE devices SET host_name = u.host, host_key = u.host_key,
                             report = u.report, report_digest = u.digest, last_seen = $6,
                             updated_at = $6
                         FROM {UNNEST} WHERE devices.machine_id = u.id"
                    ),
                    &[&a, &b, &c, &d, &e, &now_text],
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

    fn fleet_generation(&self) -> Result<i64, StoreError> {
        self.run(|c| super::meta_generation(c, "fleet_meta"))
    }
}
